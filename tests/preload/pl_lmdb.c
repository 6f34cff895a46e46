/* SPDX-License-Identifier: MIT */
/* pl_lmdb.c -- LMDB with MDB_WRITEMAP (pages written in place through a shared mapping), run under the shim
 *
 *   pl_lmdb write  DIR N        N records in transactions of 500, then overwrites and deletes
 *   pl_lmdb verify DIR N [ro]   every record as write left it (ro: open MDB_RDONLY, no WRITEMAP)
 *   pl_lmdb bench  DIR TXNS PUTS SIZE   durable commits of PUTS records of SIZE bytes; prints the rate
 */
#include "ptest.h"

#include <lmdb.h>
#include <time.h>

#define MAPSIZE ((size_t)256 << 20)
#define BATCH 500

#define MDB_OK(call)                                                   \
	do {                                                           \
		int rc_ = (call);                                      \
		REQUIRE(rc_ == 0, "%s: %s", #call, mdb_strerror(rc_)); \
	} while (0)

/* Record i of generation gen: 20 to 919 bytes, contents fixed by (i, gen). */
static size_t make_val(unsigned i, unsigned gen, char *buf)
{
	size_t len = 20 + (i * 37u) % 900;

	for (size_t k = 0; k < len; k++)
		buf[k] = (char)pt_byte(k + i, gen * 131 + 7);
	return len;
}

static MDB_val key_of(unsigned i, char *buf)
{
	MDB_val k = {(size_t)snprintf(buf, 32, "key-%08u", i), buf};

	return k;
}

static MDB_env *open_env(const char *dir, unsigned flags)
{
	MDB_env *env;

	MDB_OK(mdb_env_create(&env));
	MDB_OK(mdb_env_set_mapsize(env, MAPSIZE));
	MDB_OK(mdb_env_open(env, dir, flags, 0644));
	return env;
}

static void put_range(MDB_env *env, unsigned from, unsigned to, unsigned gen)
{
	char kb[32], vb[1024];
	MDB_txn *txn;
	MDB_dbi dbi;

	MDB_OK(mdb_txn_begin(env, NULL, 0, &txn));
	MDB_OK(mdb_dbi_open(txn, NULL, 0, &dbi));
	for (unsigned i = from; i < to; i++) {
		MDB_val k = key_of(i, kb), v = {make_val(i, gen, vb), vb}, got;

		MDB_OK(mdb_put(txn, dbi, &k, &v, 0));
		/* Read it back inside the transaction, from the page just written. */
		MDB_OK(mdb_get(txn, dbi, &k, &got));
		CHECK(got.mv_size == v.mv_size && memcmp(got.mv_data, vb, v.mv_size) == 0, "get after put %u",
		      i);
	}
	MDB_OK(mdb_txn_commit(txn));
}

static void del_every(MDB_env *env, unsigned n, unsigned step)
{
	char kb[32];
	MDB_txn *txn;
	MDB_dbi dbi;

	MDB_OK(mdb_txn_begin(env, NULL, 0, &txn));
	MDB_OK(mdb_dbi_open(txn, NULL, 0, &dbi));
	for (unsigned i = 0; i < n; i += step) {
		MDB_val k = key_of(i, kb);

		MDB_OK(mdb_del(txn, dbi, &k, NULL));
	}
	MDB_OK(mdb_txn_commit(txn));
}

/* What write leaves: every 7th record deleted, every 3rd rewritten. */
static int present(unsigned i)
{
	return i % 7 != 0;
}

static unsigned gen_of(unsigned i)
{
	return i % 3 == 0 ? 1 : 0;
}

static int do_write(const char *dir, unsigned n)
{
	MDB_env *env = open_env(dir, MDB_WRITEMAP);
	void *map = pt_find_map("/data.mdb");
	MDB_stat st;

	REQUIRE(map != NULL && pt_mode(map) == PT_FAULT, "the shim did not take LMDB's map (mode %d)",
		pt_mode(map));
	for (unsigned i = 0; i < n; i += BATCH)
		put_range(env, i, i + BATCH < n ? i + BATCH : n, 0);
	for (unsigned i = 0; i < n; i += 3)
		put_range(env, i, i + 1, 1);
	del_every(env, n, 7);
	MDB_OK(mdb_env_stat(env, &st));
	pt_note("wrote %u records with MDB_WRITEMAP: %zu entries, depth %u, %zu leaf pages", n, st.ms_entries,
		st.ms_depth, st.ms_leaf_pages);
	mdb_env_close(env);
	return pt_done("pl_lmdb write");
}

static int do_verify(const char *dir, unsigned n, int ro)
{
	MDB_env *env = open_env(dir, ro ? MDB_RDONLY : MDB_WRITEMAP);
	unsigned seen = 0, want = 0;
	char vb[1024];
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	MDB_OK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	MDB_OK(mdb_dbi_open(txn, NULL, 0, &dbi));
	MDB_OK(mdb_cursor_open(txn, dbi, &cur));
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		unsigned i;
		size_t len;

		REQUIRE(k.mv_size == 12 && sscanf(k.mv_data, "key-%8u", &i) == 1, "bad key");
		len = make_val(i, gen_of(i), vb);
		CHECK(present(i), "record %u should be deleted", i);
		CHECK(v.mv_size == len && memcmp(v.mv_data, vb, len) == 0, "record %u differs", i);
		seen++;
	}
	CHECK(rc == MDB_NOTFOUND, "cursor: %s", mdb_strerror(rc));
	for (unsigned i = 0; i < n; i++)
		want += present(i);
	CHECK(seen == want, "%u records, want %u", seen, want);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	pt_note("verified %u records (%s)", seen, ro ? "MDB_RDONLY" : "MDB_WRITEMAP");
	return pt_done("pl_lmdb verify");
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The write workload of the benchmark: keys spread over the tree (a
 * multiplicative hash of the sequence number), each commit durable. */
static int do_bench(const char *dir, unsigned txns, unsigned puts, unsigned size)
{
	MDB_env *env = open_env(dir, MDB_WRITEMAP);
	char kb[32], vb[4096];
	double t0 = now(), dt;
	MDB_dbi dbi;

	REQUIRE(size <= sizeof(vb), "SIZE at most %zu", sizeof(vb));
	for (unsigned t = 0; t < txns; t++) {
		MDB_txn *txn;

		MDB_OK(mdb_txn_begin(env, NULL, 0, &txn));
		MDB_OK(mdb_dbi_open(txn, NULL, 0, &dbi));
		for (unsigned j = 0; j < puts; j++) {
			unsigned i = (t * puts + j) * 2654435761u;
			MDB_val k = key_of(i, kb), v = {size, vb};

			memset(vb, (int)(i & 0xff), size);
			MDB_OK(mdb_put(txn, dbi, &k, &v, 0));
		}
		MDB_OK(mdb_txn_commit(txn));
	}
	dt = now() - t0;
	mdb_env_close(env);
	printf("bench: %u commits of %u x %u B in %.3f s: %.1f us/commit, %.0f puts/s\n", txns, puts, size,
	       dt, dt * 1e6 / txns, (double)txns * puts / dt);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "write") == 0)
		return do_write(argv[2], (unsigned)atoi(argv[3]));
	if (argc >= 4 && strcmp(argv[1], "verify") == 0)
		return do_verify(argv[2], (unsigned)atoi(argv[3]), argc > 4 && strcmp(argv[4], "ro") == 0);
	if (argc == 6 && strcmp(argv[1], "bench") == 0)
		return do_bench(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
				(unsigned)atoi(argv[5]));
	fprintf(stderr, "usage: %s write DIR N | verify DIR N [ro] | bench DIR TXNS PUTS SIZE\n", argv[0]);
	return 2;
}
