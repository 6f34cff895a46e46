/* SPDX-License-Identifier: MIT */
/* pl_guard.c -- a program that owns SIGSEGV (guard pages, its own crash handling) works under the shim
 *
 * Run as `pl_guard DIR handler-first` (the program installs its handler
 * before its first shared file mapping) or `pl_guard DIR map-first`.
 */
#include "ptest.h"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>

#define PAGE 4096
#define GUARD_PAGES 16
#define FILE_SIZE (1024 * 1024)

/* volatile: each store must happen before the counters its fault bumps are read */
static volatile char *guard, *fmap;
static volatile sig_atomic_t guard_hits, ro_hits, raised, plain_hits;

/* The trick: pages start PROT_NONE and are opened one by one as touched. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	char *a = si->si_addr;
	uintptr_t pg = (uintptr_t)a & ~(uintptr_t)(PAGE - 1);

	(void)uc;
	if (sig != SIGSEGV) {
		_exit(3);
	} else if (si->si_code == SI_TKILL) {
		raised++;
	} else if (si->si_code == SEGV_ACCERR && a >= (char *)guard &&
		   a < (char *)guard + GUARD_PAGES * PAGE) {
		mprotect((void *)pg, PAGE, PROT_READ | PROT_WRITE);
		guard_hits++;
	} else if (si->si_code == SEGV_ACCERR && a >= (char *)fmap && a < (char *)fmap + FILE_SIZE) {
		/* The program's own read-only part of the file mapping: its fix goes
		 * through the shim's mprotect, then the library's fault. */
		mprotect((void *)pg, PAGE, PROT_READ | PROT_WRITE);
		ro_hits++;
	} else {
		_exit(4); /* a fault this program did not expect */
	}
}

static void on_plain(int sig)
{
	(void)sig;
	plain_hits++;
}

/* The disposition in the kernel's table, below every libc and shim. */
static void *kernel_handler(void)
{
	void *h;

	return pt_kernel_handler(SIGSEGV, &h) == 0 ? h : NULL;
}

static void install(void)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler == SIG_DFL,
	      "initial disposition not SIG_DFL");
	CHECK(sigaction(SIGSEGV, &sa, &old) == 0, "sigaction: %s", strerror(errno));
	CHECK(old.sa_handler == SIG_DFL, "old handler: want SIG_DFL");
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_sigaction == on_segv, "read back: not ours");
	CHECK((old.sa_flags & (SA_SIGINFO | SA_RESTART)) == (SA_SIGINFO | SA_RESTART), "read back: flags %#x",
	      (unsigned)old.sa_flags);
	CHECK(sigismember(&old.sa_mask, SIGUSR1) == 1, "read back: mask lost SIGUSR1");
	CHECK(kernel_handler() != (void *)on_segv, "the handler replaced the library's in the kernel");
	pt_note("sigaction: the program reads back its own handler; the kernel keeps the library's");
}

static void map_file(const char *dir)
{
	int fd = pt_sparse(dir, "guard.dat", FILE_SIZE, NULL, 0);

	fmap = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(fmap != MAP_FAILED, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode((void *)fmap) == PT_FAULT, "the shim did not take the file mapping");
	for (size_t off = 0; off < FILE_SIZE; off += 64 * 1024)
		fmap[off] = 'f';
	CHECK(guard_hits == 0 && ro_hits == 0, "the library's faults reached the program's handler");
	close(fd);
}

static void guard_pages(void)
{
	guard = mmap(NULL, GUARD_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(guard != MAP_FAILED, "mmap guard");
	for (int i = 0; i < GUARD_PAGES; i++)
		guard[i * PAGE + 7] = (char)i;
	CHECK(guard_hits == GUARD_PAGES, "guard faults handled: %d of %d", (int)guard_hits, GUARD_PAGES);
	for (int i = 0; i < GUARD_PAGES; i++)
		CHECK(guard[i * PAGE + 7] == (char)i, "guard page %d data", i);
	pt_note("guard pages: %d faults reached the program's handler", (int)guard_hits);
}

/* The program write-protects part of its file mapping and relies on its
 * handler to open it again: the fault is the program's, not the library's. */
static void own_readonly(void)
{
	volatile char *p = fmap + 5 * 64 * 1024;

	CHECK(mprotect((void *)p, PAGE, PROT_READ) == 0, "mprotect RO");
	p[1] = 'x';
	CHECK(ro_hits == 1 && p[1] == 'x', "write to the program's read-only page: hits %d", (int)ro_hits);
	CHECK(pt_mode((void *)p) == PT_FAULT, "page lost its mode");
	pt_note("a fault on the program's own read-only page reached its handler; its fix went through the "
		"library");
}

static void signal_variants(void)
{
	struct sigaction sa, old;

	CHECK((void *)signal(SIGSEGV, on_plain) == (void *)on_segv,
	      "signal() returned the wrong previous handler");
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler == on_plain &&
		      (old.sa_flags & SA_RESTART),
	      "read back after signal()");
	raise(SIGSEGV);
	CHECK(plain_hits == 1, "raise(SIGSEGV) with a signal() handler: %d", (int)plain_hits);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	CHECK(sigaction(SIGSEGV, &sa, &old) == 0 && old.sa_handler == on_plain, "back to on_segv");
	raise(SIGSEGV);
	CHECK(raised == 1, "raise(SIGSEGV) reached the SA_SIGINFO handler with SI_TKILL: %d", (int)raised);
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler == SIG_DFL,
	      "SA_RESETHAND: disposition after one delivery is not SIG_DFL");
	pt_note("signal(), raise(), SA_RESETHAND: as without the shim");
}

/* Faults nobody handles still kill, as they would without the shim. */
static int child_status(void (*fn)(void))
{
	int st;
	pid_t pid = fork();

	if (pid == 0) {
		fn();
		_exit(0);
	}
	REQUIRE(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/wait");
	return st;
}

/* volatile: the compiler would rightly refuse a constant bad pointer */
static volatile int *volatile bad_ptr = (volatile int *)8;

static void null_write(void)
{
	signal(SIGSEGV, SIG_DFL);
	*bad_ptr = 1;
}

static void null_ignored(void)
{
	signal(SIGSEGV, SIG_IGN);
	*bad_ptr = 1;
}

static void on_exit42(int sig)
{
	(void)sig;
	_exit(42);
}

static void null_handled(void)
{
	signal(SIGSEGV, on_exit42);
	*bad_ptr = 1;
}

static char altstack[64 * 1024];

static int recurse(int n)
{
	volatile char pad[4096];

	if (n < 0)
		return 0; /* never: keeps the compiler from calling the recursion infinite */
	pad[0] = (char)n;
	return recurse(n + 1) + pad[0];
}

static void on_overflow(int sig)
{
	(void)sig;
	_exit(7);
}

/* Stack overflow caught on an alternate stack: the library's handler runs
 * there (SA_ONSTACK) and hands it on. */
static void overflow(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack)};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_overflow;
	sa.sa_flags = SA_ONSTACK;
	sigaltstack(&ss, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	recurse(0);
}

static void deaths(void)
{
	int st = child_status(null_write);

	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "NULL write with SIG_DFL: status %#x", st);
	st = child_status(null_ignored);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "NULL write with SIG_IGN: status %#x", st);
	st = child_status(null_handled);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42, "NULL write with a handler: status %#x", st);
	st = child_status(overflow);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "stack overflow on sigaltstack: status %#x", st);
	pt_note("unhandled faults kill by SIGSEGV; handled ones (also on an alternate stack) reach the "
		"program");
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[2], "handler-first") != 0 && strcmp(argv[2], "map-first") != 0)) {
		fprintf(stderr, "usage: %s DIR handler-first|map-first\n", argv[0]);
		return 2;
	}
	REQUIRE(pt_mode(NULL) >= 0, "the shim is not loaded");
	if (strcmp(argv[2], "handler-first") == 0) {
		install();
		map_file(argv[1]);
	} else {
		map_file(argv[1]);
		install();
	}
	guard_pages();
	own_readonly();
	signal_variants();
	deaths();
	return pt_done("pl_guard");
}
