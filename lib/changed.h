/* SPDX-License-Identifier: MIT */
/* changed.h -- re-protection after blocks went away, put off while this thread cannot wait for it (private) */
#ifndef SM_CHANGED_H
#define SM_CHANGED_H

/*
 * A re-protection (sm_file_changed_ino) takes the table lock and waits for
 * the refs on the regions it changes to drain.  A thread that holds the
 * lock, or a ref, brackets that stretch with hold/release: a re-protection
 * asked for meanwhile on the same thread, by a signal handler that
 * interrupted it, is queued and done at the release that ends the last
 * hold, instead of waiting for the thread itself.  Both are
 * async-signal-safe and cost a thread-local increment, unless something
 * was queued.
 */
void sm_changes_hold(void);
void sm_changes_release(void);

#endif
