/* SPDX-License-Identifier: MIT */
/* durable.c -- making a grain safe: write-touch through the alias, msync, then upgrade
 *
 * Why this order (measured on DAX, see docs/design.md): fallocate + fdatasync is not
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
#include <stdlib.h>
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

/* The library's own description of r's file, if the number is still the
 * library's (region.c), or -1: loaded and checked once per use. */
static int file_fd(const struct sm_region *r)
{
	return sm_file_lfd(r->file);
}

/*
 * The user address where the file's last page ends, clipped to r; and the
 * check that fd still names r's file.  region.c's check of the number and
 * this fstat are two system calls: a number the program closes and reopens
 * to another file in between shows here as another device or inode, EBADF,
 * before anything touched the other file.  (The number changing between
 * this check and the fallocate of reserve() is not covered: a hole-filling
 * allocation in the other file, nothing written.)
 */
static int eof_limit(const struct sm_region *r, int fd, uintptr_t *limit)
{
	struct stat st;
	uint64_t end;

	if (fstat(fd, &st) != 0)
		return errno;
	if (st.st_dev != r->file->dev || st.st_ino != r->file->ino)
		return EBADF;
	end = ((uint64_t)st.st_size + sm_cfg.page - 1) & ~(uint64_t)(sm_cfg.page - 1);
	if (end <= (uint64_t)r->off)
		*limit = r->start;
	else if (end - (uint64_t)r->off >= r->end - r->start)
		*limit = r->end;
	else
		*limit = r->start + (uintptr_t)(end - (uint64_t)r->off);
	return 0;
}

/* Is the page at user address a past EOF?  Asked through the alias, which
 * holds the file without a descriptor: a read fault past EOF gets SIGBUS
 * from the kernel (filemap_fault and the DAX fault both check i_size),
 * which MADV_POPULATE_READ reports as EFAULT; before EOF it succeeds, and a
 * read allocates nothing (a hole reads as page-cache zeroes or the DAX zero
 * page). */
static int past_eof(const struct sm_region *r, uintptr_t a)
{
	while (madvise(r->alias + (a - r->start), sm_cfg.page, MADV_POPULATE_READ) != 0)
		if (errno != EINTR)
			return 1;
	return 0;
}

/*
 * The same limit when the program has closed the library's descriptors
 * (closefrom): known only as far as [ws, we), the pages a fault there may
 * touch and upgrade.  If its last page is before EOF, so is all of it, and
 * we is a limit that is safe to use (nothing past it is touched, marked or
 * upgraded); otherwise a binary search finds EOF, the first page past it.
 * One system call per fault in the common case, log2(pages) at EOF.
 */
static void eof_probe(const struct sm_region *r, uintptr_t ws, uintptr_t we, uintptr_t *limit)
{
	uintptr_t lo = ws, hi = we - sm_cfg.page;

	if (!past_eof(r, hi)) {
		*limit = we;
		return;
	}
	/* [ws, lo) is before EOF, hi past it. */
	while (lo < hi) {
		uintptr_t mid = lo + ((hi - lo) / 2 & ~(uintptr_t)(sm_cfg.page - 1));

		if (past_eof(r, mid))
			hi = mid;
		else
			lo = mid + sm_cfg.page;
	}
	*limit = lo;
}

/* The kernel reports every failed fault of a populate as EFAULT; tell the
 * caller the likely cause (EIO without a descriptor to ask the filesystem
 * with). */
static int populate_error(int fd)
{
	struct statfs sf;

	if (fd >= 0 && fstatfs(fd, &sf) == 0 && sf.f_bavail == 0)
		return ENOSPC;
	return EIO;
}

static int write_touch(int fd, char *p, size_t n)
{
	if (have_populate_write) {
		while (madvise(p, n, MADV_POPULATE_WRITE) != 0) {
			if (errno == EINTR)
				continue;
			return errno == EFAULT ? populate_error(fd) : errno;
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
 * asked again; nor without the library's descriptor (fd -1: closed by the
 * program).
 */
static int reserve(struct sm_region *r, int fd, uintptr_t s, size_t n)
{
	off_t off = r->off + (off_t)(s - r->start);

	if (fd < 0 || n <= sm_cfg.page || !sm_cfg.reserve ||
	    atomic_load_explicit(&r->file->no_reserve, memory_order_relaxed))
		return 0;
	while (fallocate(fd, FALLOC_FL_KEEP_SIZE, off, (off_t)n) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EOPNOTSUPP || errno == ENOSYS)
			atomic_store_explicit(&r->file->no_reserve, 1, memory_order_relaxed);
		return errno;
	}
	return 0;
}

static int make_durable(struct sm_region *r, int fd, uintptr_t s, uintptr_t e)
{
	char *a = r->alias + (s - r->start);
	size_t n = e - s;
	int hint = reserve(r, fd, s, n);
	int err = write_touch(fd, a, n);

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
	uintptr_t limit = r->end, ws, we;
	int fd = file_fd(r), err = 0;

	/* With the descriptor, EOF from fstat.  Without it (a program may
	 * close any descriptor it did not open: closefrom; the library keeps
	 * working), from the alias, within the grains of [s, e).  Before 5.14
	 * there is no MADV_POPULATE_READ to ask with, and the store that would
	 * find EOF is itself a SIGBUS: refused, which the fault turns into
	 * SIGBUS. */
	if (fd >= 0)
		err = eof_limit(r, fd, &limit);
	else if (!have_populate_write)
		err = EBADF;
	else
		eof_probe(r, sm_grain_start(r, sm_grain_of(r, s)), sm_grain_end(r, sm_grain_of(r, e - 1)),
			  &limit);
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
		err = make_durable(r, fd, sm_grain_start(r, g), re);
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

/* What widening may make durable for one fault, beyond the grains it
 * already has: it allocates (and syncs, inside the signal handler) all of
 * it.  Without a bound, the last candidate below covers the mapping up to
 * EOF, every block of a large sparse file, which can fill the disk.  At
 * 64 MiB a fault at the VMA limit costs at most about a quarter of a second
 * on ext4 over a RAM loop device (the unbounded 128 MiB took 0.5 s in
 * durable.widening_is_bounded_on_a_large_sparse_file). */
#define WIDEN_MAX ((uint64_t)64 << 20)

/* Bytes of [s, e) whose grains are not durable yet (a grain clipped by the
 * mapping or EOF never has its bit, and counts whole: an overestimate). */
static uint64_t not_durable(struct sm_region *r, uintptr_t s, uintptr_t e)
{
	uint64_t g = sm_grain_of(r, s), last = sm_grain_of(r, e - 1), n = 0;

	while (g <= last) {
		uint64_t h;

		g = sm_bits_next(r->bits, g, last + 1, 0);
		if (g > last)
			break;
		h = sm_bits_next(r->bits, g, last + 1, 1);
		n += (h - g) * r->grain;
		g = h;
	}
	return n;
}

/*
 * mprotect failed with ENOMEM: splitting a read-only VMA around the grain
 * would pass vm.max_map_count.  An upgrade that extends a writable neighbour
 * VMA, or covers a read-only VMA whole, splits nothing.  So make the gap to
 * the nearest durable neighbour durable too and upgrade across it; then the
 * gaps on both sides; then the whole region.  Wider, never less safe; and
 * never more than WIDEN_MAX made durable: past it, ENOMEM (SIGBUS for the
 * writer, as for any grain that cannot be made durable).
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
		int err;

		if (not_durable(r, cs, ce) > WIDEN_MAX)
			continue;
		err = sm_ready(r, cs, ce, 0);
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

/* A run of written bytes [lo, hi) of the file. */
struct written {
	uint64_t lo, hi;
};

/*
 * The written extents over r's file range, as runs (contiguous extents
 * merged), in an array from scratch_alloc (its size in *out_bytes): their
 * number, or 0 (none, or no memory).
 * Unwritten, delalloc, shared, inline and encoded extents are not written
 * blocks of the file's own.
 */
/* Scratch memory for adoption, from mmap rather than malloc: adoption runs
 * on the program's threads, and a thread that forks while another is here
 * leaves the child neither a held allocator lock (libasan's allocator takes
 * none around fork: the child's next malloc can block forever) nor, under
 * Valgrind, a heap block that looks leaked.  The user's mapping exists by
 * now, so this cannot land in a MAP_FIXED target. */
#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer sees only the mmap and munmap it intercepts: through raw
 * system calls, two threads' buffers at a reused address look like one
 * buffer written by both.  TSan builds are never preloaded, so libc's are
 * safe to call here. */
#define scratch_mmap mmap
#define scratch_munmap munmap
#else
#define scratch_mmap sm_sys_mmap
#define scratch_munmap sm_sys_munmap
#endif

static void *scratch_alloc(size_t bytes)
{
	void *p = scratch_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void scratch_free(void *p, size_t bytes)
{
	if (p != NULL)
		scratch_munmap(p, bytes);
}

static size_t written_runs(const struct sm_region *r, int fd, struct written **out, size_t *out_bytes)
{
	const uint32_t bad = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNWRITTEN |
			     FIEMAP_EXTENT_SHARED | FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_INLINE |
			     FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_TAIL;
	/* struct fiemap ends in a flexible array: room for the batch after it,
	 * 14 KiB, off the stack (this runs on the program's thread, whose stack
	 * may be small). */
	const size_t qbytes = sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent);
	struct fiemap *q = scratch_alloc(qbytes);
	uint64_t at = (uint64_t)r->off, end = at + (r->end - r->start);
	struct written *w = NULL;
	size_t n = 0, cap = 0, seen = 0;
	int last = 0;

	while (q != NULL && !last && at < end && seen < FIEMAP_MAX_EXTENTS) {
		memset(q, 0, sizeof(*q));
		q->fm_start = at;
		q->fm_length = end - at;
		q->fm_extent_count = FIEMAP_BATCH;
		/* FIEMAP_FLAG_SYNC writes the file's dirty data back first, so that
		 * what write(2) left delayed shows as the written extent it
		 * becomes.  It commits nothing (the sync after does), and takes no
		 * error from any description: it reads the mapping's legacy
		 * AS_EIO bit, not errseq_t, and fails instead (nothing adopted). */
		q->fm_flags = seen == 0 ? FIEMAP_FLAG_SYNC : 0;
		if (ioctl(fd, FS_IOC_FIEMAP, q) != 0 || q->fm_mapped_extents == 0)
			break;
		for (uint32_t i = 0; i < q->fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &q->fm_extents[i];
			uint64_t lo = x->fe_logical > (uint64_t)r->off ? x->fe_logical : (uint64_t)r->off;
			uint64_t hi = x->fe_logical + x->fe_length < end ? x->fe_logical + x->fe_length : end;

			last |= (x->fe_flags & FIEMAP_EXTENT_LAST) != 0;
			at = x->fe_logical + x->fe_length;
			if ((x->fe_flags & bad) || lo >= hi)
				continue;
			if (n > 0 && w[n - 1].hi == lo) {
				w[n - 1].hi = hi;
				continue;
			}
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 256;
				struct written *g = scratch_alloc(ncap * sizeof(*w));

				if (g == NULL) {
					scratch_free(w, cap * sizeof(*w));
					scratch_free(q, qbytes);
					return 0;
				}
				if (n > 0)
					memcpy(g, w, n * sizeof(*w));
				scratch_free(w, cap * sizeof(*w));
				w = g;
				cap = ncap;
			}
			w[n++] = (struct written){lo, hi};
		}
		seen += q->fm_mapped_extents;
	}
	scratch_free(q, qbytes);
	if (n == 0) {
		scratch_free(w, cap * sizeof(*w));
		w = NULL;
		cap = 0;
	}
	*out = w;
	*out_bytes = cap * sizeof(*w);
	return n;
}

size_t sm_adopt_written(struct sm_region *r)
{
	struct written *w;
	uintptr_t limit;
	size_t n, wbytes, adopted = 0;
	int fd = file_fd(r);

	if (r->file->cow || fd < 0 || eof_limit(r, fd, &limit) != 0 || limit == r->start)
		return 0;
	/* A sync through the program's own open file description would take
	 * the writeback errors its fsync is to report: without a description
	 * of the library's own (region.c), nothing is adopted. */
	if (fd == atomic_load_explicit(&r->file->fd, memory_order_relaxed))
		return 0;
	/* Look first, then commit, then trust only what was seen before the
	 * commit.  The other way round, a block allocated between the sync and
	 * FIEMAP (a pwrite into a hole written back, a plain mapping's fault,
	 * another region's grain between its touch and its msync) shows as a
	 * written extent that no commit covers yet, and would be adopted. */
	n = written_runs(r, fd, &w, &wbytes);
	if (n == 0)
		return 0; /* nothing to adopt: no sync either */
	if (sm_test_adopt_hook != NULL)
		sm_test_adopt_hook(r);
	/* The sync commits the allocation of every extent seen above (fdatasync
	 * commits the journal transaction of the inode's last allocation).  A
	 * failed sync adopts nothing and the map goes on: mmap(2) reports no
	 * writeback error, the program's fsync still will (the error was
	 * reported to the library's description only), and every grain then
	 * faults and is synced on its own, so an error that persists reaches
	 * the writer as SIGBUS. */
	if (SM_MUTANT_SKIP(adopt_without_fdatasync, fdatasync(fd)) != 0) {
		scratch_free(w, wbytes);
		return 0;
	}
	SM_STAT_ADD(syncs, 1);
	/* The whole grains inside each run; mark_whole_grains keeps those in
	 * the mapping and before EOF. */
	for (size_t i = 0; i < n; i++)
		mark_whole_grains(r, (w[i].lo + r->grain - 1) / r->grain, w[i].hi / r->grain, limit);
	scratch_free(w, wbytes);
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
