/* SPDX-License-Identifier: MIT */
/* durable.h -- making a grain's blocks allocated and durable, then writable (private) */
#ifndef SM_DURABLE_H
#define SM_DURABLE_H

#include "region.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>

/* Probe the kernel once (MADV_POPULATE_WRITE); called by sm_init(). */
void sm_durable_init(void);

/* Grain index of user address a in FAULT region r (grains follow file offsets). */
static inline uint64_t sm_grain_of(const struct sm_region *r, uintptr_t a)
{
	return ((uint64_t)r->off + (a - r->start)) / r->grain;
}

/* User range of grain g, clipped to r. */
static inline uintptr_t sm_grain_start(const struct sm_region *r, uint64_t g)
{
	uint64_t fo = g * r->grain;

	return fo <= (uint64_t)r->off ? r->start : r->start + (uintptr_t)(fo - (uint64_t)r->off);
}

static inline uintptr_t sm_grain_end(const struct sm_region *r, uint64_t g)
{
	uint64_t fo = (g + 1) * r->grain;
	uintptr_t e = r->start + (uintptr_t)(fo - (uint64_t)r->off);

	return e < r->end ? e : r->end;
}

/*
 * sm_ready -- make every grain holding [s, e) (page aligned, inside r) durable:
 * blocks allocated and written, allocation committed.  If prot has PROT_WRITE,
 * then give those grains prot, widening the range on ENOMEM (vm.max_map_count).
 * Only grains that were made durable are ever made writable.
 * Returns 0 or an errno value: ENXIO if s is at or past EOF (nothing done),
 * ENOSPC/EDQUOT/EIO if a grain could not be made durable (it stays read-only),
 * ENOMEM if no widening helped within its bound (durable.c: WIDEN_MAX).  Async-signal-safe; the caller holds a ref on r.
 */
int sm_ready(struct sm_region *r, uintptr_t s, uintptr_t e, int prot);

/*
 * sm_adopt_written -- grains whose blocks are already allocated, written and
 * committed need no sync: mark them durable and give them r->prot now, so a
 * preallocated file takes no fault at all.  FIEMAP first, then one fdatasync
 * makes durable what it reported (and only that is adopted); only written
 * extents count (not unwritten, delalloc, shared, or on a copy-on-write
 * filesystem), and a file without any is not synced.  The sync goes through
 * the library's own open file description; without one (region.c) nothing
 * is adopted, and a failed sync adopts nothing (errno set): the program's
 * fsync reports the error, the grains fault as usual.  Called on a new region
 * before it is published.  Returns the number of bytes adopted.
 */
size_t sm_adopt_written(struct sm_region *r);

/* Give r's durable grains within [s, e) protection prot; the rest get prot
 * without PROT_WRITE.  Used when the requested protection changes. */
int sm_reprotect(struct sm_region *r, uintptr_t s, uintptr_t e, int prot);

/* The protection of a FAULT mapping's grains that are not durable yet: prot
 * without PROT_WRITE, plus PROT_READ (which x86 implies for PROT_WRITE). */
static inline int sm_prot_readonly(int prot)
{
	return prot & PROT_WRITE ? (prot & ~PROT_WRITE) | PROT_READ : prot;
}

/* Test hook: defined by a test program, never by the library (a weak
 * hidden reference: null in the shared libraries, whatever a program
 * defines, and in any build that links no test).  sm_adopt_written
 * calls it between reading the file's extents and the sync that commits them. */
void sm_test_adopt_hook(struct sm_region *r) __attribute__((weak, visibility("hidden")));

/* Fault injection for tests: while > 0 counts down at every sync; the sync that
 * takes it to 0 fails with sm_inject_errno instead of running. */
extern _Atomic long sm_inject_countdown;
extern int sm_inject_errno;

#endif
