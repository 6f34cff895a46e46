/* SPDX-License-Identifier: MIT */
/* fuzz_recover.c -- libFuzzer target: pmlog recovery over arbitrary log images
 *
 * Properties checked on every input (built with ASan + UBSan, so a read
 * outside the image or undefined arithmetic aborts the run as well):
 *  - every record the scan reports lies inside the image, starts where the
 *    previous one ended, and passes a CRC-32C computed here bit by bit,
 *    independently of the code under test, with its commit word in place;
 *  - tail and dirty_end are ordered and inside the image, and only zeros
 *    follow dirty_end;
 *  - recovery is idempotent: zeroing [tail, dirty_end) as a writer does and
 *    scanning again finds the same records and a clean tail;
 *  - the table and hardware CRC paths agree.
 */
#include "crc32c.h"
#include "format.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                     \
	do {                                                                                            \
		if (!(cond)) {                                                                          \
			fprintf(stderr, "fuzz_recover: check failed: %s (line %d)\n", #cond, __LINE__); \
			abort();                                                                        \
		}                                                                                       \
	} while (0)

/* Reference CRC-32C, one bit at a time: slow and obviously right. */
static uint32_t ref_crc32c(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n-- > 0) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

struct walk {
	const unsigned char *img;
	size_t size;
	size_t next_off; /* where the next record must start */
	uint64_t n;
	uint64_t sum; /* of offsets and lengths, to compare two scans */
};

static void on_rec(void *arg, uint64_t idx, size_t off, const void *data, uint32_t len)
{
	struct walk *w = arg;
	const unsigned char *d = data;
	uint32_t hdr_len, hdr_crc, crc;
	uint64_t commit;

	CHECK(idx == w->n);
	CHECK(off == w->next_off);
	CHECK(off >= PMLOG_HDR_SIZE && off % 8 == 0);
	CHECK(off <= w->size && pmlog_rec_size(len) <= w->size - off);
	CHECK(d == w->img + off + PMLOG_REC_HDR);
	memcpy(&hdr_len, w->img + off, 4);
	memcpy(&hdr_crc, w->img + off + 4, 4);
	memcpy(&commit, w->img + off + pmlog_commit_off(len), 8);
	CHECK(hdr_len == len);
	crc = ref_crc32c(ref_crc32c(0, (const unsigned char *)&len, 4), d, len);
	CHECK(crc == hdr_crc);
	CHECK(commit == ((uint64_t)crc << 32 | PMLOG_COMMIT_TAG));
	w->next_off = off + pmlog_rec_size(len);
	w->n++;
	w->sum += off * 31 + len;
}

static void check_scan(const unsigned char *img, size_t size, struct pmlog_scan *sc, struct walk *w)
{
	memset(w, 0, sizeof(*w));
	w->img = img;
	w->size = size;
	w->next_off = PMLOG_HDR_SIZE;
	pmlog_scan(img, size, sc, on_rec, w);
	CHECK(sc->nrec == w->n);
	CHECK(sc->dirty_end <= size);
	for (size_t i = sc->dirty_end; i < size; i++)
		CHECK(img[i] == 0);
	if (sc->hdr != PMLOG_HDR_OK) {
		CHECK(sc->nrec == 0 && sc->tail == 0);
		return;
	}
	CHECK(sc->tail == w->next_off);
	CHECK(sc->tail <= sc->dirty_end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pmlog_scan a, b;
	struct walk wa, wb;
	unsigned char *copy;

	CHECK(crc32c(0, data, size) == crc32c_sw(0, data, size));
	CHECK(crc32c(0, data, size) == ref_crc32c(0, data, size));
	check_scan(data, size, &a, &wa);
	if (a.hdr != PMLOG_HDR_OK || size == 0)
		return 0;
	/* The writer's repair, on an exact-size copy so ASan still sees the end. */
	copy = malloc(size);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	memset(copy + a.tail, 0, a.dirty_end - a.tail);
	check_scan(copy, size, &b, &wb);
	CHECK(b.hdr == PMLOG_HDR_OK);
	CHECK(b.nrec == a.nrec && b.tail == a.tail && wb.sum == wa.sum);
	CHECK(b.dirty_end == b.tail && b.why == PMLOG_STOP_END);
	free(copy);
	return 0;
}
