/* SPDX-License-Identifier: MIT */
/* real.c -- the functions beneath the shim: looked up once at start, raw system calls standing in until then */
#include "preload.h"

#include "sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

struct pl_real pl_real;

/*
 * Raw system calls standing in for the functions beneath us until dlsym has
 * found them.  Only calls made while the shim starts land here: a replacement
 * malloc mapping memory for dlsym, a constructor that ran before ours.
 * 64-bit only, as the library: preadv's offset is one register (the kernel
 * ignores the high half it would take on 32-bit).
 */
static void *raw_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	return sm_sys_mmap(a, l, p, f, fd, o);
}

static int raw_munmap(void *a, size_t l)
{
	return sm_sys_munmap(a, l);
}

static int raw_mprotect(void *a, size_t l, int p)
{
	return sm_sys_mprotect(a, l, p);
}

static void *raw_mremap(void *old, size_t ol, size_t nl, int flags, ...)
{
	void *na = NULL;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		na = va_arg(ap, void *);
		va_end(ap);
	}
	return sm_sys_mremap(old, ol, nl, flags, na);
}

static int raw_madvise(void *a, size_t l, int adv)
{
	return (int)syscall(SYS_madvise, a, l, adv);
}

/* The next definition of sym, for a stand-in that has no system call to
 * make.  Once the shim has started, a stand-in still in use means that
 * pl_resolve() found no such function: no dlsym again (a caller may be a
 * signal handler), NULL. */
static void *lazy_lookup(const char *sym)
{
	if (atomic_load_explicit(&pl_state, memory_order_acquire) >= PL_OFF)
		return NULL;
	return dlsym(RTLD_NEXT, sym);
}

/* sigaction has no raw equivalent (libc supplies the signal return
 * trampoline), and nothing in dlsym calls it: resolve it on the spot. */
static int lazy_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int (*fn)(int, const struct sigaction *, struct sigaction *) =
		(int (*)(int, const struct sigaction *, struct sigaction *))lazy_lookup("sigaction");

	if (fn == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return fn(sig, act, old);
}

static ssize_t raw_read(int fd, void *b, size_t n)
{
	return syscall(SYS_read, fd, b, n);
}

static ssize_t raw_pread(int fd, void *b, size_t n, off_t o)
{
	return syscall(SYS_pread64, fd, b, n, o);
}

static ssize_t raw_readv(int fd, const struct iovec *v, int n)
{
	return syscall(SYS_readv, fd, v, n);
}

static ssize_t raw_preadv(int fd, const struct iovec *v, int n, off_t o)
{
	return syscall(SYS_preadv, fd, v, n, o, 0);
}

static ssize_t raw_preadv2(int fd, const struct iovec *v, int n, off_t o, int fl)
{
	return syscall(SYS_preadv2, fd, v, n, o, 0, fl);
}

static ssize_t raw_recvfrom(int fd, void *b, size_t n, int fl, struct sockaddr *a, socklen_t *al)
{
	return syscall(SYS_recvfrom, fd, b, n, fl, a, al);
}

static ssize_t raw_recvmsg(int fd, struct msghdr *m, int fl)
{
	return syscall(SYS_recvmsg, fd, m, fl);
}

static int raw_recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int fl, struct timespec *t)
{
	return (int)syscall(SYS_recvmmsg, fd, v, n, fl, t);
}

static int raw_ftruncate(int fd, off_t len)
{
	return (int)syscall(SYS_ftruncate, fd, len);
}

static int raw_truncate(const char *p, off_t len)
{
	return (int)syscall(SYS_truncate, p, len);
}

static int raw_fallocate(int fd, int mode, off_t off, off_t len)
{
	return (int)syscall(SYS_fallocate, fd, mode, off, len);
}

/* The open family: openat(2) on every path (x86_64 and arm64 both have it;
 * arm64 has no open(2)).  The mode is read only where open(2) reads it. */
static mode_t mode_of(int flags, va_list ap)
{
	return __OPEN_NEEDS_MODE(flags) ? va_arg(ap, mode_t) : 0;
}

static int raw_openat(int dir, const char *p, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_of(flags, ap);
	va_end(ap);
	return (int)syscall(SYS_openat, dir, p, flags, m);
}

static int raw_open(const char *p, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_of(flags, ap);
	va_end(ap);
	return raw_openat(AT_FDCWD, p, flags, m);
}

static int raw_creat(const char *p, mode_t m)
{
	return raw_openat(AT_FDCWD, p, O_CREAT | O_WRONLY | O_TRUNC, m);
}

/* The fortified forms only check that a mode was not needed. */
static int raw_open_2(const char *p, int flags)
{
	return raw_openat(AT_FDCWD, p, flags, 0);
}

static int raw_openat_2(int dir, const char *p, int flags)
{
	return raw_openat(dir, p, flags, 0);
}

/* The signal mask.  pthread_sigmask returns the error number; the kernel
 * takes the size of its sigset (8 bytes), not glibc's (128). */
static int raw_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	return (int)syscall(SYS_rt_sigprocmask, how, set, old, (size_t)(_NSIG / 8));
}

static int raw_pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	return raw_sigprocmask(how, set, old) == 0 ? 0 : errno;
}

static int raw_sigsuspend(const sigset_t *m)
{
	return (int)syscall(SYS_rt_sigsuspend, m, (size_t)(_NSIG / 8));
}

/*
 * Functions with no system call to stand in for them (stdio, signal(),
 * pthread_create, the waits that take a mask): looked up on the spot.  Only
 * calls made before the shim has started get here (a constructor that ran
 * before ours, the start itself); from then on every caller uses pl_real,
 * resolved once by the constructor: a first call from a signal handler must
 * not be a dlsym, which takes the dynamic loader's lock (not
 * async-signal-safe).
 */
#define LAZY(ret, fail, name, sym, params, args)                   \
	static ret lazy_##name params                              \
	{                                                          \
		ret(*fn) params = (ret(*) params)lazy_lookup(sym); \
		if (fn == NULL) {                                  \
			errno = ENOSYS;                            \
			return fail;                               \
		}                                                  \
		return fn args;                                    \
	}

LAZY(int, -1, ppoll, "ppoll", (struct pollfd * f, nfds_t n, const struct timespec *t, const sigset_t *m),
     (f, n, t, m))
LAZY(int, -1, ppoll_chk, "__ppoll_chk",
     (struct pollfd * f, nfds_t n, const struct timespec *t, const sigset_t *m, size_t l), (f, n, t, m, l))
LAZY(int, -1, pselect, "pselect",
     (int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *m),
     (n, r, w, e, t, m))
LAZY(int, -1, epoll_pwait, "epoll_pwait", (int ep, struct epoll_event *v, int n, int t, const sigset_t *m),
     (ep, v, n, t, m))
LAZY(int, -1, epoll_pwait2, "epoll_pwait2",
     (int ep, struct epoll_event *v, int n, const struct timespec *t, const sigset_t *m), (ep, v, n, t, m))
LAZY(int, EAGAIN, pthread_create, "pthread_create",
     (pthread_t * t, const pthread_attr_t *a, void *(*f)(void *), void *p), (t, a, f, p))

LAZY(FILE *, NULL, fopen, "fopen", (const char *p, const char *m), (p, m))
LAZY(FILE *, NULL, fopen64, "fopen64", (const char *p, const char *m), (p, m))
LAZY(FILE *, NULL, freopen, "freopen", (const char *p, const char *m, FILE *f), (p, m, f))
LAZY(FILE *, NULL, freopen64, "freopen64", (const char *p, const char *m, FILE *f), (p, m, f))
LAZY(size_t, 0, fread, "fread", (void *b, size_t s, size_t n, FILE *f), (b, s, n, f))
LAZY(size_t, 0, fread_unlocked, "fread_unlocked", (void *b, size_t s, size_t n, FILE *f), (b, s, n, f))
LAZY(sighandler_t, SIG_ERR, signal, "signal", (int s, sighandler_t h), (s, h))
LAZY(sighandler_t, SIG_ERR, sysv_signal, "sysv_signal", (int s, sighandler_t h), (s, h))
LAZY(sighandler_t, SIG_ERR, sigset, "sigset", (int s, sighandler_t h), (s, h))

/* The jumps have no system call either, and cannot return: one that finds
 * nothing aborts. */
#define LAZY_JUMP(name, sym)                                                     \
	static void lazy_##name(struct __jmp_buf_tag *env, int val)              \
	{                                                                        \
		void (*fn)(struct __jmp_buf_tag *, int) =                        \
			(void (*)(struct __jmp_buf_tag *, int))lazy_lookup(sym); \
		if (fn != NULL)                                                  \
			fn(env, val);                                            \
		abort();                                                         \
	}

LAZY_JUMP(longjmp, "longjmp")
LAZY_JUMP(longjmp_, "_longjmp")
LAZY_JUMP(siglongjmp, "siglongjmp")
LAZY_JUMP(longjmp_chk, "__longjmp_chk")

/* ioctl's one optional argument, taken as a pointer, as libc's own does. */
static int raw_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	return (int)syscall(SYS_ioctl, fd, req, arg);
}

static ssize_t raw_copy_file_range(int in, off64_t *io, int out, off64_t *oo, size_t n, unsigned fl)
{
	return syscall(SYS_copy_file_range, in, io, out, oo, n, fl);
}

const struct pl_real pl_raw = {
	.mmap = raw_mmap,
	.munmap = raw_munmap,
	.mprotect = raw_mprotect,
	.mremap = raw_mremap,
	.madvise = raw_madvise,
	.sigaction = lazy_sigaction,
	.read = raw_read,
	.pread = raw_pread,
	.readv = raw_readv,
	.preadv = raw_preadv,
	.preadv2 = raw_preadv2,
	.recvfrom = raw_recvfrom,
	.recvmsg = raw_recvmsg,
	.recvmmsg = raw_recvmmsg,
	.ftruncate = raw_ftruncate,
	.truncate = raw_truncate,
	.fallocate = raw_fallocate,
	.open = raw_open,
	.open64 = raw_open,
	.openat = raw_openat,
	.openat64 = raw_openat,
	.creat = raw_creat,
	.creat64 = raw_creat,
	.open_2 = raw_open_2,
	.open64_2 = raw_open_2,
	.openat_2 = raw_openat_2,
	.openat64_2 = raw_openat_2,
	.fopen = lazy_fopen,
	.fopen64 = lazy_fopen64,
	.freopen = lazy_freopen,
	.freopen64 = lazy_freopen64,
	.pthread_sigmask = raw_pthread_sigmask,
	.sigprocmask = raw_sigprocmask,
	.sigsuspend = raw_sigsuspend,
	.ppoll = lazy_ppoll,
	.ppoll_chk = lazy_ppoll_chk,
	.pselect = lazy_pselect,
	.epoll_pwait = lazy_epoll_pwait,
	.epoll_pwait2 = lazy_epoll_pwait2,
	.pthread_create = lazy_pthread_create,
	.ioctl = raw_ioctl,
	.copy_file_range = raw_copy_file_range,
	.signal = lazy_signal,
	.sysv_signal = lazy_sysv_signal,
	.sigset = lazy_sigset,
	.fread = lazy_fread,
	.fread_unlocked = lazy_fread_unlocked,
	.longjmp = lazy_longjmp,
	.longjmp_ = lazy_longjmp_,
	.siglongjmp = lazy_siglongjmp,
	.longjmp_chk = lazy_longjmp_chk,
};

/* The next definition of name, or the raw stand-in when there is none (an
 * old libc without preadv2, say). */
#define RESOLVE(fn, name)                                                        \
	do {                                                                     \
		void *p_ = dlsym(RTLD_NEXT, name);                               \
		pl_real.fn = p_ != NULL ? (__typeof__(pl_raw.fn))p_ : pl_raw.fn; \
	} while (0)

void pl_resolve(void)
{
	RESOLVE(sigaction, "sigaction");
	RESOLVE(mmap, "mmap");
	RESOLVE(munmap, "munmap");
	RESOLVE(mprotect, "mprotect");
	RESOLVE(mremap, "mremap");
	RESOLVE(madvise, "madvise");
	RESOLVE(read, "read");
	RESOLVE(pread, "pread64");
	RESOLVE(readv, "readv");
	RESOLVE(preadv, "preadv64");
	RESOLVE(preadv2, "preadv64v2");
	RESOLVE(recvfrom, "recvfrom");
	RESOLVE(recvmsg, "recvmsg");
	RESOLVE(recvmmsg, "recvmmsg");
	RESOLVE(ftruncate, "ftruncate64");
	RESOLVE(truncate, "truncate64");
	RESOLVE(fallocate, "fallocate64");
	RESOLVE(open, "open");
	RESOLVE(open64, "open64");
	RESOLVE(openat, "openat");
	RESOLVE(openat64, "openat64");
	RESOLVE(creat, "creat");
	RESOLVE(creat64, "creat64");
	RESOLVE(open_2, "__open_2");
	RESOLVE(open64_2, "__open64_2");
	RESOLVE(openat_2, "__openat_2");
	RESOLVE(openat64_2, "__openat64_2");
	RESOLVE(fopen, "fopen");
	RESOLVE(fopen64, "fopen64");
	RESOLVE(freopen, "freopen");
	RESOLVE(freopen64, "freopen64");
	RESOLVE(pthread_sigmask, "pthread_sigmask");
	RESOLVE(sigprocmask, "sigprocmask");
	RESOLVE(sigsuspend, "sigsuspend");
	RESOLVE(ppoll, "ppoll");
	RESOLVE(ppoll_chk, "__ppoll_chk");
	RESOLVE(pselect, "pselect");
	RESOLVE(epoll_pwait, "epoll_pwait");
	RESOLVE(epoll_pwait2, "epoll_pwait2");
	RESOLVE(pthread_create, "pthread_create");
	RESOLVE(ioctl, "ioctl");
	RESOLVE(copy_file_range, "copy_file_range");
	RESOLVE(signal, "signal");
	RESOLVE(sysv_signal, "sysv_signal");
	RESOLVE(sigset, "sigset");
	RESOLVE(fread, "fread");
	RESOLVE(fread_unlocked, "fread_unlocked");
	RESOLVE(longjmp, "longjmp");
	RESOLVE(longjmp_, "_longjmp");
	RESOLVE(siglongjmp, "siglongjmp");
	RESOLVE(longjmp_chk, "__longjmp_chk");
}
