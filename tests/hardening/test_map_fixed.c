/* test_map_fixed.c -- MAP_FIXED over a live FAULT mapping must replace it as mmap(2) does: at once */
#include "helpers.h"
#include "region.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
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
