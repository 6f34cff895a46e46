/* SPDX-License-Identifier: MIT */
/* test_inject.c -- the sync step made to fail (EIO, ENOSPC, EDQUOT) at every point that syncs:
 * a write fault, syncmap_prepare, the engine, mprotect and mremap, widening at the VMA limit */
#include "durable.h"
#include "engine.h"
#include "helpers.h"
#include "region.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096

static struct loopfs fs;

static void cleanup(void)
{
	atomic_store(&sm_inject_countdown, 0);
	loopfs_done(&fs);
}

TestSuite(inject, .fini = cleanup);

/* A sparse file on a fresh ext4 and a FAULT mapping of all of it.  The
 * page cache of ext4 is what makes the oracle below work: a grain that was
 * write-touched but never synced is still delayed-allocation (FIEMAP
 * DELALLOC), a synced one is allocated and written. */
static unsigned char *setup_presync(size_t len, const char *grain, const char *presync, int *fdp)
{
	unsigned char *p;
	int fd;

	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 128, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", presync);
	sm_test_env("SYNCMAP_GRAIN", grain);
	fd = make_sparse(fs.dir, "inject.dat", len, NULL, 0);
	cr_assert(fd >= 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(syncmap_mode(p), SYNCMAP_MODE_FAULT, "ext4 on a loop device refuses MAP_SYNC");
	/* The engine starts when it has work (a sequential writer seen by two
	 * faults, prepare_async); these tests inject into its first window, so
	 * it runs from the start. */
	if (presync[0] == '1')
		cr_assert_eq(sm_engine_start(), 0);
	*fdp = fd;
	return p;
}

static unsigned char *setup(size_t len, const char *grain, int *fdp)
{
	return setup_presync(len, grain, "0", fdp);
}

static void arm(long countdown, int err)
{
	sm_inject_errno = err;
	atomic_store(&sm_inject_countdown, countdown);
}

/* SIGBUS caught and returned from with siglongjmp, so one test can meet
 * many failures. */
static sigjmp_buf bus_jmp;
static void *volatile bus_addr;
static volatile int bus_code;

static void on_bus(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)uctx;
	bus_addr = si->si_addr;
	bus_code = si->si_code;
	siglongjmp(bus_jmp, 1);
}

static void catch_sigbus(void)
{
	struct sigaction sa = {0};

	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO;
	cr_assert_eq(sigaction(SIGBUS, &sa, NULL), 0);
}

/* 1 if the store raised SIGBUS (and did not happen), 0 if it went through. */
static int store(unsigned char *p, unsigned char v)
{
	if (sigsetjmp(bus_jmp, 1))
		return 1;
	*(volatile unsigned char *)p = v;
	return 0;
}

static int writable(const void *p)
{
	char perms[5] = "";

	cr_assert_eq(maps_perms(p, perms), 0);
	return perms[1] == 'w';
}

static uint64_t errors(void)
{
	struct syncmap_stats st;

	syncmap_stats_get(&st);
	return st.errors;
}

static uint64_t syncs(void)
{
	struct syncmap_stats st;

	syncmap_stats_get(&st);
	return st.syncs;
}

/* The writable ranges of /proc/self/maps inside [p, p + len), read once:
 * at the VMA limit the file has 65,000 lines. */
static size_t writable_ranges(const unsigned char *p, size_t len, uintptr_t (*out)[2], size_t max)
{
	FILE *f = fopen("/proc/self/maps", "re");
	uintptr_t lo = (uintptr_t)p, hi = lo + len;
	char line[512];
	size_t n = 0;

	cr_assert(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL && n < max) {
		unsigned long s, e;
		char perms[5];

		if (sscanf(line, "%lx-%lx %4s", &s, &e, perms) == 3 && perms[1] == 'w' && s < hi && e > lo) {
			out[n][0] = s > lo ? s : lo;
			out[n][1] = e < hi ? e : hi;
			n++;
		}
	}
	fclose(f);
	return n;
}

/* The guarantee, checked from two sides for every page of [p, p + len):
 * where the kernel maps it writable, its blocks are allocated and written
 * (FIEMAP: a sync wrote them back) and the library's grain bit is set. */
static void check_no_unsynced_writable(unsigned char *p, size_t len, int fd)
{
	static uintptr_t w[4096][2];
	size_t n = writable_ranges(p, len, w, 4096);
	struct sm_region *r;

	for (size_t i = 0; i < n; i++)
		for (uintptr_t a = w[i][0]; a < w[i][1]; a += PG) {
			size_t off = a - (uintptr_t)p;

			cr_assert_eq(
				range_allocated(fd, (off_t)off, PG), 1,
				"page %zu is writable but was never synced (FIEMAP: not allocated+written)",
				off / PG);
			cr_assert_eq(sm_region_get(a, &r), SM_FOUND);
			cr_assert(sm_bit_test(r->bits, sm_grain_of(r, a)),
				  "page %zu is writable but its grain is not marked durable", off / PG);
			sm_region_put(r);
		}
}

static const int errnos[] = {EIO, ENOSPC, EDQUOT};

Test(inject, failed_fault_sync_is_sigbus_for_each_errno)
{
	const size_t len = 64 * PG;
	unsigned char *p, b;
	int fd;

	p = setup(len, "16384", &fd);
	catch_sigbus();
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
		unsigned char *at = p + (4 * i + 1) * 4 * PG + 123; /* a fresh 16 KiB grain each time */
		uint64_t e0 = errors(), s0 = syncs();

		arm(1, errnos[i]);
		cr_assert_eq(store(at, 0x11), 1, "errno %d: the write went through", errnos[i]);
		cr_expect_eq(atomic_load(&sm_inject_countdown), 0, "the injection point was not reached");
		cr_expect_eq(syncs(), s0, "a sync was counted although it failed");
		cr_expect_eq(bus_addr, at, "SIGBUS at %p, the write was at %p", bus_addr, (void *)at);
		cr_expect_eq(bus_code, BUS_ADRERR);
		cr_expect_eq(errors(), e0 + 1, "stats.errors not counted");
		cr_expect(!writable(at), "a grain whose sync failed was made writable");
		/* Nothing was stored, and the next try (no injection) works. */
		cr_expect_eq(pread(fd, &b, 1, at - p), 1);
		cr_expect_eq(b, 0);
		cr_assert_eq(store(at, 0x22), 0);
		cr_expect(writable(at));
		cr_expect_eq(range_allocated(fd, (off_t)(at - p) & ~(off_t)(PG - 1), PG), 1);
	}
	check_no_unsynced_writable(p, len, fd);
	syncmap_munmap(p, len);
	close(fd);
}

Test(inject, prepare_returns_the_errno_and_upgrades_nothing)
{
	const size_t len = 64 * PG;
	unsigned char *p;
	int fd;

	p = setup(len, "16384", &fd);
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++) {
		unsigned char *at = p + i * 16 * PG;
		uint64_t e0 = errors(), s0 = syncs();

		arm(1, errnos[i]);
		errno = 0;
		cr_expect_eq(syncmap_prepare(at, 16 * PG), -1);
		cr_expect_eq(syncs(), s0);
		cr_expect_eq(errno, errnos[i], "prepare: errno %d, injected %d", errno, errnos[i]);
		cr_expect_eq(errors(), e0, "a failed prepare is not a failed fault");
		for (size_t k = 0; k < 16; k++)
			cr_expect(!writable(at + k * PG), "page %zu writable after a failed prepare", k);
		check_no_unsynced_writable(p, len, fd);
		cr_expect_eq(syncmap_prepare(at, 16 * PG), 0, "the retry: %s", strerror(errno));
		cr_expect(writable(at + 15 * PG));
	}
	check_no_unsynced_writable(p, len, fd);
	syncmap_munmap(p, len);
	close(fd);
}

/* Runs of grains are synced one after the other: a failure in the second
 * leaves the first durable (its bit set) but, like everything else in the
 * call, read-only; its first write then needs no sync. */
Test(inject, prepare_failing_midway)
{
	const size_t len = 32 * PG;
	unsigned char *p;
	uint64_t s0;
	int fd;

	p = setup(len, "4096", &fd);
	catch_sigbus();
	cr_assert_eq(store(p + 3 * PG, 1), 0); /* grain 3 durable: two runs, [0, 3) and [4, 8) */
	s0 = syncs();
	arm(2, EIO);
	errno = 0;
	cr_assert_eq(syncmap_prepare(p, 8 * PG), -1);
	cr_expect_eq(errno, EIO);
	cr_expect_eq(atomic_load(&sm_inject_countdown), 0, "the second sync was not reached");
	for (size_t k = 0; k < 8; k++)
		cr_expect_eq(writable(p + k * PG), k == 3, "page %zu: writable %d", k, writable(p + k * PG));
	cr_expect_eq(range_allocated(fd, 0, 3 * PG), 1, "the first run was synced");
	cr_expect_eq(syncs(), s0 + 1, "the second run was synced too");
	check_no_unsynced_writable(p, len, fd);
	s0 = syncs();
	cr_assert_eq(store(p + PG, 2), 0);
	cr_expect_eq(syncs(), s0, "a grain already durable was synced again");
	cr_assert_eq(store(p + 5 * PG, 3), 0);
	cr_expect_eq(syncs(), s0 + 1);
	syncmap_munmap(p, len);
	close(fd);
}

/* syncmap_prepare_async runs on the engine: its failure leaves the range
 * read-only, unsynced, and the writer's own fault makes it durable later. */
Test(inject, engine_prepare_async_failure)
{
	const size_t len = 64 * PG;
	unsigned char *p;
	int fd;

	uint64_t s0;

	p = setup(len, "16384", &fd);
	s0 = syncs();
	arm(1, ENOSPC);
	cr_assert_eq(syncmap_prepare_async(p, 16 * PG), 0);
	sm_engine_drain();
	cr_expect_eq(atomic_load(&sm_inject_countdown), 0, "the engine never synced");
	cr_expect_eq(syncs(), s0);
	for (size_t k = 0; k < 16; k++)
		cr_expect(!writable(p + k * PG), "page %zu writable after the engine's sync failed", k);
	check_no_unsynced_writable(p, len, fd);
	catch_sigbus();
	for (size_t k = 0; k < 16; k++)
		cr_assert_eq(store(p + k * PG, (unsigned char)k), 0);
	cr_expect_eq(range_allocated(fd, 0, 16 * PG), 1);
	syncmap_munmap(p, len);
	close(fd);
}

/* The presync window after an in-order fault: the writer's own sync is the
 * first, the engine's the second, and that one fails.  Nothing of the window
 * becomes writable; the writer meets its own faults there and they succeed. */
Test(inject, engine_presync_window_failure)
{
	const size_t len = 64 * PG;
	unsigned char *p;
	uint64_t s0;
	int fd;

	sm_test_env("SYNCMAP_PRESYNC_DEPTH", "4");
	p = setup_presync(len, "16384", "1", &fd);
	catch_sigbus();
	s0 = syncs();
	arm(2, EIO);
	cr_assert_eq(store(p, 1), 0, "the writer's own sync was made to fail");
	sm_engine_drain();
	cr_assert_eq(atomic_load(&sm_inject_countdown), 0, "the engine did not sync a window");
	cr_expect_eq(syncs(), s0 + 1, "only the writer's sync succeeded");
	for (size_t k = 4; k < 20; k++)
		cr_expect(!writable(p + k * PG), "page %zu writable although the engine's sync failed", k);
	check_no_unsynced_writable(p, len, fd);
	for (size_t k = 4; k < 20; k++)
		cr_assert_eq(store(p + k * PG, (unsigned char)k), 0);
	sm_engine_drain();
	cr_expect_eq(range_allocated(fd, 0, 20 * PG), 1);
	check_no_unsynced_writable(p, len, fd);
	cr_expect_eq(errors(), 0, "the engine's failure is not a failed fault");
	syncmap_munmap(p, len);
	close(fd);
}

/* mprotect takes write access away and gives it back: a grain whose sync
 * failed stays read-only through both, the durable ones get it back. */
Test(inject, mprotect_keeps_unsynced_grains_read_only)
{
	const size_t len = 32 * PG;
	unsigned char *p;
	int fd;

	p = setup(len, "4096", &fd);
	catch_sigbus();
	cr_assert_eq(store(p + 2 * PG, 1), 0);
	arm(1, EIO);
	cr_assert_eq(store(p + 5 * PG, 2), 1);
	cr_assert_eq(syncmap_mprotect(p, len, PROT_READ), 0);
	cr_expect(!writable(p + 2 * PG));
	cr_assert_eq(syncmap_mprotect(p, len, PROT_READ | PROT_WRITE), 0);
	cr_expect(writable(p + 2 * PG), "a durable grain gets write access back at once");
	cr_expect(!writable(p + 5 * PG), "the grain whose sync failed became writable through mprotect");
	check_no_unsynced_writable(p, len, fd);
	/* A failure while mprotect splits the mapping's region in two. */
	cr_assert_eq(syncmap_mprotect(p + 8 * PG, 4 * PG, PROT_READ), 0);
	arm(1, ENOSPC);
	cr_assert_eq(store(p + 14 * PG, 3), 1);
	cr_assert_eq(syncmap_mprotect(p, len, PROT_READ | PROT_WRITE), 0);
	cr_expect(!writable(p + 14 * PG));
	check_no_unsynced_writable(p, len, fd);
	cr_assert_eq(store(p + 5 * PG, 2), 0);
	cr_assert_eq(store(p + 14 * PG, 3), 0);
	check_no_unsynced_writable(p, len, fd);
	syncmap_munmap(p, len);
	close(fd);
}

/* mremap carries the durable grains over to the new place, and only them;
 * the part a grow adds meets injected failures like any other. */
Test(inject, mremap_carries_only_durable_grains)
{
	const size_t len = 64 * PG;
	unsigned char *p, *q, *hole;
	int fd;

	p = setup(len, "4096", &fd);
	catch_sigbus();
	cr_assert_eq(syncmap_munmap(p + 16 * PG, len - 16 * PG), 0);
	cr_assert_eq(store(p + PG, 1), 0);
	arm(1, EIO);
	cr_assert_eq(store(p + 3 * PG, 2), 1);
	/* Keep the next pages busy so the grow has to move. */
	hole = mmap(p + 16 * PG, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	q = syncmap_mremap(p, 16 * PG, 32 * PG, MREMAP_MAYMOVE);
	cr_assert_neq(q, MAP_FAILED, "mremap: %s", strerror(errno));
	cr_expect(writable(q + PG), "the durable grain lost write access in the move");
	/* The grain whose sync failed may come back writable only if it is
	 * durable now: the new mapping's adoption fdatasyncs the file first. */
	check_no_unsynced_writable(q, 32 * PG, fd);
	arm(1, EDQUOT);
	cr_assert_eq(store(q + 20 * PG, 3), 1, "the grown part");
	cr_expect_eq(bus_addr, q + 20 * PG);
	cr_expect(!writable(q + 20 * PG));
	check_no_unsynced_writable(q, 32 * PG, fd);
	cr_assert_eq(store(q + 3 * PG, 2), 0);
	cr_assert_eq(store(q + 20 * PG, 3), 0);
	cr_expect_eq(errors(), 2);
	if (hole != MAP_FAILED)
		munmap(hole, PG);
	syncmap_munmap(q, 32 * PG);
	close(fd);
}

/* At vm.max_map_count the fault's mprotect fails with ENOMEM and the library
 * widens: it syncs the gap to a durable neighbour and upgrades across it.
 * That second sync fails here: SIGBUS, and neither the gap nor the grain
 * becomes writable.  Arming 2 before every write reaches the widening sync
 * only when widening happens (a plain fault syncs once). */
Test(inject, widening_sync_failure, .timeout = 120)
{
	const size_t len = (size_t)8 << 20;
	unsigned char *p;
	size_t fill_len, i, hit = 0;
	void *fill;
	int fd;

#if defined(__SANITIZE_ADDRESS__)
	cr_skip_test("ASan's allocator maps memory of its own and aborts at vm.max_map_count");
#endif
	p = setup(len, "4096", &fd);
	catch_sigbus();
	fill = fill_vmas(200, &fill_len);
	cr_assert_not_null(fill, "could not fill the VMA budget");
	for (i = 0; i < len / PG / 2 && !hit; i++) {
		unsigned char *at = p + 2 * i * PG;

		uint64_t s0 = syncs();

		arm(2, ENOSPC);
		if (store(at, 1) == 0) {
			arm(0, EIO);
			continue;
		}
		hit = i;
		cr_expect_eq(bus_addr, at);
		cr_expect_eq(atomic_load(&sm_inject_countdown), 0);
		cr_expect(!writable(at), "the faulting grain was upgraded without its widening");
		cr_expect(!writable(at - PG), "the gap whose sync failed is writable");
		cr_expect_eq(syncs(), s0 + 1, "the grain's own sync, and no other, succeeded");
		cr_expect_eq(range_allocated(fd, (off_t)(2 * i) * PG, PG), 1,
			     "the grain's own sync ran first");
		cr_expect_eq(errors(), 1);
	}
	cr_assert_gt(hit, 0, "the VMA limit was never reached: widening untested");
	check_no_unsynced_writable(p, len, fd);
	cr_assert_eq(store(p + 2 * hit * PG, 1), 0, "the retry widens and succeeds");
	cr_expect(writable(p + 2 * hit * PG));
	check_no_unsynced_writable(p, len, fd);
	munmap(fill, fill_len);
	syncmap_munmap(p, len);
	close(fd);
}

/* Random writes, prepares and mprotects with failures injected at random
 * points: after every step, no page is writable whose grain was not synced. */
Test(inject, random_failures_never_leave_unsynced_grains_writable, .timeout = 120)
{
	const size_t len = 128 * PG;
	uint64_t seed = 0x5eed1234;
	unsigned char *p;
	long bus = 0, ok = 0;
	int fd;

	p = setup(len, "8192", &fd);
	catch_sigbus();
	for (int step = 0; step < 300; step++) {
		size_t page = rnd(&seed) % (len / PG);
		unsigned r = (unsigned)(rnd(&seed) % 10);

		arm(rnd(&seed) % 4 == 0 ? (long)(1 + rnd(&seed) % 3) : 0, errnos[rnd(&seed) % 3]);
		if (r < 6) {
			int b = store(p + page * PG + 7, (unsigned char)step);

			bus += b;
			ok += !b;
		} else if (r < 8) {
			size_t n = 1 + rnd(&seed) % 8;

			if (page + n > len / PG)
				n = len / PG - page;
			(void)syncmap_prepare(p + page * PG, n * PG);
		} else {
			cr_assert_eq(syncmap_mprotect(p, len, r == 8 ? PROT_READ : PROT_READ | PROT_WRITE),
				     0);
			cr_assert_eq(syncmap_mprotect(p, len, PROT_READ | PROT_WRITE), 0);
		}
		arm(0, EIO);
		if (step % 10 == 0)
			check_no_unsynced_writable(p, len, fd);
	}
	check_no_unsynced_writable(p, len, fd);
	cr_expect_gt(bus, 0, "no failure was ever injected into a fault");
	cr_expect_gt(ok, 0);
	cr_expect_eq(errors(), (uint64_t)bus, "stats.errors %llu, SIGBUS %ld", (unsigned long long)errors(),
		     bus);
	syncmap_munmap(p, len);
	close(fd);
}
