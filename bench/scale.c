/* SPDX-License-Identifier: MIT */
/* scale.c -- how FAULT mode scales: a 1 TiB sparse mapping, 10,000 mappings, 2 threads
 *
 *   huge      random first writes over a 1 TiB sparse mapping (4 KiB grains,
 *             so isolated upgrades need the most VMAs): fault latency, and
 *             the process's VMA count against vm.max_map_count as it grows
 *   many      first-write fault latency in one mapping while 1 or 10,000
 *             mappings of the same file are live (the region lookup)
 *   threads   first writes to disjoint grains by 1 thread, then by 2:
 *             aggregate faults per second
 *
 * Usage: scale [-d DIR] [-w WRITES] [-t TESTS]   (TESTS: huge,many,threads)
 *   -d DIR   run in DIR (default: a fresh ext4 on a loop device over /dev/shm)
 */
#include "bench.h"
#include "helpers.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096

static const char *dir;
static long writes = 20000;

static void stats(const char *label, double *lat, long n)
{
	double sum = 0;

	for (long i = 0; i < n; i++)
		sum += lat[i];
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	printf("%-34s %8ld %9.1f %9.1f %9.1f %9.1f\n", label, n, sum / (double)n, lat[n / 2],
	       lat[(long)((double)n * 0.99)], lat[n - 1]);
	fflush(stdout);
}

static int file_in_dir(const char *name, off_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, len) != 0) {
		fprintf(stderr, "scale: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	unlink(path);
	return fd;
}

static long max_map_count(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	long v = 0;

	if (f != NULL && fscanf(f, "%ld", &v) != 1)
		v = 0;
	if (f != NULL)
		fclose(f);
	return v;
}

/* Each test runs in a child: fresh library state and its own settings. */
static void in_child(void (*fn)(void))
{
	pid_t pid;

	fflush(stdout); /* or the child prints the parent's buffer again */
	pid = fork();
	if (pid == 0) {
		fn();
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

static void huge(void)
{
	const size_t len = (size_t)1 << 40;
	double *lat = malloc((size_t)writes * sizeof(*lat));
	long peak = 0, limit = max_map_count(), distinct = 0;
	unsigned char *seen = calloc((1u << 30) / PG, 1);
	uint64_t seed = 7;
	unsigned char *p;
	struct syncmap_stats st;
	int fd;

	setenv("SYNCMAP_GRAIN", "4096", 1);
	setenv("SYNCMAP_PRESYNC", "0", 1);
	fd = file_in_dir("huge.dat", (off_t)len);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		printf("huge: syncmap_mmap of 1 TiB: %s\n", strerror(errno));
		return;
	}
	for (long i = 0; i < writes; i++) {
		/* Random pages of the first 1 GiB: isolated grains, and room on
		 * the filesystem; the mapping itself spans the whole TiB. */
		size_t page = rnd(&seed) % ((1u << 30) / PG);
		double t0 = now_us();

		distinct += !seen[page];
		seen[page] = 1;
		*(volatile unsigned char *)(p + page * PG) = 1;
		lat[i] = now_us() - t0;
		if (i % 1000 == 999 || i == writes - 1) {
			long n = maps_count();

			peak = n > peak ? n : peak;
		}
	}
	syncmap_stats_get(&st);
	stats("huge: 1 TiB mapping, random 4 KiB", lat, writes);
	printf("  VMAs: peak %ld, vm.max_map_count %ld; errors %llu; bytes made durable %llu = %.2fx the "
	       "distinct pages written (above 1x: widening at the VMA limit)\n",
	       peak, limit, (unsigned long long)st.errors, (unsigned long long)st.bytes_prepared,
	       (double)st.bytes_prepared / ((double)distinct * PG));
	syncmap_munmap(p, len);
	free(lat);
}

static void many_with(long nmaps)
{
	const size_t each = 64 * 1024;
	const long n = 1000;
	unsigned char **maps = calloc((size_t)nmaps, sizeof(*maps));
	double *lat = malloc((size_t)n * sizeof(*lat));
	char label[64];
	unsigned char *p;
	int fd, probe;

	setenv("SYNCMAP_PRESYNC", "0", 1);
	setenv("SYNCMAP_GRAIN", "4096", 1);
	fd = file_in_dir("many.dat", (off_t)(each * (size_t)nmaps));
	for (long i = 0; i < nmaps; i++) {
		maps[i] = syncmap_mmap(NULL, each, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
				       (off_t)(i * (long)each));
		if (maps[i] == MAP_FAILED) {
			printf("many: mapping %ld: %s\n", i, strerror(errno));
			return;
		}
	}
	/* The measured mapping: its own file, a fault per page. */
	probe = file_in_dir("probe.dat", (off_t)n * PG);
	p = syncmap_mmap(NULL, (size_t)n * PG, PROT_READ | PROT_WRITE, MAP_SHARED, probe, 0);
	for (long i = 0; i < n; i++) {
		double t0 = now_us();

		*(volatile unsigned char *)(p + i * PG) = 1;
		lat[i] = now_us() - t0;
	}
	snprintf(label, sizeof(label), "many: fault with %ld+1 mappings", nmaps);
	stats(label, lat, n);
}

static void many_1(void)
{
	many_with(1);
}

static void many_10000(void)
{
	many_with(10000);
}

struct worker {
	unsigned char *p;
	long first, count;
	double secs;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	double t0 = now_us();

	for (long i = 0; i < w->count; i++)
		*(volatile unsigned char *)(w->p + (size_t)(w->first + i) * 65536) = 1;
	w->secs = (now_us() - t0) / 1e6;
	return NULL;
}

static void threads_n(int nt)
{
	const long grains = 2000;
	struct worker w[2];
	pthread_t t[2];
	unsigned char *p;
	double t0, secs;
	int fd;

	setenv("SYNCMAP_PRESYNC", "0", 1);
	fd = file_in_dir("threads.dat", (off_t)grains * 65536);
	p = syncmap_mmap(NULL, (size_t)grains * 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	t0 = now_us();
	for (int i = 0; i < nt; i++) {
		w[i] = (struct worker){p, i * grains / nt, grains / nt, 0};
		pthread_create(&t[i], NULL, worker, &w[i]);
	}
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
	secs = (now_us() - t0) / 1e6;
	printf("threads: %d thread(s), %ld grain faults: %.0f faults/s (%.1f us per fault per thread)\n", nt,
	       grains, (double)grains / secs, secs * 1e6 / ((double)grains / nt));
	fflush(stdout);
}

static void threads_1(void)
{
	threads_n(1);
}

static void threads_2(void)
{
	threads_n(2);
}

int main(int argc, char **argv)
{
	const char *tests = "huge,many,threads";
	struct loopfs fs;
	struct utsname u;
	int c;

	while ((c = getopt(argc, argv, "d:w:t:")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'w': writes = atol(optarg); break;
		case 't': tests = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-d DIR] [-w WRITES] [-t huge,many,threads]\n", argv[0]);
			return 2;
		}
	}
	if (writes < 100) {
		fprintf(stderr, "scale: -w must be at least 100\n");
		return 2;
	}
	dir = bench_dir(dir, &fs, 2048, "scale");
	uname(&u);
	printf("# scale: FAULT mode in %s (kernel %s); latencies in microseconds\n", dir, u.release);
	printf("%-34s %8s %9s %9s %9s %9s\n", "", "writes", "avg", "p50", "p99", "max");
	if (strstr(tests, "huge"))
		in_child(huge);
	if (strstr(tests, "many")) {
		in_child(many_1);
		in_child(many_10000);
	}
	if (strstr(tests, "threads")) {
		in_child(threads_1);
		in_child(threads_2);
	}
	if (dir == fs.dir)
		loopfs_done(&fs);
	return 0;
}
