/* SPDX-License-Identifier: MIT */
/* common.c -- what the example programs share: sizes on the command line, latency percentiles */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int ex_parse_size(const char *s, size_t *out)
{
	unsigned shift = 0;
	unsigned long long v;
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case 'k':
	case 'K': shift = 10; break;
	case 'm':
	case 'M': shift = 20; break;
	case 'g':
	case 'G': shift = 30; break;
	case '\0': break;
	default: return -1;
	}
	if (shift != 0 && *++end != '\0')
		return -1;
	if (v > (unsigned long long)SIZE_MAX >> shift)
		return -1;
	*out = (size_t)(v << shift);
	return 0;
}

int ex_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

double ex_pct_us(const uint64_t *v, size_t n, unsigned p)
{
	size_t rank = (n * p + 99) / 100;

	return n == 0 ? 0 : (double)v[rank > 0 ? rank - 1 : 0] / 1000.0;
}
