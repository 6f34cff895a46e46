/* SPDX-License-Identifier: MIT */
/* test_durable.c -- what FAULT mode promises, checked on ext4 on a loop device:
 * written grains are allocated before any msync, survive a crash image,
 * ENOSPC ends in SIGBUS, and the VMA limit is met by widening */
#include "config.h"
#include "helpers.h"
#include "region.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fiemap.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define FILE_LEN ((size_t)64 << 20)
#define NPAGES 64
#define POKE(p, v) (*(volatile unsigned char *)(p) = (unsigned char)(v))

static struct loopfs fs, copy;

static void cleanup(void)
{
	loopfs_done(&copy);
	loopfs_done(&fs);
}

TestSuite(durable, .fini = cleanup);

/* NPAGES distinct random pages of a FILE_LEN file. */
static void pick_pages(size_t *pages, uint64_t seed)
{
	for (size_t i = 0; i < NPAGES; i++) {
	again:
		pages[i] = rnd(&seed) % (FILE_LEN / PG);
		for (size_t j = 0; j < i; j++)
			if (pages[j] == pages[i])
				goto again;
	}
}

static void write_pages(unsigned char *p, const size_t *pages, unsigned salt)
{
	for (size_t i = 0; i < NPAGES; i++)
		memset(p + pages[i] * PG, pattern(pages[i], salt), PG);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	int rc = fsync(fd);

	close(fd);
	return rc;
}

Test(durable, written_grains_are_allocated_before_any_msync)
{
	size_t pages[NPAGES], grain;
	int fd, cfd;
	unsigned char *p, *c;
	uint32_t flags;

	/* Its control needs page-cache semantics (delalloc): ext4 of its own. */
	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 256, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	grain = sm_cfg.grain;
	fd = make_sparse(fs.dir, "fault.dat", FILE_LEN, NULL, 0);
	cfd = make_sparse(fs.dir, "plain.dat", FILE_LEN, NULL, 0);
	cr_assert(fd >= 0 && cfd >= 0);
	p = syncmap_mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	c = mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
	cr_assert(p != MAP_FAILED && c != MAP_FAILED);
	cr_assert_eq(syncmap_mode(p), SYNCMAP_MODE_FAULT, "ext4 without DAX refuses MAP_SYNC");
	pick_pages(pages, 0x1234);
	write_pages(c, pages, 1);
	write_pages(p, pages, 1);
	for (size_t i = 0; i < NPAGES; i++) {
		off_t g = (off_t)(pages[i] * PG / grain * grain);

		cr_expect_eq(range_allocated(fd, g, grain), 1, "FAULT: grain at %lld not allocated+written",
			     (long long)g);
		cr_expect_eq(range_allocated(cfd, (off_t)(pages[i] * PG), PG), 0,
			     "control: page %zu allocated already, the test could not fail", pages[i]);
		cr_expect_eq(range_has_extent(cfd, (off_t)(pages[i] * PG), PG, &flags), 1);
		cr_expect(flags & FIEMAP_EXTENT_DELALLOC, "control: page %zu not delalloc (flags %#x)",
			  pages[i], flags);
	}
	syncmap_munmap(p, FILE_LEN);
	munmap(c, FILE_LEN);
	close(fd);
	close(cfd);
}

/* ext2 has no fallocate: the reservation before the touch is only a hint,
 * so grains there are still made durable (not refused with the hint's
 * errno), and the file is not asked again. */
Test(durable, grains_are_made_durable_without_fallocate)
{
	size_t pages[NPAGES], grain;
	struct sm_region *r;
	unsigned char *p;
	int fd;

	OWN_LOOPFS_OR_SKIP(&fs, "ext2", 128, "");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	sm_test_env("SYNCMAP_GRAIN", "65536");
	grain = sm_cfg.grain;
	fd = make_sparse(fs.dir, "noalloc.dat", FILE_LEN, NULL, 0);
	cr_assert(fd >= 0);
	cr_assert_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)grain), -1, "ext2 here has fallocate");
	cr_assert_eq(errno, EOPNOTSUPP);
	p = syncmap_mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(syncmap_mode(p), SYNCMAP_MODE_FAULT);
	pick_pages(pages, 0x5678);
	write_pages(p, pages, 3);
	for (size_t i = 0; i < NPAGES; i++) {
		off_t g = (off_t)(pages[i] * PG / grain * grain);

		cr_expect_eq(range_allocated(fd, g, grain), 1, "grain at %lld not allocated+written",
			     (long long)g);
	}
	cr_assert_eq(sm_region_get((uintptr_t)p, &r), SM_FOUND);
	cr_expect_eq(atomic_load(&r->file->no_reserve), 1, "fallocate is still asked for on every grain");
	sm_region_put(r);
	syncmap_munmap(p, FILE_LEN);
	close(fd);
}

/* Copy the loop device while the filesystem is live: the disk's state at
 * that instant, which is what a crash would leave.  Mount the copy (ext4
 * replays its journal) at copy.dir. */
static void crash_copy(void)
{
	char cmd[1024], why[256];

	snprintf(copy.img, sizeof(copy.img), "/dev/shm/syncmap-crash-%d.img", (int)getpid());
	/* O_DIRECT: what is on the device, not what its page cache remembers. */
	snprintf(cmd, sizeof(cmd), "dd if='%s' of='%s' bs=1M iflag=direct conv=sparse status=none", fs.dev,
		 copy.img);
	cr_assert_eq(system(cmd), 0, "copying %s", fs.dev);
	cr_assert_eq(loopfs_mount_image(&copy, copy.img, "", why, sizeof(why)), 0,
		     "mounting the crash image: %s", why);
}

static int open_in_copy(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", copy.dir, name);
	return open(path, O_RDONLY);
}

Test(durable, crash_image_keeps_every_written_grain, .timeout = 120)
{
	size_t pages[NPAGES], grain;
	int fd, cfd;
	unsigned char *p, *c, buf[PG];

	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 256, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	grain = sm_cfg.grain;
	fd = make_sparse(fs.dir, "fault.dat", FILE_LEN, NULL, 0);
	cfd = make_sparse(fs.dir, "plain.dat", FILE_LEN, NULL, 0);
	cr_assert(fd >= 0 && cfd >= 0);
	/* The files themselves must exist in the image: commit them first. */
	cr_assert_eq(fsync(fd), 0);
	cr_assert_eq(fsync(cfd), 0);
	cr_assert_eq(fsync_dir(fs.dir), 0);
	p = syncmap_mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	c = mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
	cr_assert(p != MAP_FAILED && c != MAP_FAILED);
	pick_pages(pages, 0xbeef);
	/* The control first: the FAULT writes after it commit the shared
	 * journal, and it must lose its pages even so. */
	write_pages(c, pages, 2);
	write_pages(p, pages, 2);
	/* Half of the FAULT pages are also persisted: their data must survive. */
	for (size_t i = 0; i < NPAGES; i += 2)
		cr_assert_eq(syncmap_persist(p + pages[i] * PG, PG), 0);

	crash_copy();
	int cf = open_in_copy("fault.dat");
	int cc = open_in_copy("plain.dat");

	cr_assert(cf >= 0 && cc >= 0, "files missing from the crash image");
	for (size_t i = 0; i < NPAGES; i++) {
		off_t g = (off_t)(pages[i] * PG / grain * grain);

		cr_expect_eq(range_allocated(cf, g, grain), 1, "crash image: FAULT grain at %lld lost",
			     (long long)g);
		if (i % 2 == 0) {
			cr_assert_eq(pread(cf, buf, PG, (off_t)(pages[i] * PG)), PG);
			cr_expect_eq(buf[0], pattern(pages[i], 2), "persisted page %zu lost its data",
				     pages[i]);
			cr_expect_eq(buf[PG - 1], pattern(pages[i], 2));
		}
	}
	cr_expect_eq(extent_count(cc), 0, "the plain-mmap control kept blocks: the test could not fail");
	close(cf);
	close(cc);
	syncmap_munmap(p, FILE_LEN);
	munmap(c, FILE_LEN);
	close(fd);
	close(cfd);
}

/* ENOSPC: a write the library cannot make durable ends in SIGBUS at its
 * address, counted, and its grain is left read-only. */
static unsigned char *volatile writing;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	struct syncmap_stats st;
	char perms[5] = "";

	(void)sig;
	(void)uctx;
	syncmap_stats_get(&st);
	if ((unsigned char *)si->si_addr != writing)
		_exit(10);
	if (st.errors == 0)
		_exit(11);
	if (maps_perms(writing, perms) != 0 || perms[1] != '-')
		_exit(12);
	_exit(42);
}

Test(durable, enospc_is_sigbus_and_nothing_upgraded, .timeout = 120)
{
	unsigned char *p, buf;
	size_t written = 0;
	pid_t pid;
	int fd, st;

	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 8, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "big.dat", FILE_LEN, NULL, 0);
	cr_assert(fd >= 0);
	p = syncmap_mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	pid = fork();
	if (pid == 0) {
		struct sigaction sa = {0};

		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGBUS, &sa, NULL);
		for (size_t i = 0; i < FILE_LEN / PG; i++) {
			writing = p + i * PG + 1;
			POKE(writing, pattern(i, 3));
		}
		_exit(20); /* 64 MiB fit in 8: impossible */
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st), "child died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	cr_assert_eq(WEXITSTATUS(st), 42,
		     "child exit %d (10 wrong address, 11 not counted, 12 upgraded, 20 no ENOSPC)",
		     WEXITSTATUS(st));
	/* What the child wrote before the disk filled is in the file. */
	for (size_t i = 0; pread(fd, &buf, 1, (off_t)(i * PG + 1)) == 1 && buf == pattern(i, 3); i++)
		written++;
	cr_expect_gt(written, 100, "only %zu pages fit before ENOSPC", written);
	syncmap_munmap(p, FILE_LEN);
	close(fd);
}

Test(durable, vma_limit_is_met_by_widening, .timeout = 240)
{
	const size_t len = (size_t)32 << 20, writes = len / PG / 2;
	struct syncmap_stats st;
	unsigned char *p, buf;
	size_t fill_len;
	void *fill;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 128, "commit=60");
	sm_test_env("SYNCMAP_GRAIN", "4096");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "sparse.dat", len, NULL, 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	/* Room for ~1000 grains upgraded one by one; the test writes 4096
	 * isolated ones (every other page), each of which would cost 2 VMAs. */
	fill = fill_vmas(2000, &fill_len);
	cr_assert_not_null(fill, "could not fill the VMA budget");
	for (size_t i = 0; i < writes; i++)
		POKE(p + 2 * i * PG, pattern(i, 4));
	for (size_t i = 0; i < writes; i++) {
		cr_assert_eq(pread(fd, &buf, 1, (off_t)(2 * i * PG)), 1);
		cr_assert_eq(buf, pattern(i, 4), "page %zu", 2 * i);
	}
	syncmap_stats_get(&st);
	cr_expect_eq(st.errors, 0);
	cr_expect_gt(st.bytes_prepared, writes * PG, "no widening happened: the limit was never reached");
	munmap(fill, fill_len);
	syncmap_munmap(p, len);
	close(fd);
}

/* Blocks already allocated and written need no fault: a preallocated file
 * starts writable, and the allocation it relies on is on disk already
 * (checked in a crash image).  Unwritten (fallocated) extents still fault. */
Test(durable, written_extents_start_writable)
{
	static char zero[1 << 20];
	struct syncmap_stats a, b;
	unsigned char *p;
	char perms[5];
	int fd, cf;

	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "pre.dat", 4 << 20, NULL, 0);
	cr_assert_eq(fsync(fd), 0);
	cr_assert_eq(fsync_dir(fs.dir), 0);
	cr_assert_eq(pwrite(fd, zero, sizeof(zero), 0), (ssize_t)sizeof(zero)); /* written, not synced */
	cr_assert_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0);	/* unwritten */
	p = syncmap_mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(maps_perms(p, perms), 0);
	cr_expect_eq(perms[1], 'w', "written extents start writable: %s", perms);
	cr_assert_eq(maps_perms(p + (1 << 20), perms), 0);
	cr_expect_eq(perms[1], '-', "unwritten extents do not: %s", perms);
	cr_assert_eq(maps_perms(p + (3 << 20), perms), 0);
	cr_expect_eq(perms[1], '-', "holes do not: %s", perms);
	syncmap_stats_get(&a);
	for (size_t i = 0; i < (1 << 20) / PG; i++)
		POKE(p + i * PG, 1);
	syncmap_stats_get(&b);
	cr_expect_eq(a.faults, b.faults, "writes to written extents faulted");
	POKE(p + (1 << 20), 1);
	syncmap_stats_get(&b);
	cr_expect_eq(b.faults, a.faults + 1, "the unwritten extent faults");
	crash_copy();
	cf = open_in_copy("pre.dat");
	cr_assert(cf >= 0);
	cr_expect_eq(range_allocated(cf, 0, 1 << 20), 1, "the adopted range is allocated on disk");
	close(cf);
	syncmap_munmap(p, 4 << 20);
	close(fd);
}

/* sm_adopt_written's hook (durable.h): while adopt_fd >= 0, write a whole
 * grain at adopt_off and write it back, so that it is a written extent whose
 * allocation no journal commit has covered yet. */
static int adopt_fd = -1;
static off_t adopt_off;

void sm_test_adopt_hook(struct sm_region *r)
{
	static char data[1 << 20];

	(void)r;
	if (adopt_fd < 0 || sm_cfg.grain > sizeof(data))
		return;
	memset(data, 0x5c, sm_cfg.grain);
	if (pwrite(adopt_fd, data, sm_cfg.grain, adopt_off) == (ssize_t)sm_cfg.grain)
		sync_file_range(adopt_fd, adopt_off, (off_t)sm_cfg.grain,
				SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					SYNC_FILE_RANGE_WAIT_AFTER);
}

/* Adoption trusts a written extent because a sync made its allocation
 * durable: only extents that existed before that sync may be adopted.  A
 * grain allocated while the map adopts (another thread's pwrite into a hole,
 * a plain mapping's writeback) must fault as usual. */
Test(durable, adoption_takes_only_extents_seen_before_its_sync)
{
	static char data[1 << 20];
	unsigned char *p;
	char perms[5];
	int fd;

	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "race.dat", 4 << 20, NULL, 0);
	cr_assert(fd >= 0);
	memset(data, 0x3c, sizeof(data));
	cr_assert_eq(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	cr_assert_eq(fsync(fd), 0);
	adopt_fd = fd;
	adopt_off = 2 << 20;
	p = syncmap_mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	adopt_fd = -1;
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	cr_assert_eq(range_allocated(fd, 2 << 20, sm_cfg.grain), 1,
		     "the hook's grain is not a written extent: the test shows nothing");
	cr_assert_eq(maps_perms(p, perms), 0);
	cr_assert_eq(perms[1], 'w', "the file's written megabyte was not adopted: the test shows nothing");
	cr_assert_eq(maps_perms(p + (2 << 20), perms), 0);
	cr_expect_eq(perms[1], '-', "a grain allocated after the extents were read was adopted: %s", perms);
	syncmap_munmap(p, 4 << 20);
	close(fd);
}

/* Mapping runs adoption on the caller's thread: it must fit a small thread
 * stack (PTHREAD_STACK_MIN, 16 KiB on x86-64), not take 14 KiB of it for a
 * FIEMAP batch. */
static void *map_on_small_stack(void *arg)
{
	int fd = *(int *)arg;
	void *p = syncmap_mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p != MAP_FAILED)
		syncmap_munmap(p, 4 << 20);
	return p;
}

Test(durable, adoption_fits_a_small_thread_stack)
{
	static char data[1 << 20];
	pthread_attr_t a;
	pthread_t t;
	void *res;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	if (expected_mode(fs.dir) == SYNCMAP_MODE_KERNEL)
		cr_skip_test("FAULT-mode behaviour, and this filesystem grants MAP_SYNC");
	fd = make_sparse(fs.dir, "small.dat", 4 << 20, NULL, 0);
	cr_assert(fd >= 0);
	memset(data, 0x3c, sizeof(data));
	cr_assert_eq(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data)); /* something to adopt */
	cr_assert_eq(pthread_attr_init(&a), 0);
	cr_assert_eq(pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN), 0);
	cr_assert_eq(pthread_create(&t, &a, map_on_small_stack, &fd), 0);
	cr_assert_eq(pthread_join(t, &res), 0);
	cr_expect_neq(res, MAP_FAILED, "syncmap_mmap on a small stack: %s", strerror(errno));
	close(fd);
}

static void on_sigbus_exit(int sig)
{
	(void)sig;
	_exit(42);
}

/* At the VMA limit with no durable grain near the write, the only upgrade
 * that splits nothing covers the whole mapping.  On a large sparse file that
 * would allocate (and sync, inside the signal handler) every block up to
 * EOF, and could fill the disk: widening is bounded, and past the bound the
 * write gets SIGBUS, as for any grain that cannot be made durable. */
Test(durable, widening_is_bounded_on_a_large_sparse_file, .timeout = 240)
{
	const size_t len = (size_t)128 << 20;
	struct stat sb;
	unsigned char *p;
	size_t fill_len;
	void *fill;
	pid_t pid;
	int fd, st;

	LOOPFS_OR_SKIP(&fs, "ext4", 256, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "huge.dat", len, NULL, 0);
	cr_assert(fd >= 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	/* Too few VMAs to spare for upgrading a grain inside the read-only VMA,
	 * which needs two (fill_vmas counts [vsyscall], which is no VMA). */
	fill = fill_vmas(0, &fill_len);
	cr_assert_not_null(fill, "could not fill the VMA budget");
	pid = fork();
	if (pid == 0) {
		signal(SIGBUS, on_sigbus_exit);
		POKE(p + len / 2, 1);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	munmap(fill, fill_len);
	cr_assert_eq(fstat(fd, &sb), 0);
	cr_expect_lt((size_t)sb.st_blocks * 512, len / 2,
		     "one write at the VMA limit allocated %lld MiB of %zu",
		     (long long)sb.st_blocks * 512 >> 20, len >> 20);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 42,
		  "the write was not refused with SIGBUS (status %#x)", st);
	syncmap_munmap(p, len);
	close(fd);
}
