/* SPDX-License-Identifier: MIT */
/* bench.h -- what every benchmark here needs: a clock, a sort order, a place to run */
#ifndef SM_BENCH_H
#define SM_BENCH_H

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Monotonic time in microseconds. */
static inline double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* qsort order for latencies. */
static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* DIR if given, else a fresh ext4 of MIB MiB on a loop device over /dev/shm
 * (commit=60), made into fs; the program exits with status 2 if it cannot
 * be made.  loopfs_done(fs) at the end when the result is fs->dir. */
static inline const char *bench_dir(const char *dir, struct loopfs *fs, unsigned mib, const char *prog)
{
	char why[256];

	if (dir != NULL)
		return dir;
	if (loopfs_make(fs, "ext4", mib, "commit=60", why, sizeof(why)) != 0) {
		fprintf(stderr, "%s: cannot make a loop-mounted ext4 (%s); give a directory with -d\n", prog,
			why);
		exit(2);
	}
	return fs->dir;
}

#endif
