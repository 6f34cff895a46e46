/* SPDX-License-Identifier: MIT */
/* consumer.cpp -- the same program as consumer.c, compiled as C++: the header must work there too */
#include "consumer.c"
