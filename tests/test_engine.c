/* SPDX-License-Identifier: MIT */
/* test_engine.c -- the background thread: prepare_async and pre-sync ahead of sequential writers */
#include "engine.h"
#include "helpers.h"
#include "region.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define POKE(p, v) (*(volatile unsigned char *)(p) = (unsigned char)(v))

static struct loopfs fs;

static void cleanup(void)
{
	loopfs_done(&fs);
}

TestSuite(engine, .fini = cleanup);

static unsigned char *map_file(const char *name, size_t len, int *fdp)
{
	int fd = make_sparse(fs.dir, name, len, NULL, 0);
	unsigned char *p;

	cr_assert(fd >= 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	*fdp = fd;
	return p;
}

/* Up to 10 s for the engine to mark r busy (it is then inside its window): 1 if it did. */
static int wait_engine_busy(struct sm_region *r)
{
	for (time_t until = time(NULL) + 10; time(NULL) < until; sched_yield())
		if (atomic_load(&r->eng_busy) != 0)
			return 1;
	return 0;
}

Test(engine, prepare_async_readies_the_range)
{
	const size_t len = (size_t)8 << 20;
	struct syncmap_stats a, b;
	unsigned char *p;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	p = map_file("async.dat", len, &fd);
	cr_assert_eq(syncmap_prepare_async(p + PG, 2 << 20), 0);
	sm_engine_drain();
	cr_assert_eq(range_allocated(fd, 0, 2 << 20), 1, "the engine made the range durable");
	syncmap_stats_get(&a);
	for (size_t i = 1; i < (2 << 20) / PG; i++)
		POKE(p + i * PG, i);
	syncmap_stats_get(&b);
	cr_expect_eq(a.faults, b.faults, "no fault where the engine prepared");
	syncmap_munmap(p, len);
	close(fd);
}

Test(engine, sequential_writer_is_run_ahead_of)
{
	const size_t len = (size_t)16 << 20;
	struct syncmap_stats st;
	unsigned char *p;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "1");
	sm_test_env("SYNCMAP_GRAIN", "65536");
	p = map_file("seq.dat", len, &fd);
	FAULT_OR_SKIP(p);
	for (size_t i = 0; i < len / PG; i++) {
		POKE(p + i * PG, i);
		if (i % 16 == 15) {
			/* A log writer persists what it wrote; entering the library
			 * is also what starts the engine once the handler has seen
			 * faults come in order. */
			cr_assert_eq(syncmap_persist(p + (i - 15) * PG, 16 * PG), 0);
			usleep(500); /* a writer with something else to do */
		}
	}
	syncmap_stats_get(&st);
	/* The engine readied grains ahead, and the writer faulted on fewer
	 * grains than it wrote (its faults at the windows' tripwires are cheap:
	 * no sync).  In the one-CPU DAX guest the engine runs only while the
	 * writer sleeps, so this asks for help, not for a given amount of it. */
	cr_expect_geq(st.presync_grains, len / 65536 / 4, "the engine readied only %llu grains",
		      (unsigned long long)st.presync_grains);
	cr_expect_lt(st.faults, len / 65536, "faults %llu for %zu grains: the writer got no help",
		     (unsigned long long)st.faults, len / 65536);
	cr_assert_eq(range_allocated(fd, 0, len), 1);
	syncmap_munmap(p, len);
	close(fd);
}

/* A write fault inside the range the engine is readying waits for the
 * engine instead of syncing its grain itself.  The engine readies the
 * whole prepare_async range with one sync; the fault comes while it works
 * (its busy mark is seen set first, and 64 MiB take it far longer than the
 * write needs), so the only sync is the engine's.  Without the wait the
 * faulting thread syncs its grain too: two. */
Test(engine, fault_inside_the_engines_window_waits_for_it)
{
	const size_t len = (size_t)64 << 20;
	struct syncmap_stats a, b;
	struct sm_region *r;
	unsigned char *p;
	int fd, busy;

	LOOPFS_OR_SKIP(&fs, "ext4", 256, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	sm_test_env("SYNCMAP_GRAIN", "65536");
	p = map_file("window.dat", len, &fd);
	FAULT_OR_SKIP(p);
	cr_assert_eq(sm_region_get((uintptr_t)p, &r), SM_FOUND);
	syncmap_stats_get(&a);
	cr_assert_eq(syncmap_prepare_async(p, len), 0);
	busy = wait_engine_busy(r);
	sm_region_put(r);
	cr_assert(busy, "the engine never marked the range it was readying");
	POKE(p + len - len / 4, 1);
	sm_engine_drain();
	syncmap_stats_get(&b);
	cr_expect_eq(b.syncs - a.syncs, 1,
		     "%llu syncs: the faulting thread synced a grain the engine was readying",
		     (unsigned long long)(b.syncs - a.syncs));
	cr_assert_eq(range_allocated(fd, 0, len), 1);
	syncmap_munmap(p, len);
	close(fd);
}

/* Unmapping while the engine readies the range waits for the engine's
 * reference.  The race is made, not hoped for: each round unmaps as soon as
 * the engine has marked the range busy (it is then inside sm_ready), and the
 * test counts the rounds where the mark was still set at the unmap. */
Test(engine, unmap_while_engine_works)
{
	const size_t len = (size_t)32 << 20;
	int hits = 0;
	unsigned char *p;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 128, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	for (int round = 0; round < 20; round++) {
		struct sm_region *r;
		int busy;

		p = map_file("race.dat", len, &fd);
		FAULT_OR_SKIP(p); /* busy marks are FAULT mode's (KERNEL: prefaults only) */
		cr_assert_eq(sm_region_get((uintptr_t)p, &r), SM_FOUND);
		cr_assert_eq(syncmap_prepare_async(p, len), 0);
		busy = wait_engine_busy(r);
		busy = atomic_load(&r->eng_busy) != 0; /* still working, as far as we can tell */
		sm_region_put(r);
		cr_assert_eq(syncmap_munmap(p, len), 0); /* waits for the engine's ref */
		hits += busy;
		close(fd);
	}
	sm_engine_drain();
	cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_NONE);
	cr_expect_geq(hits, 1, "the engine was never busy at an unmap in 20 rounds: the race was not made");
	cr_log_info("unmap met a busy engine in %d of 20 rounds", hits);
}

Test(engine, forked_child_restarts_engine)
{
	const size_t len = (size_t)4 << 20;
	unsigned char *p;
	pid_t pid;
	int fd, st;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	p = map_file("fork.dat", len, &fd);
	POKE(p, 1);
	pid = fork();
	if (pid == 0) {
		if (syncmap_prepare_async(p + PG, len - PG) != 0)
			_exit(2);
		sm_engine_drain();
		_exit(range_allocated(fd, 0, len) == 1 ? 0 : 3);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	syncmap_munmap(p, len);
	close(fd);
}

struct thaw {
	int fd;
	unsigned ms;
};

static void *thaw_later(void *arg)
{
	const struct thaw *t = arg;

	usleep(t->ms * 1000);
	ioctl(t->fd, FITHAW, 0);
	return NULL;
}

/* The same with an engine far slower than any time limit a writer might set
 * itself: the filesystem is frozen while the engine readies the window (its
 * touch waits for the thaw), and thawed 2.5 s later.  A writer that stops
 * waiting after a while (main before this test: 1 s) syncs the grain too:
 * two syncs where one does the work. */
Test(engine, fault_inside_a_slow_engine_window_still_waits, .timeout = 60)
{
	const size_t len = (size_t)4 << 20;
	struct syncmap_stats a, b;
	struct thaw th;
	struct sm_region *r;
	pthread_t t;
	unsigned char *p;
	int fd, busy;

	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	sm_test_env("SYNCMAP_GRAIN", "65536");
	p = map_file("slow.dat", len, &fd);
	FAULT_OR_SKIP(p);
	th.fd = open(fs.dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(th.fd, 0);
	th.ms = 2500;
	if (ioctl(th.fd, FIFREEZE, 0) != 0)
		cr_skip_test("FIFREEZE refused: %s", strerror(errno));
	cr_assert_eq(pthread_create(&t, NULL, thaw_later, &th), 0);
	cr_assert_eq(sm_region_get((uintptr_t)p, &r), SM_FOUND);
	syncmap_stats_get(&a);
	cr_assert_eq(syncmap_prepare_async(p, len), 0);
	busy = wait_engine_busy(r);
	sm_region_put(r);
	cr_assert(busy, "the engine never marked the range it was readying");
	POKE(p + len / 2, 1);
	pthread_join(t, NULL);
	close(th.fd);
	sm_engine_drain();
	syncmap_stats_get(&b);
	cr_expect_eq(b.syncs - a.syncs, 1, "%llu syncs: the writer stopped waiting for a slow engine",
		     (unsigned long long)(b.syncs - a.syncs));
	cr_assert_eq(range_allocated(fd, 0, len), 1);
	syncmap_munmap(p, len);
	close(fd);
}

static int threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The engine allowed, with this grain and depth (read at the library's first call). */
static void presync_env(const char *grain, const char *depth)
{
	sm_test_env("SYNCMAP_PRESYNC", "1");
	sm_test_env("SYNCMAP_PRESYNC_DEPTH", depth);
	sm_test_env("SYNCMAP_GRAIN", grain);
}

/* A 4 MiB FAULT-or-KERNEL mapping with the engine allowed, 64 KiB grains and
 * depth 16, and the number of threads before it was made. */
static unsigned char *map_for_start(const char *name, int *fdp, int *threads_before)
{
	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	presync_env("65536", "16");
	*threads_before = threads();
	return map_file(name, (size_t)4 << 20, fdp);
}

/* Mapping and first writes do not start the engine: a process that only
 * maps stays single-threaded, so a sandbox's later unshare(CLONE_NEWUSER)
 * still works (the kernel refuses it to multithreaded callers). */
Test(engine, mapping_alone_does_not_start_a_thread)
{
	const size_t len = (size_t)4 << 20;
	unsigned char *p;
	int fd, before;

	p = map_for_start("alone.dat", &fd, &before);
	POKE(p, 1); /* first writes, not in order, the first one at offset 0 */
	POKE(p + 5 * 65536, 1);
	POKE(p + 2 * 65536, 1);
	cr_assert_eq(syncmap_persist(p + 2 * 65536, 1), 0);
	cr_expect_eq(threads(), before, "a thread was started for a mapping that only took three writes");
	if (before == 1)
		cr_expect_eq(unshare(CLONE_NEWUSER), 0, "unshare(CLONE_NEWUSER): %s", strerror(errno));
	syncmap_munmap(p, len);
	close(fd);
}

/* ... and a sequential writer does start it, at its next call into the
 * library. */
Test(engine, sequential_writer_starts_the_engine)
{
	const size_t len = (size_t)4 << 20;
	unsigned char *p;
	int fd, before;

	p = map_for_start("seqstart.dat", &fd, &before);
	FAULT_OR_SKIP(p);
	for (int g = 0; g < 4; g++)
		POKE(p + (size_t)g * 65536, g);
	cr_assert_eq(syncmap_persist(p, 4 * 65536), 0);
	cr_expect_eq(threads(), before + 1, "threads %d before, %d after a sequential writer persisted",
		     before, threads());
	syncmap_munmap(p, len);
	close(fd);
}

/* A program that only stores never calls into the library, so the engine
 * never starts for it; the fault handler then readies windows itself (4
 * grains, then 16): 64 grains written in order take 6 syncs, not 64, every
 * block of the file is allocated and written, and no thread is made. */
Test(engine, store_only_sequential_writer_is_readied_in_windows)
{
	const size_t len = (size_t)4 << 20;
	struct syncmap_stats a, b;
	unsigned char *p;
	int fd, before;

	p = map_for_start("storeonly.dat", &fd, &before);
	FAULT_OR_SKIP(p);
	syncmap_stats_get(&a);
	for (size_t i = 0; i < len / PG; i++)
		POKE(p + i * PG, i + 1);
	syncmap_stats_get(&b);
	cr_expect_leq(b.syncs - a.syncs, 8, "%llu syncs for 64 grains written in order",
		      (unsigned long long)(b.syncs - a.syncs));
	cr_expect_leq(b.faults - a.faults, 8, "%llu faults for 64 grains written in order",
		      (unsigned long long)(b.faults - a.faults));
	cr_expect_eq(threads(), before, "a thread was started by stores alone");
	cr_expect_eq(range_allocated(fd, 0, len), 1, "a readied block is not allocated and written");
	for (size_t i = 0; i < len / PG; i++)
		cr_assert_eq(p[i * PG], (unsigned char)(i + 1), "page %zu", i);
	/* The engine still starts at the writer's next call. */
	cr_assert_eq(syncmap_persist(p, len), 0);
	cr_expect_eq(threads(), before + 1, "no engine after the sequential writer persisted");
	syncmap_munmap(p, len);
	close(fd);
}

/* The handler's windows are bounded (1 MiB): the faulting write waits for
 * all of one, and a sparse file grows by all of it.  With 256 KiB grains
 * and depth 16, 8 MiB written in order take at least 8 syncs (4 before the
 * bound: windows of 4 MiB). */
Test(engine, store_only_windows_are_bounded)
{
	const size_t len = (size_t)8 << 20, grain = (size_t)256 << 10;
	struct syncmap_stats a, b;
	unsigned char *p;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	presync_env("262144", "16");
	p = map_file("bounded.dat", len, &fd);
	FAULT_OR_SKIP(p);
	syncmap_stats_get(&a);
	for (size_t i = 0; i < len / PG; i++)
		POKE(p + i * PG, 1);
	syncmap_stats_get(&b);
	cr_expect_geq(b.syncs - a.syncs, len / ((size_t)1 << 20),
		      "%llu syncs for %zu grains: a window above 1 MiB",
		      (unsigned long long)(b.syncs - a.syncs), len / grain);
	cr_expect_leq(b.syncs - a.syncs, len / grain / 2, "%llu syncs for %zu grains: no windows",
		      (unsigned long long)(b.syncs - a.syncs), len / grain);
	cr_expect_eq(range_allocated(fd, 0, len), 1, "a readied block is not allocated and written");
	syncmap_munmap(p, len);
	close(fd);
}

/* A window the handler cannot make durable (no space for all of it) must
 * not cost the write its own grain: with room for about two grains left,
 * the writer's second grain (whose window is four) still gets written. */
Test(engine, a_window_without_space_still_readies_the_writers_grain)
{
	const size_t len = (size_t)4 << 20, room = (size_t)160 << 10;
	struct loopfs own; /* filled up: not the suite's */
	struct statvfs sv;
	unsigned char *p;
	char path[512];
	int fd, filler, status;
	pid_t pid;

	OWN_LOOPFS_OR_SKIP(&own, "ext4", 64, "commit=60"); /* made with -m 0: no root reserve */
	presync_env("65536", "16");
	fd = make_sparse(own.dir, "nospace.dat", len, NULL, 0);
	cr_assert_geq(fd, 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	snprintf(path, sizeof(path), "%s/filler", own.dir);
	filler = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(filler, 0);
	cr_assert_eq(fstatvfs(filler, &sv), 0);
	cr_assert_gt((size_t)sv.f_bavail * sv.f_bsize, room + ((size_t)1 << 20));
	cr_assert_eq(posix_fallocate(filler, 0, (off_t)((size_t)sv.f_bavail * sv.f_bsize - room)), 0);
	cr_assert_eq(fsync(filler), 0);
	cr_assert_eq(fstatvfs(filler, &sv), 0);
	cr_assert_lt((size_t)sv.f_bavail * sv.f_bsize, (size_t)4 * 65536, "%zu KiB free: room for the window",
		     (size_t)sv.f_bavail * sv.f_bsize >> 10);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		POKE(p, 1);	    /* the first grain, alone */
		POKE(p + 65536, 2); /* in order: a window of four, no space for it */
		_exit(p[65536] == 2 ? 0 : 3);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the writer's own grain was lost with its window: %s %d",
		  WIFSIGNALED(status) ? "killed by signal" : "exit",
		  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	cr_expect_eq(range_allocated(fd, 65536, 65536), 1, "the second grain is not allocated and written");
	close(filler);
	syncmap_munmap(p, len);
	close(fd);
	loopfs_done(&own);
}

/* A signal handler that interrupts the writer's fault after the engine's
 * window was marked busy, but before the request was queued and the engine
 * woken, and writes into that window: it must not wait for a request that
 * only the interrupted fault can send (it hung forever before the marking
 * thread was recorded).  The hook raises the signal at exactly that point. */
static unsigned char *volatile nested_target;
static volatile sig_atomic_t nested_done, hook_armed;

static void nested_writer(int sig)
{
	(void)sig;
	POKE(nested_target, 7); /* inside the window just marked */
	nested_done = 1;
}

void sm_test_engine_marked_hook(void)
{
	if (hook_armed) {
		hook_armed = 0;
		raise(SIGUSR1);
	}
}

Test(engine, signal_handler_writing_into_a_window_being_queued_does_not_hang, .timeout = 25)
{
	const size_t len = (size_t)4 << 20;
	struct sigaction sa = {0};
	unsigned char *p;
	time_t t0;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	presync_env("65536", "4");
	p = map_file("nested.dat", len, &fd);
	FAULT_OR_SKIP(p);
	cr_assert_eq(sm_engine_start(), 0);
	sa.sa_handler = nested_writer;
	sigaction(SIGUSR1, &sa, NULL);
	nested_target = p + 2 * 65536; /* the window after the first fault: grains 1..4 */
	hook_armed = 1;
	t0 = time(NULL);
	POKE(p, 1); /* the first fault of the mapping asks for a window */
	cr_assert(nested_done, "the nested write did not run");
	cr_expect_lt(time(NULL) - t0, 5, "the nested write waited %lld s for its own window",
		     (long long)(time(NULL) - t0));
	sm_engine_drain();
	cr_assert_eq(range_allocated(fd, 0, 5 * 65536), 1);
	syncmap_munmap(p, len);
	close(fd);
}
