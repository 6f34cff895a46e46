/* SPDX-License-Identifier: MIT */
/* pmlog.c -- the log: recovery at open, appends through syncmap (or pwrite + fdatasync) */
#include "pmlog.h"

#include <syncmap.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libpmem2.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct pmlog {
	int fd;
	enum pmlog_backend backend;
	int readonly;
	char *base;   /* syncmap backend: the mapping of [0, cap) */
	size_t cap;   /* syncmap: mapped length == file size; fsync: file size */
	size_t tail;  /* offset of the next record */
	size_t ready; /* syncmap: [0, ready) was prepared (durable-allocated) */
	size_t chunk;
	uint64_t nrec;
	size_t torn;
	enum pmlog_stop torn_why;
	unsigned copy_flags; /* libpmem2 memcpy flags for this mapping's mode */
	const char *mode_name, *persist_name;
	char *buf; /* fsync backend: the batch being written */
	size_t bufcap;
};

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * libpmem2 hands out its memcpy through a pmem2_map.  The function depends on
 * the CPU and the granularity only, not on the mapping, so one map over one
 * anonymous page (as lib/flush.c does for persist) serves every log.  Cache
 * line granularity: the copy flushes what it stores, which is what KERNEL
 * mode needs, and PMEM2_F_MEM_NOFLUSH turns that off where msync persists.
 */
static pmem2_memcpy_fn pm_memcpy;
static pthread_once_t pm_once = PTHREAD_ONCE_INIT;

static void pm_init(void)
{
	struct pmem2_source *src = NULL;
	struct pmem2_map *map = NULL;
	size_t pg = page_size();
	void *p = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	if (pmem2_source_from_anon(&src, pg) != 0)
		goto fail;
	if (pmem2_map_from_existing(&map, src, p, pg, PMEM2_GRANULARITY_CACHE_LINE) != 0)
		goto fail;
	pm_memcpy = pmem2_get_memcpy_fn(map);
	pmem2_source_delete(&src);
	return; /* the map stays registered with libpmem2 for the process's life */
fail:
	if (src != NULL)
		pmem2_source_delete(&src);
	munmap(p, pg);
}

static void copy_in(struct pmlog *l, void *dst, const void *src, size_t n)
{
	if (n == 0)
		return; /* an empty record may come with a NULL pointer */
	if (pm_memcpy != NULL)
		pm_memcpy(dst, src, n, l->copy_flags);
	else
		memcpy(dst, src, n); /* libpmem2 unusable: syncmap_persist still flushes every line */
}

/* Tell syncmap_persist's two ways apart by what it does: msync counts as a
 * sync in the library's statistics, a CPU flush does not.  Run before any
 * write, while the background engine has nothing to sync. */
static void learn_persist_kind(struct pmlog *l)
{
	struct syncmap_stats a, b;
	int mode = syncmap_mode(l->base);

	syncmap_stats_get(&a);
	syncmap_persist(l->base, 1);
	syncmap_stats_get(&b);
	l->mode_name = mode == SYNCMAP_MODE_KERNEL  ? "syncmap KERNEL"
		       : mode == SYNCMAP_MODE_FAULT ? "syncmap FAULT"
						    : "syncmap NONE";
	l->persist_name = b.syncs > a.syncs ? "msync" : "cache-line flush";
	/* KERNEL mode: non-temporal stores for large copies and flushes for the
	 * rest, drained by syncmap_persist's fence.  Where msync persists, a
	 * flush of page-cache lines is wasted work: plain stores. */
	l->copy_flags = mode == SYNCMAP_MODE_KERNEL ? PMEM2_F_MEM_NODRAIN : PMEM2_F_MEM_NOFLUSH;
}

/* Map [0, size) of the file: writable through syncmap, or read-only. */
static int map_file(struct pmlog *l, size_t size)
{
	int prot = l->readonly ? PROT_READ : PROT_READ | PROT_WRITE;
	void *p = syncmap_mmap(NULL, size, prot, MAP_SHARED, l->fd, 0);

	if (p == MAP_FAILED)
		return -1;
	l->base = p;
	l->cap = size;
	return 0;
}

/* Grow the file to hold [0, need) and remap it.  On failure the old mapping
 * is still in place (syncmap_mremap leaves it unchanged); the file may have
 * grown by zeros, which the format ignores. */
static int grow(struct pmlog *l, size_t need)
{
	size_t cap = round_up(need, l->chunk);
	void *p;

	if (cap < need) {
		errno = EFBIG;
		return -1;
	}
	if (ftruncate(l->fd, (off_t)cap) != 0)
		return -1;
	p = syncmap_mremap(l->base, l->cap, cap, MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		/* Map afresh, then let the old mapping go: never be left with none. */
		p = syncmap_mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);
		if (p == MAP_FAILED)
			return -1;
		syncmap_munmap(l->base, l->cap);
	}
	l->base = p;
	l->cap = cap;
	return 0;
}

/*
 * Make [tail, need) writable without surprises: grown into the file, and its
 * blocks allocated and durable now.  Without the prepare, a FAULT mapping on
 * a full filesystem would answer the first store to a new grain with SIGBUS
 * (the kernel's MAP_SYNC does the same); prepared ahead, ENOSPC comes back
 * here as an error and nothing has been written.
 */
static int make_room(struct pmlog *l, size_t need)
{
	size_t from;

	if (need <= l->ready)
		return 0;
	if (need > l->cap && grow(l, need) != 0)
		return -1;
	from = l->ready & ~(page_size() - 1);
	if (syncmap_prepare(l->base + from, l->cap - from) != 0)
		return -1;
	l->ready = l->cap;
	return 0;
}

static int check_lengths(const struct iovec *recs, size_t n, size_t *total)
{
	*total = 0;
	for (size_t i = 0; i < n; i++) {
		if (recs[i].iov_len > PMLOG_MAX_RECORD) {
			errno = EMSGSIZE;
			return -1;
		}
		*total += pmlog_rec_size(recs[i].iov_len);
	}
	return 0;
}

/* Lay a record out at dst without its commit word (left zero).  The header
 * and the padding are plain stores; the data goes through copy. */
static void put_rec(struct pmlog *l, char *dst, const struct iovec *rec, uint32_t *crc_out)
{
	uint32_t len = (uint32_t)rec->iov_len, crc = pmlog_rec_crc(rec->iov_base, len);
	size_t co = pmlog_commit_off(len);

	memcpy(dst, &len, 4);
	memcpy(dst + 4, &crc, 4);
	if (l != NULL)
		copy_in(l, dst + PMLOG_REC_HDR, rec->iov_base, len);
	else if (len > 0)
		memcpy(dst + PMLOG_REC_HDR, rec->iov_base, len);
	/* Padding and commit word are zero already (everything past the tail
	 * is); stored again so that a retry over a failed append cannot leave a
	 * stale commit word in front of new data. */
	memset(dst + PMLOG_REC_HDR + len, 0, co + PMLOG_COMMIT_SIZE - PMLOG_REC_HDR - len);
	*crc_out = crc;
}

static int append_syncmap(struct pmlog *l, const struct iovec *recs, size_t n, size_t total)
{
	char *start, *p;
	char *first_commit = NULL, *last_commit = NULL;
	uint32_t *crcs, crc_one;

	if (make_room(l, l->tail + total) != 0)
		return -1;
	start = l->base + l->tail; /* make_room may have moved the mapping */
	crcs = n > 1 ? malloc(n * sizeof(*crcs)) : &crc_one;
	if (crcs == NULL)
		return -1;
	p = start;
	for (size_t i = 0; i < n; i++) {
		put_rec(l, p, &recs[i], &crcs[i]);
		p += pmlog_rec_size(recs[i].iov_len);
	}
	/* 1: the records, with their commit words still zero, reach the media. */
	if (syncmap_persist(start, total) != 0)
		goto fail;
	/* 2: only then the commit words, each one aligned 8-byte store. */
	p = start;
	for (size_t i = 0; i < n; i++) {
		uint64_t *cw = (uint64_t *)(void *)(p + pmlog_commit_off(recs[i].iov_len));

		*cw = pmlog_commit_word(crcs[i]);
		first_commit = first_commit != NULL ? first_commit : (char *)cw;
		last_commit = (char *)cw + PMLOG_COMMIT_SIZE;
		p += pmlog_rec_size(recs[i].iov_len);
	}
	if (n > 0 && syncmap_persist(first_commit, (size_t)(last_commit - first_commit)) != 0)
		goto fail;
	if (crcs != &crc_one)
		free(crcs);
	return 0;
fail:
	if (crcs != &crc_one) {
		int err = errno;

		free(crcs);
		errno = err;
	}
	return -1;
}

static int write_all(int fd, const char *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* The baseline: the same two steps with pwrite and fdatasync. */
static int append_fsync(struct pmlog *l, const struct iovec *recs, size_t n, size_t total)
{
	char *p;

	if (total > l->bufcap) {
		char *nb = realloc(l->buf, total);

		if (nb == NULL)
			return -1;
		l->buf = nb;
		l->bufcap = total;
	}
	p = l->buf;
	for (size_t i = 0; i < n; i++) {
		uint32_t crc;

		put_rec(NULL, p, &recs[i], &crc);
		p += pmlog_rec_size(recs[i].iov_len);
	}
	if (write_all(l->fd, l->buf, total, (off_t)l->tail) != 0 || fdatasync(l->fd) != 0)
		return -1;
	p = l->buf;
	for (size_t i = 0; i < n; i++) {
		uint32_t len = (uint32_t)recs[i].iov_len, crc;
		uint64_t cw;

		memcpy(&crc, p + 4, 4);
		cw = pmlog_commit_word(crc);
		memcpy(p + pmlog_commit_off(len), &cw, 8);
		p += pmlog_rec_size(len);
	}
	if (write_all(l->fd, l->buf, total, (off_t)l->tail) != 0 || fdatasync(l->fd) != 0)
		return -1;
	if (l->tail + total > l->cap)
		l->cap = l->tail + total;
	return 0;
}

int pmlog_append_many(struct pmlog *l, const struct iovec *recs, size_t n)
{
	size_t total;
	int rc;

	if (l->readonly) {
		errno = EBADF;
		return -1;
	}
	if (check_lengths(recs, n, &total) != 0)
		return -1;
	if (n == 0)
		return 0;
	rc = l->backend == PMLOG_FSYNC ? append_fsync(l, recs, n, total) : append_syncmap(l, recs, n, total);
	if (rc != 0)
		return -1;
	l->tail += total;
	l->nrec += n;
	return 0;
}

int pmlog_append(struct pmlog *l, const void *data, size_t len)
{
	struct iovec v = {.iov_base = (void *)data, .iov_len = len};

	return pmlog_append_many(l, &v, 1);
}

/* fsync(2) the directory holding path, so a file just created stays. */
static int sync_dir_of(const char *path)
{
	char copy[PATH_MAX];
	int fd, rc;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* A new (or all-zero) file: size it to one chunk, write the header durably. */
static int format(struct pmlog *l, const char *path)
{
	char hdr[PMLOG_HDR_SIZE];

	pmlog_hdr_init(hdr);
	if (l->backend == PMLOG_FSYNC) {
		if (write_all(l->fd, hdr, sizeof(hdr), 0) != 0 || fdatasync(l->fd) != 0)
			return -1;
		if (l->cap < PMLOG_HDR_SIZE)
			l->cap = PMLOG_HDR_SIZE;
	} else {
		if (make_room(l, PMLOG_HDR_SIZE) != 0)
			return -1;
		memcpy(l->base, hdr, sizeof(hdr));
		if (syncmap_persist(l->base, sizeof(hdr)) != 0)
			return -1;
	}
	l->tail = PMLOG_HDR_SIZE;
	return sync_dir_of(path);
}

/* Zero the torn tail [tail, end) and make that durable, so the next record
 * never lands in front of stale bytes. */
static int repair(struct pmlog *l, size_t end)
{
	if (l->backend == PMLOG_FSYNC) {
		static const char zeros[4096];

		for (size_t o = l->tail; o < end; o += sizeof(zeros)) {
			size_t n = end - o < sizeof(zeros) ? end - o : sizeof(zeros);

			if (write_all(l->fd, zeros, n, (off_t)o) != 0)
				return -1;
		}
		return fdatasync(l->fd);
	}
	if (make_room(l, end) != 0)
		return -1;
	memset(l->base + l->tail, 0, end - l->tail);
	return syncmap_persist(l->base + l->tail, end - l->tail);
}

/* Recovery: the scan over the file's bytes, then (if writable) the repair. */
static int recover(struct pmlog *l, const char *path, char *err, size_t errlen)
{
	struct pmlog_scan sc;
	char *img = l->base;
	int own_map = 0;

	if (l->cap == 0) {
		sc.hdr = PMLOG_HDR_ZERO;
		sc.dirty_end = 0;
	} else {
		if (img == NULL) { /* fsync backend: a read-only view for the scan */
			img = mmap(NULL, l->cap, PROT_READ, MAP_SHARED, l->fd, 0);
			if (img == MAP_FAILED) {
				set_err(err, errlen, "%s: cannot map: %s", path, strerror(errno));
				return -1;
			}
			own_map = 1;
		}
		pmlog_scan(img, l->cap, &sc, NULL, NULL);
		if (own_map)
			munmap(img, l->cap);
	}
	if (sc.hdr == PMLOG_HDR_ZERO && sc.dirty_end == 0) {
		if (l->readonly)
			return 0; /* an empty log: no records */
		if (format(l, path) != 0) {
			set_err(err, errlen, "%s: cannot format: %s", path, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (sc.hdr != PMLOG_HDR_OK) {
		set_err(err, errlen, "%s: %s", path,
			sc.hdr == PMLOG_HDR_ZERO ? "not a pmlog file (no header, but not empty)"
						 : pmlog_hdr_strerror(sc.hdr));
		errno = EINVAL;
		return -1;
	}
	l->tail = sc.tail;
	l->nrec = sc.nrec;
	l->torn = sc.dirty_end - sc.tail;
	l->torn_why = sc.why;
	/* Nothing is ever written below the tail's page: prepare from there. */
	l->ready = l->tail & ~(page_size() - 1);
	if (l->torn > 0 && !l->readonly && repair(l, sc.dirty_end) != 0) {
		set_err(err, errlen, "%s: cannot zero the torn tail: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int open_file(struct pmlog *l, const char *path, const struct pmlog_opts *o, char *err, size_t errlen)
{
	int flags = (l->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (o->create && !l->readonly ? O_CREAT : 0);
	struct stat st;

	l->fd = open(path, flags, 0644);
	if (l->fd < 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(l->fd, &st) != 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "%s: not a regular file", path);
		errno = EINVAL;
		return -1;
	}
	if ((uint64_t)st.st_size > SIZE_MAX / 2) {
		set_err(err, errlen, "%s: file too large", path);
		errno = EFBIG;
		return -1;
	}
	l->cap = (size_t)st.st_size;
	return 0;
}

struct pmlog *pmlog_open(const char *path, const struct pmlog_opts *opts, char *err, size_t errlen)
{
	static const struct pmlog_opts dflt;
	const struct pmlog_opts *o = opts != NULL ? opts : &dflt;
	struct pmlog *l = calloc(1, sizeof(*l));
	int e;

	if (l == NULL) {
		set_err(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	pthread_once(&pm_once, pm_init);
	l->fd = -1;
	l->backend = o->backend;
	l->readonly = o->readonly;
	l->chunk = o->chunk != 0 ? o->chunk : PMLOG_DEFAULT_CHUNK;
	l->mode_name = "write + fdatasync";
	l->persist_name = "fdatasync";
	if (l->chunk % page_size() != 0) {
		set_err(err, errlen, "%s: chunk size %zu is not a multiple of the page size %zu", path,
			l->chunk, page_size());
		errno = EINVAL;
		goto fail;
	}
	if (open_file(l, path, o, err, errlen) != 0)
		goto fail;
	if (l->backend == PMLOG_SYNCMAP) {
		/* An empty file is grown to one chunk first: mmap cannot map 0 bytes. */
		if (l->cap == 0 && !l->readonly && ftruncate(l->fd, (off_t)l->chunk) == 0)
			l->cap = l->chunk;
		if (l->cap > 0 && map_file(l, l->cap) != 0) {
			set_err(err, errlen, "%s: syncmap_mmap: %s", path, strerror(errno));
			goto fail;
		}
		if (l->base != NULL && !l->readonly)
			learn_persist_kind(l);
		else
			l->mode_name = l->persist_name = "read-only";
	}
	if (recover(l, path, err, errlen) != 0)
		goto fail;
	return l;
fail:
	e = errno;
	pmlog_close(l);
	errno = e;
	return NULL;
}

int pmlog_foreach(struct pmlog *l, pmlog_rec_fn fn, void *arg)
{
	struct pmlog_scan sc;
	void *img = l->base;

	if (l->cap == 0)
		return 0;
	if (img == NULL) {
		img = mmap(NULL, l->cap, PROT_READ, MAP_SHARED, l->fd, 0);
		if (img == MAP_FAILED)
			return -1;
	}
	/* Stop at the tail recovery found (and appends moved): on a read-only
	 * open, whatever lies past a torn record is not the log's. */
	pmlog_scan(img, l->tail > 0 ? l->tail : l->cap, &sc, fn, arg);
	if (img != l->base)
		munmap(img, l->cap);
	return 0;
}

int pmlog_close(struct pmlog *l)
{
	int rc = 0;

	if (l == NULL)
		return 0;
	if (l->base != NULL && syncmap_munmap(l->base, l->cap) != 0)
		rc = -1;
	if (l->fd >= 0 && close(l->fd) != 0)
		rc = -1;
	free(l->buf);
	free(l);
	return rc;
}

uint64_t pmlog_count(const struct pmlog *l)
{
	return l->nrec;
}

size_t pmlog_tail(const struct pmlog *l)
{
	return l->tail;
}

size_t pmlog_size(const struct pmlog *l)
{
	return l->cap;
}

size_t pmlog_torn(const struct pmlog *l, enum pmlog_stop *why)
{
	if (why != NULL)
		*why = l->torn_why;
	return l->torn;
}

const char *pmlog_mode_name(const struct pmlog *l)
{
	return l->mode_name;
}

const char *pmlog_persist_name(const struct pmlog *l)
{
	return l->persist_name;
}

void *pmlog_base(const struct pmlog *l)
{
	return l->base;
}
