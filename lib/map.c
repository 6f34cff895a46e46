/* map.c -- the mmap family: choosing a mapping's mode and keeping the table right */
#include "config.h"
#include "durable.h"
#include "engine.h"
#include "fault.h"
#include "flush.h"
#include "map.h"
#include "region.h"
#include "stats.h"
#include "sys.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#define SM_MAP_TYPE 0x0f

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static sigset_t fork_mask; /* the forking thread's, while the chain lock is held */

/* Fork while another thread holds a lock would leave the child with it taken
 * forever: take them all around fork. */
static void atfork_prepare(void)
{
	sm_table_lock();
	sm_fault_lock_chain(&fork_mask);
}

static void atfork_parent(void)
{
	sm_fault_unlock_chain(&fork_mask);
	sm_table_unlock();
}

static void atfork_child(void)
{
	sm_fault_unlock_chain(&fork_mask);
	sm_table_after_fork_child();
	sm_engine_after_fork_child();
	sm_table_unlock();
}

static void init(void)
{
	sm_config_load();
	sm_durable_init();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	if (sm_cfg.stats_at_exit)
		atexit(sm_stats_print);
	atexit(sm_engine_shutdown);
}

void sm_init(void)
{
	pthread_once(&init_once, init);
}

static size_t page_round(size_t len)
{
	return (len + sm_cfg.page - 1) & ~(sm_cfg.page - 1);
}

/* Filesystems whose "files" are not stored anywhere, where a shared writable
 * mapping may even be device memory (sysfs PCI resources): never taken. */
static int pseudo_fs(unsigned long type)
{
	switch (type) {
	case HUGETLBFS_MAGIC: /* pages too large for grains, and no disk */
	case SYSFS_MAGIC:
	case PROC_SUPER_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
	case BPF_FS_MAGIC:
	case CGROUP2_SUPER_MAGIC: return 1;
	default: return 0;
	}
}

/* Does the library take this mapping over?  A shared, writable mapping of a
 * regular file on a filesystem that stores it (tmpfs is taken: nothing there
 * survives a crash, but the mapping behaves as everywhere else). */
static int takes_over(int prot, int flags, int fd)
{
	int type = flags & SM_MAP_TYPE;
	struct stat st;
	struct statfs sf;

	if ((flags & MAP_ANONYMOUS) || !(prot & PROT_WRITE))
		return 0;
	if (type != MAP_SHARED && type != MAP_SHARED_VALIDATE)
		return 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return 0; /* mmap(2) gives its own error, or maps the device */
	if (fstatfs(fd, &sf) == 0 && pseudo_fs((unsigned long)sf.f_type))
		return 0;
	return 1;
}

/* The kernel's mmap with MAP_FIXED's replacement reflected in the table:
 * for mappings the library does not take (and the shim's). */
void *sm_map_plain(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct sm_cut cut;
	void *p;
	int err;

	if (!(flags & MAP_FIXED) || !sm_regions_any((uintptr_t)addr, (uintptr_t)addr + page_round(len)))
		return sm_sys_mmap(addr, len, prot, flags, fd, off);
	sm_table_lock();
	if (sm_cut_begin(&cut, (uintptr_t)addr, (uintptr_t)addr + page_round(len)) != 0) {
		sm_table_unlock();
		return MAP_FAILED;
	}
	p = sm_sys_mmap(addr, len, prot, flags, fd, off);
	err = errno;
	if (p == MAP_FAILED)
		sm_cut_abort(&cut);
	else
		sm_cut_commit(&cut, 1, 0, NULL);
	sm_table_unlock();
	errno = err;
	return p;
}

static struct sm_region *region_alloc(void *p, size_t len, int mode, int prot, off_t off)
{
	struct sm_region *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->start = (uintptr_t)p;
	r->end = r->start + page_round(len);
	r->off = off;
	r->mode = mode;
	r->prot = prot;
	r->grain = sm_cfg.grain;
	return r;
}

/* Publish a new region; with a cut, in the same table swap that drops the
 * regions it replaced (a fault never finds neither).  Table lock held. */
static int publish_region(struct sm_region *r, struct sm_cut *cut)
{
	if (cut == NULL)
		return sm_region_insert(r);
	sm_cut_commit(cut, 1, 0, r);
	return 0;
}

/* KERNEL mode: the MAP_SYNC mapping exists (replacing what cut covers, if
 * any); record it for persist and mode.  Table lock held; the cut is
 * consumed either way.  0, or -1 (ENOMEM): the caller unmaps p. */
static int register_kernel(void *p, size_t len, int prot, off_t off, struct sm_cut *cut)
{
	struct sm_region *r = region_alloc(p, len, SYNCMAP_MODE_KERNEL, prot, off);

	if (r == NULL) {
		if (cut != NULL)
			sm_cut_commit(cut, 1, 0, NULL); /* replaced all the same */
		return -1;
	}
	r->cpu_persist = sm_cfg.flush == SM_FLUSH_MSYNC ? NULL : sm_flush_cpu_fn();
	if (publish_region(r, cut) != 0) {
		free(r);
		return -1;
	}
	if (sm_cfg.presync)
		sm_engine_start(); /* without it, the writer takes the kernel's faults itself */
	SM_STAT_ADD(maps_kernel, 1);
	return 0;
}

/* How a FAULT mapping persists: a CPU flush only where it is known to reach
 * the media, or where the user says so.  Known: a DAX file for which the
 * kernel grants MAP_SYNC (FAULT was forced), which means synchronous pmem;
 * or a DAX file on a platform with eADR.  Not page cache, and not an async
 * DAX device (virtio-pmem refuses MAP_SYNC: its host must be asked). */
static pmem2_persist_fn fault_persist(const struct sm_file *f)
{
	switch (sm_cfg.flush) {
	case SM_FLUSH_CPU: return sm_flush_cpu_fn();
	case SM_FLUSH_MSYNC: return NULL;
	default: return f->dax && f->mapsync ? sm_flush_cpu_fn() : NULL;
	}
}

/*
 * FAULT mode, table lock held: the library's writable alias, then the user's
 * mapping without PROT_WRITE.  The alias is mapped first: it is the mapping
 * that needs write access to the file, so EACCES (read-only descriptor),
 * EPERM (sealed) and the like come from it, as they would from mmap(2).
 * `cut` (may be NULL) is committed once the user's mapping has replaced it.
 */
static void *map_fault(void *addr, size_t len, int prot, int flags, int fd, off_t off, struct sm_cut *cut)
{
	size_t rlen = page_round(len);
	struct sm_region *r = region_alloc(NULL, len, SYNCMAP_MODE_FAULT, prot, off);
	void *p = MAP_FAILED;
	int err = ENOMEM;

	if (r == NULL)
		goto fail;
	r->file = sm_file_get(fd);
	if (r->file == NULL)
		goto fail_errno;
	r->bits = sm_bits_new(off, rlen, r->grain);
	if (r->bits == NULL)
		goto fail_errno;
	/* From the library's own open file description, so that the grain's
	 * msync reports writeback errors to it, not to the program's (region.c). */
	r->alias = sm_sys_mmap(NULL, rlen, PROT_READ | PROT_WRITE, MAP_SHARED, r->file->lfd, off);
	if (r->alias == MAP_FAILED) {
		r->alias = NULL;
		goto fail_errno;
	}
	/* On DAX a write-touch may take a 2 MiB fault, allocating and zeroing
	 * 2 MiB (~30 ms in the TCG guest) to ready one grain: keep the alias to
	 * page faults, so a grain costs what its own pages cost. */
	madvise(r->alias, rlen, MADV_NOHUGEPAGE);
	if (sm_fault_install() != 0)
		goto fail_errno;
	p = sm_sys_mmap(addr, len, sm_prot_readonly(prot), flags & ~MAP_SYNC, fd, off);
	if (p == MAP_FAILED)
		goto fail_errno;
	r->start = (uintptr_t)p;
	r->end = r->start + rlen;
	r->cpu_persist = fault_persist(r->file);
	/* Adopt before publishing: the region is ours alone until then. */
	SM_STAT_ADD(bytes_prepared, sm_adopt_written(r));
	if (publish_region(r, cut) != 0)
		goto fail; /* only without a cut: nothing was replaced */
	if (sm_cfg.presync)
		sm_engine_start(); /* without it, every grain is readied by its own fault */
	SM_STAT_ADD(maps_fault, 1);
	return p;
fail_errno:
	err = errno;
fail:
	if (p != MAP_FAILED)
		sm_sys_munmap(p, rlen);
	if (cut != NULL)
		sm_cut_abort(cut);
	if (r != NULL)
		sm_region_destroy(r);
	errno = err;
	return MAP_FAILED;
}

/* Does the kernel grant MAP_SYNC for this file?  Asked with a one-page
 * mapping somewhere else, never at the caller's address: a refusal in the
 * filesystem's ->mmap hook comes after the kernel cleared a MAP_FIXED target,
 * which would leave a hole where the caller's old mapping was (seen on ext4)
 * and let other mappings land in it.  1 granted, 0 refused (EOPNOTSUPP, or
 * EINVAL before 4.15), -1 with errno for what mmap(2) itself refuses. */
static int probe_map_sync(int prot, int fd, off_t off)
{
	void *p = sm_sys_mmap(NULL, sm_cfg.page, prot, MAP_SHARED_VALIDATE | MAP_SYNC, fd, off);

	if (p != MAP_FAILED) {
		sm_sys_munmap(p, sm_cfg.page);
		return 1;
	}
	return errno == EOPNOTSUPP || errno == EINVAL ? 0 : -1;
}

/* Table lock held.  KERNEL if the kernel grants MAP_SYNC (and FAULT is not
 * forced), FAULT if it refuses, the kernel's error otherwise.  The mapping at
 * the caller's address is made once, so MAP_FIXED replaces atomically, as
 * mmap(2) does: no moment where a thread finds the range unmapped. */
static void *map_syncmap(void *addr, size_t len, int prot, int flags, int fd, off_t off, struct sm_cut *cut)
{
	int granted = probe_map_sync(prot, fd, off);
	void *p;

	if (granted < 0)
		goto fail;
	if (granted && sm_cfg.mode != SM_PREF_FAULT) {
		p = sm_sys_mmap(addr, len, prot, (flags & ~SM_MAP_TYPE) | MAP_SHARED_VALIDATE | MAP_SYNC, fd,
				off);
		if (p == MAP_FAILED)
			goto fail;
		if (register_kernel(p, len, prot, off, cut) != 0) {
			sm_sys_munmap(p, len);
			errno = ENOMEM;
			return MAP_FAILED;
		}
		return p;
	}
	if (granted) {
		/* FAULT forced where MAP_SYNC works (the DAX guest tests): CPU
		 * flushes persist this file. */
		struct sm_file *f = sm_file_get(fd);

		if (f == NULL)
			goto fail;
		f->mapsync = 1;
		p = map_fault(addr, len, prot, flags, fd, off, cut);
		sm_file_put(f);
		return p;
	}
	if (sm_cfg.mode == SM_PREF_KERNEL) {
		errno = EOPNOTSUPP;
		goto fail;
	}
	return map_fault(addr, len, prot, flags, fd, off, cut);
fail:
	if (cut != NULL) {
		int err = errno;

		sm_cut_abort(cut);
		errno = err;
	}
	return MAP_FAILED;
}

void *syncmap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct sm_cut cut, *c = NULL;
	uintptr_t s = (uintptr_t)addr;
	void *p;

	sm_init();
	if ((flags & SM_MAP_TYPE) == MAP_SHARED_VALIDATE && (flags & MAP_SYNC)) {
		/* The caller asked the kernel for MAP_SYNC itself: its answer, refusal
		 * included, since the caller will persist with CPU flushes only. */
		p = sm_map_plain(addr, len, prot, flags, fd, off);
		if (p != MAP_FAILED && takes_over(prot, flags, fd)) {
			sm_table_lock();
			if (register_kernel(p, len, prot, off, NULL) != 0) {
				sm_table_unlock();
				sm_sys_munmap(p, len);
				errno = ENOMEM;
				return MAP_FAILED;
			}
			sm_table_unlock();
		}
		return p;
	}
	if (!takes_over(prot, flags, fd))
		return sm_map_plain(addr, len, prot, flags, fd, off);
	/* The kernel's checks, made first because the table is sized from them;
	 * anything else the kernel refuses, it refuses in map_syncmap. */
	if (len == 0 || (off & (off_t)(sm_cfg.page - 1)) != 0) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (page_round(len) < len) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	sm_table_lock();
	if ((flags & MAP_FIXED) && !(s & (sm_cfg.page - 1)) && s + page_round(len) > s) {
		if (sm_cut_begin(&cut, s, s + page_round(len)) != 0) {
			sm_table_unlock();
			return MAP_FAILED;
		}
		c = &cut;
	}
	p = map_syncmap(addr, len, prot, flags, fd, off, c);
	sm_table_unlock();
	return p;
}

/* munmap(2) with the table following; table lock held. */
static int unmap_locked(uintptr_t s, size_t len)
{
	struct sm_cut cut;
	int rc, err;

	if (sm_cut_begin(&cut, s, s + page_round(len)) != 0)
		return -1;
	rc = sm_sys_munmap((void *)s, len);
	err = errno;
	if (rc == 0)
		sm_cut_commit(&cut, 1, 0, NULL);
	else
		sm_cut_abort(&cut);
	errno = err;
	return rc;
}

int syncmap_munmap(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr, e;
	int rc;

	sm_init();
	e = s + page_round(len);
	if ((s & (sm_cfg.page - 1)) != 0 || len == 0 || e < s) {
		errno = EINVAL;
		return -1;
	}
	if (!sm_regions_any(s, e))
		return sm_sys_munmap(addr, len);
	sm_table_lock();
	rc = unmap_locked(s, len);
	sm_table_unlock();
	return rc;
}

/* Apply prot to [s, e) piece by piece: FAULT regions keep their not-yet-durable
 * grains read-only, everything else gets prot as asked. */
static int protect_pieces(const struct sm_cut *c, uintptr_t s, uintptr_t e, int prot)
{
	uintptr_t a = s;

	for (size_t i = 0; i < c->n; i++) {
		struct sm_region *r = c->old[i];
		uintptr_t rs = r->start > s ? r->start : s;
		uintptr_t re = r->end < e ? r->end : e;

		if (a < rs && sm_sys_mprotect((void *)a, rs - a, prot) != 0)
			return -1;
		if (r->mode == SYNCMAP_MODE_FAULT) {
			int err = sm_reprotect(r, rs, re, prot);

			if (err != 0) {
				errno = err;
				return -1;
			}
		} else if (sm_sys_mprotect((void *)rs, re - rs, prot) != 0) {
			return -1;
		}
		a = re;
	}
	if (a < e && sm_sys_mprotect((void *)a, e - a, prot) != 0)
		return -1;
	return 0;
}

int syncmap_mprotect(void *addr, size_t len, int prot)
{
	uintptr_t s = (uintptr_t)addr, e;
	struct sm_cut cut;
	int rc, err;

	sm_init();
	e = s + page_round(len);
	if ((s & (sm_cfg.page - 1)) != 0 || e < s) {
		errno = EINVAL;
		return -1;
	}
	if (len == 0 || !sm_regions_any(s, e))
		return sm_sys_mprotect(addr, len, prot);
	sm_table_lock();
	if (sm_cut_begin(&cut, s, e) != 0) {
		sm_table_unlock();
		return -1;
	}
	rc = protect_pieces(&cut, s, e, prot);
	err = errno;
	/* Recorded even after a partial failure: a piece whose kernel protection
	 * did not change keeps its durable grains, whatever is recorded. */
	sm_cut_commit(&cut, 0, prot, NULL);
	sm_table_unlock();
	errno = err;
	return rc;
}

/* Carry the durable grains recorded in bits[0..n) over to `to` (same file). */
static void carry_grains(struct sm_bits *const *bits, size_t n, struct sm_region *to)
{
	uint64_t g = sm_grain_of(to, to->start), last = sm_grain_of(to, to->end - 1);

	for (; g <= last; g++)
		for (size_t i = 0; i < n; i++)
			if (sm_bit_test(bits[i], g))
				sm_bit_set(to->bits, g);
}

/* The old range lies in FAULT regions that continue each other in address and
 * file offset, with one protection: what the kernel would see as one mapping. */
static int one_fault_mapping(struct sm_region *const *rs, size_t n, uintptr_t old, size_t old_len)
{
	if (n == 0 || rs[0]->start > old || rs[n - 1]->end < old + old_len)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (rs[i]->mode != SYNCMAP_MODE_FAULT || rs[i]->file != rs[0]->file ||
		    rs[i]->prot != rs[0]->prot)
			return 0;
		if (i > 0 && (rs[i]->start != rs[i - 1]->end ||
			      rs[i]->off != rs[i - 1]->off + (off_t)(rs[i - 1]->end - rs[i - 1]->start)))
			return 0;
	}
	return 1;
}

static int keep(struct sm_region *const *rs, size_t n, struct sm_bits ***bits)
{
	*bits = malloc(n * sizeof(**bits));
	if (*bits == NULL) {
		errno = ENOMEM;
		return -1;
	}
	rs[0]->file->nref++;
	for (size_t i = 0; i < n; i++) {
		(*bits)[i] = rs[i]->bits;
		(*bits)[i]->nref++;
	}
	return 0;
}

static void unkeep(struct sm_file *file, struct sm_bits **bits, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sm_bits_put(bits[i]);
	free(bits);
	sm_file_put(file);
}

/* Grow a FAULT mapping in place: map the file's next pages right after it,
 * if that address range is free.  The tail becomes a region of its own. */
static void *grow_in_place(struct sm_region *last, uintptr_t old, size_t old_len, size_t new_len, off_t off)
{
	void *want = (void *)(old + old_len);
	void *p = map_fault(want, new_len - old_len, last->prot, MAP_SHARED | MAP_FIXED_NOREPLACE,
			    sm_file_fd(last->file), off + (off_t)old_len, NULL);

	if (p == want)
		return (void *)old;
	if (p != MAP_FAILED)
		unmap_locked((uintptr_t)p, new_len - old_len); /* before 4.17, NOREPLACE was a hint */
	errno = ENOMEM;
	return MAP_FAILED;
}

/* mremap of a FAULT mapping, table lock held.  Its VMA is split into durable
 * and read-only parts, which the kernel's mremap refuses to move as one, so
 * the new range is mapped afresh from the same file (the same pages: the
 * mapping is shared), the durable grains carried over, the old range unmapped
 * (unless old_len is 0: mremap's way to duplicate a shared mapping). */
static void *remap_fault(struct sm_region *const *rs, size_t n, uintptr_t old, size_t old_len, size_t new_len,
			 int flags, void *new_addr)
{
	const struct sm_region *r = rs[0];
	off_t off = r->off + (off_t)(old - r->start);
	uintptr_t target = (flags & MREMAP_FIXED) ? (uintptr_t)new_addr : 0;
	struct sm_file *file = r->file;
	struct sm_cut cut, *c = NULL;
	struct sm_bits **bits;
	struct sm_region *nr;
	int prot = r->prot;
	void *p;

	if (flags & MREMAP_DONTUNMAP) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (old_len != 0 && new_len <= old_len && !(flags & MREMAP_FIXED)) {
		if (new_len < old_len)
			return unmap_locked(old + new_len, old_len - new_len) == 0 ? (void *)old : MAP_FAILED;
		return (void *)old;
	}
	if (old_len != 0 && !(flags & MREMAP_FIXED)) {
		p = grow_in_place(rs[n - 1], old, old_len, new_len, off);
		if (p != MAP_FAILED || !(flags & MREMAP_MAYMOVE))
			return p;
	}
	if (flags & MREMAP_FIXED) {
		if ((target & (sm_cfg.page - 1)) != 0 ||
		    (target < old + old_len && old < target + page_round(new_len))) {
			errno = EINVAL;
			return MAP_FAILED;
		}
		if (sm_cut_begin(&cut, target, target + page_round(new_len)) != 0)
			return MAP_FAILED;
		c = &cut;
	}
	/* The target cut may retire the regions rs: keep their file and grain
	 * maps for the copy. */
	if (keep(rs, n, &bits) != 0) {
		if (c != NULL)
			sm_cut_abort(c);
		return MAP_FAILED;
	}
	p = map_fault((void *)target, new_len, prot, MAP_SHARED | (c != NULL ? MAP_FIXED : 0),
		      sm_file_fd(file), off, c);
	if (p != MAP_FAILED && sm_region_get((uintptr_t)p, &nr) == SM_FOUND) {
		carry_grains(bits, n, nr);
		sm_reprotect(nr, nr->start, nr->end, prot);
		sm_region_put(nr);
	}
	unkeep(file, bits, n);
	if (p != MAP_FAILED && old_len != 0)
		unmap_locked(old, old_len);
	return p;
}

/* mremap of anything else (KERNEL regions, mappings that are not ours),
 * table lock held: the kernel's, with the table following. */
static void *remap_kernel(struct sm_region *r, uintptr_t old, size_t old_len, size_t new_len, int flags,
			  void *new_addr)
{
	struct sm_cut target, source;
	int fixed = (flags & MREMAP_FIXED) != 0;
	int prot = r != NULL ? r->prot : 0;
	off_t off = r != NULL ? r->off + (off_t)(old - r->start) : 0;
	void *p;
	int err;

	if (fixed &&
	    sm_cut_begin(&target, (uintptr_t)new_addr, (uintptr_t)new_addr + page_round(new_len)) != 0)
		return MAP_FAILED;
	if (sm_cut_begin(&source, old, old + old_len) != 0) {
		if (fixed)
			sm_cut_abort(&target);
		return MAP_FAILED;
	}
	p = sm_sys_mremap((void *)old, old_len, new_len, flags, new_addr);
	err = errno;
	if (p == MAP_FAILED) {
		sm_cut_abort(&source);
		if (fixed)
			sm_cut_abort(&target);
		errno = err;
		return MAP_FAILED;
	}
	if (fixed)
		sm_cut_commit(&target, 1, 0, NULL);
	/* MREMAP_DONTUNMAP leaves the old range mapped (empty); ours no more. */
	sm_cut_commit(&source, 1, 0, NULL);
	if (r != NULL && register_kernel(p, new_len, prot, off, NULL) != 0)
		SM_STAT_ADD(errors, 1); /* mapped, but persists by msync from now on */
	return p;
}

void *syncmap_mremap(void *old_addr, size_t old_len, size_t new_len, int flags, ...)
{
	uintptr_t old = (uintptr_t)old_addr;
	void *new_addr = NULL, *p;
	struct sm_region **rs = NULL;
	size_t n;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	sm_init();
	if ((old & (sm_cfg.page - 1)) != 0 || new_len == 0) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	old_len = page_round(old_len);
	if (!sm_regions_any(old, old + (old_len ? old_len : 1)) &&
	    !((flags & MREMAP_FIXED) &&
	      sm_regions_any((uintptr_t)new_addr, (uintptr_t)new_addr + page_round(new_len))))
		return sm_sys_mremap(old_addr, old_len, new_len, flags, new_addr);
	sm_table_lock();
	n = sm_regions_in(old, old + (old_len ? old_len : page_round(new_len)), &rs);
	if (n == (size_t)-1) {
		errno = ENOMEM;
		p = MAP_FAILED;
	} else if (n > 0 && rs[0]->mode == SYNCMAP_MODE_FAULT && rs[0]->start <= old) {
		if (old_len == 0 || one_fault_mapping(rs, n, old, old_len)) {
			p = remap_fault(rs, old_len ? n : 1, old, old_len, new_len, flags, new_addr);
		} else {
			errno = EFAULT; /* the kernel's answer for a range across mappings */
			p = MAP_FAILED;
		}
	} else if (n > 1 || (n == 1 && (rs[0]->start > old || rs[0]->end < old + old_len))) {
		errno = EFAULT;
		p = MAP_FAILED;
	} else {
		p = remap_kernel(n == 1 ? rs[0] : NULL, old, old_len, new_len, flags, new_addr);
	}
	free(rs);
	sm_table_unlock();
	return p;
}
