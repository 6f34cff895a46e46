/* SPDX-License-Identifier: MIT */
/* test_persist.c -- persist, prepare, file_changed and the counters */
#include "config.h"
#include "helpers.h"
#include "region.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define POKE(p, v) (*(volatile unsigned char *)(p) = (unsigned char)(v))

static struct loopfs fs;
static char shm[PATH_MAX];

static void cleanup(void)
{
	loopfs_done(&fs);
	if (shm[0] != '\0')
		unlink(shm);
}

TestSuite(persist, .fini = cleanup);

static int shm_file(size_t len)
{
	snprintf(shm, sizeof(shm), "%s/syncmap-persist-%d", test_dir(), (int)getpid());
	return make_sparse(test_dir(), strrchr(shm, '/') + 1, len, NULL, 0);
}

Test(persist, persist_by_cpu_flush_only_where_it_reaches_the_media)
{
	int fd = shm_file(16 * PG);
	unsigned char *p = syncmap_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	struct syncmap_stats a, b;

	struct sm_region *r;
	int by_cpu = 0;

	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(sm_region_get((uintptr_t)p, &r), SM_FOUND);
	by_cpu = r->cpu_persist != NULL;
	sm_region_put(r);
	/* CPU flush only where it reaches the media: DAX with MAP_SYNC granted. */
	cr_expect_eq(by_cpu, syncmap_mode(p) == SYNCMAP_MODE_KERNEL || fd_is_dax(fd));
	POKE(p + 100, 1);
	syncmap_stats_get(&a);
	cr_expect_eq(syncmap_persist(p + 100, 1), 0);
	cr_expect_eq(syncmap_persist(p, 0), 0, "empty range");
	syncmap_stats_get(&b);
	cr_expect_eq(b.syncs, a.syncs + !by_cpu, "persist by %s: syncs %llu -> %llu",
		     by_cpu ? "CPU flush" : "msync", (unsigned long long)a.syncs,
		     (unsigned long long)b.syncs);
	syncmap_munmap(p, 16 * PG);
	errno = 0;
	cr_expect_eq(syncmap_persist(p, PG), -1, "unmapped");
	cr_expect_eq(errno, ENOMEM);
	close(fd);
}

Test(persist, prepare_makes_writable_without_faults)
{
	int fd = shm_file(64 * PG);
	unsigned char *p;
	struct syncmap_stats a, b;
	char perms[5];

	sm_test_env("SYNCMAP_PRESYNC", "0");
	p = syncmap_mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	cr_assert_eq(syncmap_prepare(p + 3 * PG + 5, 20 * PG), 0);
	cr_assert_eq(maps_perms(p + 10 * PG, perms), 0);
	cr_expect_eq(perms[1], 'w');
	syncmap_stats_get(&a);
	for (int i = 3; i < 23; i++)
		POKE(p + i * PG, i);
	syncmap_stats_get(&b);
	cr_expect_eq(a.faults, b.faults, "prepared pages must not fault");
	/* A read(2) straight into a prepared buffer works; into an unprepared
	 * FAULT page the kernel says EFAULT (it cannot raise our SIGSEGV). */
	int pfd[2];

	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(write(pfd[1], "hello", 5), 5);
	cr_expect_eq(read(pfd[0], p + 5 * PG, 5), 5);
	cr_expect_eq(memcmp(p + 5 * PG, "hello", 5), 0);
	cr_assert_eq(write(pfd[1], "world", 5), 5);
	errno = 0;
	cr_expect_eq(read(pfd[0], p + 40 * PG, 5), -1, "the fact syncmap_prepare exists for");
	cr_expect_eq(errno, EFAULT);
	cr_expect_eq(syncmap_prepare(p + 40 * PG, 5), 0);
	cr_expect_eq(read(pfd[0], p + 40 * PG, 5), 5);
	close(pfd[0]);
	close(pfd[1]);
	/* Past EOF: ENXIO, nothing changed. */
	cr_assert_eq(ftruncate(fd, 32 * PG), 0);
	errno = 0;
	cr_expect_eq(syncmap_prepare(p + 48 * PG, PG), -1);
	cr_expect_eq(errno, ENXIO);
	syncmap_munmap(p, 64 * PG);
	close(fd);
}

/* Punching a hole frees the blocks under a writable grain; after
 * syncmap_file_changed the next write there is made durable again, so its
 * block is allocated before any msync. */
Test(persist, file_changed_reprotects_freed_blocks)
{
	const size_t len = (size_t)4 << 20;
	unsigned char *p;
	char perms[5];
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "hole.dat", len, NULL, 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	memset(p + 8 * PG, 1, PG);
	cr_assert_eq(range_allocated(fd, 8 * PG, PG), 1);
	cr_assert_eq(syncmap_persist(p + 8 * PG, PG), 0);
	cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * PG, PG), 0);
	cr_assert_eq(range_allocated(fd, 8 * PG, PG), 0, "the hole is there");
	cr_assert_eq(syncmap_file_changed(fd, 8 * PG, PG), 0);
	cr_assert_eq(maps_perms(p + 8 * PG, perms), 0);
	cr_expect_eq(perms[1], '-', "the freed grain is read-only again");
	POKE(p + 8 * PG + 9, 2);
	cr_expect_eq(range_allocated(fd, 8 * PG, PG), 1, "rewritten page allocated before any msync");
	/* A control without the call: the block stays a hole (delalloc).  On
	 * DAX the kernel allocates at the write fault itself (unsynced, which
	 * FIEMAP cannot tell), so there the control says nothing. */
	if (!fd_is_dax(fd)) {
		cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * PG, PG), 0);
		POKE(p + 8 * PG + 9, 3);
		cr_expect_eq(range_allocated(fd, 8 * PG, PG), 0,
			     "without file_changed the write is not made durable");
	}
	cr_expect_eq(syncmap_file_changed(fd, -1, 0), -1);
	cr_expect_eq(errno, EINVAL);
	cr_expect_eq(syncmap_file_changed(-1, 0, 0), -1);
	cr_expect_eq(errno, EBADF);
	syncmap_munmap(p, len);
	close(fd);
}

Test(persist, stats_printed_at_exit_when_asked)
{
	int pfd[2];
	char out[512] = "";
	pid_t pid;
	ssize_t n;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		int fd = shm_file(4 * PG);
		unsigned char *p;

		dup2(pfd[1], 2);
		setenv("SYNCMAP_STATS", "1", 1); /* before the library's first use */
		p = syncmap_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		POKE(p, 1);
		unlink(shm);
		exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], out, sizeof(out) - 1);
	waitpid(pid, NULL, 0);
	cr_assert_gt(n, 0);
	out[n] = '\0';
	if (expected_mode(test_dir()) == SYNCMAP_MODE_KERNEL) {
		cr_expect(strstr(out, "maps_kernel=1 ") != NULL, "stderr: %s", out);
	} else {
		cr_expect(strstr(out, "maps_fault=1 ") != NULL, "stderr: %s", out);
		cr_expect(strstr(out, "faults=1 ") != NULL, "stderr: %s", out);
	}
	close(pfd[0]);
}

Test(persist, bad_environment_is_reported_and_ignored)
{
	sm_test_env("SYNCMAP_GRAIN", "12345");
	cr_expect_eq(sm_cfg.grain, SM_DEFAULT_GRAIN);
	sm_test_env("SYNCMAP_GRAIN", "16k");
	cr_expect_eq(sm_cfg.grain, 16384);
	sm_test_env("SYNCMAP_MODE", "sometimes");
	cr_expect_eq(sm_cfg.mode, SM_PREF_AUTO);
	sm_test_env("SYNCMAP_FLUSH", "CPU");
	cr_expect_eq(sm_cfg.flush, SM_FLUSH_CPU);
}
