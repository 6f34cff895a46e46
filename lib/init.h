/* SPDX-License-Identifier: MIT */
/* init.h -- the library's lifecycle (private) */
#ifndef SM_INIT_H
#define SM_INIT_H

/* Once per process, from every entry point: settings, kernel probes, fork
 * and exit hooks.  Cheap after the first call. */
void sm_init(void);

#endif
