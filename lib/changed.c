/* SPDX-License-Identifier: MIT */
/* changed.c -- un-readying ranges when the file's blocks go away (syncmap_file_changed) */
#include "config.h"
#include "durable.h"
#include "init.h"
#include "region.h"
#include "sys.h"
#include "syncmap.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* [off, off + len) of the file, in r's user addresses widened to whole grains:
 * a grain with any block freed is no longer durable as a whole. */
static int affected(const struct sm_region *r, uint64_t off, uint64_t end, uintptr_t *s, uintptr_t *e)
{
	uint64_t r_off = (uint64_t)r->off, r_end = r_off + (r->end - r->start);

	if (end <= r_off || off >= r_end)
		return 0;
	off = off > r_off ? off : r_off;
	end = end < r_end ? end : r_end;
	*s = sm_grain_start(r, off / r->grain);
	*e = sm_grain_end(r, (end - 1) / r->grain);
	return 1;
}

int syncmap_file_changed(int fd, off_t off, off_t len)
{
	struct stat st;

	sm_init();
	if (off < 0 || len < 0) {
		errno = EINVAL;
		return -1;
	}
	if (fstat(fd, &st) != 0)
		return -1;
	return sm_file_changed_ino(st.st_dev, st.st_ino, off, len);
}

int sm_file_changed_ino(dev_t dev, ino_t ino, off_t off, off_t len)
{
	struct sm_region **rs;
	struct sm_file *f;
	uint64_t end;
	size_t n;
	int rc = 0;

	end = len == 0 || (uint64_t)off + (uint64_t)len < (uint64_t)off ? UINT64_MAX
									: (uint64_t)off + (uint64_t)len;
	sm_table_lock();
	f = sm_file_find(dev, ino);
	n = f != NULL ? sm_regions_in(0, UINTPTR_MAX, &rs) : 0;
	if (n == (size_t)-1) {
		errno = ENOMEM;
		rc = -1;
		n = 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct sm_region *r = rs[i];
		uintptr_t s, e;

		if (r->file != f || !affected(r, (uint64_t)off, end, &s, &e))
			continue;
		/* Blocked, so no fault is between its sync and its upgrade while
		 * the bits go and the protection drops. */
		sm_region_block(r);
		sm_bits_clear(r->bits, sm_grain_of(r, s), sm_grain_of(r, e - 1) + 1);
		if (sm_sys_mprotect((void *)s, e - s, sm_prot_readonly(r->prot)) != 0)
			rc = -1;
		sm_region_unblock(r);
	}
	if (n > 0)
		free(rs);
	sm_table_unlock();
	return rc;
}
