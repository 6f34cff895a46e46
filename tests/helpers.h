/* SPDX-License-Identifier: MIT */
/* helpers.h -- shared test fixtures: loop-mounted filesystems, FIEMAP, /proc/self/maps */
#ifndef SM_TEST_HELPERS_H
#define SM_TEST_HELPERS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fiemap.h"
#include "procmaps.h"

/* A fresh filesystem on a loop device over /dev/shm, mounted in a private
 * mount namespace of the calling process: when the process ends, however it
 * ends, the kernel unmounts it and detaches the loop device. */
struct loopfs {
	char img[256]; /* backing image: unlinked once mounted, the loop device holds it */
	char dev[256]; /* the loop device (/dev/loopN): read it for the device's state */
	char dir[256]; /* mount point */
	int own_dir;   /* a directory in SYNCMAP_TEST_DIR, not a mount */
};

/* 0, or -1 with a reason in why (not root, no loop devices, mkfs failed):
 * the caller reports a skip, never a pass. */
int loopfs_make(struct loopfs *fs, const char *fstype, unsigned mib, const char *mount_opts, char *why,
		size_t whylen);
/* Mount an existing image (a copy of fs->img, say) at a new mount point. */
int loopfs_mount_image(struct loopfs *fs, const char *img, const char *mount_opts, char *why, size_t whylen);
void loopfs_done(struct loopfs *fs);

/* Skip the current Criterion test unless a loop filesystem could be made.
 * With SYNCMAP_TEST_DIR set (the DAX guest), a fresh directory there
 * stands in for it. */
#define LOOPFS_OR_SKIP(fs, type, mib, opts)                                            \
	do {                                                                           \
		char why_[256];                                                        \
		if (loopfs_make((fs), (type), (mib), (opts), why_, sizeof(why_)) != 0) \
			cr_skip_test("needs a loop-mounted %s: %s", (type), why_);     \
	} while (0)

/* The same for tests that need a filesystem of their own (its size, its
 * image, page-cache behaviour): they skip where SYNCMAP_TEST_DIR is set. */
#define OWN_LOOPFS_OR_SKIP(fs, type, mib, opts)                                                           \
	do {                                                                                              \
		if (getenv("SYNCMAP_TEST_DIR") != NULL)                                                   \
			cr_skip_test("needs a loop-mounted %s of its own, not SYNCMAP_TEST_DIR", (type)); \
		LOOPFS_OR_SKIP(fs, type, mib, opts);                                                      \
	} while (0)

/* The directory for test files: SYNCMAP_TEST_DIR (the DAX guest points it at
 * a DAX mount), else /dev/shm. */
const char *test_dir(void);

/* The mode syncmap_mmap should give a shared writable mapping of a file in
 * dir: KERNEL where the kernel grants MAP_SYNC there and SYNCMAP_MODE is not
 * "fault", FAULT otherwise (probed with a raw mmap). */
enum syncmap_mode expected_mode(const char *dir);

/* 1 if statx says the open file is DAX. */
int fd_is_dax(int fd);

/* Tests of what FAULT mode does skip where the mapping got KERNEL mode. */
#define FAULT_OR_SKIP(p)                                                                        \
	do {                                                                                    \
		if (syncmap_mode(p) == SYNCMAP_MODE_KERNEL)                                     \
			cr_skip_test("FAULT-mode behaviour, and this mapping got KERNEL mode"); \
	} while (0)

/* A fresh directory base/prefix-XXXXXX in buf (mkdtemp); NULL on error. */
char *scratch_dir(char *buf, size_t len, const char *base, const char *prefix);
/* rm -rf dir (nothing if dir is empty). */
void remove_tree(const char *dir);

/* A sparse file of len bytes in test_dir(), already unlinked (the descriptor
 * keeps it): tests that end by a signal leave nothing behind.  fd or -1. */
int unlinked_file(size_t len);

/* A new sparse file of len bytes under dir; returns an O_RDWR fd, path in out. */
int make_sparse(const char *dir, const char *name, size_t len, char *out, size_t outlen);

/* Fill the process's VMA budget with an anonymous mapping of alternating
 * protections, leaving `spare` VMAs below vm.max_map_count: a test then
 * runs into the limit without changing the system's setting.  Returns the
 * filler (munmap it, *len bytes), or NULL. */
void *fill_vmas(long spare, size_t *len);

/* Deterministic pattern byte for page i of a test file. */
static inline unsigned char pattern(size_t i, unsigned salt)
{
	return (unsigned char)(((i * 2654435761u) >> 7) ^ salt ^ 0x5a);
}

/* xorshift64 */
static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Set an environment variable and reload the library's settings. */
void sm_test_env(const char *name, const char *value);

#endif
