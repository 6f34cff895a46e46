/* SPDX-License-Identifier: MIT */
/* test_region.c -- the table under concurrency: faulting threads while others
 * map and unmap, and a forked child writing through inherited mappings */
#include "helpers.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
/* 256 MiB on the host; 64 MiB in the DAX guest, whose filesystems are small
 * and whose (emulated) faults are slow. */
#define BIG (getenv("SYNCMAP_TEST_DIR") ? (size_t)64 << 20 : (size_t)256 << 20)
#define WRITERS 8
#define PER_WRITER 1500
#define WRITES (getenv("SYNCMAP_TEST_DIR") ? 400 : PER_WRITER)
#define CHURNERS 2

static struct loopfs fs;

static void cleanup(void)
{
	loopfs_done(&fs);
}

TestSuite(region, .fini = cleanup);

/* Where to run: ext4 on a loop device when root, tmpfs otherwise would not be
 * what the issue asks; without root these tests skip. */

struct writer {
	unsigned char *p;
	unsigned id;
	size_t pages[PER_WRITER];
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (w->id + 1);

	for (size_t i = 0; i < (size_t)WRITES; i++) {
		/* Disjoint pages per thread (page % WRITERS == id), random order,
		 * so threads meet in the same grains all the time. */
		size_t page = (rnd(&seed) % (BIG / PG / WRITERS)) * WRITERS + w->id;

		w->pages[i] = page;
		memset(w->p + page * PG, pattern(page, 5), 64);
	}
	return NULL;
}

static atomic_int stop;
static atomic_long churned;

static void *churn_main(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	char path[PATH_MAX];
	unsigned char buf;
	long n = 0;

	snprintf(path, sizeof(path), "%s/churn-%u.dat", fs.dir, id);
	while (!atomic_load(&stop)) {
		int fd = open(path, O_RDWR | O_CREAT, 0644);
		size_t len = (size_t)(1 + n % 8) * 64 * 1024;
		unsigned char *q;

		cr_assert(fd >= 0);
		cr_assert_eq(ftruncate(fd, (off_t)len), 0);
		q = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		cr_assert_neq(q, MAP_FAILED);
		q[len - 1] = (unsigned char)n;
		if (n % 3 == 0) /* sometimes only part of it first */
			cr_assert_eq(syncmap_munmap(q + len / 2, len / 2), 0);
		cr_assert_eq(syncmap_munmap(q, n % 3 == 0 ? len / 2 : len), 0);
		cr_assert_eq(pread(fd, &buf, 1, (off_t)len - 1), 1);
		cr_assert_eq(buf, (unsigned char)n);
		close(fd);
		n++;
	}
	atomic_fetch_add(&churned, n);
	return NULL;
}

Test(region, writers_while_others_map_and_unmap, .timeout = 240)
{
	static struct writer w[WRITERS];
	pthread_t wt[WRITERS], ct[CHURNERS];
	unsigned char *p, buf[64];
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 512, "commit=60");
	fd = make_sparse(fs.dir, "big.dat", BIG, NULL, 0);
	cr_assert(fd >= 0);
	p = syncmap_mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	for (unsigned i = 0; i < CHURNERS; i++)
		pthread_create(&ct[i], NULL, churn_main, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < WRITERS; i++) {
		w[i].p = p;
		w[i].id = i;
		pthread_create(&wt[i], NULL, writer_main, &w[i]);
	}
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(wt[i], NULL);
	atomic_store(&stop, 1);
	for (unsigned i = 0; i < CHURNERS; i++)
		pthread_join(ct[i], NULL);
	cr_expect_gt(atomic_load(&churned), 0, "the map/unmap threads never ran");
	for (unsigned i = 0; i < WRITERS; i++)
		for (size_t j = 0; j < (size_t)WRITES; j++) {
			size_t page = w[i].pages[j];

			/* The guarantee, not only the content (which a plain mapping
			 * has too): nothing was persisted, yet every written page is
			 * in an allocated, written extent (plain mmap: delalloc). */
			cr_assert_eq(range_allocated(fd, (off_t)(page * PG), PG), 1,
				     "thread %u page %zu written but not allocated", i, page);

			cr_assert_eq(pread(fd, buf, sizeof(buf), (off_t)(page * PG)), (ssize_t)sizeof(buf));
			for (size_t k = 0; k < sizeof(buf); k++)
				cr_assert_eq(buf[k], pattern(page, 5), "thread %u page %zu byte %zu", i, page,
					     k);
		}
	syncmap_munmap(p, BIG);
	close(fd);
}

Test(region, forked_child_writes_through_inherited_mapping)
{
	const size_t len = (size_t)8 << 20;
	unsigned char *p, buf;
	pid_t pid;
	int fd, st;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	fd = make_sparse(fs.dir, "fork.dat", len, NULL, 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	p[0] = 0xaa; /* the parent's first grain */
	pid = fork();
	if (pid == 0) {
		/* New grains fault in the child: its handler, its table copy.
		 * Nothing is persisted: the allocation is what is checked. */
		for (size_t i = 1; i < len / PG; i += 7)
			p[i * PG] = pattern(i, 6);
		_exit(syncmap_mode(p) != SYNCMAP_MODE_NONE ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (status %#x)", st);
	for (size_t i = 1; i < len / PG; i += 7)
		cr_assert_eq(range_allocated(fd, (off_t)(i * PG), PG), 1,
			     "page %zu, written by the child, not allocated", i);
	cr_assert_eq(syncmap_persist(p, len), 0);
	for (size_t i = 1; i < len / PG; i += 7) {
		cr_assert_eq(pread(fd, &buf, 1, (off_t)(i * PG)), 1);
		cr_assert_eq(buf, pattern(i, 6), "page %zu via pread", i);
		cr_assert_eq(p[i * PG], pattern(i, 6), "page %zu via the parent's mapping", i);
	}
	p[3 * PG + 5] = 0xbb; /* the parent goes on writing */
	cr_expect_eq(pread(fd, &buf, 1, 3 * PG + 5), 1);
	cr_expect_eq(buf, 0xbb);
	syncmap_munmap(p, len);
	close(fd);
}
