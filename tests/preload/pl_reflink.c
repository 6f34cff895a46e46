/* SPDX-License-Identifier: MIT */
/* pl_reflink.c -- shared extents (xfs reflink) under written FAULT pages: re-protected, rewritten unshared
 *
 * After a clone, a dedupe or a copy_file_range that the filesystem does by
 * cloning, a write to the shared block is copy-on-write: a new allocation.
 * Under the shim the page must be read-only again, and the rewrite must
 * leave the block allocated and no longer shared before any flush.
 */
#include "ptest.h"

#include <limits.h>
#include <sys/syscall.h>

#define GRAIN (64 * 1024)
#define PAGE 4096
#define SIZE (16 * GRAIN)

static const char *dir;

struct mapped {
	int fd;
	char *p;
};

static struct mapped map_new(const char *name)
{
	struct mapped m;

	m.fd = pt_sparse(dir, name, SIZE, NULL, 0);
	m.p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
	REQUIRE(m.p != MAP_FAILED && pt_mode(m.p) == PT_FAULT, "mmap %s", name);
	return m;
}

static int shared_now(int fd, off_t off)
{
	uint32_t flags = 0;

	range_allocated_flags(fd, off, PAGE, &flags);
	return (flags & FIEMAP_EXTENT_SHARED) != 0;
}

/* A plain file of SIZE bytes of salt, written and synced (its own blocks). */
static int source(const char *name, unsigned salt)
{
	char buf[GRAIN];
	int fd = pt_sparse(dir, name, SIZE, NULL, 0);

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)pt_byte(i, salt);
	for (off_t off = 0; off < SIZE; off += GRAIN)
		REQUIRE(pwrite(fd, buf, GRAIN, off) == GRAIN, "pwrite");
	REQUIRE(fsync(fd) == 0, "fsync");
	return fd;
}

/* The page at off of m was written before its extent became shared: it must
 * be read-only now, and a write must leave it unshared and allocated at once. */
static void check_rewrite(const char *what, struct mapped *m, off_t off)
{
	CHECK(shared_now(m->fd, off), "%s: extent not shared after the call (test setup)", what);
	CHECK(!pt_writable(m->p + off), "%s: page still writable over a shared extent", what);
	m->p[off + 5] = 'w';
	CHECK(!shared_now(m->fd, off) && range_allocated_flags(m->fd, off, PAGE, NULL) == 1,
	      "%s: rewrite left the block shared or unallocated before a flush", what);
	pt_note("%s: re-protected; rewrite allocated its own block before any flush", what);
}

int main(int argc, char **argv)
{
	struct file_clone_range cr;
	struct mapped a, b, c, e;
	int src, fd2;
	off64_t in_off, out_off;

	if (argc != 2)
		return 2;
	dir = argv[1];
	src = source("src", 7);

	/* FICLONERANGE into a written FAULT page (destination side). */
	a = map_new("a");
	a.p[GRAIN] = 'x';
	cr = (struct file_clone_range){
		.src_fd = src, .src_offset = 0, .src_length = GRAIN, .dest_offset = GRAIN};
	REQUIRE(ioctl(a.fd, FICLONERANGE, &cr) == 0, "FICLONERANGE: %s", strerror(errno));
	check_rewrite("FICLONERANGE (destination)", &a, GRAIN);

	/* The source side: a FAULT mapping of the file cloned from. */
	b = map_new("b");
	b.p[2 * GRAIN] = 'y';
	fd2 = pt_sparse(dir, "b-clone", SIZE, NULL, 0);
	cr = (struct file_clone_range){
		.src_fd = b.fd, .src_offset = 2 * GRAIN, .src_length = GRAIN, .dest_offset = 0};
	REQUIRE(ioctl(fd2, FICLONERANGE, &cr) == 0, "FICLONERANGE: %s", strerror(errno));
	check_rewrite("FICLONERANGE (source)", &b, 2 * GRAIN);
	close(fd2);

	/* FICLONE: the whole file. */
	c = map_new("c");
	c.p[3 * GRAIN] = 'z';
	REQUIRE(ioctl(c.fd, FICLONE, src) == 0, "FICLONE: %s", strerror(errno));
	CHECK(c.p[3 * GRAIN] == (char)pt_byte(0, 7), "FICLONE: the mapping does not show the clone's data");
	check_rewrite("FICLONE", &c, 3 * GRAIN);

	/* copy_file_range, which xfs does as a clone. */
	e = map_new("e");
	e.p[4 * GRAIN] = 'v';
	in_off = 0;
	out_off = 4 * GRAIN;
	REQUIRE(copy_file_range(src, &in_off, e.fd, &out_off, GRAIN, 0) == GRAIN, "copy_file_range: %s",
		strerror(errno));
	check_rewrite("copy_file_range", &e, 4 * GRAIN);

	/* FIDEDUPERANGE: the page holds the same bytes as the source; the
	 * source's extent replaces its block. */
	{
		struct mapped d = map_new("d");
		struct file_dedupe_range *r = calloc(1, sizeof(*r) + sizeof(r->info[0]));

		REQUIRE(r != NULL, "calloc");
		for (size_t i = 0; i < GRAIN; i++)
			d.p[6 * GRAIN + i] = (char)pt_byte(i, 7);
		REQUIRE(msync(d.p + 6 * GRAIN, GRAIN, MS_SYNC) == 0, "msync");
		r->src_offset = 0;
		r->src_length = GRAIN;
		r->dest_count = 1;
		r->info[0].dest_fd = d.fd;
		r->info[0].dest_offset = 6 * GRAIN;
		REQUIRE(ioctl(src, FIDEDUPERANGE, r) == 0 && r->info[0].status == FILE_DEDUPE_RANGE_SAME,
			"FIDEDUPERANGE: %s, status %d", strerror(errno), r->info[0].status);
		check_rewrite("FIDEDUPERANGE", &d, 6 * GRAIN);
		free(r);
	}

	/* Control: the raw ioctl, no wrapper: the page stays writable and the
	 * write goes to a copy-on-write reservation, the extent still shared. */
	a.p[5 * GRAIN] = 'x';
	cr = (struct file_clone_range){
		.src_fd = src, .src_offset = 0, .src_length = GRAIN, .dest_offset = 5 * GRAIN};
	REQUIRE(syscall(SYS_ioctl, a.fd, FICLONERANGE, &cr) == 0, "raw FICLONERANGE");
	CHECK(pt_writable(a.p + 5 * GRAIN), "control: raw clone re-protected?");
	a.p[5 * GRAIN + 5] = 'w';
	CHECK(shared_now(a.fd, 5 * GRAIN), "control: rewrite unshared the block without the wrapper?");
	pt_note("control (raw ioctl, no wrapper): page stayed writable, rewrite left the extent shared");
	return pt_done("pl_reflink");
}
