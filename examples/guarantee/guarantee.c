/* SPDX-License-Identifier: MIT */
/* guarantee.c -- what libsyncmap guarantees, shown next to a plain mapping
 *
 *   guarantee write DIR PAGES   map DIR/plain.dat with mmap(2) and
 *                               DIR/syncmap.dat with syncmap_mmap(3), store
 *                               into every page of both, persist the first
 *                               half (msync / syncmap_persist), print
 *                               "ready", then wait for a line on stdin with
 *                               the mappings still live
 *   guarantee check DIR PAGES   after a crash (or on a copy of the device
 *                               taken while "write" waited): per file, the
 *                               pages backed by data blocks and the
 *                               persisted pages that read back intact
 *
 * The store of every page returned; only half were persisted.  The plain
 * mapping's other pages have no blocks after the crash (the allocation was
 * still delayed in memory); libsyncmap's have theirs, because a page is
 * writable only once its blocks are allocated and committed.
 */
#define _GNU_SOURCE
#include <syncmap.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096

static int open_file(const char *dir, const char *name, size_t len, int create)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, create ? O_RDWR | O_CREAT | O_TRUNC : O_RDONLY, 0644);
	if (fd < 0 || (create && ftruncate(fd, (off_t)len) != 0)) {
		fprintf(stderr, "guarantee: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static void fill(unsigned char *p, size_t pages)
{
	for (size_t i = 0; i < pages; i++)
		memset(p + i * PG, (int)(i % 251) + 1, PG);
}

static int do_write(const char *dir, size_t pages)
{
	size_t len = pages * PG;
	int pfd = open_file(dir, "plain.dat", len, 1), sfd = open_file(dir, "syncmap.dat", len, 1);
	unsigned char *plain = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
	unsigned char *lib = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	char line[16];

	if (plain == MAP_FAILED || lib == MAP_FAILED) {
		fprintf(stderr, "guarantee: mapping failed: %s\n", strerror(errno));
		return 1;
	}
	fill(plain, pages);
	fill(lib, pages);
	if (msync(plain, len / 2, MS_SYNC) != 0 || syncmap_persist(lib, len / 2) != 0) {
		fprintf(stderr, "guarantee: persist failed: %s\n", strerror(errno));
		return 1;
	}
	printf("mode %s; %zu pages stored in each file, the first %zu persisted\nready\n",
	       syncmap_mode(lib) == SYNCMAP_MODE_KERNEL	 ? "KERNEL"
	       : syncmap_mode(lib) == SYNCMAP_MODE_FAULT ? "FAULT"
							 : "NONE",
	       pages, pages / 2);
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL) {
		/* stdin closed: exit all the same */
	}
	return 0;
}

static void check_one(const char *dir, const char *name, size_t pages)
{
	int fd = open_file(dir, name, 0, 0);
	size_t backed = 0, intact = 0;
	unsigned char buf[PG], want[PG];

	for (size_t i = 0; i < pages; i++) {
		off_t at = (off_t)(i * PG);

		/* SEEK_DATA lands on the page itself only if blocks back it. */
		backed += lseek(fd, at, SEEK_DATA) == at;
		memset(want, (int)(i % 251) + 1, PG);
		if (i < pages / 2 && pread(fd, buf, PG, at) == PG && memcmp(buf, want, PG) == 0)
			intact++;
	}
	printf("%-12s pages with blocks: %5zu of %zu   persisted pages intact: %zu of %zu\n", name, backed,
	       pages, intact, pages / 2);
	close(fd);
}

int main(int argc, char **argv)
{
	size_t pages = argc == 4 ? strtoul(argv[3], NULL, 10) : 0;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("guarantee (libsyncmap) %s\n", syncmap_version_string());
		return 0;
	}
	if (argc != 4 || pages < 2 || pages > (1u << 20)) {
		fprintf(stderr, "usage: guarantee write|check DIR PAGES (2..1048576)\n");
		return 2;
	}
	if (strcmp(argv[1], "write") == 0)
		return do_write(argv[2], pages);
	if (strcmp(argv[1], "check") == 0) {
		check_one(argv[2], "plain.dat", pages);
		check_one(argv[2], "syncmap.dat", pages);
		return 0;
	}
	fprintf(stderr, "usage: guarantee write|check DIR PAGES (2..1048576)\n");
	return 2;
}
