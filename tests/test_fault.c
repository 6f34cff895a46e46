/* SPDX-License-Identifier: MIT */
/* test_fault.c -- the SIGSEGV handler: our faults, everybody else's, SIGBUS, injection */
#include "durable.h"
#include "fault.h"
#include "helpers.h"
#include "region.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
/* Stores the compiler may not move past the checks that follow them. */
#define POKE(p, v) (*(volatile char *)(p) = (char)(v))

static int fault_fd = -1;

/* Most tests here end by a signal, before any .fini: the file is unlinked
 * at once (the mapping and fault_fd keep it) so nothing is left behind.
 * need_fault: the test is about the library's handler, so it skips where
 * the mapping got KERNEL mode; tests whose outcome must be the same in
 * either mode (a signal the kernel would give too) run in both. */
static char *fault_map(size_t len, size_t file_len, int need_fault)
{
	char *p;

	sm_test_env("SYNCMAP_PRESYNC", "0"); /* every first write faults */
	fault_fd = unlinked_file(file_len);
	cr_assert(fault_fd >= 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fault_fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	if (need_fault)
		FAULT_OR_SKIP(p);
	return p;
}

/*
 * Death tests: the child must die of sig *at the intended fault*.  Each body
 * first makes the library handle a fault of its own, then writes the marker,
 * then makes the fault meant to kill.  A child killed earlier (the library
 * mishandled its own fault) dies without the marker, and the test fails
 * instead of passing as the expected death.
 */
static void marker(int fd)
{
	if (write(fd, "M", 1) != 1)
		_exit(98);
}

static void expect_death_after_marker(void (*body)(char *p, int marker_fd), char *p, int sig)
{
	struct rlimit no_core = {0, 0};
	int pfd[2], st;
	char m = 0;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(pfd[0]);
		setrlimit(RLIMIT_CORE, &no_core);
		body(p, pfd[1]);
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &m, 1) != 1)
		m = 0;
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect_eq(m, 'M', "the child died before it reached the intended fault (status %#x)", st);
	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == sig, "status %#x, wanted death by signal %d", st, sig);
}

static void write_page_zero(void)
{
	int *volatile bad = (int *)8; /* page 0, unmapped: not NULL, which UBSan would stop first */

	*bad = 1;
}

/* A guard page the program protects itself, and its own handler that opens
 * it: the classic trick the library must not break. */
static volatile sig_atomic_t app_faults;
static char *volatile guard;

static void app_handler(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)uctx;
	if ((char *)si->si_addr >= guard && (char *)si->si_addr < guard + PG) {
		app_faults++;
		mprotect(guard, PG, PROT_READ | PROT_WRITE);
		return;
	}
	_exit(99); /* not the fault this handler is for */
}

Test(fault, earlier_handler_still_gets_its_faults)
{
	struct sigaction sa = {0};
	char *p;

	guard = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sa.sa_sigaction = app_handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	p = fault_map(16 * PG, 16 * PG, 1); /* installs the library's handler on top */
	POKE(&p[0], 1);			    /* ours */
	POKE(&guard[10], 2);		    /* the program's */
	POKE(&p[9 * PG], 3);		    /* ours again */
	cr_expect_eq(app_faults, 1);
	cr_expect_eq(guard[10], 2);
	cr_expect_eq(p[9 * PG], 3);
}

static void null_write_body(char *p, int m)
{
	POKE(&p[0], 1);
	marker(m);
	write_page_zero();
}

Test(fault, null_write_still_kills)
{
	expect_death_after_marker(null_write_body, fault_map(4 * PG, 4 * PG, 0), SIGSEGV);
}

static char *read_only;

static void read_only_body(char *p, int m)
{
	POKE(&p[0], 1);
	marker(m);
	POKE(read_only, 1);
}

Test(fault, write_to_read_only_syncmap_mapping_kills)
{
	char *p = fault_map(4 * PG, 4 * PG, 0); /* a FAULT mapping exists: the handler is in */

	read_only = syncmap_mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fault_fd, 0);
	cr_assert_neq(read_only, MAP_FAILED);
	expect_death_after_marker(read_only_body, p, SIGSEGV);
}

static void mprotect_read_body(char *p, int m)
{
	POKE(&p[0], 1);
	if (syncmap_mprotect(p, 4 * PG, PROT_READ) != 0)
		_exit(97);
	marker(m);
	POKE(p + PG, 1);
}

Test(fault, write_after_mprotect_read_kills)
{
	expect_death_after_marker(mprotect_read_body, fault_map(4 * PG, 4 * PG, 0), SIGSEGV);
}

static void beyond_eof_body(char *p, int m)
{
	POKE(&p[0], 1);
	marker(m);
	POKE(p + 2 * PG, 1);
}

Test(fault, write_beyond_eof_is_sigbus)
{
	/* One page of file under four of mapping. */
	expect_death_after_marker(beyond_eof_body, fault_map(4 * PG, PG, 0), SIGBUS);
}

Test(fault, last_partial_page_is_writable)
{
	char *p = fault_map(4 * PG, PG + 100, 0);

	POKE(&p[PG + 50], 'x');
	POKE(&p[2 * PG - 1], 'y'); /* past EOF but inside its page: allowed, as with mmap */
	cr_expect_eq(p[PG + 50], 'x');
}

static volatile sig_atomic_t resethand_calls;

static void resethand_handler(int sig)
{
	(void)sig;
	resethand_calls++;
	mprotect(guard, PG, PROT_READ | PROT_WRITE);
}

static void resethand_body(char *p, int m)
{
	POKE(&guard[0], 1); /* the handler runs and is reset */
	if (resethand_calls != 1)
		_exit(96);
	POKE(&p[0], 1);	     /* the library's faults still work: a death here has no marker */
	POKE(&p[3 * PG], 1); /* and again, in another page */
	marker(m);
	mprotect(guard, PG, PROT_NONE);
	POKE(&guard[0], 2); /* default action now */
}

Test(fault, resethand_handler_runs_once)
{
	struct sigaction sa = {0};

	guard = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sa.sa_handler = resethand_handler;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGSEGV, &sa, NULL);
	expect_death_after_marker(resethand_body, fault_map(4 * PG, 4 * PG, 0), SIGSEGV);
}

static volatile sig_atomic_t mask_ok = -1;

static void mask_handler(int sig, siginfo_t *si, void *uctx)
{
	sigset_t cur;

	(void)sig;
	(void)si;
	(void)uctx;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	/* sa_mask had SIGUSR1; SIGSEGV itself blocked (no SA_NODEFER). */
	mask_ok = sigismember(&cur, SIGUSR1) == 1 && sigismember(&cur, SIGSEGV) == 1;
	mprotect(guard, PG, PROT_READ | PROT_WRITE);
}

Test(fault, chained_handler_gets_its_mask)
{
	struct sigaction sa = {0};
	char *p;

	guard = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sa.sa_sigaction = mask_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	sigaction(SIGSEGV, &sa, NULL);
	p = fault_map(4 * PG, 4 * PG, 1);
	POKE(&p[0], 1);
	POKE(&guard[0], 1);
	cr_expect_eq(mask_ok, 1, "the chained handler ran with its sa_mask and SIGSEGV blocked");
}

/* A program that owns SIGSEGV: its handler, installed after ours, asks the
 * library first. */
static volatile sig_atomic_t owner_calls;

static void owner_handler(int sig, siginfo_t *si, void *uctx)
{
	owner_calls++;
	if (syncmap_handle_fault(sig, si, uctx))
		return;
	_exit(98);
}

Test(fault, program_owning_sigsegv_calls_handle_fault)
{
	struct sigaction sa = {0};
	char *p = fault_map(16 * PG, 16 * PG, 1);

	sa.sa_sigaction = owner_handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	POKE(&p[0], 1);
	POKE(&p[8 * PG], 2);
	cr_expect_geq(owner_calls, 1);
	cr_expect_eq(p[8 * PG], 2);
	cr_expect_eq(syncmap_handle_fault(SIGBUS, NULL, NULL), 0, "not a SIGSEGV: not ours");
}

/* Fault injection: the sync step fails; the write must end in SIGBUS with
 * the grain still read-only and the error counted. */
static char *volatile victim; /* read by the SIGBUS handler */

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
	struct syncmap_stats st;
	char perms[5] = "";

	(void)sig;
	(void)uctx;
	syncmap_stats_get(&st);
	if (si->si_addr != victim || si->si_code != BUS_ADRERR)
		_exit(10);
	if (st.errors != 1)
		_exit(11);
	if (maps_perms(victim, perms) != 0 || perms[1] != '-')
		_exit(12); /* made writable although its sync failed */
	_exit(42);
}

/* Both run the failing write in a child: where the mapping got KERNEL
 * mode there is nothing to inject, and the test must be able to skip. */
Test(fault, failed_sync_is_sigbus_and_never_writable)
{
	char *p = fault_map(64 * PG, 64 * PG, 1);
	pid_t pid;
	int st;

	POKE(&p[0], 1); /* fine */
	pid = fork();
	if (pid == 0) {
		struct sigaction sa = {0};

		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGBUS, &sa, NULL);
		sm_inject_errno = EIO;
		atomic_store(&sm_inject_countdown, 1);
		victim = p + 32 * PG + 16; /* another grain, whatever the grain size */
		POKE(victim, 1);
		_exit(20); /* the write went through */
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 42,
		  "status %#x (exit 10: wrong address, 11: not counted, 12: made writable, 20: no SIGBUS)",
		  st);
}

Test(fault, failed_sync_with_sigbus_ignored_still_kills)
{
	char *p = fault_map(16 * PG, 16 * PG, 1);
	pid_t pid;
	int st;

	pid = fork();
	if (pid == 0) {
		signal(SIGBUS, SIG_IGN);
		sm_inject_errno = ENOSPC;
		atomic_store(&sm_inject_countdown, 1);
		POKE(&p[0], 1);
		_exit(20);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS, "status %#x: SIGBUS ignored must still kill",
		  st);
}

/* SIG_IGN for SIGSEGV: a SIGSEGV sent with kill(2) is ignored, a real fault
 * kills anyway (as the kernel does: a fault cannot be ignored). */
Test(fault, ignored_sigsegv_from_kill_stays_ignored)
{
	char *p;

	signal(SIGSEGV, SIG_IGN);
	p = fault_map(4 * PG, 4 * PG, 1); /* chains behind SIG_IGN */
	POKE(&p[0], 1);
	cr_assert_eq(kill(getpid(), SIGSEGV), 0);
	cr_assert_eq(p[0], 1, "still alive after an ignored SIGSEGV from kill");
}

Test(fault, ignored_sigsegv_does_not_ignore_a_fault)
{
	signal(SIGSEGV, SIG_IGN);
	expect_death_after_marker(null_write_body, fault_map(4 * PG, 4 * PG, 0), SIGSEGV);
}

/* Two handlers, each installed always with its own sa_mask and flags: A with
 * SIGUSR1 and SA_SIGINFO|SA_NODEFER (SIGSEGV not blocked), B with SIGUSR2,
 * no flags (SIGSEGV blocked).  A handler that runs with the other one's mask
 * or flags got a torn copy of the chained sigaction. */
#define TEAR_READERS 2
#define TEAR_WRITERS 2
#define TEAR_SECONDS 5
static _Atomic long tear_calls, tear_torn;
static _Atomic int tear_stop;

static void tear_check(int usr_in, int usr_out, int segv_blocked)
{
	sigset_t cur;

	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	if (sigismember(&cur, usr_in) != 1 || sigismember(&cur, usr_out) != 0 ||
	    sigismember(&cur, SIGSEGV) != segv_blocked)
		atomic_fetch_add(&tear_torn, 1);
	atomic_fetch_add(&tear_calls, 1);
}

static void tear_a(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)si;
	(void)uctx;
	tear_check(SIGUSR1, SIGUSR2, 0);
}

static void tear_b(int sig)
{
	(void)sig;
	tear_check(SIGUSR2, SIGUSR1, 1);
}

static void tear_act(struct sigaction *sa, int a)
{
	memset(sa, 0, sizeof(*sa));
	sigemptyset(&sa->sa_mask);
	if (a) {
		sa->sa_sigaction = tear_a;
		sa->sa_flags = SA_SIGINFO | SA_NODEFER;
		sigaddset(&sa->sa_mask, SIGUSR1);
	} else {
		sa->sa_handler = tear_b;
		sigaddset(&sa->sa_mask, SIGUSR2);
	}
}

/* Writer threads do what the shim does for every sigaction(SIGSEGV) of the
 * program, in bursts of A, B, A, B, sleeping a few microseconds between. */
static void *tear_writer(void *arg)
{
	struct sigaction sa[2], old;
	struct timespec ts = {0, (long)(intptr_t)arg * 1000};

	tear_act(&sa[0], 0);
	tear_act(&sa[1], 1);
	while (!atomic_load(&tear_stop)) {
		nanosleep(&ts, NULL);
		for (int i = 0; i < 4; i++)
			sm_fault_set_chained(&sa[i & 1], &old);
	}
	return NULL;
}

/* A program's SIGALRM handler that replaces its SIGSEGV handler twice, with
 * the one that is not installed now (a program may call sigaction from a
 * signal handler).  Its timer lands anywhere in a reader, the library's
 * handler copying the chained sigaction included: there the two calls
 * rewrite what the copy has not read yet.  (Threads alone only tear when the
 * scheduler preempts a reader at those few instructions: about once in 20 s
 * here.) */
static void tear_meddle(int sig)
{
	struct sigaction cur, other;

	(void)sig;
	sm_fault_set_chained(NULL, &cur);
	tear_act(&other, cur.sa_handler == tear_b);
	sm_fault_set_chained(&other, NULL);
	sm_fault_set_chained(&other, NULL);
}

/* Readers send themselves SIGSEGV: not a fault of the library's (si_code
 * SI_TKILL), so its handler reads the chained sigaction and calls it, as for
 * a real fault that is not ours, at a fifth of the cost of a fault plus two
 * mprotect calls (the tests above chain real faults).  Each has a timer
 * that sends SIGALRM to it alone every 100 us. */
static void *tear_reader(void *arg)
{
	struct itimerspec its = {{0, 100000}, {0, 100000}};
	struct sigevent sev = {0};
	timer_t t;

	(void)arg;
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGALRM;
	sev._sigev_un._tid = gettid(); /* sigev_notify_thread_id: not in glibc 2.36's headers */
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0 || timer_settime(t, 0, &its, NULL) != 0)
		return (void *)1;
	while (!atomic_load(&tear_stop))
		raise(SIGSEGV);
	timer_delete(t);
	return NULL;
}

Test(fault, chained_handler_is_never_torn_by_concurrent_sigaction, .timeout = 60)
{
	pthread_t w[TEAR_WRITERS], r[TEAR_READERS];
	struct sigaction sa, alrm = {0};
	void *rv;

	alrm.sa_handler = tear_meddle;
	alrm.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &alrm, NULL);
	tear_act(&sa, 1);
	sigaction(SIGSEGV, &sa, NULL);
	sm_table_lock(); /* sm_fault_install's caller holds it */
	cr_assert_eq(sm_fault_install(), 0);
	sm_table_unlock();
	for (int i = 0; i < TEAR_WRITERS; i++)
		cr_assert_eq(pthread_create(&w[i], NULL, tear_writer, (void *)(intptr_t)(3 + 4 * i)), 0);
	for (int i = 0; i < TEAR_READERS; i++)
		cr_assert_eq(pthread_create(&r[i], NULL, tear_reader, NULL), 0);
	for (int s = 0; s < TEAR_SECONDS * 10 && atomic_load(&tear_torn) == 0; s++)
		usleep(100000);
	atomic_store(&tear_stop, 1);
	for (int i = 0; i < TEAR_WRITERS; i++)
		pthread_join(w[i], NULL);
	for (int i = 0; i < TEAR_READERS; i++) {
		pthread_join(r[i], &rv);
		cr_assert_null(rv, "timer_create or timer_settime failed");
	}
	cr_assert_gt(atomic_load(&tear_calls), 1000, "only %ld chained calls", atomic_load(&tear_calls));
	cr_assert_eq(atomic_load(&tear_torn), 0,
		     "%ld of %ld chained calls ran with the other handler's mask or flags",
		     atomic_load(&tear_torn), atomic_load(&tear_calls));
}
