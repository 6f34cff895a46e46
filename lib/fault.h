/* SPDX-License-Identifier: MIT */
/* fault.h -- the SIGSEGV handler: a first write becomes a durable grain (private) */
#ifndef SM_FAULT_H
#define SM_FAULT_H

#include <signal.h>
#include <stdint.h>

/* Install the handler (once; table lock held), remembering the handler that
 * was there before so that faults that are not ours reach it.
 * 0, or -1/errno from sigaction. */
int sm_fault_install(void);

/* The sigaction(2) the library uses: libc's, or the one beneath the preload
 * shim (which interposes sigaction itself). */
extern int (*sm_sigaction)(int sig, const struct sigaction *act, struct sigaction *old);

/* The handler that faults which are not ours are passed to.  The preload
 * shim records the program's SIGSEGV handlers here instead of installing
 * them; old (if not NULL) receives the previous one. */
void sm_fault_set_chained(const struct sigaction *act, struct sigaction *old);

/* The lock that serializes changes of the chained handler: taken with every
 * signal blocked (saved receives the old mask).  Held across fork. */
void sm_fault_lock_chain(sigset_t *saved);
void sm_fault_unlock_chain(const sigset_t *saved);

/* 1 once the library's handler is installed. */
int sm_fault_installed(void);

/*
 * The program's view of SIGSEGV in its signal mask, where it is kept apart
 * from the real mask (the preload shim: lib/preload/masks.c).  Without one,
 * the program's SIGSEGV handler runs with SIGSEGV blocked for real (unless
 * SA_NODEFER), as the kernel runs it.  With one, it runs with SIGSEGV
 * blocked in the view only, so that a longjmp out of it leaves nothing
 * blocked that the library needs, and its first write to a FAULT grain
 * works; a fault of its own there still kills, as the kernel's would.
 * Every function is async-signal-safe.
 */
struct sm_segv_view {
	/* A fault that is not the library's, taken in the context uctx: 1 if
	 * the view has SIGSEGV blocked there (the kernel would kill). */
	int (*blocked)(const void *uctx);
	/* The program's handler is about to run below *slot, a word of the
	 * caller's frame; block: SIGSEGV blocked while it runs. */
	void (*enter)(int block, volatile uintptr_t *slot);
	/* It returned. */
	void (*leave)(volatile uintptr_t *slot);
};

/* Set once, before sm_fault_install(). */
void sm_fault_set_view(const struct sm_segv_view *v);

#endif
