/* SPDX-License-Identifier: MIT */
/* signals.c -- sigaction and signal for SIGSEGV: the program's handler goes behind the library's
 *
 * The library's handler is installed when the shim starts, before main, so
 * the program always deals with one SIGSEGV disposition: its own, which the
 * library keeps (sm_fault_set_chained) and calls for every fault that is not
 * the library's.  What the program reads back is what it last set, or what
 * was there before the shim started.
 */
#include "preload.h"

#include "fault.h"
#include "region.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

int pl_signals_start(void)
{
	int rc;

	/* sm_fault_install() expects the table lock: it serializes installers. */
	sm_table_lock();
	rc = sm_fault_install();
	sm_table_unlock();
	return rc;
}

/* Every change the program makes to its SIGSEGV disposition goes to the
 * library's chain, whose lock is taken with all signals blocked (crash
 * handlers call signal(SIGSEGV, SIG_DFL) from a handler) and held across
 * fork (the child never inherits it taken). */
static void chained(const struct sigaction *act, struct sigaction *old)
{
	sm_fault_set_chained(act, old);
}

/* Is this call about the SIGSEGV disposition that the library keeps? */
static int kept(int sig)
{
	return sig == SIGSEGV && pl_on_wait() && sm_fault_installed();
}

static int set_action(const struct sigaction *act, struct sigaction *old)
{
	struct sigaction copy, was;

	/* POSIX forbids act and old to be one struct (restrict), but glibc's
	 * own sigaction copes with it and programs rely on that: the new
	 * action is read before the old one is written. */
	if (act != NULL) {
		copy = *act;
		act = &copy;
	}
	chained(act, old != NULL ? &was : NULL);
	/* Written here, after the chain lock: it is held with every signal
	 * blocked, where a first write into a FAULT page would be fatal. */
	if (old != NULL)
		*old = was;
	if (act != NULL)
		PL_STAT_ADD(handlers_chained, 1);
	return 0;
}

/*
 * Every other signal's handler runs with its sa_mask blocked, and
 * sigfillset(&sa.sa_mask) is the usual way to write "nothing interrupts
 * this handler": SIGSEGV would then be blocked while it runs, and its first
 * write to a FAULT page fatal (masks.c says why).  The handler is installed
 * without SIGSEGV in its mask; the program reads back the mask it gave.
 * Bit sig - 1: the program's sa_mask for sig holds SIGSEGV.
 */
static _Atomic uint64_t segv_in_sa_mask;

static void note_sa_mask(int sig, int holds)
{
	uint64_t bit = 1ull << (sig - 1);

	if (holds)
		atomic_fetch_or(&segv_in_sa_mask, bit);
	else
		atomic_fetch_and(&segv_in_sa_mask, ~bit);
}

static int other_action(int sig, const struct sigaction *act, struct sigaction *old)
{
	int had = (atomic_load(&segv_in_sa_mask) >> (sig - 1)) & 1;
	int holds = act != NULL && sigismember(&act->sa_mask, SIGSEGV) == 1;
	struct sigaction copy;

	if (act != NULL) {
		copy = *act; /* read before old is written: they may be one struct */
		sigdelset(&copy.sa_mask, SIGSEGV);
		act = &copy;
	}
	if (REAL(sigaction)(sig, act, old) != 0)
		return -1;
	if (old != NULL && had)
		sigaddset(&old->sa_mask, SIGSEGV);
	if (act != NULL)
		note_sa_mask(sig, holds);
	return 0;
}

PL_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (kept(sig))
		return set_action(act, old);
	if (sig != SIGSEGV && sig >= 1 && sig <= 64 && pl_on_wait())
		return other_action(sig, act, old);
	return REAL(sigaction)(sig, act, old);
}

PL_EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	return sigaction(sig, act, old);
}

/* signal() and its variants call libc's sigaction internally, out of our
 * reach: for SIGSEGV they are done here with the flags glibc gives them. */
static sighandler_t set_handler(sighandler_t h, int flags, int self_blocked)
{
	struct sigaction act, old;

	if (h == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = h;
	sigemptyset(&act.sa_mask);
	if (self_blocked)
		sigaddset(&act.sa_mask, SIGSEGV);
	act.sa_flags = flags;
	set_action(&act, &old);
	return old.sa_handler;
}

/* The next definition of a signal()-like function.  It installs a mask
 * without SIGSEGV (sa_mask {sig} or empty), which the program reads back as
 * such from now on; SIG_HOLD leaves the action alone. */
static sighandler_t next_signal(sighandler_t (*fn)(int, sighandler_t), int sig, sighandler_t h)
{
	sighandler_t old = fn(sig, h);

	if (old != SIG_ERR && h != SIG_HOLD && sig >= 1 && sig <= 64)
		note_sa_mask(sig, 0);
	return old;
}

/* BSD semantics, as glibc's signal(): restart, the signal blocked in its handler. */
PL_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	if (kept(sig))
		return set_handler(h, SA_RESTART, 1);
	return next_signal(REAL(signal), sig, h);
}

PL_EXPORT sighandler_t bsd_signal(int sig, sighandler_t h)
{
	return signal(sig, h);
}

/* System V semantics: one-shot, not blocked in its handler, no restart. */
PL_EXPORT sighandler_t sysv_signal(int sig, sighandler_t h)
{
	if (kept(sig))
		return set_handler(h, SA_RESETHAND | SA_NODEFER, 0);
	return next_signal(REAL(sysv_signal), sig, h);
}

PL_EXPORT sighandler_t __sysv_signal(int sig, sighandler_t h)
{
	return sysv_signal(sig, h);
}

/* sigset(3): SIG_HOLD blocks the signal and leaves the handler; anything
 * else sets the handler and unblocks it.  Returns SIG_HOLD if the signal was
 * blocked, the previous handler otherwise. */
PL_EXPORT sighandler_t sigset(int sig, sighandler_t h)
{
	struct sigaction old;
	sigset_t one, was;

	if (!kept(sig))
		return next_signal(REAL(sigset), sig, h);
	sigemptyset(&one);
	sigaddset(&one, SIGSEGV);
	/* The mask as the program sees it (masks.c): SIGSEGV is never blocked
	 * for real. */
	if (h == SIG_HOLD) {
		if (pl_mask_change(SIG_BLOCK, &one, &was) != 0)
			return SIG_ERR;
		chained(NULL, &old);
		return sigismember(&was, SIGSEGV) ? SIG_HOLD : old.sa_handler;
	}
	old.sa_handler = set_handler(h, 0, 0);
	if (old.sa_handler == SIG_ERR || pl_mask_change(SIG_UNBLOCK, &one, &was) != 0)
		return SIG_ERR;
	return sigismember(&was, SIGSEGV) ? SIG_HOLD : old.sa_handler;
}
