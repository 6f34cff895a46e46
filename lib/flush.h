/* flush.h -- how stores are persisted: libpmem2's CPU flush, or msync (private) */
#ifndef SM_FLUSH_H
#define SM_FLUSH_H

#include <libpmem2.h>

/* libpmem2's persist function for real persistent memory: cache-line
 * granularity (CLWB > CLFLUSHOPT > CLFLUSH, then SFENCE), or byte granularity
 * (a fence only) where the platform has eADR.  NULL if libpmem2 failed. */
pmem2_persist_fn sm_flush_cpu_fn(void);

/* The instruction that function flushes with, by libpmem2's order of
 * preference and its PMEM_NO_* environment variables: "clwb", "clflushopt",
 * "clflush", or "none (eADR)". */
const char *sm_flush_cpu_name(void);

/* 1 if every NVDIMM region's persistence domain is the CPU cache (eADR). */
int sm_flush_eadr(void);

#endif
