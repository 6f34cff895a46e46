/* SPDX-License-Identifier: MIT */
/* pl_lazy.c -- the shim's wrappers called for the first time from a signal handler: no dlsym there
 *
 * dlsym is not async-signal-safe: it takes the dynamic loader's lock.  A
 * wrapper that looked up the function beneath it at its first call did
 * that from whatever context the call came from.  Here another thread is
 * inside dlopen, in a constructor, holding that lock; a signal handler then
 * makes the process's first call of one wrapped function.  The handler must
 * finish while the constructor still holds the lock.  One round per
 * function, each with a fresh dlopen, so each is its own first call.
 */
#include "ptest.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* sysv_signal, sigset */

static int to_ctor[2], from_ctor[2];
static int which, cfr_in, cfr_out;
static FILE *mem;
static char lib[PATH_MAX];

static void on_usr1(int sig)
{
	char c = 0;
	int n;

	(void)sig;
	switch (which) {
	case 0: (void)ioctl(to_ctor[0], FIONREAD, &n); break;
	case 1: signal(SIGUSR2, SIG_IGN); break;
	case 2: sysv_signal(SIGUSR2, SIG_IGN); break;
	case 3: sigset(SIGUSR2, SIG_IGN); break;
	case 4: (void)!fread(&c, 1, 1, mem); break;
	case 5: (void)!(fread_unlocked)(&c, 1, 1, mem); break; /* not the small-read macro */
	default: (void)copy_file_range(cfr_in, NULL, cfr_out, NULL, 1, 0); break;
	}
	c = 1;
	if (write(to_ctor[1], &c, 1) != 1)
		_exit(3);
}

static void *opener(void *arg)
{
	(void)arg;
	return dlopen(lib, RTLD_NOW | RTLD_LOCAL);
}

/* One round: the constructor holds the lock; the handler calls function i. */
static void round_for(int i, const char *name)
{
	pthread_t th;
	void *h = NULL;
	char c;

	which = i;
	REQUIRE(pthread_create(&th, NULL, opener, NULL) == 0, "pthread_create");
	REQUIRE(read(from_ctor[0], &c, 1) == 1, "constructor did not start");
	raise(SIGUSR1);
	REQUIRE(read(from_ctor[0], &c, 1) == 1, "constructor's answer");
	pthread_join(th, &h);
	REQUIRE(h != NULL, "dlopen %s: %s", lib, dlerror());
	CHECK(c == 'Y',
	      "%s: the first call from a signal handler waited for another thread's dlopen "
	      "(dlsym in the handler)",
	      name);
	if (c == 'Y')
		pt_note("%s: first call from a signal handler, with the loader's lock taken: ok", name);
	dlclose(h);
	/* A handler that waited wrote its byte after the constructor gave up:
	 * it must not answer the next round's constructor. */
	while (read(to_ctor[0], &c, 1) == 1)
		;
}

int main(int argc, char **argv)
{
	static const char *const names[] = {"ioctl", "signal",	       "sysv_signal",	 "sigset",
					    "fread", "fread_unlocked", "copy_file_range"};
	static char buf[16] = "0123456789";
	char path[PATH_MAX + 16], env[32];
	struct sigaction sa;
	ssize_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	n = readlink("/proc/self/exe", lib, sizeof(lib) - 32);
	REQUIRE(n > 0, "readlink");
	lib[n] = '\0';
	snprintf(strrchr(lib, '/'), 32, "/libpl_lazy.so");
	snprintf(path, sizeof(path), "%s/lazy.in", argv[1]);
	cfr_in = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	snprintf(path, sizeof(path), "%s/lazy.out", argv[1]);
	cfr_out = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(cfr_in >= 0 && cfr_out >= 0 && write(cfr_in, "x", 1) == 1 && lseek(cfr_in, 0, SEEK_SET) == 0,
		"files");
	mem = fmemopen(buf, sizeof(buf), "r");
	REQUIRE(mem != NULL, "fmemopen");
	REQUIRE(pipe2(to_ctor, O_CLOEXEC | O_NONBLOCK) == 0 && pipe2(from_ctor, O_CLOEXEC) == 0, "pipe");
	snprintf(env, sizeof(env), "%d %d", to_ctor[0], from_ctor[1]);
	setenv("PL_LAZY_FDS", env, 1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		round_for(i, names[i]);
	return pt_done("pl_lazy");
}
