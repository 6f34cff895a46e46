/* SPDX-License-Identifier: MIT */
/* fstype.c -- one table of the filesystems the library and the shim treat specially */
#include "fstype.h"

#include <linux/magic.h>
#include <stddef.h>

#ifndef SECRETMEM_MAGIC
#define SECRETMEM_MAGIC 0x5345434d /* Linux 5.14 */
#endif

enum {
	NEVER = 1,    /* not stored, or the alias touch cannot reach it */
	VOLATILE = 2, /* stored in memory only */
};

static const struct {
	unsigned long magic;
	int what;
} table[] = {
	{TMPFS_MAGIC, VOLATILE},
	{RAMFS_MAGIC, VOLATILE},
	/* Pages too large for grains, and no disk. */
	{HUGETLBFS_MAGIC, NEVER},
	/* memfd_secret: its pages cannot be pinned, so MADV_POPULATE_WRITE on
	 * the alias fails with EINVAL and the first write would die of SIGBUS. */
	{SECRETMEM_MAGIC, NEVER},
	/* Pseudo filesystems: a shared writable mapping may be device memory
	 * (sysfs PCI resources); nothing is stored. */
	{SYSFS_MAGIC, NEVER},
	{PROC_SUPER_MAGIC, NEVER},
	{DEBUGFS_MAGIC, NEVER},
	{TRACEFS_MAGIC, NEVER},
	{SECURITYFS_MAGIC, NEVER},
	{CGROUP_SUPER_MAGIC, NEVER},
	{CGROUP2_SUPER_MAGIC, NEVER},
	{BPF_FS_MAGIC, NEVER},
	{EFIVARFS_MAGIC, NEVER},
	{PSTOREFS_MAGIC, NEVER},
	{DEVPTS_SUPER_MAGIC, NEVER},
	{ANON_INODE_FS_MAGIC, NEVER},
};

static int what(unsigned long type)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].magic == type)
			return table[i].what;
	return 0;
}

int sm_fs_never_taken(unsigned long type)
{
	return what(type) == NEVER;
}

int sm_fs_volatile(unsigned long type)
{
	return what(type) == VOLATILE;
}
