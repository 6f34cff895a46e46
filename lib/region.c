/* SPDX-License-Identifier: MIT */
/* region.c -- the lock-free table of syncmap mappings, their files and grain maps
 *
 * Readers (the fault handler, syncmap_persist, syncmap_mode) never lock: they
 * load the published table, a sorted array of region pointers, and binary
 * search it.  Writers (map, unmap, mprotect, mremap, file_changed) hold one
 * mutex, build a new array and publish it with one atomic store.  Nothing a
 * reader may still be looking at is freed under it:
 *  - a reader announces itself in `readers` for the few instructions of a
 *    lookup; retired tables and region records are freed only once a writer
 *    has seen `readers` at zero after retiring them;
 *  - a reader that keeps a region beyond the lookup holds r->refs, and takes
 *    it only while the region is SM_LIVE; a writer that changes or removes a
 *    region first marks it SM_BLOCKED and waits for refs to drain.
 */
#include "region.h"

#include "changed.h"
#include "config.h"
#include "sys.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#ifndef BCACHEFS_SUPER_MAGIC
#define BCACHEFS_SUPER_MAGIC 0xca451a4e
#endif
#define ZFS_SUPER_MAGIC 0x2fc12fc1

struct sm_table {
	size_t n;
	struct sm_table *retired_next;
	struct sm_region *r[];
};

static pthread_mutex_t table_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct sm_table *_Atomic table;
static _Atomic long readers;
static struct sm_table *retired_tables;
static struct sm_region *retired_regions;
static struct sm_file *files;

/* The hold comes first and goes last: a signal handler that runs on this
 * thread at any point in between puts off its re-protection (changed.h)
 * instead of waiting for a lock its own thread holds. */
void sm_table_lock(void)
{
	sm_changes_hold();
	pthread_mutex_lock(&table_mutex);
}

void sm_table_unlock(void)
{
	pthread_mutex_unlock(&table_mutex);
	sm_changes_release();
}

/* Index of the first region whose end is above a, or t->n. */
static size_t first_ending_above(const struct sm_table *t, uintptr_t a)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->r[mid]->end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int lookup(uintptr_t a, int containing, struct sm_region **out)
{
	struct sm_table *t;
	struct sm_region *r = NULL;
	int ret = SM_NOTFOUND;

	/* seq_cst increment before the table load: a writer stores the new table
	 * and then loads `readers`; either it sees us, or we see its new table. */
	atomic_fetch_add(&readers, 1);
	t = atomic_load(&table);
	if (t != NULL) {
		size_t i = first_ending_above(t, a);

		if (i < t->n && (!containing || t->r[i]->start <= a))
			r = t->r[i];
	}
	if (r != NULL) {
		/* Dekker pair with sm_region_block(): we increment refs then load the
		 * state, the writer stores the state then loads refs (all seq_cst). */
		atomic_fetch_add(&r->refs, 1);
		if (atomic_load(&r->state) == SM_LIVE) {
			*out = r;
			ret = SM_FOUND;
		} else {
			atomic_fetch_sub(&r->refs, 1);
			ret = SM_BUSY;
		}
	}
	/* Past this point we touch r only if we hold a ref on a live region. */
	atomic_fetch_sub_explicit(&readers, 1, memory_order_release);
	return ret;
}

int sm_region_get(uintptr_t a, struct sm_region **out)
{
	return lookup(a, 1, out);
}

int sm_region_next(uintptr_t a, struct sm_region **out)
{
	return lookup(a, 0, out);
}

int sm_regions_walk(uintptr_t a, uintptr_t end,
		    int (*fn)(struct sm_region *r, uintptr_t s, uintptr_t e, void *arg), void *arg)
{
	while (a < end) {
		struct sm_region *r;
		uintptr_t s, e;
		int err, st = sm_region_next(a, &r);

		if (st == SM_NOTFOUND)
			return 0;
		if (st == SM_BUSY) {
			sched_yield(); /* a writer is changing it: look again */
			continue;
		}
		if (r->start >= end) {
			sm_region_put(r);
			return 0;
		}
		s = a > r->start ? a : r->start;
		e = end < r->end ? end : r->end;
		err = fn(r, s, e, arg);
		sm_region_put(r);
		if (err != 0)
			return err;
		a = e;
	}
	return 0;
}

int sm_regions_any(uintptr_t s, uintptr_t e)
{
	struct sm_table *t;
	int any = 0;

	atomic_fetch_add(&readers, 1);
	t = atomic_load(&table);
	if (t != NULL) {
		size_t i = first_ending_above(t, s);

		any = i < t->n && t->r[i]->start < e;
	}
	atomic_fetch_sub_explicit(&readers, 1, memory_order_release);
	return any;
}

static void wait_drain(struct sm_region *r)
{
	/* A fault in flight finishes in a bounded time (populate + msync +
	 * mprotect); yield first, then sleep so a long msync is not spun on. */
	for (unsigned spins = 0; atomic_load(&r->refs) != 0; spins++) {
		if (spins < 64) {
			sched_yield();
		} else {
			struct timespec ts = {0, 50 * 1000};

			nanosleep(&ts, NULL);
		}
	}
}

void sm_region_block(struct sm_region *r)
{
	atomic_store(&r->state, SM_BLOCKED);
	wait_drain(r);
}

void sm_region_unblock(struct sm_region *r)
{
	atomic_store(&r->state, SM_LIVE);
}

static void reclaim(void)
{
	/* Everything on the lists was unpublished before this load; with no reader
	 * inside a lookup now, none can still hold a pointer to it. */
	if (atomic_load(&readers) != 0)
		return;
	while (retired_tables != NULL) {
		struct sm_table *t = retired_tables;

		retired_tables = t->retired_next;
		free(t);
	}
	while (retired_regions != NULL) {
		struct sm_region *r = retired_regions;

		retired_regions = r->retired_next;
		free(r);
	}
}

static void publish(struct sm_table *t)
{
	struct sm_table *old = atomic_exchange(&table, t);

	if (old != NULL) {
		old->retired_next = retired_tables;
		retired_tables = old;
	}
}

static struct sm_table *table_alloc(size_t n)
{
	struct sm_table *t = malloc(sizeof(*t) + n * sizeof(t->r[0]));

	if (t != NULL)
		t->n = 0;
	return t;
}

/* Put r into t (room for it reserved) at its place by address. */
static void table_add(struct sm_table *t, struct sm_region *r)
{
	size_t i = t->n;

	while (i > 0 && t->r[i - 1]->start > r->start) {
		t->r[i] = t->r[i - 1];
		i--;
	}
	t->r[i] = r;
	t->n++;
	atomic_store(&r->state, SM_LIVE);
}

int sm_region_insert(struct sm_region *r)
{
	struct sm_table *old = atomic_load(&table);
	size_t n = old ? old->n : 0;
	struct sm_table *t = table_alloc(n + 1);

	if (t == NULL) {
		errno = ENOMEM;
		return -1;
	}
	if (n > 0)
		memcpy(t->r, old->r, n * sizeof(t->r[0]));
	t->n = n;
	table_add(t, r);
	publish(t);
	reclaim();
	return 0;
}

size_t sm_regions_in(uintptr_t s, uintptr_t e, struct sm_region ***out)
{
	struct sm_table *t = atomic_load(&table);
	size_t i, j, n;

	*out = NULL;
	if (t == NULL || s >= e)
		return 0;
	i = first_ending_above(t, s);
	for (j = i; j < t->n && t->r[j]->start < e; j++)
		;
	n = j - i;
	if (n == 0)
		return 0;
	*out = malloc(n * sizeof(**out));
	if (*out == NULL)
		return (size_t)-1;
	memcpy(*out, t->r + i, n * sizeof(**out));
	return n;
}

static void release(struct sm_region *r)
{
	sm_file_put(r->file);
	sm_bits_put(r->bits);
}

void sm_region_destroy(struct sm_region *r)
{
	if (r->alias != NULL)
		sm_sys_munmap(r->alias, r->end - r->start);
	release(r);
	free(r);
}

int sm_cut_begin(struct sm_cut *c, uintptr_t s, uintptr_t e)
{
	size_t n = sm_regions_in(s, e, &c->old);

	c->s = s;
	c->e = e;
	c->n = 0;
	c->fresh = NULL;
	c->next = NULL;
	if (n == (size_t)-1) {
		errno = ENOMEM;
		return -1;
	}
	/* Room for two more pieces per region cut in its middle, and for one
	 * region published in the same swap (sm_cut_commit's add). */
	c->next = table_alloc((atomic_load(&table) ? atomic_load(&table)->n : 0) + 2 * n + 1);
	if (c->next == NULL)
		goto fail;
	if (n > 0) {
		c->fresh = calloc(3 * n, sizeof(*c->fresh));
		if (c->fresh == NULL)
			goto fail;
		for (size_t i = 0; i < 3 * n; i++) {
			c->fresh[i] = calloc(1, sizeof(struct sm_region));
			if (c->fresh[i] == NULL)
				goto fail;
		}
	}
	c->n = n;
	for (size_t i = 0; i < n; i++)
		sm_region_block(c->old[i]);
	return 0;
fail:
	for (size_t i = 0; c->fresh != NULL && i < 3 * n; i++)
		free(c->fresh[i]);
	free(c->fresh);
	free(c->next);
	free(c->old);
	errno = ENOMEM;
	return -1;
}

static void cut_free(struct sm_cut *c)
{
	for (size_t i = 0; i < 3 * c->n; i++)
		free(c->fresh[i]);
	free(c->fresh);
	free(c->next);
	free(c->old);
	c->n = 0;
}

void sm_cut_abort(struct sm_cut *c)
{
	for (size_t i = 0; i < c->n; i++)
		sm_region_unblock(c->old[i]);
	cut_free(c);
}

void sm_cut_narrow(struct sm_cut *c, uintptr_t e)
{
	while (c->n > 0 && c->old[c->n - 1]->start >= e) {
		c->n--;
		sm_region_unblock(c->old[c->n]);
		for (size_t i = 3 * c->n; i < 3 * c->n + 3; i++) {
			free(c->fresh[i]);
			c->fresh[i] = NULL;
		}
	}
	c->e = e;
}

/* A copy of r limited to [s, e), taking its own references. */
static struct sm_region *piece(struct sm_region *slot, const struct sm_region *r, uintptr_t s, uintptr_t e,
			       int prot)
{
	memcpy(slot, r, sizeof(*slot));
	slot->start = s;
	slot->end = e;
	slot->off = r->off + (off_t)(s - r->start);
	slot->prot = prot;
	if (r->alias != NULL)
		slot->alias = r->alias + (s - r->start);
	if (r->file != NULL)
		r->file->nref++;
	if (r->bits != NULL)
		r->bits->nref++;
	atomic_init(&slot->state, SM_LIVE);
	atomic_init(&slot->refs, 0);
	atomic_init(&slot->eng_last, 0);
	atomic_init(&slot->eng_expect, 0);
	atomic_init(&slot->eng_inline, 0);
	atomic_init(&slot->eng_ahead, 0);
	atomic_init(&slot->eng_busy, 0);
	slot->retired_next = NULL;
	return slot;
}

void sm_cut_commit(struct sm_cut *c, int drop, int prot, struct sm_region *add)
{
	struct sm_table *old = atomic_load(&table);
	struct sm_table *t = c->next;
	size_t k = 0, used = 0;

	if (c->n == 0 && add == NULL) {
		cut_free(c);
		return;
	}
	for (size_t i = 0; old != NULL && i < old->n; i++) {
		struct sm_region *r = old->r[i];

		if (k < c->n && r == c->old[k]) {
			uintptr_t ms = r->start > c->s ? r->start : c->s;
			uintptr_t me = r->end < c->e ? r->end : c->e;

			if (r->start < ms)
				t->r[t->n++] = piece(c->fresh[used++], r, r->start, ms, r->prot);
			if (!drop)
				t->r[t->n++] = piece(c->fresh[used++], r, ms, me, prot);
			else if (r->alias != NULL)
				sm_sys_munmap(r->alias + (ms - r->start), me - ms);
			if (me < r->end)
				t->r[t->n++] = piece(c->fresh[used++], r, me, r->end, r->prot);
			k++;
		} else {
			t->r[t->n++] = r;
		}
	}
	if (add != NULL)
		table_add(t, add);
	publish(t);
	c->next = NULL;
	for (size_t i = 0; i < c->n; i++) {
		struct sm_region *r = c->old[i];

		atomic_store(&r->state, SM_DEAD);
		release(r);
		r->retired_next = retired_regions;
		retired_regions = r;
	}
	/* The fresh slots handed to the table are no longer ours to free. */
	for (size_t i = 0; i < used; i++)
		c->fresh[i] = NULL;
	cut_free(c);
	reclaim();
}

struct sm_file *sm_file_find(dev_t dev, ino_t ino)
{
	for (struct sm_file *f = files; f != NULL; f = f->next)
		if (f->dev == dev && f->ino == ino && f->nref > 0)
			return f;
	return NULL;
}

static int is_cow_fs(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) != 0)
		return 0;
	switch ((unsigned long)sf.f_type) {
	case BTRFS_SUPER_MAGIC:
	case BCACHEFS_SUPER_MAGIC:
	case ZFS_SUPER_MAGIC: return 1;
	default: return 0;
	}
}

static int is_dax(int fd)
{
#ifdef STATX_ATTR_DAX
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0)
		return (stx.stx_attributes_mask & STATX_ATTR_DAX) && (stx.stx_attributes & STATX_ATTR_DAX);
#else
	(void)fd;
#endif
	return 0;
}

/*
 * Which numbers are still the library's.  The program may close any
 * descriptor it did not open (closefrom, close_range) or dup2 over it, and
 * the number may then hold another file, or the program's own descriptor of
 * the same file: the library must neither act on nor close such a number.
 *
 * lfd, the library's own open file description, carries a mark that a
 * description the program opened cannot have by accident: F_SETSIG set to
 * SM_FD_MARK.  The signal an open file description records is used only
 * when O_ASYNC is set on it (the kernel's send_sigio) or a lease of it is
 * broken; the library does neither, so the mark changes nothing.  A fresh
 * open has 0 there (F_GETSIG), and no program asks for 33 on purpose: glibc
 * and musl both keep signals 32 and 33 for themselves.  One fcntl: fine in
 * the fault path too.
 *
 * fd, the duplicate of the program's description, cannot be marked: the
 * mark would be on the program's description (its O_ASYNC signal).  It is
 * recognised by the old heuristic, same inode and close-on-exec (dup2 and
 * most opens give a number without it), and kept high in the table
 * (dup_base) where open(2), which takes the lowest free number, does not
 * reach in a program with fewer descriptors: a program that reopens the
 * file after a close_range gets low numbers.  What remains: a program that
 * puts a close-on-exec descriptor of the same file at exactly that number
 * (dup3 onto it, or hundreds of descriptors open) passes the check, and the
 * library would use and close it as its own.
 */
#define SM_FD_MARK 33

static int same_file_cloexec(int n, const struct sm_file *f)
{
	struct stat st;
	int fl;

	if (n < 0 || fstat(n, &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino)
		return 0;
	fl = fcntl(n, F_GETFD);
	return fl >= 0 && (fl & FD_CLOEXEC);
}

static int dup_is_ours(int n, const struct sm_file *f)
{
	return same_file_cloexec(n, f);
}

/* l is lfd, n is fd: the same number when the library has no description
 * of its own (file_reopen), and then only the heuristic can tell. */
static int lfd_is_ours(int l, int n, const struct sm_file *f)
{
	if (l == n)
		return dup_is_ours(n, f);
	return same_file_cloexec(l, f) && fcntl(l, F_GETSIG) == SM_FD_MARK;
}

int sm_file_fd(struct sm_file *f)
{
	int n = atomic_load_explicit(&f->fd, memory_order_relaxed);

	if (dup_is_ours(n, f))
		return n;
	errno = EBADF;
	return -1;
}

int sm_file_lfd(struct sm_file *f)
{
	int l = atomic_load_explicit(&f->lfd, memory_order_relaxed);
	int n = atomic_load_explicit(&f->fd, memory_order_relaxed);

	if (lfd_is_ours(l, n, f))
		return l;
	errno = EBADF;
	return -1;
}

/* Does /proc/locks list a POSIX lock (held or waited for) of this process on
 * dev:ino?  Its pids are in the pid namespace of that /proc, and so is the
 * name of /proc/self.  1 also when it cannot be read: then nothing may be
 * closed, as far as the library can tell. */
static int proc_locks_held(dev_t dev, ino_t ino)
{
	char self[32], line[256];
	ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);
	long pid;
	FILE *f;
	int held = 0;

	if (n <= 0)
		return 1;
	self[n] = '\0';
	pid = strtol(self, NULL, 10);
	f = fopen("/proc/locks", "re");
	if (f == NULL)
		return 1;
	/* "7: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF", a waiter as
	 * "7: -> POSIX ..."; the device as the kernel's major:minor in hex. */
	while (!held && fgets(line, sizeof(line), f) != NULL) {
		char *p = strchr(line, ':'), type[16];
		unsigned maj, min;
		unsigned long i;
		long lpid;

		if (p == NULL)
			continue;
		p += 1 + strspn(p + 1, " ");
		if (strncmp(p, "->", 2) == 0)
			p += 2;
		if (sscanf(p, "%15s %*s %*s %ld %x:%x:%lu", type, &lpid, &maj, &min, &i) == 5 &&
		    strcmp(type, "POSIX") == 0 && lpid == pid && maj == major(dev) && min == minor(dev) &&
		    i == (unsigned long)ino)
			held = 1;
	}
	fclose(f);
	return held;
}

/* May this process hold a POSIX lock on f's inode?  Asked through the
 * library's descriptor with F_OFD_GETLK: an OFD request's owner is the open
 * file description, the program's POSIX locks belong to its descriptor table,
 * so they conflict with a whole-file write lock and are reported, with our
 * pid.  F_UNLCK means no lock of any kind: one system call (0.5 us on the
 * 6.18 host) in the common case.  A lock of another process may hide ours
 * (one is reported): then /proc/locks, which lists them all, decides (11 us
 * to read a short list; only for files other processes lock too). */
static int holds_posix_lock(const struct sm_file *f, int n)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (fcntl(n, F_OFD_GETLK, &fl) == 0) {
		if (fl.l_type == F_UNLCK)
			return 0;
		if (fl.l_pid == getpid())
			return 1;
	}
	return proc_locks_held(f->dev, f->ino);
}

/*
 * Let go of an unreferenced file's descriptor: 1 if done, 0 if it must wait.
 * Closing any descriptor of an inode drops every POSIX (fcntl) record lock
 * the process holds on it (the kernel's filp_close calls locks_remove_posix
 * with the descriptor table as owner, whichever descriptor it is), so the
 * library closes its own only while the process holds none there.  What
 * remains: a lock another thread takes between the check and the close
 * (microseconds) is dropped; a program that locks a file in one thread while
 * unmapping its last mapping in another is exposed to that.  OFD and flock
 * locks belong to an open file description and are not touched by a close.
 */
static int file_let_go(struct sm_file *f)
{
	int n = atomic_load_explicit(&f->fd, memory_order_relaxed);
	int l = atomic_load_explicit(&f->lfd, memory_order_relaxed);
	int n_ours = dup_is_ours(n, f), l_ours = l != n && lfd_is_ours(l, n, f);

	if (!n_ours && !l_ours)
		return 1; /* the numbers are the program's now: forget them */
	if (holds_posix_lock(f, l_ours ? l : n))
		return 0;
	if (n_ours)
		close(n);
	if (l_ours)
		close(l);
	return 1;
}

/* Files left with nref 0 and their descriptors open, because the process
 * held POSIX locks on them: let go of those whose locks are gone.  Run at
 * each sm_file_get and sm_file_put (a few system calls per parked file), so
 * a parked descriptor lasts until the next map or unmap after the unlock.
 * Nothing is needed at exit: the kernel drops an exiting process's locks. */
static void sweep_parked(void)
{
	for (struct sm_file **pp = &files; *pp != NULL;) {
		struct sm_file *f = *pp;

		if (f->nref == 0 && file_let_go(f)) {
			*pp = f->next;
			free(f);
		} else {
			pp = &f->next;
		}
	}
}

/*
 * The library's own open file description of the program's file, or -1.
 * Writeback errors are reported once per open file description (each struct
 * file samples the mapping's errseq_t), so what the library syncs through a
 * description of its own takes nothing from what the program's fsync will
 * report; a duplicate shares the program's description, and its syncs did.
 * Reopened through /proc/self/fd with the program's access mode, so that the
 * library can do no more than the program could (an O_RDONLY descriptor still
 * gets EACCES for the writable alias).  Not when the program holds a lease on
 * its description: an open for write breaks even the opener's own lease; and
 * with O_NONBLOCK, so that an open that would have to break one fails at once
 * instead of waiting out lease-break-time.  Costs ~7 us per new file (path
 * walk through /proc), and the file sees an extra open and close (inotify).
 */
static int own_description(const struct sm_file *f, int fd)
{
	char path[32];
	int fl = fcntl(fd, F_GETFL), lease = fcntl(fd, F_GETLEASE), n;

	if (fl < 0 || lease == F_RDLCK || lease == F_WRLCK)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	/* The raw system call: under the preload shim, open() may be wrapped,
	 * and this runs with the table lock held. */
	n = (int)syscall(SYS_openat, AT_FDCWD, path, (fl & O_ACCMODE) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (n < 0)
		return -1;
	fcntl(n, F_SETFL, 0); /* O_NONBLOCK was for the open only */
	if (fcntl(n, F_SETSIG, SM_FD_MARK) == 0)
		return n;
	/* Unmarked, it could not be told from the program's (6.12 allocates
	 * the record the signal goes in: ENOMEM; a seccomp filter): not used.
	 * Closed unless that would drop the program's locks; then left open,
	 * one descriptor lost, rather than take them. */
	if (!holds_posix_lock(f, n))
		close(n);
	return -1;
}

/* Where the duplicate goes: the lowest free number from here (F_DUPFD).
 * Half the soft RLIMIT_NOFILE, at most 512: above what most programs ever
 * have open, so open(2) does not hand it to them after they closed it; not
 * higher, as the kernel sizes the descriptor table to the highest number
 * (8 bytes a slot: 1024 slots, where a limit of 2^20 would cost 8 MiB). */
static int dup_base(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < 8)
		return 3;
	return rl.rlim_cur >= 1024 ? 512 : (int)(rl.rlim_cur / 2);
}

/* A new file, a parked one, or one whose descriptor the program took, gets
 * its descriptors from the program's fd: a number no longer ours is not ours
 * to close.  Refused reopening (no /proc mounted, the file's mode changed
 * since the program opened it, a lease) leaves lfd = fd: errors shared with
 * the program, as before, and adoption skipped (durable.c). */
static int file_reopen(struct sm_file *f, int fd)
{
	int n = atomic_load_explicit(&f->fd, memory_order_relaxed);
	int l = atomic_load_explicit(&f->lfd, memory_order_relaxed);

	if (!dup_is_ours(n, f)) {
		/* The user may close theirs right after mapping, as mmap(2)
		 * allows; O_CLOEXEC so that exec leaks nothing of ours.  Low if
		 * there is no room up there (EMFILE). */
		int d = fcntl(fd, F_DUPFD_CLOEXEC, dup_base());

		if (d < 0)
			d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (d < 0)
			return -1;
		if (l == n)
			l = -1; /* it was the same number */
		n = d;
		/* The fault path loads it once and checks it (durable.c). */
		atomic_store_explicit(&f->fd, n, memory_order_relaxed);
	}
	if (!lfd_is_ours(l, n, f)) {
		l = own_description(f, fd);
		atomic_store_explicit(&f->lfd, l >= 0 ? l : n, memory_order_relaxed);
	}
	return 0;
}

struct sm_file *sm_file_get(int fd)
{
	struct stat st;
	struct sm_file *f;

	sweep_parked();
	if (fstat(fd, &st) != 0)
		return NULL;
	for (f = files; f != NULL; f = f->next)
		if (f->dev == st.st_dev && f->ino == st.st_ino)
			break;
	if (f != NULL) {
		if (file_reopen(f, fd) != 0)
			return NULL;
		f->nref++;
		return f;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	atomic_init(&f->fd, -1);
	atomic_init(&f->lfd, -1);
	if (file_reopen(f, fd) != 0) {
		free(f);
		return NULL;
	}
	f->nref = 1;
	f->dax = is_dax(fd);
	f->cow = is_cow_fs(fd);
	f->next = files;
	files = f;
	return f;
}

void sm_file_put(struct sm_file *f)
{
	if (f == NULL || --f->nref > 0)
		return;
	/* Parked (nref 0, still listed) until its descriptor may be closed;
	 * the next map of the inode takes it back. */
	sweep_parked();
}

struct sm_bits *sm_bits_new(off_t off, size_t len, size_t grain)
{
	struct sm_bits *b = calloc(1, sizeof(*b));
	size_t words;
	void *w;

	if (b == NULL)
		return NULL;
	b->g0 = (uint64_t)off / grain;
	b->n = ((uint64_t)off + len - 1) / grain - b->g0 + 1;
	words = (b->n + 63) / 64;
	b->bytes = (words * 8 + sm_cfg.page - 1) & ~(sm_cfg.page - 1);
	/* MAP_NORESERVE: a 1 TiB sparse mapping needs 32 MiB of bits at 4 KiB
	 * grains, of which only the words of written grains are ever touched. */
	w = sm_sys_mmap(NULL, b->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			-1, 0);
	if (w == MAP_FAILED) {
		free(b);
		return NULL;
	}
	b->w = w;
	b->nref = 1;
	return b;
}

void sm_bits_put(struct sm_bits *b)
{
	if (b == NULL || --b->nref > 0)
		return;
	sm_sys_munmap((void *)b->w, b->bytes);
	free(b);
}

void sm_bits_clear(struct sm_bits *b, uint64_t from, uint64_t to)
{
	if (from < b->g0)
		from = b->g0;
	if (to > b->g0 + b->n)
		to = b->g0 + b->n;
	for (uint64_t g = from; g < to;) {
		uint64_t i = g - b->g0, bit = i % 64, cnt = 64 - bit;
		uint64_t mask;

		if (cnt > to - g)
			cnt = to - g;
		mask = (cnt == 64 ? ~(uint64_t)0 : (((uint64_t)1 << cnt) - 1)) << bit;
		atomic_fetch_and(&b->w[i / 64], ~mask);
		g += cnt;
	}
}

uint64_t sm_bits_next(struct sm_bits *b, uint64_t g, uint64_t hi, int want)
{
	uint64_t end = b->g0 + b->n;

	if (g < b->g0) {
		if (!want)
			return g < hi ? g : hi;
		g = b->g0;
	}
	while (g < hi && g < end) {
		uint64_t i = g - b->g0;
		uint64_t word = atomic_load_explicit(&b->w[i / 64], memory_order_acquire);

		/* Bits past n in the last word are zero: "clear", as outside the map. */
		if (!want)
			word = ~word;
		word >>= i % 64;
		if (word != 0) {
			g += (uint64_t)__builtin_ctzll(word);
			return g < hi ? g : hi;
		}
		g += 64 - i % 64;
	}
	if (g >= hi)
		return hi;
	return want ? hi : g; /* past the map: clear */
}

uint64_t sm_bits_prev_set(struct sm_bits *b, uint64_t g, uint64_t lo)
{
	if (g >= b->g0 + b->n)
		g = b->g0 + b->n - 1;
	if (lo < b->g0)
		lo = b->g0;
	while (g >= lo && g != UINT64_MAX) {
		uint64_t i = g - b->g0;
		uint64_t word = atomic_load_explicit(&b->w[i / 64], memory_order_acquire);
		uint64_t step = i % 64 + 1;

		word <<= 63 - i % 64; /* drop the bits above i */
		if (word != 0) {
			uint64_t hit = g - (uint64_t)__builtin_clzll(word);

			return hit >= lo ? hit : UINT64_MAX;
		}
		if (i < step)
			break;
		g -= step;
	}
	return UINT64_MAX;
}

void sm_table_after_fork_child(void)
{
	struct sm_table *t = atomic_load(&table);

	atomic_store(&readers, 0);
	for (size_t i = 0; t != NULL && i < t->n; i++)
		atomic_store(&t->r[i]->refs, 0);
}

enum syncmap_mode syncmap_mode(const void *addr)
{
	struct sm_region *r;

	for (;;) {
		switch (sm_region_get((uintptr_t)addr, &r)) {
		case SM_NOTFOUND: return SYNCMAP_MODE_NONE;
		case SM_FOUND: {
			enum syncmap_mode m = (enum syncmap_mode)r->mode;

			sm_region_put(r);
			return m;
		}
		default: sched_yield(); /* a writer is changing it: ask again when done */
		}
	}
}
