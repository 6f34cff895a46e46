/* SPDX-License-Identifier: MIT */
/* pl_lazy_lib.c -- a library whose constructor keeps the dynamic loader's lock (dlopen runs constructors under it) until told
 *
 * PL_LAZY_FDS="IN OUT": the constructor writes one byte to OUT (the lock is
 * held now), waits up to 2 s for a byte on IN, and writes 'Y' to OUT if it
 * came in time, 'N' if not.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void hold_loader_lock(void)
{
	const char *v = getenv("PL_LAZY_FDS");
	struct pollfd p = {.events = POLLIN};
	int out;
	char c = 1;

	if (v == NULL || sscanf(v, "%d %d", &p.fd, &out) != 2)
		return;
	if (write(out, &c, 1) != 1)
		return;
	c = poll(&p, 1, 2000) == 1 && read(p.fd, &c, 1) == 1 ? 'Y' : 'N';
	if (write(out, &c, 1) != 1)
		return;
}
