/* SPDX-License-Identifier: MIT */
/* pl_readcost.c -- what read(2) costs with the shim in the way: ns per 64-byte read from /dev/zero
 *
 * pl_readcost DIR [N [thread]]: the buffer on the heap and on the stack (no mapping of
 * the shim), with a FAULT mapping in the process or not, in an anonymous
 * mapping lying between two FAULT mappings (the cheap check says "maybe",
 * the table says no), and inside a FAULT mapping already written.  Run it
 * with and without the shim: without, the FAULT cases are plain mappings.
 * "thread" starts an idle thread first, as the shim's background engine
 * does at the first FAULT mapping: libc's read(2) itself costs more in a
 * multi-threaded process (cancellation bookkeeping around the system call).
 */
#include "ptest.h"

#include <pthread.h>
#include <time.h>

#define LEN 64
#define MAP (2 * 1024 * 1024)

static int zero;

static double ns_per_read(char *buf, long n)
{
	struct timespec a, b;

	for (long i = 0; i < n / 10; i++) /* warm up */
		if (read(zero, buf, LEN) != LEN)
			exit(1);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		if (read(zero, buf, LEN) != LEN)
			exit(1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n;
}

static void *idle(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 1000000;
	char stack[LEN], *heap = malloc(LEN), *m1, *m2, *between, *inside;
	int fd;

	if (argc < 2)
		return 2;
	if (argc > 3 && strcmp(argv[3], "thread") == 0) {
		pthread_t t;

		REQUIRE(pthread_create(&t, NULL, idle, NULL) == 0, "thread");
	}
	zero = open("/dev/zero", O_RDONLY);
	REQUIRE(zero >= 0 && heap != NULL, "setup");
	printf("  %-44s %6.1f ns\n", "heap buffer, no file mapping", ns_per_read(heap, n));
	printf("  %-44s %6.1f ns\n", "stack buffer, no file mapping", ns_per_read(stack, n));

	/* Two shared file mappings with an anonymous one wedged between them. */
	fd = pt_sparse(argv[1], "readcost", 3 * MAP, NULL, 0);
	m1 = mmap(NULL, 3 * MAP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(m1 != MAP_FAILED, "mmap");
	m2 = m1 + 2 * MAP;
	between = m1 + MAP;
	REQUIRE(mmap(between, MAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
			between,
		"anonymous MAP_FIXED");
	inside = m1 + 4096;
	inside[0] = 1; /* written once: durable and writable */
	(void)m2;
	printf("  %-44s %6.1f ns\n", "heap buffer, file mappings present", ns_per_read(heap, n));
	printf("  %-44s %6.1f ns\n", "anonymous buffer between two file mappings", ns_per_read(between, n));
	printf("  %-44s %6.1f ns\n", "inside a file mapping, page already written", ns_per_read(inside, n));
	printf("  (mode of the file mapping: %d; -1 = no shim, 2 = FAULT)\n", pt_mode(m1));
	return 0;
}
