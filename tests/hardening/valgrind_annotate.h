/* SPDX-License-Identifier: MIT */
/* valgrind_annotate.h -- what Valgrind cannot see by itself, told through its client requests
 * (force-included in the library and the stress test built for the Valgrind runs)
 *
 * 1. FS_IOC_FIEMAP.  Valgrind 3.19's ioctl wrapper does not mark the extents
 *    the kernel writes as defined, so memcheck reports every decision taken
 *    on them (and on the grain bits computed from them) as a use of
 *    uninitialised memory.  ioctl() is wrapped to say they are defined.
 *
 * 2. C11 atomics, for Helgrind.  Helgrind learns happens-before only from
 *    pthread calls and its client requests; a release store and the acquire
 *    load that reads it look to it like two unordered accesses, and so does
 *    everything they publish.  <stdatomic.h>'s operations (and the __atomic
 *    builtins the library calls directly) are redefined to say, at each one:
 *     - the atomic object itself is never part of a race (C11 makes
 *       concurrent atomic accesses race-free): VALGRIND_HG_DISABLE_CHECKING;
 *     - a release (or stronger) operation: ANNOTATE_HAPPENS_BEFORE(object)
 *       first; an acquire (or stronger) one: ANNOTATE_HAPPENS_AFTER(object)
 *       after.  Helgrind joins every earlier BEFORE on the object into the
 *       AFTER, an edge at least as strong as the one C11 gives: it can hide
 *       a race, never invent one.  Relaxed operations order nothing.
 *    Accesses that are not atomic are left alone: those are what Helgrind
 *    checks.
 * Client requests are a few no-op instructions outside Valgrind, and the
 * other tool's requests are ignored by each.
 */
#ifndef SM_VALGRIND_ANNOTATE_H
#define SM_VALGRIND_ANNOTATE_H

#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <valgrind/helgrind.h>
#include <valgrind/memcheck.h>

static inline int sm_vg_ioctl(int fd, unsigned long req, void *arg)
{
	int rc = (ioctl)(fd, req, arg); /* parenthesised: the function, not the macro below */

	if (rc == 0 && req == FS_IOC_FIEMAP) {
		struct fiemap *fm = arg;

		VALGRIND_MAKE_MEM_DEFINED(fm->fm_extents,
					  fm->fm_mapped_extents * sizeof(struct fiemap_extent));
	}
	return rc;
}
#define ioctl(fd, req, arg) sm_vg_ioctl((fd), (req), (arg))

#define SM_HG_RELEASES(mo) ((mo) == __ATOMIC_RELEASE || (mo) == __ATOMIC_ACQ_REL || (mo) == __ATOMIC_SEQ_CST)
#define SM_HG_ACQUIRES(mo) ((mo) == __ATOMIC_ACQUIRE || (mo) == __ATOMIC_ACQ_REL || (mo) == __ATOMIC_SEQ_CST)

#define SM_HG_PRE(p, mo)                                            \
	do {                                                        \
		VALGRIND_HG_DISABLE_CHECKING((p), sizeof(*(p)));    \
		if (SM_HG_RELEASES(mo))                             \
			ANNOTATE_HAPPENS_BEFORE((const void *)(p)); \
	} while (0)
#define SM_HG_POST(p, mo)                                          \
	do {                                                       \
		if (SM_HG_ACQUIRES(mo))                            \
			ANNOTATE_HAPPENS_AFTER((const void *)(p)); \
	} while (0)

#undef atomic_store_explicit
#define atomic_store_explicit(PTR, VAL, MO)                    \
	__extension__({                                        \
		__auto_type sm_hg_p = (PTR);                   \
		__typeof__((void)0, *sm_hg_p) sm_hg_v = (VAL); \
		int sm_hg_mo = (MO);                           \
		SM_HG_PRE(sm_hg_p, sm_hg_mo);                  \
		__atomic_store(sm_hg_p, &sm_hg_v, sm_hg_mo);   \
	})
#undef atomic_store
#define atomic_store(PTR, VAL) atomic_store_explicit(PTR, VAL, __ATOMIC_SEQ_CST)

#undef atomic_load_explicit
#define atomic_load_explicit(PTR, MO)                                    \
	__extension__({                                                  \
		__auto_type sm_hg_p = (PTR);                             \
		__typeof__((void)0, *sm_hg_p) sm_hg_v;                   \
		int sm_hg_mo = (MO);                                     \
		VALGRIND_HG_DISABLE_CHECKING(sm_hg_p, sizeof(*sm_hg_p)); \
		__atomic_load(sm_hg_p, &sm_hg_v, sm_hg_mo);              \
		SM_HG_POST(sm_hg_p, sm_hg_mo);                           \
		sm_hg_v;                                                 \
	})
#undef atomic_load
#define atomic_load(PTR) atomic_load_explicit(PTR, __ATOMIC_SEQ_CST)

#undef atomic_exchange_explicit
#define atomic_exchange_explicit(PTR, VAL, MO)                            \
	__extension__({                                                   \
		__auto_type sm_hg_p = (PTR);                              \
		__typeof__((void)0, *sm_hg_p) sm_hg_v = (VAL), sm_hg_r;   \
		int sm_hg_mo = (MO);                                      \
		SM_HG_PRE(sm_hg_p, sm_hg_mo);                             \
		__atomic_exchange(sm_hg_p, &sm_hg_v, &sm_hg_r, sm_hg_mo); \
		SM_HG_POST(sm_hg_p, sm_hg_mo);                            \
		sm_hg_r;                                                  \
	})
#undef atomic_exchange
#define atomic_exchange(PTR, VAL) atomic_exchange_explicit(PTR, VAL, __ATOMIC_SEQ_CST)

#define SM_HG_CMPXCHG(PTR, VAL, DES, WEAK, SUC, FAIL)                                                   \
	__extension__({                                                                                 \
		__auto_type sm_hg_p = (PTR);                                                            \
		__typeof__((void)0, *sm_hg_p) sm_hg_d = (DES);                                          \
		int sm_hg_s = (SUC), sm_hg_f = (FAIL);                                                  \
		bool sm_hg_ok;                                                                          \
		SM_HG_PRE(sm_hg_p, sm_hg_s);                                                            \
		sm_hg_ok = __atomic_compare_exchange(sm_hg_p, (VAL), &sm_hg_d, WEAK, sm_hg_s, sm_hg_f); \
		SM_HG_POST(sm_hg_p, sm_hg_ok ? sm_hg_s : sm_hg_f);                                      \
		sm_hg_ok;                                                                               \
	})
#undef atomic_compare_exchange_strong_explicit
#define atomic_compare_exchange_strong_explicit(PTR, VAL, DES, SUC, FAIL) \
	SM_HG_CMPXCHG(PTR, VAL, DES, 0, SUC, FAIL)
#undef atomic_compare_exchange_strong
#define atomic_compare_exchange_strong(PTR, VAL, DES) \
	SM_HG_CMPXCHG(PTR, VAL, DES, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
#undef atomic_compare_exchange_weak_explicit
#define atomic_compare_exchange_weak_explicit(PTR, VAL, DES, SUC, FAIL) \
	SM_HG_CMPXCHG(PTR, VAL, DES, 1, SUC, FAIL)
#undef atomic_compare_exchange_weak
#define atomic_compare_exchange_weak(PTR, VAL, DES) \
	SM_HG_CMPXCHG(PTR, VAL, DES, 1, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

/* Read-modify-write: a macro per builtin, which inside its own expansion
 * still names the builtin. */
#define SM_HG_RMW(OP, PTR, VAL, MO)                                 \
	__extension__({                                             \
		__auto_type sm_hg_p = (PTR);                        \
		int sm_hg_mo = (MO);                                \
		SM_HG_PRE(sm_hg_p, sm_hg_mo);                       \
		__auto_type sm_hg_r = OP(sm_hg_p, (VAL), sm_hg_mo); \
		SM_HG_POST(sm_hg_p, sm_hg_mo);                      \
		sm_hg_r;                                            \
	})
#define __atomic_fetch_add(PTR, VAL, MO) SM_HG_RMW(__atomic_fetch_add, PTR, VAL, MO)
#define __atomic_fetch_sub(PTR, VAL, MO) SM_HG_RMW(__atomic_fetch_sub, PTR, VAL, MO)
#define __atomic_fetch_or(PTR, VAL, MO) SM_HG_RMW(__atomic_fetch_or, PTR, VAL, MO)
#define __atomic_fetch_and(PTR, VAL, MO) SM_HG_RMW(__atomic_fetch_and, PTR, VAL, MO)
#define __atomic_fetch_xor(PTR, VAL, MO) SM_HG_RMW(__atomic_fetch_xor, PTR, VAL, MO)

#define __atomic_load_n(PTR, MO)                                          \
	__extension__({                                                   \
		__auto_type sm_hg_p = (PTR);                              \
		int sm_hg_mo = (MO);                                      \
		VALGRIND_HG_DISABLE_CHECKING(sm_hg_p, sizeof(*sm_hg_p));  \
		__auto_type sm_hg_v = __atomic_load_n(sm_hg_p, sm_hg_mo); \
		SM_HG_POST(sm_hg_p, sm_hg_mo);                            \
		sm_hg_v;                                                  \
	})

#endif
