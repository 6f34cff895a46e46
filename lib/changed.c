/* SPDX-License-Identifier: MIT */
/* changed.c -- un-readying ranges when the file's blocks go away (syncmap_file_changed)
 *
 * The shim calls this after open(O_TRUNC), creat, ftruncate and fallocate,
 * which POSIX makes async-signal-safe (the first three): a signal handler
 * writing a crash or state file lands here.  If it interrupted its own
 * thread while that thread held the table lock (any mmap, munmap or
 * mprotect of the library's) or a ref on a region (the fault handler
 * readying a grain, a read(2) buffer being readied), taking the lock or
 * waiting for the refs would wait for itself forever.  Such a thread is
 * "holding" (changed.h): its re-protections are queued, per thread, and
 * done by the thread itself at the release that ends its last hold, before
 * that call returns.  Meanwhile the grains of the freed blocks are still
 * writable: a write to them by the handler itself, or by another thread,
 * before the interrupted call returns, allocates without a sync (the race
 * the shim's README names for other threads).
 *
 * What is still not async-signal-safe: a handler whose thread holds
 * nothing takes the table lock, and waits for another thread that holds
 * it.  That wait ends unless the other thread waits for a ref that the
 * handler's own thread holds outside a hold: every call that keeps a ref
 * across system calls holds (fault.c, prepare.c, flush.c, the adoption in
 * map.c, the shim's buffers and MADV_REMOVE); syncmap_mode() keeps one for
 * a few instructions without (lib/preload/README.md, Limits).  And the
 * first call into the library, if it is this one, initialises it
 * (sm_init: allocates); a process with a mapping of the library's is past
 * that.  Nothing else here allocates: the regions are walked under the
 * lock with the lock-free lookup, not copied (sm_regions_in mallocs).
 */
#include "changed.h"

#include "config.h"
#include "durable.h"
#include "init.h"
#include "region.h"
#include "sys.h"
#include "syncmap.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* [off, off + len) of the file, in r's user addresses widened to whole grains:
 * a grain with any block freed is no longer durable as a whole. */
static int affected(const struct sm_region *r, uint64_t off, uint64_t end, uintptr_t *s, uintptr_t *e)
{
	uint64_t r_off = (uint64_t)r->off, r_end = r_off + (r->end - r->start);

	if (end <= r_off || off >= r_end)
		return 0;
	off = off > r_off ? off : r_off;
	end = end < r_end ? end : r_end;
	*s = sm_grain_start(r, off / r->grain);
	*e = sm_grain_end(r, (end - 1) / r->grain);
	return 1;
}

int syncmap_file_changed(int fd, off_t off, off_t len)
{
	struct stat st;

	sm_init();
	if (off < 0 || len < 0) {
		errno = EINVAL;
		return -1;
	}
	if (fstat(fd, &st) != 0)
		return -1;
	return sm_file_changed_ino(st.st_dev, st.st_ino, off, len);
}

/* [off, end) of file dev:ino, or of every file (all): re-protect it in the
 * FAULT mappings now.  This thread holds nothing. */
static int reprotect(dev_t dev, ino_t ino, uint64_t off, uint64_t end, int all)
{
	struct sm_file *f = NULL;
	uintptr_t a = 0;
	int rc = 0;

	sm_table_lock();
	if (!all)
		f = sm_file_find(dev, ino);
	while (all || f != NULL) {
		struct sm_region *r;
		uintptr_t s, e;
		int st = sm_region_next(a, &r);

		if (st == SM_NOTFOUND)
			break;
		if (st == SM_BUSY) {
			/* Only a writer blocks a region, under the lock we hold,
			 * and unblocks it before letting go: not met here. */
			sched_yield();
			continue;
		}
		/* The ref is not needed: under the table lock no one else
		 * changes or frees a region, and ours must not be held while
		 * sm_region_block() waits for refs to drain. */
		sm_region_put(r);
		a = r->end;
		if (r->mode != SYNCMAP_MODE_FAULT || (!all && r->file != f) || !affected(r, off, end, &s, &e))
			continue;
		/* Blocked, so no fault is between its sync and its upgrade while
		 * the bits go and the protection drops. */
		sm_region_block(r);
		sm_bits_clear(r->bits, sm_grain_of(r, s), sm_grain_of(r, e - 1) + 1);
		if (sm_sys_mprotect((void *)s, e - s, sm_prot_readonly(r->prot)) != 0)
			rc = -1;
		sm_region_unblock(r);
	}
	sm_table_unlock();
	return rc;
}

/* The re-protections this thread put off, merged per file; more files than
 * slots and every FAULT mapping is re-protected whole (more faults, never a
 * grain missed).  initial-exec: a handler reads them, and a first access
 * through __tls_get_addr may allocate. */
#define QUEUED 4
struct change {
	dev_t dev;
	ino_t ino;
	uint64_t off, end;
};
#define TLS __thread __attribute__((tls_model("initial-exec")))
static TLS unsigned holds;
static TLS unsigned nqueued;
static TLS int queued_all;
static TLS struct change queued[QUEUED];

/* The queue is changed only with every signal blocked: a handler that
 * interrupts this thread may queue (while it holds) or drain (at its own
 * last release) too. */
static void queue(dev_t dev, ino_t ino, uint64_t off, uint64_t end)
{
	sigset_t every, saved;
	unsigned i;

	sigfillset(&every);
	pthread_sigmask(SIG_BLOCK, &every, &saved);
	for (i = 0; i < nqueued && !(queued[i].dev == dev && queued[i].ino == ino); i++)
		;
	if (i < nqueued) {
		queued[i].off = off < queued[i].off ? off : queued[i].off;
		queued[i].end = end > queued[i].end ? end : queued[i].end;
	} else if (nqueued < QUEUED) {
		queued[nqueued++] = (struct change){dev, ino, off, end};
	} else {
		queued_all = 1;
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/* errno kept: the caller is returning its own call's. */
static void drain(void)
{
	int saved_errno = errno;

	while (nqueued != 0 || queued_all) {
		struct change c[QUEUED];
		sigset_t every, saved;
		unsigned n;
		int all;

		sigfillset(&every);
		pthread_sigmask(SIG_BLOCK, &every, &saved);
		n = nqueued;
		all = queued_all;
		memcpy(c, queued, sizeof(c));
		nqueued = 0;
		queued_all = 0;
		pthread_sigmask(SIG_SETMASK, &saved, NULL);
		if (all)
			reprotect(0, 0, 0, UINT64_MAX, 1);
		else
			for (unsigned i = 0; i < n; i++)
				reprotect(c[i].dev, c[i].ino, c[i].off, c[i].end, 0);
	}
	errno = saved_errno;
}

/* A handler that interrupts an increment or decrement puts the count back
 * as it found it before the interrupted code goes on: plain accesses do. */
void sm_changes_hold(void)
{
	holds++;
}

void sm_changes_release(void)
{
	if (--holds == 0 && (nqueued != 0 || queued_all))
		drain();
}

int sm_file_changed_ino(dev_t dev, ino_t ino, off_t off, off_t len)
{
	uint64_t end = len == 0 || (uint64_t)off + (uint64_t)len < (uint64_t)off
			       ? UINT64_MAX
			       : (uint64_t)off + (uint64_t)len;

	if (holds != 0) {
		/* A handler on a thread that holds the lock or a ref. */
		queue(dev, ino, (uint64_t)off, end);
		return 0;
	}
	return reprotect(dev, ino, (uint64_t)off, end, 0);
}
