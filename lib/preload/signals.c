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

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
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
	struct sigaction copy;

	/* POSIX forbids act and old to be one struct (restrict), but glibc's
	 * own sigaction copes with it and programs rely on that: the new
	 * action is read before the old one is written. */
	if (act != NULL) {
		copy = *act;
		act = &copy;
	}
	chained(act, old);
	if (act != NULL)
		PL_STAT_ADD(handlers_chained, 1);
	return 0;
}

PL_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (kept(sig))
		return set_action(act, old);
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

/* The next definition of a signal()-like function. */
static sighandler_t next_signal(void *_Atomic *slot, const char *name, int sig, sighandler_t h)
{
	sighandler_t (*fn)(int, sighandler_t) = pl_next(slot, name);

	if (fn == NULL) {
		errno = ENOSYS;
		return SIG_ERR;
	}
	return fn(sig, h);
}

static void *_Atomic real_signal, *_Atomic real_sysv_signal, *_Atomic real_sigset;

/* BSD semantics, as glibc's signal(): restart, the signal blocked in its handler. */
PL_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
	if (kept(sig))
		return set_handler(h, SA_RESTART, 1);
	return next_signal(&real_signal, "signal", sig, h);
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
	return next_signal(&real_sysv_signal, "sysv_signal", sig, h);
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
		return next_signal(&real_sigset, "sigset", sig, h);
	sigemptyset(&one);
	sigaddset(&one, SIGSEGV);
	if (h == SIG_HOLD) {
		if (pthread_sigmask(SIG_BLOCK, &one, &was) != 0)
			return SIG_ERR;
		chained(NULL, &old);
		return sigismember(&was, SIGSEGV) ? SIG_HOLD : old.sa_handler;
	}
	old.sa_handler = set_handler(h, 0, 0);
	if (old.sa_handler == SIG_ERR || pthread_sigmask(SIG_UNBLOCK, &one, &was) != 0)
		return SIG_ERR;
	return sigismember(&was, SIGSEGV) ? SIG_HOLD : old.sa_handler;
}
