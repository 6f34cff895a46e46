/* SPDX-License-Identifier: MIT */
/* pl_blocks.c -- blocks freed under a written FAULT page: the next write there is allocated before any flush */
#include "ptest.h"

#include <limits.h>
#include <sys/syscall.h>

#define GRAIN (64 * 1024)
#define PAGE 4096
#define SIZE (2 * 1024 * 1024)

static char *map;
static int mfd;
static char path[PATH_MAX];

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

/* Write the page, change its blocks with op, write it again: the second
 * write must find the page read-only (so it faults) and leave the block
 * allocated and written at once, with no msync in between. */
static void cycle(const char *what, off_t off, int (*op)(off_t))
{
	write_page(off, 1);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) == 1, "%s: first write not allocated", what);
	CHECK(op(off) == 0, "%s: %s", what, strerror(errno));
	CHECK(!pt_writable(map + off), "%s: page still writable after its blocks changed", what);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) != 1,
	      "%s: block still allocated+written after the change", what);
	write_page(off, 2);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) == 1,
	      "%s: write after the change not allocated before a flush", what);
	CHECK(page_is(off, 2), "%s: data", what);
	pt_note("%s: page re-protected, rewritten block allocated before any flush", what);
}

static int punch(off_t off)
{
	return fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, PAGE);
}

static int zero_range(off_t off)
{
	return fallocate(mfd, FALLOC_FL_ZERO_RANGE, off, PAGE);
}

static int madv_remove(off_t off)
{
	return madvise(map + off, PAGE, MADV_REMOVE);
}

static int insert(off_t off)
{
	return fallocate(mfd, FALLOC_FL_INSERT_RANGE, off, PAGE);
}

/* Truncating frees everything past off; extending again leaves a hole. */
static int cut_ftruncate(off_t off)
{
	return ftruncate(mfd, off) == 0 ? ftruncate(mfd, SIZE) : -1;
}

static int cut_truncate(off_t off)
{
	return truncate(path, off) == 0 ? truncate(path, SIZE) : -1;
}

/* COLLAPSE_RANGE pulls the next page down onto off: its data is there
 * (read through the mapping) and the page is read-only until written. */
static void collapse(off_t off)
{
	write_page(off, 1);
	write_page(off + PAGE, 3);
	CHECK(fallocate(mfd, FALLOC_FL_COLLAPSE_RANGE, off, PAGE) == 0, "collapse: %s", strerror(errno));
	CHECK(!pt_writable(map + off), "collapse: page still writable");
	CHECK(page_is(off, 3), "collapse: the next page's data did not move down");
	write_page(off, 2);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) == 1,
	      "collapse: rewrite not allocated before a flush");
	CHECK(ftruncate(mfd, SIZE) == 0, "re-extend");
	pt_note("COLLAPSE_RANGE: data moved, page re-protected, rewrite allocated before any flush");
}

/* MADV_REMOVE on a page never written: the kernel refuses it on a read-only
 * VMA (EACCES); under the shim it works as on a plain mapping. */
static void remove_unwritten(off_t off)
{
	CHECK(madvise(map + off, PAGE, MADV_REMOVE) == 0, "MADV_REMOVE on an unwritten page: %s",
	      strerror(errno));
	write_page(off, 4);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) == 1, "write after MADV_REMOVE not allocated");
	pt_note("MADV_REMOVE on a page not yet written: ok");
}

/* Without the shim's wrapper (the raw system call) the page stays writable
 * and the rewrite is a delayed allocation: what the check above would see if
 * the shim did nothing. */
static void control(off_t off)
{
	write_page(off, 1);
	CHECK(syscall(SYS_fallocate, mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)PAGE) == 0,
	      "raw punch");
	CHECK(pt_writable(map + off), "control: raw punch re-protected?");
	write_page(off, 2);
	CHECK(range_allocated_flags(mfd, off, PAGE, NULL) == 0,
	      "control: rewrite allocated without the wrapper?");
	pt_note("control (raw fallocate, no wrapper): page stayed writable, rewrite not allocated");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	mfd = pt_sparse(argv[1], "blocks", SIZE, path, sizeof(path));
	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(map != MAP_FAILED, "mmap: %s", strerror(errno));
	REQUIRE(pt_mode(map) == PT_FAULT, "the shim did not take the mapping (mode %d)", pt_mode(map));
	cycle("PUNCH_HOLE", 1 * GRAIN + PAGE, punch);
	cycle("ZERO_RANGE", 3 * GRAIN, zero_range);
	cycle("MADV_REMOVE", 5 * GRAIN + 2 * PAGE, madv_remove);
	remove_unwritten(7 * GRAIN);
	control(9 * GRAIN);
	cycle("INSERT_RANGE", 11 * GRAIN, insert);
	CHECK(ftruncate(mfd, SIZE) == 0, "back to size");
	collapse(13 * GRAIN);
	cycle("truncate+extend", 20 * GRAIN, cut_truncate);
	cycle("ftruncate+extend", 15 * GRAIN, cut_ftruncate);
	return pt_done("pl_blocks");
}
