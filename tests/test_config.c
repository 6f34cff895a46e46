/* SPDX-License-Identifier: MIT */
/* test_config.c -- the SYNCMAP_* environment: parsing, and never trusted in a setuid program */
#include "config.h"
#include "envvars.h"
#include "helpers.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CONFIG_PROBE
#error "CONFIG_PROBE: the path of the config_probe program"
#endif

Test(config, sizes_parse_with_suffixes)
{
	size_t v;

	cr_assert_eq(sm_parse_size("64k", &v), 0);
	cr_assert_eq(v, (size_t)64 << 10);
	cr_assert_eq(sm_parse_size("1MiB", &v), 0);
	cr_assert_eq(v, (size_t)1 << 20);
	cr_assert_eq(sm_parse_size("2g", &v), 0);
	cr_assert_eq(v, (size_t)2 << 30);
	cr_assert_eq(sm_parse_size("12x", &v), -1);
	cr_assert_eq(sm_parse_size("-1", &v), -1);
}

/* Every SYNCMAP_* setting set to a non-default value, and libpmem2's flush
 * choices too (libpmem2 reads those with secure_getenv). */
static char *const user_env[] = {"SYNCMAP_MODE=fault",
				 "SYNCMAP_FLUSH=cpu",
				 "SYNCMAP_GRAIN=1m",
				 "SYNCMAP_PRESYNC=0",
				 "SYNCMAP_PRESYNC_DEPTH=3",
				 "SYNCMAP_RESERVE=0",
				 "SYNCMAP_STATS=1",
				 "PMEM_NO_CLWB=1",
				 "PMEM_NO_CLFLUSHOPT=1",
				 "PATH=/usr/bin:/bin",
				 NULL};
static char *const clean_env[] = {"PATH=/usr/bin:/bin", NULL};

/* Run prog as uid/gid 65534 (nobody) with env; its first line of output in
 * out.  Exit status, or -1 if the run could not be arranged. */
static int run_as_nobody(const char *prog, char *const env[], char *out, size_t len)
{
	int fds[2], st;
	ssize_t n;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		execve("/usr/bin/setpriv",
		       (char *const[]){"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				       (char *)prog, NULL},
		       env);
		_exit(127);
	}
	close(fds[1]);
	n = read(fds[0], out, len - 1);
	close(fds[0]);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st) == 127 ? -1 : WEXITSTATUS(st);
}

/* A copy of the probe program in a fresh directory on a filesystem that
 * honours set-user-ID bits: setuid root if setuid, else plain. */
static char dir[PATH_MAX];

static void copy_probe(const char *to, int setuid)
{
	char cmd[2 * PATH_MAX];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", CONFIG_PROBE, to);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	cr_assert_eq(chown(to, 0, 0), 0);
	cr_assert_eq(chmod(to, setuid ? 04755 : 0755), 0);
}

static void drop_dir(void)
{
	if (dir[0] != '\0')
		remove_tree(dir);
}

/* A setuid program linked to the library must not take its settings from
 * whoever runs it: SYNCMAP_FLUSH=cpu would turn its persists into cache
 * flushes on page cache (data loss), SYNCMAP_GRAIN=1g would make it sync a
 * gigabyte per fault.  glibc sets AT_SECURE for such a process and
 * secure_getenv then returns NULL. */
Test(config, setuid_program_ignores_the_environment, .fini = drop_dir)
{
	static const char *const bases[] = {"/dev/shm", "/tmp"};
	char suid[PATH_MAX + 16], plain[PATH_MAX + 16], got[512], dflt[512], ctl[512];
	struct statvfs sv;
	size_t i;

	if (geteuid() != 0)
		cr_skip_test("needs root to make a setuid-root program");
	if (access("/usr/bin/setpriv", X_OK) != 0)
		cr_skip_test("needs setpriv(1) to run as nobody");
	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (statvfs(bases[i], &sv) != 0 || (sv.f_flag & ST_NOSUID))
			continue;
		if (scratch_dir(dir, sizeof(dir), bases[i], "syncmap-suid") != NULL)
			break;
		dir[0] = '\0';
	}
	if (dir[0] == '\0')
		cr_skip_test("no writable filesystem without nosuid in /dev/shm or /tmp");
	cr_assert_eq(chmod(dir, 0755), 0);
	snprintf(suid, sizeof(suid), "%s/probe-suid", dir);
	snprintf(plain, sizeof(plain), "%s/probe", dir);
	copy_probe(suid, 1);
	copy_probe(plain, 0);

	/* Control: not setuid, the environment is the user's to set. */
	if (run_as_nobody(plain, user_env, ctl, sizeof(ctl)) != 0)
		cr_skip_test("cannot run a program as uid 65534 with setpriv");
	cr_assert(
		strstr(ctl,
		       "secure=0 mode=fault flush=cpu grain=1048576 presync=0 depth=3 reserve=0 stats=1 ") ==
			ctl,
		"the probe does not read the environment: %s", ctl);

	cr_assert_eq(run_as_nobody(suid, clean_env, dflt, sizeof(dflt)), 0);
	if (strncmp(dflt, "secure=1 ", 9) != 0)
		cr_skip_test("the setuid copy did not run with AT_SECURE (%s)", dflt);
	cr_assert_eq(run_as_nobody(suid, user_env, got, sizeof(got)), 0);
	cr_assert_str_eq(
		got, dflt,
		"a setuid program took settings from its caller's environment:\n  got      %s\n  defaults %s",
		got, dflt);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* Every variable of the one table (envvars.h, which config.c and
 * syncmap-info are driven by) has an entry in syncmap(7)'s ENVIRONMENT
 * (".BR NAME =" or ".BI NAME=") and a row in the README's table. */
Test(config, every_variable_is_documented)
{
	char *man = slurp(SYNCMAP_MAN7), *readme = slurp(SYNCMAP_README);
	char *env = strstr(man, "\n.SH ENVIRONMENT");

	cr_assert_not_null(env, "syncmap(7) has no ENVIRONMENT section");
	cr_assert_geq(SM_ENV_COUNT, 9);
	for (size_t i = 0; i < SM_ENV_COUNT; i++) {
		char br[80], bi[80], row[80];

		snprintf(br, sizeof(br), "\n.BR %s =", sm_env[i].name);
		snprintf(bi, sizeof(bi), "\n.BI %s=", sm_env[i].name);
		snprintf(row, sizeof(row), "| `%s` |", sm_env[i].name);
		cr_expect(strstr(env, br) != NULL || strstr(env, bi) != NULL,
			  "syncmap(7) does not document %s", sm_env[i].name);
		cr_expect(strstr(readme, row) != NULL, "README's environment table has no row for %s",
			  sm_env[i].name);
	}
	free(man);
	free(readme);
}
