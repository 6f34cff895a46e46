/* SPDX-License-Identifier: MIT */
/* crc32c.h -- CRC-32C (Castagnoli), the checksum of every pmlog record */
#ifndef PMLOG_CRC32C_H
#define PMLOG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * crc32c -- extend crc (0 to start) over buf[0..len).  Same convention as
 * zlib's crc32(): crc32c(crc32c(0, a, n), b, m) == crc32c(0, a || b, n + m).
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise;
 * both give the same result (the fuzz target checks them against a bitwise
 * reference).
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The table version alone, for tests that compare the two paths. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
