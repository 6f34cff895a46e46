/* SPDX-License-Identifier: MIT */
/* test_flush.c -- choosing the CPU flush: eADR detection on fake sysfs trees, libpmem2's environment */
#include "flush.h"
#include "helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fake /sys/bus/nd: regions live under platform/ and devices/ holds
 * symlinks to them, as sysfs does. */
static char tree[PATH_MAX], devices[PATH_MAX + 16];

static void make_tree(void)
{
	char platform[PATH_MAX + 16];

	cr_assert_not_null(scratch_dir(tree, sizeof(tree), "/tmp", "syncmap-nd"));
	snprintf(devices, sizeof(devices), "%s/devices", tree);
	snprintf(platform, sizeof(platform), "%s/platform", tree);
	cr_assert_eq(mkdir(devices, 0755), 0);
	cr_assert_eq(mkdir(platform, 0755), 0);
}

static void drop_tree(void)
{
	remove_tree(tree);
}

/* A device named name; domain is the persistence_domain file's content, or
 * NULL for a device without the file. */
static void add_device(const char *name, const char *domain)
{
	char dir[PATH_MAX + 64], link[PATH_MAX + 64], file[PATH_MAX + 96];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/platform/%s", tree, name);
	snprintf(link, sizeof(link), "%s/%s", devices, name);
	cr_assert_eq(mkdir(dir, 0755), 0);
	cr_assert_eq(symlink(dir, link), 0);
	if (domain == NULL)
		return;
	snprintf(file, sizeof(file), "%s/persistence_domain", dir);
	f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs(domain, f);
	fclose(f);
}

TestSuite(eadr, .init = make_tree, .fini = drop_tree);

/* A region that does not say where its persistence domain is may need cache
 * flushes: libpmem2 (pmem2_auto_flush) answers "not eADR" for it, and so
 * must we, or persists on that region are a fence only. */
Test(eadr, cpu_cache_and_a_region_without_the_file_is_not_eadr)
{
	add_device("region0", "cpu_cache\n");
	add_device("region1", NULL);
	cr_assert_eq(sm_flush_detect_eadr(devices), 0, "one region without persistence_domain: not eADR");
}

Test(eadr, every_region_cpu_cache_is_eadr)
{
	add_device("region0", "cpu_cache\n");
	add_device("region1", "cpu_cache\n");
	add_device("ndbus0", NULL); /* not a region: no persistence domain to ask */
	add_device("nmem0", NULL);
	cr_assert_eq(sm_flush_detect_eadr(devices), 1);
}

Test(eadr, no_regions_is_not_eadr)
{
	add_device("ndbus0", NULL);
	cr_assert_eq(sm_flush_detect_eadr(devices), 0, "an nd bus without regions");
	drop_tree();
	cr_assert_eq(sm_flush_detect_eadr(devices), 0, "no nd bus at all");
}

Test(eadr, memory_controller_region_is_not_eadr)
{
	add_device("region0", "cpu_cache\n");
	add_device("region1", "memory_controller\n");
	cr_assert_eq(sm_flush_detect_eadr(devices), 0);
}

/* The kernel writes "\n" for a region with no persistence domain; an empty
 * or unexpected file is not a promise either. */
Test(eadr, empty_or_other_domain_is_not_eadr)
{
	add_device("region0", "cpu_cache\n");
	add_device("region1", "");
	cr_assert_eq(sm_flush_detect_eadr(devices), 0, "an empty persistence_domain");
	drop_tree();
	make_tree();
	add_device("region0", "cpu_cache\n");
	add_device("region1", "cpu_cache_and_more\n");
	cr_assert_eq(sm_flush_detect_eadr(devices), 0, "a value that only starts with cpu_cache");
}

/* PMEM_NO_FLUSH is libpmem's (v1); libpmem2's persist function never reads
 * it, so the flush we report must not change with it. */
Test(flush, pmem_no_flush_does_not_change_the_flush)
{
	char without[64];

	unsetenv("PMEM_NO_FLUSH");
	snprintf(without, sizeof(without), "%s", sm_flush_cpu_name());
	setenv("PMEM_NO_FLUSH", "1", 1);
	cr_assert_str_eq(sm_flush_cpu_name(), without,
			 "PMEM_NO_FLUSH=1 changed the reported flush (eADR: %d)", sm_flush_eadr());
}
