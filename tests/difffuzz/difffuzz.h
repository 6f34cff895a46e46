/* SPDX-License-Identifier: MIT */
/* difffuzz.h -- differential fuzzer of the mmap family, plain mmap(2) against libsyncmap: shared declarations */
#ifndef SM_DIFFFUZZ_H
#define SM_DIFFFUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define PG ((uintptr_t)4096)
#define PGMASK (PG - 1)
#define ARENA_PAGES 1024    /* 4 MiB of address space per world */
#define GUARD_PAGES 8	    /* never targeted: no call reaches past the arena */
#define MAX_MAP_PAGES 96    /* longest mapping an op makes */
#define MAX_FILE (2u << 20) /* longest a file gets */
#define MAX_OPS 4096
#define MAX_PAIRS 1024
#define MAX_VMAS 32768
#define MAX_FORK_OPS 6 /* ops a forked child runs */

enum op_kind {
	OP_MAP_FIXED, /* MAP_FIXED (or _NOREPLACE) over the arena or an existing mapping */
	OP_MAP_FRESH, /* no address: the kernel chooses, in each world */
	OP_MAP_HOLE,  /* unmap a range, then MAP_FIXED into the hole just made */
	OP_UNMAP,     /* whole or part of a mapping, odd lengths, bad arguments */
	OP_MPROTECT,  /* odd and overflowing lengths, unknown bits */
	OP_MREMAP,    /* grow, shrink, move, MREMAP_FIXED, refused flag combinations */
	OP_GROW_HOLE, /* unmap the range after a mapping, then grow into it in place */
	OP_WRITE,     /* stores through mappings the reference says are writable */
	OP_PROBE,     /* one store anywhere, in a child per world: same signal? */
	OP_PERSIST,   /* syncmap_persist against msync(MS_SYNC) */
	OP_CHANGED,   /* syncmap_file_changed with nothing changed */
	OP_TRUNCATE,  /* ftruncate (+ syncmap_file_changed when it shrinks) */
	OP_PUNCH,     /* fallocate PUNCH_HOLE + syncmap_file_changed */
	OP_FALLOCATE, /* fallocate: unwritten extents */
	OP_PWRITE,    /* data through the descriptor */
	OP_FORK,      /* a child does a few ops, checks, exits with a verdict */
	OP_N
};

/* What a sequence may draw besides well-formed calls (all by default): to
 * look past a known defect, switch off what finds it (--without). */
enum feature {
	F_ODD = 1,	/* lengths that are not a multiple of the page */
	F_BADARGS = 2,	/* arguments and flag combinations the kernel refuses */
	F_OVERFLOW = 4, /* lengths that wrap around the address space */
	F_ALL = 7
};

struct op {
	int kind;
	uint64_t seed; /* every choice the op makes is drawn from it, against the state it meets */
};

/* A sequence: the settings of the run and its ops.  Written and read as text
 * (seq_write/seq_read), so a minimized sequence can be replayed. */
struct seq {
	uint64_t seed;	/* what generated it (informational once minimized) */
	size_t grain;	/* SYNCMAP_GRAIN */
	int presync;	/* SYNCMAP_PRESYNC */
	uint64_t setup; /* initial file contents */
	unsigned features;
	unsigned kinds_off; /* bit k: op kind k is never drawn */
	size_t n;
	struct op op[MAX_OPS];
};

const char *op_name(int kind);
/* kinds_off: bit k set = op kind k never drawn. */
void seq_generate(struct seq *s, uint64_t seed, size_t steps, unsigned features, unsigned kinds_off);
int op_kind_of(const char *name);
void seq_write(FILE *f, const struct seq *s);
int seq_read(FILE *f, struct seq *s, char *why, size_t whylen); /* 0, or -1 with why */

/* Random numbers: splitmix64, good from any seed. */
static inline uint64_t rnd64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t below(uint64_t *s, uint64_t n)
{
	return n == 0 ? 0 : rnd64(s) % n;
}

static inline int chance(uint64_t *s, unsigned pct)
{
	return below(s, 100) < pct;
}

/* What an executor (the process running one sequence) tells the driver, in
 * memory shared with it: survives the executor's death by a signal. */
enum phase { PH_SETUP, PH_REF, PH_LIB, PH_CHECK, PH_CHILD };
struct report {
	volatile int step;  /* the step running */
	volatile int phase; /* enum phase */
	volatile int failed;
	volatile int ended; /* the sequence ended early, without a mismatch (exit 3) */
	volatile int op_kind;
	char category[32];
	char doing[320]; /* the call running */
	char key[96]; /* what minimization keeps: the category, and for results the call and both outcomes */
	char msg[16384];
};

/* In the executor: run s over files in dir, checking after every step.
 * Returns 0 when every step matched; on a mismatch fills rep and returns 1;
 * 2 when the run could not be set up (rep->msg says why).  verbose prints
 * every step's calls and results on stdout. */
/* The ops a fork op's child runs (MAX_FORK_OPS at most): minimizing puts
 * them in the fork's place, to see whether they fail without the fork. */
size_t fork_subops(uint64_t seed, unsigned kinds_off, struct op *out);

int run_sequence(const struct seq *s, const char *dir, struct report *rep, int verbose);

/* Self-test (--intrude): after each reference munmap, map a page where the
 * kernel chooses, as another thread may; such sequences must end early. */
extern int difffuzz_intrude;

#endif
