/* SPDX-License-Identifier: MIT */
/* stats.h -- process-wide counters, bumped from the fault handler (private) */
#ifndef SM_STATS_H
#define SM_STATS_H

#include "syncmap.h"

/* Relaxed atomic adds: lock-free on every 64-bit target, so async-signal-safe.
 * The counters are statistics; nothing orders against them. */
extern struct syncmap_stats sm_stats;

#define SM_STAT_ADD(field, n) __atomic_fetch_add(&sm_stats.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* Print the counters to stderr (SYNCMAP_STATS=1 registers it with atexit). */
void sm_stats_print(void);

#endif
