/* SPDX-License-Identifier: MIT */
/* fstype.h -- which filesystems the library and the shim leave alone (private) */
#ifndef SM_FSTYPE_H
#define SM_FSTYPE_H

/* 1 if syncmap_mmap must never take a mapping of a file on a filesystem of
 * this statfs type (its "files" are not stored, or the touch cannot work). */
int sm_fs_never_taken(unsigned long type);

/* 1 if the filesystem keeps nothing across a crash (tmpfs, ramfs): the
 * library takes such mappings (they behave as everywhere else), the preload
 * shim leaves them alone (there is no guarantee to give). */
int sm_fs_volatile(unsigned long type);

#endif
