/* SPDX-License-Identifier: MIT */
/* apputil.c -- KEY=VALUE arguments, the crash triggers and the step counter of the application crash programs */
#include "apputil.h"
#include "records.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t au_inside;
static int sysrq_fd = -1;
static volatile long timer_at;

static int key_is(const char *arg, const char *key)
{
	size_t n = strlen(key);

	return strncmp(arg, key, n) == 0 && arg[n] == '=';
}

const char *au_arg(int argc, char **argv, const char *key, const char *def)
{
	for (int i = 0; i < argc; i++)
		if (key_is(argv[i], key))
			return argv[i] + strlen(key) + 1;
	return def;
}

long au_num(int argc, char **argv, const char *key, long def, long lo, long hi)
{
	const char *v = au_arg(argc, argv, key, NULL);
	char *end;
	long n;

	if (v == NULL)
		return def;
	errno = 0;
	n = strtol(v, &end, 0);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < lo || n > hi) {
		fprintf(stderr, "%s=%s: want a number in [%ld, %ld]\n", key, v, lo, hi);
		exit(2);
	}
	return n;
}

void au_check_keys(int argc, char **argv, const char *const *keys)
{
	for (int i = 0; i < argc; i++) {
		int known = 0;

		for (const char *const *k = keys; *k != NULL && !known; k++)
			known = key_is(argv[i], *k);
		if (!known) {
			fprintf(stderr, "unknown argument '%s'\n", argv[i]);
			exit(2);
		}
	}
}

_Noreturn void au_die(const char *what)
{
	printf("SMVM: error: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Decimal digits of v at the end of buf; returns where they start. */
static char *put_num(char *end, long v)
{
	unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;

	do {
		*--end = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--end = '-';
	return end;
}

/* Write the line, let the UART send it (tcdrain: otherwise the reset may
 * drop the tail of the tty's buffer and the host never learns why the boot
 * ended), then reset.  Async-signal-safe: write, tcdrain, pause. */
static void reset_with(const char *line, size_t len)
{
	ssize_t w = write(STDOUT_FILENO, line, len);

	(void)w;
	tcdrain(STDOUT_FILENO);
	if (sysrq_fd == -2)
		_exit(75); /* APPS_CRASH_EXIT */
	if (write(sysrq_fd, "b", 1) != 1)
		_exit(3);
	for (;;)
		pause();
}

static void on_alarm(int sig)
{
	char line[96], num[24], *p = line;
	const char *inside = au_inside ? " inside=1\n" : " inside=0\n", *n;

	(void)sig;
	n = put_num(num + sizeof(num), timer_at);
	memcpy(p, "SMVM: reset timer ", 18);
	p += 18;
	memcpy(p, n, (size_t)(num + sizeof(num) - n));
	p += num + sizeof(num) - n;
	memcpy(p, inside, 10);
	p += 10;
	reset_with(line, (size_t)(p - line));
}

void au_crash_init(void)
{
	struct sigaction sa;

	/* APPS_CRASH_EXIT=1, for trying the programs on a host: the process
	 * exits (75) where the guest would be reset. */
	const char *e = getenv("APPS_CRASH_EXIT");

	sysrq_fd = e != NULL && !strcmp(e, "1") ? -2 : open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
	if (sysrq_fd == -1)
		au_die("/proc/sysrq-trigger");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) != 0)
		au_die("sigaction");
}

void au_crash_now(const char *why, long at)
{
	char line[128];
	int n;

	fflush(stdout);
	n = snprintf(line, sizeof(line), "SMVM: reset %s %ld\n", why, at);
	reset_with(line, (size_t)n);
}

void au_crash_after(long at, long us)
{
	struct itimerval it = {.it_value = {.tv_sec = us / 1000000, .tv_usec = us % 1000000}};

	if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
		it.it_value.tv_usec = 1; /* 0 would disarm the timer */
	fflush(stdout);
	timer_at = at;
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		au_die("setitimer");
}

volatile uint64_t *au_step_map(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	void *p;

	if (fd < 0 || ftruncate(fd, 4096) != 0)
		au_die(path);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		au_die("mmap step");
	close(fd);
	return p;
}

struct au_plan au_plan_args(int argc, char **argv, long max, long mark_run)
{
	return (struct au_plan){
		.tag = au_arg(argc, argv, "tag", "case"),
		.stage = au_arg(argc, argv, "stage", "acked"),
		.crash = au_num(argc, argv, "crash", -1, 0, max),
		.mark = au_num(argc, argv, "mark", -1, 0, max),
		.mark_run = mark_run,
		.lead = au_arg(argc, argv, "lead", NULL),
		.follow = au_arg(argc, argv, "follow", NULL),
		.seed = strtoull(au_arg(argc, argv, "seed", "1"), NULL, 0),
	};
}

void au_plan_start(struct au_plan *p)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (p->crash >= 0)
		au_crash_init();
	if (p->lead != NULL || p->follow != NULL)
		p->step = au_step_map(p->lead != NULL ? p->lead : p->follow);
}

void au_before(struct au_plan *p, long i)
{
	while (p->follow != NULL && p->step[0] <= (uint64_t)i && p->step[1] == 0)
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	if (p->crash == i && strcmp(p->stage, "timer") == 0)
		au_crash_after(
			i, i > 0 ? (long)(vr_mix(p->seed ^ 0x7e57u) % (2 * p->spent / (uint64_t)i / 1000 + 1))
				 : 0);
}

void au_acked(const struct au_plan *p, long k)
{
	printf("SMVM: p %s %ld\n", p->tag, k);
	if (p->lead != NULL)
		p->step[0] = (uint64_t)k;
	if (p->crash == k && strcmp(p->stage, "acked") == 0)
		au_crash_now("acked", k);
	if (p->mark == k)
		printf("SMVM: crashpoint\n");
	/* The host reads the console a little late: stop a little after the
	 * mark rather than let a fast writer finish. */
	if (p->mark >= 0 && k == p->mark + p->mark_run) {
		printf("SMVM: waiting for the kill\n");
		pause();
	}
}

void au_done(const struct au_plan *p, long n)
{
	if (p->lead != NULL)
		p->step[1] = 1;
	printf("SMVM: done %s %ld\n", p->tag, n);
	for (;;)
		pause(); /* until the crash */
}
