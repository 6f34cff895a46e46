/* SPDX-License-Identifier: MIT */
/* fault.c -- the SIGSEGV handler: turns a first write into a durable grain
 *
 * Async-signal-safe throughout: no malloc, no stdio, no lock.  The region
 * lookup is lock-free (region.c), making a grain durable is system calls
 * (durable.c), and counters are relaxed atomics (stats.h).
 */
#include "fault.h"

#include "changed.h"
#include "config.h"
#include "init.h"
#include "durable.h"
#include "engine.h"
#include "region.h"
#include "stats.h"
#include "syncmap.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

int (*sm_sigaction)(int, const struct sigaction *, struct sigaction *) = sigaction;

/* The chained handler, under a sequence lock: the signal handler, on any
 * thread at any moment, must read a consistent copy while the shim records a
 * new one, and may take no lock.  The writer makes the sequence odd, stores
 * the words, makes it even again; a reader retries while it is odd or changed
 * under it.  (A double buffer is not enough: two sigaction calls in a row
 * rewrite the slot a preempted reader is still copying.)  The words are
 * atomics so that the racing reads are defined.  Writers are serialized by a
 * spinlock taken with every signal blocked (a program may call sigaction from
 * a signal handler, so a mutex could deadlock), and held across fork by the
 * atfork handlers (so a child never inherits it taken).  The caller's act and
 * old are touched outside that lock: with SIGSEGV blocked, a fault on a bad
 * pointer would kill the program (the kernel forces a blocked fault signal to
 * its default action) instead of reaching its handler. */
#define CHAIN_WORDS ((sizeof(struct sigaction) + sizeof(unsigned long) - 1) / sizeof(unsigned long))
static _Atomic unsigned long chained_words[CHAIN_WORDS];
static _Atomic unsigned chained_seq;
static atomic_flag chain_busy = ATOMIC_FLAG_INIT;
/* Set when the chained handler had SA_RESETHAND and has run once: from then
 * on it is SIG_DFL, as the kernel would have reset it. */
static _Atomic int chained_reset;
static _Atomic int installed;

int sm_fault_installed(void)
{
	return atomic_load(&installed);
}

static const struct sm_segv_view *_Atomic view;

void sm_fault_set_view(const struct sm_segv_view *v)
{
	atomic_store(&view, v);
}

void sm_fault_lock_chain(sigset_t *saved)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, saved);
	while (atomic_flag_test_and_set_explicit(&chain_busy, memory_order_acquire))
		sched_yield();
}

void sm_fault_unlock_chain(const sigset_t *saved)
{
	atomic_flag_clear_explicit(&chain_busy, memory_order_release);
	pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* Chain lock held.  Every word is stored with release order: a reader that
 * reads any new word (acquire) also sees the odd sequence stored before it,
 * and a reader that sees the final even sequence sees every word.  (Release
 * and acquire cost nothing on x86; standalone fences would, and TSan does
 * not model them.) */
static void chained_store(const struct sigaction *act)
{
	unsigned long w[CHAIN_WORDS] = {0};
	unsigned seq = atomic_load_explicit(&chained_seq, memory_order_relaxed);

	memcpy(w, act, sizeof(*act));
	atomic_store_explicit(&chained_seq, seq + 1, memory_order_relaxed);
	for (size_t i = 0; i < CHAIN_WORDS; i++)
		atomic_store_explicit(&chained_words[i], w[i], memory_order_release);
	atomic_store(&chained_reset, 0);
	atomic_store_explicit(&chained_seq, seq + 2, memory_order_release);
}

/* Async-signal-safe and lock-free: retries while a writer is at work (on
 * another thread: a writer blocks every signal first, so it never runs
 * under a reader on its own thread).  Acquire loads keep the second read of
 * the sequence after every word. */
static void chained_load(struct sigaction *out)
{
	unsigned long w[CHAIN_WORDS];
	unsigned s1, s2;

	for (;;) {
		s1 = atomic_load_explicit(&chained_seq, memory_order_acquire);
		if (s1 & 1) {
			sched_yield();
			continue;
		}
		for (size_t i = 0; i < CHAIN_WORDS; i++)
			w[i] = atomic_load_explicit(&chained_words[i], memory_order_acquire);
		s2 = atomic_load_explicit(&chained_seq, memory_order_acquire);
		if (s1 == s2)
			break;
	}
	memcpy(out, w, sizeof(*out));
}

void sm_fault_set_chained(const struct sigaction *act, struct sigaction *old)
{
	struct sigaction copy, prev;
	sigset_t saved;

	if (act != NULL)
		copy = *act; /* act and old may be the same struct */
	sm_fault_lock_chain(&saved);
	if (old != NULL) {
		chained_load(&prev);
		if (atomic_load(&chained_reset)) {
			memset(&prev, 0, sizeof(prev));
			prev.sa_handler = SIG_DFL;
		}
	}
	if (act != NULL)
		chained_store(&copy);
	sm_fault_unlock_chain(&saved);
	if (old != NULL)
		*old = prev;
}

/* Did the faulting access write?  The hardware says so in the fault context. */
static int is_write(const void *uctx)
{
	if (uctx == NULL)
		return 1; /* syncmap_handle_fault() called without a context */
#if defined(__x86_64__)
	/* Page-fault error code bit 1: the access was a write. */
	return (((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#elif defined(__aarch64__)
	/* The kernel appends an esr_context record; ESR.WnR (bit 6) = write. */
	const struct _aarch64_ctx *h = (const void *)((const ucontext_t *)uctx)->uc_mcontext.__reserved;

	for (; h->magic != 0 && h->size != 0; h = (const void *)((const char *)h + h->size))
		if (h->magic == 0x45535201 /* ESR_MAGIC */)
			return (((const uint64_t *)h)[1] >> 6) & 1;
	return 1;
#else
	return 1;
#endif
}

static void unblock_on_return(void *uctx, int sig)
{
	/* The mask restored when the handler returns is the interrupted one. */
	if (uctx != NULL)
		sigdelset(&((ucontext_t *)uctx)->uc_sigmask, sig);
}

/* Send sig to this thread with the siginfo a kernel fault would carry.
 * rt_tgsigqueueinfo accepts a positive si_code for a signal to oneself. */
static void send_self(int sig, int code, void *addr)
{
	siginfo_t info;

	memset(&info, 0, sizeof(info));
	info.si_signo = sig;
	info.si_code = code;
	info.si_addr = addr;
	syscall(SYS_rt_tgsigqueueinfo, getpid(), syscall(SYS_gettid), sig, &info);
}

/* The grain could not be made durable: SIGBUS at the faulting address, as the
 * kernel gives for a failed MAP_SYNC fault.  Like the kernel's forced signal,
 * it is neither ignored nor left blocked. */
static void raise_sigbus(void *addr, void *uctx)
{
	struct sigaction sa;

	if (sm_sigaction(SIGBUS, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sm_sigaction(SIGBUS, &sa, NULL);
	}
	unblock_on_return(uctx, SIGBUS);
	send_self(SIGBUS, BUS_ADRERR, addr);
}

int syncmap_handle_fault(int sig, siginfo_t *si, void *uctx)
{
	struct sm_region *r;
	uintptr_t a, pg, end;
	int err;

	if (sig != SIGSEGV || si == NULL || si->si_code != SEGV_ACCERR || !is_write(uctx))
		return 0;
	a = (uintptr_t)si->si_addr;
	/* Held while the ref is: a signal handler that truncates the file
	 * meanwhile (changed.h) must not wait for this ref to drain. */
	sm_changes_hold();
	switch (sm_region_get(a, &r)) {
	case SM_NOTFOUND: sm_changes_release(); return 0;
	case SM_BUSY:
		/* A writer is changing this mapping; return and let the write fault
		 * again once it is done. */
		sm_changes_release();
		sched_yield();
		return 1;
	default: break;
	}
	if (r->mode != SYNCMAP_MODE_FAULT || !(r->prot & PROT_WRITE)) {
		sm_region_put(r);
		sm_changes_release();
		return 0;
	}
	pg = a & ~(uintptr_t)(sm_cfg.page - 1);
	sm_engine_wait(r, pg);
	end = sm_engine_reach(r, pg);
	err = sm_ready(r, pg, end, r->prot);
	/* A window ahead that could not be made durable (no space for all of
	 * it, say) must not cost the write its own grain. */
	if (err != 0 && end > pg + sm_cfg.page) {
		sm_engine_reach_failed(r);
		err = sm_ready(r, pg, pg + sm_cfg.page, r->prot);
	}
	if (err == 0) {
		SM_STAT_ADD(faults, 1);
		sm_engine_fault(r, a);
	}
	sm_region_put(r);
	sm_changes_release();
	if (err == 0)
		return 1;
	if (err != ENXIO)
		SM_STAT_ADD(errors, 1);
	/* ENXIO: a write past EOF, SIGBUS as plain mmap gives; otherwise the
	 * grain is not durable and stays read-only. */
	raise_sigbus(si->si_addr, uctx);
	return 1;
}

/* No handler to pass the fault to: the default action, at the original
 * address.  A fault from the hardware faults again when the handler returns;
 * a SIGSEGV sent by someone is sent again. */
static void default_action(int sig, siginfo_t *si, void *uctx)
{
	struct sigaction dfl;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sm_sigaction(sig, &dfl, NULL);
	unblock_on_return(uctx, sig);
	if (si == NULL || si->si_code <= 0)
		syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

/* Call the chained handler as the kernel would have: its sa_mask and the
 * signal itself (unless SA_NODEFER) blocked on top of the interrupted mask,
 * SA_RESETHAND honoured, SA_SIGINFO deciding the signature.  With a view of
 * the mask (fault.h), SIGSEGV is blocked in the view, not for real: a
 * handler left by longjmp (which restores no mask) would otherwise leave
 * it blocked, and the kernel kills a thread for the next first write to a
 * FAULT grain, a SIGSEGV that it cannot deliver. */
static void chain(int sig, siginfo_t *si, void *uctx)
{
	const struct sm_segv_view *v = atomic_load(&view);
	volatile uintptr_t slot = 0; /* the handler runs below it */
	struct sigaction act;
	sigset_t mask, saved;
	int block;

	/* A fault of the program's own where its view has SIGSEGV blocked (in
	 * its handler, say): the kernel's forced signal resets the action and
	 * kills (force_sig_info_to_task(), kernel/signal.c). */
	if (v != NULL && si != NULL && si->si_code > 0 && v->blocked(uctx)) {
		default_action(sig, si, uctx);
		return;
	}
	chained_load(&act);

	if (act.sa_handler == SIG_IGN && !atomic_load(&chained_reset) && (si == NULL || si->si_code <= 0))
		return; /* a SIGSEGV sent with kill(2) is ignored, as the kernel would */
	if (atomic_load(&chained_reset) || act.sa_handler == SIG_DFL || act.sa_handler == SIG_IGN) {
		/* SIG_IGN cannot ignore a fault: the kernel kills for it too. */
		default_action(sig, si, uctx);
		return;
	}
	if (act.sa_flags & SA_RESETHAND)
		atomic_store(&chained_reset, 1);
	if (uctx != NULL)
		mask = ((ucontext_t *)uctx)->uc_sigmask;
	else
		pthread_sigmask(SIG_SETMASK, NULL, &mask);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&act.sa_mask, s) == 1)
			sigaddset(&mask, s);
	if (!(act.sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	block = sigismember(&mask, sig) == 1;
	if (v != NULL) {
		sigdelset(&mask, sig);
		v->enter(block, &slot);
	}
	pthread_sigmask(SIG_SETMASK, &mask, &saved);
	if (act.sa_flags & SA_SIGINFO)
		act.sa_sigaction(sig, si, uctx);
	else
		act.sa_handler(sig);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (v != NULL)
		v->leave(&slot);
}

static void on_segv(int sig, siginfo_t *si, void *uctx)
{
	int saved_errno = errno;

	if (!syncmap_handle_fault(sig, si, uctx))
		chain(sig, si, uctx);
	errno = saved_errno;
}

int sm_fault_install(void)
{
	struct sigaction sa, old;

	if (atomic_load(&installed))
		return 0;
	sm_init(); /* its fork handlers keep the chain lock consistent in a child */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	/* SA_ONSTACK: a stack overflow still reaches the program's handler on its
	 * alternate stack.  SA_NODEFER: the chained handler decides whether
	 * SIGSEGV is blocked (chain() does it).  SIGBUS blocked: a SIGBUS we raise
	 * arrives after we return, at the faulting instruction, as the kernel's. */
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGBUS);
	if (sm_sigaction(SIGSEGV, &sa, &old) != 0)
		return -1;
	sm_fault_set_chained(&old, NULL);
	atomic_store(&installed, 1);
	return 0;
}
