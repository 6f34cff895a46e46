/* SPDX-License-Identifier: MIT */
/* config.h -- settings read once from the environment (private) */
#ifndef SM_CONFIG_H
#define SM_CONFIG_H

#include <stddef.h>

enum sm_mode_pref { SM_PREF_AUTO, SM_PREF_KERNEL, SM_PREF_FAULT };
enum sm_flush_pref { SM_FLUSH_AUTO, SM_FLUSH_CPU, SM_FLUSH_MSYNC };

/* Default grain: see docs/performance.md for the measurements behind it. */
#define SM_DEFAULT_GRAIN ((size_t)64 * 1024)
#define SM_DEFAULT_PRESYNC_DEPTH 16

struct sm_config {
	enum sm_mode_pref mode;
	enum sm_flush_pref flush;
	size_t grain;	   /* power of two, >= page size */
	int presync;	   /* 1: the engine readies grains ahead of sequential writers */
	int presync_depth; /* grains kept ready ahead of the last fault */
	int reserve;	   /* 1: fallocate a run of pages before touching it */
	int stats_at_exit;
	size_t page; /* sysconf(_SC_PAGESIZE) */
};

/* The settings; valid after sm_init(). */
extern struct sm_config sm_cfg;

/* Parse the environment into sm_cfg.  Bad values are reported on stderr and
 * replaced by the default (a library must not refuse to start).  Called once
 * by sm_init(); tests call it again to change settings while no mapping exists. */
void sm_config_load(void);

/* Parse a size with an optional k/m/g suffix; 0 on success, -1 if invalid. */
int sm_parse_size(const char *s, size_t *out);

#endif
