/* SPDX-License-Identifier: MIT */
/* pl_linked.c -- a program linked with libsyncmap, run under the shim: one copy of the library serves both */
#include <syncmap.h>

#include "ptest.h"

#define SIZE (1024 * 1024)

int main(int argc, char **argv)
{
	int fd;
	char *p, *q;
	struct syncmap_stats st;

	if (argc != 2)
		return 2;
	fd = pt_sparse(argv[1], "linked", SIZE, NULL, 0);
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0); /* the shim's mmap */
	q = syncmap_mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	REQUIRE(p != MAP_FAILED && q != MAP_FAILED, "mmap: %s", strerror(errno));
	p[0] = 1;
	q[64 * 1024] = 2;
	/* The program's syncmap_* calls and the shim's are one library: the
	 * mapping made through plain mmap is in the table syncmap_mode reads,
	 * and the counters count both mappings. */
	CHECK(syncmap_mode(p) == SYNCMAP_MODE_FAULT, "mode of the mmap() mapping: %d", syncmap_mode(p));
	CHECK(syncmap_mode(q) == SYNCMAP_MODE_FAULT, "mode of the syncmap_mmap() mapping: %d",
	      syncmap_mode(q));
	syncmap_stats_get(&st);
	CHECK(st.maps_fault == 2, "maps_fault %llu, want 2 (one library, one table)",
	      (unsigned long long)st.maps_fault);
	CHECK(syncmap_persist(p, 1) == 0 && syncmap_munmap(q, SIZE) == 0 && munmap(p, SIZE) == 0,
	      "persist/unmap");
	pt_note("linked program under the shim: both mappings in one table");
	return pt_done("pl_linked");
}
