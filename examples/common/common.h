/* SPDX-License-Identifier: MIT */
/* common.h -- what the example programs share: sizes on the command line, latency percentiles */
#ifndef EXAMPLES_COMMON_H
#define EXAMPLES_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* A byte count: digits with an optional k, m or g suffix (either case),
 * powers of 1024.  0, or -1 for anything else: a sign, no digits, a trailing
 * character, or a value that does not fit in size_t. */
int ex_parse_size(const char *s, size_t *out);

/* qsort comparator for uint64_t. */
int ex_cmp_u64(const void *a, const void *b);

/* Nearest-rank percentile p (0..100) of the sorted nanosecond values
 * v[0..n), in microseconds; 0 for an empty set. */
double ex_pct_us(const uint64_t *v, size_t n, unsigned p);

#endif
