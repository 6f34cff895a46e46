/* SPDX-License-Identifier: MIT */
/* envvars.h -- every environment variable libsyncmap reads, in one table (private)
 *
 * X(id, NAME, values, help).  config.c parses the library's (a switch over
 * the ids: a variable added here without a parser fails the build), and
 * syncmap-info prints its --help and its report from the same entries; a
 * test checks that syncmap(7) documents each.
 */
#ifndef SM_ENVVARS_H
#define SM_ENVVARS_H

#include <stddef.h>

#define SM_ENV_LIBRARY(X)                                                                                    \
	X(MODE, "SYNCMAP_MODE", "auto|kernel|fault",                                                         \
	  "auto: KERNEL where MAP_SYNC is accepted, FAULT elsewhere; kernel: fail with EOPNOTSUPP where it " \
	  "is refused; fault: FAULT even where it is accepted")                                              \
	X(GRAIN, "SYNCMAP_GRAIN", "BYTES",                                                                   \
	  "unit made durable per write fault: a power of two from the page size to 1g, k/m/g suffixes "      \
	  "(default 64k)")                                                                                   \
	X(FLUSH, "SYNCMAP_FLUSH", "auto|cpu|msync",                                                          \
	  "how syncmap_persist persists: auto picks the CPU flush only where it reaches the media; cpu "     \
	  "forces it (you vouch for the platform); msync forces msync")                                      \
	X(PRESYNC, "SYNCMAP_PRESYNC", "0|1",                                                                 \
	  "1 (default): a background thread, started when there is work for it, readies grains ahead of "    \
	  "sequential writers")                                                                              \
	X(PRESYNC_DEPTH, "SYNCMAP_PRESYNC_DEPTH", "N", "grains kept ready ahead, 1..1024 (default 16)")      \
	X(RESERVE, "SYNCMAP_RESERVE", "0|1",                                                                 \
	  "1 (default): fallocate a grain's blocks in one call before touching them (FAULT mode)")           \
	X(STATS, "SYNCMAP_STATS", "0|1", "1: print the library's counters to stderr at exit")

/* Read by the preload shim only (lib/preload/preload.c). */
#define SM_ENV_SHIM(X)                                                                             \
	X(PRELOAD, "SYNCMAP_PRELOAD", "0|1", "preload shim: 0 passes every call straight through") \
	X(PRELOAD_PATHS, "SYNCMAP_PRELOAD_PATHS", "DIR:DIR...",                                    \
	  "preload shim: take over files under these directories only")

enum sm_env_id {
#define SM_ENV_ID(id, name, values, help) SM_ENV_##id,
	SM_ENV_LIBRARY(SM_ENV_ID) SM_ENV_NLIB,
	SM_ENV_SHIM(SM_ENV_ID) SM_ENV_NALL
#undef SM_ENV_ID
};

struct sm_env_var {
	const char *name, *values, *help;
};

/* Every variable, the library's first (ids below SM_ENV_NLIB), then the shim's. */
extern const struct sm_env_var sm_env[];
#define SM_ENV_COUNT ((size_t)SM_ENV_NALL - 1)

/* The index in sm_env of a variable id (the shim's ids skip SM_ENV_NLIB). */
static inline size_t sm_env_index(enum sm_env_id id)
{
	return id < SM_ENV_NLIB ? (size_t)id : (size_t)id - 1;
}

/* The value of library variable id in effect (after sm_init), as text. */
void sm_env_effective(enum sm_env_id id, char *buf, size_t len);

#endif
