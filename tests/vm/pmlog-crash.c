/* SPDX-License-Identifier: MIT */
/* pmlog-crash.c -- pmlog under power cuts in the DAX guest: append known records, crash, check what recovery returns
 *
 *   pmlog-crash write KEY=VALUE...
 *       log=FILE        the log, created fresh (pmlog_open with create)
 *       seed=S records=N
 *                       append records 0..N-1, one pmlog_append each; record
 *                       i is records.h's record (S, i): 0 to 20000 bytes
 *       chunk=BYTES     pmlog's growth step (default: pmlog's own)
 *       tag=NAME        the name in the output lines (case)
 *       mode=M persist=P
 *                       what pmlog must report: KERNEL, FAULT or NONE;
 *                       cpu (cache-line flush) or msync.  Checked.
 *       crash=K stage=acked|timer|records|commit
 *                       reset the guest (sysrq-b) once K records were
 *                       acknowledged: at once (acked); at a random moment
 *                       while record K is appended (timer: uniform in
 *                       [0, 2 x the mean append so far]); or inside the
 *                       append of record K, right after pmlog's first
 *                       syncmap_persist (records: the record is durable, its
 *                       commit word not yet stored) or its second (commit:
 *                       the commit word is durable, the append has not
 *                       returned).  Not in pmlog-crash-plain.
 *       mark=K          print "SMVM: crashpoint" once K records were
 *                       acknowledged (the host SIGKILLs QEMU on it) and go
 *                       on, for 256 records at most; then wait for the kill
 *       lead=FILE       publish the acknowledged count in the step counter
 *       follow=FILE     append record i only once the leader acknowledged
 *                       record i: two writers in step, so that a crash cuts
 *                       both in the middle of their writes
 *   Prints "SMVM: start TAG mode=... persist=... chunk=... env=...", then
 *   "SMVM: p TAG A" after every append that returned: records 0..A-1 are
 *   durable.  The line is printed after the fact: the host never counts a
 *   record that was not acknowledged.
 *
 *   pmlog-crash check log=FILE seed=S acked=A tag=NAME [text=1]
 *       After the crash.  Opens the log read-only (recovery's scan), checks
 *       every record it returns against records.h's (text=1: logd's lines),
 *       opens it writable (recovery cuts the torn tail), checks that the
 *       bytes past the tail are zero, appends record F and reads the log
 *       back once more.  Prints
 *       "SMVM: result NAME acked=A found=F intact=I lost=L bad=B torn=T
 *        why=W cut=0|1 again=0|1 missing=0|1":
 *       found: records recovery returned; intact: the longest run of exact
 *       records from the first; lost: acknowledged records not in that run
 *       (max(0, A - I)); bad: returned records that are not exactly what
 *       was written at their position (a torn or stale record returned);
 *       torn/why: the torn tail recovery reported (bytes, and why the
 *       records end there); cut: after the writable open the tail is zero
 *       and a new open reports none; again: a record appended after
 *       recovery reads back after the records found, all exact.
 */
#include "apputil.h"
#include "pmlog.h"
#include "records.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MARK_RUN 256 /* records appended after the kill mark, at most */

extern char **environ;

#ifndef PMLOG_CRASH_PLAIN
#include <syncmap.h>

/* Crash points inside pmlog_append: pmlog persists the records, then
 * stores and persists their commit words.  This definition, in the program,
 * is the one pmlog's calls bind to; it passes each call on to the
 * library's (the next definition in the lookup order) and, once armed,
 * resets the guest right after the chosen call returned. */
static int persist_stop; /* 1: after the records' persist, 2: after the commit words' */
static long persist_at;

int syncmap_persist(const void *addr, size_t len)
{
	static int (*real)(const void *, size_t);
	static int calls;
	int rc;

	if (real == NULL)
		real = (int (*)(const void *, size_t))dlsym(RTLD_NEXT, "syncmap_persist");
	if (real == NULL) {
		printf("SMVM: error: no syncmap_persist in the library\n");
		exit(1);
	}
	rc = real(addr, len);
	if (persist_stop != 0 && ++calls == persist_stop)
		au_crash_now(persist_stop == 1 ? "records" : "commit", persist_at);
	return rc;
}

static void arm_persist_stop(const char *stage, long at)
{
	persist_stop = !strcmp(stage, "records") ? 1 : 2;
	persist_at = at;
}
#else
static void arm_persist_stop(const char *stage, long at)
{
	(void)at;
	printf("SMVM: error: stage=%s needs the library\n", stage);
	exit(2);
}
#endif

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *short_mode(const char *name)
{
	const char *sp = strrchr(name, ' ');

	return sp != NULL ? sp + 1 : name; /* "syncmap FAULT" -> "FAULT" */
}

static const char *short_persist(const char *name)
{
	return strcmp(name, "cache-line flush") == 0 ? "cpu" : name;
}

/* The SYNCMAP_* variables in force, for the start line: "defaults" if none. */
static void print_env(void)
{
	int any = 0;

	for (char **e = environ; *e != NULL; e++)
		if (strncmp(*e, "SYNCMAP_", 8) == 0) {
			printf("%s%s", any ? "," : "", *e);
			any = 1;
		}
	if (!any)
		printf("defaults");
}

static struct pmlog *open_for_write(const char *file, size_t chunk, const char *tag, const char *mode,
				    const char *persist)
{
	struct pmlog_opts o = {.create = 1, .chunk = chunk};
	char err[256];
	struct pmlog *l = pmlog_open(file, &o, err, sizeof(err));
	const char *got_mode, *got_persist;

	if (l == NULL) {
		printf("SMVM: error: %s\n", err);
		exit(1);
	}
	got_mode = short_mode(pmlog_mode_name(l));
	got_persist = short_persist(pmlog_persist_name(l));
	printf("SMVM: start %s mode=%s persist=%s chunk=%zu env=", tag, got_mode, got_persist,
	       chunk != 0 ? chunk : PMLOG_DEFAULT_CHUNK);
	print_env();
	printf("\n");
	if ((mode != NULL && strcmp(mode, got_mode) != 0) ||
	    (persist != NULL && strcmp(persist, got_persist) != 0)) {
		printf("SMVM: error: %s wanted mode %s persist %s, got %s %s\n", tag, mode ? mode : "any",
		       persist ? persist : "any", got_mode, got_persist);
		exit(1);
	}
	return l;
}

static int cmd_write(int argc, char **argv)
{
	static const char *const keys[] = {"log",   "seed",  "records", "chunk", "tag",	   "mode", "persist",
					   "crash", "stage", "mark",	"lead",	 "follow", NULL};
	static unsigned char buf[VR_MAX_LEN];
	struct au_plan plan = au_plan_args(argc, argv, 1000000, MARK_RUN);
	const char *file = au_arg(argc, argv, "log", NULL), *tag = plan.tag, *stage = plan.stage;
	uint64_t seed = plan.seed;
	long n = au_num(argc, argv, "records", 0, 1, 1000000), crash = plan.crash;
	size_t chunk = (size_t)au_num(argc, argv, "chunk", 0, 0, 1l << 30);
	struct pmlog *l;

	au_check_keys(argc, argv, keys);
	if (file == NULL || n == 0 ||
	    (strcmp(stage, "acked") && strcmp(stage, "timer") && strcmp(stage, "records") &&
	     strcmp(stage, "commit"))) {
		fprintf(stderr, "usage: pmlog-crash write log=FILE seed=S records=N [...]\n");
		return 2;
	}
	au_plan_start(&plan);
	l = open_for_write(file, chunk, tag, au_arg(argc, argv, "mode", NULL),
			   au_arg(argc, argv, "persist", NULL));
	for (long i = 0; i < n; i++) {
		size_t len = vr_fill(seed, (uint64_t)i, 0, buf);
		uint64_t t0;

		au_before(&plan, i);
		if (crash == i && (!strcmp(stage, "records") || !strcmp(stage, "commit")))
			arm_persist_stop(stage, i);
		t0 = now_ns();
		au_inside = 1;
		if (pmlog_append(l, buf, len) != 0)
			au_die("pmlog_append");
		au_inside = 0;
		plan.spent += now_ns() - t0;
		au_acked(&plan, i + 1);
	}
	au_done(&plan, n);
}

struct verify {
	uint64_t seed;
	int text;
	uint64_t found, intact, bad;
};

static void on_rec(void *arg, uint64_t idx, size_t off, const void *data, uint32_t len)
{
	struct verify *v = arg;
	int ok = vr_match(v->seed, idx, v->text, data, len);

	(void)off;
	if (ok && idx == v->intact)
		v->intact++; /* still in the run of exact records from the first */
	v->bad += !ok;
	v->found++;
}

static const char *why_name(enum pmlog_stop why)
{
	static const char *const names[] = {"end", "truncated", "too-long", "no-commit", "bad-crc"};

	return (unsigned)why < sizeof(names) / sizeof(names[0]) ? names[why] : "?";
}

/* Read-only open and scan: what any reader of the log gets back. */
static struct pmlog *scan(const char *file, struct verify *v, size_t *torn, enum pmlog_stop *why)
{
	struct pmlog_opts ro = {.readonly = 1};
	char err[256];
	struct pmlog *l = pmlog_open(file, &ro, err, sizeof(err));

	if (l == NULL) {
		if (errno != ENOENT)
			printf("SMVM: error: read-only open: %s\n", err);
		return NULL;
	}
	v->found = v->intact = v->bad = 0;
	if (pmlog_foreach(l, on_rec, v) != 0)
		au_die("pmlog_foreach");
	*torn = pmlog_torn(l, why);
	return l;
}

/* 1 if every byte of file in [from, to) is zero. */
static int zero_from(const char *file, size_t from, size_t to)
{
	static unsigned char b[65536];
	int fd = open(file, O_RDONLY | O_CLOEXEC), ok = 1;

	if (fd < 0)
		au_die(file);
	while (ok && from < to) {
		size_t want = to - from < sizeof(b) ? to - from : sizeof(b);
		ssize_t got = pread(fd, b, want, (off_t)from);

		if (got <= 0)
			break; /* past the end of the file: nothing there */
		for (ssize_t k = 0; k < got && ok; k++)
			ok = b[k] == 0;
		from += (size_t)got;
	}
	close(fd);
	return ok;
}

/* Recovery as a writer runs it (the torn tail zeroed), then one more
 * record: *cut if the bytes past the tail are zero afterwards and a new
 * scan finds no torn tail; *again if the new record follows the others. */
static void recover_and_append(const char *file, struct verify *v, int *cut, int *again)
{
	static unsigned char buf[VR_MAX_LEN];
	struct pmlog_opts rw = {0};
	uint64_t found = v->found, intact = v->intact, bad = v->bad;
	char err[256];
	struct pmlog *l = pmlog_open(file, &rw, err, sizeof(err));
	size_t tail, size, torn;
	enum pmlog_stop why;

	*cut = *again = 0;
	if (l == NULL) {
		printf("SMVM: error: writable open: %s\n", err);
		return;
	}
	tail = pmlog_tail(l);
	size = pmlog_size(l);
	if (pmlog_count(l) != found)
		printf("SMVM: error: writable open found %" PRIu64 " records, read-only %" PRIu64 "\n",
		       pmlog_count(l), found);
	pmlog_close(l);
	l = scan(file, v, &torn, &why);
	*cut = l != NULL && torn == 0 && v->found == found && zero_from(file, tail, size);
	pmlog_close(l);

	l = pmlog_open(file, &rw, err, sizeof(err));
	if (l == NULL || pmlog_append(l, buf, vr_fill(v->seed, found, v->text, buf)) != 0 ||
	    pmlog_close(l) != 0) {
		printf("SMVM: error: append after recovery: %s\n", l == NULL ? err : strerror(errno));
		return;
	}
	l = scan(file, v, &torn, &why);
	*again = l != NULL && v->found == found + 1 && v->intact == intact + (intact == found) &&
		 v->bad == bad && torn == 0;
	pmlog_close(l);
}

static int cmd_check(int argc, char **argv)
{
	static const char *const keys[] = {"log", "seed", "acked", "tag", "text", NULL};
	const char *file = au_arg(argc, argv, "log", NULL), *tag = au_arg(argc, argv, "tag", "case");
	struct verify v = {.seed = strtoull(au_arg(argc, argv, "seed", "1"), NULL, 0),
			   .text = (int)au_num(argc, argv, "text", 0, 0, 1)};
	uint64_t acked = (uint64_t)au_num(argc, argv, "acked", 0, 0, 1000000), found, intact, bad;
	enum pmlog_stop why = PMLOG_STOP_END;
	size_t torn = 0;
	int cut = 0, again = 0;
	struct pmlog *l;

	au_check_keys(argc, argv, keys);
	if (file == NULL) {
		fprintf(stderr, "usage: pmlog-crash check log=FILE seed=S acked=A tag=NAME [text=1]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	l = scan(file, &v, &torn, &why);
	if (l == NULL) {
		/* The log was created and its directory synced before the first
		 * append: a missing or unreadable log lost everything. */
		printf("SMVM: result %s acked=%" PRIu64 " found=0 intact=0 lost=%" PRIu64
		       " bad=0 torn=0 why=- cut=0 again=0 missing=1\n",
		       tag, acked, acked);
		return 0;
	}
	pmlog_close(l);
	found = v.found;
	intact = v.intact;
	bad = v.bad;
	recover_and_append(file, &v, &cut, &again);
	printf("SMVM: result %s acked=%" PRIu64 " found=%" PRIu64 " intact=%" PRIu64 " lost=%" PRIu64
	       " bad=%" PRIu64 " torn=%zu why=%s cut=%d again=%d missing=0\n",
	       tag, acked, found, intact, acked > intact ? acked - intact : 0, bad, torn, why_name(why), cut,
	       again);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "write"))
		return cmd_write(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "check"))
		return cmd_check(argc - 2, argv + 2);
	fprintf(stderr, "usage: pmlog-crash write|check KEY=VALUE...\n");
	return 2;
}
