/* SPDX-License-Identifier: MIT */
/* testpoint.c -- test-only: reset the guest at a chosen point of the grain path; the mutants' helpers
 *
 * Built only into the crash-tp program of tests/vm (see testpoint.h).
 * SYNCMAP_TESTPOINT=POINT:N[:MS], POINT one of
 *   touch     the N-th write-touch, before its msync (any thread)
 *   msync     the N-th grain msync has returned; bits and mprotect not done
 *   mprotect  the N-th upgrade of the user's mapping; the store comes next
 *   engine    the engine's first touch from its N-th window on, not yet msynced:
 *             the engine holds it there for up to MS ms (default 3000); the
 *             guest is reset when any other thread reaches a touch of its
 *             own (the writer got past the window, or gave up waiting for
 *             it), or when MS runs out.  What the writer stored and
 *             acknowledged meanwhile shows whether the window let it in
 *             before it was durable.
 * The reset is sysrq-b: nothing is synced or unmounted, as at a power cut.
 * It runs in the fault handler, so only system calls and atomics here.
 */
#include "testpoint.h"

#include "durable.h"
#include "region.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *const names[] = {"touch", "msync", "mprotect", "engine"};
static int tp_at = -1;	  /* enum sm_tp, or -1: no crash point */
static long tp_n;	  /* reset at this hit, 1 = the first */
static long tp_ms = 3000; /* engine: hold the window at most this long */
static _Atomic long hits, windows;
static _Atomic int held; /* engine: the window is held; another thread's touch resets */
static int sysrq_fd = -1;
static _Thread_local int on_engine;

__attribute__((constructor)) static void tp_load(void)
{
	const char *v = getenv("SYNCMAP_TESTPOINT");
	char *end;

	if (v == NULL || *v == '\0')
		return;
	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
		size_t n = strlen(names[i]);

		if (strncmp(v, names[i], n) != 0 || v[n] != ':')
			continue;
		tp_n = strtol(v + n + 1, &end, 10);
		if (*end == ':')
			tp_ms = strtol(end + 1, &end, 10);
		if (tp_n >= 1 && tp_ms >= 0 && *end == '\0')
			tp_at = i;
	}
	/* Opened here so that a guest without it fails at start, not at the point. */
	sysrq_fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
	if (tp_at < 0 || sysrq_fd < 0) {
		fprintf(stderr,
			"testpoint: SYNCMAP_TESTPOINT=%s: want touch|msync|mprotect|engine:N[:MS] and "
			"/proc/sysrq-trigger\n",
			v);
		_exit(2);
	}
}

static void put(char *buf, size_t *at, const char *s)
{
	while (*s != '\0' && *at < 120)
		buf[(*at)++] = *s++;
}

static void reset(const char *why)
{
	char buf[128], num[24];
	size_t at = 0, k = sizeof(num);
	unsigned long n = (unsigned long)tp_n;

	num[--k] = '\0';
	do
		num[--k] = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	put(buf, &at, "SMVM: testpoint ");
	put(buf, &at, names[tp_at]);
	put(buf, &at, ":");
	put(buf, &at, num + k);
	put(buf, &at, " ");
	put(buf, &at, why);
	buf[at++] = '\n';
	if (write(STDOUT_FILENO, buf, at) < 0) { /* best effort: the reset may beat the console */
	}
	if (write(sysrq_fd, "b", 1) != 1)
		kill(getpid(), SIGKILL); /* no sysrq: stop dead all the same */
	for (;;)
		pause();
}

void sm_testpoint(enum sm_tp at)
{
	if (at == SM_TP_ENGINE) {
		on_engine = 1;
		atomic_fetch_add(&windows, 1);
		return;
	}
	if (tp_at < 0)
		return;
	if (at == SM_TP_TOUCH && !on_engine && atomic_load(&held))
		reset("writer touched while the engine held its window");
	if (tp_at == SM_TP_ENGINE) {
		/* The first engine touch from the N-th window on, whatever runs
		 * earlier windows were cut into. */
		if (at != SM_TP_TOUCH || !on_engine || atomic_load(&windows) < tp_n ||
		    atomic_exchange(&held, 1))
			return;
		struct timespec ts = {tp_ms / 1000, (tp_ms % 1000) * 1000000};

		while (nanosleep(&ts, &ts) != 0) {
		}
		reset("engine held its window to the end");
	}
	if ((int)at == tp_at && atomic_fetch_add(&hits, 1) + 1 == tp_n)
		reset("hit");
}

int sm_testpoint_rc(enum sm_tp at, int rc)
{
	if (rc == 0)
		sm_testpoint(at);
	return rc;
}

/* Mutant engine_ready_early, on the engine thread between its touch and its
 * msync: the window's whole grains marked durable and its busy mark dropped,
 * so a writer that faults there upgrades at once, with nothing committed. */
void sm_mutant_ready_early(struct sm_region *r, uintptr_t s, uintptr_t e)
{
	if (!on_engine)
		return;
	for (uint64_t g = sm_grain_of(r, s), last = sm_grain_of(r, e - 1); g <= last; g++)
		if (sm_grain_start(r, g) >= s && sm_grain_end(r, g) <= e &&
		    sm_grain_end(r, g) - sm_grain_start(r, g) == r->grain)
			sm_bit_set(r->bits, g);
	atomic_store(&r->eng_busy, 0);
	syscall(SYS_futex, &r->eng_busy, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
