/* bench.h -- what every benchmark here needs: a clock and a sort order */
#ifndef SM_BENCH_H
#define SM_BENCH_H

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

#endif
