/* SPDX-License-Identifier: MIT */
/* test_pmlog.c -- pmlog: round trip, torn tails, growth by remapping, crash images, ENOSPC */
#include "helpers.h"
#include "pmlog.h"

#include <syncmap.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static struct loopfs fs, copy;
static char dir[PATH_MAX];

static void cleanup(void)
{
	loopfs_done(&copy);
	loopfs_done(&fs);
	remove_tree(dir);
}

TestSuite(pmlog, .fini = cleanup);

/* A private directory on tmpfs for the tests that need no particular fs. */
static const char *shm_dir(void)
{
	cr_assert_not_null(scratch_dir(dir, sizeof(dir), "/dev/shm", "pmlog-test"));
	return dir;
}

static void path_in(char *out, const char *d, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", d, name);
}

/* Run a shell command; its exit status. */
static int sh(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void spew(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* Records collected by pmlog_foreach. */
struct recs {
	size_t n;
	char *data[4096];
	uint32_t len[4096];
};

static void collect(void *arg, uint64_t idx, size_t off, const void *data, uint32_t len)
{
	struct recs *r = arg;

	(void)off;
	cr_assert_eq(idx, r->n);
	cr_assert_lt(r->n, 4096);
	r->data[r->n] = malloc(len + 1);
	memcpy(r->data[r->n], data, len);
	r->len[r->n++] = len;
}

static void recs_free(struct recs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->data[i]);
	r->n = 0;
}

static struct pmlog *open_rw(const char *path, size_t chunk)
{
	struct pmlog_opts o = {.create = 1, .chunk = chunk};
	char err[256];
	struct pmlog *l = pmlog_open(path, &o, err, sizeof(err));

	cr_assert_not_null(l, "pmlog_open: %s", err);
	return l;
}

static void read_all(const char *path, struct recs *r)
{
	struct pmlog_opts o = {.readonly = 1};
	char err[256];
	struct pmlog *l = pmlog_open(path, &o, err, sizeof(err));

	cr_assert_not_null(l, "pmlog_open(readonly): %s", err);
	r->n = 0;
	cr_assert_eq(pmlog_foreach(l, collect, r), 0);
	cr_assert_eq(pmlog_count(l), r->n);
	pmlog_close(l);
}

/* Record i of the tests' logs: length and bytes both depend on i. */
static size_t rec_len(size_t i)
{
	return (i * 7919) % 1500 + (i % 3 == 0 ? 0 : 1);
}

static void rec_fill(char *buf, size_t i)
{
	for (size_t k = 0; k < rec_len(i); k++)
		buf[k] = (char)(i * 131 + k * 7);
}

static void append_n(struct pmlog *l, size_t from, size_t n)
{
	char buf[2048];

	for (size_t i = from; i < from + n; i++) {
		rec_fill(buf, i);
		cr_assert_eq(pmlog_append(l, buf, rec_len(i)), 0, "append %zu: %s", i, strerror(errno));
	}
}

static void expect_recs(const char *path, size_t n)
{
	struct recs r;
	char buf[2048];

	read_all(path, &r);
	cr_assert_eq(r.n, n, "%s: %zu records, expected %zu", path, r.n, n);
	for (size_t i = 0; i < n; i++) {
		rec_fill(buf, i);
		cr_assert_eq(r.len[i], rec_len(i), "record %zu: length %u", i, r.len[i]);
		cr_assert(memcmp(r.data[i], buf, rec_len(i)) == 0, "record %zu differs", i);
	}
	recs_free(&r);
}

Test(pmlog, roundtrip_cli)
{
	const char *d = shm_dir();
	char log[PATH_MAX], in[PATH_MAX], out[PATH_MAX], *a, *b, big[100001];
	size_t alen, blen;
	FILE *f;

	path_in(log, d, "rt.pmlog");
	path_in(in, d, "in.txt");
	path_in(out, d, "out.txt");
	f = fopen(in, "wb");
	cr_assert_not_null(f);
	fputs("first line\n\n  spaces  \ttab\n", f);
	fputs("bytes \x01\x7f\xc3\xa9\xff end\n", f);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fprintf(f, "%s\n", big);
	fclose(f);
	/* Two runs: the second one opens, recovers and appends to the first's log. */
	cr_assert_eq(sh("'%s' append '%s' < '%s'", PMLOG_BIN, log, in), 0);
	cr_assert_eq(sh("printf 'after reopen\\nno newline at the end' | '%s' append '%s'", PMLOG_BIN, log),
		     0);
	cr_assert_eq(sh("'%s' dump '%s' > '%s'", PMLOG_BIN, log, out), 0);
	f = fopen(in, "ab");
	fputs("after reopen\nno newline at the end\n", f);
	fclose(f);
	a = slurp(in, &alen);
	b = slurp(out, &blen);
	cr_assert_eq(blen, alen, "dump gave %zu bytes, expected %zu", blen, alen);
	cr_assert(memcmp(a, b, alen) == 0, "dump differs from the lines appended");
	free(a);
	free(b);
}

/* Ten records, then damage to the last one by `damage`; recovery must keep
 * nine, dump must leave the file alone, append must continue after nine. */
static void torn_case(void (*damage)(const char *path, size_t last_off, size_t last_len), const char *why)
{
	const char *d = shm_dir();
	char log[PATH_MAX], out[PATH_MAX], err[PATH_MAX], *before, *after, *msg;
	size_t last_off, blen, alen, mlen;
	struct pmlog *l;
	struct stat st;

	path_in(log, d, "torn.pmlog");
	path_in(out, d, "dump.txt");
	path_in(err, d, "dump.err");
	l = open_rw(log, 0);
	append_n(l, 0, 9);
	last_off = pmlog_tail(l);
	append_n(l, 9, 1);
	pmlog_close(l);
	damage(log, last_off, rec_len(9));

	before = slurp(log, &blen);
	cr_assert_eq(sh("'%s' dump '%s' > '%s' 2> '%s'", PMLOG_BIN, log, out, err), 0);
	after = slurp(log, &alen);
	cr_assert(blen == alen && memcmp(before, after, blen) == 0, "dump changed the file");
	msg = slurp(err, &mlen);
	msg = realloc(msg, mlen + 1);
	msg[mlen] = '\0';
	cr_assert(strstr(msg, "9 valid records") && strstr(msg, why), "dump's report: %s", msg);
	free(msg);
	expect_recs(log, 9);

	/* Append goes on right after record 8, over the torn bytes. */
	l = open_rw(log, 0);
	cr_assert_eq(pmlog_count(l), 9);
	cr_assert_eq(pmlog_tail(l), last_off);
	cr_assert_gt(pmlog_torn(l, NULL), 0);
	append_n(l, 9, 3);
	/* Everything past the tail is zero again. */
	cr_assert_eq(pmlog_nonzero_end(pmlog_base(l), pmlog_tail(l), pmlog_size(l)), pmlog_tail(l));
	pmlog_close(l);
	expect_recs(log, 12);
	cr_assert_eq(stat(log, &st), 0);
	free(before);
	free(after);
}

static void cut_last(const char *path, size_t off, size_t len)
{
	/* Cut the file in the middle of the last record's data. */
	cr_assert_eq(truncate(path, (off_t)(off + PMLOG_REC_HDR + len / 2)), 0);
}

static void flip_data(const char *path, size_t off, size_t len)
{
	int fd = open(path, O_RDWR);
	unsigned char c;
	off_t at = (off_t)(off + PMLOG_REC_HDR + len / 2);

	cr_assert(len > 0);
	cr_assert_eq(pread(fd, &c, 1, at), 1);
	c ^= 0x20;
	cr_assert_eq(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

static void zero_commit(const char *path, size_t off, size_t len)
{
	int fd = open(path, O_RDWR);
	uint64_t z = 0;

	cr_assert_eq(pwrite(fd, &z, 8, (off_t)(off + pmlog_commit_off(len))), 8);
	close(fd);
}

Test(pmlog, torn_tail_truncated_file)
{
	torn_case(cut_last, "runs past the end");
}

Test(pmlog, torn_tail_bad_crc)
{
	torn_case(flip_data, "fails its CRC");
}

Test(pmlog, torn_tail_no_commit_word)
{
	torn_case(zero_commit, "without its commit word");
}

Test(pmlog, junk_past_the_tail_is_zeroed)
{
	const char *d = shm_dir();
	char log[PATH_MAX];
	struct pmlog *l;
	size_t tail, size;
	int fd;

	path_in(log, d, "junk.pmlog");
	l = open_rw(log, 0);
	append_n(l, 0, 5);
	tail = pmlog_tail(l);
	size = pmlog_size(l);
	pmlog_close(l);
	fd = open(log, O_RDWR);
	cr_assert_eq(pwrite(fd, "junk", 4, (off_t)(size - 100)), 4);
	close(fd);
	l = open_rw(log, 0);
	cr_assert_eq(pmlog_count(l), 5);
	cr_assert_eq(pmlog_tail(l), tail);
	cr_assert_eq(pmlog_torn(l, NULL), size - 96 - tail, "torn bytes: up to the junk's end");
	cr_assert_eq(pmlog_nonzero_end(pmlog_base(l), tail, size), tail, "junk not zeroed");
	pmlog_close(l);
	expect_recs(log, 5);
}

/* Many records through a small chunk: the file grows and is remapped over
 * and over; every record must read back, after reopening too. */
static void growth(const char *d)
{
	const size_t chunk = 64 * 1024;
	char log[PATH_MAX];
	struct pmlog *l;
	size_t grew = 0, last = 0, n = 2000;

	path_in(log, d, "grow.pmlog");
	l = open_rw(log, chunk);
	cr_assert_eq(syncmap_mode(pmlog_base(l)), SYNCMAP_MODE_FAULT, "mode %d", syncmap_mode(pmlog_base(l)));
	for (size_t i = 0; i < n; i++) {
		append_n(l, i, 1);
		cr_assert_eq(pmlog_size(l) % chunk, 0, "size %zu", pmlog_size(l));
		cr_assert_geq(pmlog_size(l), pmlog_tail(l));
		grew += pmlog_size(l) != last && last != 0;
		last = pmlog_size(l);
	}
	cr_assert_geq(grew, 10, "the file grew only %zu times", grew);
	cr_assert_eq(syncmap_mode(pmlog_base(l)), SYNCMAP_MODE_FAULT);
	cr_assert_eq(pmlog_close(l), 0);
	expect_recs(log, n);
	/* And appends continue where the reopened log ends. */
	l = open_rw(log, chunk);
	cr_assert_eq(pmlog_count(l), n);
	append_n(l, n, 100);
	pmlog_close(l);
	expect_recs(log, n + 100);
}

Test(pmlog, growth_across_chunks_tmpfs)
{
	growth(shm_dir());
}

Test(pmlog, growth_across_chunks_ext4, .timeout = 120)
{
	LOOPFS_OR_SKIP(&fs, "ext4", 128, "");
	growth(fs.dir);
}

Test(pmlog, not_a_log_is_refused_untouched)
{
	const char *d = shm_dir();
	char path[PATH_MAX], errf[PATH_MAX], *a, *b, *msg;
	const char text[] = "this is somebody's text file\nnot a log\n";
	size_t alen, blen, mlen;

	path_in(path, d, "text.txt");
	path_in(errf, d, "err");
	spew(path, text, sizeof(text) - 1);
	cr_assert_neq(sh("echo x | '%s' append '%s' 2> '%s'", PMLOG_BIN, path, errf), 0);
	msg = slurp(errf, &mlen);
	msg = realloc(msg, mlen + 1);
	msg[mlen] = '\0';
	cr_assert(strstr(msg, path) && strstr(msg, "not a pmlog file"), "message: %s", msg);
	free(msg);
	cr_assert_neq(sh("'%s' dump '%s' > /dev/null 2>&1", PMLOG_BIN, path), 0);
	a = slurp(path, &alen);
	cr_assert_eq(alen, sizeof(text) - 1);
	cr_assert(memcmp(a, text, alen) == 0, "the file was changed");
	free(a);
	/* A missing file: named in the error, not created by dump. */
	path_in(path, d, "missing.pmlog");
	cr_assert_neq(sh("'%s' dump '%s' 2> '%s'", PMLOG_BIN, path, errf), 0);
	b = slurp(errf, &blen);
	b = realloc(b, blen + 1);
	b[blen] = '\0';
	cr_assert(strstr(b, path) && strstr(b, "No such file"), "message: %s", b);
	free(b);
	cr_assert_neq(access(path, F_OK), 0, "dump created the file");
}

Test(pmlog, oversized_record_is_refused)
{
	const char *d = shm_dir();
	char log[PATH_MAX];
	struct pmlog *l;
	char *big = calloc(1, PMLOG_MAX_RECORD + 1);
	size_t tail;

	path_in(log, d, "big.pmlog");
	l = open_rw(log, 0);
	append_n(l, 0, 3);
	tail = pmlog_tail(l);
	errno = 0;
	cr_assert_eq(pmlog_append(l, big, PMLOG_MAX_RECORD + 1), -1);
	cr_assert_eq(errno, EMSGSIZE);
	cr_assert_eq(pmlog_tail(l), tail);
	cr_assert_eq(pmlog_append(l, big, PMLOG_MAX_RECORD), 0, "the largest record fits");
	pmlog_close(l);
	free(big);
	l = open_rw(log, 0);
	cr_assert_eq(pmlog_count(l), 4);
	cr_assert_eq(pmlog_torn(l, NULL), 0);
	pmlog_close(l);
}

/* A loop device of our own, or skip: SYNCMAP_TEST_DIR gives a directory. */
static void loop_or_skip(unsigned mib, const char *opts)
{
	LOOPFS_OR_SKIP(&fs, "ext4", mib, opts);
	if (fs.own_dir || fs.dev[0] == '\0')
		cr_skip_test("needs a loop device of its own (SYNCMAP_TEST_DIR is set)");
}

/* The device as it is now, read with O_DIRECT past every cache: what a power
 * cut would leave.  Mounted (ext4 replays its journal) at copy.dir. */
static void crash_copy(void)
{
	char why[256];

	snprintf(copy.img, sizeof(copy.img), "/dev/shm/pmlog-crash-%d.img", (int)getpid());
	cr_assert_eq(sh("dd if='%s' of='%s' bs=1M iflag=direct conv=sparse status=none", fs.dev, copy.img), 0,
		     "copying %s", fs.dev);
	cr_assert_eq(loopfs_mount_image(&copy, copy.img, "", why, sizeof(why)), 0, "mount the copy: %s", why);
}

/*
 * Durability, not just visibility: append with the library, then copy the
 * loop device while the log is still open, mount the copy and read the log
 * there.  A file written with write(2) and no sync is the control:
 * if it survived, the copy could not tell durable from cached.
 */
static void crash_image(enum pmlog_backend backend)
{
	struct pmlog_opts o = {.create = 1, .backend = backend, .chunk = 256 * 1024};
	char log[PATH_MAX], ctl[PATH_MAX], why[256], buf[2048];
	struct pmlog *l;
	struct stat st;
	int cfd;

	loop_or_skip(128, "commit=60");
	path_in(log, fs.dir, "crash.pmlog");
	path_in(ctl, fs.dir, "control.txt");
	cfd = open(ctl, O_RDWR | O_CREAT, 0644);
	cr_assert_geq(cfd, 0);
	l = pmlog_open(log, &o, why, sizeof(why));
	cr_assert_not_null(l, "%s", why);
	memset(buf, 'c', sizeof(buf));
	for (int i = 0; i < 64; i++)
		cr_assert_eq(write(cfd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	append_n(l, 0, 500);

	crash_copy();
	pmlog_close(l);
	close(cfd);

	path_in(log, copy.dir, "crash.pmlog");
	expect_recs(log, 500);
	path_in(ctl, copy.dir, "control.txt");
	cr_assert(stat(ctl, &st) != 0 || st.st_size < 64 * (off_t)sizeof(buf),
		  "the unsynced control survived (%lld bytes): the copy proves nothing",
		  (long long)st.st_size);
}

Test(pmlog, crash_image_keeps_every_appended_record_syncmap, .timeout = 120)
{
	crash_image(PMLOG_SYNCMAP);
}

Test(pmlog, crash_image_keeps_every_appended_record_fsync, .timeout = 120)
{
	crash_image(PMLOG_FSYNC);
}

/* A full filesystem: append fails with ENOSPC (no SIGBUS), and the log keeps
 * every record appended before. */
Test(pmlog, enospc_is_an_error_not_a_crash, .timeout = 120)
{
	char log[PATH_MAX], fill[PATH_MAX], buf[2048];
	struct pmlog *l;
	size_t i;
	int rc = 0;

	loop_or_skip(16, "");
	path_in(log, fs.dir, "full.pmlog");
	path_in(fill, fs.dir, "filler");
	/* Leave about 2 MiB free. */
	cr_assert_eq(sh("fallocate -l $(( $(stat -f -c '%%a*%%S' '%s') - 2*1024*1024 )) '%s'", fs.dir, fill),
		     0);
	l = open_rw(log, 256 * 1024);
	for (i = 0; i < 100000; i++) {
		rec_fill(buf, i);
		rc = pmlog_append(l, buf, rec_len(i));
		if (rc != 0)
			break;
	}
	cr_assert_eq(rc, -1, "4 MiB and more appended to a filesystem with 2 MiB free");
	cr_assert(errno == ENOSPC, "errno %d (%s)", errno, strerror(errno));
	cr_assert_eq(pmlog_count(l), i);
	pmlog_close(l);
	expect_recs(log, i);
}

Test(pmlog, bench_cli_reports_mode_rate_latency)
{
	const char *d = shm_dir();
	char log[PATH_MAX], out[PATH_MAX], *text;
	size_t len;
	double rate = 0, p50 = 0, p99 = 0;
	char *at;

	path_in(log, d, "bench.pmlog");
	path_in(out, d, "bench.out");
	cr_assert_eq(sh("'%s' bench -n 3000 -s 100 -t 30 '%s' > '%s'", PMLOG_BIN, log, out), 0);
	text = slurp(out, &len);
	text = realloc(text, len + 1);
	text[len] = '\0';
	cr_assert_not_null(strstr(text, "mode      syncmap FAULT, persist by msync"), "%s", text);
	cr_assert_not_null(strstr(text, "appended  3000 records of 100 bytes"), "%s", text);
	at = strstr(text, "rate ");
	cr_assert(at && sscanf(at, "rate %lf records/s", &rate) == 1 && rate > 0, "%s", text);
	at = strstr(text, "latency ");
	cr_assert(at && sscanf(at, "latency p50 %lf us, p99 %lf us", &p50, &p99) == 2, "%s", text);
	cr_assert(p50 > 0 && p99 >= p50, "p50 %f p99 %f", p50, p99);
	free(text);
	cr_assert_eq(sh("'%s' dump '%s' | wc -l | grep -qx 3000", PMLOG_BIN, log), 0);
}
