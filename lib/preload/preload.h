/* SPDX-License-Identifier: MIT */
/* preload.h -- the LD_PRELOAD shim's shared state: start-up, the functions beneath it, counters (private) */
#ifndef SM_PRELOAD_H
#define SM_PRELOAD_H

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The interposed functions are the only symbols besides the public API that
 * the shim exports (the build's default visibility is hidden). */
#define PL_EXPORT __attribute__((visibility("default")))

/*
 * Life of the shim.  UNINIT until the first interposed call or the
 * constructor; INITING while one thread resolves the functions beneath us
 * (dlsym may call malloc, a replacement malloc may call mmap: such calls
 * come back to us and go straight to the kernel); then OFF (SYNCMAP_PRELOAD=0,
 * secure-exec, or a failed start) or ON for good.
 */
enum { PL_UNINIT, PL_INITING, PL_OFF, PL_ON };
extern _Atomic int pl_state;

int pl_start(int wait); /* the state after starting if needed; waits for another thread's start if asked */

/* 1 if the shim is taking over mappings.  Cheap once started: one load. */
static inline int pl_on(void)
{
	int s = atomic_load_explicit(&pl_state, memory_order_acquire);

	if (__builtin_expect(s >= PL_OFF, 1))
		return s == PL_ON;
	return pl_start(0) == PL_ON;
}

/* As pl_on(), but a call that may be taken over waits for a start running in
 * another thread instead of slipping past it. */
static inline int pl_on_wait(void)
{
	int s = atomic_load_explicit(&pl_state, memory_order_acquire);

	if (__builtin_expect(s >= PL_OFF, 1))
		return s == PL_ON;
	return pl_start(1) == PL_ON;
}

/* The functions beneath the shim (the next definition: libc's, or another
 * interposer's).  Until they are resolved, REAL() gives a raw system call of
 * the same meaning, which is all that a call made during start-up needs. */
struct pl_real {
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	int (*mprotect)(void *, size_t, int);
	void *(*mremap)(void *, size_t, size_t, int, ...);
	int (*madvise)(void *, size_t, int);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*pread)(int, void *, size_t, off_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	ssize_t (*preadv)(int, const struct iovec *, int, off_t);
	ssize_t (*preadv2)(int, const struct iovec *, int, off_t, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	int (*ftruncate)(int, off_t);
	int (*truncate)(const char *, off_t);
	int (*fallocate)(int, int, off_t, off_t);
	int (*open)(const char *, int, ...);
	int (*open64)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*openat64)(int, const char *, int, ...);
	int (*creat)(const char *, mode_t);
	int (*creat64)(const char *, mode_t);
	int (*open_2)(const char *, int);
	int (*open64_2)(const char *, int);
	int (*openat_2)(int, const char *, int);
	int (*openat64_2)(int, const char *, int);
	FILE *(*fopen)(const char *, const char *);
	FILE *(*fopen64)(const char *, const char *);
	FILE *(*freopen)(const char *, const char *, FILE *);
	FILE *(*freopen64)(const char *, const char *, FILE *);
	int (*pthread_sigmask)(int, const sigset_t *, sigset_t *);
	int (*sigprocmask)(int, const sigset_t *, sigset_t *);
	int (*sigsuspend)(const sigset_t *);
	int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
	int (*ppoll_chk)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t);
	int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
	int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
	int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
	int (*pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	int (*ioctl)(int, unsigned long, ...);
	ssize_t (*copy_file_range)(int, off64_t *, int, off64_t *, size_t, unsigned);
	sighandler_t (*signal)(int, sighandler_t);
	sighandler_t (*sysv_signal)(int, sighandler_t);
	sighandler_t (*sigset)(int, sighandler_t);
	size_t (*fread)(void *, size_t, size_t, FILE *);
	size_t (*fread_unlocked)(void *, size_t, size_t, FILE *);
	/* They do not return. */
	void (*longjmp)(struct __jmp_buf_tag *, int);
	void (*longjmp_)(struct __jmp_buf_tag *, int); /* _longjmp */
	void (*siglongjmp)(struct __jmp_buf_tag *, int);
	void (*longjmp_chk)(struct __jmp_buf_tag *, int);
};
extern struct pl_real pl_real;
extern const struct pl_real pl_raw;

/* Look every one of them up (dlsym), once, while the shim starts (real.c). */
void pl_resolve(void);

#define REAL(fn) (atomic_load_explicit(&pl_state, memory_order_acquire) >= PL_OFF ? pl_real.fn : pl_raw.fn)

/* Does the mapping of fd belong to the shim by SYNCMAP_PRELOAD_PATHS and by
 * its filesystem?  1 or 0. */
int pl_file_wanted(int fd);

/*
 * The address range that holds every mapping the shim took over: a cheap,
 * conservative "is this buffer possibly ours?" for the calls made most
 * often (read, recv).  It only grows; an address outside it is in no
 * mapping the shim made.
 */
extern _Atomic uintptr_t pl_hull_lo, pl_hull_hi;

static inline int pl_hull_hit(const void *p, size_t len)
{
	uintptr_t s = (uintptr_t)p;

	return s < atomic_load_explicit(&pl_hull_hi, memory_order_relaxed) &&
	       s + len > atomic_load_explicit(&pl_hull_lo, memory_order_relaxed);
}

void pl_hull_add(const void *p, size_t len);

/* What the shim did, printed at exit with SYNCMAP_STATS=1. */
struct pl_stats {
	uint64_t maps_taken;	   /* mappings handed to syncmap_mmap */
	uint64_t maps_left;	   /* shared writable file mappings left alone (paths, tmpfs, MAP_SYNC) */
	uint64_t maps_unguarded;   /* taken but made plain: the library had no descriptor for it */
	uint64_t buffers_prepared; /* system-call buffers made writable before the call */
	uint64_t files_changed;	   /* truncate/fallocate/MADV_REMOVE that re-protected ranges */
	uint64_t handlers_chained; /* SIGSEGV dispositions the program set, kept behind ours */
};
extern struct pl_stats pl_stats;

#define PL_STAT_ADD(field, n) __atomic_fetch_add(&pl_stats.field, (uint64_t)(n), __ATOMIC_RELAXED)

/* Is there any mapping of the library's at all?  Lock-free; when there is
 * none, no block the program frees can need re-protecting (blocks.c). */
int pl_any_region(void);

/* The blocks of fd's file in [off, off + len) (len 0: to its end) were
 * freed, shared or moved: re-protect them in the library's mappings, errno
 * kept (blocks.c). */
void pl_blocks_changed(int fd, off_t off, off_t len);

/* Set up by pl_start() once ON: the SIGSEGV handler, installed at start so
 * that the program's view of SIGSEGV never depends on whether a FAULT
 * mapping exists yet (signals.c). */
int pl_signals_start(void);

/* Change this thread's mask as sigprocmask(2) does, SIGSEGV kept
 * deliverable and the program's wish for it recorded (masks.c). */
int pl_mask_change(int how, const sigset_t *set, sigset_t *old);

/* At start: a SIGSEGV blocked across execve is unblocked, the wish kept;
 * the view of the mask handed to the library's fault handler. */
void pl_masks_start(void);

/* The program is about to jump to env: the SIGSEGV handlers it leaves are
 * over (masks.c).  Async-signal-safe; one load when none is running. */
void pl_jumping(struct __jmp_buf_tag *env);

/* Make [p, p + len) writable if it lies in FAULT mappings of the shim:
 * 0, or -1 with errno (ENOSPC, EDQUOT, EIO) and nothing done (buffers.c). */
int pl_buffer(void *p, size_t len);

#endif
