/* SPDX-License-Identifier: MIT */
/* pl_early_lib.c -- a preloaded library whose constructor maps a file and sets a SIGSEGV handler,
 * possibly before the shim's own constructor has run */
#include "ptest.h"

#include <signal.h>

#define GRAIN (64 * 1024)
#define SIZE (16 * GRAIN)

static int mode = -1, before = -1;
static char *map;
static int map_fd = -1;

__attribute__((visibility("default"))) void pl_early_segv(int sig)
{
	(void)sig;
	_exit(5);
}

__attribute__((constructor)) static void early(void)
{
	const char *path = getenv("PL_EARLY_FILE");
	void *h;
	struct sigaction sa;

	/* The shim installs the library's SIGSEGV handler when it starts: still
	 * SIG_DFL here means this constructor runs before the shim's. */
	if (pt_kernel_handler(SIGSEGV, &h) == 0)
		before = h == NULL;
	if (path == NULL)
		return;
	map_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (map_fd < 0 || ftruncate(map_fd, SIZE) != 0)
		return;
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
	if (map == MAP_FAILED) {
		map = NULL;
		return;
	}
	for (int g = 0; g < 4; g++)
		memset(map + g * GRAIN, 'a' + g, GRAIN);
	mode = pt_mode(map);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pl_early_segv;
	sigaction(SIGSEGV, &sa, NULL);
}

__attribute__((visibility("default"))) void pl_early_report(int *m, int *b, char **p, int *fd)
{
	*m = mode;
	*b = before;
	*p = map;
	*fd = map_fd;
}
