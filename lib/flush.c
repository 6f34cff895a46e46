/* SPDX-License-Identifier: MIT */
/* flush.c -- persisting stores: libpmem2's CPU flush where it suffices, msync elsewhere */
#include "flush.h"

#include "changed.h"
#include "config.h"
#include "init.h"
#include "engine.h"
#include "region.h"
#include "stats.h"
#include "syncmap.h"
#include "testpoint.h"

#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static pmem2_persist_fn cpu_fn;
static int eadr;

/* 1 if the region directory's persistence_domain reads "cpu_cache": the
 * kernel (drivers/nvdimm/region_devs.c) writes "cpu_cache\n",
 * "memory_controller\n" or "\n".  A missing, unreadable or other file is no
 * promise that the platform flushes CPU caches on power loss. */
static int region_cpu_cache(const char *root, const char *region)
{
	char path[PATH_MAX], buf[32] = "";
	size_t n;
	FILE *f;

	if (snprintf(path, sizeof(path), "%s/%s/persistence_domain", root, region) >= (int)sizeof(path))
		return 0;
	f = fopen(path, "re");
	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return strcmp(buf, "cpu_cache") == 0;
}

/* eADR only if there is a region and every region's persistence domain is
 * the CPU cache.  One region that does not say so may hold a KERNEL mapping
 * whose stores need cache flushes; libpmem2 (pmem2_auto_flush) gives the
 * same answer, "not eADR", for a region without the file. */
int sm_flush_detect_eadr(const char *root)
{
	DIR *d = opendir(root);
	struct dirent *de;
	int regions = 0, all_cpu_cache = 1;

	if (d == NULL)
		return 0;
	while (all_cpu_cache && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "region", 6) != 0)
			continue;
		regions++;
		all_cpu_cache = region_cpu_cache(root, de->d_name);
	}
	closedir(d);
	return regions > 0 && all_cpu_cache;
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

	eadr = sm_flush_detect_eadr("/sys/bus/nd/devices");
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

/* libpmem2 reads its PMEM_NO_* variables with secure_getenv (os_getenv in
 * PMDK's core): in a set-user-ID program they change nothing, and the name
 * we report must not either. */
static int env_on(const char *name)
{
	const char *v = secure_getenv(name);

	return v != NULL && strcmp(v, "1") == 0;
}

const char *sm_flush_cpu_name(void)
{
	unsigned a, b, c, d;

	/* PMEM_NO_FLUSH is libpmem's (v1): libpmem2 1.12's persist function
	 * never reads it, so it does not change what we do. */
	if (sm_flush_eadr())
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
	sm_engine_kick();
	if (end < a) {
		errno = EINVAL;
		return -1;
	}
	while (a < end) {
		struct sm_region *r;
		uintptr_t e;
		int rc = 0;

		sm_changes_hold(); /* while the ref is held (changed.h) */
		if (sm_region_get(a, &r) != SM_FOUND) {
			sm_changes_release();
			return msync_range(a, end); /* not ours (or changing): msync is always right */
		}
		e = end < r->end ? end : r->end;
		if (r->cpu_persist != NULL) {
			r->cpu_persist((const void *)a, e - a);
			if (r->mode == SYNCMAP_MODE_KERNEL)
				sm_engine_persisted(r, e);
		} else {
			rc = msync_range(a, e);
		}
		sm_region_put(r);
		sm_changes_release();
		if (rc != 0)
			return -1;
		a = e;
	}
	return 0;
}
