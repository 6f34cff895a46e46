/* SPDX-License-Identifier: MIT */
/* buffers.c -- read, recv and kin: a buffer in a FAULT mapping is made writable before the kernel writes it
 *
 * The kernel does not raise SIGSEGV for its own writes into user memory: a
 * read(2) into a page of a FAULT mapping that is still read-only fails with
 * EFAULT (or comes back short), and a datagram received that way is lost.
 * So the buffer is readied first.  The common case, a buffer that is no
 * mapping of ours, costs two loads (pl_hull_hit).
 */
#include "preload.h"

#include "changed.h"
#include "config.h"
#include "durable.h"
#include "region.h"
#include "syncmap.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

extern void __chk_fail(void) __attribute__((noreturn));

/*
 * Grains already durable are writable, except a grain the background engine
 * readied as a tripwire (durable, left read-only so that the writer's fault
 * there asks for the next window).  One atomic add of zero per grain settles
 * it: a no-op store where the grain is writable, and where it is not, a
 * write fault that the library's handler upgrades without a sync.  The
 * value is never changed, so a racing store from another thread is kept.
 */
static void touch(uintptr_t from, uintptr_t e, uintptr_t rstart, uint64_t roff, size_t grain)
{
	for (uintptr_t t = from; t < e;) {
		uint64_t fo = roff + (t - rstart);

		__atomic_fetch_add((unsigned char *)t, 0, __ATOMIC_RELAXED);
		t += grain - fo % grain;
	}
}

/* One region's part [s, e) of the buffer that starts at p.  0, or an errno. */
static int ready_part(struct sm_region *r, uintptr_t s, uintptr_t e, uintptr_t p)
{
	uint64_t g = sm_grain_of(r, s), last = sm_grain_of(r, e - 1);
	uintptr_t rstart = r->start;
	uint64_t roff = (uint64_t)r->off;
	size_t grain = r->grain;
	int err;

	if (sm_bits_next(r->bits, g, last + 1, 0) <= last) {
		/* Some grain is not durable yet: ready it all now, as a fault would. */
		err = sm_ready(r, s, e, r->prot);
		sm_region_put(r);
		/* ENXIO: the buffer runs past EOF, where the kernel's EFAULT is
		 * what a plain mapping gives too. */
		return err == ENXIO ? 0 : err;
	}
	/* The touch may fault into the library's handler, which takes its own
	 * ref: ours must be dropped first, or an unmap waiting for refs to drain
	 * would wait for us while we wait for it. */
	sm_region_put(r);
	touch(s > p ? s : p, e, rstart, roff, grain);
	return 0;
}

/* The pages [a, end) of the buffer that starts at p: 0, or -1/errno. */
static int ready_buffer(uintptr_t a, uintptr_t end, uintptr_t p)
{
	int met = 0;

	while (a < end) {
		struct sm_region *r;
		uintptr_t s, e;
		int err = 0, st = sm_region_next(a, &r);

		if (st == SM_NOTFOUND)
			break;
		if (st == SM_BUSY) {
			sched_yield(); /* a writer is changing the mapping: look again */
			continue;
		}
		if (r->start >= end) {
			sm_region_put(r);
			break;
		}
		s = a > r->start ? a : r->start;
		e = end < r->end ? end : r->end;
		if (r->mode == SYNCMAP_MODE_FAULT && (r->prot & PROT_WRITE)) {
			met = 1;
			err = ready_part(r, s, e, p); /* puts r */
		} else {
			sm_region_put(r);
		}
		if (err != 0) {
			/* Nothing read: data the kernel would have consumed stays. */
			errno = err;
			return -1;
		}
		a = e;
	}
	if (met)
		PL_STAT_ADD(buffers_prepared, 1);
	return 0;
}

int pl_buffer(void *buf, size_t len)
{
	uintptr_t p = (uintptr_t)buf, pg = sm_cfg.page, a, end;
	int rc;

	if (len == 0 || !pl_hull_hit(buf, len))
		return 0;
	a = p & ~(pg - 1);
	end = (p + len + pg - 1) & ~(pg - 1);
	if (end <= p)
		return 0; /* wraps: the kernel's EFAULT */
	/* Held while refs are: a signal handler that truncates the file
	 * meanwhile (changed.h) must not wait for our ref to drain. */
	sm_changes_hold();
	rc = ready_buffer(a, end, p);
	sm_changes_release();
	return rc;
}

/* Does the process have a mapping of the shim's at all?  Decides whether the
 * program's iovec and msghdr arrays are looked into. */
static int any_taken(void)
{
	return atomic_load_explicit(&pl_hull_hi, memory_order_relaxed) != 0;
}

/*
 * Can the kernel read [p, p + n)?  It answers for us, with no side effect:
 * rt_sigprocmask copies the new set in first (EFAULT if it cannot), and
 * only then looks at how, an invalid how being EINVAL with the mask left
 * alone (kernel/signal.c).  It reads 8 bytes; readability is per page, so
 * one probe per page the range touches, the last one ending at p + n.
 * Chosen over process_vm_readv on ourselves, which seccomp filters
 * (systemd's SystemCallFilter=, container runtimes) commonly kill for,
 * while rt_sigprocmask is one every program makes (glibc, for each thread
 * it creates; the library, for its own handler).  n >= 8.
 */
static int readable(const void *p, size_t n)
{
	uintptr_t s = (uintptr_t)p, e = s + n, pg = sm_cfg.page;

	for (uintptr_t a = s; a < e; a = (a & ~(pg - 1)) + pg) {
		uintptr_t q = e - a >= 8 ? a : e - 8;

		if (syscall(SYS_rt_sigprocmask, -1, (void *)q, NULL, (size_t)8) != 0 && errno == EFAULT)
			return 0;
	}
	return e > s; /* wraps: the kernel's EFAULT */
}

/* Copy n bytes of the program's memory that the kernel would read (an
 * iovec array, a msghdr): a bad pointer must come back as the kernel's
 * EFAULT, not as our SIGSEGV.  -1: the pointer is bad.  (A thread that
 * unmaps the array while another passes it to readv races its own call.) */
static int copy_in(void *dst, const void *src, size_t n)
{
	int saved = errno, ok = readable(src, n);

	errno = saved;
	if (!ok)
		return -1;
	memcpy(dst, src, n);
	return 0;
}

#define IOV_CHUNK 64

static int ready_iov(const struct iovec *iov, int cnt)
{
	struct iovec v[IOV_CHUNK];

	if (cnt <= 0 || cnt > IOV_MAX || !any_taken())
		return 0; /* the kernel's EINVAL, or nothing of ours */
	for (int i = 0; i < cnt; i += IOV_CHUNK) {
		int n = cnt - i < IOV_CHUNK ? cnt - i : IOV_CHUNK;

		if (copy_in(v, iov + i, (size_t)n * sizeof(v[0])) != 0)
			return 0; /* the kernel's EFAULT */
		for (int j = 0; j < n; j++)
			if (pl_buffer(v[j].iov_base, v[j].iov_len) != 0)
				return -1;
	}
	return 0;
}

/* Everything the kernel writes for one received message: the data, the
 * source address, the control data, and the lengths and flags it writes
 * back into the msghdr itself. */
static int ready_msg(struct msghdr *msg)
{
	struct msghdr m;

	if (!any_taken() || copy_in(&m, msg, sizeof(m)) != 0)
		return 0;
	if (pl_buffer(msg, sizeof(*msg)) != 0 || pl_buffer(m.msg_name, m.msg_namelen) != 0 ||
	    pl_buffer(m.msg_control, m.msg_controllen) != 0)
		return -1;
	return ready_iov(m.msg_iov, (int)m.msg_iovlen);
}

PL_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	if (pl_on() && pl_buffer(buf, n) != 0)
		return -1;
	return REAL(read)(fd, buf, n);
}

PL_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return read(fd, buf, n);
}

PL_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	if (pl_on() && pl_buffer(buf, n) != 0)
		return -1;
	return REAL(pread)(fd, buf, n, off);
}

PL_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	return pread(fd, buf, n, off);
}

PL_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return pread(fd, buf, n, off);
}

PL_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return pread(fd, buf, n, off);
}

PL_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	if (pl_on() && ready_iov(iov, cnt) != 0)
		return -1;
	return REAL(readv)(fd, iov, cnt);
}

PL_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (pl_on() && ready_iov(iov, cnt) != 0)
		return -1;
	return REAL(preadv)(fd, iov, cnt, off);
}

PL_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	return preadv(fd, iov, cnt, off);
}

PL_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (pl_on() && ready_iov(iov, cnt) != 0)
		return -1;
	return REAL(preadv2)(fd, iov, cnt, off, flags);
}

PL_EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
	return preadv2(fd, iov, cnt, off, flags);
}

/* The source address: its length is the program's *len, read by the kernel;
 * a sockaddr_storage is the most it can be given, and readying a little more
 * than the buffer only readies grains early. */
static int ready_from(struct sockaddr *from, socklen_t *len)
{
	if (from == NULL || len == NULL)
		return 0;
	if (pl_buffer(len, sizeof(*len)) != 0)
		return -1;
	return pl_buffer(from, sizeof(struct sockaddr_storage));
}

PL_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from, socklen_t *len)
{
	if (pl_on() && (pl_buffer(buf, n) != 0 || ready_from(from, len) != 0))
		return -1;
	return REAL(recvfrom)(fd, buf, n, flags, from, len);
}

PL_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return recvfrom(fd, buf, n, flags, NULL, NULL);
}

PL_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return recvfrom(fd, buf, n, flags, NULL, NULL);
}

PL_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *from,
				 socklen_t *len)
{
	if (n > buflen)
		__chk_fail();
	return recvfrom(fd, buf, n, flags, from, len);
}

PL_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (pl_on() && ready_msg(msg) != 0)
		return -1;
	return REAL(recvmsg)(fd, msg, flags);
}

/* stdio reads a large request straight into the caller's buffer with its
 * own internal read(2), which no wrapper sees. */
static size_t stdio_read(size_t (*fn)(void *, size_t, size_t, FILE *), void *buf, size_t size, size_t n,
			 FILE *f)
{
	if (pl_on() && size != 0 && n <= SIZE_MAX / size && pl_buffer(buf, size * n) != 0)
		return 0; /* errno says why; the stream is untouched */
	return fn(buf, size, n, f);
}

PL_EXPORT size_t fread(void *buf, size_t size, size_t n, FILE *f)
{
	return stdio_read(REAL(fread), buf, size, n, f);
}

#undef fread_unlocked /* a macro in glibc's stdio.h when optimizing */
PL_EXPORT size_t fread_unlocked(void *buf, size_t size, size_t n, FILE *f)
{
	return stdio_read(REAL(fread_unlocked), buf, size, n, f);
}

PL_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags, struct timespec *timeout)
{
	if (pl_on() && any_taken()) {
		/* The kernel takes at most UIO_MAXIOV (1024) messages per call. */
		unsigned int k = n < 1024 ? n : 1024;

		if (pl_buffer(vec, (size_t)k * sizeof(*vec)) != 0)
			return -1;
		for (unsigned int i = 0; i < k; i++)
			if (ready_msg(&vec[i].msg_hdr) != 0)
				return -1;
	}
	return REAL(recvmmsg)(fd, vec, n, flags, timeout);
}
