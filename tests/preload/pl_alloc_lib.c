/* SPDX-License-Identifier: MIT */
/* pl_alloc_lib.c -- a malloc whose every block is its own mmap(): preloaded with the shim, the
 * allocations made while the shim starts (dlsym, realpath, atexit) come back into its mmap */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define HDR 16 /* base and size, kept just below the block */

static _Atomic long maps;

static void *alloc(size_t n, size_t align)
{
	size_t pg = 4096, total;
	uintptr_t base, user;
	void *p;

	if (align < HDR)
		align = HDR;
	if (n > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	total = (n + HDR + align + pg - 1) & ~(pg - 1);
	p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0); /* the shim's mmap */
	if (p == MAP_FAILED)
		return NULL;
	maps++;
	base = (uintptr_t)p;
	user = (base + HDR + align - 1) & ~(uintptr_t)(align - 1);
	((uintptr_t *)user)[-2] = base;
	((size_t *)user)[-1] = total;
	return (void *)user;
}

static size_t usable(void *u)
{
	uintptr_t base = ((uintptr_t *)u)[-2];

	return ((size_t *)u)[-1] - ((uintptr_t)u - base);
}

EXPORT void *malloc(size_t n)
{
	return alloc(n, 16);
}

EXPORT void free(void *u)
{
	if (u != NULL)
		munmap((void *)((uintptr_t *)u)[-2], ((size_t *)u)[-1]);
}

EXPORT void *calloc(size_t a, size_t b)
{
	if (b != 0 && a > SIZE_MAX / b) {
		errno = ENOMEM;
		return NULL;
	}
	return alloc(a * b, 16); /* anonymous pages are zero */
}

EXPORT void *realloc(void *u, size_t n)
{
	void *v;

	if (u == NULL)
		return malloc(n);
	if (n <= usable(u))
		return u;
	v = malloc(n);
	if (v != NULL) {
		memcpy(v, u, usable(u));
		free(u);
	}
	return v;
}

EXPORT void *memalign(size_t align, size_t n)
{
	return alloc(n, align);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	return alloc(n, align);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	void *p = alloc(n, align);

	if (p == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}

EXPORT void *valloc(size_t n)
{
	return alloc(n, 4096);
}

EXPORT void *pvalloc(size_t n)
{
	return alloc((n + 4095) & ~(size_t)4095, 4096);
}

EXPORT size_t malloc_usable_size(void *u)
{
	return u != NULL ? usable(u) : 0;
}

__attribute__((destructor)) static void report(void)
{
	char line[80];
	int n = snprintf(line, sizeof(line), "pl_alloc: %ld blocks, each its own mmap()\n", (long)maps);

	if (write(2, line, (size_t)n) < 0)
		return;
}
