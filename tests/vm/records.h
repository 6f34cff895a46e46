/* SPDX-License-Identifier: MIT */
/* records.h -- deterministic test content for the guest programs: pages and records derived from (seed, index)
 *
 * The writer and the checker run in different boots: everything a checker
 * compares against is recomputed from the seed and the record's position,
 * never stored.  Record i's length and bytes depend on (seed, i) alone, so a
 * record found at the wrong position, a stale record of an earlier seed, or
 * a torn one never matches.
 */
#ifndef VM_RECORDS_H
#define VM_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A 64-bit mixer (the finaliser of MurmurHash3): every input bit changes
 * about half of the output bits. */
static inline uint64_t vr_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

#define VR_MAX_LEN 20000u

/* Length of record i: mostly short, one in four crosses a page, one in
 * eight spans several.  Binary records may be empty; text records (logd
 * lines) hold at least one byte. */
static inline size_t vr_len(uint64_t seed, uint64_t i, int text)
{
	uint64_t r = vr_mix(seed * 0x9e3779b97f4a7c15ull ^ i);
	size_t lo = text ? 1 : 0;

	switch (r % 8) {
	case 0: return lo + (size_t)(r >> 8) % 16;
	case 6: return 700 + (size_t)(r >> 8) % 4300;
	case 7: return 5000 + (size_t)(r >> 8) % (VR_MAX_LEN - 5000 + 1);
	default: return 16 + (size_t)(r >> 8) % 684;
	}
}

/* Byte k of record i: any byte value for binary records (zeros included:
 * content is not a way to tell a record from the zeroed tail), one of 64
 * printable characters for text records (no newline). */
static inline unsigned char vr_byte(uint64_t seed, uint64_t i, size_t k, int text)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint64_t w = vr_mix(seed ^ (i << 24) ^ (uint64_t)(k / 8) ^ 0x5bd1e995ull);
	unsigned char b = (unsigned char)(w >> (8 * (k % 8)));

	return text ? (unsigned char)abc[b % 64] : b;
}

/* Fill buf with record i; returns its length (buf holds VR_MAX_LEN). */
static inline size_t vr_fill(uint64_t seed, uint64_t i, int text, unsigned char *buf)
{
	size_t len = vr_len(seed, i, text);

	for (size_t k = 0; k < len; k++)
		buf[k] = vr_byte(seed, i, k, text);
	return len;
}

/* 1 if data[0..len) is exactly record i. */
static inline int vr_match(uint64_t seed, uint64_t i, int text, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len != vr_len(seed, i, text))
		return 0;
	for (size_t k = 0; k < len; k++)
		if (p[k] != vr_byte(seed, i, k, text))
			return 0;
	return 1;
}

#endif
