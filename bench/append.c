/* SPDX-License-Identifier: MIT */
/* append.c -- a durable append log, four ways, side by side in one run
 *
 *   syncmap   syncmap_mmap + memcpy + syncmap_persist of the record
 *             (msync of its pages in FAULT mode on page cache; a CPU flush in
 *             KERNEL mode, or FAULT mode on DAX)
 *   msync     plain mmap(MAP_SHARED) + memcpy + msync(MS_SYNC) of its pages
 *   fdatasync write(2) at the tail + fdatasync
 *   dsync     pwrite(2) on an O_DSYNC descriptor
 *
 * Every record is durable when its append returns; the latency of each
 * append (copy + persist) is recorded.  Each method starts on a fresh
 * sparse file (the first write of every page allocates it).  With -T 2 two
 * threads append to one log, reserving records with an atomic tail.
 * -O adds an "overwrite" pass over an already written file for syncmap and
 * msync: after the first write, store + persist should cost what it costs on
 * a plain mapping.
 *
 * Next to the latencies: cpu, the CPU time of every thread of the process
 * (the library's pre-sync engine included) per record, from before the open
 * to after the close, so that map-time work and work on the other CPU count.
 *
 * -r ROUNDS repeats every (size, threads, pass) group, the methods in forward
 * order in odd rounds and reversed in even ones, and ends each group with a
 * summary: per method the median [min-max] over the rounds, and its ratio to
 * msync (plain mmap + msync, what syncmap replaces) in the same round.
 *
 * Usage: append [-d DIR] [-s SIZES] [-T THREADS] [-n RECORDS] [-m METHODS] [-r ROUNDS] [-O] [-R]
 *   -d DIR     run in DIR (default: a fresh ext4 on a loop device over /dev/shm)
 *   -s SIZES   record sizes, comma-separated (default 64,1024,4096)
 *   -T LIST    thread counts (default 1,2)
 *   -n N       records per run (default 4096)
 *   -r ROUNDS  repeat each group ROUNDS times and summarize (default 1)
 *   -R         start with the methods in reverse order (to check order effects)
 */
#include "bench.h"
#include "helpers.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

enum method { M_SYNCMAP, M_MSYNC, M_FDATASYNC, M_DSYNC, M_COUNT };
static const char *const method_names[M_COUNT] = {"syncmap", "msync", "fdatasync", "dsync"};

struct run {
	enum method m;
	size_t rec; /* record size */
	long n;	    /* records */
	int threads;
	int fd;
	unsigned char *map;
	_Atomic long tail;
	double *lat; /* per record, us */
	int err;
};

static const char *dir;
static long nrec = 4096;

static int append_one(struct run *r, long i, const unsigned char *rec)
{
	off_t off = (off_t)i * (off_t)r->rec;
	uintptr_t pg = 4096, s, e;

	switch (r->m) {
	case M_SYNCMAP: memcpy(r->map + off, rec, r->rec); return syncmap_persist(r->map + off, r->rec);
	case M_MSYNC:
		memcpy(r->map + off, rec, r->rec);
		s = (uintptr_t)(r->map + off) & ~(pg - 1);
		e = (uintptr_t)(r->map + off) + r->rec;
		return msync((void *)s, e - s, MS_SYNC);
	case M_FDATASYNC:
		if (pwrite(r->fd, rec, r->rec, off) != (ssize_t)r->rec)
			return -1;
		return fdatasync(r->fd);
	default: return pwrite(r->fd, rec, r->rec, off) == (ssize_t)r->rec ? 0 : -1;
	}
}

static void *appender(void *arg)
{
	struct run *r = arg;
	unsigned char *rec = malloc(r->rec);

	memset(rec, 'r', r->rec);
	for (;;) {
		long i = atomic_fetch_add(&r->tail, 1);
		double t0;

		if (i >= r->n)
			break;
		rec[0] = (unsigned char)i;
		t0 = now_us();
		if (append_one(r, i, rec) != 0) {
			r->err = errno;
			break;
		}
		r->lat[i] = now_us() - t0;
	}
	free(rec);
	return NULL;
}

static int open_log(struct run *r, int fresh)
{
	char path[512];
	size_t len = (size_t)r->n * r->rec;
	int flags = O_RDWR | O_CREAT | (r->m == M_DSYNC ? O_DSYNC : 0);

	snprintf(path, sizeof(path), "%s/append.log", dir);
	if (fresh)
		unlink(path);
	r->fd = open(path, flags, 0644);
	if (r->fd < 0 || ftruncate(r->fd, (off_t)len) != 0 || fsync(r->fd) != 0)
		return -1;
	r->map = NULL;
	if (r->m == M_SYNCMAP)
		r->map = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	else if (r->m == M_MSYNC)
		r->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	return r->map == MAP_FAILED ? -1 : 0;
}

static void close_log(struct run *r)
{
	size_t len = (size_t)r->n * r->rec;

	if (r->m == M_SYNCMAP)
		syncmap_munmap(r->map, len);
	else if (r->m == M_MSYNC)
		munmap(r->map, len);
	close(r->fd);
}

/* One run's measurements; err != 0 when it failed. */
struct row {
	int err;
	double tput, p50, p99, p999, max, cpu; /* records/s; us; us per record */
};

static struct row one(enum method m, size_t rec, int threads, int fresh)
{
	struct run r = {.m = m, .rec = rec, .n = nrec, .threads = threads};
	struct row out = {0};
	pthread_t t[8];
	double t0, cpu0, secs;

	r.lat = calloc((size_t)r.n, sizeof(double));
	cpu0 = cpu_us();
	if (r.lat == NULL || open_log(&r, fresh) != 0) {
		out.err = errno;
		free(r.lat);
		return out;
	}
	t0 = now_us();
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, appender, &r);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	secs = (now_us() - t0) / 1e6;
	close_log(&r);
	out.cpu = (cpu_us() - cpu0) / (double)r.n;
	out.err = r.err;
	if (out.err == 0) {
		qsort(r.lat, (size_t)r.n, sizeof(double), cmp_double);
		out.tput = (double)r.n / secs;
		out.p50 = r.lat[r.n / 2];
		out.p99 = r.lat[(long)((double)r.n * 0.99)];
		out.p999 = r.lat[(long)((double)r.n * 0.999)];
		out.max = r.lat[r.n - 1];
	}
	free(r.lat);
	return out;
}

static void print_row(enum method m, const char *pass, size_t rec, int threads, int round,
		      const struct row *w)
{
	if (w->err != 0)
		printf("%-10s %-9s %6zu %2d %5d  error: %s\n", method_names[m], pass, rec, threads, round,
		       strerror(w->err));
	else
		printf("%-10s %-9s %6zu %2d %5d %11.0f %9.1f %9.1f %9.1f %9.1f %9.2f\n", method_names[m],
		       pass, rec, threads, round, w->tput, w->p50, w->p99, w->p999, w->max, w->cpu);
	fflush(stdout);
}

/* Every method asked for, on one (size, threads, pass) group, ROUNDS times;
 * then the summary. */
static void group(const char *methods, size_t rec, int threads, int fresh, int rounds, int reverse)
{
	static const char *const names[] = {"records/s", "p50", "p99", "p99.9", "max", "cpu/record"};
	const char *pass = fresh ? "fresh" : "overwrite";
	int last = fresh ? M_COUNT - 1 : M_MSYNC; /* overwrite: the mapped methods only */
	static struct rounds t;

	rounds_init(&t, rounds, M_COUNT, method_names, (int)(sizeof(names) / sizeof(names[0])), names);
	for (int round = 0; round < rounds; round++)
		for (int i = 0; i < M_COUNT; i++) {
			/* Alternate the order from round to round: no method always runs first. */
			int m = (round % 2) ^ reverse ? M_COUNT - 1 - i : i;
			struct row w;

			if (m > last || !listed(methods, method_names[m]))
				continue;
			w = one((enum method)m, rec, threads, fresh);
			print_row((enum method)m, pass, rec, threads, round + 1, &w);
			if (w.err == 0) {
				const double v[] = {w.tput, w.p50, w.p99, w.p999, w.max, w.cpu};

				memcpy(t.v[round][m], v, sizeof(v));
			}
		}
	if (rounds < 2)
		return;
	printf("# summary: %s, %zu-byte records, %d thread%s, %d rounds; median [min-max] over the rounds "
	       "(ratios: same round)\n",
	       pass, rec, threads, threads > 1 ? "s" : "", rounds);
	rounds_print(&t, 1u << M_MSYNC);
}

int main(int argc, char **argv)
{
	const char *sizes = "64,1024,4096", *threads = "1,2", *methods = "syncmap,msync,fdatasync,dsync";
	int overwrite = 0, reverse = 0, rounds = 1, c;
	struct loopfs fs;
	struct utsname u;
	char *save, *tok, buf[128];

	while ((c = getopt(argc, argv, "d:s:T:n:m:r:OR")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 's': sizes = optarg; break;
		case 'T': threads = optarg; break;
		case 'n': nrec = atol(optarg); break;
		case 'm': methods = optarg; break;
		case 'r': rounds = atoi(optarg); break;
		case 'O': overwrite = 1; break;
		case 'R': reverse = 1; break;
		default:
			fprintf(stderr,
				"usage: %s [-d DIR] [-s SIZES] [-T THREADS] [-n RECORDS] [-m METHODS] [-r "
				"ROUNDS] "
				"[-O] [-R]\n",
				argv[0]);
			return 2;
		}
	}
	if (nrec < 1000) {
		fprintf(stderr, "append: -n must be at least 1000 (p99.9 needs it)\n");
		return 2;
	}
	if (rounds < 1 || rounds > BENCH_ROUNDS) {
		fprintf(stderr, "append: -r must be 1..%d\n", BENCH_ROUNDS);
		return 2;
	}
	dir = bench_dir(dir, &fs, 1024, "append");
	uname(&u);
	printf("# append: %ld durable records per run, fresh sparse file per run, %d round%s, in %s (kernel "
	       "%s)\n",
	       nrec, rounds, rounds > 1 ? "s" : "", dir, u.release);
	printf("# latency of one append (copy + persist), microseconds; cpu: every thread, per record\n");
	printf("%-10s %-9s %6s %2s %5s %11s %9s %9s %9s %9s %9s\n", "method", "pass", "size", "T", "round",
	       "records/s", "p50", "p99", "p99.9", "max", "cpu");
	snprintf(buf, sizeof(buf), "%s", sizes);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		size_t rec = (size_t)atol(tok);

		for (int t = 1; t <= 2; t++) {
			char tn[8];

			snprintf(tn, sizeof(tn), "%d", t);
			if (!listed(threads, tn))
				continue;
			group(methods, rec, t, 1, rounds, reverse);
			if (overwrite)
				group(methods, rec, t, 0, rounds, reverse);
		}
	}
	if (dir == fs.dir)
		loopfs_done(&fs);
	return 0;
}
