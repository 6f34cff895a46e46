/* SPDX-License-Identifier: MIT */
/* version.c -- which libsyncmap a program runs with */
#include "syncmap.h"

#define STR_(x) #x
#define STR(x) STR_(x)

unsigned syncmap_version(void)
{
	return SYNCMAP_VERSION_HEX;
}

const char *syncmap_version_string(void)
{
	return STR(SYNCMAP_VERSION_MAJOR) "." STR(SYNCMAP_VERSION_MINOR) "." STR(SYNCMAP_VERSION_PATCH);
}
