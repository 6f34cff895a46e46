/* SPDX-License-Identifier: MIT */
/* test_files.c -- the library's descriptors of a program's files: the program keeps
 * its POSIX record locks, its writeback errors and its descriptor numbers */
#include "config.h"
#include "helpers.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define LEN ((size_t)4 << 20)
#define POKE(p, v) (*(volatile unsigned char *)(p) = (unsigned char)(v))

static struct loopfs fs;

static void cleanup(void)
{
	loopfs_done(&fs);
}

TestSuite(files, .fini = cleanup);

static void lock_file(int fd, short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};

	cr_assert_eq(fcntl(fd, F_SETLK, &fl), 0, "F_SETLK: %s", strerror(errno));
}

/* What another process sees of the locks on fd's file: the type of a lock
 * that conflicts with a write lock over the whole file (F_UNLCK: none), and
 * its owner in *owner.  The child asks through the inherited descriptor: its
 * own descriptor table, so the parent's locks are a conflict to it (and its
 * exit, closing its copies, releases nothing of the parent's). */
static short lock_seen_by_other(int fd, pid_t *owner)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int pfd[2], st;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (fcntl(fd, F_GETLK, &fl) != 0)
			fl.l_type = -1;
		_exit(write(pfd[1], &fl, sizeof(fl)) == sizeof(fl) ? 0 : 1);
	}
	cr_assert_eq(read(pfd[0], &fl, sizeof(fl)), (ssize_t)sizeof(fl));
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	close(pfd[0]);
	close(pfd[1]);
	*owner = fl.l_pid;
	return fl.l_type;
}

static const char *lock_name(short type)
{
	return type == F_UNLCK	 ? "free"
	       : type == F_RDLCK ? "read-locked"
	       : type == F_WRLCK ? "write-locked"
				 : "?";
}

/* The open descriptors of this process, as a bitmap of numbers below 1024. */
static void open_fds(unsigned char set[1024])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(set, 0, 1024);
	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL) {
		int n = atoi(e->d_name);

		if (e->d_name[0] != '.' && n >= 0 && n < 1024 && n != dirfd(d))
			set[n] = 1;
	}
	closedir(d);
}

static int count_fds(void)
{
	unsigned char set[1024];
	int n = 0;

	open_fds(set);
	for (int i = 0; i < 1024; i++)
		n += set[i];
	return n;
}

/* On Linux, closing any descriptor of an inode drops the process's POSIX
 * locks on it.  The library's own descriptor of a mapped file must not be
 * closed while the program holds locks there. */
Test(files, munmap_keeps_the_programs_posix_lock)
{
	pid_t owner;
	short type;
	void *p;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "locked.dat", LEN, NULL, 0);
	cr_assert(fd >= 0);
	lock_file(fd, F_WRLCK);
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	POKE(p, 1); /* a first write: the library works on its descriptor */
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	type = lock_seen_by_other(fd, &owner);
	cr_expect_eq(type, F_WRLCK, "after syncmap_munmap another process sees the file %s", lock_name(type));
	cr_expect_eq(owner, getpid());
	close(fd);
}

/* The same for a map that fails after the library opened its descriptor
 * (MAP_FIXED_NOREPLACE onto a mapping: EEXIST from the last mmap). */
Test(files, failed_map_keeps_the_programs_posix_lock)
{
	pid_t owner;
	short type;
	void *q, *p;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	if (expected_mode(fs.dir) == SYNCMAP_MODE_KERNEL)
		cr_skip_test("FAULT-mode behaviour, and this filesystem grants MAP_SYNC");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "locked.dat", LEN, NULL, 0);
	cr_assert(fd >= 0);
	lock_file(fd, F_RDLCK);
	q = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(q, MAP_FAILED);
	p = syncmap_mmap(q, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	cr_assert_eq(p, MAP_FAILED, "MAP_FIXED_NOREPLACE onto a mapping succeeded");
	cr_assert_eq(errno, EEXIST, "errno %s", strerror(errno));
	type = lock_seen_by_other(fd, &owner);
	cr_expect_eq(type, F_RDLCK, "after a failed syncmap_mmap another process sees the file %s",
		     lock_name(type));
	munmap(q, PG);
	close(fd);
}

/* Another process holding a lock on the file too: F_OFD_GETLK reports the
 * first conflicting lock, its lock (taken first) and not the program's, so
 * the library must look further (/proc/locks) before it closes anything. */
Test(files, munmap_keeps_the_lock_when_another_process_locks_too)
{
	int fd, go[2], ready[2], st;
	pid_t owner, holder;
	char c = 0;
	short type;
	void *p;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "shared.dat", LEN, NULL, 0);
	cr_assert(fd >= 0);
	cr_assert(pipe(go) == 0 && pipe(ready) == 0);
	holder = fork();
	cr_assert_geq(holder, 0);
	if (holder == 0) {
		struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = PG, .l_len = PG};

		if (fcntl(fd, F_SETLK, &fl) != 0)
			_exit(1);
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}
	cr_assert_eq(read(ready[0], &c, 1), 1);
	{
		struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = PG};

		cr_assert_eq(fcntl(fd, F_SETLK, &fl), 0);
	}
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	POKE(p, 1);
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	/* The holder lets go, so that only the program's lock can be seen. */
	cr_assert_eq(write(go[1], &c, 1), 1);
	cr_assert_eq(waitpid(holder, &st, 0), holder);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the other lock holder failed (status %#x)", st);
	type = lock_seen_by_other(fd, &owner);
	cr_expect_eq(type, F_RDLCK, "after syncmap_munmap another process sees the file %s", lock_name(type));
	cr_expect_eq(owner, getpid());
	close(fd);
}

/* A descriptor kept for a lock is closed at a later library call once the
 * lock is gone: nothing accumulates. */
Test(files, kept_descriptor_is_closed_once_the_lock_is_gone)
{
	int fd, fd2, n0;
	void *p;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "locked.dat", LEN, NULL, 0);
	fd2 = make_sparse(fs.dir, "other.dat", LEN, NULL, 0);
	cr_assert(fd >= 0 && fd2 >= 0);
	n0 = count_fds();
	lock_file(fd, F_WRLCK);
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	lock_file(fd, F_UNLCK);
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	cr_expect_eq(count_fds(), n0, "%d descriptors open, %d before the maps", count_fds(), n0);
	close(fd);
	close(fd2);
}

/* The descriptors the library opened for the mapping of fd, found as the
 * numbers below 1024 that syncmap_mmap added; their count is returned. */
static int library_fds(const unsigned char before[1024], int lost[8])
{
	unsigned char after[1024];
	int n = 0;

	open_fds(after);
	for (int i = 0; i < 1024 && n < 8; i++)
		if (after[i] && !before[i])
			lost[n++] = i;
	cr_assert_gt(n, 0, "the library keeps no descriptor of the mapped file");
	return n;
}

/* What a daemon does (closefrom, close_range): every number the library
 * uses is closed. */
static void close_library_fds(const int lost[], int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(close(lost[i]), 0);
}

/* In a child: the write at p + off, then _exit(0); SIGBUS is _exit(42). */
static void on_sigbus(int sig)
{
	(void)sig;
	_exit(42);
}

static int write_in_child(unsigned char *p, size_t off)
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		signal(SIGBUS, on_sigbus);
		POKE(p + off, 0x5a);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static unsigned char byte_at(int fd, off_t off)
{
	unsigned char c = 0;

	cr_assert_eq(pread(fd, &c, 1, off), 1);
	return c;
}

/* The program may dup2 over (or close_range, then reopen into) the numbers
 * the library uses.  The library must then act on none of them, and keep
 * working: the first write is made durable through the alias, which holds
 * the file without a descriptor, nothing is allocated in the file that took
 * the number, and the last unmap does not close the program's descriptor. */
Test(files, a_number_the_library_lost_is_never_acted_on)
{
	unsigned char before[1024];
	int fd, y, st, n, lost[8];
	unsigned char *p;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	sm_test_env("SYNCMAP_GRAIN", "65536"); /* several pages: the grain's blocks are reserved first */
	fd = make_sparse(fs.dir, "mapped.dat", LEN, NULL, 0);
	y = make_sparse(fs.dir, "other.dat", LEN, NULL, 0);
	cr_assert(fd >= 0 && y >= 0);
	open_fds(before);
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	n = library_fds(before, lost);
	for (int i = 0; i < n; i++)
		cr_assert_eq(dup2(y, lost[i]), lost[i]);
	st = write_in_child(p, 16 * PG);
	cr_expect_eq(st, 0, "the first write after the library lost its descriptors failed (%s)",
		     st == 42 ? "SIGBUS" : "died");
	cr_expect_eq(byte_at(fd, 16 * PG), 0x5a, "the write did not reach the mapped file");
	cr_expect(range_allocated(fd, 16 * PG, 65536),
		  "the written grain is not allocated in the mapped file");
	cr_expect_eq(range_has_extent(y, 0, LEN, NULL), 0,
		     "the library allocated blocks in the file that took its descriptor number");
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	for (int i = 0; i < n; i++)
		cr_expect_neq(fcntl(lost[i], F_GETFD), -1,
			      "syncmap_munmap closed the program's descriptor %d", lost[i]);
	close(fd);
	close(y);
}

/* After closefrom: writes keep working as with plain mmap, up to the page
 * that holds EOF, in a grain that crosses EOF; a write past EOF is SIGBUS;
 * and the pages past EOF were not made writable by the grain's upgrade
 * (once the file grows, a write there still takes the library's fault). */
Test(files, writes_keep_working_after_the_program_closes_the_librarys_descriptors)
{
	const size_t eof = ((size_t)3 << 20) + 100;
	unsigned char before[1024];
	int fd, n, st, lost[8];
	unsigned char *p;
	pid_t pid;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	sm_test_env("SYNCMAP_GRAIN", "65536");
	fd = make_sparse(fs.dir, "mapped.dat", eof, NULL, 0);
	cr_assert(fd >= 0);
	open_fds(before);
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	n = library_fds(before, lost);
	close_library_fds(lost, n);
	st = write_in_child(p, 16 * PG);
	cr_expect_eq(st, 0, "a first write after closefrom failed (%s)", st == 42 ? "SIGBUS" : "died");
	cr_expect_eq(byte_at(fd, 16 * PG), 0x5a, "the write did not reach the file");
	cr_expect(range_allocated(fd, 16 * PG, 65536), "the written grain is not allocated");
	st = write_in_child(p, eof - 1);
	cr_expect_eq(st, 0, "a write to the page holding EOF failed (%s)", st == 42 ? "SIGBUS" : "died");
	cr_expect_eq(byte_at(fd, eof - 1), 0x5a, "the write at EOF did not reach the file");
	st = write_in_child(p, eof - 100 + 2 * PG);
	cr_expect_eq(st, 42, "a write past EOF did not end in SIGBUS, as with plain mmap (status %d)", st);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct syncmap_stats a, b;

		signal(SIGBUS, on_sigbus);
		POKE(p + eof - 1, 1);
		if (ftruncate(fd, LEN) != 0)
			_exit(2);
		syncmap_stats_get(&a);
		POKE(p + eof - 100 + 2 * PG, 1);
		syncmap_stats_get(&b);
		_exit(b.faults == a.faults + 1 ? 0 : 3);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "past the old EOF (the file grown since) a write took no fault (status %#x)", st);
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	close(fd);
}

/* A program that reopens its file (O_CLOEXEC, the usual way) after a
 * close_range gets the numbers the library had; the library must not close
 * them at its last unmap: that would drop the program's POSIX locks on the
 * file, and its later I/O on the number would go to whatever took it next. */
Test(files, a_reopened_number_is_not_closed_by_the_library)
{
	unsigned char before[1024];
	int fd, fd2, n, lost[8], mine[2], reused = 0;
	char path[256];
	unsigned char *p;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "mapped.dat", LEN, path, sizeof(path));
	fd2 = make_sparse(fs.dir, "other.dat", LEN, NULL, 0);
	cr_assert(fd >= 0 && fd2 >= 0);
	open_fds(before);
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	n = library_fds(before, lost);
	close_library_fds(lost, n);
	mine[0] = open(path, O_RDWR | O_CLOEXEC);
	mine[1] = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(mine[0] >= 0 && mine[1] >= 0);
	for (int i = 0; i < n; i++)
		reused += lost[i] == mine[0] || lost[i] == mine[1];
	cr_assert_gt(reused, 0,
		     "the reopened file took none of the library's numbers: the test shows nothing");
	POKE(p, 1);
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	/* Another map and unmap: the library looks at the descriptors it left
	 * open (for a lock) at each. */
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	for (int i = 0; i < 2; i++)
		cr_expect_neq(fcntl(mine[i], F_GETFD), -1, "the library closed the program's descriptor %d",
			      mine[i]);
	close(mine[0]);
	close(mine[1]);
	close(fd);
	close(fd2);
}

/* mremap needs a descriptor of the file to map the new range from; after
 * closefrom the library has none and refuses a grow with ENOMEM (an errno
 * mremap(2) gives, never EBADF), the mapping unchanged and still working. */
Test(files, mremap_after_the_library_lost_its_descriptors_is_enomem)
{
	unsigned char before[1024];
	int fd, n, lost[8];
	unsigned char *p, *q;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "mapped.dat", LEN, NULL, 0);
	cr_assert(fd >= 0);
	open_fds(before);
	p = syncmap_mmap(NULL, LEN / 4, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	n = library_fds(before, lost);
	close_library_fds(lost, n);
	errno = 0;
	q = syncmap_mremap(p, LEN / 4, LEN / 2, MREMAP_MAYMOVE);
	cr_expect_eq(q, MAP_FAILED, "grown without a descriptor: from which file?");
	cr_expect_eq(errno, ENOMEM, "errno %d (%s), wanted ENOMEM", errno, strerror(errno));
	cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_FAULT, "the refused mremap changed the mapping");
	cr_expect_eq(write_in_child(p, LEN / 4 - PG), 0,
		     "the mapping no longer works after the refused mremap");
	cr_assert_eq(syncmap_munmap(p, LEN / 4), 0);
	close(fd);
}

/* The program's own lease (F_SETLEASE) survives a map: reopening the file
 * for the library's own description would break it (an open for write
 * breaks even the opener's lease, with SIGIO), so the library does not. */
static volatile sig_atomic_t sigios;

static void on_sigio(int sig)
{
	(void)sig;
	sigios++;
}

Test(files, a_programs_lease_is_not_broken_by_a_map)
{
	void *p;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "leased.dat", LEN, NULL, 0);
	cr_assert(fd >= 0);
	signal(SIGIO, on_sigio);
	if (fcntl(fd, F_SETLEASE, F_WRLCK) != 0)
		cr_skip_test("no write lease: %s", strerror(errno));
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "syncmap_mmap: %s", strerror(errno));
	FAULT_OR_SKIP(p);
	POKE(p, 1);
	cr_expect_eq(fcntl(fd, F_GETLEASE), F_WRLCK, "the program's write lease is gone after the map");
	cr_expect_eq(sigios, 0, "the program was told to break its lease");
	cr_assert_eq(syncmap_munmap(p, LEN), 0);
	cr_expect_eq(fcntl(fd, F_GETLEASE), F_WRLCK, "the program's write lease is gone after the unmap");
	fcntl(fd, F_SETLEASE, F_UNLCK);
	close(fd);
}

/*
 * A device that fails the writes of chosen blocks, without device-mapper (not
 * in every kernel; not in the container this was written in): ext4 with 4 KiB
 * blocks on a loop device whose image lives on a small tmpfs of its own.  The
 * image is fully allocated after mkfs (mkfs punches what it zeroes), so every
 * write lands in a page the tmpfs has, until bad_blocks() punches the image
 * under a file's data and fills the tmpfs: then the loop device's writes there
 * fail with ENOSPC, which the filesystem records as a writeback error on the
 * file.  The journal stays writable, so the filesystem stays up.  Block size =
 * page size matters: the loop driver reports a short write as success, and a
 * block sharing a page with a surviving one would be written short.
 */
struct failfs {
	char dir[64];
	int img;
};

static int failfs_make(struct failfs *f, char *why, size_t whylen)
{
	if (geteuid() != 0) {
		snprintf(why, whylen, "not root");
		return -1;
	}
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("syncmap-failfs", "/mnt", "tmpfs", 0, "size=48m") != 0) {
		snprintf(why, whylen, "no private mount namespace with a tmpfs: %s", strerror(errno));
		return -1;
	}
	if (system("fallocate -l 40M /mnt/disk.img && mkfs.ext4 -q -F -m 0 -b 4096 -E nodiscard "
		   "/mnt/disk.img "
		   ">/dev/null 2>&1 && fallocate -l 40M /mnt/disk.img && mkdir /mnt/fs && "
		   "mount -o loop,commit=60 /mnt/disk.img /mnt/fs") != 0) {
		snprintf(why, whylen, "mkfs or loop mount on a tmpfs failed");
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "/mnt/fs");
	f->img = open("/mnt/disk.img", O_RDWR | O_CLOEXEC);
	if (f->img < 0) {
		snprintf(why, whylen, "image: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* From now on, writes of fd's blocks in [off, off + len) fail.  The file is
 * synced first so that those blocks exist. */
static void bad_blocks(struct failfs *f, int fd, off_t off, size_t len)
{
	struct fiemap *fm;
	char buf[1 << 16];
	int fill;

	cr_assert_eq(fsync(fd), 0);
	fm = fiemap_of(fd, off, len);
	cr_assert_not_null(fm);
	cr_assert_gt(fm->fm_mapped_extents, 0);
	for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
		const struct fiemap_extent *e = &fm->fm_extents[i];

		cr_assert_eq(e->fe_physical % PG, 0);
		cr_assert_eq(fallocate(f->img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				       (off_t)e->fe_physical, (off_t)e->fe_length),
			     0);
	}
	free(fm);
	fill = open("/mnt/fill", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	cr_assert(fill >= 0);
	memset(buf, 0x7a, sizeof(buf));
	for (size_t n = sizeof(buf); n >= PG; n /= 2)
		while (write(fill, buf, n) == (ssize_t)n)
			;
	close(fill);
}

#define FAILFS_OR_SKIP(f)                                                                           \
	do {                                                                                        \
		char why_[256];                                                                     \
		if (getenv("SYNCMAP_TEST_DIR") != NULL)                                             \
			cr_skip_test("needs a loop-mounted ext4 of its own, not SYNCMAP_TEST_DIR"); \
		if (failfs_make((f), why_, sizeof(why_)) != 0)                                      \
			cr_skip_test("needs a device that fails writes: %s", why_);                 \
	} while (0)

/* A file with 1 MiB of data at 0 (its blocks will fail) and 1 MiB of
 * allocated, unwritten blocks at 1 MiB (they stay writable). */
static int failing_file(struct failfs *f, char *path, size_t pathlen)
{
	static char data[1 << 20];
	int fd;

	memset(data, 0x11, sizeof(data));
	fd = make_sparse(f->dir, "data.dat", 2 << 20, path, pathlen);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	cr_assert_eq(fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0);
	bad_blocks(f, fd, 0, 1 << 20);
	return fd;
}

/* The program's write(2) data fails to reach the disk; it then maps the file
 * (the library adopts written blocks with a sync) and writes through the map
 * (a grain sync).  Its own fsync must still report the error, as it would
 * without the library: errors are reported once per open file description. */
Test(files, programs_fsync_sees_the_write_error_after_a_map)
{
	static char data[1 << 20];
	struct failfs f;
	char path[256];
	int fd, witness, st;
	unsigned char *p;
	pid_t pid;

	FAILFS_OR_SKIP(&f);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = failing_file(&f, path, sizeof(path));
	witness = open(path, O_RDONLY | O_CLOEXEC); /* another description: proves the device failed */
	cr_assert(witness >= 0);
	memset(data, 0x22, sizeof(data));
	cr_assert_eq(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	p = syncmap_mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "syncmap_mmap: %s", strerror(errno));
	FAULT_OR_SKIP(p);
	pid = fork(); /* the write may end in SIGBUS: the grain's sync sees the file's error */
	if (pid == 0) {
		POKE(p + (1 << 20), 3);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert_eq(fsync(witness), -1, "the device did not fail the write: the test shows nothing");
	cr_expect_eq(fsync(fd), -1, "the program's fsync returned 0 after its data failed to reach the disk");
	syncmap_munmap(p, 2 << 20);
	close(witness);
	close(fd);
}

/* The same when the error comes after the map: the library's grain sync
 * (msync of its alias) must not take the error from the program. */
Test(files, programs_fsync_sees_the_write_error_after_a_fault)
{
	static char data[1 << 20];
	struct failfs f;
	char path[256];
	int fd, witness, st;
	unsigned char *p;
	pid_t pid;

	FAILFS_OR_SKIP(&f);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = failing_file(&f, path, sizeof(path));
	p = syncmap_mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "syncmap_mmap: %s", strerror(errno));
	FAULT_OR_SKIP(p);
	witness = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(witness >= 0);
	memset(data, 0x22, sizeof(data));
	cr_assert_eq(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	/* Written back and failed, seen by the witness only. */
	cr_assert_eq(sync_file_range(fd, 0, 1 << 20, SYNC_FILE_RANGE_WRITE), 0);
	cr_assert_eq(sync_file_range(witness, 0, 1 << 20,
				     SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER),
		     -1, "the device did not fail the write: the test shows nothing");
	pid = fork();
	if (pid == 0) {
		POKE(p + (1 << 20), 3);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect_eq(fsync(fd), -1, "the program's fsync returned 0 after its data failed to reach the disk");
	syncmap_munmap(p, 2 << 20);
	close(witness);
	close(fd);
}

/* syncmap_persist on a range whose writeback fails returns -1 with the
 * error, never 0: the device fails the writes of the file's first MiB, the
 * program stores through the mapping there and persists.  A witness
 * description shows the device really failed. */
Test(files, persist_returns_the_write_error)
{
	struct failfs f;
	char path[256];
	int fd, witness, rc, err;
	unsigned char *p;

	FAILFS_OR_SKIP(&f);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = failing_file(&f, path, sizeof(path));
	p = syncmap_mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "syncmap_mmap: %s", strerror(errno));
	witness = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert(witness >= 0);
	/* The first MiB is written data, adopted at map time: no fault, no sync
	 * of the library's between the store and the persist. */
	memset(p + PG, 0x33, 16 * PG);
	errno = 0;
	rc = syncmap_persist(p + PG, 16 * PG);
	err = errno;
	cr_assert_eq(fsync(witness), -1, "the device did not fail the write: the test shows nothing");
	cr_expect_eq(rc, -1, "syncmap_persist returned 0 for data that never reached the disk");
	cr_expect(err == EIO || err == ENOSPC, "errno %d (%s), wanted EIO or ENOSPC", err, strerror(err));
	syncmap_munmap(p, 2 << 20);
	close(witness);
	close(fd);
}
