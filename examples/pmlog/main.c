/* SPDX-License-Identifier: MIT */
/* main.c -- the pmlog command: append lines, dump records, measure appends */
#include "pmlog.h"

#include <syncmap.h>

#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
	"usage: pmlog append [-c CHUNK] [--fsync] FILE     append the lines of stdin, one record each\n"
	"       pmlog dump [-v] FILE                       print the valid records, one per line\n"
	"       pmlog bench [-n RECORDS] [-s BYTES] [-t SECONDS] [-b BATCH] [-c CHUNK] [--fsync] FILE\n"
	"                                                  append records and report records/s, p50/p99\n"
	"\n"
	"  -c, --chunk BYTES    grow the file by this much at a time (default 1m; k/m/g suffixes)\n"
	"      --fsync          pwrite + fdatasync instead of libsyncmap (the baseline)\n"
	"  -v, --verbose        dump: index, offset, length and CRC before each record\n"
	"  -n, --records N      bench: at most N appends (default 100000)\n"
	"  -s, --size BYTES     bench: record size (default 128)\n"
	"  -t, --time SECONDS   bench: stop after this long (default 5)\n"
	"  -b, --batch N        bench: records per append call (default 1)\n"
	"\n"
	"Each append is durable when pmlog returns (append) or before the next one\n"
	"starts (bench).  Opening a log for append recovers it: records are kept up\n"
	"to the first torn one, and what follows is zeroed.  See pmlog(1).\n";

enum { OPT_FSYNC = 1000 };

static const struct option long_opts[] = {
	{"chunk", required_argument, NULL, 'c'},
	{"fsync", no_argument, NULL, OPT_FSYNC},
	{"verbose", no_argument, NULL, 'v'},
	{"records", required_argument, NULL, 'n'},
	{"size", required_argument, NULL, 's'},
	{"time", required_argument, NULL, 't'},
	{"batch", required_argument, NULL, 'b'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct args {
	struct pmlog_opts o;
	int verbose;
	uint64_t records;
	size_t size, batch;
	double seconds;
	const char *file;
};

static int bad_arg(const char *what, const char *val)
{
	fprintf(stderr, "pmlog: invalid %s '%s'\n", what, val);
	return -1;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	int c;

	memset(a, 0, sizeof(*a));
	a->records = 100000;
	a->size = 128;
	a->batch = 1;
	a->seconds = 5;
	a->o.create = 1;
	while ((c = getopt_long(argc, argv, "c:vn:s:t:b:h", long_opts, NULL)) != -1) {
		size_t v;
		char *end;

		switch (c) {
		case 'c':
			if (ex_parse_size(optarg, &a->o.chunk) != 0 || a->o.chunk == 0)
				return bad_arg("chunk size", optarg);
			break;
		case OPT_FSYNC: a->o.backend = PMLOG_FSYNC; break;
		case 'v': a->verbose = 1; break;
		case 'n':
			if (ex_parse_size(optarg, &v) != 0 || v == 0)
				return bad_arg("record count", optarg);
			a->records = v;
			break;
		case 's':
			if (ex_parse_size(optarg, &a->size) != 0 || a->size > PMLOG_MAX_RECORD)
				return bad_arg("record size", optarg);
			break;
		case 'b':
			if (ex_parse_size(optarg, &a->batch) != 0 || a->batch == 0 || a->batch > 4096)
				return bad_arg("batch (1..4096)", optarg);
			break;
		case 't':
			a->seconds = strtod(optarg, &end);
			if (*end != '\0' || !(a->seconds > 0))
				return bad_arg("time", optarg);
			break;
		case 'h': fputs(usage, stdout); exit(0);
		default: fputs(usage, stderr); return -1;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return -1;
	}
	a->file = argv[optind];
	return 0;
}

static struct pmlog *open_log(const struct args *a)
{
	char err[512];
	struct pmlog *l = pmlog_open(a->file, &a->o, err, sizeof(err));
	enum pmlog_stop why;
	size_t torn;

	if (l == NULL) {
		fprintf(stderr, "pmlog: %s\n", err);
		return NULL;
	}
	torn = pmlog_torn(l, &why);
	if (torn > 0)
		fprintf(stderr, "pmlog: %s: %" PRIu64 " valid records; %s %zu bytes after them (%s)\n",
			a->file, pmlog_count(l), a->o.readonly ? "ignoring" : "zeroed", torn,
			pmlog_stop_str(why));
	return l;
}

static int cmd_append(const struct args *a)
{
	struct pmlog *l = open_log(a);
	char *line = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;
	int rc = 0;

	if (l == NULL)
		return 1;
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (pmlog_append(l, line, (size_t)len) != 0) {
			if (errno == EMSGSIZE)
				fprintf(stderr,
					"pmlog: %s: line %zu: %zd bytes, more than a record holds (%u)\n",
					a->file, n + 1, len, PMLOG_MAX_RECORD);
			else
				fprintf(stderr, "pmlog: %s: line %zu: %s\n", a->file, n + 1, strerror(errno));
			rc = 1;
			break;
		}
		n++;
	}
	if (rc == 0 && ferror(stdin)) {
		fprintf(stderr, "pmlog: reading stdin: %s\n", strerror(errno));
		rc = 1;
	}
	free(line);
	fprintf(stderr, "pmlog: %s: appended %zu records (%s, persist by %s); %" PRIu64 " in the log\n",
		a->file, n, pmlog_mode_name(l), pmlog_persist_name(l), pmlog_count(l));
	if (pmlog_close(l) != 0) {
		fprintf(stderr, "pmlog: %s: close: %s\n", a->file, strerror(errno));
		rc = 1;
	}
	return rc;
}

static void print_rec(void *arg, uint64_t idx, size_t off, const void *data, uint32_t len)
{
	const struct args *a = arg;

	if (a->verbose) {
		uint32_t crc;

		memcpy(&crc, (const char *)data - 4, 4);
		printf("#%" PRIu64 " off %zu len %u crc %08x: ", idx, off, len, crc);
	}
	fwrite(data, 1, len, stdout);
	putchar('\n');
}

static int cmd_dump(struct args *a)
{
	struct pmlog *l;
	int rc = 0;

	a->o.readonly = 1;
	a->o.create = 0;
	l = open_log(a);
	if (l == NULL)
		return 1;
	if (pmlog_foreach(l, print_rec, a) != 0) {
		fprintf(stderr, "pmlog: %s: %s\n", a->file, strerror(errno));
		rc = 1;
	}
	if (fflush(stdout) != 0)
		rc = 1;
	pmlog_close(l);
	return rc;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Record i: a recognisable pattern, different for every record. */
static void fill(char *buf, size_t size, uint64_t i)
{
	for (size_t k = 0; k < size; k++)
		buf[k] = (char)('a' + (i + k) % 26);
}

static int bench_run(const struct args *a, struct pmlog *l, uint64_t *lat, uint64_t *done_out, double *secs)
{
	size_t b = a->batch;
	char *data = malloc(a->size * b + 1);
	struct iovec *iov = calloc(b, sizeof(*iov));
	uint64_t t0 = now_ns(), limit = (uint64_t)(a->seconds * 1e9), done = 0, calls = 0;
	int rc = 0;

	if (data == NULL || iov == NULL) {
		fprintf(stderr, "pmlog: out of memory\n");
		rc = -1;
	}
	while (rc == 0 && done < a->records && now_ns() - t0 < limit) {
		size_t n = a->records - done < b ? (size_t)(a->records - done) : b;
		uint64_t s;

		for (size_t k = 0; k < n; k++) {
			fill(data + k * a->size, a->size, done + k);
			iov[k].iov_base = data + k * a->size;
			iov[k].iov_len = a->size;
		}
		s = now_ns();
		if (pmlog_append_many(l, iov, n) != 0) {
			fprintf(stderr, "pmlog: %s: append: %s\n", a->file, strerror(errno));
			rc = -1;
			break;
		}
		lat[calls++] = now_ns() - s;
		done += n;
	}
	*secs = (double)(now_ns() - t0) / 1e9;
	*done_out = done;
	free(data);
	free(iov);
	return rc == 0 ? (int)calls : -1;
}

static int cmd_bench(const struct args *a)
{
	struct syncmap_stats s0, s1;
	struct pmlog *l = open_log(a);
	uint64_t *lat, done = 0, before;
	double secs = 0;
	int calls;

	if (l == NULL)
		return 1;
	lat = malloc((size_t)(a->records / a->batch + 1) * sizeof(*lat));
	if (lat == NULL) {
		fprintf(stderr, "pmlog: out of memory for %" PRIu64 " latencies\n", a->records);
		pmlog_close(l);
		return 1;
	}
	before = pmlog_count(l);
	syncmap_stats_get(&s0);
	calls = bench_run(a, l, lat, &done, &secs);
	syncmap_stats_get(&s1);
	if (calls > 0) {
		qsort(lat, (size_t)calls, sizeof(*lat), ex_cmp_u64);
		printf("pmlog bench: %s\n", a->file);
		printf("  mode      %s, persist by %s\n", pmlog_mode_name(l), pmlog_persist_name(l));
		printf("  appended  %" PRIu64 " records of %zu bytes in %.2f s (batch %zu; log had %" PRIu64
		       ", now %" PRIu64 ")\n",
		       done, a->size, secs, a->batch, before, pmlog_count(l));
		printf("  rate      %.0f records/s, %.2f MB/s of payload\n", (double)done / secs,
		       (double)done * (double)a->size / secs / 1e6);
		printf("  latency   p50 %.1f us, p99 %.1f us, max %.1f us per append call\n",
		       ex_pct_us(lat, (size_t)calls, 50), ex_pct_us(lat, (size_t)calls, 99),
		       (double)lat[calls - 1] / 1000.0);
		printf("  syncmap   %" PRIu64 " write faults, %" PRIu64 " syncs, %" PRIu64
		       " grains readied ahead, %" PRIu64 " errors\n",
		       s1.faults - s0.faults, s1.syncs - s0.syncs, s1.presync_grains - s0.presync_grains,
		       s1.errors - s0.errors);
	}
	free(lat);
	if (pmlog_close(l) != 0) {
		fprintf(stderr, "pmlog: %s: close: %s\n", a->file, strerror(errno));
		return 1;
	}
	return calls > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct args a;
	const char *cmd;

	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("pmlog (libsyncmap) %s\n", syncmap_version_string());
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	cmd = argv[1];
	if (parse_args(argc - 1, argv + 1, &a) != 0)
		return 2;
	if (strcmp(cmd, "append") == 0)
		return cmd_append(&a);
	if (strcmp(cmd, "dump") == 0)
		return cmd_dump(&a);
	if (strcmp(cmd, "bench") == 0)
		return cmd_bench(&a);
	fprintf(stderr, "pmlog: unknown command '%s'\n", cmd);
	fputs(usage, stderr);
	return 2;
}
