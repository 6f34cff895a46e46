/* SPDX-License-Identifier: MIT */
/* pl_reentry.c -- a signal handler truncates or punches a mapped file while its thread is inside the library's table lock: no hang, and the freed grains are re-protected
 *
 * open(O_TRUNC), creat and ftruncate are async-signal-safe, and a handler
 * that writes a crash or state file with them is common.  Under the shim
 * each of them re-protects the file's FAULT mappings, under the library's
 * table lock; a signal that lands while the same thread holds that lock
 * (any mmap, munmap or mprotect of a mapping of the library's) must not wait
 * for it forever.
 *
 * The signal is made to land there every time: the library makes its
 * mmap-family calls with libc's syscall() while it holds the lock, and this
 * program exports a syscall() of its own (the executable comes first in the
 * symbol search order, before the preloaded shim and libc), which raises
 * SIGUSR1 once, when armed, before passing the call on.
 *
 * Each case runs in a child with an alarm: a hang is reported as one.
 */
#include "ptest.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define GRAIN (64 * 1024)
#define SIZE (16 * GRAIN)
#define HANG_SECONDS 6

static long (*real_syscall)(long, ...);
static _Atomic long armed = -1; /* the system call to raise SIGUSR1 before */
static _Atomic int fired;

__attribute__((visibility("default"))) long syscall(long n, ...)
{
	va_list ap;
	long a[6];

	va_start(ap, n);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	/* Resolved on first use: the shim's constructor calls us before main. */
	if (real_syscall == NULL)
		real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	if (n == atomic_load(&armed) && atomic_exchange(&armed, -1) == n) {
		atomic_fetch_add(&fired, 1);
		raise(SIGUSR1);
	}
	return real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

enum how { BY_CREAT, BY_OPEN_TRUNC, BY_FTRUNCATE, BY_PUNCH };

static char path[4096];
static int mfd;
static enum how how;
static _Atomic int handler_ran, handler_rc;

static void handler(int sig)
{
	int saved = errno, rc = -1, fd;

	(void)sig;
	switch (how) {
	case BY_CREAT:
		fd = creat(path, 0644);
		rc = fd >= 0 ? close(fd) : -1;
		break;
	case BY_OPEN_TRUNC:
		fd = open(path, O_RDWR | O_TRUNC | O_CLOEXEC);
		rc = fd >= 0 ? close(fd) : -1;
		break;
	case BY_FTRUNCATE: rc = ftruncate(mfd, 0); break;
	case BY_PUNCH:
		rc = fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * GRAIN, GRAIN);
		break;
	}
	atomic_store(&handler_rc, rc);
	atomic_store(&handler_ran, 1);
	errno = saved;
}

/* The library call during which the handler runs: one that holds the table
 * lock; the library's SIGSEGV handler making a first write durable, or the
 * shim readying a read(2) buffer, both of which hold the region while they
 * upgrade the grain with mprotect. */
enum during { IN_MUNMAP, IN_MPROTECT, IN_MMAP, IN_FAULT, IN_READ };

static void one_case(const char *dir, enum how h, enum during d)
{
	struct sigaction sa;
	char *map, *other = NULL;
	long call = d == IN_MUNMAP ? SYS_munmap : d == IN_MMAP ? SYS_mmap : SYS_mprotect;
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);

	how = h;
	mfd = pt_sparse(dir, "reentry", SIZE, path, sizeof(path));
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(map != MAP_FAILED && zero >= 0, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode(map) == PT_FAULT, "the shim did not take the mapping (mode %d)", pt_mode(map));
	memset(map, 1, 4096);
	memset(map + 8 * GRAIN, 1, 4096);
	REQUIRE(pt_writable(map) && pt_writable(map + 8 * GRAIN), "written grains not writable");
	if (d == IN_MUNMAP || d == IN_MPROTECT) {
		other = mmap(NULL, GRAIN, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
		REQUIRE(other != MAP_FAILED && pt_mode(other) == PT_FAULT, "second mapping");
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	alarm(HANG_SECONDS); /* a deadlock dies of SIGALRM */
	atomic_store(&armed, call);
	if (d == IN_MUNMAP)
		CHECK(munmap(other, GRAIN) == 0, "munmap: %s", strerror(errno));
	else if (d == IN_MPROTECT)
		CHECK(mprotect(other, GRAIN, PROT_READ) == 0, "mprotect: %s", strerror(errno));
	else if (d == IN_MMAP)
		CHECK((other = mmap(NULL, GRAIN, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) != MAP_FAILED,
		      "mmap: %s", strerror(errno));
	else if (d == IN_FAULT)
		map[2 * GRAIN] = 1; /* a first write: the fault */
	else
		CHECK(read(zero, map + 2 * GRAIN, 4096) == 4096, "read into a fresh grain: %s",
		      strerror(errno));
	alarm(0);
	REQUIRE(atomic_load(&fired) == 1 && atomic_load(&handler_ran),
		"the signal was not raised in the call");
	CHECK(atomic_load(&handler_rc) == 0, "the handler's call failed");

	/* The handler's change is applied by the time the call returns. */
	if (h == BY_PUNCH) {
		CHECK(!pt_writable(map + 8 * GRAIN), "punched grain still writable after the call returned");
		CHECK(pt_writable(map), "a grain the punch did not touch was re-protected");
		map[8 * GRAIN] = 2;
		CHECK(range_allocated_flags(mfd, 8 * GRAIN, 4096, NULL) == 1,
		      "write into the punched grain not allocated before a flush");
	} else {
		REQUIRE(ftruncate(mfd, SIZE) == 0, "ftruncate back: %s", strerror(errno));
		CHECK(!pt_writable(map) && !pt_writable(map + 8 * GRAIN),
		      "grains of the emptied file still writable after the call returned");
		map[0] = 2;
		CHECK(range_allocated_flags(mfd, 0, 4096, NULL) == 1,
		      "write after the handler emptied the file not allocated before a flush");
	}
}

int main(int argc, char **argv)
{
	static const char *const hows[] = {"creat", "open(O_TRUNC)", "ftruncate", "fallocate(PUNCH_HOLE)"};
	static const char *const durings[] = {"munmap", "mprotect", "mmap", "a first write's fault",
					      "read(2) into a fresh grain"};

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (int h = BY_CREAT; h <= BY_PUNCH; h++) {
		for (int d = IN_MUNMAP; d <= IN_READ; d++) {
			int status;
			pid_t pid;

			/* A file emptied under a write in flight: SIGBUS (EFAULT)
			 * there, as with plain mmap. */
			if (d >= IN_FAULT && h != BY_PUNCH)
				continue;

			fflush(NULL);
			pid = fork();
			REQUIRE(pid >= 0, "fork");
			if (pid == 0) {
				pt_failed = 0; /* the child reports its own case only */
				one_case(argv[1], (enum how)h, (enum during)d);
				fflush(NULL);
				_exit(pt_failed);
			}
			REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
			if (WIFSIGNALED(status))
				CHECK(0, "%s in a handler during %s: child killed by signal %d (%s)%s",
				      hows[h], durings[d], WTERMSIG(status), strsignal(WTERMSIG(status)),
				      WTERMSIG(status) == SIGALRM ? ": hung" : "");
			else if (WEXITSTATUS(status) != 0)
				CHECK(0, "%s in a handler during %s: child exit %d", hows[h], durings[d],
				      WEXITSTATUS(status));
			else
				pt_note("%s in a handler during %s: ok", hows[h], durings[d]);
		}
	}
	return pt_done("pl_reentry");
}
