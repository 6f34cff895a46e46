/* SPDX-License-Identifier: MIT */
/* crash.c -- the guest side of the crash suite: store, persist, acknowledge; after the crash, count what survived
 *
 *   crash write KEY=VALUE...
 *       case=FILE     the file under test: a fresh 64 MiB sparse file
 *       mode=M        kernel | fault: what syncmap_mmap must give (auto picks
 *                     it, or SYNCMAP_MODE forces it); plain: mmap(2), persisted
 *                     with the CPU flush KERNEL mode uses (what a program told
 *                     "MAP_SYNC granted" does); plain-msync: mmap(2) + msync
 *       persist=P     cpu | msync: how the library must persist it (checked)
 *       order=O pages=N seed=S
 *                     write N pages, seq or in a random order drawn from S
 *       pre=P         before mapping, pwrite file pages [0, P) (other bytes)
 *                     and do not sync them: the mapping adopts them; they are
 *                     the first P pages written (0)
 *       lag=L         a page is persisted L pages after its store, so at any
 *                     moment L pages are stored but not yet persisted (0)
 *       control=FILE cpages=C
 *                     a plain MAP_SHARED control in the same process, CPU
 *                     flush only: 64 pages first, the rest in step with the
 *                     case, so that any crash point cuts both mid-write
 *       crash=K stage=store|persist
 *                     reset the guest (sysrq-b) right after the K-th store,
 *                     or after the persist step that follows it
 *       mark=K        print "SMVM: crashpoint" after the K-th store (the host
 *                     SIGKILLs QEMU on it) and go on writing, for 256 pages
 *                     at most: then wait for the kill
 *       end=crash     reset the guest if the loop ends (a crash point inside
 *                     the library that was never reached)
 *       pace=MS       sleep MS ms after every 8 pages (default: only yield
 *                     the CPU), so that the engine gets ahead of the writer
 *   Prints "SMVM: start TAG mode=... persist=... grain=... presync=..."
 *   and, every 8 pages, "SMVM: p TAG STORED ACKED": STORED pages' first store
 *   has returned, the first ACKED pages (in write order) are persisted.  Both
 *   are printed after the fact, so the host never counts more than was done.
 *
 *   crash check KEY=VALUE...
 *       case=FILE order=O pages=N seed=S pre=P acked=A stored=T tag=NAME
 *   after the crash: "SMVM: result NAME acked=A intact_acked=I lost=L
 *   stored=T unbacked=U intact_total=X blocks=B".  (a) lost: acknowledged
 *   pages that do not read back exactly.  (b) unbacked: stored pages that
 *   FIEMAP does not show in an allocated, written extent (a hole, unwritten,
 *   delalloc): MAP_SYNC's guarantee is about blocks, persisted or not.
 *
 * TCG does not model CPU caches: what the crash tests prove is that the file
 * kept its blocks (metadata durability), not that every line was flushed.
 */
#include "config.h"
#include "flush.h"
#include "records.h"
#include "region.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define FILE_PAGES 16384 /* 64 MiB sparse file */
#define REPORT_EVERY 8
#define CONTROL_HEAD 64
#define MARK_RUN 256 /* pages written after the kill mark, at most */

struct args {
	const char *file, *mode, *persist, *order, *control, *stage, *end, *tag;
	long pages, pre, lag, cpages, crash, mark, pace, acked, stored;
	uint64_t seed;
};

static void die(const char *what)
{
	printf("SMVM: error: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: crash write case=FILE mode=M order=O pages=N seed=S [persist=P pre=P lag=L\n"
		"                   control=FILE cpages=C crash=K stage=store|persist mark=K end=crash]\n"
		"       crash check case=FILE order=O pages=N seed=S pre=P acked=A stored=T tag=NAME\n");
	exit(2);
}

static long num(const char *v, long lo, long hi)
{
	char *end;
	long n = strtol(v, &end, 0);

	if (*v == '\0' || *end != '\0' || n < lo || n > hi)
		usage();
	return n;
}

static void parse(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	a->order = "seq";
	a->stage = "store";
	a->tag = "case";
	for (int i = 0; i < argc; i++) {
		char *v = strchr(argv[i], '=');
		const char *k = argv[i];

		if (v == NULL)
			usage();
		*v++ = '\0';
		if (!strcmp(k, "case"))
			a->file = v;
		else if (!strcmp(k, "mode"))
			a->mode = v;
		else if (!strcmp(k, "persist"))
			a->persist = v;
		else if (!strcmp(k, "order"))
			a->order = v;
		else if (!strcmp(k, "control"))
			a->control = v;
		else if (!strcmp(k, "stage"))
			a->stage = v;
		else if (!strcmp(k, "end"))
			a->end = v;
		else if (!strcmp(k, "tag"))
			a->tag = v;
		else if (!strcmp(k, "pages"))
			a->pages = num(v, 1, FILE_PAGES);
		else if (!strcmp(k, "cpages"))
			a->cpages = num(v, 1, FILE_PAGES);
		else if (!strcmp(k, "pre"))
			a->pre = num(v, 0, FILE_PAGES);
		else if (!strcmp(k, "lag"))
			a->lag = num(v, 0, FILE_PAGES);
		else if (!strcmp(k, "crash"))
			a->crash = num(v, 0, FILE_PAGES);
		else if (!strcmp(k, "pace"))
			a->pace = num(v, 0, 999);
		else if (!strcmp(k, "mark"))
			a->mark = num(v, 0, FILE_PAGES);
		else if (!strcmp(k, "acked"))
			a->acked = num(v, 0, FILE_PAGES);
		else if (!strcmp(k, "stored"))
			a->stored = num(v, 0, FILE_PAGES);
		else if (!strcmp(k, "seed"))
			a->seed = strtoull(v, NULL, 0);
		else
			usage();
	}
	if (a->file == NULL || a->pages == 0 || a->pre > a->pages)
		usage();
}

/* The i-th page written, in file pages: first the pre-written pages
 * [0, pre) in order, then the others in order (seq) or in a fixed
 * permutation drawn from the seed (rand). */
static void write_order(uint32_t *order, int rand, long pre, uint64_t seed)
{
	for (uint32_t i = 0; i < FILE_PAGES; i++)
		order[i] = i;
	if (!rand)
		return;
	for (uint32_t i = FILE_PAGES - 1; i > (uint32_t)pre; i--) {
		uint32_t j = (uint32_t)pre + (uint32_t)(vr_mix(seed + i) % (i - (uint32_t)pre + 1)),
			 t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
}

static uint64_t word(uint64_t seed, uint32_t page, size_t k)
{
	return vr_mix(seed ^ ((uint64_t)page << 20) ^ k) | 1; /* never zero: a hole reads as zeros */
}

static void fill(uint64_t *w, uint32_t page, uint64_t seed)
{
	for (size_t k = 0; k < PG / 8; k++)
		w[k] = word(seed, page, k);
}

static int intact(const uint64_t *w, uint32_t page, uint64_t seed)
{
	for (size_t k = 0; k < PG / 8; k++)
		if (w[k] != word(seed, page, k))
			return 0;
	return 1;
}

static const char *mode_name(enum syncmap_mode m)
{
	return m == SYNCMAP_MODE_KERNEL ? "KERNEL" : m == SYNCMAP_MODE_FAULT ? "FAULT" : "NONE";
}

static int sysrq_fd = -1;

static void reset(const char *why, long at)
{
	printf("SMVM: reset %s %ld\n", why, at);
	fflush(stdout);
	if (write(sysrq_fd, "b", 1) != 1)
		die("sysrq");
	for (;;)
		pause();
}

static int open_sparse(const char *file)
{
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);

	/* The file and its size are committed before any write: a missing
	 * file after the crash is a loss, not a set-up artefact. */
	if (fd < 0 || ftruncate(fd, (off_t)FILE_PAGES * PG) != 0 || fsync(fd) != 0)
		die(file);
	return fd;
}

/* Pages [0, pre) written with pwrite and not synced: on DAX their blocks are
 * allocated and written, the allocation still in the running transaction
 * until the mapping's adoption commits it. */
static void prewrite(int fd, long pre, uint64_t seed)
{
	static uint64_t buf[FILE_PAGES][PG / 8];

	/* One write: one extent where the filesystem can, so the mapping can
	 * adopt its whole grains (it does not join adjacent extents). */
	for (long p = 0; p < pre; p++)
		fill(buf[p], (uint32_t)p, ~seed);
	if (pre > 0 && pwrite(fd, buf, (size_t)pre * PG, 0) != (ssize_t)pre * PG)
		die("pwrite");
}

static void *map_case(const struct args *a, int fd)
{
	size_t len = (size_t)FILE_PAGES * PG;
	int lib = strncmp(a->mode, "plain", 5) != 0;
	void *p = lib ? syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
		      : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	enum syncmap_mode want = !lib				  ? SYNCMAP_MODE_NONE
				 : strcmp(a->mode, "kernel") == 0 ? SYNCMAP_MODE_KERNEL
								  : SYNCMAP_MODE_FAULT;
	const char *persist = "cpu";
	struct syncmap_stats st;
	struct sm_region *r;

	if (p == MAP_FAILED)
		die("mmap");
	if (!strcmp(a->mode, "plain-msync"))
		persist = "msync";
	if (lib && sm_region_get((uintptr_t)p, &r) == SM_FOUND) {
		persist = r->cpu_persist != NULL ? "cpu" : "msync";
		sm_region_put(r);
	}
	syncmap_stats_get(&st); /* what the mapping adopted: the pre-written pages */
	printf("SMVM: start case mode=%s persist=%s grain=%zu presync=%d depth=%d reserve=%d flush=%s "
	       "pre=%ld "
	       "adopted=%llu lag=%ld\n",
	       mode_name(syncmap_mode(p)), persist, sm_cfg.grain, sm_cfg.presync, sm_cfg.presync_depth,
	       sm_cfg.reserve, sm_flush_cpu_name(), a->pre, (unsigned long long)st.bytes_prepared / PG,
	       a->lag);
	if (syncmap_mode(p) != want || (a->persist != NULL && strcmp(a->persist, persist) != 0)) {
		printf("SMVM: error: case wanted mode %s persist %s, got %s %s\n", mode_name(want),
		       a->persist ? a->persist : "any", mode_name(syncmap_mode(p)), persist);
		exit(1);
	}
	return p;
}

struct writer {
	unsigned char *p;
	int plain, msync_only;
	pmem2_persist_fn flush;
};

static void persist_page(const struct writer *w, uint32_t page)
{
	unsigned char *a = w->p + (size_t)page * PG;

	if (w->msync_only) {
		if (msync(a, PG, MS_SYNC) != 0)
			die("msync");
	} else if (w->plain) {
		w->flush(a, PG);
	} else if (syncmap_persist(a, PG) != 0) {
		die("syncmap_persist");
	}
}

/* The control's page n, stored and CPU-flushed at once: acknowledged. */
static void write_control(const struct writer *c, const uint32_t *corder, long n, uint64_t seed)
{
	fill((uint64_t *)(c->p + (size_t)corder[n] * PG), corder[n], seed);
	persist_page(c, corder[n]);
	if ((n + 1) % REPORT_EVERY == 0)
		printf("SMVM: p control %ld %ld\n", n + 1, n + 1);
}

static int cmd_write(const struct args *a)
{
	static uint32_t order[FILE_PAGES], corder[FILE_PAGES];
	struct writer w = {0}, c = {0};
	long cdone = 0, acked = 0, chead = a->cpages < CONTROL_HEAD ? a->cpages : CONTROL_HEAD;
	int fd, cfd = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (a->mode == NULL || (a->control != NULL && a->cpages == 0))
		usage();
	if (a->crash != 0 || (a->end != NULL && !strcmp(a->end, "crash"))) {
		sysrq_fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
		if (sysrq_fd < 0)
			die("/proc/sysrq-trigger");
	}
	write_order(order, !strcmp(a->order, "rand"), a->pre, a->seed);
	fd = open_sparse(a->file);
	prewrite(fd, a->pre, a->seed);
	if (a->control != NULL) {
		cfd = open_sparse(a->control);
		c.p = mmap(NULL, (size_t)FILE_PAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
		if (c.p == MAP_FAILED)
			die("mmap control");
		c.plain = 1;
		c.flush = sm_flush_cpu_fn();
		write_order(corder, !strcmp(a->order, "rand"), 0, a->seed + 1);
		printf("SMVM: start control mode=NONE persist=cpu\n");
	}
	w.p = map_case(a, fd);
	/* A head start, so that even a crash at the case's first fault finds
	 * control pages acknowledged. */
	for (; cdone < chead; cdone++)
		write_control(&c, corder, cdone, a->seed + 1);
	w.plain = strncmp(a->mode, "plain", 5) == 0;
	w.msync_only = !strcmp(a->mode, "plain-msync");
	w.flush = sm_flush_cpu_fn();
	for (long i = 0; i < a->pages; i++) {
		fill((uint64_t *)(w.p + (size_t)order[i] * PG), order[i], a->seed);
		/* The first store of page i has returned. */
		if (a->crash == i + 1 && !strcmp(a->stage, "store"))
			reset("after-store", i + 1);
		if (a->mark == i + 1)
			printf("SMVM: crashpoint\n");
		/* The host reads the console a few ms to seconds late: stop a
		 * little after the mark rather than let a fast writer finish. */
		if (a->mark != 0 && i + 1 == a->mark + MARK_RUN) {
			printf("SMVM: waiting for the kill\n");
			pause();
		}
		if (i >= a->lag) {
			persist_page(&w, order[i - a->lag]);
			acked = i - a->lag + 1;
		}
		for (long ct = chead + (i + 1) * (a->cpages - chead) / a->pages; cdone < ct; cdone++)
			write_control(&c, corder, cdone, a->seed + 1);
		if ((i + 1) % REPORT_EVERY == 0) {
			printf("SMVM: p case %ld %ld\n", i + 1, acked);
			/* The guest has one vCPU: without a pause the engine
			 * thread would run only when the writer blocks in a
			 * fault, never beside it as on a machine with two. */
			if (a->pace > 0)
				nanosleep(&(struct timespec){0, a->pace * 1000000}, NULL);
			else
				sched_yield();
		}
		if (a->crash == i + 1)
			reset("after-persist", i + 1);
	}
	for (long j = acked; j < a->pages; j++)
		persist_page(&w, order[j]);
	printf("SMVM: p case %ld %ld\n", a->pages, a->pages);
	printf("SMVM: done case %ld\n", a->pages);
	if (a->end != NULL && !strcmp(a->end, "crash"))
		reset("at-end", a->pages);
	pause(); /* until the crash */
	return 0;
}

/* Pages of fd inside an allocated, written extent: FIEMAP, no hole, not
 * unwritten (reads as zeros), not delalloc or unknown (not on the media). */
static void backed_pages(int fd, unsigned char *backed)
{
	const uint32_t bad = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNWRITTEN;
	union {
		struct fiemap fm;
		char room[sizeof(struct fiemap) + 512 * sizeof(struct fiemap_extent)];
	} q;
	uint64_t at = 0, end = (uint64_t)FILE_PAGES * PG;

	memset(backed, 0, FILE_PAGES);
	while (at < end) {
		memset(&q.fm, 0, sizeof(q.fm));
		q.fm.fm_start = at;
		q.fm.fm_length = end - at;
		q.fm.fm_extent_count = 512;
		if (ioctl(fd, FS_IOC_FIEMAP, &q.fm) != 0)
			die("FIEMAP");
		if (q.fm.fm_mapped_extents == 0)
			break;
		for (uint32_t i = 0; i < q.fm.fm_mapped_extents; i++) {
			const struct fiemap_extent *x = &q.fm.fm_extents[i];
			uint64_t p0 = x->fe_logical / PG, p1 = (x->fe_logical + x->fe_length) / PG;

			if (getenv("CRASH_FIEMAP_DEBUG"))
				printf("SMVM: extent %llu+%llu flags=%#x\n",
				       (unsigned long long)x->fe_logical, (unsigned long long)x->fe_length,
				       x->fe_flags);

			for (uint64_t pg = p0; !(x->fe_flags & bad) && pg < p1 && pg < FILE_PAGES; pg++)
				backed[pg] = 1;
			at = x->fe_logical + x->fe_length;
			if (x->fe_flags & FIEMAP_EXTENT_LAST)
				at = end;
		}
	}
}

static int cmd_check(const struct args *a)
{
	static uint32_t order[FILE_PAGES];
	static uint64_t buf[PG / 8];
	static unsigned char backed[FILE_PAGES];
	long intact_acked = 0, intact_total = 0, unbacked = 0;
	int fd = open(a->file, O_RDONLY);
	struct stat st;

	if (fd < 0) {
		/* The file's creation was fsynced before any write: missing is a loss. */
		printf("SMVM: result %s acked=%ld intact_acked=0 lost=%ld stored=%ld unbacked=%ld "
		       "intact_total=0 "
		       "blocks=0 missing=1\n",
		       a->tag, a->acked, a->acked, a->stored, a->stored);
		return 0;
	}
	write_order(order, !strcmp(a->order, "rand"), a->pre, a->seed);
	for (long i = 0; i < a->pages; i++) {
		int ok = pread(fd, buf, PG, (off_t)order[i] * PG) == PG && intact(buf, order[i], a->seed);

		intact_total += ok;
		if (i < a->acked)
			intact_acked += ok;
	}
	backed_pages(fd, backed);
	for (long i = 0; i < a->stored; i++)
		unbacked += !backed[order[i]];
	fstat(fd, &st);
	printf("SMVM: result %s acked=%ld intact_acked=%ld lost=%ld stored=%ld unbacked=%ld intact_total=%ld "
	       "blocks=%lld\n",
	       a->tag, a->acked, intact_acked, a->acked - intact_acked, a->stored, unbacked, intact_total,
	       (long long)st.st_blocks);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct args a;

	if (argc < 2)
		usage();
	parse(argc - 2, argv + 2, &a);
	if (!strcmp(argv[1], "write"))
		return cmd_write(&a);
	if (!strcmp(argv[1], "check"))
		return cmd_check(&a);
	usage();
	return 2;
}
