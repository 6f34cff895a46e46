/* SPDX-License-Identifier: MIT */
/* faults.c -- first-write fault latency, the experiment MAP_SYNC was measured with
 *
 * The kernel patch's author measured 512 first writes of 4 KiB each, on a
 * ramdisk, file preallocated or empty, with and without a background file
 * copy, without and with MAP_SYNC.  This program runs the same experiment for
 * every way libsyncmap can map a file, side by side in one run:
 *
 *   plain     mmap(MAP_SHARED), no guarantee (the baseline)
 *   kernel    syncmap KERNEL mode = the kernel's MAP_SYNC, where it exists,
 *             with the kernel's default fault size (2 MiB on DAX where it can)
 *   kernel-4k as kernel, kept to 4 KiB faults (MADV_NOHUGEPAGE)
 *   fault-4k  syncmap FAULT mode, 4 KiB grains, no pre-sync
 *   fault     syncmap FAULT mode, the default grain, no pre-sync
 *   presync   syncmap FAULT mode, the default grain, pre-sync engine on
 * and, only when asked for with -v:
 *   noreserve   as fault, without the fallocate of each grain (SYNCMAP_RESERVE=0)
 *   fault-256k  as fault, 256 KiB grains
 *   fault-1m    as fault, 1 MiB grains (one sync per 256 pages)
 *   fault-2m    as fault, 2 MiB grains (a huge page's worth, where DAX maps one)
 *
 * Each variant runs in its own process (fresh library state, its own
 * environment; SYNCMAP_PRESYNC_DEPTH is taken from the caller's), all its
 * runs in that one process, as a program that maps file after file would:
 * in the first run no engine thread exists yet (the fault handler readies
 * windows itself for a writer in order), the next syncmap_mmap starts it
 * and it serves the later runs.  Latency
 * is that of the one store that first touches each page, fault included,
 * read with clock_gettime around it.  Next to it, per page: the CPU time of
 * every thread of the process (the pre-sync engine's included) and the wall
 * time, both from before the map to after the unmap, so that map-time work
 * and work done on the other CPU are counted too.
 *
 * Two ways to map (-m):
 *   users   (default) mappings as programs make them: no hints.  On the host
 *           the kernel maps large folios of page cache at once, so a plain
 *           mapping takes far fewer faults than it has pages.
 *   hinted  every mapping gets MADV_RANDOM and MADV_NOHUGEPAGE, so that every
 *           page is a fault of its own, as in the kernel patch's experiment:
 *           the anatomy of one fault, not what a user sees.
 *
 * -R ROUNDS repeats the whole table, the variants in forward order in odd
 * rounds and reversed in even ones, and ends with a summary: per variant the
 * median [min - max] over the rounds of each round's value, and of its ratio
 * to each base variant (-b) measured in the same round.
 *
 * Usage: faults [-d DIR] [-n PAGES] [-r RUNS] [-o seq|rand] [-v VARIANTS] [-m users|hinted]
 *               [-F empty|prealloc] [-L none|copy] [-R ROUNDS] [-b BASES] [-H]
 *   -d DIR   run in DIR (default: a fresh ext4 on a loop device over /dev/shm)
 *   -v LIST  comma-separated variants (default: all but the -v-only ones)
 *   -F, -L   only this file state, only this load (default: both)
 *   -b LIST  bases of the summary's ratios (default plain)
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
	int small_faults; /* MADV_NOHUGEPAGE even when users' mappings are measured */
};

static const struct variant variants[] = {
	{"plain", NULL, NULL, NULL, NULL, 1, 0, 0},
	{"kernel", "kernel", NULL, "0", NULL, 0, 0, 0},
	{"kernel-4k", "kernel", NULL, "0", NULL, 0, 0, 1},
	{"fault-4k", "fault", "4096", "0", NULL, 0, 0, 0},
	{"fault", "fault", NULL, "0", NULL, 0, 0, 0},
	{"noreserve", "fault", NULL, "0", "0", 0, 1, 0},
	{"fault-256k", "fault", "262144", "0", NULL, 0, 1, 0},
	{"fault-1m", "fault", "1048576", "0", NULL, 0, 1, 0},
	{"fault-2m", "fault", "2097152", "0", NULL, 0, 1, 0},
	{"presync", "fault", NULL, "1", NULL, 0, 0, 0},
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))
_Static_assert(NVARIANTS <= BENCH_ROWS, "struct rounds holds a row per variant");

static int npages = 512, runs = 5, random_order, histograms, hinted, rounds = 1;
static const char *dir;
static const char *only, *bases = "plain"; /* -v (NULL: the default set), -b */

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
 * write of the i-th page, *cpu and *wall add this run's CPU and wall time
 * from before the map to after the unmap.  Returns 0, or an errno (ENOTSUP:
 * no MAP_SYNC). */
static int run_variant(const struct variant *v, int prealloc, double *lat, double *cpu, double *wall,
		       struct syncmap_stats *st)
{
	double cpu0, wall0;
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
	cpu0 = cpu_us();
	wall0 = now_us();
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
	/* Hinted: one fault per 4 KiB page, as in the original (no read-around,
	 * no 2 MiB DAX faults, which map 512 pages at once). */
	if (hinted)
		madvise(p, len, MADV_RANDOM);
	if (hinted || v->small_faults)
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
	*wall += now_us() - wall0;
	*cpu += cpu_us() - cpu0;
	close(fd);
	unlink(path);
	free(order);
	return 0;
}

struct result {
	int err;
	double min, avg, p50, p99, max, cpu, wall; /* cpu, wall: per page */
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
		double cpu = 0, wall = 0;

		close(pfd[0]);
		if (v->mode)
			setenv("SYNCMAP_MODE", v->mode, 1);
		if (v->grain)
			setenv("SYNCMAP_GRAIN", v->grain, 1);
		if (v->presync)
			setenv("SYNCMAP_PRESYNC", v->presync, 1);
		setenv("SYNCMAP_RESERVE", v->reserve ? v->reserve : "1", 1); /* not the caller's */
		for (int i = 0; i < runs && r.err == 0; i++)
			r.err = run_variant(v, prealloc, lat + i * npages, &cpu, &wall, &st);
		if (r.err == 0) {
			summarize(lat, n, &r);
			r.cpu = cpu / n;
			r.wall = wall / n;
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

/* Only the variants asked for with -v, else all but the -v-only ones. */
static int wanted(const struct variant *v)
{
	return only != NULL ? listed(only, v->name) : !v->extra;
}

/* Variant v, one round: measured, its row printed (and its histogram with
 * -H), its values recorded in t for the summary. */
static void one_row(const struct variant *v, int prealloc, int load, int round, struct rounds *t)
{
	const char *file = prealloc ? "prealloc" : "empty", *ld = load ? "copy" : "none";
	struct result r = measure(v, prealloc);

	if (r.err != 0) {
		printf("%-10s %-8s %-5s %5d %s\n", v->name, file, ld, round + 1,
		       r.err == EOPNOTSUPP ? "n/a: MAP_SYNC refused here" : strerror(r.err));
		return;
	}
	printf("%-10s %-8s %-5s %5d %9.1f %9.1f %9.1f %9.1f %9.1f %9.2f %9.2f %8llu %8llu\n", v->name, file,
	       ld, round + 1, r.min, r.avg, r.p50, r.p99, r.max, r.cpu, r.wall, r.faults, r.syncs);
	fflush(stdout);
	if (histograms) {
		char label[96];

		snprintf(label, sizeof(label), "%s, %s file, load %s:", v->name,
			 prealloc ? "preallocated" : "empty", ld);
		print_hist(label, &r);
	}
	{
		const double m[] = {r.avg, r.p50, r.p99, r.max, r.cpu, r.wall};

		memcpy(t->v[round][v - variants], m, sizeof(m));
	}
}

int main(int argc, char **argv)
{
	static const char *const metrics[] = {"avg", "p50", "p99", "max", "cpu/page", "wall/page"};
	static struct rounds t;
	const char *names[NVARIANTS];
	unsigned base_rows = 0;
	const char *files = "prealloc,empty", *loads = "none,copy";
	struct loopfs fs;
	struct utsname u;
	int c;

	while ((c = getopt(argc, argv, "d:n:r:o:v:m:F:L:R:b:H")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': npages = atoi(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'o': random_order = strcmp(optarg, "rand") == 0; break;
		case 'v': only = optarg; break;
		case 'm': hinted = strcmp(optarg, "hinted") == 0; break;
		case 'F': files = optarg; break;
		case 'L': loads = optarg; break;
		case 'R': rounds = atoi(optarg); break;
		case 'b': bases = optarg; break;
		case 'H': histograms = 1; break;
		default:
			fprintf(stderr,
				"usage: %s [-d DIR] [-n PAGES] [-r RUNS] [-o seq|rand] [-v LIST] [-m "
				"users|hinted] "
				"[-F empty|prealloc] [-L none|copy] [-R ROUNDS] [-b BASES] [-H]\n",
				argv[0]);
			return 2;
		}
	}
	if (npages < 1 || npages > MAX_PAGES || runs < 1 || rounds < 1 || rounds > BENCH_ROUNDS) {
		fprintf(stderr, "faults: -n must be 1..%d, -r at least 1, -R 1..%d\n", MAX_PAGES,
			BENCH_ROUNDS);
		return 2;
	}
	dir = bench_dir(dir, &fs, 1024, "faults");
	uname(&u);
	printf("# faults: %d first writes of 4 KiB per run, %d runs, %s order, %s mappings, %d rounds, in %s "
	       "(kernel %s)\n",
	       npages, runs, random_order ? "random" : "sequential",
	       hinted ? "hinted (MADV_RANDOM, MADV_NOHUGEPAGE)" : "users' (no hints)", rounds, dir,
	       u.release);
	printf("# latency of the first store to each page, fault included, in microseconds; cpu and wall:\n"
	       "# per page, every thread, from before the map to after the unmap\n");
	printf("%-10s %-8s %-5s %5s %9s %9s %9s %9s %9s %9s %9s %8s %8s\n", "variant", "file", "load",
	       "round", "min", "avg", "p50", "p99", "max", "cpu", "wall", "faults", "syncs");
	for (size_t i = 0; i < NVARIANTS; i++) {
		names[i] = variants[i].name;
		base_rows |= (unsigned)listed(bases, names[i]) << i;
	}
	for (int load = 0; load < 2; load++) {
		pid_t loader;

		if (!listed(loads, load ? "copy" : "none"))
			continue;
		loader = load ? start_copy_load() : 0;
		for (int prealloc = 1; prealloc >= 0; prealloc--) {
			if (!listed(files, prealloc ? "prealloc" : "empty"))
				continue;
			rounds_init(&t, rounds, (int)NVARIANTS, names,
				    (int)(sizeof(metrics) / sizeof(metrics[0])), metrics);
			for (int round = 0; round < rounds; round++)
				for (size_t j = 0; j < NVARIANTS; j++) {
					/* Odd rounds forward, even rounds reversed: no variant always runs first. */
					const struct variant *v =
						&variants[round % 2 ? NVARIANTS - 1 - j : j];

					if (wanted(v))
						one_row(v, prealloc, load, round, &t);
				}
			if (rounds < 2)
				continue;
			printf("# summary: %s file, load %s, %d rounds; median [min-max] over the rounds "
			       "(us; "
			       "ratios: same round)\n",
			       prealloc ? "prealloc" : "empty", load ? "copy" : "none", rounds);
			rounds_print(&t, base_rows);
		}
		if (load)
			stop_load(loader);
	}
	if (dir == fs.dir)
		loopfs_done(&fs);
	return 0;
}
