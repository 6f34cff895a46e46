/* helpers.c -- shared test fixtures */
#include "helpers.h"

#include "config.h"
#include "syncmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
	snprintf(fs->dir, sizeof(fs->dir), "/tmp/syncmap-mnt-XXXXXX");
	if (mkdtemp(fs->dir) == NULL) {
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
		snprintf(fs->dir, sizeof(fs->dir), "%.200s/syncmap-test-XXXXXX", test_dir());
		if (mkdtemp(fs->dir) == NULL) {
			snprintf(why, whylen, "mkdtemp in SYNCMAP_TEST_DIR: %s", strerror(errno));
			return -1;
		}
		fs->own_dir = 1;
		return 0;
	}
	if (private_ns(why, whylen) != 0)
		return -1;
	snprintf(fs->img, sizeof(fs->img), "/dev/shm/syncmap-test-%d-%ld.img", (int)getpid(), random());
	if (strcmp(fstype, "ext4") == 0)
		snprintf(cmd, sizeof(cmd),
			 "truncate -s %uM '%s' && mkfs.ext4 -q -F -m 0 '%s' >/dev/null 2>&1", mib, fs->img,
			 fs->img);
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
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fs->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "loopfs_done: could not remove %s\n", fs->dir);
	} else if (fs->dir[0] != '\0') {
		umount2(fs->dir, MNT_DETACH);
		rmdir(fs->dir);
	}
	if (fs->img[0] != '\0')
		unlink(fs->img);
	memset(fs, 0, sizeof(*fs));
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

#define MAX_EXTENTS 4096

static struct fiemap *get_fiemap(int fd)
{
	struct fiemap *fm = calloc(1, sizeof(*fm) + MAX_EXTENTS * sizeof(struct fiemap_extent));

	if (fm == NULL)
		return NULL;
	fm->fm_start = 0;
	fm->fm_length = FIEMAP_MAX_OFFSET;
	fm->fm_flags = 0; /* no FIEMAP_FLAG_SYNC: we want the state as it is, unflushed */
	fm->fm_extent_count = MAX_EXTENTS;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
		free(fm);
		return NULL;
	}
	return fm;
}

int range_allocated(int fd, off_t off, size_t len)
{
	struct fiemap *fm = get_fiemap(fd);
	uint64_t at = (uint64_t)off, end = (uint64_t)off + len;
	const uint32_t bad = FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_UNWRITTEN;

	if (fm == NULL)
		return -1;
	/* Extents come sorted by logical offset: walk them over [at, end). */
	for (unsigned i = 0; i < fm->fm_mapped_extents && at < end; i++) {
		struct fiemap_extent *e = &fm->fm_extents[i];

		if (e->fe_logical + e->fe_length <= at)
			continue;
		if (e->fe_logical > at || (e->fe_flags & bad))
			break;
		at = e->fe_logical + e->fe_length;
	}
	free(fm);
	return at >= end;
}

int range_has_extent(int fd, off_t off, size_t len, uint32_t *flags)
{
	struct fiemap *fm = get_fiemap(fd);
	uint64_t s = (uint64_t)off, e = (uint64_t)off + len;
	int any = 0;

	if (fm == NULL)
		return -1;
	*flags = 0;
	for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
		struct fiemap_extent *x = &fm->fm_extents[i];

		if (x->fe_logical < e && x->fe_logical + x->fe_length > s) {
			any = 1;
			*flags |= x->fe_flags;
		}
	}
	free(fm);
	return any;
}

long extent_count(int fd)
{
	struct fiemap *fm = get_fiemap(fd);
	long n;

	if (fm == NULL)
		return -1;
	n = (long)fm->fm_mapped_extents;
	free(fm);
	return n;
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
