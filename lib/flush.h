/* SPDX-License-Identifier: MIT */
/* flush.h -- how stores are persisted: libpmem2's CPU flush, or msync (private) */
#ifndef SM_FLUSH_H
#define SM_FLUSH_H

#include <libpmem2.h>

/* libpmem2's persist function for real persistent memory: cache-line
 * granularity (CLWB > CLFLUSHOPT > CLFLUSH, then SFENCE), or byte granularity
 * (a fence only) where the platform has eADR.  NULL if libpmem2 failed. */
pmem2_persist_fn sm_flush_cpu_fn(void);

/* The instruction that function flushes with, by libpmem2's order of
 * preference and its PMEM_NO_CLWB / PMEM_NO_CLFLUSHOPT variables: "clwb",
 * "clflushopt", "clflush", or "none (eADR)" (PMEM_NO_FLUSH is libpmem's, not
 * libpmem2's: it changes nothing). */
const char *sm_flush_cpu_name(void);

/* 1 if there is an NVDIMM region and every one's persistence domain is the
 * CPU cache (eADR); a region without that promise makes it 0. */
int sm_flush_eadr(void);

/* The eADR answer for an nd bus whose devices directory is root
 * (/sys/bus/nd/devices in sm_flush_eadr; a fake tree in tests). */
int sm_flush_detect_eadr(const char *root);

#endif
