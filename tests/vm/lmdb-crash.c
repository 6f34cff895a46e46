/* SPDX-License-Identifier: MIT */
/* lmdb-crash.c -- LMDB with MDB_WRITEMAP under power cuts in the DAX guest: commit known transactions, crash, check
 *
 * Runs under the preload shim (LD_PRELOAD=libsyncmap-preload.so), which
 * takes LMDB's shared writable map of data.mdb: LMDB stores its pages
 * through it and commits with msync, unaware of the library.  The control
 * runs without the shim and with MDB_NOSYNC: commits that return without
 * making anything durable, which must lose transactions.
 *
 *   lmdb-crash write KEY=VALUE...
 *       dir=DIR         the environment, created fresh (64 MiB map)
 *       seed=S txns=N   commit transactions 0..N-1; transaction t puts 1 to
 *                       12 records (records.h content, 0 to 20000 bytes:
 *                       large ones go to overflow pages) under keys spread
 *                       over the tree, and sets "~txns" to t + 1
 *       nosync=1        MDB_NOSYNC (the control)
 *       mode=M          KERNEL, FAULT or NONE: what the shim must have made
 *                       of data.mdb's map (NONE: no shim).  Checked.
 *       tag=NAME crash=K stage=acked|timer mark=K lead=FILE follow=FILE
 *                       as pmlog-crash: reset after the K-th acknowledged
 *                       commit, or at a random moment during transaction K
 *                       (timer: often inside its puts or its commit), or
 *                       mark for the host's SIGKILL; in step with a follower
 *   Prints "SMVM: start TAG mode=... flags=..." and "SMVM: p TAG A" after
 *   each mdb_txn_commit that returned 0.
 *
 *   lmdb-crash check dir=DIR seed=S acked=A tag=NAME
 *       Opens the environment as the writer did and reads every record:
 *       "SMVM: result NAME acked=A found=F lost=L bad=B torn=T entries=E
 *        missing=0|1 open=RC corrupt=RC": found: transactions 0..F-1 wholly present; lost:
 *       acknowledged ones not among them; bad: records that are not what
 *       was written, keys nobody wrote, transactions present after a missing
 *       one, a "~txns" that disagrees, or an entry count other than LMDB's;
 *       torn: transactions partly present (a commit is all or nothing);
 *       entries: what mdb_stat must report for F transactions; missing:
 *       the environment does not open (open: LMDB's error); corrupt: LMDB
 *       failed while reading it (its error, or sigN: the signal that
 *       killed the reader, since LMDB trusts its pages and may crash on a
 *       corrupt environment); lost is then everything.
 */
#include "apputil.h"
#include "ptest.h"
#include "records.h"

#include <inttypes.h>
#include <lmdb.h>
#include <sys/wait.h>
#include <time.h>

#define MAPSIZE ((size_t)64 << 20)
#define MAX_TXNS 100000
#define MAX_PUTS 12
#define MARK_RUN 64
#define META_KEY "~txns"

static unsigned puts_of(uint64_t seed, uint64_t t)
{
	return 1 + (unsigned)(vr_mix(seed ^ (t << 8) ^ 0x1d8e4e27u) % MAX_PUTS);
}

/* The record index of put j of transaction t, and its key: a hash first,
 * so that consecutive transactions touch leaves all over the tree. */
static uint64_t rec_of(uint64_t t, unsigned j)
{
	return t * MAX_PUTS + j;
}

static MDB_val key_of(uint64_t seed, uint64_t t, unsigned j, char *buf)
{
	int n = snprintf(buf, 48, "%016" PRIx64 "-%06" PRIu64 "-%02u", vr_mix(seed ^ rec_of(t, j)), t, j);

	return (MDB_val){.mv_size = (size_t)n, .mv_data = buf};
}

static void lmdb_die(const char *what, int rc)
{
	printf("SMVM: error: %s: %s\n", what, mdb_strerror(rc));
	exit(1);
}

static MDB_env *open_env(const char *dir, unsigned flags, int *rc_out)
{
	MDB_env *env;
	int rc = mdb_env_create(&env);

	if (rc == 0)
		rc = mdb_env_set_mapsize(env, MAPSIZE);
	if (rc == 0)
		rc = mdb_env_open(env, dir, flags, 0644);
	if (rc != 0) {
		if (rc_out == NULL)
			lmdb_die("mdb_env_open", rc);
		*rc_out = rc;
		mdb_env_close(env);
		return NULL;
	}
	return env;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static const char *mode_name(int m)
{
	return m == PT_KERNEL ? "KERNEL" : m == PT_FAULT ? "FAULT" : "NONE";
}

static void commit_one(MDB_env *env, uint64_t seed, uint64_t t)
{
	static unsigned char val[VR_MAX_LEN];
	char kb[48], count[24];
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
		lmdb_die("mdb_txn_begin", rc);
	for (unsigned j = 0; j < puts_of(seed, t); j++) {
		MDB_val k = key_of(seed, t, j, kb), v = {vr_fill(seed, rec_of(t, j), 0, val), val};

		if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
			lmdb_die("mdb_put", rc);
	}
	{
		MDB_val k = {sizeof(META_KEY) - 1, META_KEY},
			v = {(size_t)snprintf(count, sizeof(count), "%" PRIu64, t + 1), count};

		if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
			lmdb_die("mdb_put", rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		lmdb_die("mdb_txn_commit", rc);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmd_write(int argc, char **argv)
{
	static const char *const keys[] = {"dir",   "seed",  "txns", "nosync", "mode",	 "tag",
					   "crash", "stage", "mark", "lead",   "follow", NULL};
	struct au_plan plan = au_plan_args(argc, argv, MAX_TXNS, MARK_RUN);
	const char *dir = au_arg(argc, argv, "dir", NULL), *tag = plan.tag, *stage = plan.stage;
	const char *want = au_arg(argc, argv, "mode", NULL);
	uint64_t seed = plan.seed;
	long n = au_num(argc, argv, "txns", 0, 1, MAX_TXNS);
	unsigned flags = MDB_WRITEMAP | (au_num(argc, argv, "nosync", 0, 0, 1) ? MDB_NOSYNC : 0);
	MDB_env *env;
	int mode;

	au_check_keys(argc, argv, keys);
	if (dir == NULL || n == 0 || (strcmp(stage, "acked") != 0 && strcmp(stage, "timer") != 0)) {
		fprintf(stderr, "usage: lmdb-crash write dir=DIR seed=S txns=N [...]\n");
		return 2;
	}
	au_plan_start(&plan);
	env = open_env(dir, flags, NULL);
	/* The environment's files exist before the first commit: a check that
	 * cannot open it later counts a loss, not a set-up artefact. */
	if (fsync_dir(dir) != 0)
		au_die(dir);
	mode = pt_mode(pt_find_map("/data.mdb"));
	printf("SMVM: start %s mode=%s flags=%s\n", tag, mode_name(mode),
	       flags & MDB_NOSYNC ? "WRITEMAP|NOSYNC" : "WRITEMAP");
	if (want != NULL && strcmp(want, mode_name(mode)) != 0) {
		printf("SMVM: error: %s wanted mode %s, got %s\n", tag, want, mode_name(mode));
		return 1;
	}
	for (long t = 0; t < n; t++) {
		uint64_t t0;

		au_before(&plan, t);
		t0 = now_ns();
		au_inside = 1;
		commit_one(env, seed, (uint64_t)t);
		au_inside = 0;
		plan.spent += now_ns() - t0;
		au_acked(&plan, t + 1);
	}
	au_done(&plan, n);
}

struct tally {
	uint64_t seed, bad, meta, seen;
	int have_meta;
	unsigned char present[MAX_TXNS];
};

/* One record: is it one that was written, with its bytes? */
static void tally_one(struct tally *y, const MDB_val *k, const MDB_val *v)
{
	char kb[48], want[48];
	uint64_t h, t;
	unsigned j;

	y->seen++;
	if (k->mv_size == sizeof(META_KEY) - 1 && memcmp(k->mv_data, META_KEY, k->mv_size) == 0) {
		snprintf(kb, sizeof(kb), "%.*s", (int)(v->mv_size < 40 ? v->mv_size : 40),
			 (char *)v->mv_data);
		y->meta = strtoull(kb, NULL, 10);
		y->have_meta = 1;
		return;
	}
	snprintf(kb, sizeof(kb), "%.*s", (int)(k->mv_size < 47 ? k->mv_size : 47), (char *)k->mv_data);
	if (sscanf(kb, "%16" SCNx64 "-%6" SCNu64 "-%2u", &h, &t, &j) != 3 || t >= MAX_TXNS ||
	    j >= puts_of(y->seed, t) || key_of(y->seed, t, j, want).mv_size != k->mv_size ||
	    memcmp(want, kb, k->mv_size) != 0 ||
	    !vr_match(y->seed, rec_of(t, j), 0, v->mv_data, v->mv_size)) {
		y->bad++;
		return;
	}
	y->present[t]++;
}

/* LMDB could not read what it opened (its error rc, or the signal sig that
 * killed the reader): everything is lost.  The process ends right after;
 * the environment is left to the exit. */
static int corrupt(const char *tag, uint64_t acked, int rc, int sig)
{
	char what[24];

	if (sig != 0)
		snprintf(what, sizeof(what), "sig%d", sig);
	else
		snprintf(what, sizeof(what), "%d", rc);
	printf("SMVM: result %s acked=%" PRIu64 " found=0 lost=%" PRIu64
	       " bad=0 torn=0 entries=0 missing=0 open=0 corrupt=%s\n",
	       tag, acked, acked, what);
	printf("SMVM: note: %s: %s\n", tag, sig != 0 ? strsignal(sig) : mdb_strerror(rc));
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	static const char *const keys[] = {"dir", "seed", "acked", "tag", NULL};
	static struct tally y;
	const char *dir = au_arg(argc, argv, "dir", NULL), *tag = au_arg(argc, argv, "tag", "case");
	uint64_t acked = (uint64_t)au_num(argc, argv, "acked", 0, 0, MAX_TXNS), found = 0, torn = 0,
		 entries = 0;
	int rc = 0;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_stat st;

	au_check_keys(argc, argv, keys);
	if (dir == NULL)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	y.seed = strtoull(au_arg(argc, argv, "seed", "1"), NULL, 0);
	env = open_env(dir, MDB_WRITEMAP, &rc);
	if (env == NULL) {
		/* The environment was created before the first commit: one that
		 * does not open lost everything. */
		printf("SMVM: result %s acked=%" PRIu64 " found=0 lost=%" PRIu64
		       " bad=0 torn=0 entries=0 missing=1 open=%d corrupt=0\n",
		       tag, acked, acked, rc);
		return 0;
	}
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0)
		return corrupt(tag, acked, rc, 0);
	if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 || (rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
		return corrupt(tag, acked, rc, 0);
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
		tally_one(&y, &k, &v);
	if (rc != MDB_NOTFOUND || (rc = mdb_stat(txn, dbi, &st)) != 0)
		return corrupt(tag, acked, rc, 0);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);

	while (found < MAX_TXNS && y.present[found] == puts_of(y.seed, found))
		found++;
	for (uint64_t t = 0; t < MAX_TXNS; t++) {
		torn += y.present[t] != 0 && y.present[t] != puts_of(y.seed, t);
		if (t > found && y.present[t] == puts_of(y.seed, t))
			y.bad++; /* a whole transaction after a missing one */
		if (t < found)
			entries += puts_of(y.seed, t);
	}
	entries += found > 0;
	if (y.have_meta != (found > 0) || (found > 0 && y.meta != found))
		y.bad++;
	if (st.ms_entries != y.seen)
		y.bad++; /* LMDB's own count disagrees with what the cursor saw */
	printf("SMVM: result %s acked=%" PRIu64 " found=%" PRIu64 " lost=%" PRIu64 " bad=%" PRIu64
	       " torn=%" PRIu64 " entries=%" PRIu64 " missing=0 open=0 corrupt=0\n",
	       tag, acked, found, acked > found ? acked - found : 0, y.bad, torn, entries);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "write"))
		return cmd_write(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "check")) {
		/* The reading is done by a child, so that a crash inside LMDB is
		 * reported as what it is: an environment it cannot read. */
		pid_t pid;
		int st;

		fflush(stdout);
		pid = fork();
		if (pid == 0)
			exit(cmd_check(argc - 2, argv + 2));
		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			au_die("fork");
		if (WIFSIGNALED(st))
			return corrupt(au_arg(argc - 2, argv + 2, "tag", "case"),
				       (uint64_t)au_num(argc - 2, argv + 2, "acked", 0, 0, MAX_TXNS), 0,
				       WTERMSIG(st));
		return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	fprintf(stderr, "usage: lmdb-crash write|check KEY=VALUE...\n");
	return 2;
}
