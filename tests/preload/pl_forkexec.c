/* SPDX-License-Identifier: MIT */
/* pl_forkexec.c -- fork and exec under the shim: the child keeps working mappings, exec leaks no descriptor
 *
 * pl_forkexec DIR: the parent writes grain 0 and forks; the child writes
 * grain 1, reads a pipe into grain 2 and execs itself (stage exec1), which
 * maps the file again, writes grain 3 and execs /bin/sh, which execs this
 * program once more (stage exec2): it writes grain 4 and checks everything.
 * Every exec'd stage checks that it holds no descriptor but 0, 1, 2 and the
 * one the test hands down on purpose (not close-on-exec): the library's own
 * descriptors (its file duplicates, the engine's eventfd and epoll) are all
 * close-on-exec.
 */
#include "ptest.h"

#include <dirent.h>
#include <limits.h>
#include <sys/wait.h>

#define GRAIN (64 * 1024)
#define SIZE (8 * GRAIN)

static char *map_file(const char *dir, int *fdp)
{
	char path[PATH_MAX];
	char *p;
	int fd;

	snprintf(path, sizeof(path), "%s/forkexec.dat", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0, "open %s: %s", path, strerror(errno));
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(p != MAP_FAILED, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode(p) == PT_FAULT, "pid %d: the shim did not take the mapping", (int)getpid());
	*fdp = fd;
	return p;
}

static void fill(char *p, int grain)
{
	for (size_t i = 0; i < GRAIN; i += 512)
		p[(size_t)grain * GRAIN + i] = (char)pt_byte(i, (unsigned)grain);
}

#define PIPED 4096 /* grain 2 holds what the child read from a pipe */

static int filled(const char *p, int grain)
{
	if (grain == 2) {
		for (size_t i = 0; i < PIPED; i++)
			if (p[2 * GRAIN + i] != (char)pt_byte(i, 99))
				return 0;
		return 1;
	}
	for (size_t i = 0; i < GRAIN; i += 512)
		if (p[(size_t)grain * GRAIN + i] != (char)pt_byte(i, (unsigned)grain))
			return 0;
	return 1;
}

/* Only 0, 1, 2 and the descriptor handed down may be open after exec. */
static void check_fds(const char *stage, int handed)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int others = 0, seen_handed = 0;

	REQUIRE(d != NULL, "opendir /proc/self/fd");
	while ((de = readdir(d)) != NULL) {
		int fd = atoi(de->d_name);
		char target[PATH_MAX] = "";

		if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
			continue;
		if (fd == handed) {
			seen_handed = 1;
			continue;
		}
		snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
		{
			char link[PATH_MAX] = "";
			ssize_t n = readlink(target, link, sizeof(link) - 1);

			if (n > 0)
				link[n] = '\0';
			fprintf(stderr, "%s: leaked fd %d -> %s\n", stage, fd, link);
		}
		others++;
	}
	closedir(d);
	CHECK(others == 0, "%s: %d descriptors leaked through exec", stage, others);
	CHECK(seen_handed, "%s: the descriptor handed down on purpose is missing", stage);
	pt_note("%s: after exec only 0, 1, 2 and the program's own descriptor %d", stage, handed);
}

/* With the library at work (a FAULT mapping, the engine thread), every
 * descriptor but the program's own is close-on-exec. */
static void check_cloexec(const char *stage, int handed)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0, bad = 0;

	REQUIRE(d != NULL, "opendir /proc/self/fd");
	while ((de = readdir(d)) != NULL) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd <= 2 || fd == handed || fd == dirfd(d))
			continue;
		n++;
		if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
			fprintf(stderr, "%s: fd %d is not close-on-exec\n", stage, fd);
			bad++;
		}
	}
	closedir(d);
	CHECK(bad == 0, "%s: %d descriptors would leak through exec", stage, bad);
	pt_note("%s: the %d descriptors open besides the program's are all close-on-exec", stage, n);
}

static int stage_exec2(const char *dir, int handed)
{
	int fd;
	char *p;

	check_fds("exec2", handed);
	p = map_file(dir, &fd);
	fill(p, 4);
	for (int g = 0; g <= 4; g++)
		CHECK(filled(p, g), "exec2: grain %d", g);
	for (int g = 0; g <= 4; g++)
		CHECK(range_allocated_flags(fd, (off_t)g * GRAIN, GRAIN, NULL) == 1,
		      "exec2: grain %d not allocated", g);
	pt_note("exec2 (pid %d, through /bin/sh): grains 0-4 present and allocated", (int)getpid());
	return pt_done("pl_forkexec exec2");
}

static int stage_exec1(const char *self, const char *dir, int handed)
{
	char fdarg[16];
	int fd;
	char *p;

	check_fds("exec1", handed);
	p = map_file(dir, &fd);
	fill(p, 3);
	check_cloexec("exec1", handed);
	pt_note("exec1 (pid %d): mapped again, wrote grain 3", (int)getpid());
	fflush(stdout);
	snprintf(fdarg, sizeof(fdarg), "%d", handed);
	execl("/bin/sh", "sh", "-c", "exec \"$0\" exec2 \"$1\" \"$2\"", self, dir, fdarg, (char *)NULL);
	fprintf(stderr, "exec /bin/sh: %s\n", strerror(errno));
	return 1;
}

static void child(const char *self, const char *dir, char *p, int handed)
{
	char buf[PIPED], fdarg[16];
	int pfd[2];

	REQUIRE(pt_mode(p) == PT_FAULT, "child: mapping lost its mode");
	fill(p, 1);
	REQUIRE(pipe2(pfd, O_CLOEXEC) == 0, "pipe2");
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)pt_byte(i, 99);
	REQUIRE(write(pfd[1], buf, sizeof(buf)) == (ssize_t)sizeof(buf), "write pipe");
	CHECK(read(pfd[0], p + 2 * GRAIN, sizeof(buf)) == (ssize_t)sizeof(buf),
	      "child: read into grain 2: %s", strerror(errno));
	CHECK(memcmp(p + 2 * GRAIN, buf, sizeof(buf)) == 0, "child: pipe data");
	pt_note("child (pid %d): wrote grain 1, read a pipe into grain 2", (int)getpid());
	if (pt_failed)
		_exit(1);
	snprintf(fdarg, sizeof(fdarg), "%d", handed);
	execl(self, self, "exec1", dir, fdarg, (char *)NULL);
	fprintf(stderr, "exec self: %s\n", strerror(errno));
	_exit(1);
}

int main(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX];
	int fd, handed, st;
	ssize_t n;
	pid_t pid;
	char *p;

	if (argc == 4 && strcmp(argv[1], "exec1") == 0) {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		REQUIRE(n > 0, "readlink /proc/self/exe");
		self[n] = '\0';
		return stage_exec1(self, argv[2], atoi(argv[3]));
	}
	if (argc == 4 && strcmp(argv[1], "exec2") == 0)
		return stage_exec2(argv[2], atoi(argv[3]));
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	/* Descriptors this process inherited (a test runner's log) are not the
	 * chain's to account for. */
	close_range(3, ~0U, 0);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	REQUIRE(n > 0, "readlink /proc/self/exe");
	self[n] = '\0';
	close(pt_sparse(argv[1], "forkexec.dat", SIZE, NULL, 0));
	/* A descriptor the program means its children to have. */
	snprintf(path, sizeof(path), "%s/handed", argv[1]);
	handed = open(path, O_RDWR | O_CREAT, 0644);
	REQUIRE(handed > 2, "open handed");
	p = map_file(argv[1], &fd);
	fill(p, 0); /* the first grain of the mapping: the engine thread starts running ahead */
	fflush(stdout);
	pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0)
		child(self, argv[1], p, handed);
	REQUIRE(waitpid(pid, &st, 0) == pid, "waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the fork/exec chain failed: status %#x", st);
	for (int g = 0; g <= 4; g++)
		CHECK(filled(p, g), "parent: grain %d as the chain wrote it", g);
	pt_note("parent: the chain's writes (grains 1-4) visible in its mapping");
	fill(p, 5);
	CHECK(range_allocated_flags(fd, 5 * GRAIN, GRAIN, NULL) == 1, "parent: still working after fork");
	return pt_done("pl_forkexec");
}
