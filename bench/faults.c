/* SPDX-License-Identifier: MIT */
/* faults.c -- first-write fault latency, the experiment MAP_SYNC was measured with
 *
 * The kernel patch's author measured 512 first writes of 4 KiB each, on a
 * ramdisk, file preallocated or empty, with and without a background file
 * copy, without and with MAP_SYNC.  This program runs the same experiment for
 * every way libsyncmap can map a file, side by side in one run:
 *
 *   plain     mmap(MAP_SHARED), no guarantee (the baseline)
 *   kernel    syncmap KERNEL mode = the kernel's MAP_SYNC, where it exists
 *   fault-4k  syncmap FAULT mode, 4 KiB grains, no pre-sync
 *   fault     syncmap FAULT mode, the default grain, no pre-sync
 *   presync   syncmap FAULT mode, the default grain, pre-sync engine on
 * and, only when asked for with -v:
 *   noreserve   as fault, without the fallocate of each grain (SYNCMAP_RESERVE=0)
 *   fault-256k  as fault, 256 KiB grains
 *
 * Each variant runs in its own process (fresh library state, its own
 * environment; SYNCMAP_PRESYNC_DEPTH is taken from the caller's).  Latency
 * is that of the one store that first touches each page, fault included,
 * read with clock_gettime around it.  The page cache
 * of the file is dropped and MADV_RANDOM set first, so that every page is a
 * fault of its own (the host kernel maps large folios at once otherwise).
 *
 * Usage: faults [-d DIR] [-n PAGES] [-r RUNS] [-o seq|rand] [-v VARIANTS] [-H]
 *   -d DIR   run in DIR (default: a fresh ext4 on a loop device over /dev/shm)
 *   -v LIST  comma-separated variants (default: all but the -v-only ones)
 *   -H       print the power-of-two histograms ("4 - 7 us: 398")
 */
#include "bench.h"
#include "helpers.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define MAX_PAGES 65536

struct variant {
	const char *name, *mode, *grain, *presync, *reserve;
	int plain, extra; /* extra: run only when named with -v */
};

static const struct variant variants[] = {
	{"plain", NULL, NULL, NULL, NULL, 1, 0},	{"kernel", "kernel", NULL, "0", NULL, 0, 0},
	{"fault-4k", "fault", "4096", "0", NULL, 0, 0}, {"fault", "fault", NULL, "0", NULL, 0, 0},
	{"noreserve", "fault", NULL, "0", "0", 0, 1},	{"fault-256k", "fault", "262144", "0", NULL, 0, 1},
	{"presync", "fault", NULL, "1", NULL, 0, 0},
};

static int npages = 512, runs = 5, random_order, histograms;
static const char *dir;
static char only[256];

/* A background file copy on the same filesystem, until killed. */
static pid_t start_copy_load(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		char src[512], dst[512];
		static char buf[1 << 20];
		int s;

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the benchmark */

		snprintf(src, sizeof(src), "%s/load-src", dir);
		snprintf(dst, sizeof(dst), "%s/load-dst", dir);
		s = open(src, O_RDWR | O_CREAT | O_TRUNC, 0644);
		memset(buf, 'L', sizeof(buf));
		for (int i = 0; i < 32; i++) /* 32 MiB: the guest's filesystems are small */
			if (write(s, buf, sizeof(buf)) < 0)
				_exit(1);
		fsync(s);
		for (;;) {
			int d = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0644);
			ssize_t n;

			lseek(s, 0, SEEK_SET);
			while ((n = read(s, buf, sizeof(buf))) > 0)
				if (write(d, buf, (size_t)n) != n)
					break;
			close(d);
		}
	}
	sleep(1); /* let it get going */
	return pid;
}

static void stop_load(pid_t pid)
{
	char path[512];

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	snprintf(path, sizeof(path), "%s/load-src", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/load-dst", dir);
	unlink(path);
}

/* One run of one variant, in this (child) process: lat[i] gets the first
 * write of the i-th page.  Returns 0, or an errno (ENOTSUP: no MAP_SYNC). */
static int run_variant(const struct variant *v, int prealloc, double *lat, struct syncmap_stats *st)
{
	size_t len = (size_t)npages * PG * (random_order ? 4 : 1);
	char path[512];
	unsigned char *p;
	uint64_t seed = 42;
	size_t *order = malloc((size_t)npages * sizeof(*order));
	int fd;

	snprintf(path, sizeof(path), "%s/faults-%d.dat", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || order == NULL)
		return errno;
	if (prealloc) {
		/* Written, synced extents: nothing left to allocate or convert. */
		static char zero[1 << 20];

		for (size_t done = 0; done < len; done += sizeof(zero))
			if (write(fd, zero, len - done < sizeof(zero) ? len - done : sizeof(zero)) < 0)
				return errno;
		fsync(fd);
	} else if (ftruncate(fd, (off_t)len) != 0) {
		return errno;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* every page a fault of its own */
	for (int i = 0; i < npages; i++)
		order[i] = (size_t)i;
	if (random_order)
		for (int i = 0; i < npages; i++) {
			size_t j = rnd(&seed) % (len / PG);

			order[i] = j;
			for (int k = 0; k < i; k++)
				if (order[k] == j) {
					i--;
					break;
				}
		}
	if (v->plain)
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	else
		p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int err = errno;

		close(fd);
		unlink(path);
		return err;
	}
	/* One fault per 4 KiB page, as in the original: no read-around, and no
	 * 2 MiB DAX faults (which map 512 pages at once). */
	madvise(p, len, MADV_RANDOM);
	madvise(p, len, MADV_NOHUGEPAGE);
	for (int i = 0; i < npages; i++) {
		volatile unsigned char *q = p + order[i] * PG;
		double t0 = now_us();

		*q = (unsigned char)i;
		lat[i] = now_us() - t0;
	}
	syncmap_stats_get(st);
	if (v->plain)
		munmap(p, len);
	else
		syncmap_munmap(p, len);
	close(fd);
	unlink(path);
	free(order);
	return 0;
}

struct result {
	int err;
	double min, avg, p50, p99, max;
	unsigned long long faults, syncs;
	unsigned hist[32];
};

static void summarize(double *lat, int n, struct result *r)
{
	double sum = 0;

	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	for (int i = 0; i < n; i++) {
		/* Bucket b holds [2^b, 2^(b+1) - 1] us; bucket 0 also holds 0. */
		unsigned us = (unsigned)lat[i], b = 0;

		sum += lat[i];
		while (b < 31 && us >= (2u << b))
			b++;
		r->hist[b]++;
	}
	r->min = lat[0];
	r->max = lat[n - 1];
	r->avg = sum / n;
	r->p50 = lat[n / 2];
	r->p99 = lat[(int)((double)n * 0.99)];
}

/* Runs all runs of a variant in a child; the parent gets the summary. */
static struct result measure(const struct variant *v, int prealloc)
{
	struct result r;
	int pfd[2];
	pid_t pid;

	memset(&r, 0, sizeof(r));
	if (pipe(pfd) != 0) {
		r.err = errno;
		return r;
	}
	pid = fork();
	if (pid == 0) {
		int n = npages * runs;
		double *lat = malloc((size_t)n * sizeof(*lat));
		struct syncmap_stats st = {0};

		close(pfd[0]);
		if (v->mode)
			setenv("SYNCMAP_MODE", v->mode, 1);
		if (v->grain)
			setenv("SYNCMAP_GRAIN", v->grain, 1);
		if (v->presync)
			setenv("SYNCMAP_PRESYNC", v->presync, 1);
		setenv("SYNCMAP_RESERVE", v->reserve ? v->reserve : "1", 1); /* not the caller's */
		for (int i = 0; i < runs && r.err == 0; i++)
			r.err = run_variant(v, prealloc, lat + i * npages, &st);
		if (r.err == 0) {
			summarize(lat, n, &r);
			r.faults = st.faults;
			r.syncs = st.syncs;
		}
		if (write(pfd[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
		r.err = EIO;
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	return r;
}

static void print_hist(const char *label, const struct result *r)
{
	printf("  %s\n", label);
	for (int b = 0; b < 32; b++) {
		unsigned lo = b == 0 ? 0 : 1u << b, hi = (2u << b) - 1;

		if (r->hist[b] != 0)
			printf("    %u - %u us: %u\n", lo, hi, r->hist[b]);
	}
}

int main(int argc, char **argv)
{
	struct loopfs fs;
	struct utsname u;
	int c;

	while ((c = getopt(argc, argv, "d:n:r:o:v:H")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': npages = atoi(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'o': random_order = strcmp(optarg, "rand") == 0; break;
		case 'v': snprintf(only, sizeof(only), ",%s,", optarg); break;
		case 'H': histograms = 1; break;
		default:
			fprintf(stderr,
				"usage: %s [-d DIR] [-n PAGES] [-r RUNS] [-o seq|rand] [-v LIST] [-H]\n",
				argv[0]);
			return 2;
		}
	}
	if (npages < 1 || npages > MAX_PAGES || runs < 1) {
		fprintf(stderr, "faults: -n must be 1..%d and -r at least 1\n", MAX_PAGES);
		return 2;
	}
	dir = bench_dir(dir, &fs, 1024, "faults");
	uname(&u);
	printf("# faults: %d first writes of 4 KiB per run, %d runs, %s order, in %s (kernel %s)\n", npages,
	       runs, random_order ? "random" : "sequential", dir, u.release);
	printf("# latency of the first store to each page, fault included, in microseconds\n");
	printf("%-9s %-8s %-5s %9s %9s %9s %9s %9s %8s %8s\n", "variant", "file", "load", "min", "avg", "p50",
	       "p99", "max", "faults", "syncs");
	for (int load = 0; load < 2; load++) {
		pid_t loader = load ? start_copy_load() : 0;

		for (int prealloc = 1; prealloc >= 0; prealloc--)
			for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
				const struct variant *v = &variants[i];
				char key[64];
				struct result r;

				snprintf(key, sizeof(key), ",%s,", v->name);
				if (only[0] != '\0' ? strstr(only, key) == NULL : v->extra)
					continue;
				r = measure(v, prealloc);
				if (r.err != 0) {
					printf("%-9s %-8s %-5s %s\n", v->name,
					       prealloc ? "prealloc" : "empty", load ? "copy" : "none",
					       r.err == EOPNOTSUPP ? "n/a: MAP_SYNC refused here"
								   : strerror(r.err));
					continue;
				}
				printf("%-9s %-8s %-5s %9.1f %9.1f %9.1f %9.1f %9.1f %8llu %8llu\n", v->name,
				       prealloc ? "prealloc" : "empty", load ? "copy" : "none", r.min, r.avg,
				       r.p50, r.p99, r.max, r.faults, r.syncs);
				fflush(stdout);
				if (histograms) {
					char label[96];

					snprintf(label, sizeof(label), "%s, %s file, load %s:", v->name,
						 prealloc ? "preallocated" : "empty", load ? "copy" : "none");
					print_hist(label, &r);
				}
			}
		if (load)
			stop_load(loader);
	}
	if (dir == fs.dir)
		loopfs_done(&fs);
	return 0;
}
