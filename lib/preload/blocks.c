/* blocks.c -- truncate and fallocate: blocks the program frees under its FAULT mappings are re-protected
 *
 * What FAULT mode made writable stays writable.  Once the blocks beneath
 * are freed (a hole punched, the file cut short), the next write there
 * would allocate again with no sync, and the guarantee would be gone for
 * that range.  So after the kernel has changed the blocks, the library takes
 * write access back (syncmap_file_changed): the next write faults and is
 * made durable again.  A write racing the change itself, from another
 * thread, can slip between the two; that is the program racing its own hole.
 */
#include "preload.h"

#include "region.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is there any mapping of the library's at all?  Lock-free; when there is
 * none, nothing can need re-protecting. */
static int any_region(void)
{
	return pl_on() && sm_regions_any(0, UINTPTR_MAX);
}

static void changed(int fd, off_t off, off_t len)
{
	int saved = errno;

	if (syncmap_file_changed(fd, off, len) == 0)
		PL_STAT_ADD(files_changed, 1);
	errno = saved;
}

/* Only a shrink frees blocks: growing adds a hole past the old EOF, where
 * the mapping was never made writable. */
static int shrinks(const struct stat *st, off_t len)
{
	return S_ISREG(st->st_mode) && len < st->st_size;
}

PL_EXPORT int ftruncate(int fd, off_t len)
{
	struct stat st;
	int track = any_region() && fstat(fd, &st) == 0 && shrinks(&st, len);
	int rc = REAL(ftruncate)(fd, len);

	if (rc == 0 && track)
		changed(fd, len, 0);
	return rc;
}

PL_EXPORT int ftruncate64(int fd, off64_t len)
{
	return ftruncate(fd, len);
}

PL_EXPORT int truncate(const char *path, off_t len)
{
	struct stat st;
	int track = any_region() && stat(path, &st) == 0 && shrinks(&st, len);
	int rc = REAL(truncate)(path, len);

	if (rc == 0 && track) {
		/* O_PATH: the file may be writable to us and not readable; the
		 * library only needs its identity. */
		int fd = open(path, O_PATH | O_CLOEXEC);

		if (fd >= 0) {
			changed(fd, len, 0);
			close(fd);
		}
	}
	return rc;
}

PL_EXPORT int truncate64(const char *path, off64_t len)
{
	return truncate(path, len);
}

PL_EXPORT int fallocate(int fd, int mode, off_t off, off_t len)
{
	int rc = REAL(fallocate)(fd, mode, off, len);

	/* Plain allocation (mode 0, KEEP_SIZE) fills holes and leaves written
	 * blocks alone.  Every other mode may free, unwrite (ZERO_RANGE leaves
	 * unwritten extents on ext4), share or move blocks; collapse and insert
	 * move everything after off. */
	if (rc == 0 && (mode & ~FALLOC_FL_KEEP_SIZE) != 0 && any_region())
		changed(fd, off, (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) ? 0 : len);
	return rc;
}

PL_EXPORT int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	return fallocate(fd, mode, off, len);
}
