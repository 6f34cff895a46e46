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
 * The program's own SIGSEGV handler runs with SIGSEGV blocked in this view
 * only (lib/fault.c, chain()): blocked for real, it would stay blocked after
 * a longjmp out of the handler, which restores no mask, and the thread's
 * next first write to a FAULT grain would kill it.  A fault of the
 * handler's own must still kill, as the kernel's would with SIGSEGV
 * blocked; so the handlers running are recorded here (frames, below) and a
 * fault that is not the library's, taken inside one whose view has SIGSEGV
 * blocked, gets the default action.
 *
 * The library inside this object sets real masks, on purpose: around its
 * chain lock and in its engine thread.  The link maps the library's calls
 * of pthread_sigmask and sigprocmask to __wrap_* below (ld --wrap,
 * lib/preload/CMakeLists.txt), which go to libc's.
 */
#include "preload.h"

#include "fault.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

/* This thread's program asked for SIGSEGV blocked.  initial-exec: the
 * shim is loaded at start (static TLS), and the access must be
 * async-signal-safe (a handler may change masks), which a __tls_get_addr
 * that allocates is not. */
#define TLS __thread __attribute__((tls_model("initial-exec")))
static TLS int held;

/*
 * The program's SIGSEGV handlers this thread is running, innermost last.
 * One ends when it returns (leave), when the program jumps out of it with
 * longjmp and kin (wrapped below), or, for a way out no wrapper sees
 * (setcontext, an exception, a jump of its own), when this thread is found
 * running above it: a handler runs below its slot, a word of chain()'s
 * frame that holds a mark while it lives, on the stack it started on.
 * A handler left unseen whose slot is still intact and whose stack the
 * program reuses further down can be taken for running: a fault of the
 * program's own there then kills.  Handlers nested deeper than FRAMES are
 * not recorded (their faults run the handler again).
 */
struct frame {
	volatile uintptr_t *slot;
	uintptr_t mark;
	uintptr_t alt_lo, alt_hi; /* the alternate signal stack it runs on, or 0 */
	int was;		  /* held when it started */
};
#define FRAMES 4
static TLS struct frame frames[FRAMES];
static TLS int depth;
static TLS uintptr_t marks;

/* Can the kernel read the word at p?  rt_sigprocmask copies the new set in
 * before it looks at how: EFAULT, or EINVAL for the invalid how with
 * nothing changed (as in buffers.c). */
static int readable(const volatile uintptr_t *p)
{
	int saved = errno, ok;

	ok = syscall(SYS_rt_sigprocmask, 0x7fff, p, NULL, sizeof(uint64_t)) == 0 || errno != EFAULT;
	errno = saved;
	return ok;
}

/* Is the handler of f still running, for code whose stack pointer is sp? */
static int running(const struct frame *f, uintptr_t sp)
{
	if (sp >= (uintptr_t)f->slot || (f->alt_hi != 0 && sp < f->alt_lo))
		return 0;
	return readable(f->slot) && *f->slot == f->mark;
}

/* Forget the handlers this thread has left (their view of SIGSEGV with
 * them: the one from before is put back, as a sigreturn or a siglongjmp
 * would). */
static void settle(uintptr_t sp)
{
	while (depth > 0 && !running(&frames[depth - 1], sp)) {
		held = frames[depth - 1].was;
		depth--;
	}
}

static uintptr_t here(void)
{
	return (uintptr_t)__builtin_frame_address(0);
}

/* The stack pointer of the interrupted context. */
static uintptr_t sp_of(const void *uctx)
{
#if defined(__x86_64__)
	return (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
	return (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.sp;
#else
	(void)uctx;
	return here();
#endif
}

static int view_blocked(const void *uctx)
{
	settle(uctx != NULL ? sp_of(uctx) : here());
	return depth > 0 && held;
}

static void view_enter(int block, volatile uintptr_t *slot)
{
	struct frame *f;
	stack_t ss;

	settle((uintptr_t)slot);
	if (depth == FRAMES)
		return;
	f = &frames[depth];
	f->slot = slot;
	f->mark = (uintptr_t)slot ^ (++marks * (uintptr_t)0x9e3779b97f4a7c15u);
	*slot = f->mark;
	f->alt_lo = f->alt_hi = 0;
	if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK)) {
		f->alt_lo = (uintptr_t)ss.ss_sp;
		f->alt_hi = f->alt_lo + ss.ss_size;
	}
	f->was = held;
	depth++; /* last: a handler that interrupts us sees the frame whole or not at all */
	held = held || block;
}

static void view_leave(volatile uintptr_t *slot)
{
	if (depth > 0 && frames[depth - 1].slot == slot) {
		held = frames[depth - 1].was;
		depth--;
	}
}

static const struct sm_segv_view view = {view_blocked, view_enter, view_leave};

/* A jmp_buf in the innermost handler's own frames (between here and its
 * slot) is a jump inside it; any other leaves it.  glibc's longjmp restores
 * the mask saved with the jmp_buf, if any (sigsetjmp(env, 1)): the view from
 * before the handler comes back with it.  Without one SIGSEGV stays blocked
 * in the view, as it would in the kernel's mask. */
void pl_jumping(struct __jmp_buf_tag *env)
{
	uintptr_t e = (uintptr_t)env, sp;

	if (depth == 0)
		return;
	sp = here();
	while (depth > 0) {
		const struct frame *f = &frames[depth - 1];

		if (e >= sp && e < (uintptr_t)f->slot)
			break;
		if (env->__mask_was_saved)
			held = f->was;
		depth--;
	}
}

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
	int was, in = set != NULL && sigismember(set, SIGSEGV) == 1;
	sigset_t copy;
	int rc;

	if (!pl_on_wait())
		return fn(how, set, old);
	if (depth > 0)
		settle(here());
	was = held;
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
	sm_fault_set_view(&view);
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
