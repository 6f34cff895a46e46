/* preload.c -- the shim's start-up: the functions beneath it, its settings, its counters */
#include "preload.h"

#include "config.h"
#include "fault.h"
#include "sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

_Atomic int pl_state;
static _Atomic long init_tid; /* the thread running start(), to tell recursion from a race */

struct pl_real pl_real;
struct pl_stats pl_stats;
_Atomic uintptr_t pl_hull_lo = UINTPTR_MAX, pl_hull_hi = 0;

/* SYNCMAP_PRELOAD_PATHS, canonical, read once at start. */
#define PL_MAX_PATHS 32
static char *paths[PL_MAX_PATHS];
static size_t npaths;
static int paths_set;

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

/* sigaction has no raw equivalent (libc supplies the signal return
 * trampoline), and nothing in dlsym calls it: resolve it on the spot. */
static int lazy_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int (*fn)(int, const struct sigaction *, struct sigaction *) = dlsym(RTLD_NEXT, "sigaction");

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

/* stdio has no system call to stand in for it: looked up on the spot, which
 * only a call made while the shim starts ever does. */
static FILE *lazy_fopen(const char *p, const char *m)
{
	FILE *(*fn)(const char *, const char *) = dlsym(RTLD_NEXT, "fopen");

	if (fn == NULL) {
		errno = ENOSYS;
		return NULL;
	}
	return fn(p, m);
}

static FILE *lazy_freopen(const char *p, const char *m, FILE *f)
{
	FILE *(*fn)(const char *, const char *, FILE *) = dlsym(RTLD_NEXT, "freopen");

	if (fn == NULL) {
		errno = ENOSYS;
		return NULL;
	}
	return fn(p, m, f);
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

/* Waits with a mask, and pthread_create: looked up on the spot. */
#define LAZY(name, sym, params, args)                                   \
	static int lazy_##name params                                   \
	{                                                               \
		int(*fn) params = (int(*) params)dlsym(RTLD_NEXT, sym); \
		if (fn == NULL) {                                       \
			errno = ENOSYS;                                 \
			return -1;                                      \
		}                                                       \
		return fn args;                                         \
	}

LAZY(ppoll, "ppoll", (struct pollfd * f, nfds_t n, const struct timespec *t, const sigset_t *m), (f, n, t, m))
LAZY(ppoll_chk, "__ppoll_chk",
     (struct pollfd * f, nfds_t n, const struct timespec *t, const sigset_t *m, size_t l), (f, n, t, m, l))
LAZY(pselect, "pselect",
     (int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *m),
     (n, r, w, e, t, m))
LAZY(epoll_pwait, "epoll_pwait", (int ep, struct epoll_event *v, int n, int t, const sigset_t *m),
     (ep, v, n, t, m))
LAZY(epoll_pwait2, "epoll_pwait2",
     (int ep, struct epoll_event *v, int n, const struct timespec *t, const sigset_t *m), (ep, v, n, t, m))
LAZY(pthread_create, "pthread_create", (pthread_t * t, const pthread_attr_t *a, void *(*f)(void *), void *p),
     (t, a, f, p))

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
	.fopen64 = lazy_fopen,
	.freopen = lazy_freopen,
	.freopen64 = lazy_freopen,
	.pthread_sigmask = raw_pthread_sigmask,
	.sigprocmask = raw_sigprocmask,
	.sigsuspend = raw_sigsuspend,
	.ppoll = lazy_ppoll,
	.ppoll_chk = lazy_ppoll_chk,
	.pselect = lazy_pselect,
	.epoll_pwait = lazy_epoll_pwait,
	.epoll_pwait2 = lazy_epoll_pwait2,
	.pthread_create = lazy_pthread_create,
};

/* The next definition of name, or the raw stand-in when there is none (an
 * old libc without preadv2, say). */
#define RESOLVE(fn, name)                                                        \
	do {                                                                     \
		void *p_ = dlsym(RTLD_NEXT, name);                               \
		pl_real.fn = p_ != NULL ? (__typeof__(pl_raw.fn))p_ : pl_raw.fn; \
	} while (0)

static void resolve(void)
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
}

void *pl_next(void *_Atomic *slot, const char *name)
{
	void *fn = atomic_load_explicit(slot, memory_order_relaxed);

	if (fn == NULL) {
		fn = dlsym(RTLD_NEXT, name);
		atomic_store_explicit(slot, fn, memory_order_relaxed);
	}
	return fn;
}

static void warn(const char *what, const char *val, const char *why)
{
	fprintf(stderr, "libsyncmap-preload: ignoring %s=%s: %s\n", what, val, why);
}

/* SYNCMAP_PRELOAD_PATHS=dir1:dir2.  Directories that do not resolve are
 * reported and dropped; if none is left the shim takes no file at all,
 * which is what a restriction to nothing means. */
static void load_paths(void)
{
	const char *v = getenv("SYNCMAP_PRELOAD_PATHS");
	char *copy, *save = NULL;

	if (v == NULL || *v == '\0')
		return;
	paths_set = 1;
	copy = strdup(v);
	if (copy == NULL)
		return;
	for (char *d = strtok_r(copy, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
		char *rp;

		if (npaths == PL_MAX_PATHS) {
			warn("SYNCMAP_PRELOAD_PATHS entry", d, "more than 32 directories");
			continue;
		}
		rp = realpath(d, NULL);
		if (rp == NULL) {
			warn("SYNCMAP_PRELOAD_PATHS entry", d, strerror(errno));
			continue;
		}
		paths[npaths++] = rp;
	}
	free(copy);
	if (npaths == 0)
		fprintf(stderr,
			"libsyncmap-preload: no usable directory in SYNCMAP_PRELOAD_PATHS=%s: "
			"no mapping will be taken over\n",
			v);
}

static int under(const char *file, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return 1;
	return strncmp(file, dir, n) == 0 && file[n] == '/';
}

/*
 * Filesystems with no blocks to make durable.  Memory filesystems keep
 * nothing across a crash: the guarantee is void and FAULT mode pure cost
 * (POSIX shm, memfd and /dev/shm are tmpfs).  Pseudo filesystems map kernel
 * or device memory (a PCI BAR through sysfs "resource" files): readying a
 * grain there would populate and sync device memory.  memfd_secret(2)
 * memory (secretmem) refuses get_user_pages, so the library's touch of its
 * alias (MADV_POPULATE_WRITE) fails with EINVAL and the first write would
 * die of SIGBUS; it has no disk either.
 */
static int blockless(unsigned long type)
{
	switch (type) {
	case TMPFS_MAGIC:
	case RAMFS_MAGIC:
	case SYSFS_MAGIC:
	case PROC_SUPER_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case BPF_FS_MAGIC:
	case EFIVARFS_MAGIC:
	case PSTOREFS_MAGIC:
	case DEVPTS_SUPER_MAGIC:
	case ANON_INODE_FS_MAGIC:
	case SECRETMEM_MAGIC: return 1;
	default: return 0;
	}
}

int pl_file_wanted(int fd)
{
	char link[32], file[PATH_MAX];
	struct statfs sf;
	ssize_t n;

	if (fstatfs(fd, &sf) == 0 && blockless((unsigned long)sf.f_type))
		return 0;
	if (!paths_set)
		return 1;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, file, sizeof(file) - 1);
	if (n < 0)
		return 0;
	file[n] = '\0';
	for (size_t i = 0; i < npaths; i++)
		if (under(file, paths[i]))
			return 1;
	return 0;
}

void pl_hull_add(const void *p, size_t len)
{
	uintptr_t s = (uintptr_t)p, e = s + len;
	uintptr_t lo = atomic_load_explicit(&pl_hull_lo, memory_order_relaxed);
	uintptr_t hi = atomic_load_explicit(&pl_hull_hi, memory_order_relaxed);

	while (s < lo && !atomic_compare_exchange_weak_explicit(&pl_hull_lo, &lo, s, memory_order_relaxed,
								memory_order_relaxed))
		;
	while (e > hi && !atomic_compare_exchange_weak_explicit(&pl_hull_hi, &hi, e, memory_order_relaxed,
								memory_order_relaxed))
		;
}

#define LOAD(f) (unsigned long long)__atomic_load_n(&pl_stats.f, __ATOMIC_RELAXED)

static void stats_print(void)
{
	fprintf(stderr,
		"libsyncmap-preload[%d]: maps_taken=%llu maps_left=%llu maps_unguarded=%llu "
		"buffers_prepared=%llu files_changed=%llu handlers_chained=%llu\n",
		(int)getpid(), LOAD(maps_taken), LOAD(maps_left), LOAD(maps_unguarded),
		LOAD(buffers_prepared), LOAD(files_changed), LOAD(handlers_chained));
}

/* Which state the shim settles in.  Runs once, in the thread that won the
 * race to start it; calls it makes to interposed functions use the raw
 * stand-ins (the state is still INITING). */
static int start(void)
{
	const char *v;

	resolve();
	/* Secure-exec (setuid, file capabilities): the environment is the
	 * caller's, not the program's owner's; touch nothing. */
	if (getauxval(AT_SECURE) != 0)
		return PL_OFF;
	v = getenv("SYNCMAP_PRELOAD");
	if (v != NULL && strcmp(v, "0") == 0)
		return PL_OFF;
	if (v != NULL && *v != '\0' && strcmp(v, "1") != 0)
		warn("SYNCMAP_PRELOAD", v, "want 0 or 1");
	load_paths();
	/* The library's own sigaction calls must reach the kernel's handler
	 * table, not the program's view of it that ours below keeps. */
	sm_sigaction = pl_real.sigaction;
	sm_init();
	pl_masks_start();
	if (pl_signals_start() != 0) {
		fprintf(stderr, "libsyncmap-preload: cannot install the SIGSEGV handler (%s): shim off\n",
			strerror(errno));
		return PL_OFF;
	}
	if (sm_cfg.stats_at_exit)
		atexit(stats_print);
	return PL_ON;
}

int pl_start(int wait)
{
	long me = syscall(SYS_gettid);
	int s = PL_UNINIT;

	if (atomic_compare_exchange_strong(&pl_state, &s, PL_INITING)) {
		atomic_store(&init_tid, me);
		s = start();
		/* release: the pl_real pointers are visible before the state is. */
		atomic_store_explicit(&pl_state, s, memory_order_release);
		return s;
	}
	/* Another call is starting the shim.  In this very thread it is a
	 * recursion (dlsym -> malloc -> mmap): go through raw.  In another, wait
	 * if asked, so that a mapping we should take is not let past. */
	while (s == PL_INITING) {
		if (!wait || atomic_load(&init_tid) == me)
			return PL_INITING;
		sched_yield();
		s = atomic_load_explicit(&pl_state, memory_order_acquire);
	}
	return s;
}

/* Start before main: the SIGSEGV handler is in place before the program
 * installs its own, whatever order its constructors run in. */
__attribute__((constructor)) static void pl_ctor(void)
{
	pl_start(1);
}
