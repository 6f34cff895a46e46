/* SPDX-License-Identifier: MIT */
/* pl_seccomp.c -- readv and recvmsg into FAULT pages under a seccomp filter that kills process_vm_readv
 *
 * systemd's SystemCallFilter= and container runtimes kill a process for a
 * system call outside their list; process_vm_readv is outside most.  The
 * shim looks into the program's iovec and msghdr arrays before the call (to
 * ready the buffers they point to): that must not cost the program its
 * life, and a bad array must still give the kernel's EFAULT.
 */
#include "ptest.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define GRAIN (64 * 1024)
#define SIZE (16 * GRAIN)
#define MSG 3000

#if defined(__x86_64__)
#define PT_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PT_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static char *map;
static int mfd;

/* Kill the process at process_vm_readv; allow everything else. */
static int install_filter(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PT_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_process_vm_readv, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static void pattern(char *b, size_t n, unsigned salt)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (char)pt_byte(i, salt);
}

/* MSG bytes arrived at p, whole, and are allocated with no flush. */
static void arrived(const char *what, const char *p, unsigned salt)
{
	char want[MSG];

	pattern(want, MSG, salt);
	CHECK(memcmp(p, want, MSG) == 0, "%s: data differs", what);
	CHECK(range_allocated_flags(mfd, p - map, MSG, NULL) == 1, "%s: blocks not allocated", what);
}

static void child(void)
{
	char src[MSG], *p = map + GRAIN - 100, *q = map + 3 * GRAIN - 100;
	struct iovec iov[2] = {{p, MSG / 2}, {p + MSG / 2, MSG - MSG / 2}};
	struct msghdr m;
	struct iovec *edge;
	int pfd[2], sv[2];
	ssize_t n;
	long pg = sysconf(_SC_PAGESIZE);
	char *two;

	REQUIRE(pipe(pfd) == 0 && socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0, "pipe, socketpair");
	/* An iovec array in the last bytes of a mapping, the next page unmapped:
	 * valid, and a copy one byte too far would fault. */
	two = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(two != MAP_FAILED && munmap(two + pg, (size_t)pg) == 0, "edge page");
	edge = (struct iovec *)(two + pg) - 1;
	REQUIRE(install_filter() == 0, "seccomp: %s", strerror(errno));

	pattern(src, MSG, 1);
	REQUIRE(write(pfd[1], src, MSG) == MSG, "write");
	n = readv(pfd[0], iov, 2);
	CHECK(n == MSG, "readv into fresh FAULT pages: %zd (%s)", n, strerror(errno));
	arrived("readv", p, 1);

	pattern(src, MSG, 2);
	REQUIRE(send(sv[0], src, MSG, 0) == MSG, "send");
	memset(&m, 0, sizeof(m));
	iov[0].iov_base = q;
	iov[0].iov_len = MSG;
	m.msg_iov = iov;
	m.msg_iovlen = 1;
	n = recvmsg(sv[1], &m, 0);
	CHECK(n == MSG, "recvmsg into a fresh FAULT page: %zd (%s)", n, strerror(errno));
	arrived("recvmsg", q, 2);

	/* Bad arrays: the kernel's EFAULT, nothing consumed. */
	REQUIRE(write(pfd[1], src, 10) == 10, "write");
	errno = 0;
	CHECK(readv(pfd[0], (struct iovec *)(two + pg), 1) == -1 && errno == EFAULT,
	      "readv with an unmapped iovec array: %s", strerror(errno));
	errno = 0;
	CHECK(readv(pfd[0], (struct iovec *)(two + pg - 8), 1) == -1 && errno == EFAULT,
	      "readv with an iovec straddling into an unmapped page: %s", strerror(errno));
	errno = 0;
	CHECK(recvmsg(sv[1], (struct msghdr *)(two + pg), 0) == -1 && errno == EFAULT,
	      "recvmsg with an unmapped msghdr: %s", strerror(errno));
	/* The array ending exactly at the unmapped page: valid. */
	edge->iov_base = map + 5 * GRAIN - 100;
	edge->iov_len = 10;
	n = readv(pfd[0], edge, 1);
	CHECK(n == 10 && memcmp(map + 5 * GRAIN - 100, src, 10) == 0,
	      "readv with an iovec array at the end of a mapping: %zd (%s)", n, strerror(errno));
	fflush(NULL);
	_exit(pt_failed);
}

int main(int argc, char **argv)
{
	int status;
	pid_t pid;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
#ifndef PT_AUDIT_ARCH
	printf("SKIP: no seccomp architecture constant for this machine\n");
	return PT_SKIP;
#endif
	mfd = pt_sparse(argv[1], "seccomp", SIZE, NULL, 0);
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(map != MAP_FAILED, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode(map) == PT_FAULT, "the shim did not take the mapping (mode %d)", pt_mode(map));
	fflush(NULL);
	pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0)
		child();
	REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
	if (WIFSIGNALED(status))
		CHECK(0, "the child under the seccomp filter was killed by signal %d (%s)", WTERMSIG(status),
		      strsignal(WTERMSIG(status)));
	else
		CHECK(WEXITSTATUS(status) == 0, "child exit %d", WEXITSTATUS(status));
	if (!pt_failed)
		pt_note("readv, recvmsg into FAULT pages and bad arrays under a filter killing "
			"process_vm_readv: ok");
	return pt_done("pl_seccomp");
}
