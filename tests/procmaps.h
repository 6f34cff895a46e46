/* SPDX-License-Identifier: MIT */
/* procmaps.h -- what /proc/self/maps says: the protection of an address, the VMA count
 *
 * Header-only, so that programs run under the preload shim (which must not
 * link the library a second time) use the same code as the linked tests.
 */
#ifndef SM_TEST_PROCMAPS_H
#define SM_TEST_PROCMAPS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The permissions string ("rw-s") of the mapping holding addr: 0, or -1. */
static inline int maps_perms(const void *addr, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int rc = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long s, e;
		char p[5];

		if (sscanf(line, "%lx-%lx %4s", &s, &e, p) == 3 && (uintptr_t)addr >= s &&
		    (uintptr_t)addr < e) {
			memcpy(perms, p, 5);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* Number of lines in /proc/self/maps (the process's VMA count), or -1. */
static inline long maps_count(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	long n = 0;
	int c;

	if (f == NULL)
		return -1;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

#endif
