/* SPDX-License-Identifier: MIT */
/* pl_policy.c -- which mappings the shim takes, what it leaves alone, and the calls that change mappings
 *
 *   pl_policy DIR default   shared writable files taken; the rest untouched; munmap/mprotect/mremap/MAP_FIXED
 *   pl_policy DIR off       (SYNCMAP_PRELOAD=0) nothing taken, SIGSEGV untouched
 *   pl_policy DIR paths     (SYNCMAP_PRELOAD_PATHS=DIR/in) only files under DIR/in
 */
#include "ptest.h"

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define SIZE (1024 * 1024)
#define GRAIN (64 * 1024)

static int mode_of(const char *dir, const char *name, int prot, int flags)
{
	int fd = pt_sparse(dir, name, SIZE, NULL, 0);
	char *p = mmap(NULL, SIZE, prot, flags, fd, 0);
	int m;

	REQUIRE(p != MAP_FAILED, "mmap %s/%s: %s", dir, name, strerror(errno));
	m = pt_mode(p);
	if (prot & PROT_WRITE)
		p[GRAIN] = 1; /* writable as asked, whatever the mode */
	munmap(p, SIZE);
	close(fd);
	return m;
}

/* With every descriptor in use the library cannot keep its own: mmap(2)
 * never fails for that, so the mapping is made plain (and counted). */
static void no_descriptor(const char *dir)
{
	int fd = pt_sparse(dir, "nofd", SIZE, NULL, 0), spare[64], n = 0;
	struct rlimit old, low;
	char *p;

	REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
	low = old;
	low.rlim_cur = (rlim_t)fd + 8;
	REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit");
	while (n < 64 && (spare[n] = dup(0)) >= 0)
		n++;
	REQUIRE(n < 64 && errno == EMFILE, "could not use up the descriptors");
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "mmap with no descriptor left: %s", strerror(errno));
	if (p != MAP_FAILED) {
		CHECK(pt_mode(p) == PT_NONE, "mode %d", pt_mode(p));
		p[0] = 1;
		munmap(p, SIZE);
	}
	while (n > 0)
		close(spare[--n]);
	setrlimit(RLIMIT_NOFILE, &old);
	close(fd);
	pt_note("no descriptor left for the library: the mapping is made plain, not refused");
}

/* The mmap family on a taken mapping keeps the table and the kernel in step. */
static void changes(const char *dir)
{
	int fd = pt_sparse(dir, "changes", SIZE, NULL, 0);
	char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), *q, *a;

	REQUIRE(p != MAP_FAILED && pt_mode(p) == PT_FAULT, "mmap");
	/* Grain 2 first: a first write to grain 0 would set the engine readying
	 * the next grains, and grain 3 must stay unwritten below. */
	memset(p + 2 * GRAIN, 'a', GRAIN);
	/* MAP_FIXED of something else over the middle: that part is no longer ours. */
	a = mmap(p + 4 * GRAIN, 2 * GRAIN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0);
	CHECK(a == p + 4 * GRAIN, "MAP_FIXED anonymous over a FAULT mapping");
	CHECK(pt_mode(a) == PT_NONE && pt_mode(p) == PT_FAULT && pt_mode(p + 6 * GRAIN) == PT_FAULT,
	      "table after MAP_FIXED: %d %d %d", pt_mode(p), pt_mode(a), pt_mode(p + 6 * GRAIN));
	a[5] = 'z';
	/* mprotect down and up again: writes still fault into the library. */
	CHECK(mprotect(p + 2 * GRAIN, 2 * GRAIN, PROT_READ) == 0, "mprotect R");
	CHECK(!pt_writable(p + 2 * GRAIN), "R");
	CHECK(mprotect(p + 2 * GRAIN, 2 * GRAIN, PROT_READ | PROT_WRITE) == 0, "mprotect RW");
	CHECK(pt_writable(p + 2 * GRAIN) && !pt_writable(p + 3 * GRAIN),
	      "durable grain writable again, fresh one not");
	p[3 * GRAIN] = 'b';
	CHECK(range_allocated_flags(fd, 3 * GRAIN, 4096, NULL) == 1, "write after mprotect RW not allocated");
	/* munmap of the tail. */
	CHECK(munmap(p + 8 * GRAIN, SIZE - 8 * GRAIN) == 0, "munmap tail");
	CHECK(pt_mode(p + 8 * GRAIN) == PT_NONE && pt_mode(p + 7 * GRAIN) == PT_FAULT, "table after munmap");
	/* mremap: the head moves and grows; data and mode follow. */
	REQUIRE(ftruncate(fd, 2 * SIZE) == 0, "grow file");
	q = mremap(p, 4 * GRAIN, SIZE, MREMAP_MAYMOVE);
	REQUIRE(q != MAP_FAILED, "mremap: %s", strerror(errno));
	CHECK(pt_mode(q) == PT_FAULT && pt_mode(q + SIZE - 1) == PT_FAULT, "mode after mremap");
	CHECK(q[2 * GRAIN] == 'a' && q[3 * GRAIN] == 'b', "data after mremap");
	q[SIZE - 100] = 'c';
	CHECK(range_allocated_flags(fd, SIZE - 4096, 4096, NULL) == 1,
	      "write into the grown part not allocated");
	munmap(q, SIZE);
	munmap(p + 6 * GRAIN, 2 * GRAIN);
	munmap(a, 2 * GRAIN);
	close(fd);
	pt_note("MAP_FIXED over, mprotect down/up, munmap part, mremap grow+move: table follows, writes "
		"durable");
}

static void mode_default(const char *dir)
{
	char shm[64];
	int fd;
	void *p;

	CHECK(mode_of(dir, "shared", PROT_READ | PROT_WRITE, MAP_SHARED) == PT_FAULT,
	      "shared writable: taken");
	CHECK(mode_of(dir, "private", PROT_READ | PROT_WRITE, MAP_PRIVATE) == PT_NONE, "private: left");
	CHECK(mode_of(dir, "readonly", PROT_READ, MAP_SHARED) == PT_NONE, "read-only: left");
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED && pt_mode(p) == PT_NONE, "anonymous shared: left");
	munmap(p, SIZE);
	/* tmpfs keeps nothing across a crash: no guarantee to give. */
	snprintf(shm, sizeof(shm), "/dev/shm/pl-policy-%d", (int)getpid());
	CHECK(mode_of("/dev/shm", shm + 9, PROT_READ | PROT_WRITE, MAP_SHARED) == PT_NONE, "tmpfs: left");
	unlink(shm);
	/* A program asking MAP_SYNC itself gets the kernel's refusal on page cache. */
	fd = pt_sparse(dir, "sync", SIZE, NULL, 0);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	CHECK(p == MAP_FAILED && errno == EOPNOTSUPP,
	      "MAP_SYNC on page cache: want the kernel's EOPNOTSUPP, got %s",
	      p == MAP_FAILED ? strerror(errno) : "a mapping");
	close(fd);
	pt_note("taken: shared writable ext4 file; left: private, read-only, anonymous, tmpfs; MAP_SYNC: "
		"kernel's refusal");
	changes(dir);
	no_descriptor(dir);
}

static void on_segv(int sig)
{
	(void)sig;
}

static void mode_off(const char *dir)
{
	void *h = NULL;

	CHECK(mode_of(dir, "shared", PROT_READ | PROT_WRITE, MAP_SHARED) == PT_NONE,
	      "SYNCMAP_PRELOAD=0: left");
	signal(SIGSEGV, on_segv);
	CHECK(pt_kernel_handler(SIGSEGV, &h) == 0 && h == (void *)on_segv,
	      "SYNCMAP_PRELOAD=0: the program's handler is not the kernel's");
	pt_note("SYNCMAP_PRELOAD=0: nothing taken, SIGSEGV straight to the kernel");
}

static void mode_paths(const char *dir)
{
	char in[PATH_MAX], out[PATH_MAX], link[PATH_MAX];

	snprintf(in, sizeof(in), "%s/in", dir);
	snprintf(out, sizeof(out), "%s/in-not", dir); /* a prefix of the name is not the directory */
	snprintf(link, sizeof(link), "%s/link", dir);
	CHECK(mode_of(in, "f", PROT_READ | PROT_WRITE, MAP_SHARED) == PT_FAULT, "file under the path: taken");
	CHECK(mode_of(out, "f", PROT_READ | PROT_WRITE, MAP_SHARED) == PT_NONE, "file elsewhere: left");
	CHECK(mode_of(link, "f", PROT_READ | PROT_WRITE, MAP_SHARED) == PT_FAULT, "through a symlink: taken");
	pt_note("SYNCMAP_PRELOAD_PATHS: in/ taken, in-not/ left, a symlink into in/ taken");
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR default|off|paths\n", argv[0]);
		return 2;
	}
	REQUIRE(pt_mode(NULL) >= 0, "the shim is not loaded");
	if (strcmp(argv[2], "default") == 0)
		mode_default(argv[1]);
	else if (strcmp(argv[2], "off") == 0)
		mode_off(argv[1]);
	else if (strcmp(argv[2], "paths") == 0)
		mode_paths(argv[1]);
	else
		return 2;
	return pt_done("pl_policy");
}
