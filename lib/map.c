/* SPDX-License-Identifier: MIT */
/* map.c -- the mmap family: choosing a mapping's mode and keeping the table right */
#include "changed.h"
#include "claim.h"
#include "config.h"
#include "init.h"
#include "durable.h"
#include "engine.h"
#include "fault.h"
#include "flush.h"
#include "fstype.h"
#include "map.h"
#include "region.h"
#include "stats.h"
#include "sys.h"
#include "syncmap.h"
#include "testpoint.h"

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

static size_t page_round(size_t len)
{
	return (len + sm_cfg.page - 1) & ~(sm_cfg.page - 1);
}

/* Does the library take this mapping over?  A shared, writable mapping of a
 * regular file on a filesystem that stores it (tmpfs is taken: nothing there
 * survives a crash, but the mapping behaves as everywhere else). */
static int takes_over(int prot, int flags, int fd)
{
	int type = flags & MAP_TYPE;
	struct stat st;
	struct statfs sf;

	if ((flags & MAP_ANONYMOUS) || !(prot & PROT_WRITE))
		return 0;
	if (type != MAP_SHARED && type != MAP_SHARED_VALIDATE)
		return 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return 0; /* mmap(2) gives its own error, or maps the device */
	if (fstatfs(fd, &sf) == 0 && sm_fs_never_taken((unsigned long)sf.f_type))
		return 0;
	return 1;
}

/*
 * A MAP_FIXED mmap (or MREMAP_FIXED mremap) at the cut's range failed.  The
 * kernel may have emptied the target before the refusal: mmap_region()
 * unmaps what was there and only then calls the filesystem's ->mmap, which
 * ext4 uses to refuse MAP_SYNC (EOPNOTSUPP), so the caller's old mapping is
 * gone; a check made earlier (EINVAL, EACCES) leaves it in place.  The
 * table must follow the kernel, or a later mapping there would inherit the
 * dropped region's state (a read-only page made writable by our handler).
 * The target was wholly mapped when the call was made (claimed placeholders
 * fill its free parts), and the kernel empties all of it or none: one probe
 * says which.  Table lock held; errno is kept.
 */
static void cut_settle_failed(struct sm_cut *c)
{
	int err = errno;

	/* msync with no flags only asks whether [s, s + page) is mapped. */
	if (msync((void *)c->s, sm_cfg.page, 0) != 0 && errno == ENOMEM)
		sm_cut_commit(c, 1, 0, NULL);
	else
		sm_cut_abort(c);
	errno = err;
}

/* The kernel's mmap with MAP_FIXED's replacement reflected in the table:
 * for mappings the library does not take (and the shim's).  The table's
 * records are allocated before the mapping exists: the target's free parts
 * are claimed first (claim.h). */
void *sm_map_plain(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	uintptr_t s = (uintptr_t)addr;
	struct sm_claim cl;
	struct sm_cut cut;
	void *p;
	int err;

	if (!(flags & MAP_FIXED) || !sm_regions_any(s, s + page_round(len)))
		return sm_sys_mmap(addr, len, prot, flags, fd, off);
	sm_table_lock();
	err = sm_claim(&cl, s, len, 0);
	if (err != 0 || sm_cut_begin(&cut, s, s + page_round(len)) != 0) {
		if (err == 0)
			sm_claim_release(&cl);
		sm_table_unlock();
		errno = err != 0 ? err : ENOMEM;
		return MAP_FAILED;
	}
	p = sm_sys_mmap(addr, len, prot, flags, fd, off);
	err = errno;
	if (p == MAP_FAILED) {
		cut_settle_failed(&cut);
		sm_claim_release(&cl);
	} else {
		sm_claim_forget(&cl);
		sm_cut_commit(&cut, 1, 0, NULL);
	}
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
	sm_engine_kick(); /* the engine starts with work to do, never for a mapping alone */
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
 * A new FAULT region's written blocks are adopted (sm_adopt_written: a
 * whole-file sync, then FIEMAP) once the table lock is dropped, so that
 * every other thread's map, unmap and mprotect does not wait for that sync.
 * Why that is safe:
 *  - the region is published and holds our reference, taken under the
 *    table lock while it was live: a writer that would change or remove it
 *    (munmap, mprotect, mremap, MAP_FIXED over it, syncmap_file_changed)
 *    blocks it and waits for that reference first (region.c), so adoption
 *    always works on the region as published.  Only writers on this very
 *    range wait, as for a fault in flight;
 *  - faults and the engine may ready its grains meanwhile: they set bits
 *    for grains they made durable, as adoption does for grains it found
 *    durable, so a bit is never set on a grain that is not.  Adoption's
 *    re-protection may take write access from a grain a fault has just
 *    readied; its next write faults once more, finds the bit and upgrades
 *    without a sync;
 *  - adoption touches no user memory (a fault there, with a writer waiting
 *    for our reference, could never finish) and takes no lock.
 * The pending region is kept here: set and read under the table lock, by
 * the one call of the mmap family that holds it (one region at most).
 */
static struct sm_region *pending_adopt;

static void adopt_later(struct sm_region *r)
{
	atomic_fetch_add(&r->refs, 1); /* live and published: we hold the table lock */
	sm_changes_hold();	       /* as long as the ref (changed.h) */
	pending_adopt = r;
}

/* sm_table_unlock() for calls that may publish a FAULT region. */
static void unlock_and_adopt(void)
{
	struct sm_region *r = pending_adopt;
	int err = errno;

	pending_adopt = NULL;
	sm_table_unlock();
	if (r != NULL) {
		SM_STAT_ADD(bytes_prepared, sm_adopt_written(r));
		sm_region_put(r);
		sm_changes_release();
	}
	errno = err;
}

/*
 * FAULT mode, table lock held: the library's writable alias, then the user's
 * mapping without PROT_WRITE.  The alias is mapped first: it is the mapping
 * that needs write access to the file, so EACCES (read-only descriptor),
 * EPERM (sealed) and the like come from it, as they would from mmap(2).
 * `cut` (may be NULL) is committed once the user's mapping has replaced it;
 * `claim` (may be NULL) holds the free parts of a MAP_FIXED target, which
 * the user's mapping replaces (forgotten then; the caller releases it if
 * this fails).
 */
static void *map_fault(void *addr, size_t len, int prot, int flags, int fd, off_t off, struct sm_cut *cut,
		       struct sm_claim *claim)
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
	r->alias = sm_sys_mmap(NULL, rlen, PROT_READ | PROT_WRITE, MAP_SHARED,
			       SM_MUTANT_PICK(sync_on_programs_description, r->file->fd, r->file->lfd), off);
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
	if (claim != NULL)
		sm_claim_forget(claim);
	r->start = (uintptr_t)p;
	r->end = r->start + rlen;
	r->cpu_persist = fault_persist(r->file);
	if (publish_region(r, cut) != 0)
		goto fail; /* only without a cut: nothing was replaced */
	adopt_later(r);
	sm_engine_kick();
	SM_STAT_ADD(maps_fault, 1);
	return p;
fail_errno:
	err = errno;
fail:
	if (p != MAP_FAILED)
		sm_sys_munmap(p, rlen);
	if (cut != NULL)
		cut_settle_failed(cut);
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
static void *map_syncmap(void *addr, size_t len, int prot, int flags, int fd, off_t off, struct sm_cut *cut,
			 struct sm_claim *claim)
{
	int granted = probe_map_sync(prot, fd, off);
	void *p;

	if (granted < 0)
		goto fail;
	if (granted && sm_cfg.mode != SM_PREF_FAULT) {
		p = sm_sys_mmap(addr, len, prot, (flags & ~MAP_TYPE) | MAP_SHARED_VALIDATE | MAP_SYNC, fd,
				off);
		if (p == MAP_FAILED)
			goto fail;
		if (claim != NULL)
			sm_claim_forget(claim);
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
		p = map_fault(addr, len, prot, flags, fd, off, cut, claim);
		sm_file_put(f);
		return p;
	}
	if (sm_cfg.mode == SM_PREF_KERNEL) {
		errno = EOPNOTSUPP;
		goto fail;
	}
	return map_fault(addr, len, prot, flags, fd, off, cut, claim);
fail:
	if (cut != NULL)
		cut_settle_failed(cut);
	return MAP_FAILED;
}

void *syncmap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	struct sm_cut cut, *c = NULL;
	struct sm_claim cl;
	uintptr_t s = (uintptr_t)addr;
	void *p;

	sm_init();
	if ((flags & MAP_TYPE) == MAP_SHARED_VALIDATE && (flags & MAP_SYNC)) {
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
	/* Claimed before anything is allocated: nothing of the library's may
	 * land in the target.  The kernel takes MAP_FIXED_NOREPLACE as
	 * MAP_FIXED on a range it found free: the claim found it free. */
	if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
		int err = sm_claim(&cl, s, len, (flags & MAP_FIXED_NOREPLACE) != 0);

		/* MAP_SHARED_VALIDATE refuses flags outside the kernel's legacy
		 * set, MAP_FIXED_NOREPLACE among them (EOPNOTSUPP), after the
		 * NOREPLACE check itself (EEXIST): say so before the flag becomes
		 * the MAP_FIXED below, which the kernel would accept. */
		if (err == 0 && (flags & MAP_TYPE) == MAP_SHARED_VALIDATE && (flags & MAP_FIXED_NOREPLACE)) {
			sm_claim_release(&cl);
			err = EOPNOTSUPP;
		}
		if (err != 0) {
			sm_table_unlock();
			errno = err;
			return MAP_FAILED;
		}
		flags = (flags & ~MAP_FIXED_NOREPLACE) | MAP_FIXED;
		if (sm_cut_begin(&cut, s, s + page_round(len)) != 0) {
			sm_claim_release(&cl);
			sm_table_unlock();
			return MAP_FAILED;
		}
		c = &cut;
	}
	p = map_syncmap(addr, len, prot, flags, fd, off, c, c != NULL ? &cl : NULL);
	if (p == MAP_FAILED && c != NULL)
		sm_claim_release(&cl);
	unlock_and_adopt();
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

/* A piece whose mprotect failed half-way is put back as it was recorded:
 * mprotect(2) changes a mapping's VMAs one after the other, so a refusal can
 * come after some of them changed.  The old protection was accepted for these
 * VMAs before, so the kernel takes it again. */
static void put_back(struct sm_region *r, uintptr_t s, uintptr_t e)
{
	int err = errno;

	if (r->mode == SYNCMAP_MODE_FAULT)
		sm_reprotect(r, s, e, r->prot);
	else
		sm_sys_mprotect((void *)s, e - s, r->prot);
	errno = err;
}

/* Apply prot to [s, e) piece by piece: FAULT regions keep their not-yet-durable
 * grains read-only, everything else gets prot as asked.  *done: where the
 * pieces that took prot end.  As mprotect(2) does, a failure leaves the pieces
 * before it changed and those after it as they were; the piece that failed is
 * put back. */
static int protect_pieces(const struct sm_cut *c, uintptr_t s, uintptr_t e, int prot, uintptr_t *done)
{
	uintptr_t a = s;

	*done = s;
	for (size_t i = 0; i < c->n; i++) {
		struct sm_region *r = c->old[i];
		uintptr_t rs = r->start > s ? r->start : s;
		uintptr_t re = r->end < e ? r->end : e;

		if (a < rs && sm_sys_mprotect((void *)a, rs - a, prot) != 0)
			return -1;
		*done = rs;
		if (r->mode == SYNCMAP_MODE_FAULT) {
			int err = sm_reprotect(r, rs, re, prot);

			if (err != 0) {
				errno = err;
				put_back(r, rs, re);
				return -1;
			}
		} else if (sm_sys_mprotect((void *)rs, re - rs, prot) != 0) {
			put_back(r, rs, re);
			return -1;
		}
		a = re;
		*done = re;
	}
	if (a < e && sm_sys_mprotect((void *)a, e - a, prot) != 0)
		return -1;
	return 0;
}

int syncmap_mprotect(void *addr, size_t len, int prot)
{
	uintptr_t s = (uintptr_t)addr, e, done;
	struct sm_cut cut;
	int rc, err;

	sm_init();
	e = s + page_round(len);
	/* mprotect(2)'s checks in its order: alignment, then an empty range is
	 * done, then a range that wraps (its length rounded) is ENOMEM. */
	if ((s & (sm_cfg.page - 1)) != 0) {
		errno = EINVAL;
		return -1;
	}
	if (len != 0 && e <= s) {
		errno = ENOMEM;
		return -1;
	}
	if (len == 0 || !sm_regions_any(s, e))
		return sm_sys_mprotect(addr, len, prot);
	sm_table_lock();
	if (sm_cut_begin(&cut, s, e) != 0) {
		sm_table_unlock();
		return -1;
	}
	rc = protect_pieces(&cut, s, e, prot, &done);
	err = errno;
	/* Recorded only where it took effect: a FAULT grain readied later is
	 * given the recorded protection, which the kernel must accept. */
	if (rc != 0 && done == s) {
		sm_cut_abort(&cut);
	} else {
		if (rc != 0)
			sm_cut_narrow(&cut, done);
		sm_cut_commit(&cut, 0, prot, NULL);
	}
	sm_table_unlock();
	errno = err;
	return rc;
}

/* What a remap carries from one piece of the old range: its grain map and
 * grain, and the file range [lo, hi) that the piece covered there.  Only
 * that range: a grain map is shared by the pieces of a split mapping and
 * outlives a shrink, and its marks outside the pieces are stale (the blocks
 * may have been freed since, and syncmap_file_changed clears marks only
 * where a mapping still covers the file). */
struct carried {
	struct sm_bits *bits;
	size_t grain;
	uint64_t lo, hi;
};

/* Mark in `to` (same file) the grains that lie wholly in durable runs of
 * the carried pieces. */
static void carry_grains(const struct carried *k, size_t n, struct sm_region *to)
{
	uint64_t to_lo = (uint64_t)to->off, to_hi = to_lo + (to->end - to->start);

	for (size_t i = 0; i < n; i++) {
		uint64_t G = k[i].grain, lo = k[i].lo > to_lo ? k[i].lo : to_lo;
		uint64_t hi = k[i].hi < to_hi ? k[i].hi : to_hi, lim = (hi + G - 1) / G, g, h;

		for (g = lo / G; lo < hi; g = h) {
			uint64_t a, b;

			g = sm_bits_next(k[i].bits, g, lim, 1);
			if (g >= lim)
				break;
			h = sm_bits_next(k[i].bits, g, lim, 0);
			a = g * G > lo ? g * G : lo;
			b = h * G < hi ? h * G : hi;
			for (uint64_t t = (a + to->grain - 1) / to->grain; (t + 1) * to->grain <= b; t++)
				sm_bit_set(to->bits, t);
		}
	}
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

/* Keep what carry_grains needs from the pieces rs[0..n) within [s, e), with
 * references on their grain maps and file: the target cut may retire them. */
static int keep(struct sm_region *const *rs, size_t n, uintptr_t s, uintptr_t e, struct carried **out)
{
	struct carried *k = malloc(n * sizeof(*k));

	*out = k;
	if (k == NULL) {
		errno = ENOMEM;
		return -1;
	}
	rs[0]->file->nref++;
	for (size_t i = 0; i < n; i++) {
		uintptr_t cs = rs[i]->start > s ? rs[i]->start : s, ce = rs[i]->end < e ? rs[i]->end : e;

		k[i].bits = rs[i]->bits;
		k[i].bits->nref++;
		k[i].grain = rs[i]->grain;
		k[i].lo = (uint64_t)rs[i]->off + (cs - rs[i]->start);
		k[i].hi = k[i].lo + (ce > cs ? ce - cs : 0);
	}
	return 0;
}

static void unkeep(struct sm_file *file, struct carried *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sm_bits_put(k[i].bits);
	free(k);
	sm_file_put(file);
}

/* Grow a FAULT mapping in place: map the file's next pages right after it,
 * if that address range is free (claimed first, so that the tail's own grain
 * map and alias go elsewhere).  The tail becomes a region of its own. */
static void *grow_in_place(struct sm_region *last, uintptr_t old, size_t old_len, size_t new_len, off_t off)
{
	uintptr_t want = old + old_len;
	struct sm_claim cl;
	void *p;

	if (sm_claim(&cl, want, new_len - old_len, 1) != 0) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	p = map_fault((void *)want, new_len - old_len, last->prot, MAP_SHARED | MAP_FIXED,
		      sm_file_fd(last->file), off + (off_t)old_len, NULL, &cl);
	if (p == MAP_FAILED) {
		sm_claim_release(&cl);
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return (void *)old;
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
	struct sm_claim cl;
	struct carried *kept;
	struct sm_region *nr;
	int prot = r->prot;
	void *p;

	if (flags & MREMAP_DONTUNMAP) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (old_len == 0 && !(flags & MREMAP_MAYMOVE)) {
		errno = ENOMEM; /* the kernel's: a duplicate is a new mapping elsewhere */
		return MAP_FAILED;
	}
	if (sm_file_fd(file) < 0) {
		errno = ENOMEM; /* the program closed the descriptor to map from (region.c) */
		return MAP_FAILED;
	}
	if (old_len != 0 && !(flags & MREMAP_FIXED)) {
		p = grow_in_place(rs[n - 1], old, old_len, new_len, off);
		if (p != MAP_FAILED || !(flags & MREMAP_MAYMOVE))
			return p;
	}
	if (flags & MREMAP_FIXED) {
		int err = sm_claim(&cl, target, new_len, 0);

		if (err != 0) {
			errno = err;
			return MAP_FAILED;
		}
		if (sm_cut_begin(&cut, target, target + new_len) != 0) {
			sm_claim_release(&cl);
			return MAP_FAILED;
		}
		c = &cut;
	}
	/* The target cut may retire the regions rs: keep their file and grain
	 * maps for the copy. */
	if (keep(rs, n, old, old + (old_len ? old_len : new_len), &kept) != 0) {
		if (c != NULL) {
			sm_cut_abort(c);
			sm_claim_release(&cl);
		}
		return MAP_FAILED;
	}
	p = map_fault((void *)target, new_len, prot, MAP_SHARED | (c != NULL ? MAP_FIXED : 0),
		      sm_file_fd(file), off, c, c != NULL ? &cl : NULL);
	if (p == MAP_FAILED && c != NULL)
		sm_claim_release(&cl);
	if (p != MAP_FAILED && sm_region_get((uintptr_t)p, &nr) == SM_FOUND) {
		carry_grains(kept, n, nr);
		sm_reprotect(nr, nr->start, nr->end, prot);
		sm_region_put(nr);
	}
	unkeep(file, kept, n);
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
	struct sm_claim cl;
	int fixed = (flags & MREMAP_FIXED) != 0;
	int prot = r != NULL ? r->prot : 0;
	off_t off = r != NULL ? r->off + (off_t)(old - r->start) : 0;
	void *p;
	int err;

	if (fixed) {
		err = sm_claim(&cl, (uintptr_t)new_addr, new_len, 0);
		if (err != 0) {
			errno = err;
			return MAP_FAILED;
		}
		if (sm_cut_begin(&target, (uintptr_t)new_addr, (uintptr_t)new_addr + new_len) != 0) {
			sm_claim_release(&cl);
			return MAP_FAILED;
		}
	}
	if (sm_cut_begin(&source, old, old + old_len) != 0) {
		if (fixed) {
			sm_cut_abort(&target);
			sm_claim_release(&cl);
		}
		return MAP_FAILED;
	}
	p = sm_sys_mremap((void *)old, old_len, new_len, flags, new_addr);
	err = errno;
	if (p == MAP_FAILED) {
		sm_cut_abort(&source);
		if (fixed) {
			cut_settle_failed(&target); /* Linux 6.1 unmaps the target before some checks */
			sm_claim_release(&cl);
		}
		errno = err;
		return MAP_FAILED;
	}
	if (fixed) {
		sm_claim_forget(&cl);
		sm_cut_commit(&target, 1, 0, NULL);
	}
	/* MREMAP_DONTUNMAP leaves the old range mapped (empty); ours no more. */
	sm_cut_commit(&source, 1, 0, NULL);
	if (r != NULL && register_kernel(p, new_len, prot, off, NULL) != 0)
		SM_STAT_ADD(errors, 1); /* mapped, but persists by msync from now on */
	return p;
}

#define SM_MREMAP_FLAGS (MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)

/* mremap(2)'s argument checks, in the kernel's order (mm/mremap.c), on the
 * page-rounded lengths: 0 or EINVAL.  Its check of lengths against the top
 * of the address space is left to the calls that follow (ENOMEM there). */
static int remap_args(uintptr_t old, size_t old_len, size_t new_len, int flags, uintptr_t target)
{
	if ((flags & ~SM_MREMAP_FLAGS) != 0 || (old & (sm_cfg.page - 1)) != 0 || new_len == 0)
		return EINVAL;
	if (!(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)))
		return 0;
	if (!(flags & MREMAP_MAYMOVE) || ((flags & MREMAP_DONTUNMAP) && old_len != new_len))
		return EINVAL;
	if (!(flags & MREMAP_FIXED))
		return 0;
	if ((target & (sm_cfg.page - 1)) != 0 || target + new_len < target ||
	    (target < old + old_len && old < target + new_len))
		return EINVAL;
	return 0;
}

/* Shrinking (or keeping the length) in place is the kernel's munmap of the
 * tail, whatever lies there, once it finds a mapping at old: the kernel
 * does it, the table follows.  Table lock held. */
static void *remap_shrink(uintptr_t old, size_t old_len, size_t new_len, int flags)
{
	struct sm_cut cut;
	void *p;
	int err;

	if (new_len == old_len)
		return sm_sys_mremap((void *)old, old_len, new_len, flags, NULL);
	if (sm_cut_begin(&cut, old + new_len, old + old_len) != 0)
		return MAP_FAILED;
	p = sm_sys_mremap((void *)old, old_len, new_len, flags, NULL);
	/* The arguments were checked as the kernel checks them, so EINVAL here
	 * is not the kernel's: Valgrind's emulation of mremap refuses to shrink
	 * a range its bookkeeping holds as several segments (a FAULT mapping's
	 * writable and read-only parts).  A shrink in place is an unmap of the
	 * tail: do that. */
	if (p == MAP_FAILED && errno == EINVAL &&
	    sm_sys_munmap((void *)(old + new_len), old_len - new_len) == 0)
		p = (void *)old;
	err = errno;
	if (p == MAP_FAILED)
		sm_cut_abort(&cut);
	else
		sm_cut_commit(&cut, 1, 0, NULL);
	errno = err;
	return p;
}

void *syncmap_mremap(void *old_addr, size_t old_len, size_t new_len, int flags, ...)
{
	uintptr_t old = (uintptr_t)old_addr;
	void *new_addr = NULL, *p;
	struct sm_region **rs = NULL;
	size_t n;
	int err;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	sm_init();
	/* The kernel rounds both lengths up; an old_len that wraps to 0 asks
	 * for a duplicate there too. */
	old_len = page_round(old_len);
	new_len = page_round(new_len);
	err = remap_args(old, old_len, new_len, flags, (uintptr_t)new_addr);
	if (err != 0) {
		errno = err;
		return MAP_FAILED;
	}
	if (!sm_regions_any(old, old + (old_len ? old_len : 1)) &&
	    !((flags & MREMAP_FIXED) && sm_regions_any((uintptr_t)new_addr, (uintptr_t)new_addr + new_len)))
		return sm_sys_mremap(old_addr, old_len, new_len, flags, new_addr);
	sm_table_lock();
	if (old_len != 0 && new_len <= old_len && !(flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))) {
		p = remap_shrink(old, old_len, new_len, flags);
		sm_table_unlock();
		return p;
	}
	/* The duplicate form (old_len 0) is about the mapping holding old only,
	 * whatever else lies in [old, old + new_len). */
	n = sm_regions_in(old, old + (old_len ? old_len : 1), &rs);
	if (n == (size_t)-1) {
		errno = ENOMEM;
		p = MAP_FAILED;
	} else if (old_len == 0 && (flags & MREMAP_FIXED) && (uintptr_t)new_addr == old) {
		/* A duplicate onto itself: the kernel unmaps the target, the
		 * source with it, then finds no source (ENOMEM on 6.18): its
		 * answer, with the table following what it unmapped. */
		p = remap_kernel(NULL, old, old_len, new_len, flags, new_addr);
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
	unlock_and_adopt();
	return p;
}
