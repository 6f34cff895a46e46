/* SPDX-License-Identifier: MIT */
/* jumps.c -- longjmp and kin: a jump out of the program's SIGSEGV handler ends it in the program's view of the mask
 *
 * The program's SIGSEGV handler runs with SIGSEGV blocked in the view the
 * shim keeps (masks.c), and a fault of its own inside it kills.  A handler
 * left by a jump must stop counting as running, or a later fault of the
 * program's would be taken for one inside it.  Fortified builds call
 * __longjmp_chk in place of the three others.
 */
#undef _FORTIFY_SOURCE /* these names, not __longjmp_chk, are defined here */
#include "preload.h"

#include <setjmp.h>

PL_EXPORT void longjmp(struct __jmp_buf_tag env[1], int val)
{
	pl_jumping(env);
	REAL(longjmp)(env, val);
	__builtin_unreachable();
}

PL_EXPORT void _longjmp(struct __jmp_buf_tag env[1], int val)
{
	pl_jumping(env);
	REAL(longjmp_)(env, val);
	__builtin_unreachable();
}

PL_EXPORT void siglongjmp(struct __jmp_buf_tag env[1], int val)
{
	pl_jumping(env);
	REAL(siglongjmp)(env, val);
	__builtin_unreachable();
}

PL_EXPORT void __longjmp_chk(struct __jmp_buf_tag env[1], int val)
{
	pl_jumping(env);
	REAL(longjmp_chk)(env, val);
	__builtin_unreachable();
}
