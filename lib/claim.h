/* SPDX-License-Identifier: MIT */
/* claim.h -- holding a MAP_FIXED target's free parts while the library allocates (private) */
#ifndef SM_CLAIM_H
#define SM_CLAIM_H

#include <stddef.h>
#include <stdint.h>

/*
 * A caller's MAP_FIXED (or MREMAP_FIXED) target replaces whatever lies in
 * it, so nothing the library keeps may be placed there: not its alias, grain
 * map or records, nor a heap arena its malloc creates.  Before allocating,
 * the library claims the free parts of the target with PROT_NONE placeholders
 * (MAP_FIXED_NOREPLACE: what is mapped there stays, so a MAP_FIXED over a
 * mapping still replaces it in one call, atomically).  Every mmap(NULL) the
 * kernel then places falls outside the target.  The caller's final MAP_FIXED
 * replaces placeholders and old mappings together; on failure the
 * placeholders are removed and the range is as the caller left it.
 *
 * Table lock held from sm_claim to sm_claim_release or sm_claim_forget: the
 * records of the placeholders live in static memory, which no mmap can
 * replace.
 */
struct sm_claim {
	size_t first, n; /* this claim's records */
};

/* Claim the free parts of [addr, addr + len).  all_free: the whole range
 * must be free (MAP_FIXED_NOREPLACE), else EEXIST.  0, or an errno value
 * (what mmap(2) at that address would give: EINVAL unaligned, ENOMEM out of
 * range or out of VMAs, EEXIST); nothing is held then. */
int sm_claim(struct sm_claim *c, uintptr_t addr, size_t len, int all_free);

/* The placeholders were replaced by the final mapping: forget them. */
void sm_claim_forget(struct sm_claim *c);

/* Failure before the final mapping: unmap the placeholders (errno kept). */
void sm_claim_release(struct sm_claim *c);

#endif
