/* SPDX-License-Identifier: MIT */
/* format.c -- pmlog's header and record checks, and the recovery scan over a buffer */
#include "format.h"

#include "crc32c.h"

#include <string.h>

/* Loads go through memcpy: the image may be any bytes at any alignment. */
static uint32_t ld32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t ld64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint32_t pmlog_rec_crc(const void *data, uint32_t len)
{
	return crc32c(crc32c(0, &len, sizeof(len)), data, len);
}

void pmlog_hdr_init(void *hdr)
{
	unsigned char *h = hdr;
	uint32_t v = PMLOG_VERSION, hs = PMLOG_HDR_SIZE, crc;

	memset(h, 0, PMLOG_HDR_SIZE);
	memcpy(h, PMLOG_MAGIC, 8);
	memcpy(h + 8, &v, 4);
	memcpy(h + 12, &hs, 4);
	crc = crc32c(0, h, PMLOG_HDR_SIZE - 4);
	memcpy(h + PMLOG_HDR_SIZE - 4, &crc, 4);
}

const char *pmlog_hdr_strerror(enum pmlog_hdr_status st)
{
	switch (st) {
	case PMLOG_HDR_OK: return "valid pmlog header";
	case PMLOG_HDR_ZERO: return "no pmlog header (the file is empty or all zeros)";
	case PMLOG_HDR_SHORT: return "not a pmlog file (shorter than a pmlog header)";
	case PMLOG_HDR_MAGIC: return "not a pmlog file (no PMLOG magic)";
	case PMLOG_HDR_VERSION: return "a pmlog file of an unknown version";
	case PMLOG_HDR_CRC: return "damaged pmlog header (checksum mismatch)";
	}
	return "unknown header status";
}

const char *pmlog_stop_str(enum pmlog_stop why)
{
	switch (why) {
	case PMLOG_STOP_END: return "end of log";
	case PMLOG_STOP_TRUNCATED: return "record runs past the end of the file";
	case PMLOG_STOP_TOO_LONG: return "record length out of range";
	case PMLOG_STOP_NO_COMMIT: return "record without its commit word";
	case PMLOG_STOP_BAD_CRC: return "record fails its CRC";
	}
	return "unknown";
}

size_t pmlog_nonzero_end(const void *img, size_t from, size_t size)
{
	const unsigned char *p = img;
	size_t e = size;

	/* Backwards, a word at a time where aligned: a fresh chunk is mostly zeros. */
	while (e > from && (e & 7) != 0 && p[e - 1] == 0)
		e--;
	while (e >= from + 8 && (e & 7) == 0 && ld64(p + e - 8) == 0)
		e -= 8;
	while (e > from && p[e - 1] == 0)
		e--;
	return e;
}

static enum pmlog_hdr_status check_hdr(const unsigned char *p, size_t size)
{
	uint32_t crc;

	if (size < PMLOG_HDR_SIZE)
		return pmlog_nonzero_end(p, 0, size) == 0 ? PMLOG_HDR_ZERO : PMLOG_HDR_SHORT;
	if (pmlog_nonzero_end(p, 0, PMLOG_HDR_SIZE) == 0)
		return PMLOG_HDR_ZERO;
	if (memcmp(p, PMLOG_MAGIC, 8) != 0)
		return PMLOG_HDR_MAGIC;
	crc = crc32c(0, p, PMLOG_HDR_SIZE - 4);
	if (crc != ld32(p + PMLOG_HDR_SIZE - 4))
		return PMLOG_HDR_CRC;
	if (ld32(p + 8) != PMLOG_VERSION || ld32(p + 12) != PMLOG_HDR_SIZE)
		return PMLOG_HDR_VERSION;
	return PMLOG_HDR_OK;
}

/* Is there a valid record at off?  1 and its length, or 0 and why not.
 * Every bound is checked against the room left, never by adding to off
 * first: lengths near the top of the range must not wrap. */
static int check_rec(const unsigned char *p, size_t size, size_t off, uint32_t *len_out, enum pmlog_stop *why)
{
	size_t room = size - off;
	uint32_t len, crc;

	if (room < PMLOG_REC_HDR + PMLOG_COMMIT_SIZE) {
		*why = pmlog_nonzero_end(p, off, size) == off ? PMLOG_STOP_END : PMLOG_STOP_TRUNCATED;
		return 0;
	}
	len = ld32(p + off);
	crc = ld32(p + off + 4);
	if (len == 0 && crc == 0 && ld64(p + off + PMLOG_REC_HDR) == 0)
		*why = PMLOG_STOP_END; /* zeros: where the writer stopped */
	else if (len > PMLOG_MAX_RECORD)
		*why = PMLOG_STOP_TOO_LONG;
	else if (pmlog_rec_size(len) > room)
		*why = PMLOG_STOP_TRUNCATED;
	else if (ld64(p + off + pmlog_commit_off(len)) != pmlog_commit_word(crc))
		*why = PMLOG_STOP_NO_COMMIT;
	else if (pmlog_rec_crc(p + off + PMLOG_REC_HDR, len) != crc)
		*why = PMLOG_STOP_BAD_CRC;
	else {
		*len_out = len;
		return 1;
	}
	return 0;
}

enum pmlog_hdr_status pmlog_scan(const void *img, size_t size, struct pmlog_scan *out, pmlog_rec_fn fn,
				 void *arg)
{
	const unsigned char *p = img;
	size_t off = PMLOG_HDR_SIZE;

	memset(out, 0, sizeof(*out));
	out->hdr = check_hdr(p, size);
	if (out->hdr != PMLOG_HDR_OK) {
		out->dirty_end = pmlog_nonzero_end(p, 0, size);
		return out->hdr;
	}
	for (;;) {
		uint32_t len;

		if (!check_rec(p, size, off, &len, &out->why))
			break;
		if (fn != NULL)
			fn(arg, out->nrec, off, p + off + PMLOG_REC_HDR, len);
		out->nrec++;
		off += pmlog_rec_size(len);
	}
	out->tail = off;
	out->dirty_end = pmlog_nonzero_end(p, off, size);
	return PMLOG_HDR_OK;
}
