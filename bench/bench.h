/* SPDX-License-Identifier: MIT */
/* bench.h -- what every benchmark here needs: a clock, a sort order, a place to run */
#ifndef SM_BENCH_H
#define SM_BENCH_H

#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* Three significant digits, without an exponent. */
static inline const char *num(double x, char *buf)
{
	snprintf(buf, 16, x >= 100 ? "%.0f" : x >= 10 ? "%.1f" : x >= 1 ? "%.2f" : "%.3f", x);
	return buf;
}

/* "median [min-max]" of x[0..n-1] (sorted in place) into buf. */
static inline void spread(double *x, int n, char *buf, size_t len)
{
	char a[16], b[16], c[16];

	qsort(x, (size_t)n, sizeof(*x), cmp_double);
	if (n == 1)
		snprintf(buf, len, "%s", num(x[0], a));
	else
		snprintf(buf, len, "%s [%s-%s]", num(n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2, a),
			 num(x[0], b), num(x[n - 1], c));
}

/* Values measured in repeated rounds: one per round, row (variant or
 * method) and metric; NAN where a round could not measure it. */
#define BENCH_ROUNDS 32
#define BENCH_ROWS 12
#define BENCH_METRICS 8
struct rounds {
	int nrounds, nrows, nmetrics;
	const char *row[BENCH_ROWS], *metric[BENCH_METRICS];
	double v[BENCH_ROUNDS][BENCH_ROWS][BENCH_METRICS];
};

/* Nothing measured yet: every value NAN. */
static inline void rounds_init(struct rounds *t, int nrounds, int nrows, const char *const *row, int nmetrics,
			       const char *const *metric)
{
	t->nrounds = nrounds;
	t->nrows = nrows;
	t->nmetrics = nmetrics;
	for (int r = 0; r < nrows; r++)
		t->row[r] = row[r];
	for (int k = 0; k < nmetrics; k++)
		t->metric[k] = metric[k];
	for (int i = 0; i < nrounds; i++)
		for (int r = 0; r < nrows; r++)
			for (int k = 0; k < nmetrics; k++)
				t->v[i][r][k] = NAN;
}

/* One summary line: row r's metrics, median [min-max] over the rounds, or
 * when base >= 0 their ratios to row base's in the same round.  Nothing
 * when no round measured both. */
static inline void rounds_line(const struct rounds *t, int r, int base)
{
	char label[64], cell[64];
	int any = 0;

	for (int i = 0; i < t->nrounds; i++)
		any |= !isnan(t->v[i][r][0]) && (base < 0 || !isnan(t->v[i][base][0]));
	if (!any)
		return;
	if (base < 0)
		snprintf(label, sizeof(label), "%s", t->row[r]);
	else
		snprintf(label, sizeof(label), "%s/%s", t->row[r], t->row[base]);
	printf("%-20s", label);
	for (int k = 0; k < t->nmetrics; k++) {
		double x[BENCH_ROUNDS];
		int n = 0;

		for (int i = 0; i < t->nrounds; i++) {
			double a = t->v[i][r][k], b = base < 0 ? 1 : t->v[i][base][k];

			if (!isnan(a) && !isnan(b) && b > 0)
				x[n++] = a / b;
		}
		if (n == 0)
			snprintf(cell, sizeof(cell), "-");
		else
			spread(x, n, cell, sizeof(cell));
		printf(" %-22s", cell);
	}
	printf("\n");
}

/* The summary: a header, every row's values, then for each base row (bit
 * b of bases) every other row's ratios to it. */
static inline void rounds_print(const struct rounds *t, unsigned bases)
{
	printf("%-20s", "#");
	for (int k = 0; k < t->nmetrics; k++)
		printf(" %-22s", t->metric[k]);
	printf("\n");
	for (int r = 0; r < t->nrows; r++)
		rounds_line(t, r, -1);
	for (int b = 0; b < t->nrows; b++)
		for (int r = 0; r < t->nrows && (bases >> b & 1); r++)
			if (r != b)
				rounds_line(t, r, b);
	fflush(stdout);
}

/* Is word one of the comma-separated list? */
static inline int listed(const char *list, const char *word)
{
	char key[64], buf[256];

	snprintf(key, sizeof(key), ",%s,", word);
	snprintf(buf, sizeof(buf), ",%s,", list);
	return strstr(buf, key) != NULL;
}

/* CPU time of every thread of this process so far, in microseconds. */
static inline double cpu_us(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
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
