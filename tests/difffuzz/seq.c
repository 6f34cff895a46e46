/* SPDX-License-Identifier: MIT */
/* seq.c -- sequences of ops: generated from a seed, written and read as text for replay */
#include "difffuzz.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[OP_N] = {
	[OP_MAP_FIXED] = "map_fixed", [OP_MAP_FRESH] = "map_fresh", [OP_MAP_HOLE] = "map_hole",
	[OP_UNMAP] = "unmap",	      [OP_MPROTECT] = "mprotect",   [OP_MREMAP] = "mremap",
	[OP_GROW_HOLE] = "grow_hole", [OP_WRITE] = "write",	    [OP_PROBE] = "probe",
	[OP_PERSIST] = "persist",     [OP_CHANGED] = "changed",	    [OP_TRUNCATE] = "truncate",
	[OP_PUNCH] = "punch",	      [OP_FALLOCATE] = "fallocate", [OP_PWRITE] = "pwrite",
	[OP_FORK] = "fork",
};

/* How often each op is drawn.  Writes and the calls that move mappings
 * around dominate: the defects live where they meet. */
static const unsigned weights[OP_N] = {
	[OP_MAP_FIXED] = 10, [OP_MAP_FRESH] = 4, [OP_MAP_HOLE] = 6,  [OP_UNMAP] = 7,
	[OP_MPROTECT] = 8,   [OP_MREMAP] = 14,	 [OP_GROW_HOLE] = 4, [OP_WRITE] = 18,
	[OP_PROBE] = 2,	     [OP_PERSIST] = 5,	 [OP_CHANGED] = 2,   [OP_TRUNCATE] = 3,
	[OP_PUNCH] = 6,	     [OP_FALLOCATE] = 2, [OP_PWRITE] = 4,    [OP_FORK] = 2,
};

static unsigned weight(int k, unsigned kinds_off)
{
	return kinds_off & (1u << k) ? 0 : weights[k];
}

const char *op_name(int kind)
{
	return kind >= 0 && kind < OP_N ? names[kind] : "?";
}

int op_kind_of(const char *name)
{
	for (int k = 0; k < OP_N; k++)
		if (strcmp(name, names[k]) == 0)
			return k;
	return -1;
}

void seq_generate(struct seq *s, uint64_t seed, size_t steps, unsigned features, unsigned kinds_off)
{
	static const size_t grains[] = {4096, 16384, 65536};
	uint64_t r = seed;
	unsigned total = 0;

	for (int k = 0; k < OP_N; k++)
		total += weight(k, kinds_off);
	memset(s, 0, sizeof(*s));
	s->features = features;
	s->kinds_off = kinds_off;
	s->seed = seed;
	s->grain = grains[below(&r, 3)];
	s->presync = (int)below(&r, 2);
	s->setup = rnd64(&r);
	s->n = steps < MAX_OPS ? steps : MAX_OPS;
	for (size_t i = 0; i < s->n; i++) {
		unsigned w = (unsigned)below(&r, total);
		int k = 0;

		while (w >= weight(k, kinds_off))
			w -= weight(k++, kinds_off);
		s->op[i].kind = k;
		s->op[i].seed = rnd64(&r);
	}
}

void seq_write(FILE *f, const struct seq *s)
{
	fprintf(f, "# difffuzz sequence: replay with difffuzz --replay FILE\n");
	fprintf(f,
		"seed %" PRIu64 "\ngrain %zu\npresync %d\nsetup 0x%016" PRIx64
		"\nfeatures %u\nkinds_off 0x%x\n",
		s->seed, s->grain, s->presync, s->setup, s->features, s->kinds_off);
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "%s 0x%016" PRIx64 "\n", op_name(s->op[i].kind), s->op[i].seed);
}

int seq_read(FILE *f, struct seq *s, char *why, size_t whylen)
{
	char line[256], word[64], num[64];
	unsigned long long v;
	char *end;
	unsigned lineno = 0;

	memset(s, 0, sizeof(*s));
	s->grain = 65536;
	s->presync = 1;
	s->features = F_ALL;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (sscanf(line, "%63s %63s", word, num) != 2 || (v = strtoull(num, &end, 0), *end != '\0')) {
			snprintf(why, whylen, "line %u: want 'name number'", lineno);
			return -1;
		}
		if (strcmp(word, "seed") == 0) {
			s->seed = v;
		} else if (strcmp(word, "grain") == 0) {
			s->grain = (size_t)v;
		} else if (strcmp(word, "presync") == 0) {
			s->presync = (int)v;
		} else if (strcmp(word, "setup") == 0) {
			s->setup = v;
		} else if (strcmp(word, "features") == 0) {
			s->features = (unsigned)v;
		} else if (strcmp(word, "kinds_off") == 0) {
			s->kinds_off = (unsigned)v;
		} else if (op_kind_of(word) >= 0 && s->n < MAX_OPS) {
			s->op[s->n].kind = op_kind_of(word);
			s->op[s->n++].seed = v;
		} else {
			snprintf(why, whylen, "line %u: unknown op '%s' (or more than %d ops)", lineno, word,
				 MAX_OPS);
			return -1;
		}
	}
	return 0;
}
