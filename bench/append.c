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
 * Usage: append [-d DIR] [-s SIZES] [-T THREADS] [-n RECORDS] [-m METHODS] [-O] [-R]
 *   -d DIR     run in DIR (default: a fresh ext4 on a loop device over /dev/shm)
 *   -s SIZES   record sizes, comma-separated (default 64,1024,4096)
 *   -T LIST    thread counts (default 1,2)
 *   -n N       records per run (default 4096)
 *   -R         run the methods in reverse order (to check order effects)
 */
#include "bench.h"
#include "helpers.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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

static void one(enum method m, size_t rec, int threads, int fresh, const char *pass)
{
	struct run r = {.m = m, .rec = rec, .n = nrec, .threads = threads};
	pthread_t t[8];
	double t0, secs;

	r.lat = calloc((size_t)r.n, sizeof(double));
	if (open_log(&r, fresh) != 0) {
		printf("%-10s %-9s %6zu %2d  error: %s\n", method_names[m], pass, rec, threads,
		       strerror(errno));
		return;
	}
	t0 = now_us();
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, appender, &r);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	secs = (now_us() - t0) / 1e6;
	close_log(&r);
	if (r.err != 0) {
		printf("%-10s %-9s %6zu %2d  error: %s\n", method_names[m], pass, rec, threads,
		       strerror(r.err));
		free(r.lat);
		return;
	}
	qsort(r.lat, (size_t)r.n, sizeof(double), cmp_double);
	printf("%-10s %-9s %6zu %2d %11.0f %9.1f %9.1f %9.1f %9.1f\n", method_names[m], pass, rec, threads,
	       (double)r.n / secs, r.lat[r.n / 2], r.lat[(long)((double)r.n * 0.99)],
	       r.lat[(long)((double)r.n * 0.999)], r.lat[r.n - 1]);
	fflush(stdout);
	free(r.lat);
}

static int listed(const char *list, const char *word)
{
	char key[64], buf[256];

	snprintf(key, sizeof(key), ",%s,", word);
	snprintf(buf, sizeof(buf), ",%s,", list);
	return strstr(buf, key) != NULL;
}

int main(int argc, char **argv)
{
	const char *sizes = "64,1024,4096", *threads = "1,2", *methods = "syncmap,msync,fdatasync,dsync";
	int overwrite = 0, reverse = 0, c;
	struct loopfs fs;
	struct utsname u;
	char *save, *tok, buf[128];

	while ((c = getopt(argc, argv, "d:s:T:n:m:OR")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 's': sizes = optarg; break;
		case 'T': threads = optarg; break;
		case 'n': nrec = atol(optarg); break;
		case 'm': methods = optarg; break;
		case 'O': overwrite = 1; break;
		case 'R': reverse = 1; break;
		default:
			fprintf(stderr,
				"usage: %s [-d DIR] [-s SIZES] [-T THREADS] [-n RECORDS] [-m METHODS] [-O] "
				"[-R]\n",
				argv[0]);
			return 2;
		}
	}
	if (nrec < 1000) {
		fprintf(stderr, "append: -n must be at least 1000 (p99.9 needs it)\n");
		return 2;
	}
	dir = bench_dir(dir, &fs, 1024, "append");
	uname(&u);
	printf("# append: %ld durable records per run, fresh sparse file per run, in %s (kernel %s)\n", nrec,
	       dir, u.release);
	printf("# latency of one append (copy + persist), microseconds\n");
	printf("%-10s %-9s %6s %2s %11s %9s %9s %9s %9s\n", "method", "pass", "size", "T", "records/s", "p50",
	       "p99", "p99.9", "max");
	snprintf(buf, sizeof(buf), "%s", sizes);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		size_t rec = (size_t)atol(tok);

		for (int t = 1; t <= 2; t++) {
			char tn[8];

			snprintf(tn, sizeof(tn), "%d", t);
			if (!listed(threads, tn))
				continue;
			for (int i = 0; i < M_COUNT; i++) {
				int m = reverse ? M_COUNT - 1 - i : i;

				if (listed(methods, method_names[m]))
					one((enum method)m, rec, t, 1, "fresh");
			}
			for (int i = 0; overwrite && i <= M_MSYNC; i++) {
				int m = reverse ? M_MSYNC - i : i;

				if (listed(methods, method_names[m]))
					one((enum method)m, rec, t, 0, "overwrite");
			}
		}
	}
	if (dir == fs.dir)
		loopfs_done(&fs);
	return 0;
}
