/* SPDX-License-Identifier: MIT */
/* testpoint.h -- test-only crash points and mutants in the grain path; empty in the library that ships
 *
 * Only tests/vm/CMakeLists.txt defines SYNCMAP_TESTPOINTS (and, with
 * -DSYNCMAP_MUTANT=name, SYNCMAP_MUTANT), and only for a private copy of the
 * library linked into the crash-tp program.  Without them every macro here
 * expands to nothing or to its argument, so the installed library has no
 * hook, no branch and no symbol of this file.
 *
 * Crash points (SYNCMAP_TESTPOINT=POINT:N[:MS], read by testpoint.c): the
 * N-th time the grain path passes POINT, the guest is reset at once by
 * sysrq-b, from inside the library.  A mutant is one deliberate defect that
 * the crash suite must catch (tests/vm/mutants.sh).
 */
#ifndef SM_TESTPOINT_H
#define SM_TESTPOINT_H

#include <stdint.h>

enum sm_tp {
	SM_TP_TOUCH,	/* a run of grains was write-touched through the alias, not yet msynced */
	SM_TP_MSYNC,	/* ... and msynced, not yet marked or upgraded */
	SM_TP_MPROTECT, /* the user's mapping was upgraded: the first store comes next */
	SM_TP_ENGINE,	/* the engine thread takes a window (marks the thread as the engine) */
};

/* The mutants, by the name given to -DSYNCMAP_MUTANT. */
enum sm_mutant {
	SM_MUT_none,
	SM_MUT_skip_grain_msync,	/* the grain is touched but never msynced */
	SM_MUT_mprotect_before_msync,	/* the user's range is upgraded before its msync */
	SM_MUT_adopt_without_fdatasync, /* written extents adopted without committing them first */
	SM_MUT_engine_ready_early,	/* the engine marks its window ready before its msync */
	SM_MUT_persist_no_sync,		/* syncmap_persist returns 0 without syncing */
	/* The alias is mapped from the program's open file description, not the
	 * library's own: the grain's msync takes the writeback errors the
	 * program's fsync is to report (caught by tests/vm/faildev.c, not by
	 * the crash suite: nothing is lost, an error is hidden). */
	SM_MUT_sync_on_programs_description,
};

struct sm_region;

#ifdef SYNCMAP_TESTPOINTS
void sm_testpoint(enum sm_tp at);
int sm_testpoint_rc(enum sm_tp at, int rc);
void sm_mutant_ready_early(struct sm_region *r, uintptr_t s, uintptr_t e);
#define SM_TESTPOINT(at) sm_testpoint(at)
/* Passes a call's result through, after the point (for a call inside an if). */
#define SM_TESTPOINT_RC(at, rc) sm_testpoint_rc(at, rc)
#else
#define SM_TESTPOINT(at) ((void)0)
#define SM_TESTPOINT_RC(at, rc) (rc)
#endif

#ifdef SYNCMAP_MUTANT
#define SM_MUTANT_DO(name, ...)                        \
	do {                                           \
		if (SYNCMAP_MUTANT == SM_MUT_##name) { \
			__VA_ARGS__;                   \
		}                                      \
	} while (0)
/* `call`, or 0 without making it, in the named mutant. */
#define SM_MUTANT_SKIP(name, call) (SYNCMAP_MUTANT == SM_MUT_##name ? 0 : (call))
/* `value`, or `instead` in the named mutant. */
#define SM_MUTANT_PICK(name, instead, value) (SYNCMAP_MUTANT == SM_MUT_##name ? (instead) : (value))
#else
#define SM_MUTANT_DO(name, ...) ((void)0)
#define SM_MUTANT_SKIP(name, call) (call)
#define SM_MUTANT_PICK(name, instead, value) (value)
#endif

#endif
