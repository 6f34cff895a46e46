/* SPDX-License-Identifier: MIT */
/* helpers.c -- shared test fixtures */
#include "helpers.h"

#include "config.h"
#include "init.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Where mount points are made: a tmpfs over /mnt that only this mount
 * namespace sees, so a test that dies leaves not even an empty directory;
 * /tmp where /mnt cannot take one. */
static const char *mount_base = "/tmp";

static int private_ns(char *why, size_t whylen)
{
	static int done;

	if (done)
		return 0;
	if (geteuid() != 0) {
		snprintf(why, whylen, "not root");
		return -1;
	}
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		snprintf(why, whylen, "no private mount namespace: %s", strerror(errno));
		return -1;
	}
	if (mount("syncmap-test", "/mnt", "tmpfs", 0, "size=1m,mode=0755") == 0)
		mount_base = "/mnt";
	done = 1;
	return 0;
}

static int run(const char *cmd, char *why, size_t whylen)
{
	int st = system(cmd);

	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(why, whylen, "'%s' failed", cmd);
		return -1;
	}
	return 0;
}

/* The source device of the mount at dir, from /proc/self/mountinfo. */
static void mount_source(const char *dir, char *dev, size_t devlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];

	dev[0] = '\0';
	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		char mnt[512], src[256];
		const char *sep = strstr(line, " - ");

		if (sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1 && strcmp(mnt, dir) == 0 && sep != NULL &&
		    sscanf(sep + 3, "%*s %255s", src) == 1)
			snprintf(dev, devlen, "%s", src);
	}
	if (f != NULL)
		fclose(f);
}

int loopfs_mount_image(struct loopfs *fs, const char *img, const char *mount_opts, char *why, size_t whylen)
{
	char cmd[3 * PATH_MAX];

	if (private_ns(why, whylen) != 0)
		return -1;
	if (scratch_dir(fs->dir, sizeof(fs->dir), mount_base, "syncmap-mnt") == NULL) {
		snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "mount -o loop%s%s '%s' '%s'", mount_opts && *mount_opts ? "," : "",
		 mount_opts ? mount_opts : "", img, fs->dir);
	if (run(cmd, why, whylen) != 0) {
		rmdir(fs->dir);
		return -1;
	}
	mount_source(fs->dir, fs->dev, sizeof(fs->dev));
	/* The loop device keeps the image open; unlinked now, it is freed when
	 * the device detaches, even if this process dies without cleaning up. */
	unlink(img);
	return 0;
}

const char *test_dir(void)
{
	const char *d = getenv("SYNCMAP_TEST_DIR");

	return d != NULL && *d != '\0' ? d : "/dev/shm";
}

enum syncmap_mode expected_mode(const char *dir)
{
	char path[PATH_MAX];
	const char *pref = getenv("SYNCMAP_MODE");
	int fd, kernel = 0;
	void *p;

	snprintf(path, sizeof(path), "%s/.syncmap-probe-%d", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0 && ftruncate(fd, 4096) == 0) {
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
		if (p != MAP_FAILED) {
			kernel = 1;
			munmap(p, 4096);
		}
	}
	if (fd >= 0)
		close(fd);
	unlink(path);
	if (pref != NULL && strcmp(pref, "fault") == 0)
		kernel = 0;
	return kernel ? SYNCMAP_MODE_KERNEL : SYNCMAP_MODE_FAULT;
}

int fd_is_dax(int fd)
{
	struct statx stx;

	return statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0 &&
	       (stx.stx_attributes_mask & STATX_ATTR_DAX) && (stx.stx_attributes & STATX_ATTR_DAX);
}

int loopfs_make(struct loopfs *fs, const char *fstype, unsigned mib, const char *mount_opts, char *why,
		size_t whylen)
{
	char cmd[3 * PATH_MAX];

	memset(fs, 0, sizeof(*fs));
	if (getenv("SYNCMAP_TEST_DIR") != NULL) {
		/* A fresh directory on the filesystem under test instead. */
		if (scratch_dir(fs->dir, sizeof(fs->dir), test_dir(), "syncmap-test") == NULL) {
			snprintf(why, whylen, "mkdtemp in SYNCMAP_TEST_DIR: %s", strerror(errno));
			return -1;
		}
		fs->own_dir = 1;
		return 0;
	}
	if (private_ns(why, whylen) != 0)
		return -1;
	snprintf(fs->img, sizeof(fs->img), "/dev/shm/syncmap-test-%d-%ld.img", (int)getpid(), random());
	if (strncmp(fstype, "ext", 3) == 0)
		snprintf(cmd, sizeof(cmd), "truncate -s %uM '%s' && mkfs.%s -q -F -m 0 '%s' >/dev/null 2>&1",
			 mib, fs->img, fstype, fs->img);
	else
		snprintf(cmd, sizeof(cmd), "truncate -s %uM '%s' && mkfs.%s -q -f '%s' >/dev/null 2>&1", mib,
			 fs->img, fstype, fs->img);
	if (run(cmd, why, whylen) != 0 || loopfs_mount_image(fs, fs->img, mount_opts, why, whylen) != 0) {
		unlink(fs->img);
		fs->img[0] = '\0';
		return -1;
	}
	fs->img[0] = '\0'; /* unlinked */
	return 0;
}

void loopfs_done(struct loopfs *fs)
{
	if (fs->own_dir) {
		remove_tree(fs->dir);
	} else if (fs->dir[0] != '\0') {
		umount2(fs->dir, MNT_DETACH);
		rmdir(fs->dir);
	}
	if (fs->img[0] != '\0')
		unlink(fs->img);
	memset(fs, 0, sizeof(*fs));
}

char *scratch_dir(char *buf, size_t len, const char *base, const char *prefix)
{
	snprintf(buf, len, "%s/%s-XXXXXX", base, prefix);
	return mkdtemp(buf);
}

void remove_tree(const char *dir)
{
	char cmd[PATH_MAX + 16];

	if (dir == NULL || dir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "remove_tree: could not remove %s\n", dir);
}

int unlinked_file(size_t len)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/syncmap-scratch-%d-%ld", test_dir(), (int)getpid(), random());
	fd = make_sparse(test_dir(), strrchr(path, '/') + 1, len, NULL, 0);
	if (fd >= 0)
		unlink(path);
	return fd;
}

int make_sparse(const char *dir, const char *name, size_t len, char *out, size_t outlen)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)len) != 0) {
		close(fd);
		return -1;
	}
	if (out != NULL)
		snprintf(out, outlen, "%s", path);
	return fd;
}

void *fill_vmas(long spare, size_t *len)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	long max = 0, n;
	char *a;

	if (f == NULL || fscanf(f, "%ld", &max) != 1) {
		if (f != NULL)
			fclose(f);
		return NULL;
	}
	fclose(f);
	n = max - maps_count() - spare;
	if (n <= 0)
		return NULL;
	*len = (size_t)(n + 1) * 4096;
	a = mmap(NULL, *len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a == MAP_FAILED)
		return NULL;
	for (long i = 1; i < n; i += 2)
		if (mprotect(a + i * 4096, 4096, PROT_NONE) != 0) {
			munmap(a, *len);
			return NULL;
		}
	return a;
}

void sm_test_env(const char *name, const char *value)
{
	if (value != NULL)
		setenv(name, value, 1);
	else
		unsetenv(name);
	sm_init();
	sm_config_load();
}
