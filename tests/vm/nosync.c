/* SPDX-License-Identifier: MIT */
/* nosync.c -- the crash controls' stand-in for libsyncmap: plain mmap, persisted by CPU cache flushes only
 *
 * Linked instead of the library into pmlog-crash-plain and logd-plain, the
 * same pmlog code then does what a program told "MAP_SYNC granted" does on
 * a mapping that has no such guarantee: it stores through a plain
 * MAP_SHARED mapping and flushes cache lines (libpmem2, as KERNEL mode
 * does), with no msync and no sync of the blocks the stores allocated.
 * After a crash it must lose records, on DAX (the allocations were never
 * committed) and on page cache (the data never left it); an application
 * crash test whose control loses nothing could not have failed.
 *
 * No libsyncmap symbol may be left undefined here: a call this file lacks
 * is a link error, never a silent call into the real library.
 */
#include "syncmap.h"

#include <libpmem2.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pmem2_persist_fn persist_fn;

/* libpmem2 gives its persist function through a map; one over an anonymous
 * page serves every mapping (the function depends on the CPU only). */
static void init_persist(void)
{
	struct pmem2_source *src = NULL;
	struct pmem2_map *map = NULL;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	if (pmem2_source_from_anon(&src, pg) == 0 &&
	    pmem2_map_from_existing(&map, src, p, pg, PMEM2_GRANULARITY_CACHE_LINE) == 0)
		persist_fn = pmem2_get_persist_fn(map);
	if (src != NULL)
		pmem2_source_delete(&src);
}

void *syncmap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

int syncmap_munmap(void *addr, size_t len)
{
	return munmap(addr, len);
}

void *syncmap_mremap(void *old_addr, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	return mremap(old_addr, old_len, new_len, flags, new_addr);
}

enum syncmap_mode syncmap_mode(const void *addr)
{
	(void)addr;
	return SYNCMAP_MODE_NONE;
}

/* The whole point of the control: cache lines flushed, nothing synced. */
int syncmap_persist(const void *addr, size_t len)
{
	pthread_once(&once, init_persist);
	if (persist_fn != NULL)
		persist_fn(addr, len);
	return 0;
}

/* Plain mmap readies nothing: the first store allocates, unsynced. */
int syncmap_prepare(void *addr, size_t len)
{
	(void)addr;
	(void)len;
	return 0;
}

void syncmap_stats_get(struct syncmap_stats *out)
{
	memset(out, 0, sizeof(*out));
}

const char *syncmap_version_string(void)
{
	return "none (plain mmap control)";
}
