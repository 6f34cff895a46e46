/* durable.c -- making a grain safe: write-touch through the alias, msync, then upgrade
 *
 * Why this order (measured on DAX, see DESIGN.md): fallocate + fdatasync is not
 * enough, ext4 leaves the extents unwritten and the later write fault converts
 * them with metadata nobody syncs.  A write fault on a second, writable mapping
 * of the same range (the alias) allocates written blocks; msync(MS_SYNC) of
 * that range is vfs_fsync_range(datasync=1): it writes back the range's data
 * and commits the journal if the allocation is dirty.  Only then may the
 * user's mapping become writable.
 *
 * Everything here runs in the SIGSEGV handler: system calls and atomics only.
 */
#include "durable.h"

#include "config.h"
#include "sys.h"
#include "stats.h"
#include "testpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

_Atomic long sm_inject_countdown;
int sm_inject_errno = EIO;
static int have_populate_write;

void sm_durable_init(void)
{
	size_t pg = sm_cfg.page;
	void *p = sm_sys_mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p != MAP_FAILED) {
		have_populate_write = madvise(p, pg, MADV_POPULATE_WRITE) == 0;
		sm_sys_munmap(p, pg);
	}
}

/* The user address where the file's last page ends, clipped to r. */
static int eof_limit(const struct sm_region *r, uintptr_t *limit)
{
	struct stat st;
	uint64_t end;

	if (fstat(r->file->fd, &st) != 0)
		return errno;
	end = ((uint64_t)st.st_size + sm_cfg.page - 1) & ~(uint64_t)(sm_cfg.page - 1);
	if (end <= (uint64_t)r->off)
		*limit = r->start;
	else if (end - (uint64_t)r->off >= r->end - r->start)
		*limit = r->end;
	else
		*limit = r->start + (uintptr_t)(end - (uint64_t)r->off);
	return 0;
}

/* The kernel reports every failed fault of a populate as EFAULT; tell the
 * caller the likely cause. */
static int populate_error(const struct sm_region *r)
{
	struct statfs sf;

	if (fstatfs(r->file->fd, &sf) == 0 && sf.f_bavail == 0)
		return ENOSPC;
	return EIO;
}

static int write_touch(const struct sm_region *r, char *p, size_t n)
{
	if (have_populate_write) {
		while (madvise(p, n, MADV_POPULATE_WRITE) != 0) {
			if (errno == EINTR)
				continue;
			return errno == EFAULT ? populate_error(r) : errno;
		}
		return 0;
	}
	/* Before 5.14: a store that keeps the content.  An allocation failure
	 * here raises SIGBUS in this thread, which is what the caller would
	 * raise anyway. */
	for (size_t i = 0; i < n; i += sm_cfg.page)
		__atomic_fetch_add((int *)(p + i), 0, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Reserve the blocks of a run of several pages in one call before the touch.
 * Mode 0 with KEEP_SIZE allocates holes only (unwritten extents), never
 * changes data or the size, so it is safe whatever another writer does.  The
 * touch still converts page by page, but the allocation is one extent
 * instead of one per page: in the DAX guest, first writes with 64 KiB grains
 * cost 1.1-1.5x as much without it (bench/faults, the noreserve column of
 * docs/performance.md).  On one page it only adds a system call.
 *
 * Only a hint: the touch decides.  xfs reserves space for the whole range
 * before it looks at what is already allocated, so a nearly full xfs can
 * refuse to fallocate a grain whose touch needs no space at all.  Its errno
 * is returned for the touch to report if the touch fails too (EDQUOT is
 * clearer than the touch's EFAULT).  A file that does not support it is not
 * asked again.
 */
static int reserve(struct sm_region *r, uintptr_t s, size_t n)
{
	off_t off = r->off + (off_t)(s - r->start);

	if (n <= sm_cfg.page || !sm_cfg.reserve ||
	    atomic_load_explicit(&r->file->no_reserve, memory_order_relaxed))
		return 0;
	while (fallocate(r->file->fd, FALLOC_FL_KEEP_SIZE, off, (off_t)n) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EOPNOTSUPP || errno == ENOSYS)
			atomic_store_explicit(&r->file->no_reserve, 1, memory_order_relaxed);
		return errno;
	}
	return 0;
}

static int make_durable(struct sm_region *r, uintptr_t s, uintptr_t e)
{
	char *a = r->alias + (s - r->start);
	size_t n = e - s;
	int hint = reserve(r, s, n);
	int err = write_touch(r, a, n);

	if (err != 0)
		return hint == ENOSPC || hint == EDQUOT ? hint : err;
	SM_MUTANT_DO(mprotect_before_msync, sm_sys_mprotect((void *)s, n, r->prot));
	SM_MUTANT_DO(engine_ready_early, sm_mutant_ready_early(r, s, e));
	SM_TESTPOINT(SM_TP_TOUCH);
	SM_MUTANT_DO(skip_grain_msync, return 0);
	if (atomic_load_explicit(&sm_inject_countdown, memory_order_relaxed) > 0 &&
	    atomic_fetch_sub(&sm_inject_countdown, 1) == 1)
		return sm_inject_errno;
	if (msync(a, n, MS_SYNC) != 0)
		return errno;
	SM_TESTPOINT(SM_TP_MSYNC);
	SM_STAT_ADD(syncs, 1);
	SM_STAT_ADD(bytes_prepared, n);
	return 0;
}

/* A grain's bit means all of it is durable: only grains that lie wholly in the
 * mapping and before EOF get one. */
static void mark_whole_grains(struct sm_region *r, uint64_t g, uint64_t h, uintptr_t limit)
{
	for (; g < h; g++) {
		uint64_t fs = g * r->grain;

		if (fs >= (uint64_t)r->off && sm_grain_end(r, g) - sm_grain_start(r, g) == r->grain &&
		    sm_grain_end(r, g) <= limit)
			sm_bit_set(r->bits, g);
	}
}

static int widen(struct sm_region *r, uintptr_t ws, uintptr_t we, uintptr_t limit, int prot);

int sm_ready(struct sm_region *r, uintptr_t s, uintptr_t e, int prot)
{
	uint64_t g, g_first, g_last;
	uintptr_t limit = 0, ws, we;
	int err = eof_limit(r, &limit);

	if (err != 0)
		return err;
	if (s >= limit)
		return ENXIO;
	if (e > limit)
		e = limit;
	g_first = sm_grain_of(r, s);
	g_last = sm_grain_of(r, e - 1);
	ws = sm_grain_start(r, g_first);
	we = sm_grain_end(r, g_last) < limit ? sm_grain_end(r, g_last) : limit;
	/* One touch and one msync per run of grains not yet durable. */
	for (g = g_first; g <= g_last;) {
		uint64_t h;
		uintptr_t re;

		g = sm_bits_next(r->bits, g, g_last + 1, 0);
		if (g > g_last)
			break;
		h = sm_bits_next(r->bits, g, g_last + 1, 1);
		re = sm_grain_end(r, h - 1) < limit ? sm_grain_end(r, h - 1) : limit;
		err = make_durable(r, sm_grain_start(r, g), re);
		if (err != 0)
			return err;
		mark_whole_grains(r, g, h, limit);
		g = h;
	}
	if (!(prot & PROT_WRITE))
		return 0;
	if (SM_TESTPOINT_RC(SM_TP_MPROTECT, sm_sys_mprotect((void *)ws, we - ws, prot)) == 0)
		return 0;
	if (errno != ENOMEM)
		return errno;
	return widen(r, ws, we, limit, prot);
}

/*
 * mprotect failed with ENOMEM: splitting a read-only VMA around the grain
 * would pass vm.max_map_count.  An upgrade that extends a writable neighbour
 * VMA, or covers a read-only VMA whole, splits nothing.  So make the gap to
 * the nearest durable neighbour durable too and upgrade across it; then the
 * gaps on both sides; then the whole region.  Wider, never less safe.
 */
static int widen(struct sm_region *r, uintptr_t ws, uintptr_t we, uintptr_t limit, int prot)
{
	uint64_t glo = sm_grain_of(r, r->start), ghi = sm_grain_of(r, limit - 1);
	uint64_t g1 = sm_grain_of(r, ws), g2 = sm_grain_of(r, we - 1);
	uint64_t L = g1 > glo ? sm_bits_prev_set(r->bits, g1 - 1, glo) : UINT64_MAX;
	uint64_t R = g2 < ghi ? sm_bits_next(r->bits, g2 + 1, ghi + 1, 1) : ghi + 1;
	uintptr_t cand[3][2];
	int n = 0;

	if (L != UINT64_MAX && (R > ghi || g1 - L <= R - g2)) {
		cand[n][0] = sm_grain_start(r, L);
		cand[n++][1] = we;
	} else if (R <= ghi) {
		cand[n][0] = ws;
		cand[n++][1] = sm_grain_end(r, R);
	}
	if (L != UINT64_MAX && R <= ghi) {
		cand[n][0] = sm_grain_start(r, L);
		cand[n++][1] = sm_grain_end(r, R);
	}
	cand[n][0] = r->start;
	cand[n++][1] = limit;
	for (int i = 0; i < n; i++) {
		uintptr_t cs = cand[i][0], ce = cand[i][1] < limit ? cand[i][1] : limit;
		int err = sm_ready(r, cs, ce, 0);

		if (err != 0)
			return err;
		if (sm_sys_mprotect((void *)cs, ce - cs, prot) == 0)
			return 0;
		if (errno != ENOMEM)
			return errno;
	}
	return ENOMEM;
}

int sm_reprotect(struct sm_region *r, uintptr_t s, uintptr_t e, int prot)
{
	uint64_t g, h, g_last;

	if (sm_sys_mprotect((void *)s, e - s, sm_prot_readonly(prot)) != 0)
		return errno;
	if (!(prot & PROT_WRITE))
		return 0;
	g_last = sm_grain_of(r, e - 1);
	for (g = sm_grain_of(r, s); g <= g_last; g = h) {
		uintptr_t rs, re;

		g = sm_bits_next(r->bits, g, g_last + 1, 1);
		if (g > g_last)
			break;
		h = sm_bits_next(r->bits, g, g_last + 1, 0);
		rs = sm_grain_start(r, g) > s ? sm_grain_start(r, g) : s;
		re = sm_grain_end(r, h - 1) < e ? sm_grain_end(r, h - 1) : e;
		if (sm_sys_mprotect((void *)rs, re - rs, prot) == 0)
			continue;
		if (errno != ENOMEM)
			return errno;
		/* At the VMA limit: let sm_ready widen (the run is durable already). */
		int err = sm_ready(r, rs, re, prot);

		if (err != 0 && err != ENXIO)
			return err;
	}
	return 0;
}

/* FIEMAP is read in batches; a file fragmented past the cap is adopted only
 * in part (its other grains fault as usual), so mapping stays cheap. */
#define FIEMAP_BATCH 256
#define FIEMAP_MAX_EXTENTS 65536

size_t sm_adopt_written(struct sm_region *r)
{
	const uint32_t bad = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNWRITTEN |
			     FIEMAP_EXTENT_SHARED | FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_INLINE |
			     FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_TAIL;
	/* struct fiemap ends in a flexible array: room for the batch after it. */
	union {
		struct fiemap fm;
		char room[sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent)];
	} q;
	uint64_t at = (uint64_t)r->off, end = at + (r->end - r->start);
	uintptr_t limit;
	size_t seen = 0, adopted = 0;
	int last = 0, any = 0;

	if (r->file->cow || eof_limit(r, &limit) != 0 || limit == r->start)
		return 0;
	/* Written extents whose allocation is not committed yet would be
	 * trusted too early: commit first, then look. */
	if (SM_MUTANT_SKIP(adopt_without_fdatasync, fdatasync(r->file->fd)) != 0)
		return 0;
	SM_STAT_ADD(syncs, 1);
	while (!last && at < end && seen < FIEMAP_MAX_EXTENTS) {
		memset(&q.fm, 0, sizeof(q.fm));
		q.fm.fm_start = at;
		q.fm.fm_length = end - at;
		q.fm.fm_extent_count = FIEMAP_BATCH;
		if (ioctl(r->file->fd, FS_IOC_FIEMAP, &q.fm) != 0 || q.fm.fm_mapped_extents == 0)
			break;
		for (uint32_t i = 0; i < q.fm.fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &q.fm.fm_extents[i];
			uint64_t lo = x->fe_logical > (uint64_t)r->off ? x->fe_logical : (uint64_t)r->off;
			uint64_t hi = x->fe_logical + x->fe_length < end ? x->fe_logical + x->fe_length : end;

			/* The whole grains inside the extent; mark_whole_grains
			 * keeps those in the mapping and before EOF. */
			if (!(x->fe_flags & bad) && lo < hi) {
				mark_whole_grains(r, (lo + r->grain - 1) / r->grain, hi / r->grain, limit);
				any = 1;
			}
			last |= (x->fe_flags & FIEMAP_EXTENT_LAST) != 0;
			at = x->fe_logical + x->fe_length;
		}
		seen += q.fm.fm_mapped_extents;
	}
	if (!any)
		return 0;
	for (uint64_t g = sm_grain_of(r, r->start), last_g = sm_grain_of(r, r->end - 1), h; g <= last_g;
	     g = h) {
		g = sm_bits_next(r->bits, g, last_g + 1, 1);
		if (g > last_g)
			break;
		h = sm_bits_next(r->bits, g, last_g + 1, 0);
		adopted += (h - g) * r->grain;
	}
	if (adopted != 0 && sm_reprotect(r, r->start, r->end, r->prot) != 0)
		return 0; /* left read-only: the grains fault, cheaply, as their bits are set */
	return adopted;
}
