/* SPDX-License-Identifier: MIT */
/* pmlog.h -- an append-only log of records made durable with libsyncmap
 *
 * Records are copied into a syncmap mapping of the file with libpmem2's
 * memcpy and made durable with syncmap_persist() (a cache-line flush in
 * KERNEL mode, msync in FAULT mode); each record's commit word is written
 * after the record is durable, then persisted itself.  Opening a log runs
 * recovery: the records are checked up to the first one that is torn, and a
 * writable open zeroes what follows, so appends continue after the last
 * valid record.  The file grows by whole chunks, remapped with
 * syncmap_mremap().
 *
 * The PMLOG_FSYNC backend writes the same file format with pwrite(2) and
 * fdatasync(2) instead: the baseline the syncmap backend is measured against.
 *
 * A struct pmlog is not thread-safe: one thread uses it at a time.
 */
#ifndef PMLOG_H
#define PMLOG_H

#include "format.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define PMLOG_DEFAULT_CHUNK ((size_t)1 << 20)

enum pmlog_backend {
	PMLOG_SYNCMAP = 0, /* syncmap_mmap + libpmem2 memcpy + syncmap_persist */
	PMLOG_FSYNC = 1,   /* pwrite + fdatasync */
};

struct pmlog_opts {
	enum pmlog_backend backend;
	size_t chunk; /* growth step in bytes (multiple of the page size); 0: default */
	int readonly; /* open for reading: nothing is written, a torn tail is only reported */
	int create;   /* create the file if it does not exist */
};

struct pmlog;

/*
 * pmlog_open -- open (and recover) the log at path.  Returns the log, or NULL
 * with errno set and a message naming the problem in err: ENOENT, EACCES, ...
 * from open(2); EINVAL for a file that is not a pmlog log (the file is left
 * untouched); ENOSPC, EIO while formatting or repairing.
 */
struct pmlog *pmlog_open(const char *path, const struct pmlog_opts *opts, char *err, size_t errlen);

/*
 * pmlog_append_many -- append n records, durable when it returns 0.  Returns
 * 0, or -1 with errno: EMSGSIZE (a record above PMLOG_MAX_RECORD; nothing
 * written), EBADF (read-only log), ENOSPC/EDQUOT/EIO/ENOMEM (growing, preparing
 * or persisting failed).  After a failure none of the n records counts as
 * appended, though some may be found in the file after a crash.
 */
int pmlog_append_many(struct pmlog *log, const struct iovec *recs, size_t n);
int pmlog_append(struct pmlog *log, const void *data, size_t len);

/* Call fn for every valid record, in order.  0, or -1/errno. */
int pmlog_foreach(struct pmlog *log, pmlog_rec_fn fn, void *arg);

/* Unmap and close; everything appended is already durable.  0, or -1/errno. */
int pmlog_close(struct pmlog *log);

uint64_t pmlog_count(const struct pmlog *log); /* valid records */
size_t pmlog_tail(const struct pmlog *log);    /* file offset of the next record */
size_t pmlog_size(const struct pmlog *log);    /* file size */

/* The torn tail recovery found at open: its length in bytes (0 if none), and
 * why the records ended there.  A writable open has zeroed it already. */
size_t pmlog_torn(const struct pmlog *log, enum pmlog_stop *why);

/* How appends become durable: "syncmap KERNEL", "syncmap FAULT", "fdatasync", ... */
const char *pmlog_mode_name(const struct pmlog *log);
/* "cache-line flush" or "msync" for the syncmap backend, "fdatasync" otherwise. */
const char *pmlog_persist_name(const struct pmlog *log);

/* The mapping (syncmap backend, NULL otherwise): for syncmap_mode() and tests. */
void *pmlog_base(const struct pmlog *log);

#endif
