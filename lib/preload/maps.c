/* SPDX-License-Identifier: MIT */
/* maps.c -- mmap, munmap, mprotect, mremap, madvise: the mappings the shim takes go to syncmap_* */
#include "preload.h"

#include "changed.h"
#include "config.h"
#include "map.h"
#include "region.h"
#include "sys.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Shared and writable, of a descriptor: what the library may take.  The
 * rest (anonymous, private, read-only) is decided by the flags alone. */
static int candidate(int prot, int flags, int fd)
{
	int type = flags & MAP_TYPE;

	return !(flags & MAP_ANONYMOUS) && fd >= 0 && (prot & PROT_WRITE) &&
	       (type == MAP_SHARED || type == MAP_SHARED_VALIDATE);
}

static uintptr_t end_of(const void *p, size_t len)
{
	uintptr_t s = (uintptr_t)p, e = s + len;

	return e < s ? UINTPTR_MAX : e;
}

/* A mapping the shim does not take: the next mmap, with the table kept
 * right if it lands on some of the shim's mappings. */
static void *plain(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if ((flags & MAP_FIXED) && pl_on() && sm_regions_any((uintptr_t)addr, end_of(addr, len)))
		return sm_map_plain(addr, len, prot, flags, fd, off);
	return REAL(mmap)(addr, len, prot, flags, fd, off);
}

/* The program asked for a plain mapping, and mmap(2) never fails for lack
 * of descriptors: if the library cannot duplicate the file's descriptor
 * (EMFILE, ENFILE), the mapping is made plain, and said so once. */
static void *unguarded(void *addr, size_t len, int prot, int flags, int fd, off_t off, int err)
{
	static _Atomic int warned;

	if (!atomic_exchange(&warned, 1))
		fprintf(stderr,
			"libsyncmap-preload: a mapping left without the guarantee (%s); counted in "
			"maps_unguarded\n",
			strerror(err));
	PL_STAT_ADD(maps_unguarded, 1);
	return plain(addr, len, prot, flags, fd, off);
}

static void *take(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = syncmap_mmap(addr, len, prot, flags, fd, off);

	if (p == MAP_FAILED && (errno == EMFILE || errno == ENFILE))
		return unguarded(addr, len, prot, flags, fd, off, errno);
	/* The library itself leaves some alone (devices, hugetlbfs). */
	if (p != MAP_FAILED && syncmap_mode(p) != SYNCMAP_MODE_NONE) {
		pl_hull_add(p, len);
		PL_STAT_ADD(maps_taken, 1);
	}
	return p;
}

static void *pl_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (candidate(prot, flags, fd) && pl_on_wait()) {
		/* A call asking for MAP_SYNC itself gets the kernel's answer: the
		 * program will persist with CPU flushes alone. */
		int sync = (flags & MAP_TYPE) == MAP_SHARED_VALIDATE && (flags & MAP_SYNC);

		if (!sync && pl_file_wanted(fd))
			return take(addr, len, prot, flags, fd, off);
		PL_STAT_ADD(maps_left, 1);
	}
	return plain(addr, len, prot, flags, fd, off);
}

PL_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return pl_mmap(addr, len, prot, flags, fd, off);
}

PL_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	return pl_mmap(addr, len, prot, flags, fd, off);
}

PL_EXPORT int munmap(void *addr, size_t len)
{
	if (pl_on() && sm_regions_any((uintptr_t)addr, end_of(addr, len)))
		return syncmap_munmap(addr, len);
	return REAL(munmap)(addr, len);
}

PL_EXPORT int mprotect(void *addr, size_t len, int prot)
{
	if (pl_on() && sm_regions_any((uintptr_t)addr, end_of(addr, len)))
		return syncmap_mprotect(addr, len, prot);
	return REAL(mprotect)(addr, len, prot);
}

PL_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL, *p;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	/* old_len 0 duplicates a shared mapping: the page at old is what counts. */
	if (pl_on() &&
	    (sm_regions_any((uintptr_t)old, end_of(old, old_len ? old_len : 1)) ||
	     ((flags & MREMAP_FIXED) && sm_regions_any((uintptr_t)new_addr, end_of(new_addr, new_len))))) {
		p = syncmap_mremap(old, old_len, new_len, flags, new_addr);
		if (p != MAP_FAILED && syncmap_mode(p) != SYNCMAP_MODE_NONE)
			pl_hull_add(p, new_len);
		return p;
	}
	return REAL(mremap)(old, old_len, new_len, flags, new_addr);
}

/*
 * MADV_REMOVE frees the file's blocks under a range of a shared mapping.  The
 * kernel refuses it (EACCES) on a read-only VMA, which the not-yet-written
 * parts of a FAULT mapping are, so for those parts it is done as the kernel
 * does it, a hole punched in the file, and then the range re-protected.
 */
static int remove_fault(struct sm_region *r, uintptr_t s, uintptr_t e)
{
	off_t off = r->off + (off_t)(s - r->start);
	dev_t dev = r->file->dev;
	ino_t ino = r->file->ino;
	int fd, rc;

	if (!(r->prot & PROT_WRITE)) {
		sm_region_put(r);
		errno = EACCES; /* as the kernel for a mapping without write access */
		return -1;
	}
	/* Punched through the library's descriptor while the ref keeps it, and
	 * the file then named by its inode: no descriptor is opened and closed
	 * for it, as a close would drop the program's POSIX locks on the file
	 * (region.c).  The ref goes first: sm_file_changed_ino() blocks the
	 * region, which must not be held while it does. */
	fd = sm_file_fd(r->file);
	rc = fd < 0 ? -1
		    : REAL(fallocate)(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)(e - s));
	sm_region_put(r);
	if (rc == 0 && sm_file_changed_ino(dev, ino, off, (off_t)(e - s)) == 0)
		PL_STAT_ADD(files_changed, 1);
	return rc;
}

static int remove_range(uintptr_t a, uintptr_t end)
{
	while (a < end) {
		struct sm_region *r;
		uintptr_t s, e;
		int st = sm_region_next(a, &r);

		if (st == SM_BUSY) {
			sched_yield();
			continue;
		}
		if (st == SM_NOTFOUND || r->start >= end) {
			if (st == SM_FOUND)
				sm_region_put(r);
			return REAL(madvise)((void *)a, end - a, MADV_REMOVE);
		}
		if (a < r->start && REAL(madvise)((void *)a, r->start - a, MADV_REMOVE) != 0) {
			sm_region_put(r);
			return -1;
		}
		s = a > r->start ? a : r->start;
		e = end < r->end ? end : r->end;
		if (r->mode == SYNCMAP_MODE_FAULT) {
			if (remove_fault(r, s, e) != 0) /* puts r */
				return -1;
		} else {
			sm_region_put(r);
			if (REAL(madvise)((void *)s, e - s, MADV_REMOVE) != 0)
				return -1;
		}
		a = e;
	}
	return 0;
}

PL_EXPORT int madvise(void *addr, size_t len, int advice)
{
	uintptr_t s = (uintptr_t)addr, pg, e;

	/* The library's fault path calls this too (MADV_POPULATE_WRITE on its
	 * alias, which is no region): async-signal-safe throughout. */
	if ((advice != MADV_REMOVE && advice != MADV_POPULATE_WRITE) || !pl_on() ||
	    !sm_regions_any(s, end_of(addr, len)))
		return REAL(madvise)(addr, len, advice);
	pg = sm_cfg.page;
	e = (s + len + pg - 1) & ~(pg - 1);
	if ((s & (pg - 1)) != 0 || e < s) {
		errno = EINVAL;
		return -1;
	}
	if (advice == MADV_REMOVE) {
		int rc;

		/* The punch is made holding a ref; its re-protection, and any a
		 * signal handler asks for meanwhile, is done at the release
		 * (changed.h). */
		sm_changes_hold();
		rc = remove_range(s, e);
		sm_changes_release();
		return rc;
	}
	/* Populating for write is what syncmap_prepare() does, durably: the
	 * kernel's version fails on the read-only parts of a FAULT mapping. */
	if (syncmap_prepare(addr, len) != 0) {
		if (errno == ENXIO)
			errno = EFAULT; /* past EOF: the kernel's answer for a populate that would SIGBUS */
		return -1;
	}
	return REAL(madvise)(addr, len, advice);
}
