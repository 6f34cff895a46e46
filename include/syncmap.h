/* SPDX-License-Identifier: MIT */
/* syncmap.h -- the MAP_SYNC guarantee on every Linux filesystem (public API) */
#ifndef SYNCMAP_H
#define SYNCMAP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; CMakeLists.txt reads it from here.  The
 * library the program runs with may be newer: ask syncmap_version(). */
#define SYNCMAP_VERSION_MAJOR 0
#define SYNCMAP_VERSION_MINOR 2
#define SYNCMAP_VERSION_PATCH 0
#define SYNCMAP_VERSION_HEX \
	((SYNCMAP_VERSION_MAJOR << 16) | (SYNCMAP_VERSION_MINOR << 8) | SYNCMAP_VERSION_PATCH)

#if defined(__GNUC__)
#define SYNCMAP_EXPORT __attribute__((visibility("default")))
#else
#define SYNCMAP_EXPORT
#endif

/*
 * The guarantee: while a block of a file is writably mapped through a mapping
 * made by syncmap_mmap() with MAP_SHARED and PROT_WRITE, that block is
 * allocated in the file at that offset, and the allocation is durable: after a
 * crash the file still has it.  The data stored into it is durable once
 * syncmap_persist() returned 0 for its range.
 */

enum syncmap_mode {
	SYNCMAP_MODE_NONE = 0,	 /* plain mmap: private, read-only, anonymous, ... */
	SYNCMAP_MODE_KERNEL = 1, /* the kernel's MAP_SYNC */
	SYNCMAP_MODE_FAULT = 2,	 /* first write to a grain faults; the library makes it durable */
};

/*
 * syncmap_mmap -- a drop-in for mmap(2).
 *
 * A MAP_SHARED (or MAP_SHARED_VALIDATE) mapping with PROT_WRITE of a regular
 * file gets the guarantee: KERNEL mode where the kernel accepts MAP_SYNC for
 * the file, FAULT mode where it refuses (EOPNOTSUPP, or EINVAL before 4.15).
 * Every other mapping is made by mmap(2) itself (mode NONE, no overhead).
 * A call that itself asks for MAP_SYNC goes to the kernel untouched: if the
 * kernel refuses, so does this call.
 *
 * The caller may close(fd) after the call, as with mmap(2); the library keeps
 * its own O_CLOEXEC descriptor of the file while a FAULT mapping exists.
 *
 * SYNCMAP_MODE=kernel makes the call fail with EOPNOTSUPP where MAP_SYNC is
 * refused; SYNCMAP_MODE=fault forces FAULT mode where it would be granted.
 *
 * Returns the address of the mapping, or MAP_FAILED with errno set to what
 * mmap(2) would set for the same arguments (EINVAL, EBADF, EACCES, ENODEV,
 * ENOMEM, EPERM, EOVERFLOW, ...), or EOPNOTSUPP as said above.  On failure no
 * mapping is left behind, except that a failed MAP_FIXED call may have
 * unmapped the target range, as mmap(2) may.
 */
SYNCMAP_EXPORT void *syncmap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

/*
 * syncmap_munmap -- munmap(2) that keeps the library's table of mappings right.
 * Any part of a mapping may be unmapped.  Returns 0, or -1 with errno EINVAL
 * (unaligned addr, len 0) and nothing unmapped.
 */
SYNCMAP_EXPORT int syncmap_munmap(void *addr, size_t len);

/*
 * syncmap_mprotect -- mprotect(2) that keeps the guarantee.  Adding PROT_WRITE
 * to a FAULT-mode range makes writable at once only the grains already made
 * durable; the rest stay read-only until their first write faults.  Returns 0,
 * or -1 with mprotect(2)'s errno (EINVAL, EACCES, ENOMEM); on failure the
 * protection of part of the range may have changed, as with mprotect(2).
 */
SYNCMAP_EXPORT int syncmap_mprotect(void *addr, size_t len, int prot);

/*
 * syncmap_mremap -- mremap(2) for syncmap mappings (MREMAP_MAYMOVE,
 * MREMAP_FIXED; the optional fifth argument is the new address).  A FAULT
 * mapping that must move is mapped afresh from the same file at the new
 * place and its durable grains carried over; growing it maps the new part
 * with the guarantee.  MREMAP_DONTUNMAP is refused with EINVAL for syncmap
 * mappings.  Returns the new address, or MAP_FAILED with mremap(2)'s errno;
 * on failure the old mapping is unchanged.
 */
SYNCMAP_EXPORT void *syncmap_mremap(void *old_addr, size_t old_len, size_t new_len, int flags, ...);

/* syncmap_mode -- the mode of the syncmap mapping holding addr; NONE for any other address. */
SYNCMAP_EXPORT enum syncmap_mode syncmap_mode(const void *addr);

/*
 * syncmap_persist -- make the stores in [addr, addr+len) durable.
 * KERNEL mode (and FAULT mode where a CPU flush is known to be enough): a CPU
 * cache flush (libpmem2's persist function), no system call.  Otherwise
 * msync(MS_SYNC) of the pages holding the range.  Addresses outside syncmap
 * mappings are msync'ed too.  Returns 0, or -1 with errno from msync(2)
 * (EIO, ENOSPC, ENOMEM for an unmapped range).
 */
SYNCMAP_EXPORT int syncmap_persist(const void *addr, size_t len);

/*
 * syncmap_prepare -- make every grain of [addr, addr+len) durable-allocated
 * and writable now, without faults.  Use it before passing a buffer inside a
 * FAULT mapping to a system call that writes into it (read(2), recv(2), ...):
 * the kernel reports EFAULT for such writes instead of faulting.  In KERNEL
 * mode the kernel's synchronous faults are taken now (MADV_POPULATE_WRITE).
 * Returns 0, or -1 with errno: ENOSPC, EDQUOT, EIO (nothing in the failing
 * grain was made writable), ENXIO (range beyond the end of the file).
 */
SYNCMAP_EXPORT int syncmap_prepare(void *addr, size_t len);

/*
 * syncmap_prepare_async -- queue syncmap_prepare() of the range on the
 * library's background thread and return at once.  Returns 0, or -1 with
 * errno ENOMEM (queue full) or EAGAIN (no background thread could be started).
 */
SYNCMAP_EXPORT int syncmap_prepare_async(void *addr, size_t len);

/*
 * syncmap_handle_fault -- for programs that own SIGSEGV: call it first from
 * your handler.  Returns 1 if the fault was the library's and has been dealt
 * with (return from your handler; the write is retried), 0 if it is not (handle
 * it as your own).  Async-signal-safe.
 */
SYNCMAP_EXPORT int syncmap_handle_fault(int sig, siginfo_t *si, void *uctx);

/*
 * syncmap_file_changed -- this process freed or moved the blocks of the file
 * open as fd under [off, off+len) (punch hole, truncate, collapse/insert
 * range, ...).  FAULT mappings of the file lose write access to those ranges,
 * so the next write there is made durable again.  len 0 means "to the end of
 * the file".  Returns 0, or -1 with errno EBADF or EINVAL (negative off/len).
 */
SYNCMAP_EXPORT int syncmap_file_changed(int fd, off_t off, off_t len);

struct syncmap_stats {
	uint64_t maps_kernel, maps_fault; /* mappings made in each mode */
	uint64_t faults;		  /* write faults handled in FAULT mode */
	uint64_t syncs;			  /* durability syncs issued (msync/fdatasync calls) */
	uint64_t bytes_prepared;	  /* bytes made durable-writable, all paths */
	uint64_t presync_grains;	  /* grains readied ahead of the writer */
	uint64_t errors;		  /* faults that could not be made durable */
	/* Room to grow without changing the struct's size (the ABI): a later
	 * version puts new counters here.  Zero until then. */
	uint64_t spare[9];
};

/* syncmap_stats_get -- process-wide counters since start (or fork). */
SYNCMAP_EXPORT void syncmap_stats_get(struct syncmap_stats *out);

/* syncmap_version -- the version of the library the program runs with, as
 * (major << 16) | (minor << 8) | patch: compare with SYNCMAP_VERSION_HEX,
 * the version the program was built against.  Never fails. */
SYNCMAP_EXPORT unsigned syncmap_version(void);

/* syncmap_version_string -- the same as "major.minor.patch", a static string. */
SYNCMAP_EXPORT const char *syncmap_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
