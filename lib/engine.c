/* SPDX-License-Identifier: MIT */
/* engine.c -- the background thread: a libuv loop that readies grains ahead of writers
 *
 * The fault handler cannot allocate or lock, so requests travel through a
 * fixed ring (a bounded multi-producer queue: a producer claims a slot by
 * CAS on `head`, fills it, then publishes it through the slot's sequence
 * number) and the loop is woken by uv_async_send, which libuv documents as
 * async-signal-safe.  Requests carry addresses, not region pointers: the
 * engine looks regions up again and holds a ref while it works, so an unmap
 * waits for it instead of pulling the mapping from under it.
 */
#include "engine.h"

#include "config.h"
#include "init.h"
#include "durable.h"
#include "stats.h"
#include "sys.h"
#include "syncmap.h"
#include "testpoint.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define RING_SIZE 1024 /* power of two */

struct req {
	uintptr_t s, e; /* page-aligned range to ready */
	uintptr_t trip; /* a grain start inside [s, e) left read-only, or 0 */
	int mark;	/* the busy mark put on the region when queued, or 0 */
};

struct cell {
	_Atomic size_t seq;
	struct req req;
};

static struct cell ring[RING_SIZE];
static _Atomic size_t head;
static size_t tail; /* the engine thread's alone */
static _Atomic uint64_t posted, served;

static pthread_mutex_t start_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int running;
/* Changes at every start (never 0), so a busy mark left by an engine that
 * is gone never matches the one running.  In a forked child `running` is
 * cleared by the fork handler; a child made without them (a raw clone) is
 * covered by the wait's time limit. */
static _Atomic int token;
static _Atomic unsigned mark_seq; /* busy mark ids; 0 is never one */
static _Atomic int stopping;
static _Atomic pid_t owner; /* the process whose thread `running` means */
/* A sequential writer was seen while no engine ran: the next library call
 * from an application thread starts it (the fault handler cannot create a
 * thread: pthread_create is not async-signal-safe). */
static _Atomic int want_start;
/* One loop per process.  A forked child does not reuse its copy of the
 * parent's: uv_loop_fork is experimental, and the copied async handle may
 * carry a "wake-up pending" flag that nobody will ever clear. */
static uv_loop_t *loop;
static uv_async_t *_Atomic wake;
/* The loops of the ancestors a forked child was copied from: never run,
 * never freed (uv_loop_close would need to run them), kept reachable through
 * a chain: stale -> its loop's data (its wake) -> the wake's data (the next
 * stale loop). */
static uv_loop_t *stale;
static pthread_t thread;

static void wake_up(void)
{
	uv_async_t *w = atomic_load(&wake);

	if (w != NULL)
		uv_async_send(w);
}

static void ring_reset(void)
{
	for (size_t i = 0; i < RING_SIZE; i++)
		atomic_store_explicit(&ring[i].seq, i, memory_order_relaxed);
	atomic_store(&head, 0);
	tail = 0;
}

static int push(const struct req *q)
{
	size_t pos = atomic_load_explicit(&head, memory_order_relaxed);

	for (;;) {
		struct cell *c = &ring[pos & (RING_SIZE - 1)];
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)pos;

		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&head, &pos, pos + 1, memory_order_relaxed,
								  memory_order_relaxed)) {
				c->req = *q;
				/* release: the request is visible before the slot is. */
				atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
				atomic_fetch_add(&posted, 1);
				return 0;
			}
		} else if (dif < 0) {
			return -1; /* full */
		} else {
			pos = atomic_load_explicit(&head, memory_order_relaxed);
		}
	}
}

static int pop(struct req *q)
{
	struct cell *c = &ring[tail & (RING_SIZE - 1)];

	if (atomic_load_explicit(&c->seq, memory_order_acquire) != tail + 1)
		return 0;
	*q = c->req;
	atomic_store_explicit(&c->seq, tail + RING_SIZE, memory_order_release);
	tail++;
	return 1;
}

static uint64_t clear_grains(struct sm_region *r, uintptr_t s, uintptr_t e)
{
	uint64_t n = 0, last = sm_grain_of(r, e - 1);

	for (uint64_t g = sm_grain_of(r, s); g <= last; g++)
		n += !sm_bit_test(r->bits, g);
	return n;
}

static void futex_wake_all(_Atomic int *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Busy marks: "the engine will ready [s, e) of this region, wait for it".
 * A fault-driven window is marked when it is queued, so that a writer that
 * gets there before the engine starts (on one CPU it usually does) waits
 * rather than syncing the same grains; prepare_async ranges when served.
 * One mark per region: a newer window's replaces an older one's, and the
 * engine clears only its own.  Only who waits depends on them. */
static int next_mark(void)
{
	unsigned m;

	do
		m = atomic_fetch_add(&mark_seq, 1) + 1;
	while ((int)m == 0);
	return (int)m;
}

static void set_mark(struct sm_region *r, uintptr_t s, uintptr_t e, int id, int tid)
{
	atomic_store(&r->eng_busy_tid, tid);
	atomic_store(&r->eng_busy_s, s);
	atomic_store(&r->eng_busy_e, e);
	atomic_store(&r->eng_busy_tok, atomic_load(&token));
	atomic_store(&r->eng_busy, id);
}

static void clear_mark(struct sm_region *r, int id)
{
	if (atomic_compare_exchange_strong(&r->eng_busy, &id, 0))
		futex_wake_all(&r->eng_busy);
}

/* Ready [s, e) of FAULT region r, leaving the tripwire grain durable but
 * read-only: the writer's fault there is cheap (no sync) and asks for the
 * next window. */
static void serve_fault(struct sm_region *r, uintptr_t s, uintptr_t e, uintptr_t trip, int mark)
{
	uint64_t fresh = clear_grains(r, s, e);
	int err;

	SM_TESTPOINT(SM_TP_ENGINE);
	if (mark == 0) {
		mark = next_mark();
		set_mark(r, s, e, mark, 0);
	}
	/* One allocation and one sync for the whole window, then the upgrades
	 * around the tripwire (its bits are set: no sync there). */
	err = sm_ready(r, s, e, 0);
	if (err == 0 && trip >= s && trip < e) {
		uintptr_t te = sm_grain_end(r, sm_grain_of(r, trip));

		if (trip > s)
			err = sm_ready(r, s, trip, r->prot);
		if (err == 0 && te < e)
			err = sm_ready(r, te, e, r->prot);
	} else if (err == 0) {
		err = sm_ready(r, s, e, r->prot);
	}
	clear_mark(r, mark);
	/* Errors (ENOSPC, a range past EOF) are left for the writer's own fault
	 * to meet and report; the engine only runs ahead. */
	if (err == 0)
		SM_STAT_ADD(presync_grains, fresh);
}

/* The longest a writer waits for the engine's window: far beyond any window
 * seen (a 64 MiB one takes about 2 s in the TCG guest), so a slow machine
 * never makes a writer sync a grain twice; it only ends a wait that cannot
 * end otherwise (a signal handler whose interrupted fault was inside the
 * library while the engine waits on that region's change: see below). */
#define WAIT_LIMIT_ROUNDS 3000 /* x 10 ms = 30 s */

void sm_engine_wait(struct sm_region *r, uintptr_t a)
{
	int self = (int)syscall(SYS_gettid);

	/* The engine always finishes a window it marked: it never touches user
	 * memory, and a waiter leaves as soon as its region is blocked by a
	 * change, so the changer never waits for it.  The 10 ms timeout only
	 * re-reads the conditions below, which can change without a futex
	 * wake: the region blocked by another thread, the engine stopping.
	 * Never wait on a mark one's own thread is still queuing (a handler
	 * nested in the fault that set it); nor in a process that is not the
	 * engine's (a raw clone without the fork handlers).  The round limit is
	 * a last resort, not a timing: a writer that reaches it readies its own
	 * grain, which is correct, only one sync more. */
	for (int round = 0; round < WAIT_LIMIT_ROUNDS; round++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		int t = atomic_load(&r->eng_busy);

		if (t == 0 || atomic_load(&r->eng_busy_tok) != atomic_load(&token) ||
		    !atomic_load(&running) || atomic_load(&owner) != (pid_t)syscall(SYS_getpid) ||
		    atomic_load(&r->eng_busy_tid) == self || a < atomic_load(&r->eng_busy_s) ||
		    a >= atomic_load(&r->eng_busy_e) ||
		    atomic_load(&r->state) != SM_LIVE) /* someone is changing the mapping: don't hold it up */
			return;
		syscall(SYS_futex, &r->eng_busy, FUTEX_WAIT_PRIVATE, t, &ts, NULL, 0);
	}
}

static int serve_one(struct sm_region *r, uintptr_t s, uintptr_t e, void *arg)
{
	const struct req *q = arg;

	if (r->mode == SYNCMAP_MODE_FAULT)
		serve_fault(r, s, e, q->trip, q->mark);
	else if (r->mode == SYNCMAP_MODE_KERNEL && (r->prot & PROT_WRITE))
		madvise((void *)s, e - s, MADV_POPULATE_WRITE); /* the kernel's sync faults, here */
	return 0;
}

static void serve(const struct req *q)
{
	sm_regions_walk(q->s, q->e, serve_one, (void *)q);
}

static void on_wake(uv_async_t *h)
{
	struct req q;

	while (pop(&q)) {
		serve(&q);
		atomic_fetch_add(&served, 1);
	}
	if (atomic_load(&stopping))
		uv_stop(h->loop);
}

static void *engine_main(void *arg)
{
	sigset_t all;

	(void)arg;
	/* Signals for the process go to the application's threads, not ours. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	return NULL;
}

static int make_loop(void)
{
	uv_loop_t *l = malloc(sizeof(*l));
	uv_async_t *w = malloc(sizeof(*w));

	ring_reset(); /* nothing is queued while no thread runs */
	if (l == NULL || w == NULL || uv_loop_init(l) != 0) {
		free(l);
		free(w);
		return -1;
	}
	if (uv_async_init(l, w, on_wake) != 0) {
		uv_loop_close(l);
		free(l);
		free(w);
		return -1;
	}
	l->data = w;
	w->data = NULL;
	loop = l;
	atomic_store(&wake, w);
	return 0;
}

int sm_engine_start(void)
{
	int rc = 0;

	if (atomic_load(&running))
		return 0;
	pthread_mutex_lock(&start_mutex);
	if (atomic_load(&running))
		goto out;
	if (loop == NULL && make_loop() != 0)
		goto fail;
	atomic_store(&stopping, 0);
	atomic_store(&token,
		     atomic_load(&token) == INT_MAX ? 1 : atomic_load(&token) + 1); /* start_mutex held */
	if (pthread_create(&thread, NULL, engine_main, NULL) != 0)
		goto fail;
	atomic_store(&owner, getpid());
	atomic_store(&running, 1);
	goto out;
fail:
	errno = EAGAIN;
	rc = -1;
out:
	pthread_mutex_unlock(&start_mutex);
	return rc;
}

int sm_engine_post(uintptr_t s, uintptr_t e)
{
	struct req q = {s, e, 0, 0};

	if (push(&q) != 0) {
		errno = ENOMEM;
		return -1;
	}
	wake_up();
	return 0;
}

/* Does a fault at grain g continue r's run in order: the grain after the
 * previous fault (last: that fault's grain + 1, 0 before any fault), or the
 * one the last window asked for? */
static int in_order(const struct sm_region *r, uint64_t last, uint64_t g)
{
	return (last != 0 && last == g) || atomic_load(&r->eng_expect) == g + 1;
}

void sm_engine_fault(struct sm_region *r, uintptr_t a)
{
	uint64_t g = sm_grain_of(r, a), trip, first = sm_grain_of(r, r->start), last;
	uint64_t depth = (uint64_t)sm_cfg.presync_depth;
	struct req q;
	int self;

	if (!sm_cfg.presync)
		return;
	last = atomic_exchange(&r->eng_last, g + 1);
	/* In order, or the first grain of the mapping. */
	if (!in_order(r, last, g) && !(last == 0 && g == first))
		return;
	if (!atomic_load(&running)) {
		/* Two faults in order make a sequential writer; one is only a
		 * first write (last == 0, even at grain 0). */
		if (last != 0 && last == g)
			atomic_store(&want_start, 1);
		return;
	}
	if (sm_grain_end(r, g) >= r->end)
		return;
	trip = g + 1 + depth / 2;
	q.s = sm_grain_start(r, g + 1);
	q.e = sm_grain_end(r, g + depth);
	q.trip = sm_grain_start(r, trip) < q.e ? sm_grain_start(r, trip) : 0;
	atomic_store(&r->eng_expect, trip + 1);
	q.mark = next_mark();
	/* The mark goes on before the engine can see the request, with the
	 * marking thread recorded until the request is queued and the engine
	 * woken: a signal handler that interrupts this thread in between, and
	 * writes into the window, must not wait for a request only the
	 * interrupted code can send.  Afterwards the same thread's later
	 * faults in the window wait like anyone's. */
	self = (int)syscall(SYS_gettid);
	set_mark(r, q.s, q.e, q.mark, self);
	if (sm_test_engine_marked_hook != NULL)
		sm_test_engine_marked_hook();
	if (push(&q) == 0)
		wake_up();
	else
		clear_mark(r, q.mark);
	atomic_compare_exchange_strong(&r->eng_busy_tid, &self, 0);
}

/* The engine starts at the writer's next call into the library (a thread
 * cannot be made in a signal handler); a program that only stores makes no
 * such call, and without this would pay one sync per grain.  The window is
 * 4 times the last one, so that a short run allocates little ahead of it,
 * and never more than the pre-sync depth or INLINE_MAX: the faulting write
 * waits for all of it, and a sparse file grows by all of it. */
#define INLINE_MAX ((uint64_t)1 << 20)

uintptr_t sm_engine_reach(struct sm_region *r, uintptr_t pg)
{
	uint64_t g = sm_grain_of(r, pg), depth = (uint64_t)sm_cfg.presync_depth, w;
	uintptr_t e;

	if (!sm_cfg.presync || atomic_load(&running))
		return pg + sm_cfg.page;
	if (INLINE_MAX / r->grain < depth)
		depth = INLINE_MAX / r->grain;
	/* A first write alone is not a sequential writer; a writer out of
	 * order starts again from the smallest window. */
	if (depth < 2 || !in_order(r, atomic_load(&r->eng_last), g)) {
		atomic_store(&r->eng_inline, 0);
		return pg + sm_cfg.page;
	}
	w = atomic_load(&r->eng_inline) * 4;
	w = w < 4 ? 4 : w > depth ? depth : w;
	e = sm_grain_end(r, g + w - 1);
	atomic_store(&r->eng_inline, w);
	atomic_store(&r->eng_expect, sm_grain_of(r, e - 1) + 2);
	return e;
}

void sm_engine_reach_failed(struct sm_region *r)
{
	/* The next in-order fault tries the smallest window first. */
	atomic_store(&r->eng_inline, 0);
}

void sm_engine_kick(void)
{
	if (sm_cfg.presync && atomic_load(&want_start) && !atomic_load(&running) && sm_engine_start() == 0)
		atomic_store(&want_start, 0);
}

void sm_engine_persisted(struct sm_region *r, uintptr_t end)
{
	size_t span = (size_t)sm_cfg.presync_depth * r->grain;
	uintptr_t ahead = atomic_load_explicit(&r->eng_ahead, memory_order_relaxed);
	uintptr_t from, to;

	if (!sm_cfg.presync || end + span / 2 <= ahead)
		return;
	/* A writer persisting through a KERNEL mapping in order (this persist
	 * ends after the last one, within a window of it) is the one whose next
	 * synchronous faults the engine pays for: start it then.  eng_last holds
	 * the last persisted end here (FAULT regions keep grains in it). */
	if (!atomic_load(&running)) {
		uint64_t prev = atomic_exchange(&r->eng_last, end);

		if (prev == 0 || end <= prev || end - prev > span || sm_engine_start() != 0)
			return;
	}
	from = (end + sm_cfg.page - 1) & ~(uintptr_t)(sm_cfg.page - 1);
	if (from < ahead)
		from = ahead;
	to = end + span < r->end ? (end + span) & ~(uintptr_t)(sm_cfg.page - 1) : r->end;
	if (from >= to || !atomic_compare_exchange_strong(&r->eng_ahead, &ahead, to))
		return;
	sm_engine_post(from, to);
}

void sm_engine_drain(void)
{
	uint64_t want = atomic_load(&posted);

	while (atomic_load(&running) && atomic_load(&served) < want) {
		struct timespec ts = {0, 100 * 1000};

		nanosleep(&ts, NULL);
	}
}

void sm_engine_shutdown(void)
{
	pthread_mutex_lock(&start_mutex);
	if (atomic_load(&running)) {
		atomic_store(&stopping, 1);
		wake_up();
		pthread_join(thread, NULL);
		/* The loop and its eventfd stay: a fault handler that saw `running`
		 * a moment ago may still call uv_async_send, harmlessly. */
		atomic_store(&running, 0);
	}
	pthread_mutex_unlock(&start_mutex);
}

void sm_engine_after_fork_child(void)
{
	/* Only the forking thread exists here, and the engine thread is gone.
	 * The copy of the parent's loop is abandoned (its descriptors are
	 * close-on-exec; its epoll one is closed here) but kept reachable; the
	 * next start makes a loop of the child's own. */
	pthread_mutex_init(&start_mutex, NULL);
	atomic_store(&running, 0);
	atomic_store(&wake, NULL);
	if (loop != NULL) {
		close(uv_backend_fd(loop));
		((uv_async_t *)loop->data)->data = stale;
		stale = loop;
	}
	loop = NULL;
	ring_reset();
	atomic_store(&posted, 0);
	atomic_store(&served, 0);
}

int syncmap_prepare_async(void *addr, size_t len)
{
	uintptr_t s, e;

	sm_init();
	if (len == 0)
		return 0;
	s = (uintptr_t)addr & ~(uintptr_t)(sm_cfg.page - 1);
	e = ((uintptr_t)addr + len + sm_cfg.page - 1) & ~(uintptr_t)(sm_cfg.page - 1);
	if (e < s) {
		errno = EINVAL;
		return -1;
	}
	if (sm_engine_start() != 0)
		return -1;
	return sm_engine_post(s, e);
}
