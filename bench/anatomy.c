/* SPDX-License-Identifier: MIT */
/* anatomy.c -- where the time of one FAULT-mode grain goes, next to the kernel's MAP_SYNC fault
 *
 * bench/faults says what a first write costs; this says why.  For N grains of
 * an empty (sparse) file it times, side by side in one run:
 *
 *   kernel   the first stores to a grain's pages under MAP_SYNC (where the
 *            kernel grants it): allocation and sync inside the fault
 *   library  the same stores on a syncmap FAULT mapping (SYNCMAP_MODE=fault,
 *            no pre-sync): one SIGSEGV per grain
 *
 * and then the library's steps one by one, done by hand on a read-only
 * mapping and a writable alias of a fresh file, in the order durable.c does
 * them: fstat (the EOF clip), fallocate (grains of more than a page),
 * MADV_POPULATE_WRITE on the alias, msync of the alias, mprotect of the
 * user's range, the first stores through it (the write's second fault); and
 * a SIGSEGV delivered and returned from (a handler that upgrades an
 * anonymous page, less that mprotect's own cost).
 *
 * Last, outside the sum, a way to the same state the library does not use
 * (yet): fallocate(FALLOC_FL_WRITE_ZEROES), Linux 6.17, which allocates
 * written, zeroed blocks with the device's write-zeroes command instead of
 * zero pages through the page cache, plus the fdatasync that commits them.
 *
 * Usage: anatomy [-d DIR] [-n GRAINS] [-g GRAIN_KIB] [-r RUNS]
 *   -d DIR   run in DIR (default: a fresh ext4 on a loop device over /dev/shm)
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
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef FALLOC_FL_WRITE_ZEROES
#define FALLOC_FL_WRITE_ZEROES 0x80
#endif

#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

#define PG 4096

enum { KERNEL, LIBRARY, FSTAT, RESERVE, TOUCH, SYNC, PROTECT, REFAULT, SIGNAL, NSTEP };

static const char *const label[NSTEP] = {
	[KERNEL] = "kernel MAP_SYNC, first stores",
	[LIBRARY] = "syncmap FAULT, first stores",
	[FSTAT] = "  fstat (EOF clip)",
	[RESERVE] = "  fallocate KEEP_SIZE",
	[TOUCH] = "  MADV_POPULATE_WRITE, alias",
	[SYNC] = "  msync MS_SYNC, alias",
	[PROTECT] = "  mprotect, user range",
	[REFAULT] = "  first stores, user range",
	[SIGNAL] = "  SIGSEGV delivery + return",
};

static const char *dir;
static size_t grain = PG;
static int ngrains = 256;
static double total[NSTEP];
static int have[NSTEP];

/* A fresh sparse file of n bytes with no cached pages. */
static int fresh_file(const char *name, size_t n)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/anatomy-%s-%d", dir, name, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	unlink(path);
	if (ftruncate(fd, (off_t)n) != 0) {
		close(fd);
		return -1;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	return fd;
}

/* One fault per 4 KiB page, as in bench/faults. */
static void small_faults(void *p, size_t n)
{
	madvise(p, n, MADV_RANDOM);
	madvise(p, n, MADV_NOHUGEPAGE);
}

/* The first store to every page of grain i, timed as one. */
static double store_grain(volatile unsigned char *p, int i)
{
	double t0 = now_us();

	for (size_t o = 0; o < grain; o += PG)
		p[(size_t)i * grain + o] = 1;
	return now_us() - t0;
}

static int kernel_err; /* why the kernel row is missing */

static void run_whole(int step, int flags, int use_lib)
{
	size_t n = (size_t)ngrains * grain;
	int fd = fresh_file(step == KERNEL ? "kernel" : "library", n);
	unsigned char *p;

	if (fd < 0) {
		kernel_err = errno;
		return;
	}
	p = use_lib ? syncmap_mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
		    : mmap(NULL, n, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED && step == KERNEL)
		kernel_err = errno;
	if (p != MAP_FAILED && (!use_lib || syncmap_mode(p) == SYNCMAP_MODE_FAULT)) {
		small_faults(p, n);
		for (int i = 0; i < ngrains; i++)
			total[step] += store_grain(p, i);
		have[step]++;
	}
	if (p != MAP_FAILED)
		use_lib ? syncmap_munmap(p, n) : munmap(p, n);
	close(fd);
}

static void run_steps(void)
{
	size_t n = (size_t)ngrains * grain;
	int fd = fresh_file("steps", n);
	unsigned char *user, *alias;
	int failed = 0;

	if (fd < 0)
		return;
	user = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
	alias = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (user != MAP_FAILED && alias != MAP_FAILED) {
		small_faults(user, n);
		small_faults(alias, n);
		for (int i = 0; i < ngrains; i++) {
			size_t o = (size_t)i * grain;
			struct stat st;
			double t[7];

			int bad = 0;

			t[0] = now_us();
			bad |= fstat(fd, &st);
			t[1] = now_us();
			if (grain > PG)
				bad |= fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)o, (off_t)grain);
			t[2] = now_us();
			bad |= madvise(alias + o, grain, MADV_POPULATE_WRITE);
			t[3] = now_us();
			bad |= msync(alias + o, grain, MS_SYNC);
			t[4] = now_us();
			bad |= mprotect(user + o, grain, PROT_READ | PROT_WRITE);
			t[5] = now_us();
			if (bad != 0) { /* a step this kernel or filesystem lacks: no rows */
				fprintf(stderr, "anatomy: a step failed at grain %d: %s\n", i,
					strerror(errno));
				failed = 1;
				break;
			}
			total[REFAULT] += store_grain(user, i);
			total[FSTAT] += t[1] - t[0];
			total[RESERVE] += t[2] - t[1];
			total[TOUCH] += t[3] - t[2];
			total[SYNC] += t[4] - t[3];
			total[PROTECT] += t[5] - t[4];
		}
		for (int s = FSTAT; s <= REFAULT && !failed; s++)
			have[s]++;
		if (grain == PG)
			have[RESERVE] = 0;
	}
	if (user != MAP_FAILED)
		munmap(user, n);
	if (alias != MAP_FAILED)
		munmap(alias, n);
	close(fd);
}

/* fallocate(WRITE_ZEROES) + fdatasync per grain of a fresh file: 0, or the errno. */
static int zeroes_err;
static double zeroes_total;
static int zeroes_runs;

static void run_zeroes(void)
{
	size_t n = (size_t)ngrains * grain;
	int fd = fresh_file("zeroes", n);
	double t0 = now_us();

	if (fd < 0)
		return;
	for (int i = 0; i < ngrains; i++)
		if (fallocate(fd, FALLOC_FL_WRITE_ZEROES | FALLOC_FL_KEEP_SIZE, (off_t)((size_t)i * grain),
			      (off_t)grain) != 0 ||
		    fdatasync(fd) != 0) {
			zeroes_err = errno;
			break;
		}
	if (zeroes_err == 0) {
		zeroes_total += now_us() - t0;
		zeroes_runs++;
	}
	close(fd);
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	mprotect((void *)((uintptr_t)si->si_addr & ~(uintptr_t)(PG - 1)), PG, PROT_READ | PROT_WRITE);
}

/* SIGSEGV round trips on anonymous pages, less the handler's mprotect. */
static void run_signal(void)
{
	size_t n = (size_t)ngrains * PG;
	struct sigaction sa, old;
	volatile unsigned char *p;
	double with = 0, bare = 0;

	p = mmap(NULL, 2 * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return;
	mprotect((void *)p, 2 * n, PROT_READ);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, &old);
	for (int i = 0; i < ngrains; i++) {
		double t0 = now_us();

		p[(size_t)i * PG] = 1; /* faults, the handler upgrades, the store retries */
		with += now_us() - t0;
		t0 = now_us();
		mprotect((void *)(p + n + (size_t)i * PG), PG, PROT_READ | PROT_WRITE);
		bare += now_us() - t0;
	}
	sigaction(SIGSEGV, &old, NULL);
	munmap((void *)p, 2 * n);
	total[SIGNAL] += with - bare;
	have[SIGNAL]++;
}

int main(int argc, char **argv)
{
	struct loopfs fs;
	struct utsname u;
	char g[32];
	int c, runs = 3;
	double sum = 0;

	while ((c = getopt(argc, argv, "d:n:g:r:")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': ngrains = atoi(optarg); break;
		case 'g': grain = (size_t)atol(optarg) * 1024; break;
		case 'r': runs = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-d DIR] [-n GRAINS] [-g GRAIN_KIB] [-r RUNS]\n", argv[0]);
			return 2;
		}
	}
	if (ngrains < 1 || ngrains > 65536 || runs < 1 || grain < PG || (grain & (grain - 1)) != 0) {
		fprintf(stderr, "anatomy: -n 1..65536, -r at least 1, -g a power of two >= 4\n");
		return 2;
	}
	dir = bench_dir(dir, &fs, 1024, "anatomy");
	snprintf(g, sizeof(g), "%zu", grain);
	setenv("SYNCMAP_MODE", "fault", 1);
	setenv("SYNCMAP_GRAIN", g, 1);
	setenv("SYNCMAP_PRESYNC", "0", 1);
	for (int r = 0; r < runs; r++) {
		run_whole(KERNEL, MAP_SHARED_VALIDATE | MAP_SYNC, 0);
		run_whole(LIBRARY, 0, 1);
		run_steps();
		run_signal();
		run_zeroes();
	}
	uname(&u);
	printf("# anatomy: %d grains of %zu KiB per run, %d runs, empty file in %s (kernel %s)\n", ngrains,
	       grain / 1024, runs, dir, u.release);
	printf("# average microseconds per grain\n");
	for (int s = 0; s < NSTEP; s++) {
		if (!have[s]) {
			const char *why = "n/a";

			if (s == KERNEL)
				why = kernel_err == EOPNOTSUPP || kernel_err == EINVAL
					      ? "n/a: MAP_SYNC refused"
					      : strerror(kernel_err);
			else if (s == RESERVE && grain == PG)
				why = "- (one page)";
			printf("%-32s %10s\n", label[s], why);
			continue;
		}
		printf("%-32s %10.1f\n", label[s], total[s] / have[s] / ngrains);
		if (s >= FSTAT)
			sum += total[s] / have[s] / ngrains;
	}
	printf("%-32s %10.1f\n", "  sum of the steps", sum);
	if (zeroes_runs > 0)
		printf("%-32s %10.1f\n", "write-zeroes fallocate + fdatasync",
		       zeroes_total / zeroes_runs / ngrains);
	else
		printf("%-32s %10s\n", "write-zeroes fallocate + fdatasync",
		       zeroes_err == EOPNOTSUPP ? "n/a: EOPNOTSUPP" : strerror(zeroes_err));
	if (dir == fs.dir)
		loopfs_done(&fs);
	return 0;
}
