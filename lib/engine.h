/* SPDX-License-Identifier: MIT */
/* engine.h -- the background thread (libuv) that readies grains ahead of writers (private) */
#ifndef SM_ENGINE_H
#define SM_ENGINE_H

#include "region.h"

#include <stddef.h>
#include <stdint.h>

/* Start the thread if it is not running (table lock held, or any user thread).
 * It is started only when it has work: syncmap_prepare_async, a sequential
 * writer (sm_engine_kick), a writer persisting a KERNEL mapping.  Never at
 * map time: a process that only maps stays single-threaded (unshare(2) of a
 * user namespace refuses multithreaded callers).  0, or -1/EAGAIN. */
int sm_engine_start(void);

/* From the fault handler, after a FAULT grain was readied at a: if the faults
 * of r come in order, ask the engine to ready the next grains.  Async-signal-safe. */
void sm_engine_fault(struct sm_region *r, uintptr_t a);

/* From the fault handler, before readying the page pg: the end of what to
 * ready with it.  pg + page, except while no engine runs for a writer whose
 * faults come in order: then the handler readies a window itself, its
 * grain and the next ones, 4 grains, then 16, ... up to the pre-sync depth
 * and 1 MiB.
 * Async-signal-safe. */
uintptr_t sm_engine_reach(struct sm_region *r, uintptr_t pg);

/* ... and that window could not be made durable (no space, say): the
 * handler readies its own grain alone.  Async-signal-safe. */
void sm_engine_reach_failed(struct sm_region *r);

/* From the fault handler, before readying the grain at a: if the engine is
 * readying it right now, wait until it is done (the handler then finds the
 * grain durable and only upgrades).  Async-signal-safe. */
void sm_engine_wait(struct sm_region *r, uintptr_t a);

/* From application threads entering the library (persist, prepare, the
 * mmap family): start the engine if the fault handler saw a sequential
 * writer while none ran.  Cheap when there is nothing to do. */
void sm_engine_kick(void);

/* From syncmap_persist on a KERNEL region: the writer reached `end`; keep the
 * kernel's synchronous faults ahead of it paid. */
void sm_engine_persisted(struct sm_region *r, uintptr_t end);

/* Queue [s, e) to be prepared.  0, or -1/errno (ENOMEM: queue full). */
int sm_engine_post(uintptr_t s, uintptr_t e);

/* Wait until every request queued so far has been served (tests, benchmarks). */
void sm_engine_drain(void);

/* Test hook (tests define it; null in the libraries): called by the fault
 * handler after it marked a window busy and before it queued the request. */
void sm_test_engine_marked_hook(void) __attribute__((weak, visibility("hidden")));

void sm_engine_shutdown(void);	       /* at exit: stop and join */
void sm_engine_after_fork_child(void); /* the thread did not survive fork */

#endif
