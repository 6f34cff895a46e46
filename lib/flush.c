/* flush.c -- persisting stores: libpmem2's CPU flush where it suffices, msync elsewhere */
#include "flush.h"

#include "config.h"
#include "engine.h"
#include "region.h"
#include "stats.h"
#include "syncmap.h"
#include "testpoint.h"

#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static pmem2_persist_fn cpu_fn;
static int eadr;

/* Every NVDIMM region reports its persistence domain; "cpu_cache" means the
 * platform flushes CPU caches on power loss (eADR). */
static int detect_eadr(void)
{
	DIR *d = opendir("/sys/bus/nd/devices");
	struct dirent *de;
	int regions = 0, cpu_cache = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[512], buf[32] = "";
		FILE *f;

		if (strncmp(de->d_name, "region", 6) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/nd/devices/%s/persistence_domain", de->d_name);
		f = fopen(path, "re");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) != NULL) {
			regions++;
			cpu_cache += strncmp(buf, "cpu_cache", 9) == 0;
		}
		fclose(f);
	}
	closedir(d);
	return regions > 0 && cpu_cache == regions;
}

/* libpmem2 hands out its persist function through a pmem2_map; the function
 * depends only on the granularity and the CPU, so one map of one anonymous
 * page, made once, serves every mapping of the process. */
static void cpu_init(void)
{
	struct pmem2_source *src = NULL;
	struct pmem2_map *map = NULL;
	size_t pg = sm_cfg.page ? sm_cfg.page : 4096;
	void *p = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	eadr = detect_eadr();
	if (p == MAP_FAILED)
		return;
	if (pmem2_source_from_anon(&src, pg) != 0)
		goto fail;
	if (pmem2_map_from_existing(&map, src, p, pg,
				    eadr ? PMEM2_GRANULARITY_BYTE : PMEM2_GRANULARITY_CACHE_LINE) != 0)
		goto fail;
	cpu_fn = pmem2_get_persist_fn(map);
	pmem2_source_delete(&src);
	return; /* map and page stay: libpmem2 keeps them registered */
fail:
	if (src != NULL)
		pmem2_source_delete(&src);
	munmap(p, pg);
}

pmem2_persist_fn sm_flush_cpu_fn(void)
{
	pthread_once(&cpu_once, cpu_init);
	return cpu_fn;
}

int sm_flush_eadr(void)
{
	pthread_once(&cpu_once, cpu_init);
	return eadr;
}

static int env_on(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && strcmp(v, "1") == 0;
}

const char *sm_flush_cpu_name(void)
{
	unsigned a, b, c, d;

	if (sm_flush_eadr() || env_on("PMEM_NO_FLUSH"))
		return "none (eADR)";
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
		if ((b & (1u << 24)) && !env_on("PMEM_NO_CLWB"))
			return "clwb";
		if ((b & (1u << 23)) && !env_on("PMEM_NO_CLFLUSHOPT"))
			return "clflushopt";
	}
	return "clflush";
}

/* msync(MS_SYNC) of the pages holding [a, e). */
static int msync_range(uintptr_t a, uintptr_t e)
{
	uintptr_t s = a & ~(uintptr_t)(sm_cfg.page - 1);

	if (msync((void *)s, e - s, MS_SYNC) != 0)
		return -1;
	SM_STAT_ADD(syncs, 1);
	return 0;
}

int syncmap_persist(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, end = a + len;

	if (len == 0)
		return 0;
	SM_MUTANT_DO(persist_no_sync, return 0);
	sm_init();
	if (end < a) {
		errno = EINVAL;
		return -1;
	}
	while (a < end) {
		struct sm_region *r;
		uintptr_t e;

		if (sm_region_get(a, &r) != SM_FOUND)
			return msync_range(a, end); /* not ours (or changing): msync is always right */
		e = end < r->end ? end : r->end;
		if (r->cpu_persist != NULL) {
			r->cpu_persist((const void *)a, e - a);
			if (r->mode == SYNCMAP_MODE_KERNEL)
				sm_engine_persisted(r, e);
		} else if (msync_range(a, e) != 0) {
			sm_region_put(r);
			return -1;
		}
		sm_region_put(r);
		a = e;
	}
	return 0;
}
