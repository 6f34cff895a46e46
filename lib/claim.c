/* SPDX-License-Identifier: MIT */
/* claim.c -- holding a MAP_FIXED target's free parts while the library allocates
 *
 * The free parts are found without reading /proc: a PROT_NONE mapping with
 * MAP_FIXED_NOREPLACE succeeds exactly where a range is wholly free (and is
 * then the placeholder), and msync(range, 0) succeeds exactly where a range
 * is wholly mapped (flags 0 is MS_ASYNC's no-op; only the ENOMEM for an
 * unmapped part is reported).  A range that is neither is split in two.  A
 * target that is all free or all mapped costs one or two system calls; one
 * with k free parts, about 2k log2(pages).
 */
#include "claim.h"

#include "config.h"
#include "sys.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A target with more free parts than this (each between two mappings of
 * the caller) is refused with ENOMEM, as if out of VMAs. */
#define SM_CLAIMS_MAX 1024

static uintptr_t claims[SM_CLAIMS_MAX][2]; /* under the table lock */
static size_t nclaims, base;		   /* all records; the current claim's first */

/* A placeholder over [s, e): 0, EEXIST if anything is mapped there, or
 * mmap's error. */
static int placeholder(uintptr_t s, uintptr_t e)
{
	void *p = sm_sys_mmap((void *)s, e - s, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return errno;
	if ((uintptr_t)p != s) { /* before 4.17 NOREPLACE was a hint: taken means elsewhere */
		sm_sys_munmap(p, e - s);
		return EEXIST;
	}
	return 0;
}

static int record(uintptr_t s, uintptr_t e)
{
	if (nclaims > base && claims[nclaims - 1][1] == s) {
		claims[nclaims - 1][1] = e; /* the kernel merged them too */
		return 0;
	}
	if (nclaims == SM_CLAIMS_MAX)
		return ENOMEM;
	claims[nclaims][0] = s;
	claims[nclaims][1] = e;
	nclaims++;
	return 0;
}

static int all_mapped(uintptr_t s, uintptr_t e)
{
	/* Raw: the preload shim may wrap msync. */
	return syscall(SYS_msync, (void *)s, e - s, 0) == 0;
}

/* Claim the free parts of [s, e), left to right; `err` is what a
 * placeholder over the whole range gave. */
static int claim_range(uintptr_t s, uintptr_t e, int err)
{
	uintptr_t mid;

	if (err == 0) {
		err = record(s, e);
		if (err != 0)
			sm_sys_munmap((void *)s, e - s);
		return err;
	}
	if (err != EEXIST)
		return err;
	/* One page that is taken is mapped; a range may have been unmapped by
	 * another thread meanwhile, which leaves it to the final mapping, as
	 * mmap(2) would. */
	if (e - s == sm_cfg.page || all_mapped(s, e))
		return 0;
	mid = s + (((e - s) / 2) & ~(uintptr_t)(sm_cfg.page - 1));
	err = claim_range(s, mid, placeholder(s, mid));
	return err != 0 ? err : claim_range(mid, e, placeholder(mid, e));
}

int sm_claim(struct sm_claim *c, uintptr_t addr, size_t len, int all_free)
{
	size_t rlen = (len + sm_cfg.page - 1) & ~(sm_cfg.page - 1);
	int err;

	c->first = base = nclaims;
	c->n = 0;
	if (len == 0 || rlen < len)
		return len == 0 ? EINVAL : ENOMEM;
	/* Alignment, range and VMA errors come from the first placeholder, as
	 * from the caller's own mmap at that address. */
	err = placeholder(addr, addr + rlen);
	if (all_free) {
		if (err == 0 && (err = record(addr, addr + rlen)) != 0)
			sm_sys_munmap((void *)addr, rlen);
	} else {
		err = claim_range(addr, addr + rlen, err);
	}
	c->n = nclaims - c->first;
	if (err != 0) {
		sm_claim_release(c);
		return err;
	}
	return 0;
}

void sm_claim_forget(struct sm_claim *c)
{
	nclaims = c->first;
	c->n = 0;
}

void sm_claim_release(struct sm_claim *c)
{
	int err = errno;

	for (size_t i = c->first; i < c->first + c->n; i++)
		sm_sys_munmap((void *)claims[i][0], claims[i][1] - claims[i][0]);
	sm_claim_forget(c);
	errno = err;
}
