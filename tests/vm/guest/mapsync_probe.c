/* SPDX-License-Identifier: MIT */
/* mapsync_probe.c -- DAX guest self-test: does MAP_SYNC hold, and does plain mmap lose data? */
/*
 * Runs inside the tests/vm guest, without libsyncmap.  Result lines start
 * with "SMVM: " so that vm.sh passes them to the host.
 *
 *   mapsync_probe probe DIR
 *	SMVM: probe dir=DIR statx_dax=0|1 map_sync=accepted|refused errno=E(N)
 *   mapsync_probe write DIR PAGES [--pmd] [--hold]
 *	Creates DIR/sync.dat and DIR/plain.dat (64 MiB, sparse), writes a
 *	distinct pattern into PAGES pages of each (spread over the file), the
 *	MAP_SYNC file first and the plain MAP_SHARED control last, each page
 *	flushed with clwb (clflushopt, clflush) + sfence.  The mappings get
 *	MADV_NOHUGEPAGE, so each page is one 4 KiB fault and one allocation;
 *	--pmd leaves 2 MiB DAX faults on (one fault then fills 2 MiB).
 *	SMVM: wrote dir=DIR pages=N fault=4k|pmd flush=clwb sync_us=.. plain_us=..
 *	      sync_blocks=B plain_blocks=B          (st_blocks, 512 B units)
 *	SMVM: ready-to-crash
 *	With --hold it then rewrites the same data forever (the host kills the
 *	VM meanwhile); without, it exits 0.
 *   mapsync_probe check DIR PAGES
 *	SMVM: survived dir=DIR sync=K/N plain=K/N sync_blocks=B plain_blocks=B
 *	A page survives iff it reads back its exact pattern; K and B are -1
 *	for a file that is gone.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

#define FILE_SIZE (64u << 20)

enum { SYNC_FILE = 1, PLAIN_FILE = 2 };

static const char *const file_name[] = {[SYNC_FILE] = "sync.dat", [PLAIN_FILE] = "plain.dat"};

static size_t page_size;

static void die(const char *what, const char *path)
{
	printf("SMVM: error %s %s: %s (%d)\n", what, path, strerror(errno), errno);
	exit(1);
}

/* splitmix64: a different 64-bit word for every (file, page, word). */
static uint64_t pattern_word(int file, size_t page, size_t word)
{
	uint64_t z = ((uint64_t)file << 56) ^ ((uint64_t)page << 20) ^ word;

	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Page index of the i-th written page: spread evenly over the file. */
static size_t page_index(size_t i, size_t npages)
{
	return i * (FILE_SIZE / page_size / npages);
}

/* ---- CPU cache flush (TCG does not model caches, but the code must be right) */

enum flush_kind { FLUSH_CLFLUSH, FLUSH_CLFLUSHOPT, FLUSH_CLWB };
static enum flush_kind flush_kind;
static const char *const flush_name[] = {"clflush", "clflushopt", "clwb"};

static void detect_flush(void)
{
	unsigned a, b, c, d;

	flush_kind = FLUSH_CLFLUSH;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
		if (b & (1u << 24))
			flush_kind = FLUSH_CLWB;
		else if (b & (1u << 23))
			flush_kind = FLUSH_CLFLUSHOPT;
	}
}

static void flush_range(const void *addr, size_t len)
{
	uintptr_t p = (uintptr_t)addr & ~(uintptr_t)63;

	for (; p < (uintptr_t)addr + len; p += 64) {
		volatile char *line = (volatile char *)p;

		switch (flush_kind) {
		case FLUSH_CLWB: __asm__ volatile("clwb %0" : "+m"(*line)); break;
		case FLUSH_CLFLUSHOPT: __asm__ volatile("clflushopt %0" : "+m"(*line)); break;
		default: __asm__ volatile("clflush %0" : "+m"(*line)); break;
		}
	}
	/* clwb/clflushopt are weakly ordered: sfence makes them complete before
	 * anything later (here: the "wrote" line the host may crash after). */
	__asm__ volatile("sfence" ::: "memory");
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* ---- probe */

static int probe(const char *dir)
{
	char path[4096];
	struct statx stx;
	int fd, dax, err = 0;
	void *p;

	snprintf(path, sizeof(path), "%s/probe.dat", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open", path);
	if (ftruncate(fd, 1 << 21) < 0)
		die("ftruncate", path);
	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) < 0)
		die("statx", path);
	dax = (stx.stx_attributes_mask & STATX_ATTR_DAX) ? !!(stx.stx_attributes & STATX_ATTR_DAX) : -1;
	p = mmap(NULL, 1 << 21, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	if (p == MAP_FAILED)
		err = errno;
	else
		munmap(p, 1 << 21);
	close(fd);
	unlink(path);
	if (err)
		printf("SMVM: probe dir=%s statx_dax=%d map_sync=refused errno=%s(%d)\n", dir, dax,
		       strerrorname_np(err), err);
	else
		printf("SMVM: probe dir=%s statx_dax=%d map_sync=accepted\n", dir, dax);
	return 0;
}

/* ---- write */

static int create_file(const char *dir, int file)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file_name[file]);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open", path);
	/* A sparse file: every page written below is a hole filled by a fault. */
	if (ftruncate(fd, FILE_SIZE) < 0)
		die("ftruncate", path);
	/* The file itself must exist after the crash: only its blocks are under test. */
	if (fsync(fd) < 0)
		die("fsync", path);
	return fd;
}

static char *map_file(int fd, int file, const char *dir, int pmd)
{
	int flags = file == SYNC_FILE ? MAP_SHARED_VALIDATE | MAP_SYNC : MAP_SHARED;
	char *p = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		die(file == SYNC_FILE ? "mmap(MAP_SYNC)" : "mmap(MAP_SHARED)", dir);
	/* A DAX mapping takes 2 MiB faults wherever the file and the address
	 * are aligned (the kernel aligns the address for DAX files); VM_NOHUGEPAGE
	 * is what turns them off, so that each page is its own fault. */
	if (!pmd && madvise(p, FILE_SIZE, MADV_NOHUGEPAGE) < 0)
		die("madvise(MADV_NOHUGEPAGE)", dir);
	return p;
}

static long long file_blocks(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 ? -1 : (long long)st.st_blocks;
}

static void fill_page(char *map, int file, size_t page)
{
	uint64_t *w = (uint64_t *)(map + page * page_size);

	for (size_t i = 0; i < page_size / 8; i++)
		w[i] = pattern_word(file, page, i);
	flush_range(w, page_size);
}

/* Returns the average µs per page (each page's first store is a fault). */
static double fill_file(char *map, int file, size_t npages)
{
	double t0 = now_us();

	for (size_t i = 0; i < npages; i++)
		fill_page(map, file, page_index(i, npages));
	return (now_us() - t0) / npages;
}

static int write_files(const char *dir, size_t npages, int pmd, int hold)
{
	int sfd, pfd, dfd;
	char *smap, *pmap;
	double sus, pus;

	sfd = create_file(dir, SYNC_FILE);
	pfd = create_file(dir, PLAIN_FILE);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || fsync(dfd) < 0)
		die("fsync dir", dir);
	close(dfd);
	smap = map_file(sfd, SYNC_FILE, dir, pmd);
	pmap = map_file(pfd, PLAIN_FILE, dir, pmd);
	/* The MAP_SYNC case first: its synchronous faults commit the journal,
	 * which is shared by the whole filesystem and would save the control's
	 * metadata too if the control came first. */
	sus = fill_file(smap, SYNC_FILE, npages);
	pus = fill_file(pmap, PLAIN_FILE, npages);
	printf("SMVM: wrote dir=%s pages=%zu fault=%s flush=%s sync_us=%.0f plain_us=%.0f"
	       " sync_blocks=%lld plain_blocks=%lld\n",
	       dir, npages, pmd ? "pmd" : "4k", flush_name[flush_kind], sus, pus, file_blocks(sfd),
	       file_blocks(pfd));
	printf("SMVM: ready-to-crash\n");
	fflush(stdout);
	/* Keep storing the same bytes: the host kills the VM mid-write, and a
	 * page that is rewritten with its own pattern still counts as intact. */
	while (hold) {
		fill_file(smap, SYNC_FILE, npages);
		fill_file(pmap, PLAIN_FILE, npages);
	}
	munmap(smap, FILE_SIZE);
	munmap(pmap, FILE_SIZE);
	close(sfd);
	close(pfd);
	return 0;
}

/* ---- check */

/* Pages of FILE that read back their exact pattern; -1 if the file is gone. */
static long count_intact(const char *dir, int file, size_t npages, long long *blocks)
{
	char path[4096];
	uint64_t *buf = malloc(page_size);
	struct stat st;
	long intact = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file_name[file]);
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		free(buf);
		if (errno != ENOENT)
			die("open", path);
		*blocks = -1;
		return -1;
	}
	if (fstat(fd, &st) < 0)
		die("fstat", path);
	*blocks = st.st_blocks;
	for (size_t i = 0; i < npages; i++) {
		size_t page = page_index(i, npages), w;

		if (pread(fd, buf, page_size, (off_t)(page * page_size)) != (ssize_t)page_size)
			continue;
		for (w = 0; w < page_size / 8 && buf[w] == pattern_word(file, page, w); w++)
			;
		intact += w == page_size / 8;
	}
	close(fd);
	free(buf);
	return intact;
}

static int check(const char *dir, size_t npages)
{
	long long sb, pb;
	long s = count_intact(dir, SYNC_FILE, npages, &sb);
	long p = count_intact(dir, PLAIN_FILE, npages, &pb);

	printf("SMVM: survived dir=%s sync=%ld/%zu plain=%ld/%zu sync_blocks=%lld plain_blocks=%lld\n", dir,
	       s, npages, p, npages, sb, pb);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: mapsync_probe probe DIR\n"
			"       mapsync_probe write DIR PAGES [--pmd] [--hold]\n"
			"       mapsync_probe check DIR PAGES\n");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t npages = 0;
	int pmd = 0, hold = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	detect_flush();
	if (argc == 3 && !strcmp(argv[1], "probe"))
		return probe(argv[2]);
	if (argc < 4)
		usage();
	npages = strtoul(argv[3], NULL, 10);
	if (npages == 0 || npages > FILE_SIZE / page_size)
		usage();
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--pmd"))
			pmd = 1;
		else if (!strcmp(argv[i], "--hold"))
			hold = 1;
		else
			usage();
	}
	if (!strcmp(argv[1], "write"))
		return write_files(argv[2], npages, pmd, hold);
	if (!strcmp(argv[1], "check") && argc == 4)
		return check(argv[2], npages);
	usage();
	return 2;
}
