/* SPDX-License-Identifier: MIT */
/* pl_early.c -- the start of a process under the shim: mappings made by constructors, a malloc that maps
 *
 *   pl_early DIR early   with libpl_early.so preloaded: its constructor's mapping and handler are kept
 *   pl_early DIR alloc   with libpl_alloc.so preloaded: everything works over an mmap()-based malloc
 */
#include "ptest.h"

#include <signal.h>

#define GRAIN (64 * 1024)
#define SIZE (16 * GRAIN)

static void early(void)
{
	void (*report)(int *, int *, char **, int *) =
		(void (*)(int *, int *, char **, int *))dlsym(RTLD_DEFAULT, "pl_early_report");
	void (*handler)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "pl_early_segv");
	int mode, before, fd;
	struct sigaction sa;
	char *map;

	REQUIRE(report != NULL && handler != NULL, "libpl_early.so is not preloaded");
	report(&mode, &before, &map, &fd);
	REQUIRE(map != NULL, "the early constructor could not map its file");
	printf("  early constructor ran %s the shim's\n", before ? "before" : "after");
	CHECK(mode == PT_FAULT, "the early constructor's mapping: mode %d", mode);
	for (int g = 0; g < 4; g++)
		CHECK(map[g * GRAIN] == 'a' + g && map[g * GRAIN + GRAIN - 1] == 'a' + g, "grain %d", g);
	CHECK(range_allocated_flags(fd, 0, 4 * GRAIN, NULL) == 1, "the early writes are not allocated");
	CHECK(sigaction(SIGSEGV, NULL, &sa) == 0 && sa.sa_handler == handler,
	      "the early constructor's SIGSEGV handler is not what the program reads back");
	memset(map + 5 * GRAIN, 'z', 100);
	CHECK(range_allocated_flags(fd, 5 * GRAIN, 100, NULL) == 1, "a write from main not allocated");
	pt_note("a mapping and a SIGSEGV handler made in a constructor are the shim's and the program's");
}

static void alloc(const char *dir)
{
	int fd = pt_sparse(dir, "alloc.dat", SIZE, NULL, 0);
	char *map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *heap = malloc(1 << 20);
	int pfd[2];

	REQUIRE(map != MAP_FAILED && heap != NULL, "mmap/malloc");
	CHECK(pt_mode(map) == PT_FAULT, "mode %d", pt_mode(map));
	memset(heap, 'h', 1 << 20);
	memset(map + GRAIN, 'm', GRAIN);
	REQUIRE(pipe(pfd) == 0 && write(pfd[1], heap, 4096) == 4096, "pipe");
	CHECK(read(pfd[0], map + 3 * GRAIN, 4096) == 4096, "read into a fresh page: %s", strerror(errno));
	CHECK(range_allocated_flags(fd, GRAIN, GRAIN, NULL) == 1 &&
		      range_allocated_flags(fd, 3 * GRAIN, 4096, NULL) == 1,
	      "not allocated");
	free(heap);
	pt_note("over an mmap()-based malloc: mapping taken, writes and read() allocated");
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[2], "early") == 0)
		early();
	else if (argc == 3 && strcmp(argv[2], "alloc") == 0)
		alloc(argv[1]);
	else
		return 2;
	return pt_done("pl_early");
}
