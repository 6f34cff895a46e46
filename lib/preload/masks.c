/* SPDX-License-Identifier: MIT */
/* masks.c -- sigprocmask and kin: SIGSEGV stays deliverable, and the program reads back the mask it asked for
 *
 * A first write to a FAULT grain is a SIGSEGV that the library's handler
 * turns into a durable grain.  If the writing thread blocks SIGSEGV, the
 * kernel does not queue that fault: force_sig_info_to_task()
 * (kernel/signal.c) finds it blocked, resets the action to SIG_DFL, unblocks
 * it, and the process dies.  With plain mmap the same write just works, and
 * blocking every signal in a worker thread (sigfillset + pthread_sigmask) is
 * common.  So the shim never lets a program block SIGSEGV for real: every
 * mask it sets reaches the kernel without SIGSEGV, and the thread's wish is
 * kept in a thread-local flag that is added back to every mask it reads.
 *
 * Covered: pthread_sigmask, sigprocmask, sighold/sigrelse,
 * sigblock/sigsetmask/siggetmask, sigset(SIG_HOLD) (signals.c), the masks
 * that sigsuspend, ppoll, pselect and epoll_pwait(2) set while they wait
 * (a handler run there runs with them), the sa_mask of every other signal's
 * handler (signals.c), a thread's mask inherited by pthread_create or set
 * by pthread_attr_setsigmask_np, and a mask inherited across execve (taken
 * over when the shim starts).  What is left is in README.md (Limits).
 *
 * The library inside this object sets real masks, on purpose: around its
 * chain lock, for the program's own SIGSEGV handler (which runs with
 * SIGSEGV blocked, as the kernel runs it, so that a fault of its own there
 * kills as it would without us), and in its engine thread.  The link maps
 * the library's calls of pthread_sigmask and sigprocmask to __wrap_* below
 * (ld --wrap, lib/preload/CMakeLists.txt), which go to libc's.
 */
#include "preload.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/select.h>

/* This thread's program asked for SIGSEGV blocked.  initial-exec: the
 * shim is loaded at start (static TLS), and the access must be
 * async-signal-safe (a handler may change masks), which a __tls_get_addr
 * that allocates is not. */
static __thread int held __attribute__((tls_model("initial-exec")));

/* The mask with SIGSEGV taken out: m itself, or copy. */
static const sigset_t *without_segv(const sigset_t *m, sigset_t *copy)
{
	if (m == NULL || sigismember(m, SIGSEGV) != 1)
		return m;
	*copy = *m;
	sigdelset(copy, SIGSEGV);
	return copy;
}

/*
 * pthread_sigmask and sigprocmask, with fn the next definition of either.
 * Returns what fn returns, or -1 with errno if *old lies in a FAULT grain
 * that cannot be made durable.  *old is written by the kernel (EFAULT for a
 * bad pointer, as without the shim): where it lies in a FAULT mapping it is
 * readied first, as a read(2) buffer is (buffers.c).
 */
static int set_mask(int (*fn)(int, const sigset_t *, sigset_t *), int how, const sigset_t *set, sigset_t *old)
{
	int was = held, in = set != NULL && sigismember(set, SIGSEGV) == 1;
	sigset_t copy;
	int rc;

	if (!pl_on_wait())
		return fn(how, set, old);
	if (old != NULL && pl_buffer(old, sizeof(*old)) != 0)
		return -1;
	rc = fn(how, without_segv(set, &copy), old);
	if (rc != 0)
		return rc; /* EINVAL for a bad how: nothing changed */
	if (old != NULL && was)
		sigaddset(old, SIGSEGV);
	if (set != NULL) {
		if (how == SIG_BLOCK)
			held = was || in;
		else if (how == SIG_UNBLOCK)
			held = was && !in;
		else
			held = in; /* SIG_SETMASK: the kernel took it, so how was valid */
	}
	return 0;
}

int pl_mask_change(int how, const sigset_t *set, sigset_t *old)
{
	return set_mask(REAL(sigprocmask), how, set, old);
}

PL_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	int rc = set_mask(REAL(pthread_sigmask), how, set, old);

	return rc == -1 ? errno : rc;
}

PL_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	return set_mask(REAL(sigprocmask), how, set, old);
}

/* The library's own calls (see the top of this file). */
int __wrap_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	return REAL(pthread_sigmask)(how, set, old);
}

int __wrap_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	return REAL(sigprocmask)(how, set, old);
}

/* System V and BSD forms: libc implements them with its internal
 * sigprocmask, out of our reach, so they are implemented here as libc
 * does. */
PL_EXPORT int sighold(int sig)
{
	sigset_t s;

	sigemptyset(&s);
	if (sigaddset(&s, sig) != 0)
		return -1;
	return pl_mask_change(SIG_BLOCK, &s, NULL);
}

PL_EXPORT int sigrelse(int sig)
{
	sigset_t s;

	sigemptyset(&s);
	if (sigaddset(&s, sig) != 0)
		return -1;
	return pl_mask_change(SIG_UNBLOCK, &s, NULL);
}

/* The BSD int masks: bit sig - 1 for signals 1 to 32. */
static int bsd_mask(int how, int mask)
{
	sigset_t s, old;
	int r = 0;

	sigemptyset(&s);
	for (int sig = 1; sig <= 32; sig++)
		if ((unsigned)mask & (1u << (sig - 1)))
			sigaddset(&s, sig);
	if (pl_mask_change(how, &s, &old) != 0)
		return -1;
	for (int sig = 1; sig <= 32; sig++)
		if (sigismember(&old, sig) == 1)
			r |= (int)(1u << (sig - 1));
	return r;
}

PL_EXPORT int sigblock(int mask)
{
	return bsd_mask(SIG_BLOCK, mask);
}

PL_EXPORT int sigsetmask(int mask)
{
	return bsd_mask(SIG_SETMASK, mask);
}

PL_EXPORT int siggetmask(void)
{
	return bsd_mask(SIG_BLOCK, 0);
}

/* The waits that install a mask of their own until they return: a handler
 * that runs meanwhile runs with it. */
PL_EXPORT int sigsuspend(const sigset_t *mask)
{
	sigset_t copy;

	return REAL(sigsuspend)(pl_on_wait() ? without_segv(mask, &copy) : mask);
}

PL_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
	sigset_t copy;

	return REAL(ppoll)(fds, n, ts, pl_on_wait() ? without_segv(mask, &copy) : mask);
}

PL_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask,
			  size_t fdslen)
{
	sigset_t copy;

	return REAL(ppoll_chk)(fds, n, ts, pl_on_wait() ? without_segv(mask, &copy) : mask, fdslen);
}

PL_EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *ts, const sigset_t *mask)
{
	sigset_t copy;

	return REAL(pselect)(n, r, w, e, ts, pl_on_wait() ? without_segv(mask, &copy) : mask);
}

PL_EXPORT int epoll_pwait(int ep, struct epoll_event *ev, int max, int timeout, const sigset_t *mask)
{
	sigset_t copy;

	return REAL(epoll_pwait)(ep, ev, max, timeout, pl_on_wait() ? without_segv(mask, &copy) : mask);
}

PL_EXPORT int epoll_pwait2(int ep, struct epoll_event *ev, int max, const struct timespec *ts,
			   const sigset_t *mask)
{
	sigset_t copy;

	return REAL(epoll_pwait2)(ep, ev, max, ts, pl_on_wait() ? without_segv(mask, &copy) : mask);
}

/* This thread starts with SIGSEGV blocked for real (a mask inherited
 * across execve, or given by pthread_attr_setsigmask_np): unblock it and
 * remember the wish.  Runs before any code of the program's in the thread. */
static void adopt(int inherited)
{
	sigset_t cur, one;

	held = inherited;
	if (REAL(pthread_sigmask)(SIG_SETMASK, NULL, &cur) != 0 || sigismember(&cur, SIGSEGV) != 1)
		return;
	sigemptyset(&one);
	sigaddset(&one, SIGSEGV);
	if (REAL(pthread_sigmask)(SIG_UNBLOCK, &one, NULL) == 0)
		held = 1;
}

void pl_masks_start(void)
{
	adopt(0);
}

/* A new thread inherits its creator's mask: the wish too.  Only a thread
 * created with SIGSEGV wished blocked (or a mask attribute that blocks it)
 * goes through the trampoline; every other pthread_create is passed on. */
struct start {
	void *(*fn)(void *);
	void *arg;
	int held;
};

static void *started(void *p)
{
	struct start s = *(struct start *)p;

	free(p);
	adopt(s.held);
	return s.fn(s.arg);
}

static int attr_blocks_segv(const pthread_attr_t *attr)
{
	sigset_t m;

	return attr != NULL && pthread_attr_getsigmask_np(attr, &m) == 0 && sigismember(&m, SIGSEGV) == 1;
}

PL_EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct start *s;
	int rc;

	if (!(held || attr_blocks_segv(attr)) || !pl_on())
		return REAL(pthread_create)(t, attr, fn, arg);
	s = malloc(sizeof(*s));
	if (s == NULL)
		return EAGAIN;
	s->fn = fn;
	s->arg = arg;
	s->held = held;
	rc = REAL(pthread_create)(t, attr, started, s);
	if (rc != 0)
		free(s);
	return rc;
}
