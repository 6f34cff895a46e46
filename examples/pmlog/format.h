/* SPDX-License-Identifier: MIT */
/* format.h -- the pmlog file format, and recovery as a scan over a memory buffer
 *
 * A pmlog file is a 64-byte header followed by records, each at an 8-byte
 * aligned offset:
 *
 *   header   magic "PMLOG\0\0\0", u32 version (1), u32 header size (64),
 *            44 reserved zero bytes, u32 CRC-32C of the 60 bytes before it
 *   record   u32 len, u32 crc, len bytes of data, zero padding to 8 bytes,
 *            u64 commit word
 *
 * crc is CRC-32C over the 4 bytes of len followed by the data.  The commit
 * word is (crc << 32 | "CMIT") and is written only after the rest of the
 * record is durable, so a record with a valid commit word was complete when
 * it was committed; the CRC then catches media damage and anything else the
 * commit word cannot.  Everything after the last record is zero: the writer
 * keeps it so, and recovery restores it after a crash.  Integers are stored
 * little-endian (the byte order of the hosts libsyncmap runs on).
 *
 * Nothing here touches a file: recovery is pmlog_scan() over bytes, so the
 * fuzz target can run it on arbitrary input.
 */
#ifndef PMLOG_FORMAT_H
#define PMLOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define PMLOG_MAGIC "PMLOG\0\0\0"
#define PMLOG_VERSION 1u
#define PMLOG_HDR_SIZE 64u
#define PMLOG_REC_HDR 8u /* len + crc */
#define PMLOG_COMMIT_SIZE 8u
#define PMLOG_COMMIT_TAG 0x54494d43u /* "CMIT" read as a little-endian u32 */
#define PMLOG_MAX_RECORD (16u << 20) /* larger lengths are corruption, not records */

/* Bytes a record of len data bytes takes in the file. */
static inline size_t pmlog_rec_size(size_t len)
{
	return PMLOG_REC_HDR + ((len + 7) & ~(size_t)7) + PMLOG_COMMIT_SIZE;
}

/* Offset of the commit word within a record of len data bytes. */
static inline size_t pmlog_commit_off(size_t len)
{
	return PMLOG_REC_HDR + ((len + 7) & ~(size_t)7);
}

static inline uint64_t pmlog_commit_word(uint32_t crc)
{
	return (uint64_t)crc << 32 | PMLOG_COMMIT_TAG;
}

/* The CRC stored in a record of these bytes. */
uint32_t pmlog_rec_crc(const void *data, uint32_t len);

/* Fill hdr[0..PMLOG_HDR_SIZE) with a valid header. */
void pmlog_hdr_init(void *hdr);

/* What the header of an image says. */
enum pmlog_hdr_status {
	PMLOG_HDR_OK = 0,
	PMLOG_HDR_ZERO,	   /* shorter than a header, or a header of zeros: an unformatted file */
	PMLOG_HDR_SHORT,   /* shorter than a header and not all zero */
	PMLOG_HDR_MAGIC,   /* not a pmlog file */
	PMLOG_HDR_VERSION, /* a pmlog file of a version this code does not read */
	PMLOG_HDR_CRC,	   /* header damaged */
};
const char *pmlog_hdr_strerror(enum pmlog_hdr_status st);

/* Why the scan stopped where it did. */
enum pmlog_stop {
	PMLOG_STOP_END = 0,   /* zeros, or the end of the image: a clean end */
	PMLOG_STOP_TRUNCATED, /* a record runs past the end of the image */
	PMLOG_STOP_TOO_LONG,  /* a length above PMLOG_MAX_RECORD */
	PMLOG_STOP_NO_COMMIT, /* the commit word is missing or wrong */
	PMLOG_STOP_BAD_CRC,   /* committed, but the data does not match its CRC */
};
const char *pmlog_stop_str(enum pmlog_stop why);

struct pmlog_scan {
	enum pmlog_hdr_status hdr;
	uint64_t nrec;	     /* valid records, all before tail */
	size_t tail;	     /* where the next record goes: just past the last valid one */
	size_t dirty_end;    /* past the last nonzero byte at or after tail; == tail if clean */
	enum pmlog_stop why; /* why the records ended at tail */
};

/* Called for each valid record, in order.  data points into the image. */
typedef void (*pmlog_rec_fn)(void *arg, uint64_t idx, size_t off, const void *data, uint32_t len);

/*
 * pmlog_scan -- recovery over the image img[0..size): check the header, walk
 * the records while each is whole, committed and matches its CRC, and find
 * the torn tail [tail, dirty_end) that a writer must zero before appending.
 * Reads only inside img.  If the header is not PMLOG_HDR_OK, no record is
 * reported, tail is 0 and dirty_end is past the last nonzero byte of img.
 * Returns out->hdr.
 */
enum pmlog_hdr_status pmlog_scan(const void *img, size_t size, struct pmlog_scan *out, pmlog_rec_fn fn,
				 void *arg);

/* Past the last nonzero byte of img[from..size), or from if there is none. */
size_t pmlog_nonzero_end(const void *img, size_t from, size_t size);

#endif
