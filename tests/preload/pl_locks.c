/* SPDX-License-Identifier: MIT */
/* pl_locks.c -- the program's fcntl (POSIX) locks survive what the shim does with its own descriptors */
#include "ptest.h"

#include <sys/wait.h>

#define SIZE (1024 * 1024)
#define PAGE 4096

/* The lock another process sees on fd's file (F_UNLCK: none), asked through
 * the inherited descriptor from a child: its own descriptor table. */
static short lock_seen_by_other(int fd)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int pfd[2], st;
	pid_t pid;

	REQUIRE(pipe(pfd) == 0, "pipe");
	pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		if (fcntl(fd, F_GETLK, &fl) != 0)
			fl.l_type = -1;
		_exit(write(pfd[1], &fl, sizeof(fl)) == sizeof(fl) ? 0 : 1);
	}
	REQUIRE(read(pfd[0], &fl, sizeof(fl)) == (ssize_t)sizeof(fl), "read");
	waitpid(pid, &st, 0);
	close(pfd[0]);
	close(pfd[1]);
	return fl.l_type;
}

static int locked_map(const char *dir, const char *name, char **map)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd = pt_sparse(dir, name, SIZE, NULL, 0);

	REQUIRE(fcntl(fd, F_SETLK, &fl) == 0, "F_SETLK: %s", strerror(errno));
	*map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(*map != MAP_FAILED, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode(*map) == PT_FAULT, "the shim did not take the mapping (mode %d)", pt_mode(*map));
	(*map)[0] = 1;
	return fd;
}

int main(int argc, char **argv)
{
	char *map;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	/* MADV_REMOVE on a FAULT mapping: the shim punches the hole itself. */
	fd = locked_map(argv[1], "remove", &map);
	CHECK(madvise(map + 2 * PAGE, PAGE, MADV_REMOVE) == 0, "MADV_REMOVE: %s", strerror(errno));
	if (lock_seen_by_other(fd) == F_WRLCK)
		pt_note("MADV_REMOVE: lock kept");
	else
		CHECK(0, "after MADV_REMOVE the program's lock is gone");
	/* The last munmap of the file. */
	CHECK(munmap(map, SIZE) == 0, "munmap: %s", strerror(errno));
	if (lock_seen_by_other(fd) == F_WRLCK)
		pt_note("munmap: lock kept");
	else
		CHECK(0, "after munmap the program's lock is gone");
	close(fd);
	return pt_done("pl_locks");
}
