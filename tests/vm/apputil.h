/* SPDX-License-Identifier: MIT */
/* apputil.h -- what the application crash programs share: KEY=VALUE arguments, the crash triggers, a step counter
 *
 * The programs run in the DAX guest (tests/vm/apps-suite.sh): they print
 * "SMVM: ..." lines for the host and end the boot with sysrq-b, at once or
 * after a random delay, so that the reset may land inside the call under
 * test.
 */
#ifndef VM_APPUTIL_H
#define VM_APPUTIL_H

#include <signal.h>
#include <stdint.h>

/* The value of KEY=VALUE among argv[0..argc), or def. */
const char *au_arg(int argc, char **argv, const char *key, const char *def);
/* The number of KEY=VALUE, or def; exits with a usage error outside [lo, hi]. */
long au_num(int argc, char **argv, const char *key, long def, long lo, long hi);
/* Exit 2 unless every argument is KEY=VALUE with KEY in the NULL-ended keys. */
void au_check_keys(int argc, char **argv, const char *const *keys);

/* Print "SMVM: error: WHAT: strerror(errno)" and exit 1. */
_Noreturn void au_die(const char *what);

/* Open /proc/sysrq-trigger and install the timer's SIGALRM handler.  With
 * APPS_CRASH_EXIT=1 (trying a program on a host) the process exits with
 * status 75 instead of resetting anything. */
void au_crash_init(void);

/* 1 while the program is inside the call a timed crash is meant to cut
 * (an append, a commit); the reset line reports it. */
extern volatile sig_atomic_t au_inside;

/* Print "SMVM: reset WHY AT", wait until the console has sent it, then
 * reset the guest (sysrq-b: nothing synced, nothing unmounted). */
void au_crash_now(const char *why, long at);

/* In us microseconds, from a signal handler wherever the program is:
 * print "SMVM: reset timer AT inside=0|1" and reset the guest. */
void au_crash_after(long at, long us);

/* A counter in a file of the guest's tmpfs root, shared by a leading and a
 * following process so that both write in step. */
volatile uint64_t *au_step_map(const char *path);

/* One writer's crash plan, from its arguments: crash=K stage=acked|timer|...
 * mark=K, and lead=FILE or follow=FILE for two writers in step. */
struct au_plan {
	const char *tag, *stage;
	long crash, mark;	   /* step to crash at, step the host's kill aims at; -1: none */
	long mark_run;		   /* steps written after the mark before waiting for the kill */
	const char *lead, *follow; /* the step counter's file when leading or following, else NULL */
	volatile uint64_t *step;   /* [0]: the leader's steps done, [1]: the leader has finished */
	uint64_t seed, spent;	   /* spent: ns inside the steps so far (the caller adds) */
};

/* The plan from tag=, seed=, crash=, stage= (default acked), mark= (steps
 * up to max), lead= and follow=; nothing is opened yet. */
struct au_plan au_plan_args(int argc, char **argv, long max, long mark_run);

/* Line-buffered output for the host, the crash trigger if one is planned,
 * the step counter if two writers go in step. */
void au_plan_start(struct au_plan *p);

/* Before step i: a follower waits until the leader is past it (or done);
 * at crash=i with stage=timer, the reset is armed to land a random delay
 * later, within about twice the average step so far. */
void au_before(struct au_plan *p, long i);

/* Step k (counting from 1) was acknowledged: print "SMVM: p TAG k", tell a
 * follower, reset at crash=k with stage=acked, print the crash point at
 * mark=k, and mark_run steps later wait there for the host's kill. */
void au_acked(const struct au_plan *p, long k);

/* All n steps done: tell a follower and the host, then wait for the crash. */
_Noreturn void au_done(const struct au_plan *p, long n);

#endif
