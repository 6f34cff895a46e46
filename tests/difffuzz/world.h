/* SPDX-License-Identifier: MIT */
/* world.h -- the two worlds (kernel reference, libsyncmap) side by side, and the checks between them */
#ifndef SM_DIFFFUZZ_WORLD_H
#define SM_DIFFFUZZ_WORLD_H

#include "difffuzz.h"

#include <stdarg.h>
#include <stdnoreturn.h>

enum { REF = 0, LIB = 1 };

/* What a page is, per /proc/self/maps. */
enum pkind { K_HOLE, K_ANON, K_REF, K_LIB, K_OTHER };

struct vma {
	uintptr_t s, e;
	char perms[5];
	uint64_t off;
	unsigned long ino;
	unsigned maj, min;
};

struct pd {
	unsigned char kind; /* enum pkind */
	char perms[5];
	uint64_t off; /* file offset of the page */
};

/* A mapping placed by the kernel (no MAP_FIXED, or a moving mremap): in
 * each world at its own address.  The most recent pair holding an address
 * translates it. */
struct pair {
	uintptr_t ref, lib;
	size_t len;
};

/* A piece of a reference mapping of the reference file that translates in
 * one piece: what ops aim at. */
enum { MAX_SPANS = 16, MAX_FREED_CHECK = 64UL << 20 };

struct tgt {
	uintptr_t s, e;
	int arena;
	char perms[5];
	uint64_t off;
};

struct fz {
	char *arena[2];
	int fd[2];
	unsigned long ino[2];
	unsigned maj, min;
	size_t fsize;
	struct pair pair[MAX_PAIRS];
	size_t npairs;
	struct vma vma[MAX_VMAS];
	size_t nvma;
	struct tgt tgt[MAX_VMAS];
	size_t ntgt;
	unsigned char ref_hole[ARENA_PAGES], lib_hole[ARENA_PAGES];
	struct span {
		uintptr_t s, e;
		int freed;     /* 1: the call freed [s, e); 0: mapped it */
	} ref_span[MAX_SPANS]; /* what the step's reference calls did, in order */
	size_t nspan;
	int holes_pending; /* the op moved mappings: compare the holes it left */
	struct report *rep;
	int verbose, in_child, step, sub;
	char key[96]; /* set just before a result mismatch is reported */
	char log[8192];
	size_t loglen;
};

int world_setup(struct fz *z, const struct seq *s, const char *dir, char *why, size_t whylen);

void maps_load(struct fz *z);
void ref_freed(struct fz *z, uintptr_t a, size_t len, int freed);
void describe(const struct fz *z, uintptr_t a, size_t n, struct pd *out);
uintptr_t xlate(const struct fz *z, uintptr_t ref, uintptr_t *piece_end); /* 0: not translatable */
int in_arena(const struct fz *z, int w, uintptr_t a);
uintptr_t arena_page(const struct fz *z, int w, size_t i);
void targets(struct fz *z);
void add_pair(struct fz *z, uintptr_t ref, uintptr_t lib, size_t len);

/* Around a call that may move mappings: after the reference's call, note
 * its arena's holes and fill them (so nothing of libsyncmap's lands in the
 * reference's arena); after libsyncmap's, the same for its arena. */
void after_ref(struct fz *z);
void after_lib(struct fz *z);

/* Every check between the two worlds; returns only if all hold. */
void check_all(struct fz *z);

void say(struct fz *z, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
noreturn void fz_fail(struct fz *z, const char *category, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
noreturn void fz_inconclusive(struct fz *z, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *fmt_addr(const struct fz *z, int w, uintptr_t a);
const char *errname(int e);

void exec_op(struct fz *z, int kind, uint64_t seed);

#endif
