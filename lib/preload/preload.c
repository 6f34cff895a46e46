/* SPDX-License-Identifier: MIT */
/* preload.c -- the shim's start-up: its state, its settings, the files it takes, its counters */
#include "preload.h"

#include "config.h"
#include "init.h"
#include "fault.h"
#include "fstype.h"

#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

_Atomic int pl_state;
static _Atomic long init_tid; /* the thread running start(), to tell recursion from a race */

struct pl_stats pl_stats;
_Atomic uintptr_t pl_hull_lo = UINTPTR_MAX, pl_hull_hi = 0;

/* SYNCMAP_PRELOAD_PATHS, canonical, read once at start. */
#define PL_MAX_PATHS 32
static char *paths[PL_MAX_PATHS];
static size_t npaths;
static int paths_set;

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

/* Filesystems with no blocks to make durable (lib/fstype.c has the one
 * table): those the library never takes, and memory filesystems, which keep
 * nothing across a crash, so the guarantee is void and FAULT mode pure cost
 * (POSIX shm, memfd and /dev/shm are tmpfs). */
static int blockless(unsigned long type)
{
	return sm_fs_never_taken(type) || sm_fs_volatile(type);
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

	pl_resolve();
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
