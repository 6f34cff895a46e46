/* SPDX-License-Identifier: MIT */
/* map.h -- the mmap family's internals that the preload shim shares (private) */
#ifndef SM_MAP_H
#define SM_MAP_H

#include <stddef.h>
#include <sys/types.h>

/* mmap(2) of a mapping the library does not take, as a raw system call, with
 * the table kept right when MAP_FIXED replaces some of the library's
 * mappings.  Returns what mmap(2) returns. */
void *sm_map_plain(void *addr, size_t len, int prot, int flags, int fd, off_t off);

#endif
