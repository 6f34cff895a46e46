/* SPDX-License-Identifier: MIT */
/* config_probe.c -- prints the settings the library read from its environment (for test_config.c) */
#include "config.h"
#include "init.h"
#include "flush.h"

#include <stdio.h>
#include <sys/auxv.h>

static const char *const modes[] = {"auto", "kernel", "fault"};
static const char *const flushes[] = {"auto", "cpu", "msync"};

int main(void)
{
	sm_init(); /* reads the environment as every entry point does */
	printf("secure=%lu mode=%s flush=%s grain=%zu presync=%d depth=%d reserve=%d stats=%d cpu_flush=%s\n",
	       getauxval(AT_SECURE), modes[sm_cfg.mode], flushes[sm_cfg.flush], sm_cfg.grain, sm_cfg.presync,
	       sm_cfg.presync_depth, sm_cfg.reserve, sm_cfg.stats_at_exit, sm_flush_cpu_name());
	return 0;
}
