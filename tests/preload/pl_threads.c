/* SPDX-License-Identifier: MIT */
/* pl_threads.c -- threads mapping, writing, reading into, re-protecting and unmapping at once under the shim,
 * with SIGSEGV dispositions changing and a thread forking all the while */
#include "ptest.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define WORKERS 4
#define ITERS 100
#define GRAIN (64 * 1024)
#define AREA (512 * 1024)
#define PAGE 4096

static int fd;
static _Atomic int stop;
static _Atomic long forks_ok, forks_bad, sig_changes;

struct worker {
	int id;
	unsigned last_salt;
	int failed;
};

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	off_t base = (off_t)w->id * AREA;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
	char buf[PAGE];
	int pfd[2];

	if (pipe(pfd) != 0) {
		w->failed = 1;
		return NULL;
	}
	for (int it = 0; it < ITERS && !w->failed; it++) {
		unsigned salt = (unsigned)(w->id * 1000 + it);
		char *p = mmap(NULL, AREA, PROT_READ | PROT_WRITE, MAP_SHARED, fd, base);
		size_t pg = (size_t)(xs(&seed) % (AREA / PAGE));

		if (p == MAP_FAILED || pt_mode(p) != PT_FAULT) {
			w->failed = 1;
			break;
		}
		/* Every page written: through the mapping, and one of them by read(2). */
		for (size_t i = 0; i < AREA / PAGE; i++)
			if (i != pg)
				memset(p + i * PAGE, (int)(pt_byte(i, salt)), PAGE);
		/* Free two grains under the live mapping (the shim re-protects them
		 * while the other threads map and fault) and write them again. */
		{
			size_t g = (size_t)(xs(&seed) % (AREA / GRAIN - 1));

			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      base + (off_t)(g * GRAIN), 2 * GRAIN) != 0)
				w->failed = 1;
			for (size_t i = g * GRAIN / PAGE; i < (g + 2) * GRAIN / PAGE; i++)
				if (i != pg)
					memset(p + i * PAGE, (int)(pt_byte(i, salt)), PAGE);
		}
		memset(buf, (int)pt_byte(pg, salt), PAGE);
		if (write(pfd[1], buf, PAGE) != PAGE || read(pfd[0], p + pg * PAGE, PAGE) != PAGE)
			w->failed = 1;
		if (mprotect(p, AREA / 2, PROT_READ) != 0 ||
		    mprotect(p, AREA / 2, PROT_READ | PROT_WRITE) != 0)
			w->failed = 1;
		p[0] = (char)pt_byte(0, salt); /* writable again after the round trip */
		if (munmap(p + AREA / 2, AREA / 2) != 0 || munmap(p, AREA / 2) != 0)
			w->failed = 1;
		w->last_salt = salt;
	}
	close(pfd[0]);
	close(pfd[1]);
	return NULL;
}

static void on_segv(int sig)
{
	(void)sig;
	_exit(9);
}

static void *signals(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		struct sigaction sa, old;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = atomic_load(&sig_changes) % 2 ? on_segv : SIG_DFL;
		if (sigaction(SIGSEGV, &sa, &old) == 0)
			atomic_fetch_add(&sig_changes, 1);
	}
	return NULL;
}

/* A child forked while the others map and unmap: its own mapping works. */
static void *forker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		int st;
		pid_t pid = fork();

		if (pid == 0) {
			char *p = mmap(NULL, AREA, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
				       (off_t)WORKERS * AREA);

			if (p == MAP_FAILED || pt_mode(p) != PT_FAULT)
				_exit(1);
			memset(p + (getpid() % 64) * PAGE, 'c', PAGE);
			/* As a spawner's child does before exec: reset SIGSEGV, while in
			 * the parent another thread was changing it at the fork. */
			if (signal(SIGSEGV, SIG_DFL) == SIG_ERR)
				_exit(1);
			_exit(munmap(p, AREA) == 0 ? 0 : 1);
		}
		if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			atomic_fetch_add(&forks_ok, 1);
		else
			atomic_fetch_add(&forks_bad, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[WORKERS], ts, tf;
	struct worker w[WORKERS];
	char page[PAGE];

	if (argc != 2)
		return 2;
	fd = pt_sparse(argv[1], "threads.dat", (size_t)(WORKERS + 1) * AREA, NULL, 0);
	REQUIRE(pthread_create(&ts, NULL, signals, NULL) == 0, "thread");
	REQUIRE(pthread_create(&tf, NULL, forker, NULL) == 0, "thread");
	for (int i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){.id = i};
		REQUIRE(pthread_create(&t[i], NULL, work, &w[i]) == 0, "thread");
	}
	for (int i = 0; i < WORKERS; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop, 1);
	pthread_join(ts, NULL);
	pthread_join(tf, NULL);
	for (int i = 0; i < WORKERS; i++) {
		CHECK(!w[i].failed, "worker %d failed", i);
		for (size_t pg = 0; pg < AREA / PAGE; pg++) {
			unsigned char want = pt_byte(pg, w[i].last_salt);

			REQUIRE(pread(fd, page, PAGE, (off_t)i * AREA + (off_t)(pg * PAGE)) == PAGE, "pread");
			if (page[1] != (char)want) {
				CHECK(0, "worker %d page %zu: %#x, want %#x", i, pg, (unsigned char)page[1],
				      want);
				break;
			}
		}
	}
	CHECK(range_allocated_flags(fd, 0, (size_t)WORKERS * AREA, NULL) == 1,
	      "not every written page is allocated");
	CHECK(forks_ok > 0 && forks_bad == 0, "forks: %ld ok, %ld failed", (long)forks_ok, (long)forks_bad);
	pt_note("%d workers x %d rounds of mmap/write/punch+rewrite/read/mprotect/munmap; %ld SIGSEGV "
		"changes; %ld forks",
		WORKERS, ITERS, (long)sig_changes, (long)forks_ok);
	return pt_done("pl_threads");
}
