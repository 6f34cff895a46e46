/* SPDX-License-Identifier: MIT */
/* pl_sigmask.c -- threads that block SIGSEGV write fresh FAULT pages as with plain mmap, and see the mask they asked for
 *
 * Each case runs in a child of its own (a death there is reported, not
 * shared) and writes grains no one wrote before: under the shim each such
 * write is a SIGSEGV, which the kernel turns into the death of the process
 * when SIGSEGV is blocked.  Every write must succeed, be allocated before
 * any flush (the guarantee held), and the masks read back must be the ones
 * the program set.
 */
#include "ptest.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>

#define GRAIN (64 * 1024)
#define NGRAINS 256
#define SIZE ((size_t)NGRAINS * GRAIN)

static char *map;
static int mfd;
static const char *self, *dir;
static int next_grain;

/* A grain no one wrote (the parent hands them out before each fork), and
 * never the one after the last: a writer whose faults come in order gets
 * the next grains readied with its own, and its next write takes no fault. */
static char *fresh(void)
{
	char *p;

	REQUIRE(next_grain < NGRAINS, "test ran out of grains");
	p = map + (size_t)next_grain * GRAIN + 128;
	next_grain += 2;
	return p;
}

/* Write a fresh page; the write is checked allocated and written before
 * any flush, as the library guarantees. */
static void write_fresh(const char *what, char *p)
{
	CHECK(!pt_writable(p), "%s: page writable before the write", what);
	memset(p, 0x5a, 512);
	CHECK(range_allocated_flags(mfd, (p - map) & ~4095L, 4096, NULL) == 1,
	      "%s: written page not allocated before a flush", what);
}

static int blocked_now(const char *what, int want)
{
	sigset_t cur;

	CHECK(pthread_sigmask(SIG_SETMASK, NULL, &cur) == 0, "%s: pthread_sigmask query", what);
	CHECK(sigismember(&cur, SIGSEGV) == want, "%s: SIGSEGV %s in the mask read back", what,
	      want ? "missing" : "present");
	return sigismember(&cur, SIGSEGV);
}

/* SigBlk of this thread as the kernel has it. */
static uint64_t kernel_blocked(void)
{
	char buf[4096], *s;
	int fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	unsigned long long v = 0;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	s = strstr(buf, "SigBlk:");
	if (s != NULL)
		sscanf(s + 7, "%llx", &v);
	return v;
}

#define SEGV_BIT (1ull << (SIGSEGV - 1))

/* --- the cases ------------------------------------------------------------ */

struct targ {
	char *p, *q;
};

/* The usual worker idiom: block everything, work.  The old mask is what the
 * thread had; asking again shows SIGSEGV blocked. */
static void *blocking_worker(void *arg)
{
	struct targ *t = arg;
	sigset_t all, old, old2;

	sigfillset(&all);
	CHECK(pthread_sigmask(SIG_BLOCK, &all, &old) == 0, "pthread_sigmask");
	CHECK(sigismember(&old, SIGSEGV) == 0, "old mask shows SIGSEGV blocked before it was");
	write_fresh("worker after pthread_sigmask(SIG_BLOCK, all)", t->p);
	CHECK(pthread_sigmask(SIG_BLOCK, &all, &old2) == 0, "pthread_sigmask again");
	CHECK(sigismember(&old2, SIGSEGV) == 1, "old mask hides the SIGSEGV the thread blocked");
	blocked_now("worker", 1);
	CHECK((kernel_blocked() & SEGV_BIT) == 0, "the kernel has SIGSEGV blocked in the worker");
	CHECK((kernel_blocked() & (1ull << (SIGUSR1 - 1))) != 0, "the rest of the mask was not applied");
	return NULL;
}

static void case_worker(void)
{
	struct targ t = {fresh(), NULL};
	pthread_t th;

	REQUIRE(pthread_create(&th, NULL, blocking_worker, &t) == 0, "pthread_create");
	pthread_join(th, NULL);
}

/* sigprocmask in a single-threaded process, the old mask written into a
 * FAULT page not yet written (plain mmap: works; the kernel alone would
 * give EFAULT there). */
static void case_sigprocmask(void)
{
	sigset_t all, *old = (sigset_t *)fresh(), back;

	sigfillset(&all);
	CHECK(sigprocmask(SIG_BLOCK, &all, old) == 0, "sigprocmask into a fresh FAULT page: %s",
	      strerror(errno));
	CHECK(sigismember(old, SIGSEGV) == 0 && sigismember(old, SIGUSR1) == 0, "old mask content");
	write_fresh("after sigprocmask(SIG_BLOCK, all)", fresh());
	CHECK(sigprocmask(SIG_SETMASK, old, &back) == 0, "restore");
	CHECK(sigismember(&back, SIGSEGV) == 1 && sigismember(&back, SIGUSR1) == 1,
	      "mask read back on restore");
	blocked_now("restored", 0);
	/* SIG_UNBLOCK of SIGSEGV alone, after SIG_BLOCK of it alone. */
	sigemptyset(&all);
	sigaddset(&all, SIGSEGV);
	CHECK(sigprocmask(SIG_BLOCK, &all, NULL) == 0, "block SIGSEGV");
	blocked_now("SIGSEGV blocked alone", 1);
	write_fresh("after sigprocmask(SIG_BLOCK, {SIGSEGV})", fresh());
	CHECK(sigprocmask(SIG_UNBLOCK, &all, &back) == 0 && sigismember(&back, SIGSEGV) == 1, "unblock");
	blocked_now("SIGSEGV unblocked", 0);
	/* Invalid how: EINVAL, and the mask the thread sees unchanged. */
	CHECK(sigprocmask(12345, &all, NULL) == -1 && errno == EINVAL, "bad how: %s", strerror(errno));
	blocked_now("after a bad how", 0);
}

/* sighold / sigrelse, sigblock / sigsetmask, sigset(SIG_HOLD): libc's
 * implementations block the signal with its internal sigprocmask. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#define BIT(s) (1 << ((s)-1)) /* sigmask(), without its deprecation warning */

static void case_legacy(void)
{
	int m;

	CHECK(sighold(SIGSEGV) == 0, "sighold");
	blocked_now("sighold(SIGSEGV)", 1);
	write_fresh("after sighold(SIGSEGV)", fresh());
	CHECK(sigrelse(SIGSEGV) == 0, "sigrelse");
	blocked_now("sigrelse(SIGSEGV)", 0);
	m = sigblock(BIT(SIGSEGV) | BIT(SIGUSR2));
	CHECK((m & BIT(SIGSEGV)) == 0, "sigblock: old mask");
	write_fresh("after sigblock(SIGSEGV)", fresh());
	CHECK((siggetmask() & (BIT(SIGSEGV) | BIT(SIGUSR2))) == (BIT(SIGSEGV) | BIT(SIGUSR2)),
	      "siggetmask after sigblock: %#x", siggetmask());
	m = sigsetmask(0);
	CHECK((m & BIT(SIGSEGV)) != 0, "sigsetmask: old mask hides SIGSEGV");
	blocked_now("sigsetmask(0)", 0);
	CHECK(sigset(SIGSEGV, SIG_HOLD) == SIG_DFL, "sigset(SIG_HOLD) did not return the old handler");
	write_fresh("after sigset(SIGSEGV, SIG_HOLD)", fresh());
	CHECK(sigset(SIGSEGV, SIG_DFL) == SIG_HOLD, "sigset(SIG_DFL) after SIG_HOLD did not return SIG_HOLD");
	blocked_now("sigset(SIGSEGV, SIG_DFL)", 0);
}
#pragma GCC diagnostic pop

/* A handler whose sa_mask holds SIGSEGV (sigfillset is the common way to
 * write "block everything while it runs") writes a fresh page. */
static char *handler_page;
static _Atomic int handler_ran;

static void writing_handler(int sig)
{
	(void)sig;
	memset(handler_page, 0x33, 256);
	atomic_store(&handler_ran, 1);
}

static void case_sa_mask(void)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = writing_handler;
	sigfillset(&sa.sa_mask);
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	CHECK(sigaction(SIGUSR1, NULL, &old) == 0 && sigismember(&old.sa_mask, SIGSEGV) == 1 &&
		      sigismember(&old.sa_mask, SIGUSR2) == 1,
	      "sa_mask read back without the SIGSEGV the program put in");
	handler_page = fresh();
	raise(SIGUSR1);
	CHECK(atomic_load(&handler_ran), "handler did not run");
	CHECK(handler_page[0] == 0x33 &&
		      range_allocated_flags(mfd, (handler_page - map) & ~4095L, 4096, NULL) == 1,
	      "handler's write not in the file");
	/* signal() replaces the action: its mask no longer holds SIGSEGV. */
	signal(SIGUSR1, writing_handler);
	CHECK(sigaction(SIGUSR1, NULL, &old) == 0 && sigismember(&old.sa_mask, SIGSEGV) == 0,
	      "sa_mask after signal() still shows SIGSEGV");
}

/* sigsuspend, ppoll, pselect, epoll_pwait with everything but SIGUSR1
 * blocked: the handler runs with that mask, and writes a fresh page. */
static int waiter;

static void wait_with_mask(int how)
{
	sigset_t all, one;
	struct timespec ts = {5, 0};
	struct epoll_event ev;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	sigemptyset(&one);
	sigaddset(&one, SIGUSR1);
	REQUIRE(sigprocmask(SIG_BLOCK, &one, NULL) == 0, "block SIGUSR1");
	sigfillset(&all);
	sigdelset(&all, SIGUSR1);
	atomic_store(&handler_ran, 0);
	handler_page = fresh();
	REQUIRE(kill(getpid(), SIGUSR1) == 0, "kill");
	switch (how) {
	case 0: sigsuspend(&all); break;
	case 1: ppoll(NULL, 0, &ts, &all); break;
	case 2: pselect(0, NULL, NULL, NULL, &ts, &all); break;
	case 3: epoll_pwait(ep, &ev, 1, 5000, &all); break;
	default: epoll_pwait2(ep, &ev, 1, &ts, &all); break;
	}
	close(ep);
	CHECK(atomic_load(&handler_ran) && handler_page[0] == 0x33, "wait %d: handler's write", how);
	CHECK(sigprocmask(SIG_UNBLOCK, &one, NULL) == 0, "unblock SIGUSR1");
}

static void case_waits(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = writing_handler;
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	for (waiter = 0; waiter < 5; waiter++)
		wait_with_mask(waiter);
}

/* A thread created by one that blocked SIGSEGV has it blocked too (the
 * mask is inherited); so has one created with pthread_attr_setsigmask_np. */
static void *inheriting(void *arg)
{
	struct targ *t = arg;

	blocked_now("thread created with SIGSEGV blocked", 1);
	write_fresh("thread created with SIGSEGV blocked", t->p);
	return NULL;
}

static void *creator(void *arg)
{
	struct targ *t = arg;
	struct targ u = {t->q, NULL};
	sigset_t all;
	pthread_t th;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	write_fresh("creator", t->p);
	REQUIRE(pthread_create(&th, NULL, inheriting, &u) == 0, "pthread_create");
	pthread_join(th, NULL);
	return NULL;
}

static void case_inherit(void)
{
	struct targ t = {fresh(), fresh()}, u = {fresh(), NULL};
	pthread_attr_t attr;
	sigset_t all;
	pthread_t th;

	REQUIRE(pthread_create(&th, NULL, creator, &t) == 0, "pthread_create");
	pthread_join(th, NULL);
	sigfillset(&all);
	REQUIRE(pthread_attr_init(&attr) == 0 && pthread_attr_setsigmask_np(&attr, &all) == 0, "attr");
	REQUIRE(pthread_create(&th, &attr, inheriting, &u) == 0, "pthread_create with a sigmask attr");
	pthread_join(th, NULL);
	pthread_attr_destroy(&attr);
}

/* The program's own SIGSEGV handler: SIGSEGV blocked while it runs (no
 * SA_NODEFER) in the mask the program reads, as the kernel would have it,
 * but not for real, so that its first write to a fresh FAULT grain works
 * and a longjmp out of it leaves nothing blocked. */
static char *ro_page, *handler_grain;
static _Atomic uint64_t blk_in_handler;
static _Atomic int reported_in_handler;

static void segv_handler(int sig)
{
	sigset_t cur;

	(void)sig;
	atomic_store(&blk_in_handler, kernel_blocked());
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	atomic_store(&reported_in_handler, sigismember(&cur, SIGSEGV));
	memset(handler_grain, 0x44, 256);
	mprotect(ro_page, 4096, PROT_READ | PROT_WRITE);
}

static void case_own_handler(void)
{
	struct sigaction sa, *old = (struct sigaction *)fresh();

	handler_grain = fresh();
	ro_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(ro_page != MAP_FAILED, "mmap");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = segv_handler;
	/* The old action written into a fresh FAULT page. */
	REQUIRE(sigaction(SIGSEGV, &sa, old) == 0, "sigaction(SIGSEGV)");
	CHECK(old->sa_handler == SIG_DFL, "old SIGSEGV action");
	*(volatile char *)ro_page = 1;
	CHECK((atomic_load(&blk_in_handler) & SEGV_BIT) == 0,
	      "the program's SIGSEGV handler ran with SIGSEGV blocked for real");
	CHECK(atomic_load(&reported_in_handler) == 1, "mask read in the SIGSEGV handler hides SIGSEGV");
	CHECK(handler_grain[0] == 0x44 &&
		      range_allocated_flags(mfd, (handler_grain - map) & ~4095L, 4096, NULL) == 1,
	      "the handler's first write to a fresh grain is not in the file");
	blocked_now("after the SIGSEGV handler", 0);
}

/* A handler that leaves with longjmp (no mask restored): nothing the
 * library needs stays blocked for real, and the next first write works (it
 * was killed: SIGSEGV stayed blocked in the kernel's mask).  One left with
 * siglongjmp is over, also for a fault far below it. */
static jmp_buf plain_jb;
static sigjmp_buf sig_jb;
static char *guard;
static _Atomic int probes;

static void longjmp_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&probes, 1);
	longjmp(plain_jb, 1);
}

static void siglongjmp_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&probes, 1);
	siglongjmp(sig_jb, 1);
}

static void set_segv_handler(void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	REQUIRE(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction(SIGSEGV)");
}

static void make_guard(void)
{
	guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(guard != MAP_FAILED, "mmap guard");
}

static void case_longjmp(void)
{
	make_guard();
	set_segv_handler(longjmp_handler, 0);
	if (setjmp(plain_jb) == 0) {
		*(volatile char *)guard = 1;
		CHECK(0, "the guard page did not fault");
	}
	CHECK(atomic_load(&probes) == 1, "handler ran %d times", atomic_load(&probes));
	CHECK((kernel_blocked() & SEGV_BIT) == 0,
	      "SIGSEGV left blocked for real by a longjmp out of the handler");
	/* As the kernel's mask would be: longjmp restored none. */
	blocked_now("after a longjmp out of the SIGSEGV handler", 1);
	write_fresh("after a longjmp out of the SIGSEGV handler", fresh());
}

/* Probes from a frame far below the first one's, over stack the program
 * never wrote (a large buffer): the handler that was left by a jump is not
 * taken for one still running there. */
static __attribute__((noinline)) void probe_deep(void)
{
	char big[256 * 1024];

	__asm__ volatile("" : : "r"(big) : "memory");
	*(volatile char *)guard = 1;
	CHECK(0, "the guard page did not fault");
}

static void case_siglongjmp(void)
{
	make_guard();
	set_segv_handler(siglongjmp_handler, 0);
	if (sigsetjmp(sig_jb, 1) == 0) {
		*(volatile char *)guard = 1;
		CHECK(0, "the guard page did not fault");
	}
	/* At once, nothing called in between that could write the stack. */
	if (sigsetjmp(sig_jb, 1) == 0)
		probe_deep();
	CHECK(atomic_load(&probes) == 2, "handler ran %d times for 2 faults", atomic_load(&probes));
	blocked_now("after a siglongjmp out of the SIGSEGV handler", 0);
	write_fresh("after a siglongjmp out of the SIGSEGV handler", fresh());
}

/* A fault of the handler's own, not the library's, while SIGSEGV is
 * blocked (no SA_NODEFER): the kernel kills at once; with SA_NODEFER the
 * handler runs again, nested. */
static _Atomic int *entered; /* shared with the parent */

static void faulting_handler(int sig)
{
	(void)sig;
	if (atomic_fetch_add(entered, 1) == 0)
		*(volatile char *)guard = 2; /* the same guard: a fault of its own */
	else
		mprotect(guard, 4096, PROT_READ | PROT_WRITE);
}

static void nested(int flags, int want_death)
{
	int status;
	pid_t pid;

	atomic_store(entered, 0);
	fflush(NULL);
	pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		set_segv_handler(faulting_handler, flags);
		*(volatile char *)guard = 1;
		_exit(0);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
	if (want_death)
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV && atomic_load(entered) == 1,
		      "a fault inside the SIGSEGV handler: status %#x, handler entered %d times (want killed "
		      "by "
		      "SIGSEGV, once)",
		      status, atomic_load(entered));
	else
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0 && atomic_load(entered) == 2,
		      "a fault inside an SA_NODEFER SIGSEGV handler: status %#x, handler entered %d times "
		      "(want "
		      "exit 0, twice)",
		      status, atomic_load(entered));
}

static void case_nested(void)
{
	entered = mmap(NULL, sizeof(*entered), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	REQUIRE(entered != MAP_FAILED, "mmap");
	make_guard();
	nested(0, 1);
	nested(SA_NODEFER, 0);
	/* Also after the handler was left by a siglongjmp once. */
	set_segv_handler(siglongjmp_handler, 0);
	if (sigsetjmp(sig_jb, 1) == 0)
		*(volatile char *)guard = 1;
	nested(0, 1);
}

/* A process started with SIGSEGV blocked (exec keeps the mask): the shim
 * takes it over at start. */
static void case_exec(void)
{
	uint64_t segv = SEGV_BIT;
	char g[16];

	/* The exec'd copy maps the file again and takes the next grain. */
	snprintf(g, sizeof(g), "%d", next_grain);
	REQUIRE(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &segv, NULL, 8) == 0, "raw block");
	execl(self, self, "--execd", dir, g, (char *)NULL);
	REQUIRE(0, "exec %s: %s", self, strerror(errno));
}

static void execd(void)
{
	blocked_now("exec'd with SIGSEGV blocked", 1);
	CHECK((kernel_blocked() & SEGV_BIT) == 0, "the kernel still has SIGSEGV blocked after start");
	write_fresh("exec'd with SIGSEGV blocked", fresh());
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{"pthread_sigmask in a worker", case_worker},
	{"sigprocmask", case_sigprocmask},
	{"sighold/sigblock/sigset", case_legacy},
	{"handler sa_mask with SIGSEGV", case_sa_mask},
	{"sigsuspend/ppoll/pselect/epoll_pwait(2)", case_waits},
	{"threads inherit the mask", case_inherit},
	{"the program's SIGSEGV handler", case_own_handler},
	{"longjmp out of the SIGSEGV handler", case_longjmp},
	{"siglongjmp out of the SIGSEGV handler", case_siglongjmp},
	{"a fault inside the SIGSEGV handler", case_nested},
	{"exec with SIGSEGV blocked", case_exec},
};

static int map_file(const char *d, int create)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/sigmask", d);
	mfd = create ? pt_sparse(d, "sigmask", SIZE, NULL, 0) : open(path, O_RDWR | O_CLOEXEC);
	REQUIRE(mfd >= 0, "open");
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(map != MAP_FAILED, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode(map) == PT_FAULT, "the shim did not take the mapping (mode %d)", pt_mode(map));
	return 0;
}

int main(int argc, char **argv)
{
	self = argv[0];
	if (argc == 4 && strcmp(argv[1], "--execd") == 0) {
		map_file(argv[2], 0);
		next_grain = atoi(argv[3]);
		execd();
		return pt_failed;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	map_file(dir, 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int status, grain = next_grain;
		pid_t pid;

		fflush(NULL);
		pid = fork();
		REQUIRE(pid >= 0, "fork");
		if (pid == 0) {
			pt_failed = 0; /* the child reports its own case only */
			cases[i].fn();
			fflush(NULL);
			_exit(pt_failed);
		}
		REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
		next_grain = grain + 16; /* each case takes at most 8 grains, every other one */
		if (WIFSIGNALED(status))
			CHECK(0, "%s: child killed by signal %d (%s)", cases[i].name, WTERMSIG(status),
			      strsignal(WTERMSIG(status)));
		else
			CHECK(WEXITSTATUS(status) == 0, "%s: child exit %d", cases[i].name,
			      WEXITSTATUS(status));
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			pt_note("%s: ok", cases[i].name);
	}
	return pt_done("pl_sigmask");
}
