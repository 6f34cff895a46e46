/* SPDX-License-Identifier: MIT */
/* init.c -- the library's lifecycle: first call, fork and exit hooks */
#include "init.h"

#include "config.h"
#include "durable.h"
#include "engine.h"
#include "fault.h"
#include "region.h"
#include "stats.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static sigset_t fork_mask; /* the forking thread's, while the chain lock is held */

/* Fork while another thread holds a lock would leave the child with it taken
 * forever: take them all around fork. */
static void atfork_prepare(void)
{
	sm_table_lock();
	sm_fault_lock_chain(&fork_mask);
}

static void atfork_parent(void)
{
	sm_fault_unlock_chain(&fork_mask);
	sm_table_unlock();
}

static void atfork_child(void)
{
	sm_fault_unlock_chain(&fork_mask);
	sm_table_after_fork_child();
	sm_engine_after_fork_child();
	sm_table_unlock();
}

static void init(void)
{
	sm_config_load();
	sm_durable_init();
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	if (sm_cfg.stats_at_exit)
		atexit(sm_stats_print);
	atexit(sm_engine_shutdown);
}

void sm_init(void)
{
	pthread_once(&init_once, init);
}
