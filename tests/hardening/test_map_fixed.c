/* SPDX-License-Identifier: MIT */
/* test_map_fixed.c -- MAP_FIXED over a live FAULT mapping must replace it as mmap(2) does: at once */
#include "helpers.h"
#include "region.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096

static struct loopfs fs;

static void cleanup(void)
{
	loopfs_done(&fs);
}

TestSuite(map_fixed, .fini = cleanup);

/* Fill every free gap of at least min bytes above p (below the highest
 * mapping that is not the stack) with PROT_NONE: the kernel's top-down
 * search then finds the highest gap that fits at p or below. */
static void fill_gaps_above(uintptr_t p, size_t min)
{
	FILE *f = fopen("/proc/self/maps", "re");
	uintptr_t prev_end = 0, gaps[256][2];
	size_t n = 0;
	char line[512];

	cr_assert(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL && n < 256) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) != 2 || strstr(line, "[stack]") ||
		    strstr(line, "[vsyscall]"))
			continue;
		if (prev_end > p && s > prev_end && s - prev_end >= min) {
			gaps[n][0] = prev_end;
			gaps[n++][1] = s;
		}
		prev_end = e;
	}
	fclose(f);
	for (size_t i = 0; i < n; i++)
		cr_assert_neq(mmap((void *)gaps[i][0], gaps[i][1] - gaps[i][0], PROT_NONE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0),
			      MAP_FAILED);
}

/* ext4 (not DAX) refuses MAP_SYNC in its ->mmap hook, after the kernel has
 * already cleared the MAP_FIXED target: the library's MAP_SYNC probe leaves a
 * hole there, its alias mapping can land in that hole, and the user's
 * MAP_FIXED mapping then replaces the alias.  Every fault of the new region
 * then fails (its populate hits the read-only user mapping): SIGBUS. */
Test(map_fixed, replacing_a_fault_mapping_keeps_a_working_alias)
{
	const size_t len = 64 * PG;
	struct sm_region *r;
	unsigned char *p, *q, b;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "fixed.dat", len, NULL, 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	fill_gaps_above((uintptr_t)p, 16 * PG);
	q = syncmap_mmap(p + 16 * PG, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 16 * PG);
	cr_assert_eq(q, p + 16 * PG);
	cr_assert_eq(sm_region_get((uintptr_t)q, &r), SM_FOUND);
	cr_expect_neq((uintptr_t)r->alias, r->start, "the region's alias is the user's own mapping");
	sm_region_put(r);
	q[5] = 1; /* SIGBUS (EIO from the failed populate) when the alias is gone */
	cr_assert_eq(pread(fd, &b, 1, 16 * PG + 5), 1);
	cr_expect_eq(b, 1);
	syncmap_munmap(p, len);
	close(fd);
}

/* mmap(2) with MAP_FIXED replaces a mapping atomically: a thread reading it
 * meanwhile never finds it unmapped.  The control does it with mmap(2). */
static unsigned char *volatile watched;
static atomic_int stop;

static void *reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop))
		(void)*(volatile unsigned char *)watched;
	return NULL;
}

/* A write faults each time the grain is fresh in the new mapping: the fault
 * must find the new region (or wait for it), never nothing. */
static void *writer(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop))
		*(volatile unsigned char *)watched = 1;
	return NULL;
}

static void replace_while_used(int use_syncmap, void *(*user)(void *))
{
	const size_t len = 64 * PG;
	unsigned char *p;
	pthread_t t;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, "commit=60");
	fd = make_sparse(fs.dir, "race.dat", len, NULL, 0);
	p = use_syncmap ? syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
			: mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	watched = p + 20 * PG;
	pthread_create(&t, NULL, user, NULL);
	for (int i = 0; i < 2000; i++) {
		void *q = use_syncmap ? syncmap_mmap(p + 16 * PG, 16 * PG, PROT_READ | PROT_WRITE,
						     MAP_SHARED | MAP_FIXED, fd, 16 * PG)
				      : mmap(p + 16 * PG, 16 * PG, PROT_READ | PROT_WRITE,
					     MAP_SHARED | MAP_FIXED, fd, 16 * PG);

		cr_assert_eq(q, p + 16 * PG);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	close(fd);
}

Test(map_fixed, control_mmap_replaces_atomically)
{
	replace_while_used(0, reader);
}

Test(map_fixed, syncmap_replaces_atomically)
{
	replace_while_used(1, reader);
}

Test(map_fixed, control_mmap_replaces_atomically_under_writes)
{
	replace_while_used(0, writer);
}

/* Between committing the cut of the old region and inserting the new one
 * (sm_adopt_written's fdatasync runs in between), the range is in no region:
 * a write fault there is passed on as not the library's, and kills. */
Test(map_fixed, syncmap_replaces_atomically_under_writes)
{
	replace_while_used(1, writer);
}

/* Nothing the library keeps (the region record, its grain map, the alias of
 * the file) may lie in [a, a + len): the user's mapping replaces whatever
 * is there. */
static void expect_outside(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, e = a + len;
	struct sm_region *r;

#define OUTSIDE(x, n, what)                                                                                 \
	cr_expect((uintptr_t)(x) + (n) <= a || (uintptr_t)(x) >= e, "%s at %p lies in the target [%p, %p)", \
		  what, (void *)(x), addr, (void *)e)
	cr_assert_eq(sm_region_get(a, &r), SM_FOUND);
	OUTSIDE(r, sizeof(*r), "the region record");
	OUTSIDE(r->alias, r->end - r->start, "the alias");
	OUTSIDE(r->bits, sizeof(*r->bits), "the grain map record");
	OUTSIDE(r->bits->w, r->bits->bytes, "the grain map");
	OUTSIDE(r->file, sizeof(*r->file), "the file record");
#undef OUTSIDE
	sm_region_put(r);
}

/* A free range at the top of the address space's free area, as munmap
 * leaves it, with every gap above filled: the kernel's top-down search puts
 * the next mmap(NULL) of up to len bytes there. */
static char *free_range(size_t len)
{
	char *a = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(a, MAP_FAILED);
	fill_gaps_above((uintptr_t)a + len, PG);
	cr_assert_eq(munmap(a, len), 0);
	return a;
}

static void expect_written(int fd, unsigned char *p, off_t off, unsigned char v)
{
	unsigned char b;

	p[0] = v; /* SIGBUS, or the library faulting on its own memory, when it was replaced */
	cr_assert_eq(pread(fd, &b, 1, off), 1);
	cr_expect_eq(b, v);
	cr_expect_eq(range_allocated(fd, off, PG), 1, "the written page is allocated and written");
}

/* MAP_FIXED into a range the program unmapped: the library's own mmap(NULL)
 * calls, made before the user's mapping exists, land there first (the alias
 * right at the target, seen on the host) and the user's MAP_FIXED replaced
 * them.  A page of the program's own in the middle is replaced, as mmap(2)
 * replaces it. */
Test(map_fixed, into_a_free_range_keeps_the_librarys_memory_out)
{
	const size_t len = 64 * PG;
	unsigned char *a, *q;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "free.dat", len, NULL, 0);
	a = (unsigned char *)free_range(len);
	cr_assert_eq(
		mmap(a + 40 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
		a + 40 * PG);
	a[40 * PG] = 'X';
	q = syncmap_mmap(a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	cr_assert_eq(q, a, "syncmap_mmap: %s", strerror(errno));
	FAULT_OR_SKIP(q);
	expect_outside(a, len);
	cr_expect_eq(q[40 * PG], 0, "the program's page was replaced by the file");
	expect_written(fd, q + len - PG, (off_t)(len - PG), 1);
	expect_written(fd, q, 0, 2);
	syncmap_munmap(q, len);
	close(fd);
}

/* The same when the move of mremap(MREMAP_FIXED) targets a free range. */
Test(map_fixed, remap_into_a_free_range_keeps_the_librarys_memory_out)
{
	const size_t len = 64 * PG;
	unsigned char *p, *a, *q;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "remap.dat", len, NULL, 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	a = (unsigned char *)free_range(len);
	q = syncmap_mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, a);
	cr_assert_eq(q, a, "syncmap_mremap: %s", strerror(errno));
	expect_outside(a, len);
	expect_written(fd, q + len - PG, (off_t)(len - PG), 1);
	expect_written(fd, q, 0, 2);
	syncmap_munmap(q, len);
	close(fd);
}

/* MAP_FIXED_NOREPLACE into a free range: the library's own mappings landed
 * there first, and the user's mapping then failed with EEXIST. */
Test(map_fixed, noreplace_into_a_free_range)
{
	const size_t len = 64 * PG;
	unsigned char *a, *q;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "noreplace.dat", len, NULL, 0);
	a = (unsigned char *)free_range(len);
	q = syncmap_mmap(a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	cr_assert_eq(q, a, "syncmap_mmap: %s", strerror(errno));
	FAULT_OR_SKIP(q);
	expect_outside(a, len);
	expect_written(fd, q + len - PG, (off_t)(len - PG), 1);
	syncmap_munmap(q, len);
	close(fd);
}

/* Growing in place into the free range right after the mapping: the new
 * tail's grain map landed there first, so the tail's MAP_FIXED_NOREPLACE
 * failed and a grow that mremap(2) makes in place failed with ENOMEM. */
Test(map_fixed, grow_in_place_into_a_free_range)
{
	const size_t len = 64 * PG;
	unsigned char *r, *p, *q;
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "grow.dat", 2 * len, NULL, 0);
	r = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(r, MAP_FAILED);
	p = syncmap_mmap(r, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	cr_assert_eq(p, r, "syncmap_mmap: %s", strerror(errno));
	FAULT_OR_SKIP(p);
	fill_gaps_above((uintptr_t)r + 2 * len, PG);
	cr_assert_eq(munmap(r + len, len), 0);
	q = syncmap_mremap(p, len, 2 * len, 0);
	cr_assert_eq(q, p, "grow in place: %s", strerror(errno));
	expect_outside(p + len, len);
	expect_written(fd, q + 2 * len - PG, (off_t)(2 * len - PG), 1);
	syncmap_munmap(q, 2 * len);
	close(fd);
}

/* A MAP_FIXED that fails leaves the range as the program left it, as
 * mmap(2) does when it refuses: its own page still there, the free parts
 * still free (no placeholder of the library's left behind). */
Test(map_fixed, refused_map_fixed_leaves_the_range_as_it_was)
{
	const size_t len = 64 * PG;
	char name[PATH_MAX];
	unsigned char *a;
	int fd, ro;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	fd = make_sparse(fs.dir, "refused.dat", len, name, sizeof(name));
	ro = open(name, O_RDONLY);
	cr_assert(ro >= 0);
	a = (unsigned char *)free_range(len);
	cr_assert_eq(
		mmap(a + 40 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
		a + 40 * PG);
	a[40 * PG] = 'X';
	for (int lib = 0; lib < 2; lib++) {
		void *q;

		errno = 0;
		q = lib ? syncmap_mmap(a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, ro, 0)
			: mmap(a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, ro, 0);
		cr_assert_eq(q, MAP_FAILED, "%s: a writable mapping of a read-only descriptor",
			     lib ? "syncmap" : "kernel");
		cr_expect_eq(errno, EACCES, "%s: %s", lib ? "syncmap" : "kernel", strerror(errno));
		cr_expect_eq(a[40 * PG], 'X', "%s: the program's page is intact", lib ? "syncmap" : "kernel");
		cr_expect_eq(msync(a, 40 * PG, 0), -1, "%s: the free part below stays free",
			     lib ? "syncmap" : "kernel");
		cr_expect_eq(msync(a + 41 * PG, len - 41 * PG, 0), -1, "%s: the free part above stays free",
			     lib ? "syncmap" : "kernel");
		cr_expect_eq(
			mmap(a, 40 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
			a, "%s: nothing left in the free part", lib ? "syncmap" : "kernel");
		munmap(a, 40 * PG);
	}
	munmap(a + 40 * PG, PG);
	close(ro);
	close(fd);
}

/* A MAP_FIXED mapping the filesystem refuses after the kernel emptied the
 * target (ext4 without DAX refuses MAP_SYNC in its ->mmap hook): the
 * program's old FAULT mapping is gone, as with mmap(2), and the table must
 * say so.  Before, the region stayed in the table; a read-only mapping the
 * program then put there was made writable by the library's handler (its
 * write succeeded instead of SIGSEGV). */
Test(map_fixed, refused_map_sync_over_a_fault_mapping_drops_it_from_the_table)
{
	const size_t len = 64 * PG;
	unsigned char *p, *q;
	pid_t pid;
	int fd, st;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	fd = make_sparse(fs.dir, "refused-sync.dat", len, NULL, 0);
	p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	errno = 0;
	q = syncmap_mmap(p, len, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED, fd, 0);
	if (q != MAP_FAILED)
		cr_skip_test("the kernel granted MAP_SYNC here");
	cr_assert_eq(errno, EOPNOTSUPP, "%s", strerror(errno));
	if (msync(p, PG, 0) == 0)
		cr_skip_test("this kernel refused before emptying the target: nothing to follow");
	cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_NONE,
		     "the table still holds the mapping the kernel removed");
	cr_assert_eq(mmap(p, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0), p);
	pid = fork();
	if (pid == 0) {
		*(volatile unsigned char *)(p + 5 * PG) = 1;
		_exit(0); /* the read-only page took a write */
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
		  "a write to a read-only page where a FAULT mapping was: status %#x, wanted SIGSEGV", st);
	munmap(p, len);
	close(fd);
}
