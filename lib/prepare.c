/* SPDX-License-Identifier: MIT */
/* prepare.c -- readying ranges from application threads (syncmap_prepare) */
#include "changed.h"
#include "config.h"
#include "init.h"
#include "durable.h"
#include "engine.h"
#include "region.h"
#include "sys.h"
#include "syncmap.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

static int prepare_one(struct sm_region *r, uintptr_t s, uintptr_t e, void *arg)
{
	(void)arg;
	if (r->mode == SYNCMAP_MODE_FAULT)
		return sm_ready(r, s, e, r->prot);
	if (r->mode == SYNCMAP_MODE_KERNEL && (r->prot & PROT_WRITE) &&
	    madvise((void *)s, e - s, MADV_POPULATE_WRITE) != 0 && errno != EINVAL)
		return errno == EFAULT ? EIO : errno; /* EINVAL: before 5.14, the faults come later */
	return 0;
}

int syncmap_prepare(void *addr, size_t len)
{
	uintptr_t a, end;
	int err;

	sm_init();
	sm_engine_kick();
	a = (uintptr_t)addr & ~(uintptr_t)(sm_cfg.page - 1);
	end = (uintptr_t)addr + len;
	if (end < a) {
		errno = EINVAL;
		return -1;
	}
	end = (end + sm_cfg.page - 1) & ~(uintptr_t)(sm_cfg.page - 1);
	sm_changes_hold(); /* while the walk holds refs (changed.h) */
	err = sm_regions_walk(a, end, prepare_one, NULL);
	sm_changes_release();
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}
