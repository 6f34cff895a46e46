/* SPDX-License-Identifier: MIT */
/* test_signals.c -- signal edge cases: nested faults, sigaltstack, SA_RESETHAND, blocked SIGSEGV/SIGBUS */
#include "durable.h"
#include "helpers.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define POKE(p, v) (*(volatile unsigned char *)(p) = (unsigned char)(v))

static struct loopfs fs;
static int fd = -1;

static void cleanup(void)
{
	loopfs_done(&fs);
}

TestSuite(signals, .fini = cleanup);

/* A FAULT mapping of a fresh, unlinked sparse file in test_dir() (tmpfs:
 * no root needed), every grain faulting on its first write. */
static unsigned char *fault_map(size_t len, const char *grain)
{
	unsigned char *p;

	sm_test_env("SYNCMAP_MODE", "fault"); /* the handler is what is tested, even on DAX */
	sm_test_env("SYNCMAP_PRESYNC", "0");
	sm_test_env("SYNCMAP_GRAIN", grain);
	fd = unlinked_file(len);
	cr_assert(fd >= 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	return p;
}

/* Tests that end in death by a signal leave no core file behind. */
static void no_core(void)
{
	struct rlimit rl = {0, 0};

	setrlimit(RLIMIT_CORE, &rl);
}

static unsigned char file_byte(off_t off)
{
	unsigned char b = 0xee;

	cr_assert_eq(pread(fd, &b, 1, off), 1);
	return b;
}

static int writable(const void *p)
{
	char perms[5] = "";

	cr_assert_eq(maps_perms(p, perms), 0);
	return perms[1] == 'w';
}

/* --- A second fault in the same thread while the library's handler runs. ---
 *
 * A SIGUSR1 arriving while our SIGSEGV handler syncs a grain runs its handler
 * on top of ours; that handler writes to FAULT pages, faulting again.  It
 * knows it interrupted our handler by the interrupted context's signal mask:
 * our handler runs with SIGBUS blocked, nothing else in this test blocks it.
 * Half of the nested writes go to the very page the outer fault is for. */
#define NESTED_GRAINS 2048
static unsigned char *volatile outer_target;
static unsigned char *inner_base;
static atomic_int inner_next, nested, usr1_calls;

static void on_usr1(int sig, siginfo_t *si, void *uctx)
{
	ucontext_t *uc = uctx;
	int saved = errno;

	(void)sig;
	(void)si;
	atomic_fetch_add(&usr1_calls, 1);
	if (sigismember(&uc->uc_sigmask, SIGBUS) == 1) {
		int n = atomic_fetch_add(&nested, 1);
		unsigned char *t = outer_target;

		if (n % 2 == 0 && t != NULL) {
			POKE(t + 8, 0x5a); /* the grain the interrupted handler is readying */
		} else {
			int i = atomic_fetch_add(&inner_next, 1);

			if (i < NESTED_GRAINS)
				POKE(inner_base + (size_t)i * PG, 0xa5);
		}
	}
	errno = saved;
}

struct blaster {
	pthread_t target;
	atomic_int stop;
};

static void *blast(void *arg)
{
	struct blaster *b = arg;
	struct timespec ts = {0, 20 * 1000};

	while (!atomic_load(&b->stop)) {
		pthread_kill(b->target, SIGUSR1);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

Test(signals, nested_fault_while_the_handler_runs, .timeout = 60)
{
	const size_t len = (size_t)2 * NESTED_GRAINS * PG;
	struct sigaction sa = {0};
	struct blaster b = {.stop = 0};
	struct syncmap_stats st;
	pthread_t bt;
	unsigned char *p;
	size_t i;
	time_t until = time(NULL) + 20;

	/* ext4: a sync long enough for SIGUSR1 to land inside the handler. */
	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	sm_test_env("SYNCMAP_GRAIN", "4096");
	fd = make_sparse(fs.dir, "nested.dat", len, NULL, 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	inner_base = p + (size_t)NESTED_GRAINS * PG;
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	raise(SIGUSR1); /* the control: outside the fault handler, not counted */
	cr_assert_eq(atomic_load(&usr1_calls), 1);
	cr_assert_eq(atomic_load(&nested), 0, "the detector counts signals outside the handler");
	b.target = pthread_self();
	pthread_create(&bt, NULL, blast, &b);
	for (i = 0; i < NESTED_GRAINS && (atomic_load(&nested) < 40 || i < 64) && time(NULL) < until; i++) {
		outer_target = p + i * PG;
		POKE(p + i * PG, 0x11);
	}
	outer_target = NULL;
	atomic_store(&b.stop, 1);
	pthread_join(bt, NULL);
	signal(SIGUSR1, SIG_IGN);
	cr_log_info("%zu outer faults, %d SIGUSR1, %d nested in the handler", i, atomic_load(&usr1_calls),
		    atomic_load(&nested));
	cr_assert_geq(atomic_load(&nested), 5,
		      "SIGUSR1 never landed inside the fault handler: nothing tested");
	for (size_t k = 0; k < i; k++)
		cr_assert_eq(file_byte((off_t)(k * PG)), 0x11, "outer write %zu lost", k);
	for (int k = 0; k < atomic_load(&inner_next) && k < NESTED_GRAINS; k++)
		cr_assert_eq(file_byte((off_t)(NESTED_GRAINS + k) * PG), 0xa5, "nested write %d lost", k);
	syncmap_stats_get(&st);
	cr_expect_eq(st.errors, 0);
	syncmap_munmap(p, len);
	close(fd);
}

/* --- The application's SIGSEGV handler, chained, faulting on a FAULT page. --- */
static unsigned char *volatile guard, *volatile fresh;
static volatile sig_atomic_t app_calls;

static void app_segv(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)uctx;
	if ((unsigned char *)si->si_addr < guard || (unsigned char *)si->si_addr >= guard + PG)
		_exit(99);
	app_calls++;
	POKE(fresh, 0x77); /* a first write: SIGSEGV again, inside this handler */
	mprotect(guard, PG, PROT_READ | PROT_WRITE);
}

static void install_app_segv(int flags)
{
	struct sigaction sa = {0};

	guard = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(guard, MAP_FAILED);
	sa.sa_sigaction = app_segv;
	sa.sa_flags = SA_SIGINFO | flags;
	cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
}

Test(signals, chained_handler_with_sa_nodefer_may_fault)
{
	unsigned char *p;

	install_app_segv(SA_NODEFER);
	p = fault_map(16 * PG, "4096");
	fresh = p + 5 * PG;
	POKE(p, 1);
	POKE(guard, 2);
	cr_expect_eq(app_calls, 1);
	cr_expect_eq(file_byte(5 * PG), 0x77, "the write made inside the application's handler");
	cr_expect_eq(guard[0], 2);
}

/* Without SA_NODEFER the kernel blocks SIGSEGV while that handler runs, and
 * a fault with SIGSEGV blocked kills the process (force_sig_info_to_task
 * resets the action to SIG_DFL): no handler, ours or theirs, sees it.  The
 * kernel's own MAP_SYNC would not fault there; the program must prepare the
 * range first, or use SA_NODEFER. */
Test(signals, chained_handler_without_sa_nodefer_cannot_fault, .signal = SIGSEGV)
{
	unsigned char *p;

	no_core();
	install_app_segv(0);
	p = fault_map(16 * PG, "4096");
	fresh = p + 5 * PG;
	POKE(p, 1);
	POKE(guard, 2);
	cr_assert_fail("survived a fault with SIGSEGV blocked");
}

Test(signals, chained_handler_without_sa_nodefer_works_on_prepared_range)
{
	unsigned char *p;

	install_app_segv(0);
	p = fault_map(16 * PG, "4096");
	fresh = p + 5 * PG;
	cr_assert_eq(syncmap_prepare(fresh, 1), 0);
	POKE(guard, 2);
	cr_expect_eq(app_calls, 1);
	cr_expect_eq(file_byte(5 * PG), 0x77);
}

/* --- sigaltstack and SA_ONSTACK. --- */
struct altstack {
	unsigned char *base;
	size_t size;
};

static __thread struct altstack alt;
static volatile sig_atomic_t on_alt_calls, off_alt_calls;
static sigjmp_buf overflow_jmp;

static int on_altstack(const void *local)
{
	return (const unsigned char *)local >= alt.base && (const unsigned char *)local < alt.base + alt.size;
}

static void install_altstack(size_t size)
{
	stack_t ss = {0};

	alt.size = size;
	alt.base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(alt.base, MAP_FAILED);
	memset(alt.base, 0xcc, size); /* painted: how deep a handler went shows afterwards */
	ss.ss_sp = alt.base;
	ss.ss_size = size;
	cr_assert_eq(sigaltstack(&ss, NULL), 0);
}

/* Bytes of the alternate stack ever written (it grows down from the top). */
static size_t altstack_used(void)
{
	size_t i = 0;

	while (i < alt.size && alt.base[i] == 0xcc)
		i++;
	return alt.size - i;
}

static void onstack_segv(int sig, siginfo_t *si, void *uctx)
{
	int local;

	(void)sig;
	(void)uctx;
	if (on_altstack(&local))
		on_alt_calls++;
	else
		off_alt_calls++;
	if ((unsigned char *)si->si_addr >= guard && (unsigned char *)si->si_addr < guard + PG) {
		mprotect(guard, PG, PROT_READ | PROT_WRITE);
		return;
	}
	siglongjmp(overflow_jmp, 1); /* the stack overflowed: leave it */
}

static void install_onstack_segv(void)
{
	struct sigaction sa = {0};

	guard = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(guard, MAP_FAILED);
	sa.sa_sigaction = onstack_segv;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
}

static volatile char sink;
static volatile int depth_limit = 1 << 30; /* never reached: the stack ends first */

static int recurse(int depth)
{
	volatile char buf[1024];

	if (depth > depth_limit)
		return 0;
	buf[0] = (char)depth;
	sink = buf[0];
	return recurse(depth + 1) + buf[0];
}

struct onstack_run {
	unsigned char *p;
	int overflowed;
	size_t used;
};

static void *onstack_thread(void *arg)
{
	struct onstack_run *run = arg;

	install_altstack(64 * 1024);
	for (int i = 0; i < 8; i++)
		POKE(run->p + (size_t)i * PG, i + 1); /* the library's faults, on the alternate stack */
	POKE(guard, 1);				      /* the program's */
	if (sigsetjmp(overflow_jmp, 1) == 0)
		recurse(0);
	else
		run->overflowed = 1;
	POKE(run->p + 10 * PG, 11); /* and the library still works after */
	run->used = altstack_used();
	return NULL;
}

/* The program's SA_ONSTACK handler installed before the library: it still
 * runs on the alternate stack, for its own faults and for a stack overflow,
 * which only an alternate stack can report. */
Test(signals, sa_onstack_handler_and_stack_overflow)
{
	struct onstack_run run = {0};
	pthread_attr_t attr;
	pthread_t t;

	install_onstack_segv();
	run.p = fault_map(16 * PG, "4096");
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_create(&t, &attr, onstack_thread, &run);
	pthread_join(t, NULL);
	cr_expect_eq(run.overflowed, 1, "the stack overflow did not reach the program's handler");
	cr_expect_eq(on_alt_calls, 2, "the program's handler ran %d times on the alternate stack, %d off it",
		     (int)on_alt_calls, (int)off_alt_calls);
	cr_expect_eq(off_alt_calls, 0);
	for (int i = 0; i < 8; i++)
		cr_expect_eq(file_byte((off_t)i * PG), i + 1);
	cr_expect_eq(file_byte(10 * PG), 11);
}

/* The library's handler on an alternate stack of the size glibc tells
 * programs to use (sysconf(_SC_SIGSTKSZ)): it must fit, with the kernel's
 * signal frame, and it must not have run on the thread's own stack. */
static void *small_altstack_thread(void *arg)
{
	struct onstack_run *run = arg;

	install_altstack(4 * (size_t)sysconf(_SC_SIGSTKSZ)); /* room to measure an overrun */
	for (int i = 0; i < 16; i++)
		POKE(run->p + (size_t)i * PG, i + 1);
	run->used = altstack_used();
	return NULL;
}

Test(signals, fault_handler_fits_in_sigstksz)
{
	struct onstack_run run = {0};
	pthread_t t;

	run.p = fault_map(16 * PG, "4096");
	pthread_create(&t, NULL, small_altstack_thread, &run);
	pthread_join(t, NULL);
	cr_log_info("the library's handler used %zu bytes of the alternate stack (SIGSTKSZ %ld)", run.used,
		    sysconf(_SC_SIGSTKSZ));
	cr_expect_gt(run.used, 0, "the handler did not run on the alternate stack");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Sanitizers add redzones and their own frames: no budget to check. */
#else
	cr_expect_leq(run.used, (size_t)sysconf(_SC_SIGSTKSZ), "the handler needs %zu bytes", run.used);
#endif
	for (int i = 0; i < 16; i++)
		cr_expect_eq(file_byte((off_t)i * PG), i + 1);
}

/* A program that owns SIGSEGV (installed after the library, SA_ONSTACK)
 * asks the library first, on its alternate stack. */
static void owner_onstack(int sig, siginfo_t *si, void *uctx)
{
	int local;

	if (on_altstack(&local))
		on_alt_calls++;
	else
		off_alt_calls++;
	if (!syncmap_handle_fault(sig, si, uctx))
		_exit(97);
}

static void *owner_thread(void *arg)
{
	struct onstack_run *run = arg;

	install_altstack(64 * 1024);
	for (int i = 0; i < 8; i++)
		POKE(run->p + (size_t)i * PG, i + 1);
	return NULL;
}

Test(signals, owner_handler_on_altstack_calls_handle_fault)
{
	struct onstack_run run = {0};
	struct sigaction sa = {0};
	pthread_t t;

	run.p = fault_map(16 * PG, "4096");
	sa.sa_sigaction = owner_onstack;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
	pthread_create(&t, NULL, owner_thread, &run);
	pthread_join(t, NULL);
	cr_expect_eq(on_alt_calls, 8);
	cr_expect_eq(off_alt_calls, 0);
	for (int i = 0; i < 8; i++)
		cr_expect_eq(file_byte((off_t)i * PG), i + 1);
}

/* --- SA_RESETHAND. --- */
static volatile sig_atomic_t reset_calls;

static void reset_segv(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	(void)si;
	(void)uctx;
	reset_calls++;
	mprotect(guard, PG, PROT_READ | PROT_WRITE);
}

static void *fault_some(void *arg)
{
	unsigned char *p = arg;

	for (int i = 0; i < 8; i++)
		POKE(p + (size_t)i * PG, 1);
	return NULL;
}

/* The library's own faults, in several threads, before and after, do not
 * use up the program's one-shot handler; once it ran, the default action
 * follows for the program's faults while the library's keep working. */
Test(signals, resethand_is_not_used_up_by_library_faults, .signal = SIGSEGV)
{
	struct sigaction sa = {0};
	pthread_t t[2];
	unsigned char *p;

	no_core();
	guard = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sa.sa_sigaction = reset_segv;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
	p = fault_map(64 * PG, "4096");
	pthread_create(&t[0], NULL, fault_some, p);
	pthread_create(&t[1], NULL, fault_some, p + 16 * PG);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	cr_assert_eq(reset_calls, 0);
	POKE(guard, 1);
	cr_assert_eq(reset_calls, 1, "the one-shot handler was used up by the library's faults");
	fault_some(p + 32 * PG);
	cr_assert_eq(file_byte(39 * PG), 1);
	mprotect(guard, PG, PROT_NONE);
	POKE(guard, 2);
	cr_assert_fail("a second fault after SA_RESETHAND did not kill");
}

/* SIGBUS from a failed sync is an ordinary signal delivery: a one-shot
 * SIGBUS handler runs once, the next failure has the default action. */
static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_calls;

static void on_bus_once(int sig)
{
	(void)sig;
	bus_calls++;
	siglongjmp(bus_jmp, 1);
}

Test(signals, resethand_sigbus_handler_runs_once, .signal = SIGBUS)
{
	struct sigaction sa = {0};
	unsigned char *p = fault_map(16 * PG, "4096");

	no_core();
	sa.sa_handler = on_bus_once;
	sa.sa_flags = SA_RESETHAND;
	cr_assert_eq(sigaction(SIGBUS, &sa, NULL), 0);
	sm_inject_errno = EIO;
	atomic_store(&sm_inject_countdown, 1);
	if (sigsetjmp(bus_jmp, 1) == 0) {
		POKE(p, 1);
		cr_assert_fail("the write went through");
	}
	cr_assert_eq(bus_calls, 1);
	POKE(p + PG, 2); /* no injection: fine */
	atomic_store(&sm_inject_countdown, 1);
	POKE(p + 2 * PG, 3);
	cr_assert_fail("a second failure did not kill");
}

/* --- A thread that blocks SIGSEGV. ---
 *
 * Linux: a fault is sent with force_sig_fault() -> force_sig_info_to_task();
 * when the signal is blocked (or ignored) there, the kernel unblocks it and
 * resets the process-wide action to SIG_DFL, so the whole process dies of
 * SIGSEGV and no handler runs.  The library cannot see such a fault: a write
 * to a grain not yet durable, from a thread that blocks SIGSEGV, kills. */
static void *blocked_writer(void *arg)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	POKE(arg, 0x42);
	return NULL;
}

static void app_segv_never(int sig)
{
	(void)sig;
	_exit(96); /* the kernel must not run any handler */
}

Test(signals, blocked_sigsegv_write_to_fresh_grain_kills)
{
	unsigned char *p = fault_map(16 * PG, "4096");
	pid_t pid;
	int st;

	POKE(p, 1);
	pid = fork();
	if (pid == 0) {
		pthread_t t;

		no_core();
		pthread_create(&t, NULL, blocked_writer, p + 4 * PG);
		pthread_join(t, NULL);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status %#x: expected death by SIGSEGV",
		  st);
	cr_expect_eq(file_byte(4 * PG), 0, "the write went through");
	cr_expect(!writable(p + 4 * PG));
	/* The parent, whose threads do not block SIGSEGV, is unaffected. */
	POKE(p + 4 * PG, 0x43);
	cr_expect_eq(file_byte(4 * PG), 0x43);
}

/* Not even the library's handler, chained or not: the action is reset. */
Test(signals, blocked_sigsegv_skips_every_handler, .signal = SIGSEGV)
{
	struct sigaction sa = {0};
	unsigned char *p;
	sigset_t s;

	no_core();
	sa.sa_handler = app_segv_never;
	cr_assert_eq(sigaction(SIGSEGV, &sa, NULL), 0);
	p = fault_map(16 * PG, "4096");
	sigemptyset(&s);
	sigaddset(&s, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	POKE(p, 1);
	cr_assert_fail("survived a write fault with SIGSEGV blocked");
}

/* What such a thread can do: write where the library already made the grain
 * writable, after syncmap_prepare() or an earlier write from another thread. */
Test(signals, blocked_sigsegv_after_prepare_works)
{
	unsigned char *p = fault_map(64 * PG, "4096");
	pthread_t t;

	cr_assert_eq(syncmap_prepare(p + 8 * PG, 8 * PG), 0);
	POKE(p + 20 * PG, 1);
	pthread_create(&t, NULL, blocked_writer, p + 12 * PG);
	pthread_join(t, NULL);
	pthread_create(&t, NULL, blocked_writer, p + 20 * PG + 5);
	pthread_join(t, NULL);
	cr_expect_eq(file_byte(12 * PG), 0x42);
	cr_expect_eq(file_byte(20 * PG + 5), 0x42);
}

/* --- A thread that blocks SIGBUS. ---
 *
 * The library sends SIGBUS for a failed sync with rt_tgsigqueueinfo, and
 * takes SIGBUS out of the mask its handler returns to.  So the signal is
 * delivered even to a thread that blocks it, at the faulting address: to
 * the program's SIGBUS handler if it has one, else the default action.
 * (The kernel's MAP_SYNC, failing, uses force_sig_fault: with SIGBUS
 * blocked it resets the action to SIG_DFL and kills.  The library lets the
 * program's handler run instead: nothing is silently dropped either way.) */
static void *volatile bus_addr;
static volatile sig_atomic_t bus_was_blocked = -1;

static void on_bus_info(int sig, siginfo_t *si, void *uctx)
{
	(void)sig;
	bus_addr = si->si_addr;
	/* The mask at delivery, before this handler's own: SIGBUS not in it. */
	bus_was_blocked = sigismember(&((ucontext_t *)uctx)->uc_sigmask, SIGBUS);
	bus_calls++;
	siglongjmp(bus_jmp, 1);
}

Test(signals, blocked_sigbus_is_delivered_anyway)
{
	struct sigaction sa = {0};
	unsigned char *p = fault_map(16 * PG, "4096");
	sigset_t s;

	sa.sa_sigaction = on_bus_info;
	sa.sa_flags = SA_SIGINFO;
	cr_assert_eq(sigaction(SIGBUS, &sa, NULL), 0);
	sigemptyset(&s);
	sigaddset(&s, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	sm_inject_errno = EIO;
	atomic_store(&sm_inject_countdown, 1);
	if (sigsetjmp(bus_jmp, 1) == 0) {
		POKE(p + 3 * PG + 9, 1);
		cr_assert_fail("the write went through");
	}
	cr_expect_eq(bus_calls, 1);
	cr_expect_eq(bus_addr, p + 3 * PG + 9);
	cr_expect_eq(bus_was_blocked, 0, "the library unblocked SIGBUS to deliver it");
	cr_expect(!writable(p + 3 * PG));
}

Test(signals, blocked_sigbus_without_handler_kills, .signal = SIGBUS)
{
	unsigned char *p = fault_map(16 * PG, "4096");
	sigset_t s;

	no_core();
	sigemptyset(&s);
	sigaddset(&s, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	sm_inject_errno = ENOSPC;
	atomic_store(&sm_inject_countdown, 1);
	POKE(p, 1);
	cr_assert_fail("the write went through");
}
