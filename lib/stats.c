/* SPDX-License-Identifier: MIT */
/* stats.c -- process-wide counters and their report at exit */
#include "stats.h"

#include <stdio.h>
#include <unistd.h>

struct syncmap_stats sm_stats;

#define LOAD(f) __atomic_load_n(&sm_stats.f, __ATOMIC_RELAXED)

void syncmap_stats_get(struct syncmap_stats *out)
{
	if (out == NULL)
		return;
	out->maps_kernel = LOAD(maps_kernel);
	out->maps_fault = LOAD(maps_fault);
	out->faults = LOAD(faults);
	out->syncs = LOAD(syncs);
	out->bytes_prepared = LOAD(bytes_prepared);
	out->presync_grains = LOAD(presync_grains);
	out->errors = LOAD(errors);
}

void sm_stats_print(void)
{
	struct syncmap_stats s;

	syncmap_stats_get(&s);
	fprintf(stderr,
		"libsyncmap[%d]: maps_kernel=%llu maps_fault=%llu faults=%llu syncs=%llu "
		"bytes_prepared=%llu presync_grains=%llu errors=%llu\n",
		(int)getpid(), (unsigned long long)s.maps_kernel, (unsigned long long)s.maps_fault,
		(unsigned long long)s.faults, (unsigned long long)s.syncs,
		(unsigned long long)s.bytes_prepared, (unsigned long long)s.presync_grains,
		(unsigned long long)s.errors);
}
