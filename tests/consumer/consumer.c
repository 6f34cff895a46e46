/* SPDX-License-Identifier: MIT */
/* consumer.c -- a program built against the *installed* libsyncmap */
#include <syncmap.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "consumer.dat";
	struct syncmap_stats st;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	char *p;

	if (fd < 0 || ftruncate(fd, 1 << 16) != 0)
		return 1;
	p = (char *)syncmap_mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 2;
	p[100] = 'x';
	if (syncmap_persist(p + 100, 1) != 0)
		return 3;
	syncmap_stats_get(&st);
	/* The library it runs with is the one it was built against. */
	if (syncmap_version() != SYNCMAP_VERSION_HEX)
		return 4;
	printf("consumer: libsyncmap %s, mode %d, maps %llu\n", syncmap_version_string(),
	       (int)syncmap_mode(p), (unsigned long long)(st.maps_fault + st.maps_kernel));
	syncmap_munmap(p, 1 << 16);
	close(fd);
	unlink(path);
	return st.maps_fault + st.maps_kernel == 1 ? 0 : 4;
}
