/* SPDX-License-Identifier: MIT */
/* fiemap.h -- a file's block map as it is now (FIEMAP, nothing flushed to get it)
 *
 * Header-only, so that programs run under the preload shim (which must not
 * link the library a second time) use the same code as the linked tests.
 */
#ifndef SM_TEST_FIEMAP_H
#define SM_TEST_FIEMAP_H

#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#define FIEMAP_TEST_EXTENTS 4096

/* The extents intersecting [off, off + len), or NULL; free() it.  No
 * FIEMAP_FLAG_SYNC: the state as it is, unflushed, is what tests look at. */
static inline struct fiemap *fiemap_of(int fd, off_t off, size_t len)
{
	struct fiemap *fm = calloc(1, sizeof(*fm) + FIEMAP_TEST_EXTENTS * sizeof(struct fiemap_extent));

	if (fm == NULL)
		return NULL;
	fm->fm_start = (uint64_t)off;
	fm->fm_length = len;
	fm->fm_extent_count = FIEMAP_TEST_EXTENTS;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
		free(fm);
		return NULL;
	}
	return fm;
}

/* Is every byte of [off, off + len) in an extent that is allocated and
 * written (no DELALLOC, UNKNOWN or UNWRITTEN flag)?  1 yes, 0 no, -1 error.
 * *flags (if not NULL) gets the flags of the extents met, ORed. */
static inline int range_allocated_flags(int fd, off_t off, size_t len, uint32_t *flags)
{
	const uint32_t bad = FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_UNWRITTEN;
	uint64_t at = (uint64_t)off, end = (uint64_t)off + len;
	struct fiemap *fm = fiemap_of(fd, off, len);

	if (flags != NULL)
		*flags = 0;
	if (fm == NULL)
		return -1;
	/* Extents come sorted by logical offset: walk them over [at, end). */
	for (unsigned i = 0; i < fm->fm_mapped_extents && at < end; i++) {
		struct fiemap_extent *e = &fm->fm_extents[i];

		if (flags != NULL)
			*flags |= e->fe_flags;
		if (e->fe_logical + e->fe_length <= at)
			continue;
		if (e->fe_logical > at || (e->fe_flags & bad))
			break;
		at = e->fe_logical + e->fe_length;
	}
	free(fm);
	return at >= end;
}

static inline int range_allocated(int fd, off_t off, size_t len)
{
	return range_allocated_flags(fd, off, len, NULL);
}

/* Does any extent intersect [off, off + len)?  1, 0, or -1; *flags (if
 * not NULL) gets their flags, ORed. */
static inline int range_has_extent(int fd, off_t off, size_t len, uint32_t *flags)
{
	struct fiemap *fm = fiemap_of(fd, off, len);
	int any;

	if (flags != NULL)
		*flags = 0;
	if (fm == NULL)
		return -1;
	any = fm->fm_mapped_extents > 0;
	if (flags != NULL) {
		for (unsigned i = 0; i < fm->fm_mapped_extents; i++)
			*flags |= fm->fm_extents[i].fe_flags;
	}
	free(fm);
	return any;
}

/* Number of extents of the whole file, or -1. */
static inline long extent_count(int fd)
{
	struct fiemap *fm = fiemap_of(fd, 0, FIEMAP_MAX_OFFSET);
	long n;

	if (fm == NULL)
		return -1;
	n = (long)fm->fm_mapped_extents;
	free(fm);
	return n;
}

#endif
