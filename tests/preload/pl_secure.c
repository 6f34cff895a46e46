/* SPDX-License-Identifier: MIT */
/* pl_secure.c -- a secure-exec (AT_SECURE) process: the shim, loaded into it, leaves everything alone
 *
 * pl_secure SHIM DIR secure|normal.  The dynamic loader ignores an
 * LD_PRELOAD path in a setuid program, so the shim is dlopen()ed instead
 * and its interposers are called through dlsym: in a secure process they
 * must pass straight through (no FAULT mapping, SIGSEGV to the kernel, no
 * counters printed); in a normal one they must not.
 */
#include "ptest.h"

#include <signal.h>
#include <sys/auxv.h>

#define SIZE (256 * 1024)

static void on_segv(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	void *(*shim_mmap)(void *, size_t, int, int, int, off_t);
	int (*shim_mode)(const void *);
	int (*shim_sigaction)(int, const struct sigaction *, struct sigaction *);
	void *kh = NULL;
	struct sigaction sa;
	int secure, fd;
	char *p;
	void *h;

	if (argc != 4 || (strcmp(argv[3], "secure") != 0 && strcmp(argv[3], "normal") != 0)) {
		fprintf(stderr, "usage: %s SHIM DIR secure|normal\n", argv[0]);
		return 2;
	}
	secure = strcmp(argv[3], "secure") == 0;
	REQUIRE(getauxval(AT_SECURE) == (unsigned long)secure, "AT_SECURE is %lu, want %d",
		getauxval(AT_SECURE), secure);
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	REQUIRE(h != NULL, "dlopen %s: %s", argv[1], dlerror());
	shim_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(h, "mmap");
	shim_mode = (int (*)(const void *))dlsym(h, "syncmap_mode");
	shim_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(h, "sigaction");
	REQUIRE(shim_mmap != NULL && shim_mode != NULL && shim_sigaction != NULL, "shim symbols");

	fd = pt_sparse(argv[2], secure ? "secure.dat" : "normal.dat", SIZE, NULL, 0);
	p = shim_mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(p != MAP_FAILED, "mmap: %s", strerror(errno));
	p[0] = 1;
	CHECK(shim_mode(p) == (secure ? PT_NONE : PT_FAULT), "%s: mode %d", argv[3], shim_mode(p));

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	CHECK(shim_sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction");
	CHECK(pt_kernel_handler(SIGSEGV, &kh) == 0, "rt_sigaction");
	CHECK((kh == (void *)on_segv) == secure, "%s: the kernel's SIGSEGV handler %s the program's", argv[3],
	      kh == (void *)on_segv ? "is" : "is not");
	pt_note("%s process (AT_SECURE=%d): mapping mode %d, SIGSEGV handler %s", argv[3], secure,
		shim_mode(p), secure ? "straight to the kernel" : "kept behind the library's");
	return pt_done("pl_secure");
}
