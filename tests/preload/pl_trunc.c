/* SPDX-License-Identifier: MIT */
/* pl_trunc.c -- open(O_TRUNC), creat, fopen("w") empty a mapped file: the next write there is made durable again */
#include "ptest.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#define GRAIN (64 * 1024)
#define PAGE 4096
#define SIZE (2 * 1024 * 1024)

/* The _FORTIFY_SOURCE entry points, which glibc's headers call in place of
 * open() when the flags are not a constant and no mode is given. */
extern int __open_2(const char *path, int flags);
extern int __open64_2(const char *path, int flags);
extern int __openat_2(int dirfd, const char *path, int flags);
extern int __openat64_2(int dirfd, const char *path, int flags);

static char *map;
static int mfd;
static char path[PATH_MAX], name[NAME_MAX + 1];
static int dirfd_;

static void write_page(off_t off, unsigned salt)
{
	for (size_t i = 0; i < PAGE; i++)
		map[off + (off_t)i] = (char)pt_byte(i, salt);
}

static int page_is(off_t off, unsigned salt)
{
	for (size_t i = 0; i < PAGE; i++)
		if (map[off + (off_t)i] != (char)pt_byte(i, salt))
			return 0;
	return 1;
}

/* Close what an opener returned: a descriptor, or -1. */
static int done_fd(int fd)
{
	return fd >= 0 ? close(fd) : -1;
}

static int done_file(FILE *f)
{
	return f != NULL ? fclose(f) : -1;
}

static int by_open(void)
{
	return done_fd(open(path, O_RDWR | O_TRUNC | O_CLOEXEC));
}

static int by_open64(void)
{
	return done_fd(open64(path, O_WRONLY | O_TRUNC | O_CLOEXEC));
}

static int by_openat(void)
{
	return done_fd(openat(dirfd_, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
}

static int by_openat64(void)
{
	return done_fd(openat64(AT_FDCWD, path, O_RDWR | O_TRUNC | O_CLOEXEC));
}

static int by_creat(void)
{
	return done_fd(creat(path, 0644));
}

static int by_creat64(void)
{
	return done_fd(creat64(path, 0644));
}

static int by_open_2(void)
{
	return done_fd(__open_2(path, O_RDWR | O_TRUNC | O_CLOEXEC));
}

static int by_open64_2(void)
{
	return done_fd(__open64_2(path, O_RDWR | O_TRUNC | O_CLOEXEC));
}

static int by_openat_2(void)
{
	return done_fd(__openat_2(dirfd_, name, O_RDWR | O_TRUNC | O_CLOEXEC));
}

static int by_openat64_2(void)
{
	return done_fd(__openat64_2(dirfd_, name, O_RDWR | O_TRUNC | O_CLOEXEC));
}

static int by_fopen(void)
{
	return done_file(fopen(path, "w"));
}

static int by_fopen64(void)
{
	return done_file(fopen64(path, "w+e"));
}

static int by_freopen(void)
{
	FILE *f = fopen(path, "r");

	return f != NULL ? done_file(freopen(path, "w", f)) : -1;
}

/* Write a page, empty the file with op, extend it back (a grow frees
 * nothing: the wrappers of ftruncate do not act on it), write the page
 * again: the page must be read-only after op, and the second write's block
 * allocated and written with no flush in between. */
static void cycle(const char *what, off_t off, int (*op)(void))
{
	int failed = pt_failed;

	pt_failed = 0;
	write_page(off, 1);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) == 1, "%s: first write not allocated", what);
	CHECK(op() == 0, "%s: %s", what, strerror(errno));
	CHECK(ftruncate(mfd, SIZE) == 0, "%s: extend back: %s", what, strerror(errno));
	CHECK(!pt_writable(map + off), "%s: page still writable after the file was emptied", what);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) != 1, "%s: block still allocated+written", what);
	write_page(off, 2);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) == 1,
	      "%s: write after the truncation not allocated before a flush", what);
	CHECK(page_is(off, 2), "%s: data", what);
	if (!pt_failed)
		pt_note("%s: page re-protected, rewritten block allocated before any flush", what);
	pt_failed |= failed;
}

/* Opened without O_TRUNC (and O_TRUNC on another file): nothing changes,
 * the written page stays writable (no needless fault). */
static void untouched(off_t off)
{
	char other[PATH_MAX + 8];

	write_page(off, 1);
	CHECK(done_fd(open(path, O_RDWR | O_CLOEXEC)) == 0, "open: %s", strerror(errno));
	snprintf(other, sizeof(other), "%s.other", path);
	CHECK(done_fd(open(other, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == 0, "open other: %s",
	      strerror(errno));
	CHECK(pt_writable(map + off), "open without O_TRUNC (or of another file) re-protected the page");
	pt_note("open without O_TRUNC, O_TRUNC of another file: page left writable");
}

/* The raw system call, which no wrapper sees: the page stays writable and
 * the rewrite is a delayed allocation, which is what the checks above would
 * see if the shim did nothing. */
static void control(off_t off)
{
	write_page(off, 1);
	CHECK(done_fd((int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_TRUNC | O_CLOEXEC)) == 0,
	      "raw openat: %s", strerror(errno));
	CHECK(ftruncate(mfd, SIZE) == 0, "extend back");
	CHECK(pt_writable(map + off), "control: raw O_TRUNC re-protected?");
	write_page(off, 2);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) == 0,
	      "control: rewrite allocated without the wrapper?");
	pt_note("control (raw openat O_TRUNC, no wrapper): page stayed writable, rewrite not allocated");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *what;
		int (*op)(void);
	} ops[] = {
		{"open(O_TRUNC)", by_open},
		{"open64(O_TRUNC)", by_open64},
		{"openat(O_CREAT|O_TRUNC)", by_openat},
		{"openat64(AT_FDCWD, O_TRUNC)", by_openat64},
		{"creat", by_creat},
		{"creat64", by_creat64},
		{"__open_2(O_TRUNC)", by_open_2},
		{"__open64_2(O_TRUNC)", by_open64_2},
		{"__openat_2(O_TRUNC)", by_openat_2},
		{"__openat64_2(O_TRUNC)", by_openat64_2},
		{"fopen(\"w\")", by_fopen},
		{"fopen64(\"w+e\")", by_fopen64},
		{"freopen(\"w\")", by_freopen},
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	mfd = pt_sparse(argv[1], "trunc", SIZE, path, sizeof(path));
	snprintf(name, sizeof(name), "trunc");
	dirfd_ = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(dirfd_ >= 0, "open %s: %s", argv[1], strerror(errno));
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(map != MAP_FAILED, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode(map) == PT_FAULT, "the shim did not take the mapping (mode %d)", pt_mode(map));
	control(GRAIN);
	untouched(3 * GRAIN);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		cycle(ops[i].what, (off_t)(5 + 2 * i) * GRAIN + PAGE, ops[i].op);
	return pt_done("pl_trunc");
}
