/* crash.c -- the guest side of the crash suite: write and acknowledge pages, crash, count survivors
 *
 *   crash info DIR
 *       the mode syncmap_mmap gives a file in DIR, the persist kind, the CPU
 *       flush instruction libpmem2 uses
 *   crash write FILE MODE ORDER PAGES SEED TAG [STARTED]
 *       MODE kernel|fault|plain, ORDER seq|rand.  Maps a fresh sparse file,
 *       writes PAGES pages with a pattern, persists each (syncmap_persist;
 *       for plain, the same CPU flush KERNEL mode uses, which is exactly what
 *       a program told "MAP_SYNC granted" would do), and acknowledges them in
 *       "SMVM: ack TAG N" lines: N pages are durable; creates the file
 *       STARTED after the first acknowledgement.  Then waits for the crash.
 *   crash sysrq-after MS
 *       crash the machine MS milliseconds from now (echo b > /proc/sysrq-trigger)
 *   crash check FILE ORDER PAGES SEED ACKED TAG
 *       after the crash: of the first ACKED pages in write order, how many
 *       read back exactly?  "SMVM: result TAG acked=A intact_acked=I lost=L
 *       intact_total=T blocks=B"
 *
 * TCG does not model CPU caches: what the crash tests prove is that the file
 * kept its blocks (metadata durability), not that every line was flushed.
 */
#include "config.h"
#include "flush.h"
#include "region.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define FILE_PAGES 16384 /* 64 MiB sparse file */
#define ACK_EVERY 8

static void die(const char *what)
{
	printf("SMVM: error: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* The i-th page written, in file pages: seq = 0, 1, 2...; rand = a fixed
 * permutation of the file's pages drawn from the seed. */
static void write_order(uint32_t *order, int rand, uint64_t seed)
{
	for (uint32_t i = 0; i < FILE_PAGES; i++)
		order[i] = i;
	if (!rand)
		return;
	for (uint32_t i = FILE_PAGES - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(mix(seed + i) % (i + 1)), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
}

static void fill(uint64_t *w, uint32_t page, uint64_t seed)
{
	for (size_t k = 0; k < PG / 8; k++)
		w[k] = mix(seed ^ ((uint64_t)page << 20) ^ k) | 1; /* never zero: a hole reads as zeros */
}

static int intact(const uint64_t *w, uint32_t page, uint64_t seed)
{
	for (size_t k = 0; k < PG / 8; k++)
		if (w[k] != (mix(seed ^ ((uint64_t)page << 20) ^ k) | 1))
			return 0;
	return 1;
}

static const char *mode_name(enum syncmap_mode m)
{
	return m == SYNCMAP_MODE_KERNEL ? "KERNEL" : m == SYNCMAP_MODE_FAULT ? "FAULT" : "NONE";
}

static int cmd_info(const char *dir)
{
	char path[512];
	int fd;
	void *p;

	snprintf(path, sizeof(path), "%s/.info-probe", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, 1 << 20) != 0)
		die(path);
	p = syncmap_mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("syncmap_mmap");
	struct sm_region *r;
	const char *persist = "?";

	if (sm_region_get((uintptr_t)p, &r) == SM_FOUND) {
		persist = r->cpu_persist != NULL ? "cpu" : "msync";
		sm_region_put(r);
	}
	printf("SMVM: info dir=%s mode=%s persist=%s cpu_flush=%s eadr=%d grain=%zu presync=%d depth=%d "
	       "reserve=%d\n",
	       dir, mode_name(syncmap_mode(p)), persist, sm_flush_cpu_name(), sm_flush_eadr(), sm_cfg.grain,
	       sm_cfg.presync, sm_cfg.presync_depth, sm_cfg.reserve);
	syncmap_munmap(p, 1 << 20);
	close(fd);
	unlink(path);
	return 0;
}

static int cmd_write(const char *file, const char *mode, const char *order_s, int pages, uint64_t seed,
		     const char *tag, const char *started)
{
	static uint32_t order[FILE_PAGES];
	int plain = strcmp(mode, "plain") == 0, fd;
	size_t len = (size_t)FILE_PAGES * PG;
	pmem2_persist_fn flush = sm_flush_cpu_fn();
	unsigned char *p;
	enum syncmap_mode got;

	write_order(order, strcmp(order_s, "rand") == 0, seed);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)len) != 0 || fsync(fd) != 0)
		die(file);
	if (plain)
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	else
		p = syncmap_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	got = syncmap_mode(p);
	if ((strcmp(mode, "kernel") == 0 && got != SYNCMAP_MODE_KERNEL) ||
	    (strcmp(mode, "fault") == 0 && got != SYNCMAP_MODE_FAULT) ||
	    (plain && got != SYNCMAP_MODE_NONE)) {
		printf("SMVM: error: %s asked for %s, got mode %s\n", tag, mode, mode_name(got));
		return 1;
	}
	printf("SMVM: start %s mode=%s\n", tag, mode_name(got));
	fflush(stdout);
	for (int i = 0; i < pages; i++) {
		unsigned char *page = p + (size_t)order[i] * PG;

		fill((uint64_t *)page, order[i], seed);
		if (plain)
			flush(page, PG);
		else if (syncmap_persist(page, PG) != 0)
			die("syncmap_persist");
		/* Acknowledged only after persist returned: the host counts an ack
		 * only once it saw it, so it never counts more than was durable. */
		if ((i + 1) % ACK_EVERY == 0 || i + 1 == pages) {
			printf("SMVM: ack %s %d\n", tag, i + 1);
			fflush(stdout);
		}
		if (i + 1 == ACK_EVERY && started != NULL)
			close(open(started, O_WRONLY | O_CREAT, 0644)); /* the script waits for it */
	}
	printf("SMVM: done %s %d\n", tag, pages);
	fflush(stdout);
	pause(); /* until the crash */
	return 0;
}

static int cmd_check(const char *file, const char *order_s, int pages, uint64_t seed, int acked,
		     const char *tag)
{
	static uint32_t order[FILE_PAGES];
	static uint64_t buf[PG / 8];
	int fd = open(file, O_RDONLY), intact_acked = 0, intact_total = 0;
	struct stat st;

	if (fd < 0) {
		/* The file's creation was fsynced before any write: missing is a loss. */
		printf("SMVM: result %s acked=%d intact_acked=0 lost=%d intact_total=0 blocks=0 missing=1\n",
		       tag, acked, acked);
		return 0;
	}
	write_order(order, strcmp(order_s, "rand") == 0, seed);
	for (int i = 0; i < pages; i++) {
		int ok = pread(fd, buf, PG, (off_t)order[i] * PG) == PG && intact(buf, order[i], seed);

		intact_total += ok;
		if (i < acked)
			intact_acked += ok;
	}
	fstat(fd, &st);
	printf("SMVM: result %s acked=%d intact_acked=%d lost=%d intact_total=%d blocks=%lld\n", tag, acked,
	       intact_acked, acked - intact_acked, intact_total, (long long)st.st_blocks);
	close(fd);
	return 0;
}

static int cmd_sysrq_after(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	int fd = open("/proc/sysrq-trigger", O_WRONLY);

	if (fd < 0)
		die("/proc/sysrq-trigger");
	nanosleep(&ts, NULL);
	printf("SMVM-CRASH: sysrq after %ld ms\n", ms);
	fflush(stdout);
	if (write(fd, "b", 1) != 1)
		die("sysrq");
	pause();
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && strcmp(argv[1], "info") == 0)
		return cmd_info(argv[2]);
	if ((argc == 8 || argc == 9) && strcmp(argv[1], "write") == 0 && atoi(argv[5]) > 0 &&
	    atoi(argv[5]) <= FILE_PAGES)
		return cmd_write(argv[2], argv[3], argv[4], atoi(argv[5]), strtoull(argv[6], NULL, 0),
				 argv[7], argc == 9 ? argv[8] : NULL);
	if (argc == 3 && strcmp(argv[1], "sysrq-after") == 0)
		return cmd_sysrq_after(atol(argv[2]));
	if (argc == 8 && strcmp(argv[1], "check") == 0 && atoi(argv[4]) > 0 && atoi(argv[4]) <= FILE_PAGES)
		return cmd_check(argv[2], argv[3], atoi(argv[4]), strtoull(argv[5], NULL, 0), atoi(argv[6]),
				 argv[7]);
	fprintf(stderr,
		"usage: crash info DIR | write FILE MODE ORDER PAGES SEED TAG [STARTED] | sysrq-after MS |\n"
		"       check FILE ORDER PAGES SEED ACKED TAG\n");
	return 2;
}
