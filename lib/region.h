/* SPDX-License-Identifier: MIT */
/* region.h -- the lock-free table of syncmap mappings and what they hold (private) */
#ifndef SM_REGION_H
#define SM_REGION_H

#include <libpmem2.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

/* One open file behind FAULT mappings, shared by every mapping of that inode,
 * so that 10,000 mappings of one file cost two descriptors.  With nref 0 it is
 * parked: kept, descriptors open, while the process holds POSIX locks on the
 * file (closing would drop them: region.c). */
struct sm_file {
	struct sm_file *next; /* list under the table lock */
	dev_t dev;
	ino_t ino;
	/* The library's descriptors (O_CLOEXEC), replaced under the table lock if
	 * the program took their numbers: fd duplicates the program's open file
	 * description (the program's mappings are remapped from it, as the kernel
	 * keeps a moved mapping's file); lfd is a description of the library's
	 * own, for the alias, allocation and syncs, so that writeback errors
	 * reach the program's fsync (region.c), or fd where it cannot be had. */
	_Atomic int fd, lfd;
	int nref;		/* regions using it, under the table lock */
	unsigned dax : 1;	/* statx says DAX */
	unsigned mapsync : 1;	/* the kernel accepted MAP_SYNC for it */
	unsigned cow : 1;	/* copy-on-write filesystem: never "already safe" */
	_Atomic int no_reserve; /* fallocate is not supported: durable.c stops asking */
};

/* Which grains of a file range are durable-allocated.  Bit i is grain g0 + i,
 * grain g covering file offsets [g * grain, (g + 1) * grain).  A bit is set only
 * when the whole grain was made durable; grains clipped by the mapping or by
 * EOF are prepared each time instead.  Shared by the pieces of a split mapping. */
struct sm_bits {
	_Atomic uint64_t *w; /* anonymous MAP_NORESERVE memory: touched pages only */
	size_t bytes;
	uint64_t g0, n;
	int nref; /* regions using it, under the table lock */
};

enum sm_state { SM_LIVE = 0, SM_BLOCKED = 1, SM_DEAD = 2 };

struct sm_region {
	uintptr_t start, end; /* user range, page aligned */
	off_t off;	      /* file offset of start */
	int mode;	      /* enum syncmap_mode */
	int prot;	      /* protection the user asked for */
	size_t grain;
	char *alias;		      /* FAULT: writable alias of start; owns [alias, alias + len) */
	struct sm_file *file;	      /* FAULT */
	struct sm_bits *bits;	      /* FAULT */
	pmem2_persist_fn cpu_persist; /* persist by CPU flush when set, msync otherwise */
	/* Engine hints (engine.c), written from the fault handler: the grain of
	 * the last fault + 1, and the grain whose fault asks for the next window. */
	_Atomic uint64_t eng_last, eng_expect;
	_Atomic uint64_t eng_inline; /* grains of the handler's last window (no engine), or 0 */
	_Atomic uintptr_t eng_ahead; /* KERNEL: prefaulted up to here */
	/* FAULT: the engine will ready, or is readying, [eng_busy_s, eng_busy_e)
	 * while eng_busy holds a mark id (0: none) set under engine eng_busy_tok;
	 * a writer that faults there waits for it (futex on eng_busy) instead of
	 * syncing the same grains twice (engine.c). */
	_Atomic int eng_busy, eng_busy_tok;
	_Atomic uintptr_t eng_busy_s, eng_busy_e;
	_Atomic int eng_busy_tid; /* the thread whose fault queued the marked window, or 0 */
	/* SM_LIVE: fields above are stable; users hold refs.  A writer that changes
	 * the region sets SM_BLOCKED and waits for refs to drain first. */
	_Atomic int state;
	_Atomic long refs;
	struct sm_region *retired_next;
};

/* The writer lock: every change to the table, files and bits happens under it.
 * Never taken on the fault path. */
void sm_table_lock(void);
void sm_table_unlock(void);

/* Reader side: lock-free and async-signal-safe.
 * SM_FOUND: *out is a live region holding a; it stays valid until
 * sm_region_put().  SM_BUSY: a region holds a but a writer is changing it:
 * retry later.  SM_NOTFOUND: no region holds a. */
enum { SM_NOTFOUND = 0, SM_FOUND = 1, SM_BUSY = 2 };
int sm_region_get(uintptr_t a, struct sm_region **out);

/* The same for the first region that ends above a, which may start above a:
 * lets a caller walking a range skip what is not ours. */
int sm_region_next(uintptr_t a, struct sm_region **out);

/* Lock-free walk of the regions overlapping [a, end): fn(r, s, e, arg) for
 * each, with [s, e) the part inside r and a ref on r held for the call
 * (so fn must not touch r's user memory: a fault there, while a writer
 * waits for the ref, would wait forever).  Regions a writer is changing are
 * waited for.  fn returns 0 to go on, or an errno value, which stops the
 * walk and is returned. */
int sm_regions_walk(uintptr_t a, uintptr_t end,
		    int (*fn)(struct sm_region *r, uintptr_t s, uintptr_t e, void *arg), void *arg);

/* Lock-free: 1 if some region overlaps [s, e).  Writers use it to skip the
 * lock for ranges that are none of the library's business. */
int sm_regions_any(uintptr_t s, uintptr_t e);

static inline void sm_region_put(struct sm_region *r)
{
	atomic_fetch_sub_explicit(&r->refs, 1, memory_order_release);
}

/* Writer side (table lock held). */
int sm_region_insert(struct sm_region *r);   /* 0, or -1/ENOMEM */
void sm_region_destroy(struct sm_region *r); /* never published: release and free */

/* The regions overlapping [s, e), ascending; *out is malloc'd (free it). */
size_t sm_regions_in(uintptr_t s, uintptr_t e, struct sm_region ***out);

/* Taking a range out of the table, or giving it a new protection, around the
 * kernel call that does the same to the mappings:
 *   sm_cut_begin   blocks every region overlapping [s, e) (in-flight faults
 *                  finish first; new ones wait) and allocates what commit needs;
 *   sm_cut_commit  publishes what is left: the parts outside [s, e) as they
 *                  were, the parts inside dropped (drop = 1, their alias
 *                  unmapped) or given protection prot (drop = 0), and the
 *                  region add (if not NULL) in the same table swap, so a
 *                  fault on a replaced range always finds one or the other;
 *   sm_cut_abort   unblocks, nothing changed. */
struct sm_table;
struct sm_cut {
	uintptr_t s, e;
	size_t n;
	struct sm_region **old;	  /* blocked regions, ascending */
	struct sm_region **fresh; /* 3 per old region, preallocated */
	struct sm_table *next;	  /* the table commit publishes, preallocated */
};
int sm_cut_begin(struct sm_cut *c, uintptr_t s, uintptr_t e); /* 0, or -1/ENOMEM */
void sm_cut_commit(struct sm_cut *c, int drop, int prot, struct sm_region *add);
void sm_cut_abort(struct sm_cut *c);
/* Before a commit: narrow the cut to [s, e), s < e <= its end, e at the start
 * of a region or the end of one; the regions from e on are let go unchanged. */
void sm_cut_narrow(struct sm_cut *c, uintptr_t e);

/* Block one region (SM_BLOCKED, refs drained) and let it go again. */
void sm_region_block(struct sm_region *r);
void sm_region_unblock(struct sm_region *r);

/* Files and grain maps (table lock held). */
struct sm_file *sm_file_get(int fd); /* NULL/errno */
struct sm_file *sm_file_find(dev_t dev, ino_t ino);
void sm_file_put(struct sm_file *f);

/* f's descriptor if it is still the library's (the program may have closed
 * or dup2'd over it: then -1/EBADF, and nothing may be done with the number).
 * No lock: the caller holds a ref on a region using f.  sm_file_fd gives fd,
 * sm_file_lfd gives lfd (async-signal-safe: fstat and fcntl). */
int sm_file_fd(struct sm_file *f);
int sm_file_lfd(struct sm_file *f);

/* syncmap_file_changed() for the file dev:ino (prepare.c). */
int sm_file_changed_ino(dev_t dev, ino_t ino, off_t off, off_t len);
struct sm_bits *sm_bits_new(off_t off, size_t len, size_t grain); /* NULL/errno */
void sm_bits_put(struct sm_bits *b);

/* Grain bits: lock-free, async-signal-safe. */
static inline int sm_bit_test(struct sm_bits *b, uint64_t g)
{
	uint64_t i = g - b->g0;

	if (g < b->g0 || i >= b->n)
		return 0;
	/* acquire: pairs with the release in sm_bit_set, so a thread that sees the
	 * bit also sees the grain's sync as done. */
	return (atomic_load_explicit(&b->w[i / 64], memory_order_acquire) >> (i % 64)) & 1;
}

static inline void sm_bit_set(struct sm_bits *b, uint64_t g)
{
	uint64_t i = g - b->g0;

	if (g >= b->g0 && i < b->n)
		atomic_fetch_or_explicit(&b->w[i / 64], (uint64_t)1 << (i % 64), memory_order_release);
}

void sm_bits_clear(struct sm_bits *b, uint64_t g_from, uint64_t g_to); /* [from, to) */

/* First grain in [g, hi) whose bit is `want`, or hi; last grain in [lo, g]
 * whose bit is set, or UINT64_MAX.  Grains outside the map read as clear. */
uint64_t sm_bits_next(struct sm_bits *b, uint64_t g, uint64_t hi, int want);
uint64_t sm_bits_prev_set(struct sm_bits *b, uint64_t g, uint64_t lo);

/* Called in a forked child: only the forking thread survives, so no fault is
 * in flight; in-flight counts inherited from other threads are reset. */
void sm_table_after_fork_child(void);

#endif
