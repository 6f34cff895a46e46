/* SPDX-License-Identifier: MIT */
/* faildev.c -- the guest side of vm.failing_device: a device that fails writes under page-cache FAULT mode
 *
 *   faildev FS TAG lib|plain DIR DM_NAME BACKING
 *
 * DIR is on a filesystem (FS: a label) mounted without DAX on the
 * device-mapper device DM_NAME, whose table maps BACKING 1:1 with dm-flakey
 * targets that never go down (tests/vm/faildev.sh sets it up).  In that
 * mount the kernel refuses MAP_SYNC, so syncmap_mmap picks FAULT mode and
 * persists by msync: the path most users get.
 *
 * The file (1 MiB): A = [0, 256K) data written with pwrite and fsynced
 * (adopted at map time), B = [256K, 512K) allocated unwritten (fresh grains:
 * the first write faults), a hole, C = [768K, 1M) allocated unwritten.
 *
 *  1. Healthy device: store into pages of A and persist (0), first-write a
 *     page of C and persist (0).  For "lib" the mapping must be FAULT and
 *     persist must sync (the msync path, counted in stats.syncs).
 *  2. The table is switched (dmsetup load + resume) to one where the blocks
 *     under A and B are dm-error targets: every write to them fails with EIO.
 *     The rest of the device (journal, log, metadata, C) keeps working.
 *  3. Checks, each printed as ok or FAIL:
 *     (a) store again into the pages of A (already writable: no fault may
 *         happen) and persist: -1 with errno EIO, never 0.
 *     (b) store into a fresh grain of B: the grain cannot become durable
 *         (the device fails every write to its blocks), so the library must
 *         deliver SIGBUS at the store's address; a store that returns is a
 *         silent success.  The same store again must get SIGBUS again (the
 *         grain was not made writable).
 *     (c) the program's own fsync(fd), on the descriptor it mapped from:
 *         -1 with EIO.  The error of (b) happened in the library's sync; if
 *         the library had taken it from the program's open file
 *         description, this fsync would return 0.
 *     A witness (another open file description of the file, opened before
 *     the switch, never synced) must get EIO from fsync: the device really
 *     failed, so the checks above mean something.
 *
 * "plain" runs the same steps on mmap(2) + msync(2): the control, showing
 * what the kernel itself reports on this device (msync EIO; the store into
 * B returns, as nothing is synced at a first write; fsync EIO).  It fails
 * (b) by design: that is what the library adds.
 *
 * Prints "SMVM: faildev FS TAG result fine=.. a=.. b=.. c=.. dev=.. | ..."
 * (ok / FAIL per check, dev=failed when the witness saw the error) and
 * detail lines; exits 0 whatever the verdicts (the host judges), non-zero
 * if the run could not be made (set-up, dmsetup).
 */
#include "config.h"
#include "fiemap.h"
#include "region.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096
#define KIB 1024
#define REGION (256 * KIB)
#define OFF_A 0
#define OFF_B REGION
#define OFF_C (3 * REGION)
#define FILE_LEN (4 * REGION)
#define A_PAGES 4
#define B_STORE (OFF_B + 64 * KIB + 5 * PG + 123) /* inside B, in no grain the healthy phase touched */
#define MAX_BAD 64

static const char *fs_label, *tag;
static int use_lib;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	printf("SMVM: faildev %s %s ", fs_label, tag);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void die(const char *what)
{
	say("error: %s: %s", what, strerror(errno));
	exit(2);
}

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n != NULL ? n : "?";
}

/* ---- the mapping under test: libsyncmap or plain mmap(2) ---- */

static void *map_file(int fd)
{
	if (use_lib)
		return syncmap_mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return mmap(NULL, FILE_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

static int persist(void *p, size_t len)
{
	if (use_lib)
		return syncmap_persist(p, len);
	return msync(p, len, MS_SYNC);
}

/* ---- stores that may end in SIGBUS ---- */

static sigjmp_buf bus_jmp;
static void *volatile bus_addr;
static volatile int bus_code;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_addr = si->si_addr;
	bus_code = si->si_code;
	siglongjmp(bus_jmp, 1);
}

/* 0 the store returned; 1 SIGBUS (BUS_ADRERR) at exactly p; -1 SIGBUS
 * elsewhere or with another code. */
static int store(unsigned char *p, unsigned char v)
{
	if (sigsetjmp(bus_jmp, 1) == 0) {
		*(volatile unsigned char *)p = v;
		return 0;
	}
	return bus_addr == (void *)p && bus_code == BUS_ADRERR ? 1 : -1;
}

static const char *store_name(int r)
{
	return r == 0 ? "returned" : r == 1 ? "sigbus" : "sigbus-elsewhere";
}

/* ---- the device's table ---- */

struct range {
	uint64_t lo, hi; /* bytes on the device */
};

static int by_lo(const void *x, const void *y)
{
	const struct range *a = x, *b = y;

	return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* The device ranges under file bytes [off, off + len), appended to bad[];
 * -1 if some byte of the range has no block (the table could not fail it). */
static int blocks_of(int fd, off_t off, size_t len, struct range *bad, int *n)
{
	struct fiemap *fm = fiemap_of(fd, off, len);
	uint64_t at = (uint64_t)off, end = (uint64_t)off + len;

	if (fm == NULL)
		return -1;
	for (unsigned i = 0; i < fm->fm_mapped_extents && at < end; i++) {
		const struct fiemap_extent *e = &fm->fm_extents[i];
		uint64_t lo = e->fe_logical > at ? e->fe_logical : at;
		uint64_t hi = e->fe_logical + e->fe_length < end ? e->fe_logical + e->fe_length : end;

		if (e->fe_logical > at || (e->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC)) ||
		    *n == MAX_BAD || (e->fe_physical % 512) != 0)
			break;
		if (hi <= lo)
			continue;
		bad[*n].lo = e->fe_physical + (lo - e->fe_logical);
		bad[*n].hi = bad[*n].lo + (hi - lo);
		(*n)++;
		at = hi;
	}
	free(fm);
	return at >= end ? 0 : -1;
}

/* Load a table in which the blocks under A and B fail every I/O (dm-error)
 * and the rest maps BACKING as before, and make it live. */
static void fail_blocks(int fd, const char *dm_name, const char *backing)
{
	struct range bad[MAX_BAD];
	uint64_t size, at = 0;
	int n = 0, m = 0, bfd;
	char path[96], cmd[512];
	FILE *t;

	if (blocks_of(fd, OFF_A, 2 * REGION, bad, &n) != 0) {
		errno = EINVAL;
		die("FIEMAP: A and B are not wholly allocated");
	}
	qsort(bad, (size_t)n, sizeof(bad[0]), by_lo);
	for (int i = 1; i < n; i++) { /* merge touching ranges */
		if (bad[i].lo <= bad[m].hi) {
			if (bad[i].hi > bad[m].hi)
				bad[m].hi = bad[i].hi;
		} else {
			bad[++m] = bad[i];
		}
	}
	n = m + 1;
	bfd = open(backing, O_RDONLY | O_CLOEXEC);
	if (bfd < 0 || ioctl(bfd, BLKGETSIZE64, &size) != 0)
		die(backing);
	close(bfd);
	snprintf(path, sizeof(path), "/tmp/faildev-%s.table", dm_name);
	t = fopen(path, "w");
	if (t == NULL)
		die(path);
	for (int i = 0; i < n; i++) {
		if (bad[i].lo > at)
			fprintf(t, "%llu %llu flakey %s %llu 1000000 0\n", (unsigned long long)at / 512,
				(unsigned long long)(bad[i].lo - at) / 512, backing,
				(unsigned long long)at / 512);
		fprintf(t, "%llu %llu error\n", (unsigned long long)bad[i].lo / 512,
			(unsigned long long)(bad[i].hi - bad[i].lo) / 512);
		at = bad[i].hi;
	}
	if (size > at)
		fprintf(t, "%llu %llu flakey %s %llu 1000000 0\n", (unsigned long long)at / 512,
			(unsigned long long)(size - at) / 512, backing, (unsigned long long)at / 512);
	if (fclose(t) != 0)
		die(path);
	say("table: %d dm-error range(s) under A and B, first at sector %llu", n,
	    (unsigned long long)bad[0].lo / 512);
	snprintf(cmd, sizeof(cmd), "dmsetup --noudevsync load %s %s && dmsetup --noudevsync resume %s",
		 dm_name, path, dm_name);
	if (system(cmd) != 0) {
		errno = EIO;
		die(cmd);
	}
}

/* ---- the run ---- */

static void make_file(const char *dir, char *path, size_t len, int *fd)
{
	static unsigned char data[REGION];

	snprintf(path, len, "%s/faildev.dat", dir);
	*fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (*fd < 0)
		die(path);
	memset(data, 0x11, sizeof(data));
	if (ftruncate(*fd, FILE_LEN) != 0 || pwrite(*fd, data, sizeof(data), OFF_A) != (ssize_t)sizeof(data))
		die("write A");
	if (fallocate(*fd, 0, OFF_B, REGION) != 0 || fallocate(*fd, 0, OFF_C, REGION) != 0)
		die("fallocate B, C");
	if (fsync(*fd) != 0)
		die("fsync before the map");
}

int main(int argc, char **argv)
{
	struct syncmap_stats s0, s1;
	struct sigaction sa;
	char path[512], fine[160] = "";
	const char *how = "msync";
	unsigned char *p;
	int fd, witness, ra, ea, rb1, rb2, rc, ec, rw, ew, ok_a, ok_b, ok_c;

	if (argc != 7 || (strcmp(argv[3], "lib") != 0 && strcmp(argv[3], "plain") != 0)) {
		fprintf(stderr, "usage: %s FS TAG lib|plain DIR DM_NAME BACKING\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	fs_label = argv[1];
	tag = argv[2];
	use_lib = !strcmp(argv[3], "lib");
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) != 0)
		die("sigaction");

	make_file(argv[4], path, sizeof(path), &fd);
	p = map_file(fd);
	if (p == MAP_FAILED)
		die("map");

	/* 1. Healthy device. */
	memset(p + OFF_A, 0x22, A_PAGES * PG);
	if (persist(p + OFF_A, A_PAGES * PG) != 0)
		snprintf(fine, sizeof(fine), "persist of A failed on the healthy device: %s",
			 strerror(errno));
	if (use_lib && fine[0] == '\0') {
		enum syncmap_mode mode = syncmap_mode(p);
		struct sm_region *r;
		int cpu = 1;

		/* How the region persists, read from the table (as crash.c
		 * does), not from what persist did: a mutant may change that. */
		if (sm_region_get((uintptr_t)p, &r) == SM_FOUND) {
			cpu = r->cpu_persist != NULL;
			sm_region_put(r);
		}
		how = cpu ? "cpu" : "msync";
		if (mode != SYNCMAP_MODE_FAULT)
			snprintf(fine, sizeof(fine), "mode %d, not FAULT: MAP_SYNC granted here?", (int)mode);
		else if (cpu)
			snprintf(fine, sizeof(fine),
				 "persists by CPU flush, not msync: not the page-cache path");
		else if (sm_cfg.grain > REGION)
			snprintf(fine, sizeof(fine), "grain %zu: B holds no whole fresh grain", sm_cfg.grain);
	}
	if (fine[0] == '\0' && store(p + OFF_C + 7, 0x33) != 0)
		snprintf(fine, sizeof(fine), "first write into C on the healthy device: SIGBUS");
	if (fine[0] == '\0' && persist(p + OFF_C, PG) != 0)
		snprintf(fine, sizeof(fine), "persist of C failed on the healthy device: %s",
			 strerror(errno));
	syncmap_stats_get(&s1);
	say("start %s mode=%s persist=%s grain=%zu presync=%d syncs=%llu faults=%llu errors=%llu",
	    use_lib ? "libsyncmap" : "plain-mmap",
	    use_lib ? (syncmap_mode(p) == SYNCMAP_MODE_FAULT ? "FAULT" : "not-FAULT") : "NONE", how,
	    use_lib ? sm_cfg.grain : (size_t)0, use_lib ? sm_cfg.presync : 0, (unsigned long long)s1.syncs,
	    (unsigned long long)s1.faults, (unsigned long long)s1.errors);

	/* 2. The blocks under A and B fail from now on. */
	witness = open(path, O_RDONLY | O_CLOEXEC);
	if (witness < 0)
		die("witness");
	fail_blocks(fd, argv[5], argv[6]);

	/* (a) Stores into writable pages, then persist. */
	syncmap_stats_get(&s0);
	ra = 0;
	for (int i = 0; i < A_PAGES && ra == 0; i++)
		ra = store(p + OFF_A + (size_t)i * PG + 11, 0x44);
	syncmap_stats_get(&s1);
	if (ra != 0 || s1.faults != s0.faults) {
		say("error: a store into A (written before, already writable) %s, %llu fault(s)",
		    store_name(ra), (unsigned long long)(s1.faults - s0.faults));
		return 3;
	}
	errno = 0;
	ra = persist(p + OFF_A, A_PAGES * PG);
	ea = errno;
	ok_a = ra == -1 && ea == EIO;

	/* (b) The first write into a fresh grain whose blocks fail. */
	rb1 = store(p + B_STORE, 0x55);
	rb2 = store(p + B_STORE, 0x56);
	ok_b = rb1 == 1 && rb2 == 1;

	/* (c) The program's own fsync. */
	errno = 0;
	rc = fsync(fd);
	ec = errno;
	ok_c = rc == -1 && ec == EIO;

	errno = 0;
	rw = fsync(witness);
	ew = errno;
	syncmap_stats_get(&s1);
	say("result fine=%s a=%s b=%s c=%s dev=%s | %s a:%s=%d/%s b:store=%s,%s c:fsync=%d/%s "
	    "witness:fsync=%d/%s errors=%llu",
	    fine[0] == '\0' ? "ok" : "FAIL", ok_a ? "ok" : "FAIL", ok_b ? "ok" : "FAIL", ok_c ? "ok" : "FAIL",
	    rw == -1 && ew == EIO ? "failed" : "healthy", use_lib ? "libsyncmap" : "plain",
	    use_lib ? "persist" : "msync", ra, ra ? errname(ea) : "-", store_name(rb1), store_name(rb2), rc,
	    rc ? errname(ec) : "-", rw, rw ? errname(ew) : "-", (unsigned long long)s1.errors);
	if (fine[0] != '\0')
		say("fine: %s", fine);
	close(witness);
	close(fd);
	return 0;
}
