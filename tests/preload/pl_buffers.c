/* SPDX-License-Identifier: MIT */
/* pl_buffers.c -- read, recv and kin into FAULT pages not yet written: they succeed, nothing is lost */
#include "ptest.h"

#include <limits.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>

#define GRAIN (64 * 1024) /* the library's default: each step below uses grains no one wrote */
#define NGRAINS 32
#define MSG 6000 /* straddles a page boundary */

extern ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);

static char *map;
static int mfd;
static int next_grain;

/* A range at the end of a grain no one wrote, crossing into the next one:
 * two pages that are read-only under the shim. */
static char *fresh(size_t len)
{
	char *p;

	REQUIRE(next_grain + 2 <= NGRAINS, "test ran out of grains");
	p = map + (size_t)(next_grain + 1) * GRAIN - 100;
	next_grain += 2;
	CHECK(!pt_writable(p) && !pt_writable(p + len - 1), "page at %p already writable before the call",
	      (void *)p);
	return p;
}

static void pattern(char *buf, size_t len, unsigned salt)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)pt_byte(i, salt);
}

/* The data arrived, whole, and its blocks are allocated with no flush. */
static void arrived(const char *what, const char *p, size_t len, unsigned salt)
{
	char want[MSG];

	pattern(want, len, salt);
	CHECK(memcmp(p, want, len) == 0, "%s: data differs", what);
	CHECK(range_allocated_flags(mfd, p - map, len, NULL) == 1, "%s: blocks not allocated+written", what);
	pt_note("%s: %zu bytes into a fresh FAULT page: ok", what, len);
}

static void pipe_and_read(void)
{
	char src[MSG], *p = fresh(MSG);
	int pfd[2];
	ssize_t n;

	REQUIRE(pipe(pfd) == 0, "pipe");
	pattern(src, MSG, 1);
	REQUIRE(write(pfd[1], src, MSG) == MSG, "write pipe");
	/* The kernel alone cannot write there: the raw system call fails, and
	 * the pipe keeps its data. */
	n = syscall(SYS_read, pfd[0], p, (size_t)MSG);
	CHECK(n == -1 && errno == EFAULT, "raw read into a read-only FAULT page: %zd (%s)", n,
	      strerror(errno));
	n = read(pfd[0], p, MSG);
	CHECK(n == MSG, "read: %zd (%s)", n, strerror(errno));
	arrived("read(pipe)", p, MSG, 1);
	p = fresh(MSG);
	REQUIRE(write(pfd[1], src, MSG) == MSG, "write pipe");
	n = __read_chk(pfd[0], p, MSG, MSG);
	CHECK(n == MSG, "__read_chk: %zd (%s)", n, strerror(errno));
	arrived("__read_chk(pipe)", p, MSG, 1);
	close(pfd[0]);
	close(pfd[1]);
}

static void file_reads(const char *dir)
{
	char src[MSG], path[PATH_MAX], *p, *q;
	struct iovec iov[2];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/source", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0, "open source");
	pattern(src, MSG, 2);
	REQUIRE(write(fd, src, MSG) == MSG, "write source");
	p = fresh(MSG);
	CHECK(pread(fd, p, MSG, 0) == MSG, "pread: %s", strerror(errno));
	arrived("pread", p, MSG, 2);
	p = fresh(MSG);
	CHECK(pread64(fd, p, MSG, 0) == MSG, "pread64: %s", strerror(errno));
	arrived("pread64", p, MSG, 2);
	p = fresh(MSG / 2);
	q = fresh(MSG - MSG / 2);
	iov[0] = (struct iovec){p, MSG / 2};
	iov[1] = (struct iovec){q, MSG - MSG / 2};
	REQUIRE(lseek(fd, 0, SEEK_SET) == 0, "lseek");
	n = readv(fd, iov, 2);
	CHECK(n == MSG, "readv: %zd (%s)", n, strerror(errno));
	arrived("readv[0]", p, MSG / 2, 2);
	CHECK(memcmp(q, src + MSG / 2, MSG - MSG / 2) == 0, "readv[1]: data differs");
	p = fresh(MSG);
	iov[0] = (struct iovec){p, MSG};
	CHECK(preadv(fd, iov, 1, 0) == MSG, "preadv: %s", strerror(errno));
	arrived("preadv", p, MSG, 2);
	p = fresh(MSG);
	iov[0] = (struct iovec){p, MSG};
	CHECK(preadv2(fd, iov, 1, 0, 0) == MSG, "preadv2: %s", strerror(errno));
	arrived("preadv2", p, MSG, 2);
	/* stdio reads a request larger than its buffer straight into ours,
	 * with its own internal read(2). */
	{
		FILE *f = fdopen(dup(fd), "r");

		REQUIRE(f != NULL && fseek(f, 0, SEEK_SET) == 0, "fdopen");
		p = fresh(MSG);
		CHECK(fread(p, 1, MSG, f) == MSG, "fread: %s", strerror(errno));
		arrived("fread", p, MSG, 2);
		fclose(f);
	}
	close(fd);
}

static void sockets(void)
{
	char src[MSG], *p;
	struct sockaddr_un from;
	socklen_t fromlen = sizeof(from);
	struct mmsghdr mm[2];
	struct iovec iov[2];
	struct msghdr mh;
	int sv[2], dv[2];
	ssize_t n;

	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair stream");
	REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, dv) == 0, "socketpair dgram");
	pattern(src, MSG, 3);

	p = fresh(MSG);
	REQUIRE(send(sv[1], src, MSG, 0) == MSG, "send");
	n = recv(sv[0], p, MSG, MSG_WAITALL);
	CHECK(n == MSG, "recv: %zd (%s)", n, strerror(errno));
	arrived("recv(stream)", p, MSG, 3);

	/* A datagram the kernel cannot copy is dropped: it must be copied whole
	 * the first time. */
	p = fresh(MSG);
	REQUIRE(send(dv[1], src, MSG, 0) == MSG, "send dgram");
	n = recvfrom(dv[0], p, MSG, 0, (struct sockaddr *)&from, &fromlen);
	CHECK(n == MSG, "recvfrom: %zd (%s)", n, strerror(errno));
	arrived("recvfrom(dgram)", p, MSG, 3);

	p = fresh(MSG);
	REQUIRE(send(dv[1], src, MSG, 0) == MSG, "send dgram");
	iov[0] = (struct iovec){p, MSG};
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 1;
	n = recvmsg(dv[0], &mh, 0);
	CHECK(n == MSG && !(mh.msg_flags & MSG_TRUNC), "recvmsg: %zd (%s)", n, strerror(errno));
	arrived("recvmsg(dgram)", p, MSG, 3);

	memset(mm, 0, sizeof(mm));
	for (int i = 0; i < 2; i++) {
		REQUIRE(send(dv[1], src, MSG, 0) == MSG, "send dgram");
		iov[i] = (struct iovec){fresh(MSG), MSG};
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	n = recvmmsg(dv[0], mm, 2, 0, NULL);
	CHECK(n == 2 && mm[0].msg_len == MSG && mm[1].msg_len == MSG, "recvmmsg: %zd (%s)", n,
	      strerror(errno));
	arrived("recvmmsg[0]", iov[0].iov_base, MSG, 3);
	arrived("recvmmsg[1]", iov[1].iov_base, MSG, 3);
	close(sv[0]);
	close(sv[1]);
	close(dv[0]);
	close(dv[1]);
}

/* Past EOF a plain mapping gives EFAULT to read(2), and so must we: no
 * SIGBUS, no crash.  A bad iovec pointer is the kernel's EFAULT too. */
static void bad_buffers(void)
{
	size_t len = (size_t)NGRAINS * GRAIN;
	char *tail = mmap(NULL, len + GRAIN, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	/* volatile: the compiler would rightly refuse a constant bad pointer */
	const struct iovec *volatile bad_iov = (const struct iovec *)8;
	struct msghdr *volatile bad_msg = (struct msghdr *)8;
	int pfd[2];
	ssize_t n;

	REQUIRE(tail != MAP_FAILED, "mmap past EOF: %s", strerror(errno));
	REQUIRE(pipe(pfd) == 0, "pipe");
	REQUIRE(write(pfd[1], "abcd", 4) == 4, "write pipe");
	n = read(pfd[0], tail + len + 4096, 4);
	CHECK(n == -1 && errno == EFAULT, "read past EOF: %zd (%s)", n, strerror(errno));
	n = readv(pfd[0], bad_iov, 1);
	CHECK(n == -1 && errno == EFAULT, "readv with a bad iovec pointer: %zd (%s)", n, strerror(errno));
	n = recvmsg(pfd[0], bad_msg, 0);
	CHECK(n == -1 && (errno == EFAULT || errno == ENOTSOCK), "recvmsg with a bad msghdr: %zd (%s)", n,
	      strerror(errno));
	pt_note("past EOF and bad pointers: the kernel's EFAULT, no crash");
	close(pfd[0]);
	close(pfd[1]);
	munmap(tail, len + GRAIN);
}

/* No space for the grain under the buffer: the call fails with ENOSPC
 * before the kernel consumes anything, and the data is still there. */
static void no_space(const char *dir)
{
	char path[PATH_MAX], buf[8], *p = fresh(8);
	struct statvfs sv;
	int fd, pfd[2];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && fstatvfs(fd, &sv) == 0, "filler");
	/* Fill the filesystem to the last block. */
	for (off_t size = 0, chunk = (off_t)sv.f_bavail * (off_t)sv.f_bsize; chunk >= 4096; chunk /= 2)
		while (fallocate(fd, 0, size, chunk) == 0)
			size += chunk;
	REQUIRE(pipe(pfd) == 0, "pipe");
	REQUIRE(write(pfd[1], "payload", 8) == 8, "write pipe");
	n = read(pfd[0], p, 8);
	CHECK(n == -1 && errno == ENOSPC, "read into a hole of a full fs: %zd (%s)", n, strerror(errno));
	CHECK(read(pfd[0], buf, 8) == 8 && memcmp(buf, "payload", 8) == 0, "the pipe lost its data");
	pt_note("full filesystem: read fails with ENOSPC, the pipe keeps its data");
	close(pfd[0]);
	close(pfd[1]);
	close(fd);
	unlink(path);
}

/*
 * A grain that is durable but read-only: the library's engine, running ahead
 * of a sequential writer, leaves one such "tripwire" grain per window so that
 * the writer's fault there asks for the next window.  Its grain bit says
 * durable, yet the kernel cannot write it: the shim must still open it.
 */
static void tripwire(const char *dir)
{
	int fd = pt_sparse(dir, "tripwire", 16 * GRAIN, NULL, 0), pfd[2], found = -1;
	char *p = mmap(NULL, 16 * GRAIN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ssize_t n;

	REQUIRE(p != MAP_FAILED && pipe(pfd) == 0, "setup");
	p[0] = 1; /* the first grain of the mapping: the engine readies the next ones */
	/* Let the engine finish its window (it upgrades the window's last grain
	 * last, or leaves nothing writable at all), then look for the grain
	 * it made durable and left read-only. */
	for (int tries = 0; tries < 2000; tries++) {
		int writable = 0;

		for (int g = 2; g < 16; g++)
			writable += pt_writable(p + g * GRAIN);
		if (writable > 0 && pt_writable(p + 4 * GRAIN))
			break;
		usleep(1000);
	}
	for (int g = 1; g < 16 && found < 0; g++)
		if (range_allocated_flags(fd, (off_t)g * GRAIN, GRAIN, NULL) == 1 &&
		    !pt_writable(p + g * GRAIN))
			found = g;
	if (found < 0) {
		pt_note("tripwire: the engine left no durable read-only grain here; case not exercised");
	} else {
		REQUIRE(write(pfd[1], "tripwire", 8) == 8, "write pipe");
		n = syscall(SYS_read, pfd[0], p + found * GRAIN, (size_t)8);
		CHECK(n == -1 && errno == EFAULT, "raw read into the tripwire grain: %zd", n);
		n = read(pfd[0], p + found * GRAIN, 8);
		CHECK(n == 8 && memcmp(p + found * GRAIN, "tripwire", 8) == 0,
		      "read into the tripwire grain: %zd (%s)", n, strerror(errno));
		pt_note("read into a durable but read-only grain (the engine's tripwire, grain %d): ok",
			found);
	}
	close(pfd[0]);
	close(pfd[1]);
	munmap(p, 16 * GRAIN);
	close(fd);
}

int main(int argc, char **argv)
{
	size_t len = (size_t)NGRAINS * GRAIN;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	mfd = pt_sparse(argv[1], "buffers", len, NULL, 0);
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(map != MAP_FAILED, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode(map) == PT_FAULT, "the shim did not take the mapping (mode %d)", pt_mode(map));
	pipe_and_read();
	file_reads(argv[1]);
	sockets();
	bad_buffers();
	tripwire(argv[1]);
	no_space(argv[1]);
	return pt_done("pl_buffers");
}
