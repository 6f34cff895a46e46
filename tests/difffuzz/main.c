/* SPDX-License-Identifier: MIT */
/* main.c -- difffuzz driver: seeded sequences for a time budget, each in its own process; minimize and replay
 *
 * Usage:
 *   difffuzz [--seconds N] [--seed S] [--steps N] [--runs N]   fuzz (default: 60 s, a fresh seed)
 *   difffuzz --replay FILE [--replay FILE...]                    run saved sequences, step by step
 * Other options: --no-minimize, --minimize-seconds N, --out DIR (where a failing
 * sequence is saved), --verbose (every step of every sequence), --without LIST
 * (op kinds or the features odd, badargs, overflow never drawn: to look past
 * a known defect), --keep-going (one line per failing sequence, no
 * minimizing: to survey what a version of the library gets wrong).
 *
 * Sequence k of a run with seed S is generated from seed S + k, so
 * `--seed S+k --steps N --runs 1` runs it again.  Exit status: 0 no
 * mismatch, 1 a mismatch (printed, minimized, saved), 77 skipped (no root
 * or no loop device for the scratch ext4), 2 usage or setup error.
 */
#include "difffuzz.h"

#include "helpers.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STALL_SECONDS 45 /* a step that makes no progress this long is a hang */

enum verdict { V_PASS, V_MISMATCH, V_CRASH, V_HANG, V_SETUP, V_ENDED };

struct result {
	enum verdict v;
	int step, op_kind, phase;
	char category[32];
	char key[96];
	char msg[16384];
};

static struct report *rep;
static struct loopfs fs;
static struct seq cur, best, cand;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const char *phase_name(int p)
{
	static const char *const n[] = {"setting up", "in the reference's calls", "in libsyncmap's calls",
					"in the checks", "in a forked child"};

	return p >= 0 && p <= PH_CHILD ? n[p] : "?";
}

/* Run s in a fresh process (its own process group: a hung one is killed
 * with every child it forked). */
static void run_once(const struct seq *s, int verbose, struct result *res)
{
	double last = now();
	int last_step = -2, st = 0;
	pid_t pid;

	memset(rep, 0, sizeof(*rep));
	memset(res, 0, sizeof(*res));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int rc;

		setpgid(0, 0);
		rc = run_sequence(s, fs.dir, rep, verbose);
		fflush(stdout);
		_exit(rc);
	}
	if (pid < 0) {
		res->v = V_SETUP;
		snprintf(res->msg, sizeof(res->msg), "fork: %s", strerror(errno));
		return;
	}
	setpgid(pid, pid);
	for (;;) {
		struct timespec nap = {0, 2 * 1000 * 1000};
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			break;
		if (rep->step != last_step) {
			last_step = rep->step;
			last = now();
		} else if (now() - last > STALL_SECONDS) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			st = -1;
			break;
		}
		nanosleep(&nap, NULL);
	}
	kill(-pid, SIGKILL); /* children of the probes and forks, if any are left */
	res->step = rep->step;
	res->op_kind = rep->op_kind;
	res->phase = rep->phase;
	if (st == -1) {
		res->v = V_HANG;
		snprintf(res->category, sizeof(res->category), "hang");
		snprintf(res->msg, sizeof(res->msg), "hang: no progress for %d s at step %d (%s), %s: %s",
			 STALL_SECONDS, res->step, op_name(res->op_kind), phase_name(res->phase), rep->doing);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		res->v = V_PASS;
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 1 && rep->failed) {
		res->v = V_MISMATCH;
		snprintf(res->category, sizeof(res->category), "%s", rep->category);
		snprintf(res->key, sizeof(res->key), "%s", rep->key);
		snprintf(res->msg, sizeof(res->msg), "%s", rep->msg);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 3 && rep->ended) {
		res->v = V_ENDED;
		snprintf(res->msg, sizeof(res->msg), "%s", rep->msg);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
		res->v = V_SETUP;
		snprintf(res->msg, sizeof(res->msg), "setup: %.16000s", rep->msg);
	} else {
		res->v = V_CRASH;
		if (WIFSIGNALED(st))
			snprintf(res->category, sizeof(res->category), "crash:%s",
				 sigabbrev_np(WTERMSIG(st)));
		else
			snprintf(res->category, sizeof(res->category), "crash:exit%d", WEXITSTATUS(st));
		snprintf(res->msg, sizeof(res->msg),
			 "crash: the process running both worlds %s%s at step %d (%s), %s: %s "
			 "(plain mmap would not have: the reference's stores are only made where they cannot "
			 "fault)",
			 WIFSIGNALED(st) ? "died of SIG" : "exited with",
			 WIFSIGNALED(st) ? sigabbrev_np(WTERMSIG(st)) : "an unexpected status", res->step,
			 op_name(res->op_kind), phase_name(res->phase), rep->doing);
	}
}

static int same_failure(const struct result *a, const struct result *b)
{
	return b->v == a->v && a->v != V_PASS && a->v != V_SETUP && a->v != V_ENDED &&
	       strcmp(a->category, b->category) == 0 && strcmp(a->key, b->key) == 0 &&
	       a->op_kind == b->op_kind;
}

/* The failure of a fork op's child, seen again from the same op run
 * without the fork?  (The child reports "crash" for its own death.) */
static int same_unforked(const struct result *a, const struct result *b)
{
	if (b->v == V_PASS || b->v == V_SETUP || b->v == V_ENDED)
		return 0;
	if (strncmp(a->category, "crash", 5) == 0)
		return strncmp(b->category, "crash", 5) == 0;
	return strcmp(a->category, b->category) == 0 && strcmp(a->key, b->key) == 0;
}

/* A failing fork op replaced by the ops its child ran: a shorter story
 * when the fork itself plays no part. */
static unsigned unfold_fork(struct seq *s, struct result *want)
{
	struct op sub[MAX_FORK_OPS];
	size_t at = s->n - 1, k;
	struct result res;

	if (s->op[at].kind != OP_FORK)
		return 0;
	k = fork_subops(s->op[at].seed, s->kinds_off, sub);
	cand = *s;
	if (at + k > MAX_OPS)
		return 0;
	memcpy(&cand.op[at], sub, k * sizeof(sub[0]));
	cand.n = at + k;
	run_once(&cand, 0, &res);
	if (!same_unforked(want, &res))
		return 1;
	cand.n = (size_t)res.step + 1;
	*s = cand;
	*want = res;
	return 1;
}

/* Delta debugging: drop chunks of ops while the same failure persists,
 * halving the chunks down to single ops; each success also cuts the
 * sequence after its failing step. */
static unsigned minimize(struct seq *s, const struct result *first, double budget)
{
	double end = now() + budget;
	size_t parts = 2;
	struct result res, want = *first, *orig = &want;
	unsigned runs;

	s->n = (size_t)orig->step + 1;
	runs = unfold_fork(s, &want);
	while (s->n >= 2 && now() < end) {
		size_t chunk = (s->n + parts - 1) / parts;
		int reduced = 0;

		for (size_t i = 0; i * chunk < s->n && !reduced && now() < end; i++) {
			size_t lo = i * chunk, hi = lo + chunk < s->n ? lo + chunk : s->n;

			cand = *s;
			memmove(&cand.op[lo], &s->op[hi], (s->n - hi) * sizeof(s->op[0]));
			cand.n = s->n - (hi - lo);
			if (cand.n == 0)
				continue;
			run_once(&cand, 0, &res);
			runs++;
			if (same_failure(orig, &res)) {
				cand.n = (size_t)res.step + 1;
				*s = cand;
				parts = parts > 2 ? parts - 1 : 2;
				reduced = 1;
			}
		}
		if (!reduced) {
			if (parts >= s->n)
				break;
			parts = parts * 2 < s->n ? parts * 2 : s->n;
		}
	}
	return runs;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: difffuzz [--seconds N] [--seed S] [--steps N] [--runs N] [--no-minimize]\n"
		"                [--minimize-seconds N] [--out DIR] [--verbose] [--intrude] [--without LIST] "
		"[--keep-going] [--fs-mib N]\n"
		"  LIST: op kinds (map_fixed, mremap, ...) and features (odd, badargs, overflow)\n"
		"  never drawn, to look past a known defect\n"
		"       difffuzz --replay FILE [--replay FILE...]\n");
	exit(2);
}

struct opts {
	double seconds, min_seconds;
	uint64_t seed;
	int have_seed, minimize, verbose, keep_going;
	size_t steps;
	unsigned long runs;
	const char *replay[64], *out, *without;
	unsigned nreplay;
	unsigned features, kinds_off, fs_mib;
};

/* --without a,b,...: op kinds, or the features odd, badargs, overflow. */
static void parse_without(struct opts *o, const char *list)
{
	char buf[512], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	o->without = list;
	for (char *w = strtok_r(buf, ",", &save); w != NULL; w = strtok_r(NULL, ",", &save)) {
		if (strcmp(w, "odd") == 0)
			o->features &= ~(unsigned)F_ODD;
		else if (strcmp(w, "badargs") == 0)
			o->features &= ~(unsigned)F_BADARGS;
		else if (strcmp(w, "overflow") == 0)
			o->features &= ~(unsigned)F_OVERFLOW;
		else if (op_kind_of(w) >= 0)
			o->kinds_off |= 1u << op_kind_of(w);
		else
			usage();
	}
}

static void parse(int argc, char **argv, struct opts *o)
{
	o->seconds = 60;
	o->min_seconds = 120;
	o->steps = 150;
	o->minimize = 1;
	o->out = ".";
	o->features = F_ALL;
	o->fs_mib = 512;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--no-minimize") == 0) {
			o->minimize = 0;
			continue;
		}
		if (strcmp(a, "--verbose") == 0) {
			o->verbose = 1;
			continue;
		}
		if (strcmp(a, "--intrude") == 0) {
			difffuzz_intrude = 1;
			continue;
		}
		if (strcmp(a, "--keep-going") == 0) {
			o->keep_going = 1;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--seconds") == 0)
			o->seconds = atof(v);
		else if (strcmp(a, "--minimize-seconds") == 0)
			o->min_seconds = atof(v);
		else if (strcmp(a, "--seed") == 0)
			o->seed = strtoull(v, NULL, 0), o->have_seed = 1;
		else if (strcmp(a, "--steps") == 0)
			o->steps = strtoul(v, NULL, 0);
		else if (strcmp(a, "--runs") == 0)
			o->runs = strtoul(v, NULL, 0);
		else if (strcmp(a, "--replay") == 0 && o->nreplay < 64)
			o->replay[o->nreplay++] = v;
		else if (strcmp(a, "--out") == 0)
			o->out = v;
		else if (strcmp(a, "--without") == 0)
			parse_without(o, v);
		else if (strcmp(a, "--fs-mib") == 0)
			o->fs_mib = (unsigned)strtoul(v, NULL, 0);
		else
			usage();
	}
	if (o->steps == 0 || o->steps > MAX_OPS)
		usage();
}

static int replay_one(const char *path)
{
	FILE *f = fopen(path, "re");
	char why[256];
	struct result res;

	if (f == NULL || seq_read(f, &cur, why, sizeof(why)) != 0) {
		fprintf(stderr, "difffuzz: %s: %s\n", path, f == NULL ? strerror(errno) : why);
		return 2;
	}
	fclose(f);
	printf("difffuzz: replaying %s: %zu ops, grain %zu, presync %d\n", path, cur.n, cur.grain,
	       cur.presync);
	run_once(&cur, 1, &res);
	if (res.v == V_PASS || res.v == V_ENDED) {
		printf("difffuzz: every step of %s matched%s\n", path,
		       res.v == V_ENDED ? " (up to where it ended early)" : "");
		return 0;
	}
	printf("difffuzz: step %d (%s): %s\n", res.step, op_name(res.op_kind), res.msg);
	return res.v == V_SETUP ? 2 : 1;
}

/* Every file named with --replay (a corpus of once-failing sequences),
 * whatever the others do. */
static int replay(const struct opts *o)
{
	int worst = 0;

	for (unsigned i = 0; i < o->nreplay; i++) {
		int rc = replay_one(o->replay[i]);

		worst = rc > worst ? rc : worst;
	}
	printf("difffuzz: %s: %u sequence%s replayed\n", worst == 0 ? "PASS" : "FAIL", o->nreplay,
	       o->nreplay == 1 ? "" : "s");
	return worst;
}

/* Say everything needed to see it again: the mismatch, the minimized
 * sequence (saved and printed), its step-by-step run, the commands. */
static int report_failure(const struct opts *o, const struct result *first, size_t steps)
{
	char path[PATH_MAX];
	struct result res;
	unsigned runs = 0;
	FILE *f;

	printf("difffuzz: MISMATCH in the sequence of seed %" PRIu64 " at step %d (%s)\n  %s\n", cur.seed,
	       first->step, op_name(first->op_kind), first->msg);
	best = cur;
	best.n = (size_t)first->step + 1;
	if (o->minimize) {
		printf("difffuzz: minimizing (delta debugging, up to %.0f s)\n", o->min_seconds);
		fflush(stdout);
		runs = minimize(&best, first, o->min_seconds);
		printf("difffuzz: minimized from %d to %zu ops in %u runs\n", first->step + 1, best.n, runs);
	}
	snprintf(path, sizeof(path), "%s/difffuzz-%" PRIu64 ".ops", o->out, cur.seed);
	mkdir(o->out, 0755);
	f = fopen(path, "we");
	if (f == NULL || (seq_write(f, &best), fclose(f) != 0)) {
		printf("difffuzz: could not save %s (%s): copy the sequence below into a file\n", path,
		       strerror(errno));
		snprintf(path, sizeof(path), "FILE");
	}
	printf("---- %s ----\n", path);
	seq_write(stdout, &best);
	printf("----\ndifffuzz: the minimized sequence, step by step (reference | libsyncmap):\n");
	run_once(&best, 1, &res);
	if (res.v != V_PASS && res.v != V_ENDED)
		printf("difffuzz: step %d (%s): %s\n", res.step, op_name(res.op_kind), res.msg);
	else
		printf("difffuzz: (this replay did not fail: the mismatch depends on timing)\n");
	printf("difffuzz: replay: difffuzz --replay %s\n", path);
	printf("difffuzz:     or: difffuzz --seed %" PRIu64 " --steps %zu --runs 1%s%s   (unminimized)\n",
	       cur.seed, steps, o->without ? " --without " : "", o->without ? o->without : "");
	printf("difffuzz: FAIL\n");
	return 1;
}

int main(int argc, char **argv)
{
	struct opts o = {0};
	struct result res;
	char why[256];
	unsigned long k;
	double start, end;
	unsigned long long steps_run = 0;
	unsigned long failures = 0, ended = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	parse(argc, argv, &o);
	if (o.nreplay == 0) {
		if (!o.have_seed && getrandom(&o.seed, sizeof(o.seed), 0) != sizeof(o.seed))
			o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		o.seed &= (1ull << 53) - 1; /* short enough to copy by hand */
		printf("difffuzz: seed %" PRIu64 " (sequence k runs seed %" PRIu64
		       "+k; --seed replays the run)\n",
		       o.seed, o.seed);
	}
	/* 512 MiB by default (sparse, in /dev/shm): mkfs.ext4 gives smaller
	 * filesystems 1 KiB blocks (--fs-mib 64 tries that). */
	if (loopfs_make(&fs, "ext4", o.fs_mib, NULL, why, sizeof(why)) != 0) {
		printf("difffuzz: SKIP: needs a loop-mounted ext4: %s\n", why);
		return 77;
	}
	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rep == MAP_FAILED) {
		perror("difffuzz: mmap");
		return 2;
	}
	if (o.nreplay != 0)
		return replay(&o);
	start = now();
	end = start + o.seconds;
	for (k = 0; (o.runs == 0 || k < o.runs) && (o.runs != 0 || now() < end); k++) {
		seq_generate(&cur, o.seed + k, o.steps, o.features, o.kinds_off);
		run_once(&cur, o.verbose, &res);
		if (res.v == V_SETUP) {
			printf("difffuzz: setup failed: %s\n", res.msg);
			return 2;
		}
		if (res.v == V_ENDED) {
			ended++;
			steps_run += (unsigned long long)res.step + 1;
			continue;
		}
		if (res.v != V_PASS && o.keep_going) {
			char *nl = strchr(res.msg, '\n');

			if (nl != NULL)
				*nl = '\0';
			printf("difffuzz: seed %" PRIu64 " step %d (%s): %s\n", cur.seed, res.step,
			       op_name(res.op_kind), res.msg);
			failures++;
			continue;
		}
		if (res.v != V_PASS)
			return report_failure(&o, &res, o.steps);
		steps_run += cur.n;
	}
	if (failures != 0) {
		printf("difffuzz: FAIL: %lu of %lu sequences had a mismatch (seed %" PRIu64 ")\n", failures,
		       k, o.seed);
		return 1;
	}
	printf("difffuzz: PASS: %lu sequences (%lu ended early: address space taken or a known difference, "
	       "see docs), %llu steps "
	       "in "
	       "%.0f s, no mismatch (seed %" PRIu64 ")\n",
	       k, ended, steps_run, now() - start, o.seed);
	loopfs_done(&fs);
	return 0;
}
