/* SPDX-License-Identifier: MIT */
/* blocks.c -- truncate, fallocate, reflink: blocks the program frees or shares under its FAULT mappings are re-protected
 *
 * What FAULT mode made writable stays writable.  Once the blocks beneath
 * are freed (a hole punched, the file cut short), the next write there
 * would allocate again with no sync, and the guarantee would be gone for
 * that range.  So after the kernel has changed the blocks, the library takes
 * write access back (syncmap_file_changed): the next write faults and is
 * made durable again.  A write racing the change itself, from another
 * thread, can slip between the two; that is the program racing its own hole.
 *
 * Sharing blocks is the same loss in another form: once an extent is shared
 * (a reflink clone, a dedupe, a copy_file_range that the filesystem turns
 * into a clone, as xfs and btrfs do), the next write to it is copy-on-write
 * and allocates again.  Both sides of the sharing are re-protected.
 */
#include "preload.h"

#include "region.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

int pl_any_region(void)
{
	return pl_on() && sm_regions_any(0, UINTPTR_MAX);
}

void pl_blocks_changed(int fd, off_t off, off_t len)
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
	int track = pl_any_region() && fstat(fd, &st) == 0 && shrinks(&st, len);
	int rc = REAL(ftruncate)(fd, len);

	if (rc == 0 && track)
		pl_blocks_changed(fd, len, 0);
	return rc;
}

PL_EXPORT int ftruncate64(int fd, off64_t len)
{
	return ftruncate(fd, len);
}

PL_EXPORT int truncate(const char *path, off_t len)
{
	struct stat st;
	int track = pl_any_region() && stat(path, &st) == 0 && shrinks(&st, len);
	int rc = REAL(truncate)(path, len);

	if (rc == 0 && track) {
		/* O_PATH: the file may be writable to us and not readable; the
		 * library only needs its identity. */
		int fd = open(path, O_PATH | O_CLOEXEC);

		if (fd >= 0) {
			pl_blocks_changed(fd, len, 0);
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
	if (rc == 0 && (mode & ~FALLOC_FL_KEEP_SIZE) != 0 && pl_any_region())
		pl_blocks_changed(fd, off,
				  (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) ? 0 : len);
	return rc;
}

PL_EXPORT int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	return fallocate(fd, mode, off, len);
}

/* The extents of [off, off + len) of both files may now be shared.  len 0:
 * to the end of the file. */
static void shared(int dst, off_t dst_off, int src, off_t src_off, off_t len)
{
	pl_blocks_changed(dst, dst_off, len);
	pl_blocks_changed(src, src_off, len);
}

static void after_ioctl(int fd, unsigned long req, void *arg)
{
	if (req == FICLONE) {
		shared(fd, 0, (int)(intptr_t)arg, 0, 0);
	} else if (req == FICLONERANGE) {
		const struct file_clone_range *r = arg;

		shared(fd, (off_t)r->dest_offset, (int)r->src_fd, (off_t)r->src_offset, (off_t)r->src_length);
	} else {
		const struct file_dedupe_range *r = arg;

		/* fd is the source; every destination that matched now shares it. */
		for (unsigned i = 0; i < r->dest_count; i++)
			if (r->info[i].status == FILE_DEDUPE_RANGE_SAME && r->info[i].bytes_deduped > 0)
				shared((int)r->info[i].dest_fd, (off_t)r->info[i].dest_offset, fd,
				       (off_t)r->src_offset, (off_t)r->info[i].bytes_deduped);
	}
}

PL_EXPORT int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int rc;

	/* As libc's own: the one optional argument, taken as a pointer. */
	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	rc = REAL(ioctl)(fd, req, arg);
	if (rc == 0 && (req == FICLONE || req == FICLONERANGE || req == FIDEDUPERANGE) && pl_any_region())
		after_ioctl(fd, req, arg);
	return rc;
}

PL_EXPORT ssize_t copy_file_range(int in, off64_t *in_off, int out, off64_t *out_off, size_t len,
				  unsigned flags)
{
	int track = pl_any_region();
	off_t from = 0, to = 0;
	ssize_t n;

	/* Where the copy starts: the offsets given, or the file positions. */
	if (track) {
		from = in_off != NULL ? *in_off : lseek(in, 0, SEEK_CUR);
		to = out_off != NULL ? *out_off : lseek(out, 0, SEEK_CUR);
	}
	n = REAL(copy_file_range)(in, in_off, out, out_off, len, flags);
	if (n > 0 && track && from >= 0 && to >= 0)
		shared(out, to, in, from, (off_t)n);
	return n;
}
