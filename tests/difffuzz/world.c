/* SPDX-License-Identifier: MIT */
/* world.c -- the two worlds' address spaces and files, and every check made between them after a step */
#include "world.h"

#include "fiemap.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define ARENA_BYTES ((uintptr_t)ARENA_PAGES * PG)

/* Static, never malloc'd: the checks run while an arena may have a hole,
 * and a large malloc is an mmap that could land in it. */
static char maps_text[4 << 20];
static struct pd pd_ref[ARENA_PAGES], pd_lib[ARENA_PAGES];
static unsigned char buf_ref[1 << 16], buf_lib[1 << 16];

void say(struct fz *z, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (z->loglen >= sizeof(z->log) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(z->log + z->loglen, sizeof(z->log) - z->loglen, fmt, ap);
	va_end(ap);
	if (n > 0)
		z->loglen += (size_t)n;
	if (z->loglen >= sizeof(z->log))
		z->loglen = sizeof(z->log) - 1;
}

noreturn void fz_fail(struct fz *z, const char *category, const char *fmt, ...)
{
	struct report *rep = z->rep;
	size_t n = 0;
	va_list ap;

	snprintf(rep->category, sizeof(rep->category), "%s", category);
	snprintf(rep->key, sizeof(rep->key), "%s", z->key[0] != '\0' ? z->key : category);
	if (z->in_child)
		n += (size_t)snprintf(rep->msg, sizeof(rep->msg),
				      "in the child forked at step %d, its op %d: ", z->step, z->sub);
	n += (size_t)snprintf(rep->msg + n, sizeof(rep->msg) - n, "%s: ", category);
	va_start(ap, fmt);
	if (n < sizeof(rep->msg))
		n += (size_t)vsnprintf(rep->msg + n, sizeof(rep->msg) - n, fmt, ap);
	va_end(ap);
	if (n < sizeof(rep->msg))
		snprintf(rep->msg + n, sizeof(rep->msg) - n, "\n    calls of the step:\n%s", z->log);
	rep->failed = 1;
	if (z->verbose) {
		fputs(z->log, stdout);
		fflush(stdout);
	}
	_exit(1);
}

/* Address space the program had just freed was taken, between the call and
 * the fuzzer filling it again, by something that may take free address
 * space: the library after the hole was made, another thread (the engine
 * starting), a sanitizer's allocator.  No mismatch, but the two worlds can
 * no longer be laid side by side: the sequence ends here. */
noreturn void fz_inconclusive(struct fz *z, const char *fmt, ...)
{
	struct report *rep = z->rep;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rep->msg, sizeof(rep->msg), fmt, ap);
	va_end(ap);
	rep->ended = 1;
	if (z->verbose) {
		fputs(z->log, stdout);
		printf("difffuzz: sequence ended at step %d: %s\n", z->step, rep->msg);
		fflush(stdout);
	}
	_exit(3);
}

const char *errname(int e)
{
	const char *s = strerrorname_np(e);

	return s != NULL ? s : "errno?";
}

const char *fmt_addr(const struct fz *z, int w, uintptr_t a)
{
	static char bufs[16][48];
	static unsigned next;
	char *b = bufs[next++ % 16];
	uintptr_t base = (uintptr_t)z->arena[w];

	if (a >= base && a < base + ARENA_BYTES)
		snprintf(b, sizeof(bufs[0]), "A+0x%lx", (unsigned long)(a - base));
	else
		snprintf(b, sizeof(bufs[0]), "0x%lx", (unsigned long)a);
	return b;
}

int in_arena(const struct fz *z, int w, uintptr_t a)
{
	return a >= (uintptr_t)z->arena[w] && a < (uintptr_t)z->arena[w] + ARENA_BYTES;
}

uintptr_t arena_page(const struct fz *z, int w, size_t i)
{
	return (uintptr_t)z->arena[w] + i * PG;
}

static long sys_mmap(uintptr_t a, size_t len, int prot, int flags, int fd, off_t off)
{
	return syscall(SYS_mmap, a, len, prot, flags, fd, off);
}

/* --- /proc/self/maps --- */

void maps_load(struct fz *z)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t k;
	char *line;

	if (fd < 0)
		fz_fail(z, "internal", "open /proc/self/maps: %s", strerror(errno));
	while (n < sizeof(maps_text) - 1 && (k = read(fd, maps_text + n, sizeof(maps_text) - 1 - n)) > 0)
		n += (size_t)k;
	close(fd);
	if (n == sizeof(maps_text) - 1)
		fz_fail(z, "internal", "/proc/self/maps is longer than %zu bytes", sizeof(maps_text) - 1);
	maps_text[n] = '\0';
	z->nvma = 0;
	for (line = maps_text; *line != '\0' && z->nvma < MAX_VMAS;) {
		struct vma *v = &z->vma[z->nvma];
		char *nl = strchr(line, '\n');
		unsigned long s, e, off, ino;

		if (nl != NULL)
			*nl = '\0';
		if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu", &s, &e, v->perms, &off, &v->maj, &v->min,
			   &ino) == 7) {
			v->s = s;
			v->e = e;
			v->off = off;
			v->ino = ino;
			z->nvma++;
		}
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	if (*line != '\0' && z->nvma == MAX_VMAS)
		fz_fail(z, "internal", "more than %d mappings in /proc/self/maps", MAX_VMAS);
}

static unsigned char kind_of(const struct fz *z, const struct vma *v)
{
	if (v->ino == 0)
		return K_ANON;
	if (v->maj == z->maj && v->min == z->min)
		return v->ino == z->ino[REF] ? K_REF : v->ino == z->ino[LIB] ? K_LIB : K_OTHER;
	return K_OTHER;
}

/* The first VMA ending above a (the table is sorted). */
static size_t vma_at(const struct fz *z, uintptr_t a)
{
	size_t lo = 0, hi = z->nvma;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (z->vma[mid].e <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void describe(const struct fz *z, uintptr_t a, size_t n, struct pd *out)
{
	size_t i = vma_at(z, a);

	for (size_t p = 0; p < n; p++, a += PG) {
		while (i < z->nvma && z->vma[i].e <= a)
			i++;
		memset(&out[p], 0, sizeof(out[p]));
		if (i < z->nvma && z->vma[i].s <= a) {
			const struct vma *v = &z->vma[i];

			out[p].kind = kind_of(z, v);
			memcpy(out[p].perms, v->perms, 5);
			out[p].off = v->off + (a - v->s);
		} else {
			out[p].kind = K_HOLE;
			memcpy(out[p].perms, "----", 5);
		}
	}
}

/* --- translation between the worlds --- */

uintptr_t xlate(const struct fz *z, uintptr_t a, uintptr_t *piece_end)
{
	if (in_arena(z, REF, a)) {
		if (piece_end != NULL)
			*piece_end = (uintptr_t)z->arena[REF] + ARENA_BYTES;
		return (uintptr_t)z->arena[LIB] + (a - (uintptr_t)z->arena[REF]);
	}
	for (size_t i = z->npairs; i-- > 0;) {
		const struct pair *p = &z->pair[i];
		uintptr_t end = p->ref + p->len;

		if (a < p->ref || a >= end)
			continue;
		/* Newer pairs that begin further on take over from there. */
		for (size_t j = i + 1; j < z->npairs; j++)
			if (z->pair[j].ref > a && z->pair[j].ref < end)
				end = z->pair[j].ref;
		if (piece_end != NULL)
			*piece_end = end;
		return p->lib + (a - p->ref);
	}
	return 0;
}

/* The reference address that lib address a translates from, or 0. */
static uintptr_t xlate_back(const struct fz *z, uintptr_t a)
{
	for (size_t i = z->npairs; i-- > 0;) {
		const struct pair *p = &z->pair[i];

		if (a >= p->lib && a < p->lib + p->len) {
			uintptr_t r = p->ref + (a - p->lib);

			return xlate(z, r, NULL) == a ? r : 0;
		}
	}
	return 0;
}

/* Pairs none of whose range holds a reference mapping any more. */
static void prune_pairs(struct fz *z)
{
	size_t k = 0;

	maps_load(z);
	for (size_t i = 0; i < z->npairs; i++) {
		const struct pair *p = &z->pair[i];
		size_t v = vma_at(z, p->ref);
		int live = 0;

		for (; v < z->nvma && z->vma[v].s < p->ref + p->len && !live; v++)
			live = kind_of(z, &z->vma[v]) == K_REF;
		if (live)
			z->pair[k++] = *p;
	}
	z->npairs = k;
}

void add_pair(struct fz *z, uintptr_t ref, uintptr_t lib, size_t len)
{
	if (z->npairs == MAX_PAIRS)
		prune_pairs(z);
	if (z->npairs == MAX_PAIRS)
		fz_fail(z, "internal", "more than %d kernel-placed mappings alive", MAX_PAIRS);
	z->pair[z->npairs].ref = ref;
	z->pair[z->npairs].lib = lib;
	z->pair[z->npairs++].len = (len + PGMASK) & ~PGMASK;
}

void targets(struct fz *z)
{
	z->ntgt = 0;
	for (size_t i = 0; i < z->nvma; i++) {
		const struct vma *v = &z->vma[i];
		uintptr_t a = v->s;

		if (kind_of(z, v) != K_REF)
			continue;
		while (a < v->e) {
			uintptr_t pe, e;
			struct tgt *t = &z->tgt[z->ntgt];

			if (xlate(z, a, &pe) == 0)
				fz_fail(z, "internal", "a reference mapping at %s that no op made",
					fmt_addr(z, REF, a));
			e = v->e < pe ? v->e : pe;
			t->s = a;
			t->e = e;
			t->arena = in_arena(z, REF, a);
			memcpy(t->perms, v->perms, 5);
			t->off = v->off + (a - v->s);
			if (z->ntgt < MAX_VMAS - 1)
				z->ntgt++;
			a = e;
		}
	}
}

/* --- holes in the arenas --- */

static void refill(struct fz *z, int w, const unsigned char *hole)
{
	for (size_t i = 0; i < ARENA_PAGES;) {
		size_t j = i;

		if (!hole[i]) {
			i++;
			continue;
		}
		while (j < ARENA_PAGES && hole[j])
			j++;
		if (sys_mmap(arena_page(z, w, i), (j - i) * PG, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1,
			     0) == -1) {
			if (errno == EEXIST)
				fz_inconclusive(z, "something took the hole at %s before it was filled",
						fmt_addr(z, w, arena_page(z, w, i)));
			fz_fail(z, "internal", "cannot fill the hole at %s: %s",
				fmt_addr(z, w, arena_page(z, w, i)), strerror(errno));
		}
		i = j;
	}
}

void ref_freed(struct fz *z, uintptr_t a, size_t len, int freed)
{
	struct span *sp = &z->ref_span[z->nspan];

	if (z->nspan == MAX_SPANS)
		fz_fail(z, "internal", "more than %d reference calls in one step", MAX_SPANS);
	sp->s = a & ~PGMASK;
	sp->e = a + ((len + PGMASK) & ~PGMASK);
	if (sp->e < sp->s)
		sp->e = UINTPTR_MAX & ~PGMASK;
	sp->freed = freed;
	z->nspan++;
}

/* The reference calls of a step left free what they freed and did not map
 * again: the kernel puts nothing there by itself, so a mapping there is
 * another thread's or a sanitizer's, and the worlds part. */
static void check_freed(struct fz *z)
{
	struct pd pd;

	for (size_t i = 0; i < z->nspan; i++) {
		const struct span *sp = &z->ref_span[i];

		if (!sp->freed)
			continue;
		for (uintptr_t a = sp->s; a < sp->e && a - sp->s < MAX_FREED_CHECK; a += PG) {
			size_t j = z->nspan;

			while (--j > i && !(a >= z->ref_span[j].s && a < z->ref_span[j].e))
				;
			if (j > i)
				continue; /* a later call of the step mapped or freed it again */
			describe(z, a, 1, &pd);
			if (pd.kind != K_HOLE)
				fz_inconclusive(
					z, "%s, freed by the reference's call, was taken by something else",
					fmt_addr(z, REF, a));
		}
	}
	z->nspan = 0;
}

static void note_holes(struct fz *z, int w, unsigned char *hole)
{
	struct pd *pd = w == REF ? pd_ref : pd_lib;

	maps_load(z);
	describe(z, arena_page(z, w, 0), ARENA_PAGES, pd);
	for (size_t i = 0; i < ARENA_PAGES; i++)
		hole[i] = pd[i].kind == K_HOLE;
	if (w == REF)
		check_freed(z);
	refill(z, w, hole);
}

void after_ref(struct fz *z)
{
	note_holes(z, REF, z->ref_hole);
	z->holes_pending = 1;
}

void after_lib(struct fz *z)
{
	note_holes(z, LIB, z->lib_hole);
}

static void compare_holes(struct fz *z)
{
	z->holes_pending = 0;
	for (size_t i = 0; i < ARENA_PAGES; i++) {
		if (z->ref_hole[i] && !z->lib_hole[i])
			fz_inconclusive(
				z, "A+0x%zx, freed by the call, was taken before the arena was filled again",
				i * PG);
		if (!z->ref_hole[i] && z->lib_hole[i])
			fz_fail(z, "layout",
				"after the call the reference has a mapping at A+0x%zx, libsyncmap a hole",
				i * PG);
	}
}

/* --- the checks --- */

static const char *kind_name(int k)
{
	static const char *const n[] = {"nothing", "anonymous memory", "the reference file",
					"the library's file", "something else"};

	return n[k];
}

/* Protection the program sees: libsyncmap's FAULT pages lack PROT_WRITE until
 * their grain is durable, and get PROT_READ with it (x86 implies it). */
static int perms_match(const char *r, const char *l, int fault)
{
	if (r[2] != l[2] || r[3] != l[3])
		return 0;
	if (r[1] != l[1] && !(fault && r[1] == 'w' && l[1] == '-'))
		return 0;
	if (r[0] != l[0] && !(fault && r[1] == 'w' && l[0] == 'r'))
		return 0;
	return 1;
}

static void compare_page(struct fz *z, uintptr_t ra, const struct pd *r, const struct pd *l)
{
	uintptr_t la = xlate(z, ra, NULL);
	int mode = syncmap_mode((void *)la);
	int want = r->kind == K_REF ? K_LIB : r->kind;

	if (l->kind != want)
		fz_fail(z, "layout", "at %s the reference has %s (%s), libsyncmap at %s %s (%s)",
			fmt_addr(z, REF, ra), kind_name(r->kind), r->perms, fmt_addr(z, LIB, la),
			kind_name(l->kind), l->perms);
	if (r->kind == K_REF && l->off != r->off)
		fz_fail(z, "layout", "at %s the reference maps file offset 0x%llx, libsyncmap 0x%llx",
			fmt_addr(z, REF, ra), (unsigned long long)r->off, (unsigned long long)l->off);
	if (!perms_match(r->perms, l->perms, r->kind == K_REF && mode == SYNCMAP_MODE_FAULT))
		fz_fail(z, "protection", "at %s the reference has %s, libsyncmap %s (mode %d)",
			fmt_addr(z, REF, ra), r->perms, l->perms, mode);
	if (r->kind != K_REF && mode != SYNCMAP_MODE_NONE)
		fz_fail(z, "table",
			"libsyncmap's table has a mapping (mode %d) at %s where the program has %s", mode,
			fmt_addr(z, LIB, la), kind_name(r->kind));
}

static void compare_arenas(struct fz *z)
{
	describe(z, arena_page(z, REF, 0), ARENA_PAGES, pd_ref);
	describe(z, arena_page(z, LIB, 0), ARENA_PAGES, pd_lib);
	for (size_t i = 0; i < ARENA_PAGES; i++) {
		if (pd_ref[i].kind == K_LIB || pd_ref[i].kind == K_OTHER)
			fz_inconclusive(z, "%s landed in the reference's arena at A+0x%zx",
					kind_name(pd_ref[i].kind), i * PG);
		compare_page(z, arena_page(z, REF, i), &pd_ref[i], &pd_lib[i]);
	}
}

/* Mappings the kernel placed: each reference page against its translation. */
static void compare_pairs(struct fz *z)
{
	for (size_t t = 0; t < z->ntgt; t++) {
		const struct tgt *g = &z->tgt[t];

		if (g->arena)
			continue;
		for (uintptr_t a = g->s; a < g->e; a += PG) {
			struct pd r, l;

			describe(z, a, 1, &r);
			describe(z, xlate(z, a, NULL), 1, &l);
			compare_page(z, a, &r, &l);
		}
	}
}

/* libsyncmap mappings of its file outside its arena are its aliases, or
 * translations of reference mappings: a page its table calls a mapping of
 * the program must be the latter. */
static void compare_extra(struct fz *z)
{
	for (size_t i = 0; i < z->nvma; i++) {
		const struct vma *v = &z->vma[i];

		if (kind_of(z, v) != K_LIB || in_arena(z, LIB, v->s))
			continue;
		for (uintptr_t a = v->s; a < v->e; a += PG) {
			uintptr_t r;
			struct pd pr;

			if (syncmap_mode((void *)a) == SYNCMAP_MODE_NONE)
				continue;
			r = xlate_back(z, a);
			if (r != 0)
				describe(z, r, 1, &pr);
			if (r == 0 || pr.kind != K_REF)
				fz_fail(z, "layout",
					"libsyncmap has a mapping of the program's at %s that the reference "
					"does not have",
					fmt_addr(z, LIB, a));
		}
	}
}

static void compare_files(struct fz *z)
{
	struct stat st[2];

	if (fstat(z->fd[REF], &st[REF]) != 0 || fstat(z->fd[LIB], &st[LIB]) != 0)
		fz_fail(z, "internal", "fstat: %s", strerror(errno));
	if (st[REF].st_size != st[LIB].st_size)
		fz_fail(z, "file", "file size: reference %lld, libsyncmap %lld", (long long)st[REF].st_size,
			(long long)st[LIB].st_size);
	z->fsize = (size_t)st[REF].st_size;
	for (off_t off = 0; off < st[REF].st_size; off += (off_t)sizeof(buf_ref)) {
		ssize_t a = pread(z->fd[REF], buf_ref, sizeof(buf_ref), off);
		ssize_t b = pread(z->fd[LIB], buf_lib, sizeof(buf_lib), off);

		if (a != b || a < 0)
			fz_fail(z, "file", "pread at %lld: reference %zd, libsyncmap %zd", (long long)off, a,
				b);
		if (memcmp(buf_ref, buf_lib, (size_t)a) != 0) {
			ssize_t k = 0;

			while (buf_ref[k] == buf_lib[k])
				k++;
			fz_fail(z, "file", "file byte 0x%llx: reference 0x%02x, libsyncmap 0x%02x (pread)",
				(unsigned long long)(off + k), buf_ref[k], buf_lib[k]);
		}
	}
}

/* The bytes the program reads through each mapping. */
static void compare_bytes(struct fz *z)
{
	for (size_t t = 0; t < z->ntgt; t++) {
		const struct tgt *g = &z->tgt[t];

		if (g->perms[0] != 'r' && g->perms[1] != 'w')
			continue;
		for (uintptr_t a = g->s; a < g->e; a += PG) {
			const unsigned char *r = (const unsigned char *)a;
			const unsigned char *l = (const unsigned char *)xlate(z, a, NULL);
			uint64_t off = g->off + (a - g->s);

			if (off >= z->fsize)
				break; /* SIGBUS in both worlds */
			/* Past EOF in the last page: unspecified (see op_write). */
			if (memcmp(r, l, z->fsize - off < PG ? z->fsize - off : PG) != 0) {
				size_t k = 0;

				while (r[k] == l[k])
					k++;
				fz_fail(z, "bytes",
					"reading %s (file offset 0x%llx) through the mappings: reference "
					"0x%02x, "
					"libsyncmap 0x%02x",
					fmt_addr(z, REF, a + k), (unsigned long long)(off + k), r[k], l[k]);
			}
		}
	}
}

/* The extents around off, for the report. */
static const char *extents_near(int fd, uint64_t off)
{
	static char b[512];
	struct fiemap *fm = fiemap_of(fd, off > 4 * PG ? (off_t)(off - 4 * PG) : 0, 8 * PG);
	size_t n = 0;

	b[0] = '\0';
	if (fm == NULL)
		return "FIEMAP failed";
	for (unsigned i = 0; i < fm->fm_mapped_extents && i < 6 && n < sizeof(b); i++) {
		const struct fiemap_extent *e = &fm->fm_extents[i];

		n += (size_t)snprintf(b + n, sizeof(b) - n, " [0x%llx, 0x%llx) flags 0x%x",
				      (unsigned long long)e->fe_logical,
				      (unsigned long long)(e->fe_logical + e->fe_length), e->fe_flags);
	}
	if (fm->fm_mapped_extents == 0)
		snprintf(b, sizeof(b), " none");
	free(fm);
	return b;
}

/* The guarantee: every page of a FAULT mapping that is writable has its
 * blocks allocated and written (FIEMAP, nothing flushed to ask). */
static void check_invariant(struct fz *z)
{
	for (size_t i = 0; i < z->nvma; i++) {
		const struct vma *v = &z->vma[i];

		if (kind_of(z, v) != K_LIB || v->perms[1] != 'w' || v->perms[3] != 's')
			continue;
		for (uintptr_t a = v->s; a < v->e; a += PG) {
			uint64_t off = v->off + (a - v->s);

			if (off >= z->fsize)
				break;
			if (syncmap_mode((void *)a) != SYNCMAP_MODE_FAULT)
				continue;
			/* Up to EOF: blocks past it in the last page are not the file's. */
			if (range_allocated(z->fd[LIB], (off_t)off,
					    z->fsize - off < PG ? z->fsize - off : PG) != 1)
				fz_fail(z, "invariant",
					"page %s (file offset 0x%llx) of a FAULT mapping is writable but its "
					"block is "
					"not allocated and written (extents near it:%s; file size 0x%zx): a "
					"write "
					"there takes no fault",
					fmt_addr(z, LIB, a), (unsigned long long)off,
					extents_near(z->fd[LIB], off), z->fsize);
		}
	}
}

void check_all(struct fz *z)
{
	z->rep->phase = PH_CHECK;
	if (z->holes_pending)
		compare_holes(z);
	maps_load(z);
	targets(z);
	compare_arenas(z);
	compare_pairs(z);
	compare_extra(z);
	compare_files(z);
	compare_bytes(z);
	check_invariant(z);
}

/* --- setup --- */

/* Fill every free gap above the arenas (below the stack) with PROT_NONE:
 * the kernel's top-down search then meets an arena's hole first, as it
 * would in a process whose address space is busy. */
static void fill_gaps_above(struct fz *z, uintptr_t low)
{
	uintptr_t gap[256][2], prev = 0;
	size_t n = 0;

	maps_load(z);
	for (size_t i = 0; i < z->nvma && n < 256; i++) {
		const struct vma *v = &z->vma[i];

		if (prev >= low && v->s > prev && v->s - prev <= ((uintptr_t)1 << 30)) {
			gap[n][0] = prev;
			gap[n++][1] = v->s;
		}
		prev = v->e;
	}
	for (size_t i = 0; i < n; i++)
		sys_mmap(gap[i][0], gap[i][1] - gap[i][0], PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
}

static int open_scratch(struct fz *z, int w, const char *dir, char *why, size_t whylen)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s-%d", dir, w == REF ? "ref" : "lib", (int)getpid());
	z->fd[w] = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (z->fd[w] < 0 || fstat(z->fd[w], &st) != 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	unlink(path); /* the descriptor keeps it; nothing is left behind */
	z->ino[w] = (unsigned long)st.st_ino;
	z->maj = major(st.st_dev);
	z->min = minor(st.st_dev);
	return 0;
}

/* The same history in both files: some data written (synced or not), some
 * unwritten extents, holes. */
static int initial_contents(struct fz *z, uint64_t seed, char *why, size_t whylen)
{
	uint64_t r = seed;
	size_t size = (size_t)below(&r, MAX_FILE / PG + 1) * PG;
	unsigned writes = (unsigned)below(&r, 6), allocs = (unsigned)below(&r, 3);
	int sync = chance(&r, 60);

	for (int w = 0; w < 2; w++) {
		uint64_t q = r;

		if (ftruncate(z->fd[w], (off_t)size) != 0)
			goto fail;
		for (unsigned i = 0; i < writes && size > 0; i++) {
			size_t off = (size_t)below(&q, size), len = 1 + (size_t)below(&q, sizeof(buf_ref));

			for (size_t k = 0; k < len; k++)
				buf_ref[k] = (unsigned char)rnd64(&q);
			if (off + len > size)
				len = size - off;
			if (pwrite(z->fd[w], buf_ref, len, (off_t)off) != (ssize_t)len)
				goto fail;
		}
		for (unsigned i = 0; i < allocs && size > 0; i++) {
			size_t off = (size_t)below(&q, size / PG) * PG,
			       len = (1 + (size_t)below(&q, 32)) * PG;

			if (fallocate(z->fd[w], FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) != 0)
				goto fail;
		}
		if (sync && fsync(z->fd[w]) != 0)
			goto fail;
	}
	z->fsize = size;
	return 0;
fail:
	snprintf(why, whylen, "initial file contents: %s", strerror(errno));
	return -1;
}

int world_setup(struct fz *z, const struct seq *s, const char *dir, char *why, size_t whylen)
{
	if (open_scratch(z, REF, dir, why, whylen) != 0 || open_scratch(z, LIB, dir, why, whylen) != 0 ||
	    initial_contents(z, s->setup, why, whylen) != 0)
		return -1;
	/* libsyncmap's arena above the reference's: its hole is the first
	 * place the kernel's top-down search looks. */
	for (int w = LIB; w >= REF; w--) {
		long p = sys_mmap(0, ARENA_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
				  0);

		if (p == -1) {
			snprintf(why, whylen, "arena: %s", strerror(errno));
			return -1;
		}
		z->arena[w] = (char *)p;
	}
	fill_gaps_above(z, (uintptr_t)(z->arena[REF] < z->arena[LIB] ? z->arena[REF] : z->arena[LIB]));
	return 0;
}
