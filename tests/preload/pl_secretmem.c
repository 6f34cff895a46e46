/* SPDX-License-Identifier: MIT */
/* pl_secretmem.c -- memfd_secret(2) memory is never taken: mmap and syncmap_mmap give it mode NONE and it can be written */
#include <syncmap.h>

#include "ptest.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#define SIZE (256 * 1024)

/* The write was killed: say so instead of dying silently. */
static void on_sigbus(int sig)
{
	static const char msg[] = "FAIL: SIGBUS at the first write\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

/* In a child: map fd through the shim's mmap (lib 0) or syncmap_mmap
 * (lib 1), check the mode is NONE, write every page and read it back.  The
 * parent reports how the child ended. */
static void run(const char *what, int fd, int lib)
{
	int status;
	pid_t pid = fork();

	REQUIRE(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		struct sigaction sa;
		char *p;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigbus;
		REQUIRE(sigaction(SIGBUS, &sa, NULL) == 0, "sigaction");
		p = lib ? syncmap_mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
			: mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED && (errno == EAGAIN || errno == ENOMEM)) {
			printf("SKIP: %s of memfd_secret: %s (RLIMIT_MEMLOCK?)\n", what, strerror(errno));
			_exit(PT_SKIP);
		}
		REQUIRE(p != MAP_FAILED, "%s: %s", what, strerror(errno));
		CHECK(syncmap_mode(p) == SYNCMAP_MODE_NONE, "%s of a memfd_secret file taken in mode %d",
		      what, syncmap_mode(p));
		for (size_t i = 0; i < SIZE; i += 4096)
			p[i] = (char)pt_byte(i, 7);
		for (size_t i = 0; i < SIZE; i += 4096)
			CHECK(p[i] == (char)pt_byte(i, 7), "%s: byte %zu", what, i);
		CHECK((lib ? syncmap_munmap(p, SIZE) : munmap(p, SIZE)) == 0, "%s: unmap: %s", what,
		      strerror(errno));
		fflush(NULL);
		_exit(pt_failed);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
	if (WIFEXITED(status) && WEXITSTATUS(status) == PT_SKIP)
		exit(PT_SKIP);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child ended with status %#x", what, status);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		pt_note("%s: mode NONE, every page written", what);
}

int main(int argc, char **argv)
{
	struct statfs sf;
	int fd;

	(void)argv;
	if (argc != 2)
		return 2;
	fd = (int)syscall(SYS_memfd_secret, 0);
	if (fd < 0) {
		/* ENOSYS: no such call; a kernel without secretmem.enable (or an
		 * arch that lacks it) fails it too. */
		printf("SKIP: memfd_secret: %s\n", strerror(errno));
		return PT_SKIP;
	}
	REQUIRE(fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == 0x5345434dUL,
		"memfd_secret file not on secretmem (f_type %#lx)", (unsigned long)sf.f_type);
	REQUIRE(ftruncate(fd, SIZE) == 0, "ftruncate: %s", strerror(errno));
	run("the shim's mmap()", fd, 0);
	run("syncmap_mmap()", fd, 1);
	close(fd);
	return pt_done("pl_secretmem");
}
