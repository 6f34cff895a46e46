/* SPDX-License-Identifier: MIT */
/* memcheck.c -- one process through every library path, for Valgrind memcheck
 *
 * Criterion's runner (nanomsg, its forked workers) is noisy under Valgrind,
 * so this driver runs the library's paths in plain C: map, faults in several
 * grains and threads, mprotect, mremap, partial munmap, persist, prepare,
 * prepare_async, file_changed, fork.  Every step checks its result; the exit
 * status says whether all held.  Valgrind's --error-exitcode adds its own.
 */
#define _GNU_SOURCE
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define LEN ((size_t)256 * PG)

static int failures;

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond)) {                                                                 \
			fprintf(stderr, "memcheck.c:%d: check failed: %s\n", __LINE__, #cond); \
			failures++;                                                            \
		}                                                                              \
	} while (0)

struct writer {
	unsigned char *p;
	size_t first; /* 0 or 1: the two threads write disjoint pages of shared grains */
};

static void *writer(void *arg)
{
	struct writer *w = arg;

	for (size_t i = w->first; i < LEN / PG; i += 2)
		w->p[i * PG + 1] = (unsigned char)i;
	return NULL;
}

int main(void)
{
	char path[64];
	unsigned char *p, *q, b;
	pthread_t t[2];
	int fd, st;
	pid_t pid;

	snprintf(path, sizeof(path), "/dev/shm/syncmap-memcheck-%d", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)LEN) == 0);
	unlink(path); /* nothing left behind, however the run ends */
	p = syncmap_mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED && syncmap_mode(p) == SYNCMAP_MODE_FAULT);

	struct writer w[2] = {{p, 0}, {p, 1}};

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, writer, &w[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(pread(fd, &b, 1, 9 * PG + 1) == 1 && b == 9);

	CHECK(syncmap_persist(p, LEN) == 0);
	CHECK(syncmap_prepare(p + 100 * PG, 10 * PG) == 0);
	CHECK(syncmap_prepare_async(p + 200 * PG, 10 * PG) == 0);
	CHECK(syncmap_mprotect(p, 64 * PG, PROT_READ) == 0);
	CHECK(syncmap_mprotect(p, 64 * PG, PROT_READ | PROT_WRITE) == 0);
	p[1] = 7;
	CHECK(syncmap_file_changed(fd, 0, PG) == 0);
	p[2] = 8;
	CHECK(syncmap_munmap(p + 128 * PG, 16 * PG) == 0);
	CHECK(syncmap_mode(p + 130 * PG) == SYNCMAP_MODE_NONE);

	q = syncmap_mremap(p, 64 * PG, 96 * PG, MREMAP_MAYMOVE);
	CHECK(q != MAP_FAILED);
	if (q != MAP_FAILED) {
		q[90 * PG] = 9;
		CHECK(pread(fd, &b, 1, 90 * PG) == 1 && b == 9);
	}

	pid = fork();
	if (pid == 0) {
		q[70 * PG] = 10;
		_exit(syncmap_persist(q, PG) == 0 ? 0 : 1);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "child status %#x\n", st);
	CHECK(pread(fd, &b, 1, 70 * PG) == 1 && b == 10);

	errno = 0;
	CHECK(syncmap_mmap(NULL, 0, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED &&
	      errno == EINVAL);
	CHECK(syncmap_munmap(q, 96 * PG) == 0);
	CHECK(syncmap_munmap(p + 64 * PG, LEN - 64 * PG) == 0);
	close(fd);

	struct syncmap_stats s;

	syncmap_stats_get(&s);
	CHECK(s.faults > 0 && s.errors == 0);
	printf("memcheck driver: %s (faults %llu, syncs %llu)\n", failures ? "FAILED" : "ok",
	       (unsigned long long)s.faults, (unsigned long long)s.syncs);
	return failures ? 1 : 0;
}
