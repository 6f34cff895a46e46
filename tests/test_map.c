/* SPDX-License-Identifier: MIT */
/* test_map.c -- syncmap_mmap and friends: modes, mmap's errors, the table across unmap/mprotect/mremap */
#include "helpers.h"
#include "syncmap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096

/* Files live in test_dir(): /dev/shm on the host, where tmpfs refuses
 * MAP_SYNC (FAULT mode, no root or loop device needed), or a DAX mount in
 * the guest (KERNEL mode, or FAULT when forced).  MODE is what to expect. */
#define MODE expected_mode(test_dir())
static char path[PATH_MAX];
static struct loopfs fs, fs2;

static int shm_file(size_t len)
{
	snprintf(path, sizeof(path), "%s/syncmap-map-%d", test_dir(), (int)getpid());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	cr_assert(fd >= 0);
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	return fd;
}

static void cleanup(void)
{
	if (path[0] != '\0')
		unlink(path);
	loopfs_done(&fs2);
	loopfs_done(&fs);
}

TestSuite(map, .fini = cleanup);

struct bad_case {
	const char *what;
	size_t len;
	int prot, flags;
	int fd_kind; /* 0: rw file, 1: ro file, 2: closed fd, 3: directory, 4: append-only, 5: -1 */
	off_t off;
	void *addr;
};

static int open_kind(int kind)
{
	switch (kind) {
	case 0: return open(path, O_RDWR);
	case 1: return open(path, O_RDONLY);
	case 2: {
		int fd = open(path, O_RDWR);

		close(fd);
		return fd;
	}
	case 3: return open(test_dir(), O_RDONLY | O_DIRECTORY);
	case 4: return open(path, O_RDWR | O_APPEND);
	default: return -1;
	}
}

Test(map, bad_arguments_fail_like_mmap)
{
	static const struct bad_case cases[] = {
		{"length 0", 0, PROT_READ | PROT_WRITE, MAP_SHARED, 0, 0, NULL},
		{"unaligned offset", PG, PROT_READ | PROT_WRITE, MAP_SHARED, 0, 100, NULL},
		{"negative offset", PG, PROT_READ | PROT_WRITE, MAP_SHARED, 0, -PG, NULL},
		{"closed descriptor", PG, PROT_READ | PROT_WRITE, MAP_SHARED, 2, 0, NULL},
		{"descriptor -1", PG, PROT_READ | PROT_WRITE, MAP_SHARED, 5, 0, NULL},
		{"PROT_WRITE on O_RDONLY", PG, PROT_READ | PROT_WRITE, MAP_SHARED, 1, 0, NULL},
		{"O_APPEND (allowed: only the append-only attribute refuses)", PG, PROT_READ | PROT_WRITE,
		 MAP_SHARED, 4, 0, NULL},
		{"directory", PG, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0, NULL},
		{"no sharing type", PG, PROT_READ | PROT_WRITE, 0, 0, 0, NULL},
		{"unknown flag with VALIDATE", PG, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | 0x200000, 0,
		 0, NULL},
		{"offset past the end (allowed)", PG, PROT_READ | PROT_WRITE, MAP_SHARED, 0, 1024 * PG, NULL},
		{"MAP_FIXED_NOREPLACE on a taken page", PG, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED_NOREPLACE, 0, 0, (void *)-1},
		{"MAP_FIXED unaligned", PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, 0, 0,
		 (void *)0x10001},
		{"huge length", (size_t)-PG, PROT_READ | PROT_WRITE, MAP_SHARED, 0, 0, NULL},
		{"length that rounds to 0", (size_t)-1, PROT_READ | PROT_WRITE, MAP_SHARED, 0, 0, NULL},
		{"MAP_FIXED past the top of the address space", 2 * PG, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, 0, 0, (void *)-PG},
		{"MAP_FIXED_NOREPLACE unaligned", PG, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED_NOREPLACE, 0, 0, (void *)0x10001},
		{"read-only, closed fd", PG, PROT_READ, MAP_SHARED, 2, 0, NULL},
		{"private, directory", PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, 3, 0, NULL},
	};

	void *taken = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	close(shm_file(4 * PG));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_case *c = &cases[i];
		int fd = open_kind(c->fd_kind);
		void *want, *got;
		int want_errno, got_errno;

		void *addr = c->addr == (void *)-1 ? taken : c->addr; /* -1: a page in use */
		errno = 0;
		want = mmap(addr, c->len, c->prot, c->flags, fd, c->off);
		want_errno = errno;
		errno = 0;
		got = syncmap_mmap(addr, c->len, c->prot, c->flags, fd, c->off);
		got_errno = errno;
		cr_expect_eq(got == MAP_FAILED, want == MAP_FAILED, "%s: syncmap_mmap %s, mmap %s", c->what,
			     got == MAP_FAILED ? "failed" : "succeeded",
			     want == MAP_FAILED ? "failed" : "succeeded");
		if (want == MAP_FAILED)
			cr_expect_eq(got_errno, want_errno, "%s: errno %d (%s), mmap gives %d (%s)", c->what,
				     got_errno, strerror(got_errno), want_errno, strerror(want_errno));
		if (want != MAP_FAILED)
			munmap(want, c->len);
		if (got != MAP_FAILED)
			syncmap_munmap(got, c->len);
		if (fd >= 0)
			close(fd);
	}
}

Test(map, modes)
{
	int fd = shm_file(4 * PG);
	char *p;

	enum syncmap_mode mode = MODE;
	void *raw;
	int raw_errno;

	p = syncmap_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	cr_expect_eq(syncmap_mode(p), mode, "mode %d, expected %d", syncmap_mode(p), mode);
	cr_expect_eq(syncmap_mode(p + 4 * PG - 1), mode);
	cr_expect_eq(syncmap_mode(p + 4 * PG), SYNCMAP_MODE_NONE);
	cr_assert_eq(syncmap_munmap(p, 4 * PG), 0);
	cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_NONE);

	p = syncmap_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_NONE, "private: plain mmap");
	syncmap_munmap(p, 4 * PG);
	p = syncmap_mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, fd, 0);
	cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_NONE, "read-only: plain mmap");
	syncmap_munmap(p, 4 * PG);
	p = syncmap_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_NONE, "anonymous: plain mmap");
	p[0] = 1; /* and writable at once */
	syncmap_munmap(p, 4 * PG);

	/* Asking for MAP_SYNC itself gets the kernel's answer, refusal included. */
	errno = 0;
	raw = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	raw_errno = errno;
	errno = 0;
	p = syncmap_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	cr_expect_eq(p == MAP_FAILED, raw == MAP_FAILED);
	if (raw == MAP_FAILED)
		cr_expect_eq(errno, raw_errno);
	else
		cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_KERNEL);
	if (raw != MAP_FAILED)
		munmap(raw, 4 * PG);
	if (p != MAP_FAILED)
		syncmap_munmap(p, 4 * PG);
	close(fd);
}

Test(map, mode_kernel_refused_where_map_sync_is)
{
	int fd = shm_file(4 * PG);

	sm_test_env("SYNCMAP_MODE", NULL);
	if (MODE == SYNCMAP_MODE_KERNEL)
		cr_skip_test("MAP_SYNC is granted in %s", test_dir());
	sm_test_env("SYNCMAP_MODE", "kernel");
	errno = 0;
	cr_expect_eq(syncmap_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
	cr_expect_eq(errno, EOPNOTSUPP);
	close(fd);
}

Test(map, fault_mode_writes_reach_the_file_after_close)
{
	int fd = shm_file(16 * PG);
	char *p = syncmap_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char buf[PG];
	struct syncmap_stats st;

	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	close(fd); /* as mmap allows */
	for (int i = 0; i < 16; i++)
		memset(p + i * PG, 'a' + i, PG);
	cr_assert_eq(syncmap_persist(p, 16 * PG), 0);
	syncmap_stats_get(&st);
	cr_expect_geq(st.faults, 1);
	cr_expect_geq(st.maps_fault, 1);
	fd = open(path, O_RDONLY);
	for (int i = 0; i < 16; i++) {
		cr_assert_eq(pread(fd, buf, PG, (off_t)i * PG), PG);
		cr_expect_eq(buf[0], 'a' + i);
		cr_expect_eq(buf[PG - 1], 'a' + i);
	}
	close(fd);
	syncmap_munmap(p, 16 * PG);
}

Test(map, grain_is_made_writable_whole)
{
	int fd = shm_file(64 * PG);
	char *p, perms[5];
	struct syncmap_stats a, b;

	sm_test_env("SYNCMAP_GRAIN", "65536");
	p = syncmap_mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	cr_assert_eq(maps_perms(p, perms), 0);
	cr_expect_eq(perms[1], '-', "FAULT mapping starts read-only, got %s", perms);
	syncmap_stats_get(&a);
	p[5 * PG] = 1; /* grain 0 = pages 0..15 */
	for (int i = 0; i < 16; i++)
		p[i * PG] = 2;
	syncmap_stats_get(&b);
	cr_expect_eq(b.faults - a.faults, 1, "one fault for the whole 64 KiB grain, got %llu",
		     (unsigned long long)(b.faults - a.faults));
	cr_assert_eq(maps_perms(p + 16 * PG, perms), 0);
	cr_expect_eq(perms[1], '-', "grain 1 untouched stays read-only");
	close(fd);
	syncmap_munmap(p, 64 * PG);
}

Test(map, partial_munmap_keeps_the_rest)
{
	int fd = shm_file(16 * PG);
	char *p, buf;

	sm_test_env("SYNCMAP_GRAIN", "4096");
	p = syncmap_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	p[0] = 'x';
	cr_assert_eq(syncmap_munmap(p + 4 * PG, 4 * PG), 0);
	cr_expect_eq(syncmap_mode(p + 5 * PG), SYNCMAP_MODE_NONE);
	cr_expect_eq(syncmap_mode(p + 3 * PG), MODE);
	cr_expect_eq(syncmap_mode(p + 8 * PG), MODE);
	p[3 * PG] = 'y';
	p[15 * PG] = 'z';
	cr_expect_eq(pread(fd, &buf, 1, 3 * PG), 1);
	cr_expect_eq(buf, 'y');
	cr_expect_eq(pread(fd, &buf, 1, 15 * PG), 1);
	cr_expect_eq(buf, 'z');
	cr_expect_eq(syncmap_munmap(p + 1, PG), -1, "unaligned munmap");
	cr_expect_eq(errno, EINVAL);
	cr_expect_eq(syncmap_munmap(p, 0), -1, "empty munmap");
	cr_expect_eq(errno, EINVAL);
	cr_assert_eq(syncmap_munmap(p, 16 * PG), 0);
	cr_expect_eq(syncmap_mode(p + 8 * PG), SYNCMAP_MODE_NONE);
	close(fd);
}

Test(map, map_fixed_replaces_a_region)
{
	int fd = shm_file(16 * PG);
	char *p = syncmap_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *q, buf;

	cr_assert_neq(p, MAP_FAILED);
	q = syncmap_mmap(p + 4 * PG, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
			 -1, 0);
	cr_assert_eq(q, p + 4 * PG);
	cr_expect_eq(syncmap_mode(q), SYNCMAP_MODE_NONE);
	cr_expect_eq(syncmap_mode(p), MODE);
	cr_expect_eq(syncmap_mode(p + 8 * PG), MODE);
	q[0] = 'a'; /* anonymous memory now: not the file */
	cr_expect_eq(pread(fd, &buf, 1, 4 * PG), 1);
	cr_expect_eq(buf, 0);
	/* And a syncmap mapping over the anonymous part again. */
	q = syncmap_mmap(p + 4 * PG, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 4 * PG);
	cr_assert_eq(q, p + 4 * PG);
	cr_expect_eq(syncmap_mode(q), MODE);
	q[1] = 'b';
	cr_expect_eq(pread(fd, &buf, 1, 4 * PG + 1), 1);
	cr_expect_eq(buf, 'b');
	syncmap_munmap(p, 16 * PG);
	close(fd);
}

Test(map, mprotect_write_only_on_durable_grains)
{
	int fd = shm_file(16 * PG);
	char *p, perms[5];
	struct syncmap_stats a, b;

	sm_test_env("SYNCMAP_GRAIN", "4096");
	p = syncmap_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	FAULT_OR_SKIP(p);
	p[2 * PG] = 1; /* grain 2 durable */
	cr_assert_eq(syncmap_mprotect(p, 16 * PG, PROT_READ), 0);
	cr_assert_eq(maps_perms(p + 2 * PG, perms), 0);
	cr_expect_eq(perms[1], '-', "read-only after mprotect(PROT_READ)");
	cr_assert_eq(syncmap_mprotect(p, 16 * PG, PROT_READ | PROT_WRITE), 0);
	cr_assert_eq(maps_perms(p + 2 * PG, perms), 0);
	cr_expect_eq(perms[1], 'w', "a durable grain is writable again at once");
	cr_assert_eq(maps_perms(p + 3 * PG, perms), 0);
	cr_expect_eq(perms[1], '-', "a grain never made durable stays read-only: %s", perms);
	syncmap_stats_get(&a);
	p[2 * PG] = 2;
	syncmap_stats_get(&b);
	cr_expect_eq(a.faults, b.faults, "no fault on the durable grain");
	p[3 * PG] = 3;
	syncmap_stats_get(&b);
	cr_expect_eq(b.faults, a.faults + 1, "the other grain faults first");
	/* mprotect of part of the region splits it; both parts stay FAULT. */
	cr_assert_eq(syncmap_mprotect(p + 8 * PG, 4 * PG, PROT_READ), 0);
	cr_expect_eq(syncmap_mode(p + 9 * PG), SYNCMAP_MODE_FAULT);
	cr_expect_eq(syncmap_mode(p + 13 * PG), SYNCMAP_MODE_FAULT);
	p[13 * PG] = 4;
	cr_expect_eq(syncmap_mprotect(p + 1, PG, PROT_READ), -1);
	cr_expect_eq(errno, EINVAL);
	syncmap_munmap(p, 16 * PG);
	close(fd);
}

static void check_file(int fd, size_t pages, unsigned salt)
{
	unsigned char buf;

	for (size_t i = 0; i < pages; i++) {
		cr_assert_eq(pread(fd, &buf, 1, (off_t)(i * PG + 7)), 1);
		cr_assert_eq(buf, pattern(i, salt), "page %zu: %u != %u", i, buf, pattern(i, salt));
	}
}

Test(map, mremap_grow_move_shrink)
{
	int fd = shm_file(64 * PG);
	char *p, *q;

	sm_test_env("SYNCMAP_GRAIN", "8192");
	p = syncmap_mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	for (size_t i = 0; i < 8; i++)
		p[i * PG + 7] = (char)pattern(i, 1);
	/* Grow, allowed to move. */
	q = syncmap_mremap(p, 8 * PG, 32 * PG, MREMAP_MAYMOVE);
	cr_assert_neq(q, MAP_FAILED, "mremap: %s", strerror(errno));
	cr_expect_eq(syncmap_mode(q + 20 * PG), MODE);
	for (size_t i = 0; i < 32; i++)
		q[i * PG + 7] = (char)pattern(i, 1);
	check_file(fd, 32, 1);
	/* Grow again: the whole range, even if the first grow left two regions. */
	p = syncmap_mremap(q, 32 * PG, 48 * PG, MREMAP_MAYMOVE);
	cr_assert_neq(p, MAP_FAILED, "second grow: %s", strerror(errno));
	for (size_t i = 0; i < 48; i++)
		p[i * PG + 7] = (char)pattern(i, 2);
	check_file(fd, 48, 2);
	/* Move to a fixed place. */
	q = mmap(NULL, 48 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(q, MAP_FAILED);
	q = syncmap_mremap(p, 48 * PG, 48 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, q);
	cr_assert_neq(q, MAP_FAILED, "fixed move: %s", strerror(errno));
	cr_expect_eq(syncmap_mode(p), SYNCMAP_MODE_NONE, "old place no longer ours");
	cr_expect_eq(syncmap_mode(q), MODE);
	for (size_t i = 0; i < 48; i++) {
		cr_expect_eq((unsigned char)q[i * PG + 7], pattern(i, 2));
		q[i * PG + 7] = (char)pattern(i, 3);
	}
	check_file(fd, 48, 3);
	/* Shrink. */
	p = syncmap_mremap(q, 48 * PG, 16 * PG, 0);
	cr_assert_eq(p, q);
	cr_expect_eq(syncmap_mode(q + 20 * PG), SYNCMAP_MODE_NONE);
	if (MODE == SYNCMAP_MODE_FAULT) {
		cr_expect_eq(syncmap_mremap(q, 16 * PG, 32 * PG, MREMAP_DONTUNMAP | MREMAP_MAYMOVE),
			     MAP_FAILED);
		cr_expect_eq(errno, EINVAL);
	}
	syncmap_munmap(q, 16 * PG);
	close(fd);
}

Test(map, plain_mappings_pass_through)
{
	char *p = syncmap_mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	cr_assert_neq(p, MAP_FAILED);
	p[0] = 1;
	cr_expect_eq(syncmap_mprotect(p, 4 * PG, PROT_READ), 0);
	q = syncmap_mremap(p, 4 * PG, 8 * PG, MREMAP_MAYMOVE);
	cr_assert_neq(q, MAP_FAILED);
	cr_expect_eq(q[0], 1);
	cr_expect_eq(syncmap_munmap(q, 8 * PG), 0);
	cr_expect_eq(syncmap_persist(q, PG), -1, "persist of an unmapped range fails as msync does");
	cr_expect_eq(errno, ENOMEM);
}

/* One call of the mmap family, made on a plain mapping and on a syncmap one
 * laid out the same way: 8 pages of the file at p, followed by 8 pages of
 * PROT_NONE that are the process's own, then an 8-page PROT_NONE target t.
 * Offsets and lengths in bytes; target is an offset from p. */
enum op { REMAP, PROTECT, UNMAP };
struct parity_case {
	const char *what;
	enum op op;
	size_t old_len, new_len;
	int flags; /* REMAP: mremap flags; PROTECT: prot */
	size_t target;
	size_t addr_off; /* added to p */
};

struct parity_result {
	int failed, err, same; /* same: returned p itself */
};

static struct parity_result parity_run(int lib, int fd, const struct parity_case *c)
{
	char *res = mmap(NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p, *a;
	void *q = NULL;
	struct parity_result out = {0, 0, 0};
	int rc = 0;

	cr_assert_neq(res, MAP_FAILED);
	p = lib ? syncmap_mmap(res, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0)
		: mmap(res, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	cr_assert_eq(p, res);
	a = p + c->addr_off;
	errno = 0;
	switch (c->op) {
	case REMAP:
		q = lib ? syncmap_mremap(a, c->old_len, c->new_len, c->flags, p + c->target)
			: mremap(a, c->old_len, c->new_len, c->flags, p + c->target);
		out.failed = q == MAP_FAILED;
		break;
	case PROTECT:
		rc = lib ? syncmap_mprotect(a, c->old_len, c->flags) : mprotect(a, c->old_len, c->flags);
		out.failed = rc != 0;
		break;
	case UNMAP:
		rc = lib ? syncmap_munmap(a, c->old_len) : munmap(a, c->old_len);
		out.failed = rc != 0;
		break;
	}
	out.err = out.failed ? errno : 0;
	out.same = c->op == REMAP && q == p;
	if (c->op == REMAP && !out.failed && ((char *)q < res || (char *)q >= res + 32 * PG))
		syncmap_munmap(q, c->new_len); /* a duplicate or a move elsewhere */
	syncmap_munmap(res, 32 * PG);
	return out;
}

/* Every argument check the library makes itself gives the kernel's answer. */
Test(map, remap_protect_unmap_errors_match_the_kernel)
{
	static const struct parity_case cases[] = {
		{"mremap shrink to a length that is not page-rounded", REMAP, 2 * PG, 5000, 0, 0, 0},
		{"mremap grow to a length that is not page-rounded", REMAP, 8 * PG, 8 * PG + 1,
		 MREMAP_MAYMOVE, 0, 0},
		{"mremap MREMAP_FIXED without MREMAP_MAYMOVE", REMAP, 2 * PG, 2 * PG, MREMAP_FIXED, 16 * PG,
		 0},
		{"mremap MREMAP_DONTUNMAP without MREMAP_MAYMOVE", REMAP, 2 * PG, 2 * PG, MREMAP_DONTUNMAP, 0,
		 0},
		{"mremap unknown flag", REMAP, 2 * PG, 2 * PG, 0x40, 0, 0},
		{"mremap new length 0", REMAP, 2 * PG, 0, 0, 0, 0},
		{"mremap new length rounds to 0", REMAP, 2 * PG, (size_t)-1, MREMAP_MAYMOVE, 0, 0},
		{"mremap unaligned address", REMAP, 2 * PG, 2 * PG, 0, 0, 1},
		{"mremap old length rounds to 0, may move (duplicate)", REMAP, (size_t)-1, 4 * PG,
		 MREMAP_MAYMOVE, 0, 0},
		{"mremap old length rounds to 0, may not move", REMAP, (size_t)-1, 4 * PG, 0, 0, 0},
		{"mremap old length 0, may not move", REMAP, 0, 4 * PG, 0, 0, 0},
		{"mremap FIXED target unaligned", REMAP, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
		 16 * PG + 1, 0},
		{"mremap FIXED target overlapping", REMAP, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
		 2 * PG, 0},
		{"mremap shrink of an old range past the mapping", REMAP, 12 * PG, 2 * PG, 0, 0, 0},
		{"mremap same length, old range past the mapping", REMAP, 12 * PG, 12 * PG, 0, 0, 0},
		{"mremap grow, old range past the mapping", REMAP, 12 * PG, 14 * PG, MREMAP_MAYMOVE, 0, 0},
		{"mprotect length that rounds to 0", PROTECT, (size_t)-1, 0, PROT_READ, 0, 0},
		{"mprotect length that wraps", PROTECT, (size_t) - (64 * PG), 0, PROT_READ, 0, 0},
		{"mprotect unaligned", PROTECT, PG, 0, PROT_READ, 0, 1},
		{"mprotect unknown prot bit", PROTECT, PG, 0, PROT_READ | 0x1000, 0, 0},
		{"munmap length 0", UNMAP, 0, 0, 0, 0, 0},
		{"munmap length that wraps", UNMAP, (size_t) - (64 * PG), 0, 0, 0, 0},
		{"munmap unaligned", UNMAP, PG, 0, 0, 0, 1},
		{"mremap duplicate onto itself", REMAP, 0, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, 0, 0},
	};
	int fd = shm_file(64 * PG);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parity_case *c = &cases[i];
		struct parity_result want = parity_run(0, fd, c), got = parity_run(1, fd, c);

		cr_expect_eq(got.failed, want.failed, "%s: syncmap %s (%s), kernel %s (%s)", c->what,
			     got.failed ? "failed" : "succeeded", strerror(got.err),
			     want.failed ? "failed" : "succeeded", strerror(want.err));
		if (got.failed && want.failed)
			cr_expect_eq(got.err, want.err, "%s: errno %s, kernel %s", c->what, strerror(got.err),
				     strerror(want.err));
		if (!got.failed && !want.failed)
			cr_expect_eq(got.same, want.same, "%s: syncmap %s, kernel %s", c->what,
				     got.same ? "stayed" : "moved", want.same ? "stayed" : "moved");
	}
	close(fd);
}

/* Found by tests/difffuzz on the fixed tree: the duplicate form of mremap
 * (old_len 0) is about the mapping holding old alone, whatever else lies in
 * [old, old + new_len) (a library mapping there gave EFAULT); and MAP_SHARED_VALIDATE refuses MAP_FIXED_NOREPLACE
 * (not in the kernel's legacy flags) before the library would turn it into
 * MAP_FIXED. */
static struct parity_result dup_next_to_another(int lib, int fd1, int fd2)
{
	char *res = mmap(NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *q;
	struct parity_result out = {0, 0, 0};
	int fl = MAP_SHARED | MAP_FIXED;

	cr_assert_neq(res, MAP_FAILED);
	/* The source is the program's own mapping; a library one follows it. */
	cr_assert_eq(mmap(res, 4 * PG, PROT_READ | PROT_WRITE, fl, fd1, 0), res);
	cr_assert_eq(lib ? syncmap_mmap(res + 4 * PG, 4 * PG, PROT_READ | PROT_WRITE, fl, fd2, 0)
			 : mmap(res + 4 * PG, 4 * PG, PROT_READ | PROT_WRITE, fl, fd2, 0),
		     res + 4 * PG);
	errno = 0;
	q = lib ? syncmap_mremap(res, 0, 8 * PG, MREMAP_MAYMOVE) : mremap(res, 0, 8 * PG, MREMAP_MAYMOVE);
	out.failed = q == MAP_FAILED;
	out.err = out.failed ? errno : 0;
	if (!out.failed)
		syncmap_munmap(q, 8 * PG);
	syncmap_munmap(res, 32 * PG);
	return out;
}

Test(map, duplicate_and_validate_flags_match_the_kernel)
{
	int fd1 = shm_file(64 * PG), fd2 = unlinked_file(64 * PG);
	struct parity_result want = dup_next_to_another(0, fd1, fd2), got = dup_next_to_another(1, fd1, fd2);
	char *free_at;
	void *k, *l;
	int ek, el;

	cr_assert(fd2 >= 0);
	cr_expect_eq(got.failed, want.failed,
		     "duplicate next to another mapping: syncmap %s (%s), kernel %s (%s)",
		     got.failed ? "failed" : "succeeded", strerror(got.err),
		     want.failed ? "failed" : "succeeded", strerror(want.err));
	free_at = mmap(NULL, 8 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(free_at, MAP_FAILED);
	munmap(free_at, 8 * PG);
	errno = 0;
	k = mmap(free_at, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE, fd1, 0);
	ek = errno;
	if (k != MAP_FAILED)
		munmap(k, 4 * PG);
	errno = 0;
	l = syncmap_mmap(free_at, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE,
			 fd1, 0);
	el = errno;
	if (l != MAP_FAILED)
		syncmap_munmap(l, 4 * PG);
	cr_expect_eq(l == MAP_FAILED, k == MAP_FAILED,
		     "MAP_SHARED_VALIDATE|MAP_FIXED_NOREPLACE: syncmap %s, kernel %s",
		     l == MAP_FAILED ? strerror(el) : "mapped", k == MAP_FAILED ? strerror(ek) : "mapped");
	if (l == MAP_FAILED && k == MAP_FAILED)
		cr_expect_eq(el, ek, "errno %s, kernel %s", strerror(el), strerror(ek));
	close(fd1);
	close(fd2);
}

/* Map 16 pages of a new file in dir at addr (MAP_FIXED unless NULL), through
 * the library or plainly. */
static char *map16(int lib, const char *dir, const char *name, void *addr)
{
	int fd = make_sparse(dir, name, 16 * PG, NULL, 0);
	int flags = MAP_SHARED | (addr != NULL ? MAP_FIXED : 0);
	char *p;

	cr_assert(fd >= 0);
	p = lib ? syncmap_mmap(addr, 16 * PG, PROT_READ | PROT_WRITE, flags, fd, 0)
		: mmap(addr, 16 * PG, PROT_READ | PROT_WRITE, flags, fd, 0);
	cr_assert_neq(p, MAP_FAILED, "%s: %s", name, strerror(errno));
	close(fd);
	return p;
}

static void expect_perms(const void *a, const char *want, const char *what)
{
	char perms[5];

	cr_assert_eq(maps_perms(a, perms), 0);
	cr_expect_str_eq(perms, want, "%s: %s, expected %s", what, perms, want);
}

/* PROT_EXEC on a noexec mount: the kernel refuses (EACCES) and leaves the
 * mapping as it was.  The library must too: a first write to a fresh grain
 * afterwards is made durable and writable with the old protection, not
 * killed by SIGBUS because the refused one was recorded. */
Test(map, refused_mprotect_keeps_the_old_protection)
{
	struct syncmap_stats a, b;
	char *p, *q, name[PATH_MAX];
	unsigned char c;
	int fd;

	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 64, "noexec");
	sm_test_env("SYNCMAP_GRAIN", "4096");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	q = map16(0, fs.dir, "plain.dat", NULL);
	errno = 0;
	if (mprotect(q, 16 * PG, PROT_READ | PROT_WRITE | PROT_EXEC) == 0 || errno != EACCES)
		cr_skip_test("the noexec mount does not refuse PROT_EXEC here (%s)", strerror(errno));
	munmap(q, 16 * PG);

	p = map16(1, fs.dir, "lib.dat", NULL);
	FAULT_OR_SKIP(p);
	p[0] = 1; /* grain 0 durable and writable */
	errno = 0;
	cr_expect_eq(syncmap_mprotect(p, 16 * PG, PROT_READ | PROT_WRITE | PROT_EXEC), -1);
	cr_expect_eq(errno, EACCES, "errno %s, the kernel's is EACCES", strerror(errno));
	expect_perms(p, "rw-s", "durable grain after the refusal");
	expect_perms(p + 5 * PG, "r--s", "fresh grain after the refusal");
	syncmap_stats_get(&a);
	p[5 * PG] = 5; /* SIGBUS when PROT_EXEC was recorded */
	syncmap_stats_get(&b);
	cr_expect_eq(b.faults, a.faults + 1, "the first write to a fresh grain faults");
	expect_perms(p + 5 * PG, "rw-s", "the written grain");
	snprintf(name, sizeof(name), "%s/lib.dat", fs.dir);
	fd = open(name, O_RDONLY);
	cr_assert(fd >= 0);
	cr_expect_eq(range_allocated(fd, 5 * PG, PG), 1, "the grain's block is allocated and written");
	cr_expect_eq(pread(fd, &c, 1, 5 * PG), 1);
	cr_expect_eq(c, 5);
	close(fd);
	syncmap_munmap(p, 16 * PG);
}

/* mprotect(2) over two mappings, where the second refuses: the kernel has
 * changed the first and leaves the second.  The library's record of each
 * must follow what the kernel did, piece by piece. */
Test(map, refused_mprotect_across_two_mappings_keeps_what_took_effect)
{
	const int rwx = PROT_READ | PROT_WRITE | PROT_EXEC;
	char *res[2];

	OWN_LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	OWN_LOOPFS_OR_SKIP(&fs2, "ext4", 64, "noexec");
	sm_test_env("SYNCMAP_GRAIN", "4096");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	for (int lib = 0; lib < 2; lib++) {
		char *r = mmap(NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int rc;

		cr_assert_neq(r, MAP_FAILED);
		map16(lib, fs.dir, lib ? "lib-a.dat" : "plain-a.dat", r);
		map16(lib, fs2.dir, lib ? "lib-b.dat" : "plain-b.dat", r + 16 * PG);
		if (lib)
			FAULT_OR_SKIP(r);
		errno = 0;
		rc = lib ? syncmap_mprotect(r, 32 * PG, rwx) : mprotect(r, 32 * PG, rwx);
		cr_expect_eq(rc, -1, "%s: mprotect across the noexec mapping", lib ? "syncmap" : "kernel");
		cr_expect_eq(errno, EACCES, "%s: errno %s", lib ? "syncmap" : "kernel", strerror(errno));
		res[lib] = r;
	}
	/* The kernel: the first mapping took PROT_EXEC, the second did not. */
	expect_perms(res[0] + PG, "rwxs", "kernel, first mapping");
	expect_perms(res[0] + 17 * PG, "rw-s", "kernel, second mapping");
	/* The library: the same once the grains are written. */
	expect_perms(res[1] + PG, "r-xs", "syncmap, first mapping before its first write");
	res[1][PG] = 1;
	res[1][17 * PG] = 1; /* SIGBUS when PROT_EXEC was recorded for the second */
	expect_perms(res[1] + PG, "rwxs", "syncmap, first mapping");
	expect_perms(res[1] + 17 * PG, "rw-s", "syncmap, second mapping");
	munmap(res[0], 32 * PG);
	syncmap_munmap(res[1], 32 * PG);
}

/* A mapping shrunk, its tail's blocks punched (and the library told), then
 * grown back by a move: the grains past the old length come from freed
 * blocks and must fault again.  The grain map of the shrunk region still
 * holds the tail's old marks (grain maps are shared by the pieces of a split
 * mapping and outlive a shrink); carried over, they made the punched range
 * writable without a sync. */
Test(map, moved_mapping_does_not_carry_stale_durable_grains)
{
	const size_t mib = 1 << 20, grain = 65536;
	struct syncmap_stats a, b;
	char *r, *p, *q, perms[5];
	int fd;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_GRAIN", "65536");
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "stale.dat", 3 * mib, NULL, 0);
	r = mmap(NULL, 6 * mib, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(r, MAP_FAILED);
	p = syncmap_mmap(r, 3 * mib, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	cr_assert_eq(p, r);
	FAULT_OR_SKIP(p);
	for (size_t o = 0; o < 3 * mib; o += grain)
		p[o] = 1;
	cr_assert_eq(syncmap_mremap(p, 3 * mib, mib, 0), p);
	/* The neighbour is taken: growing back must move. */
	cr_assert_eq(mmap(p + mib, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0),
		     p + mib);
	cr_assert_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)mib, (off_t)(2 * mib)),
		     0);
	cr_assert_eq(syncmap_file_changed(fd, (off_t)mib, (off_t)(2 * mib)), 0);
	cr_assert_eq(range_allocated(fd, (off_t)mib, 2 * mib), 0);
	q = syncmap_mremap(p, mib, 3 * mib, MREMAP_MAYMOVE);
	cr_assert_neq(q, MAP_FAILED, "grow: %s", strerror(errno));
	cr_assert_neq(q, p, "the grow did not move");
	cr_assert_eq(maps_perms(q + mib, perms), 0);
	cr_expect_eq(perms[1], '-', "a grain over punched blocks is writable before its first write: %s",
		     perms);
	syncmap_stats_get(&a);
	for (size_t o = mib; o < 3 * mib; o += grain)
		q[o] = 2;
	syncmap_stats_get(&b);
	cr_expect_eq(b.faults - a.faults, 2 * mib / grain, "%llu faults for %zu fresh grains",
		     (unsigned long long)(b.faults - a.faults), 2 * mib / grain);
	cr_expect_eq(range_allocated(fd, (off_t)mib, 2 * mib), 1, "the grown part is allocated and written");
	syncmap_munmap(q, 3 * mib);
	munmap(r, 6 * mib);
	close(fd);
}

/* The library's whole-file sync when it adopts a new FAULT mapping's
 * written blocks is held here, in the test, until the test lets it go (2 s
 * at most): fdatasync and fsync are the test's own, so the library linked
 * into it calls these.  Unarmed, they are the system calls. */
static atomic_int sync_armed, sync_held, sync_release;

static void hold_sync(void)
{
	if (!atomic_load(&sync_armed) || !atomic_exchange(&sync_armed, 0))
		return;
	atomic_store(&sync_held, 1);
	for (int i = 0; i < 2000 && !atomic_load(&sync_release); i++)
		usleep(1000);
	atomic_store(&sync_held, 0);
}

int fdatasync(int fd)
{
	hold_sync();
	return (int)syscall(SYS_fdatasync, fd);
}

int fsync(int fd)
{
	hold_sync();
	return (int)syscall(SYS_fsync, fd);
}

static void *map_written(void *arg)
{
	int fd = *(int *)arg;

	return syncmap_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

/* While one thread's new mapping is being adopted (its file synced whole,
 * which takes as long as the file's dirty data does), other threads map,
 * unmap and mprotect unrelated ranges without waiting for it. */
Test(map, adoption_sync_does_not_hold_other_threads)
{
	char buf[16 * PG];
	pthread_t t;
	void *q;
	char *other, *third;
	int fd, fd2, fd3, held;

	LOOPFS_OR_SKIP(&fs, "ext4", 64, NULL);
	sm_test_env("SYNCMAP_PRESYNC", "0");
	fd = make_sparse(fs.dir, "adopted.dat", 16 * PG, NULL, 0);
	fd2 = make_sparse(fs.dir, "other.dat", 16 * PG, NULL, 0);
	fd3 = make_sparse(fs.dir, "third.dat", 16 * PG, NULL, 0);
	memset(buf, 'w', sizeof(buf));
	cr_assert_eq(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	cr_assert_eq(syscall(SYS_fsync, fd), 0); /* written extents: something to adopt */
	other = syncmap_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
	cr_assert_neq(other, MAP_FAILED);
	FAULT_OR_SKIP(other);

	atomic_store(&sync_armed, 1);
	pthread_create(&t, NULL, map_written, &fd);
	for (int i = 0; i < 5000 && !atomic_load(&sync_held); i++) {
		if (pthread_tryjoin_np(t, &q) == 0) {
			atomic_store(&sync_armed, 0);
			cr_skip_test("the new mapping was adopted without a sync to hold");
		}
		usleep(1000);
	}
	cr_assert(atomic_load(&sync_held), "the new mapping's adoption never synced");
	cr_expect_eq(syncmap_mprotect(other, 16 * PG, PROT_READ), 0);
	third = syncmap_mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd3, 0);
	cr_expect_neq(third, MAP_FAILED);
	cr_expect_eq(syncmap_munmap(third, 16 * PG), 0);
	cr_expect_eq(syncmap_munmap(other, 16 * PG), 0);
	held = atomic_load(&sync_held);
	atomic_store(&sync_release, 1);
	pthread_join(t, &q);
	cr_expect(held, "map, mprotect and munmap of other ranges waited for another thread's adoption sync");
	cr_assert_neq(q, MAP_FAILED);
	cr_expect_eq(((char *)q)[5 * PG], 'w');
	syncmap_munmap(q, 16 * PG);
	close(fd3);
	close(fd2);
	close(fd);
}
