/* SPDX-License-Identifier: MIT */
/* opens.c -- open(O_TRUNC), creat, fopen("w"): a file emptied under FAULT mappings is re-protected
 *
 * O_TRUNC frees every block of the file inside open(2) itself, as
 * ftruncate(fd, 0) does: the pages FAULT mode made writable stay writable
 * (the kernel zaps their page-table entries, not the VMA's protection), and
 * once the file grows back a write there allocates with no sync.  So an
 * open that succeeded with O_TRUNC is followed by syncmap_file_changed() on
 * the whole file, as a shrinking ftruncate is (blocks.c).  The library finds
 * the file by device and inode: a descriptor of a file it does not map (a
 * new one, a pipe) changes nothing.  Every other open costs one test of
 * its flags.
 *
 * stdio opens with libc's internal open, which no wrapper sees: fopen and
 * freopen with a "w" mode truncate and are wrapped for it.  glibc's
 * _FORTIFY_SOURCE headers call __open_2 and kin in place of open() when the
 * flags are not a constant and no mode is given: wrapped too.
 */
#include "preload.h"

#include <fcntl.h>
#include <stdarg.h>

static int emptied(int fd, int flags)
{
	/* O_PATH opens the name only: the kernel ignores O_TRUNC with it. */
	if (fd >= 0 && (flags & (O_TRUNC | O_PATH)) == O_TRUNC && pl_any_region())
		pl_blocks_changed(fd, 0, 0);
	return fd;
}

static FILE *emptied_stream(FILE *f, const char *mode)
{
	if (f != NULL && mode != NULL && mode[0] == 'w')
		emptied(fileno(f), O_TRUNC);
	return f;
}

/* The mode argument, read only where open(2) reads it. */
#define MODE_ARG(flags, m)                       \
	do {                                     \
		va_list ap_;                     \
		va_start(ap_, flags);            \
		if (__OPEN_NEEDS_MODE(flags))    \
			m = va_arg(ap_, mode_t); \
		va_end(ap_);                     \
	} while (0)

PL_EXPORT int open(const char *path, int flags, ...)
{
	mode_t m = 0;

	MODE_ARG(flags, m);
	return emptied(REAL(open)(path, flags, m), flags);
}

PL_EXPORT int open64(const char *path, int flags, ...)
{
	mode_t m = 0;

	MODE_ARG(flags, m);
	return emptied(REAL(open64)(path, flags, m), flags);
}

PL_EXPORT int openat(int dir, const char *path, int flags, ...)
{
	mode_t m = 0;

	MODE_ARG(flags, m);
	return emptied(REAL(openat)(dir, path, flags, m), flags);
}

PL_EXPORT int openat64(int dir, const char *path, int flags, ...)
{
	mode_t m = 0;

	MODE_ARG(flags, m);
	return emptied(REAL(openat64)(dir, path, flags, m), flags);
}

PL_EXPORT int creat(const char *path, mode_t m)
{
	return emptied(REAL(creat)(path, m), O_TRUNC);
}

PL_EXPORT int creat64(const char *path, mode_t m)
{
	return emptied(REAL(creat64)(path, m), O_TRUNC);
}

/* The fortified forms: libc's own checks (a mode needed but not given)
 * stay libc's. */
PL_EXPORT int __open_2(const char *path, int flags)
{
	return emptied(REAL(open_2)(path, flags), flags);
}

PL_EXPORT int __open64_2(const char *path, int flags)
{
	return emptied(REAL(open64_2)(path, flags), flags);
}

PL_EXPORT int __openat_2(int dir, const char *path, int flags)
{
	return emptied(REAL(openat_2)(dir, path, flags), flags);
}

PL_EXPORT int __openat64_2(int dir, const char *path, int flags)
{
	return emptied(REAL(openat64_2)(dir, path, flags), flags);
}

PL_EXPORT FILE *fopen(const char *path, const char *mode)
{
	return emptied_stream(REAL(fopen)(path, mode), mode);
}

PL_EXPORT FILE *fopen64(const char *path, const char *mode)
{
	return emptied_stream(REAL(fopen64)(path, mode), mode);
}

/* freopen(NULL, "w", f) reopens f's own file with O_TRUNC too. */
PL_EXPORT FILE *freopen(const char *path, const char *mode, FILE *f)
{
	return emptied_stream(REAL(freopen)(path, mode, f), mode);
}

PL_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *f)
{
	return emptied_stream(REAL(freopen64)(path, mode, f), mode);
}
