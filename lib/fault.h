/* SPDX-License-Identifier: MIT */
/* fault.h -- the SIGSEGV handler: a first write becomes a durable grain (private) */
#ifndef SM_FAULT_H
#define SM_FAULT_H

#include <signal.h>

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

#endif
