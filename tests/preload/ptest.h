/* SPDX-License-Identifier: MIT */
/* ptest.h -- checks shared by the preload test programs, which run under LD_PRELOAD and link no libsyncmap */
#ifndef PTEST_H
#define PTEST_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fiemap.h"
#include "procmaps.h"

#define PT_SKIP 77

static int pt_failed;

/* A failed check is reported with its line and the run goes on, so one run
 * shows every failure; the exit status says whether there was any. */
#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fputc('\n', stderr);                                            \
			pt_failed = 1;                                                  \
		}                                                                       \
	} while (0)

/* A check the rest of the run depends on (cond is evaluated once). */
#define REQUIRE(cond, ...)                               \
	do {                                             \
		int ok_ = !!(cond);                      \
		if (!ok_) {                              \
			CHECK(ok_ &&#cond, __VA_ARGS__); \
			exit(1);                         \
		}                                        \
	} while (0)

static inline void pt_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("  ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

static inline int pt_done(const char *name)
{
	printf("%s: %s\n", name, pt_failed ? "FAILED" : "ok");
	return pt_failed ? 1 : 0;
}

/* The shim's public API, if the shim is loaded (NULL otherwise). */
static inline int pt_mode(const void *addr)
{
	int (*fn)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "syncmap_mode");

	return fn != NULL ? fn(addr) : -1;
}

struct pt_stats {
	uint64_t maps_kernel, maps_fault, faults, syncs, bytes_prepared, presync_grains, errors;
};

static inline int pt_stats(struct pt_stats *s)
{
	void (*fn)(struct pt_stats *) = (void (*)(struct pt_stats *))dlsym(RTLD_DEFAULT, "syncmap_stats_get");

	memset(s, 0, sizeof(*s));
	if (fn == NULL)
		return -1;
	fn(s);
	return 0;
}

enum { PT_NONE = 0, PT_KERNEL = 1, PT_FAULT = 2 };

/* The start of the first mapping of a file whose path ends with suffix, or NULL. */
static inline void *pt_find_map(const char *suffix)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4352];
	void *found = NULL;
	size_t n = strlen(suffix);

	if (f == NULL)
		return NULL;
	while (found == NULL && fgets(line, sizeof(line), f) != NULL) {
		size_t len = strcspn(line, "\n");
		unsigned long s;

		line[len] = '\0';
		if (len >= n && strcmp(line + len - n, suffix) == 0 && sscanf(line, "%lx-", &s) == 1)
			found = (void *)s;
	}
	fclose(f);
	return found;
}

/* The handler the kernel itself holds for sig, read with the raw system call
 * (libc's sigaction is the shim's under LD_PRELOAD).  0, or -1. */
static inline int pt_kernel_handler(int sig, void **handler)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} k;

	if (syscall(SYS_rt_sigaction, sig, NULL, &k, sizeof(k.mask)) != 0)
		return -1;
	*handler = k.handler;
	return 0;
}

static inline int pt_writable(const void *addr)
{
	char p[5] = "";

	return maps_perms(addr, p) == 0 && p[1] == 'w';
}

/* A new sparse file of len bytes: an O_RDWR descriptor, or exit. */
static inline int pt_sparse(const char *dir, const char *name, size_t len, char *path, size_t pathlen)
{
	char buf[4096];
	int fd;

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	fd = open(buf, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	REQUIRE(fd >= 0, "open %s: %s", buf, strerror(errno));
	REQUIRE(ftruncate(fd, (off_t)len) == 0, "ftruncate: %s", strerror(errno));
	if (path != NULL)
		snprintf(path, pathlen, "%s", buf);
	return fd;
}

static inline unsigned char pt_byte(size_t i, unsigned salt)
{
	return (unsigned char)(((i * 2654435761u) >> 7) ^ salt ^ 0x5a);
}

#endif
