/* SPDX-License-Identifier: MIT */
/* ops.c -- each op, run in the kernel world (raw system calls) and through libsyncmap, results compared */
#include "world.h"

#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#define INTERIOR_END (ARENA_PAGES - GUARD_PAGES)

static unsigned char data[1 << 18];
static unsigned feat = F_ALL; /* the sequence's features: what arguments it may draw */
static unsigned kinds_off;    /* op kinds it never runs (forked children included) */

/* Draws the same numbers whatever the features, so that a sequence means the
 * same ops with some of them switched off. */
static int draw(uint64_t *r, unsigned pct, unsigned feature)
{
	return chance(r, pct) && (feat & feature);
}

/* --- the reference world: the kernel, with nothing in between --- */

/* Each also notes, for after_ref(), which arena pages its success freed
 * (and which it mapped again): only something else can have put a mapping
 * where a reference call left a hole. */

int difffuzz_intrude;

static long k_mmap(struct fz *z, uintptr_t a, size_t len, int prot, int flags, int fd, off_t off)
{
	long v = syscall(SYS_mmap, a, len, prot, flags, fd, off);

	if (v != -1)
		ref_freed(z, (uintptr_t)v, len, 0);
	return v;
}

static long k_munmap(struct fz *z, uintptr_t a, size_t len)
{
	long v = syscall(SYS_munmap, a, len);

	if (v == 0)
		ref_freed(z, a, len, 1);
	if (v == 0 && difffuzz_intrude)
		syscall(SYS_mmap, 0, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return v;
}

static long k_mprotect(uintptr_t a, size_t len, int prot)
{
	return syscall(SYS_mprotect, a, len, prot);
}

static long k_mremap(struct fz *z, uintptr_t a, size_t old_len, size_t new_len, int flags, uintptr_t to)
{
	long v = syscall(SYS_mremap, a, old_len, new_len, flags, to);

	if (v != -1 && old_len != 0 && !(flags & MREMAP_DONTUNMAP)) {
		if ((uintptr_t)v != a)
			ref_freed(z, a, old_len, 1);
		else if (new_len < old_len)
			ref_freed(z, a + new_len, old_len - new_len, 1);
	}
	if (v != -1)
		ref_freed(z, (uintptr_t)v, new_len, 0);
	return v;
}

/* --- outcomes --- */

struct out {
	long v; /* return value; -1 (MAP_FAILED) is failure */
	int e;	/* errno then */
};

static struct out outcome(long v)
{
	struct out o = {v, v == -1 ? errno : 0};

	return o;
}

static const char *show(const struct fz *z, int w, struct out o, int is_ptr)
{
	static char bufs[8][64];
	static unsigned next;
	char *b = bufs[next++ % 8];

	if (o.v == -1)
		snprintf(b, sizeof(bufs[0]), "-1 %s", errname(o.e));
	else if (is_ptr)
		snprintf(b, sizeof(bufs[0]), "%s", fmt_addr(z, w, (uintptr_t)o.v));
	else
		snprintf(b, sizeof(bufs[0]), "%ld", o.v);
	return b;
}

static void record(struct fz *z, const char *call, struct out r, struct out l, int is_ptr)
{
	say(z, "    %-60s reference %-14s libsyncmap %s\n", call, show(z, REF, r, is_ptr),
	    show(z, LIB, l, is_ptr));
}

/* "mremap ok/EINVAL": what minimizing a mismatch must keep. */
static void set_key(struct fz *z, const char *call, struct out r, struct out l)
{
	int n = (int)strcspn(call, "(");

	snprintf(z->key, sizeof(z->key), "%.*s %s/%s", n, call, r.v == -1 ? errname(r.e) : "ok",
		 l.v == -1 ? errname(l.e) : "ok");
}

/* Success against failure, or two errnos: the mmap(2) conventions kept? */
static void same(struct fz *z, const char *call, struct out r, struct out l, int is_ptr)
{
	set_key(z, call, r, l);
	if ((r.v == -1) != (l.v == -1))
		fz_fail(z, "result", "%s: reference %s, libsyncmap %s", call, show(z, REF, r, is_ptr),
			show(z, LIB, l, is_ptr));
	if (r.v == -1 && r.e != l.e)
		fz_fail(z, "errno", "%s: reference %s, libsyncmap %s", call, show(z, REF, r, is_ptr),
			show(z, LIB, l, is_ptr));
	z->key[0] = '\0';
}

/* Where each world's new mapping went: the same arena offset, or somewhere
 * the kernel chose in each (a new pair). */
static void placed(struct fz *z, const char *call, struct out r, struct out l, size_t len, uintptr_t fixed)
{
	if (r.v == -1)
		return;
	if (fixed != 0 && (uintptr_t)l.v != xlate(z, fixed, NULL))
		fz_fail(z, "placement", "%s: libsyncmap mapped at %s instead of the address asked", call,
			fmt_addr(z, LIB, (uintptr_t)l.v));
	if (in_arena(z, REF, (uintptr_t)r.v)) {
		if ((uintptr_t)l.v != xlate(z, (uintptr_t)r.v, NULL))
			fz_fail(z, "placement", "%s: reference at %s, libsyncmap at %s", call,
				fmt_addr(z, REF, (uintptr_t)r.v), fmt_addr(z, LIB, (uintptr_t)l.v));
		return;
	}
	if (in_arena(z, LIB, (uintptr_t)l.v))
		fz_fail(z, "placement", "%s: reference outside its arena (%s), libsyncmap inside (%s)", call,
			fmt_addr(z, REF, (uintptr_t)r.v), fmt_addr(z, LIB, (uintptr_t)l.v));
	add_pair(z, (uintptr_t)r.v, (uintptr_t)l.v, len);
}

/* Where the run is, for the report of a crash or hang: which world, which call. */
static void phase(struct fz *z, int p, const char *call, const char *then)
{
	z->rep->phase = p;
	snprintf(z->rep->doing, sizeof(z->rep->doing), "%s%s%s", call, then ? " then " : "",
		 then ? then : "");
}

/* --- choosing what to aim at --- */

enum { T_ANY, T_ARENA, T_WRITABLE };

/* A target: mostly the one at (or after) a random arena address, so that an
 * op keeps aiming at the same mapping when ops before it are dropped (which
 * is what makes minimizing work); else any, by index. */
static const struct tgt *pick_target(struct fz *z, uint64_t *r, int filter)
{
	static size_t idx[MAX_VMAS];
	uintptr_t at = arena_page(z, REF, below(r, ARENA_PAGES));
	int by_address = chance(r, 75);
	size_t n = 0, first_after = SIZE_MAX, narena = 0;

	for (size_t i = 0; i < z->ntgt; i++) {
		const struct tgt *t = &z->tgt[i];

		if (filter == T_ARENA && !t->arena)
			continue;
		if (filter == T_WRITABLE && (t->perms[1] != 'w' || t->off >= z->fsize))
			continue;
		if (t->arena && t->e > at && first_after == SIZE_MAX)
			first_after = n;
		narena += t->arena;
		idx[n++] = i;
	}
	if (n == 0)
		return NULL;
	if (by_address && narena > 0) {
		if (first_after == SIZE_MAX) /* wrap around to the first in the arena */
			for (first_after = 0; !z->tgt[idx[first_after]].arena; first_after++)
				;
		return &z->tgt[idx[first_after]];
	}
	return &z->tgt[idx[below(r, n)]];
}

static size_t pick_pages(uint64_t *r)
{
	switch (below(r, 4)) {
	case 0: return 1 + below(r, 4);
	case 1: return 1 + below(r, 16);
	case 2: return 1 + below(r, 48);
	default: return 1 + below(r, MAX_MAP_PAGES);
	}
}

/* n pages somewhere inside the arena, away from its guards. */
static uintptr_t arena_range(struct fz *z, uint64_t *r, size_t n)
{
	return arena_page(z, REF, GUARD_PAGES + below(r, INTERIOR_END - GUARD_PAGES - n));
}

static size_t arena_room(const struct fz *z, uintptr_t s)
{
	return INTERIOR_END - (s - (uintptr_t)z->arena[REF]) / PG;
}

/* Whole, head, tail or middle of a target. */
static uintptr_t sub_range(uint64_t *r, const struct tgt *t, size_t *n)
{
	size_t np = (t->e - t->s) / PG, a = 0, b = np;

	switch (below(r, 5)) {
	case 0:
	case 1: break;
	case 2: b = 1 + below(r, np); break;
	case 3: a = below(r, np); break;
	default:
		a = below(r, np);
		b = a + 1 + below(r, np - a);
		break;
	}
	*n = b - a;
	return t->s + a * PG;
}

/* A range in the reference world: part of a mapping (pct of the time) or of
 * the arena.  Inside one translation piece either way. */
static uintptr_t pick_range(struct fz *z, uint64_t *r, unsigned pct, size_t *n, const struct tgt **tp)
{
	const struct tgt *t = chance(r, pct) ? pick_target(z, r, T_ANY) : NULL;

	if (tp != NULL)
		*tp = t;
	if (t != NULL)
		return sub_range(r, t, n);
	*n = pick_pages(r);
	return arena_range(z, r, *n);
}

/* A byte length of n pages, now and then cut short of the last page's end. */
static size_t odd_len(uint64_t *r, size_t n, unsigned pct)
{
	return n * PG - (draw(r, pct, F_ODD) ? 1 + below(r, PG - 1) : 0);
}

static int pick_prot(uint64_t *r)
{
	static const int prots[] = {PROT_READ | PROT_WRITE,
				    PROT_READ | PROT_WRITE,
				    PROT_READ | PROT_WRITE,
				    PROT_READ | PROT_WRITE,
				    PROT_READ,
				    PROT_READ,
				    PROT_WRITE,
				    PROT_NONE,
				    PROT_READ | PROT_EXEC,
				    PROT_READ | PROT_WRITE | PROT_EXEC};

	return prots[below(r, sizeof(prots) / sizeof(prots[0]))];
}

static const char *prot_name(int prot)
{
	static char bufs[4][32];
	static unsigned next;
	char *b = bufs[next++ % 4];

	if (prot == PROT_NONE)
		return "NONE";
	snprintf(b, sizeof(bufs[0]), "%s%s%s%s", prot & PROT_READ ? "R" : "", prot & PROT_WRITE ? "W" : "",
		 prot & PROT_EXEC ? "X" : "", prot & ~7 ? "+0x?" : "");
	return b;
}

struct mapargs {
	int prot, flags;
	off_t off;
};

static struct mapargs pick_mapargs(uint64_t *r)
{
	struct mapargs m;
	unsigned t = (unsigned)below(r, 100);

	m.prot = pick_prot(r);
	m.flags = t < 80 ? MAP_SHARED : t < 90 ? MAP_SHARED_VALIDATE : MAP_PRIVATE;
	if (m.flags == MAP_SHARED_VALIDATE && draw(r, 30, F_BADARGS))
		m.flags |= MAP_SYNC; /* refused on ext4 without DAX, in both worlds */
	t = (unsigned)below(r, 100);
	if (t < 15)
		m.off = 0;
	else if (t < 90)
		m.off = (off_t)(below(r, MAX_FILE / PG) * PG);
	else if (t < 97)
		m.off = (off_t)((MAX_FILE / PG + below(r, 64)) * PG); /* past the end of any file */
	else if (feat & F_BADARGS)
		m.off = (off_t)(below(r, MAX_FILE / PG) * PG + 1 + below(r, PG - 1)); /* EINVAL */
	else
		m.off = 0;
	return m;
}

/* MAP_FIXED_NOREPLACE, or MAP_FIXED.  The kernel refuses NOREPLACE with
 * MAP_SHARED_VALIDATE (EOPNOTSUPP: it is not among the flags that type
 * validates, 6.x): a refused combination, drawn only with F_BADARGS. */
static int fixed_flag(int noreplace, int flags)
{
	if (noreplace && ((flags & 0x0f) != MAP_SHARED_VALIDATE || (feat & F_BADARGS)))
		return MAP_FIXED_NOREPLACE;
	return MAP_FIXED;
}

static const char *flags_name(int flags)
{
	static char bufs[4][96];
	static unsigned next;
	char *b = bufs[next++ % 4];
	int type = flags & 0x0f;

	snprintf(b, sizeof(bufs[0]), "%s%s%s%s",
		 type == MAP_SHARED	       ? "SHARED"
		 : type == MAP_PRIVATE	       ? "PRIVATE"
		 : type == MAP_SHARED_VALIDATE ? "SHARED_VALIDATE"
					       : "?",
		 flags & MAP_SYNC ? "|SYNC" : "", flags & MAP_FIXED ? "|FIXED" : "",
		 flags & MAP_FIXED_NOREPLACE ? "|FIXED_NOREPLACE" : "");
	return b;
}

/* --- the mapping calls, in both worlds --- */

static void map_both(struct fz *z, uintptr_t a, size_t len, struct mapargs m, struct out *r, struct out *l,
		     char *call, size_t calllen)
{
	uintptr_t la = a != 0 ? xlate(z, a, NULL) : 0;

	snprintf(call, calllen, "mmap(%s, 0x%zx, %s, %s, 0x%llx)", a ? fmt_addr(z, REF, a) : "NULL", len,
		 prot_name(m.prot), flags_name(m.flags), (unsigned long long)m.off);
	phase(z, PH_REF, call, NULL);
	*r = outcome(k_mmap(z, a, len, m.prot, m.flags, z->fd[REF], m.off));
	after_ref(z);
	phase(z, PH_LIB, call, NULL);
	*l = outcome((long)syncmap_mmap((void *)la, len, m.prot, m.flags, z->fd[LIB], m.off));
	after_lib(z);
	record(z, call, *r, *l, 1);
}

static void op_map_fixed(struct fz *z, uint64_t *r)
{
	const struct tgt *t;
	size_t n;
	uintptr_t s = pick_range(z, r, 50, &n, &t);
	struct mapargs m = pick_mapargs(r);
	struct out ro, lo;
	char call[160];
	size_t len;

	if ((t == NULL || t->arena) && chance(r, 30)) /* over the mapping and beyond it */
		n += below(r, arena_room(z, s) - n + 1);
	len = odd_len(r, n, 20);
	m.flags |= fixed_flag(chance(r, 12), m.flags);
	map_both(z, s, len, m, &ro, &lo, call, sizeof(call));
	same(z, call, ro, lo, 1);
	placed(z, call, ro, lo, len, s);
}

static void op_map_fresh(struct fz *z, uint64_t *r)
{
	size_t len = odd_len(r, pick_pages(r), 20);
	struct mapargs m = pick_mapargs(r);
	struct out ro, lo;
	char call[160];

	map_both(z, 0, len, m, &ro, &lo, call, sizeof(call));
	same(z, call, ro, lo, 1);
	placed(z, call, ro, lo, len, 0);
}

/* Unmap, then map into the hole at once: nothing may land in it between,
 * in either world, and nothing of the library's may stay in it. */
static void op_map_hole(struct fz *z, uint64_t *r)
{
	const struct tgt *t;
	size_t hn, mn, len;
	uintptr_t hs = pick_range(z, r, 60, &hn, &t), ms = hs;
	struct mapargs m = pick_mapargs(r);
	struct out ru, lu, ro, lo;
	char ucall[96], call[160];
	unsigned shape = (unsigned)below(r, 10);

	/* The new mapping covers the whole hole (and at times more): a hole
	 * left free would be fair game for the library's own mappings, and a
	 * later MAP_FIXED there would be the program's fault, not the
	 * library's. */
	mn = hn;
	if (shape >= 8 && (t == NULL || t->arena)) /* the hole and beyond */
		mn = hn + below(r, arena_room(z, hs) - hn + 1);
	len = odd_len(r, mn, 15);
	m.flags |= fixed_flag(mn == hn && chance(r, 25), m.flags);
	snprintf(ucall, sizeof(ucall), "munmap(%s, 0x%zx)", fmt_addr(z, REF, hs), hn * PG);
	snprintf(call, sizeof(call), "mmap(%s, 0x%zx, %s, %s, 0x%llx)", fmt_addr(z, REF, ms), len,
		 prot_name(m.prot), flags_name(m.flags), (unsigned long long)m.off);
	phase(z, PH_REF, ucall, call);
	ru = outcome(k_munmap(z, hs, hn * PG));
	ro = outcome(k_mmap(z, ms, len, m.prot, m.flags, z->fd[REF], m.off));
	after_ref(z);
	phase(z, PH_LIB, ucall, call);
	lu = outcome(syncmap_munmap((void *)xlate(z, hs, NULL), hn * PG));
	lo = outcome((long)syncmap_mmap((void *)xlate(z, ms, NULL), len, m.prot, m.flags, z->fd[LIB], m.off));
	after_lib(z);
	record(z, ucall, ru, lu, 0);
	record(z, call, ro, lo, 1);
	same(z, ucall, ru, lu, 0);
	same(z, call, ro, lo, 1);
	placed(z, call, ro, lo, len, ms);
}

static void op_unmap(struct fz *z, uint64_t *r)
{
	size_t n;
	uintptr_t s = pick_range(z, r, 60, &n, NULL);
	size_t len = odd_len(r, n, 20);
	struct out ro, lo;
	char call[96];

	if (draw(r, 4, F_BADARGS))
		s += 1 + below(r, PG - 1); /* EINVAL */
	else if (draw(r, 3, F_BADARGS))
		len = 0; /* EINVAL */
	snprintf(call, sizeof(call), "munmap(%s, 0x%zx)", fmt_addr(z, REF, s), len);
	phase(z, PH_REF, call, NULL);
	ro = outcome(k_munmap(z, s, len));
	after_ref(z);
	phase(z, PH_LIB, call, NULL);
	lo = outcome(syncmap_munmap((void *)xlate(z, s, NULL), len));
	after_lib(z);
	record(z, call, ro, lo, 0);
	same(z, call, ro, lo, 0);
}

static void op_mprotect(struct fz *z, uint64_t *r)
{
	const struct tgt *t;
	size_t n;
	uintptr_t s = pick_range(z, r, 60, &n, &t);
	size_t len = odd_len(r, n, 20);
	int prot = pick_prot(r);
	unsigned v = (unsigned)below(r, 100);
	struct out ro, lo;
	char call[96];

	if (v < 3) {
		len = 0;
	} else if (v < 6 && (feat & F_BADARGS)) {
		prot |= 0x10; /* no such bit: EINVAL */
	} else if (v < 9 && (t == NULL || t->arena) && (feat & F_OVERFLOW)) {
		/* Lengths whose end wraps past the top of the address space
		 * (ENOMEM from the kernel before it looks at any mapping). */
		len = chance(r, 50) ? (size_t)0 - s + below(r, 16) * PG : SIZE_MAX - below(r, PG - 1);
	}
	snprintf(call, sizeof(call), "mprotect(%s, 0x%zx, %s)", fmt_addr(z, REF, s), len, prot_name(prot));
	phase(z, PH_REF, call, NULL);
	ro = outcome(k_mprotect(s, len, prot));
	phase(z, PH_LIB, call, NULL);
	lo = outcome(syncmap_mprotect((void *)xlate(z, s, NULL), len, prot));
	record(z, call, ro, lo, 0);
	same(z, call, ro, lo, 0);
}

static const char *mremap_flags_name(int f)
{
	static char bufs[4][64];
	static unsigned next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s%s%s%s%s", f == 0 ? "0" : "", f & MREMAP_MAYMOVE ? "MAYMOVE|" : "",
		 f & MREMAP_FIXED ? "FIXED|" : "", f & MREMAP_DONTUNMAP ? "DONTUNMAP|" : "",
		 f & 8 ? "0x8|" : "");
	if (f != 0)
		b[strlen(b) - 1] = '\0';
	return b;
}

static int pick_mremap_flags(uint64_t *r)
{
	unsigned v = (unsigned)below(r, 100);

	if (v < 25)
		return 0;
	if (v < 67 || !(feat & F_BADARGS))
		return v < 84 ? MREMAP_MAYMOVE : MREMAP_MAYMOVE | MREMAP_FIXED;
	if (v < 84)
		return MREMAP_MAYMOVE | MREMAP_FIXED;
	if (v < 89)
		return MREMAP_FIXED; /* EINVAL: FIXED needs MAYMOVE */
	if (v < 93)
		return MREMAP_DONTUNMAP; /* EINVAL: needs MAYMOVE */
	if (v < 97)
		return MREMAP_MAYMOVE | MREMAP_DONTUNMAP; /* lengths made to differ below: EINVAL */
	return MREMAP_MAYMOVE | 8;			  /* no such flag: EINVAL */
}

/* Does [s, s + len) of the reference hold, in libsyncmap's world, both pages
 * of a FAULT mapping and pages that are not? */
static int mixed_modes(const struct fz *z, uintptr_t s, size_t len)
{
	int fault = 0, other = 0;

	for (size_t i = 0; i < len / PG; i++) {
		uintptr_t l = xlate(z, s + i * PG, NULL);

		if (l != 0 && syncmap_mode((void *)l) == SYNCMAP_MODE_FAULT)
			fault = 1;
		else
			other = 1;
	}
	return fault && other;
}

/* A known, documented difference (syncmap_mremap(3)): the library refuses
 * (EFAULT) a range that spans a FAULT mapping and one it does not manage,
 * even where the kernel merged the two into one VMA (a read-only mapping of
 * the same file next to FAULT pages that are still read-only; a plain
 * mapping given PROT_WRITE by mprotect next to a FAULT one).  The worlds
 * part here: the sequence ends, counted, not reported. */
static void known_mixed_remap(struct fz *z, const char *call, struct out ro, struct out lo, uintptr_t s,
			      size_t old_len)
{
	if (lo.v == -1 && lo.e == EFAULT && ro.e != EFAULT && old_len != 0 && mixed_modes(z, s, old_len))
		fz_inconclusive(z, "%s spans a FAULT mapping and another mapping (known difference)", call);
}

static void op_mremap(struct fz *z, uint64_t *r)
{
	const struct tgt *t = pick_target(z, r, T_ANY);
	size_t n, cur, newp, old_len, new_len;
	uintptr_t s, to = 0;
	int flags = pick_mremap_flags(r);
	struct out ro, lo;
	char call[160];

	if (t == NULL) {
		say(z, "    (no mapping to remap: nothing done)\n");
		return;
	}
	s = sub_range(r, t, &n);
	old_len = odd_len(r, n, 15);
	if (chance(r, 3) && ((flags & MREMAP_MAYMOVE) || (feat & F_BADARGS)))
		old_len = 0;		 /* mremap's duplicate-a-shared-mapping form (needs MAYMOVE) */
	else if (draw(r, 2, F_OVERFLOW)) /* rounds up to 0 */
		old_len = SIZE_MAX - below(r, PG - 1);
	cur = old_len != 0 ? (old_len + PGMASK) / PG : n;
	switch (below(r, 3)) {
	case 0: newp = 1 + below(r, cur); break;
	case 1: newp = cur; break;
	default: newp = cur + 1 + below(r, 32); break;
	}
	/* Outside the arenas what follows a mapping differs between the worlds
	 * (the library's aliases sit there): no growing in place there. */
	if (!t->arena && !(flags & MREMAP_MAYMOVE) && newp > cur)
		newp = cur;
	if ((flags & MREMAP_DONTUNMAP) && newp == cur)
		newp = cur + 1;
	if (t->arena && old_len != 0 && old_len < MAX_FILE && draw(r, 5, F_BADARGS) &&
	    (flags == 0 || flags == MREMAP_MAYMOVE || flags == (MREMAP_MAYMOVE | MREMAP_FIXED))) {
		/* Across the end of the mapping: EFAULT.  Growing only: a
		 * shrink, or a call that keeps the length, succeeds in the
		 * kernel without looking at what the range covers (6.x), and
		 * libsyncmap's EFAULT there is a known difference.  With
		 * well-formed flags only: which of two errors a call reports
		 * is the order of the checks, not a contract. */
		size_t k = 1 + below(r, 8);

		old_len = (old_len + PGMASK) / PG * PG + k * PG;
		cur += k;
		if (newp <= cur)
			newp = cur + 1 + below(r, 8);
	}
	new_len = odd_len(r, newp, 25);
	if ((flags & MREMAP_FIXED) && newp > INTERIOR_END - 2 * GUARD_PAGES)
		flags = MREMAP_MAYMOVE; /* no room for the target inside the arena */
	if (flags & MREMAP_FIXED) {
		size_t first = GUARD_PAGES + below(r, INTERIOR_END - GUARD_PAGES - newp);

		to = arena_page(z, REF, first);
		if (t->arena && draw(r, 10, F_BADARGS) && arena_room(z, s) >= newp) /* overlaps the source */
			to = s;
		if (draw(r, 5, F_BADARGS))
			to += 1 + below(r, PG - 1); /* EINVAL */
	}
	snprintf(call, sizeof(call), "mremap(%s, 0x%zx, 0x%zx, %s%s%s)", fmt_addr(z, REF, s), old_len,
		 new_len, mremap_flags_name(flags), to ? ", " : "", to ? fmt_addr(z, REF, to) : "");
	phase(z, PH_REF, call, NULL);
	ro = outcome(k_mremap(z, s, old_len, new_len, flags, to));
	after_ref(z);
	phase(z, PH_LIB, call, NULL);
	lo = outcome((long)syncmap_mremap((void *)xlate(z, s, NULL), old_len, new_len, flags,
					  (void *)(to ? xlate(z, to & ~PGMASK, NULL) + (to & PGMASK) : 0)));
	after_lib(z);
	record(z, call, ro, lo, 1);
	known_mixed_remap(z, call, ro, lo, s, old_len);
	same(z, call, ro, lo, 1);
	placed(z, call, ro, lo, new_len, (flags & MREMAP_FIXED) ? to : 0);
}

/* Unmap what follows a mapping, then grow it into that hole, in place. */
static void op_grow_hole(struct fz *z, uint64_t *r)
{
	const struct tgt *t = pick_target(z, r, T_ARENA);
	size_t np, a, h, old_len, new_len;
	uintptr_t s, hole;
	struct out ru, lu, ro, lo;
	char ucall[96], call[128];

	if (t == NULL) {
		say(z, "    (no mapping in the arena to grow: nothing done)\n");
		return;
	}
	np = (t->e - t->s) / PG;
	a = chance(r, 50) ? 0 : below(r, np);
	s = t->s + a * PG;
	old_len = t->e - s;
	h = 1 + below(r, 16);
	hole = t->e;
	if (arena_room(z, hole) < h) {
		say(z, "    (no room after the mapping: nothing done)\n");
		return;
	}
	new_len = odd_len(r, old_len / PG + h, 25); /* all of the hole: see op_map_hole */
	snprintf(ucall, sizeof(ucall), "munmap(%s, 0x%zx)", fmt_addr(z, REF, hole), h * PG);
	snprintf(call, sizeof(call), "mremap(%s, 0x%zx, 0x%zx, 0)", fmt_addr(z, REF, s), old_len, new_len);
	phase(z, PH_REF, ucall, call);
	ru = outcome(k_munmap(z, hole, h * PG));
	ro = outcome(k_mremap(z, s, old_len, new_len, 0, 0));
	after_ref(z);
	phase(z, PH_LIB, ucall, call);
	lu = outcome(syncmap_munmap((void *)xlate(z, hole, NULL), h * PG));
	lo = outcome((long)syncmap_mremap((void *)xlate(z, s, NULL), old_len, new_len, 0));
	after_lib(z);
	record(z, ucall, ru, lu, 0);
	record(z, call, ro, lo, 1);
	same(z, ucall, ru, lu, 0);
	known_mixed_remap(z, call, ro, lo, s, old_len);
	same(z, call, ro, lo, 1);
	placed(z, call, ro, lo, new_len, 0);
}

/* Stores where the reference says a store is fine: writable, before EOF. */
static void op_write(struct fz *z, uint64_t *r)
{
	const struct tgt *t = pick_target(z, r, T_WRITABLE);
	size_t n, room, start, len;
	char call[96];
	uintptr_t s;

	if (t == NULL) {
		say(z, "    (nothing writable before EOF: no store)\n");
		return;
	}
	s = sub_range(r, t, &n);
	if (t->off + (s - t->s) >= z->fsize) {
		s = t->s;
		n = (t->e - t->s) / PG;
	}
	/* Up to EOF only: what a store puts past it in the last page is
	 * zeroed whenever that page is written back (block_write_full_folio),
	 * and another file's journal commit can be what writes it back: the
	 * bytes are unspecified in both worlds. */
	room = z->fsize - (size_t)(t->off + (s - t->s));
	if (n * PG > room)
		n = (room + PGMASK) / PG;
	start = chance(r, 50) ? 0 : below(r, room < PG ? room : PG);
	len = chance(r, 40) ? n * PG - start : 1 + below(r, n * PG - start);
	if (start + len > room)
		len = room - start;
	if (len > sizeof(data))
		len = sizeof(data);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rnd64(r);

		memcpy(data + i, &v, len - i < 8 ? len - i : 8);
	}
	snprintf(call, sizeof(call), "write %s..+0x%zx", fmt_addr(z, REF, s + start), len);
	say(z, "    %s\n", call);
	phase(z, PH_REF, call, NULL);
	memcpy((void *)(s + start), data, len);
	phase(z, PH_LIB, call, NULL);
	memcpy((void *)(xlate(z, s, NULL) + start), data, len);
}

/* waitpid with a deadline: a process that neither ends nor progresses is
 * killed and reported as hung (status -1). */
static int wait_for(pid_t pid, int seconds)
{
	struct timespec t0, now, nap = {0, 2 * 1000 * 1000};
	int st;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return st;
		if (w < 0 && errno != EINTR)
			return -2;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= seconds) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		nanosleep(&nap, NULL);
	}
}

static const char *status_name(int st)
{
	static char bufs[2][48];
	static unsigned next;
	char *b = bufs[next++ % 2];

	if (st == -1)
		return "hung (killed)";
	if (WIFEXITED(st))
		snprintf(b, sizeof(bufs[0]), "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(b, sizeof(bufs[0]), "killed by %s", sigabbrev_np(WTERMSIG(st)));
	else
		snprintf(b, sizeof(bufs[0]), "status 0x%x", st);
	return b;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

#ifdef SANITIZED
/* A sanitizer's SIGSEGV handler sits where the program's would be: the
 * library chains a fault that is not its own to it, and it reports and
 * exits instead of dying of the signal.  The probe's children own SIGSEGV
 * as the API allows (syncmap_handle_fault first), and die of it otherwise. */
static void probe_segv(int sig, siginfo_t *si, void *uctx)
{
	if (!syncmap_handle_fault(sig, si, uctx))
		signal(sig, SIG_DFL); /* the store faults again, and kills */
}

static void own_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = probe_segv;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	signal(SIGBUS, SIG_DFL);
}
#else
static void own_signals(void)
{
}
#endif

static int store_in_child(uintptr_t a, unsigned char v)
{
	pid_t pid = fork();

	if (pid == 0) {
		own_signals();
		*(volatile unsigned char *)a = v;
		_exit(0);
	}
	return pid < 0 ? -2 : wait_for(pid, 10);
}

/* One store anywhere, each world's in a child of its own: the reference's
 * may well die of it.  The same fate in both? */
static void op_probe(struct fz *z, uint64_t *r)
{
	const struct tgt *t = chance(r, 60) ? pick_target(z, r, T_ANY) : NULL;
	uintptr_t a;
	unsigned char v = (unsigned char)rnd64(r);
	size_t room = PG;
	char call[96];
	int rs, ls;

	if (t != NULL) {
		a = t->s + below(r, (t->e - t->s) / PG) * PG;
		if (t->off + (a - t->s) < z->fsize && z->fsize - (t->off + (a - t->s)) < PG)
			room = z->fsize - (t->off + (a - t->s)); /* not past EOF: see op_write */
	} else {
		a = arena_range(z, r, 1);
	}
	a += below(r, room);
	snprintf(call, sizeof(call), "a store to %s, in a child", fmt_addr(z, REF, a));
	phase(z, PH_REF, call, NULL);
	rs = store_in_child(a, v);
	phase(z, PH_LIB, call, NULL);
	ls = store_in_child(xlate(z, a, NULL), v);
	say(z, "    store to %-50s reference child %-14s libsyncmap child %s\n", fmt_addr(z, REF, a),
	    status_name(rs), status_name(ls));
	if (rs != ls)
		fz_fail(z, "signal", "a store to %s: reference child %s, libsyncmap child %s",
			fmt_addr(z, REF, a), status_name(rs), status_name(ls));
}

/* syncmap_persist against what it stands for: msync(MS_SYNC) of the pages. */
static void op_persist(struct fz *z, uint64_t *r)
{
	size_t n;
	uintptr_t s = pick_range(z, r, 60, &n, NULL);
	size_t start = chance(r, 30) ? below(r, PG) : 0;
	size_t len = 1 + below(r, n * PG - start);
	struct out ro, lo;
	char call[96];

	s += start;
	snprintf(call, sizeof(call), "persist(%s, 0x%zx)", fmt_addr(z, REF, s), len);
	phase(z, PH_REF, call, NULL);
	ro = outcome(msync((void *)(s & ~PGMASK), len + (s & PGMASK), MS_SYNC));
	phase(z, PH_LIB, call, NULL);
	lo = outcome(syncmap_persist((void *)xlate(z, s, NULL), len));
	record(z, call, ro, lo, 0);
	same(z, call, ro, lo, 0);
}

static off_t pick_off(uint64_t *r, size_t max)
{
	return (off_t)(chance(r, 60) ? below(r, max / PG) * PG : below(r, max));
}

/* The library told of a change that did not happen: harmless. */
static void op_changed(struct fz *z, uint64_t *r)
{
	off_t off = pick_off(r, 2 * MAX_FILE);
	off_t len = chance(r, 20) ? 0 : (off_t)(1 + below(r, MAX_FILE));
	struct out ro = {0, 0}, lo;
	char call[96];

	snprintf(call, sizeof(call), "syncmap_file_changed(fd, 0x%llx, 0x%llx)", (long long)off,
		 (long long)len);
	phase(z, PH_LIB, call, NULL);
	lo = outcome(syncmap_file_changed(z->fd[LIB], off, len));
	record(z, call, ro, lo, 0);
	same(z, call, ro, lo, 0);
}

/* Each world's file change, and libsyncmap told of it as the API asks. */
static void file_op(struct fz *z, const char *call, int kind, off_t a, off_t b)
{
	struct out o[2], c = {0, 0};

	for (int w = REF; w <= LIB; w++) {
		phase(z, w == REF ? PH_REF : PH_LIB, call, NULL);
		switch (kind) {
		case OP_TRUNCATE: o[w] = outcome(ftruncate(z->fd[w], a)); break;
		case OP_PUNCH:
			o[w] = outcome(fallocate(z->fd[w], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, a, b));
			break;
		default:
			o[w] = outcome(fallocate(z->fd[w], (int)b & FALLOC_FL_KEEP_SIZE, a, b & ~PGMASK));
			break;
		}
	}
	record(z, call, o[REF], o[LIB], 0);
	same(z, call, o[REF], o[LIB], 0);
	if (o[LIB].v == 0 && kind == OP_TRUNCATE && (size_t)a < z->fsize)
		c = outcome(syncmap_file_changed(z->fd[LIB], a, 0));
	else if (o[LIB].v == 0 && kind == OP_PUNCH)
		c = outcome(syncmap_file_changed(z->fd[LIB], a, b));
	if (c.v != 0)
		fz_fail(z, "result", "syncmap_file_changed after %s: %s", call, show(z, LIB, c, 0));
}

static void op_truncate(struct fz *z, uint64_t *r)
{
	off_t size = pick_off(r, MAX_FILE + 1);
	char call[64];

	snprintf(call, sizeof(call), "ftruncate(fd, 0x%llx)", (long long)size);
	file_op(z, call, OP_TRUNCATE, size, 0);
}

static void op_punch(struct fz *z, uint64_t *r)
{
	off_t off = pick_off(r, MAX_FILE);
	off_t len = chance(r, 60) ? (off_t)((1 + below(r, 128)) * PG) : (off_t)(1 + below(r, MAX_FILE / 2));
	char call[96];

	snprintf(call, sizeof(call), "fallocate(fd, PUNCH_HOLE|KEEP_SIZE, 0x%llx, 0x%llx)", (long long)off,
		 (long long)len);
	file_op(z, call, OP_PUNCH, off, len);
}

static void op_fallocate(struct fz *z, uint64_t *r)
{
	off_t off = pick_off(r, MAX_FILE - PG);
	off_t len = (off_t)((1 + below(r, 64)) * PG);
	int keep = chance(r, 50);
	char call[96];

	if ((size_t)(off + len) > MAX_FILE)
		len = (off_t)(MAX_FILE - (size_t)off) & ~(off_t)PGMASK;
	if (len == 0) {
		say(z, "    (no room before the largest file size: nothing done)\n");
		return;
	}
	snprintf(call, sizeof(call), "fallocate(fd, %s, 0x%llx, 0x%llx)", keep ? "KEEP_SIZE" : "0",
		 (long long)off, (long long)len);
	/* The mode rides in the low bits of the (page-aligned) length. */
	file_op(z, call, OP_FALLOCATE, off, len | (keep ? FALLOC_FL_KEEP_SIZE : 0));
}

static void op_pwrite(struct fz *z, uint64_t *r)
{
	off_t off = pick_off(r, MAX_FILE - 1);
	size_t len = 1 + below(r, 1 << 16);
	struct out o[2];
	char call[64];

	if ((size_t)off + len > MAX_FILE)
		len = MAX_FILE - (size_t)off;
	for (size_t i = 0; i < len; i++)
		data[i] = (unsigned char)rnd64(r);
	snprintf(call, sizeof(call), "pwrite(fd, 0x%zx bytes, 0x%llx)", len, (long long)off);
	for (int w = REF; w <= LIB; w++) {
		phase(z, w == REF ? PH_REF : PH_LIB, call, NULL);
		o[w] = outcome(pwrite(z->fd[w], data, len, off));
	}
	record(z, call, o[REF], o[LIB], 0);
	same(z, call, o[REF], o[LIB], 0);
}

size_t fork_subops(uint64_t seed, unsigned off, struct op *out)
{
	static const int kinds[] = {OP_WRITE,	  OP_WRITE,	OP_MPROTECT,  OP_UNMAP,
				    OP_MAP_FIXED, OP_MREMAP,	OP_PERSIST,   OP_MAP_HOLE,
				    OP_CHANGED,	  OP_GROW_HOLE, OP_MAP_FRESH, OP_PROBE};
	uint64_t r = seed;
	size_t n = 1 + (size_t)below(&r, MAX_FORK_OPS);

	for (size_t i = 0; i < n; i++) {
		out[i].kind = kinds[below(&r, sizeof(kinds) / sizeof(kinds[0]))];
		if (off & (1u << out[i].kind))
			out[i].kind = OP_WRITE;
		out[i].seed = rnd64(&r);
	}
	return n;
}

/* A child inherits both worlds, does a few ops with every check, and exits
 * with its verdict.  No file changes there: what another process frees is
 * out of the library's reach (documented), so the parent would see them. */
static void op_fork(struct fz *z, uint64_t seed)
{
	struct op sub[MAX_FORK_OPS];
	size_t nsub = fork_subops(seed, kinds_off, sub);
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		fz_fail(z, "internal", "fork: %s", strerror(errno));
	if (pid == 0) {
		z->in_child = 1;
		for (size_t i = 0; i < nsub; i++) {
			z->sub = (int)i;
			say(z, "  child op %zu: %s\n", i, op_name(sub[i].kind));
			exec_op(z, sub[i].kind, sub[i].seed);
			check_all(z);
		}
		if (z->verbose) {
			fputs(z->log, stdout);
			fflush(stdout);
		}
		_exit(0);
	}
	st = wait_for(pid, 30);
	if (st == 0) {
		say(z, "    child: %zu ops, every check held\n", nsub);
		return;
	}
	if (z->rep->failed)
		_exit(1); /* the child said what */
	if (z->rep->ended)
		_exit(3);
	fz_fail(z, "crash", "the forked child %s", status_name(st));
}

void exec_op(struct fz *z, int kind, uint64_t seed)
{
	uint64_t r = seed;

	maps_load(z);
	targets(z);
	switch (kind) {
	case OP_MAP_FIXED: op_map_fixed(z, &r); break;
	case OP_MAP_FRESH: op_map_fresh(z, &r); break;
	case OP_MAP_HOLE: op_map_hole(z, &r); break;
	case OP_UNMAP: op_unmap(z, &r); break;
	case OP_MPROTECT: op_mprotect(z, &r); break;
	case OP_MREMAP: op_mremap(z, &r); break;
	case OP_GROW_HOLE: op_grow_hole(z, &r); break;
	case OP_WRITE: op_write(z, &r); break;
	case OP_PROBE: op_probe(z, &r); break;
	case OP_PERSIST: op_persist(z, &r); break;
	case OP_CHANGED: op_changed(z, &r); break;
	case OP_TRUNCATE: op_truncate(z, &r); break;
	case OP_PUNCH: op_punch(z, &r); break;
	case OP_FALLOCATE: op_fallocate(z, &r); break;
	case OP_PWRITE: op_pwrite(z, &r); break;
	case OP_FORK: op_fork(z, seed); break;
	default: break;
	}
}

int run_sequence(const struct seq *s, const char *dir, struct report *rep, int verbose)
{
	static struct fz z;
	struct rlimit nocore = {0, 0};
	char num[32];

	setrlimit(RLIMIT_CORE, &nocore); /* the probes' children die of signals by design */
	snprintf(num, sizeof(num), "%zu", s->grain);
	setenv("SYNCMAP_GRAIN", num, 1);
	setenv("SYNCMAP_PRESYNC", s->presync ? "1" : "0", 1);
	unsetenv("SYNCMAP_MODE");
	z.rep = rep;
	z.verbose = verbose;
	feat = s->features;
	kinds_off = s->kinds_off;
	rep->step = -1;
	rep->phase = PH_SETUP;
	if (world_setup(&z, s, dir, rep->msg, sizeof(rep->msg)) != 0)
		return 2;
	for (size_t i = 0; i < s->n; i++) {
		rep->step = (int)i;
		rep->op_kind = s->op[i].kind;
		z.step = (int)i;
		z.loglen = 0;
		z.log[0] = '\0';
		if (verbose)
			printf("step %zu: %s 0x%016llx\n", i, op_name(s->op[i].kind),
			       (unsigned long long)s->op[i].seed);
		exec_op(&z, s->op[i].kind, s->op[i].seed);
		check_all(&z);
		if (verbose) {
			fputs(z.log, stdout);
			fflush(stdout);
		}
	}
	return 0;
}
