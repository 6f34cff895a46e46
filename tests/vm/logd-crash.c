/* SPDX-License-Identifier: MIT */
/* logd-crash.c -- a logd client for power cuts in the DAX guest: send known lines, count the acks, crash
 *
 *   logd-crash run KEY=VALUE...
 *       case=PORT control=PORT
 *                       two logd servers on 127.0.0.1: the case (logd as
 *                       built, on libsyncmap) and the control (logd-plain:
 *                       the same server over plain mmap + CPU flush).  The
 *                       same line numbers go to both, in step, so that a
 *                       crash cuts both in the middle of their writes.
 *       seed=S lines=N  line i to the case is records.h's text record
 *                       (S, i), to the control (S + 1, i): 1 to 20000
 *                       printable bytes and a newline
 *       window=W        lines in flight per connection (logd commits what
 *                       one turn of its loop read as one group)
 *       crash=K stage=acked|timer
 *                       reset the guest (sysrq-b) once the case acked K
 *                       lines: at once (acked), or at a random moment in
 *                       the next [0, 2 x the mean time between acks]
 *                       (timer: often while logd commits)
 *       mark=K          print "SMVM: crashpoint" after the case's K-th ack
 *                       (the host SIGKILLs QEMU on it), go on for 256
 *                       lines at most, then wait for the kill
 *   Prints "SMVM: p case A" / "SMVM: p control A" after each ack read:
 *   logd answered "OK n" for lines 0..A-1, so they are durable in its log.
 *   An answer other than "OK <the next line's number>" is an error.  The
 *   check after the crash is pmlog-crash check ... text=1 on each log.
 */
#include "apputil.h"
#include "records.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MARK_RUN 256

struct peer {
	const char *tag;
	int fd;
	uint64_t seed;
	long sent, acked;
	char in[256];
	size_t inlen;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* logd was started just before us: try for 10 s. */
static void peer_connect(struct peer *p, long port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int tries = 0;; tries++) {
		p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (p->fd < 0)
			au_die("socket");
		if (connect(p->fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		if (tries == 100)
			au_die(p->tag);
		close(p->fd);
		nanosleep(&(struct timespec){0, 100000000}, NULL);
	}
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void send_line(struct peer *p)
{
	static unsigned char buf[VR_MAX_LEN + 1];
	size_t len = vr_fill(p->seed, (uint64_t)p->sent, 1, buf), off = 0;

	buf[len++] = '\n';
	while (off < len) {
		ssize_t w = write(p->fd, buf + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			au_die(p->tag);
		off += (size_t)w;
	}
	p->sent++;
}

/* Read one answer; it must be "OK <the number of the next unacked line>". */
static void read_ack(struct peer *p)
{
	char *nl, want[32];

	while ((nl = memchr(p->in, '\n', p->inlen)) == NULL) {
		ssize_t r = read(p->fd, p->in + p->inlen, sizeof(p->in) - 1 - p->inlen);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			printf("SMVM: error: %s: connection %s after %ld acks\n", p->tag,
			       r == 0 ? "closed" : strerror(errno), p->acked);
			exit(1);
		}
		p->inlen += (size_t)r;
		if (p->inlen == sizeof(p->in) - 1) {
			printf("SMVM: error: %s: answer too long\n", p->tag);
			exit(1);
		}
	}
	*nl = '\0';
	snprintf(want, sizeof(want), "OK %ld", p->acked);
	if (strcmp(p->in, want) != 0) {
		printf("SMVM: error: %s: answer '%s', want '%s'\n", p->tag, p->in, want);
		exit(1);
	}
	p->inlen -= (size_t)(nl + 1 - p->in);
	memmove(p->in, nl + 1, p->inlen);
	p->acked++;
	printf("SMVM: p %s %ld\n", p->tag, p->acked);
}

int main(int argc, char **argv)
{
	static const char *const keys[] = {"case",  "control", "seed", "lines", "window",
					   "crash", "stage",   "mark", NULL};
	const char *stage;
	uint64_t seed, t0;
	long n, window, crash, mark, cport, kport;
	struct peer c = {.tag = "case"}, k = {.tag = "control"};

	if (argc < 2 || strcmp(argv[1], "run") != 0) {
		fprintf(stderr,
			"usage: logd-crash run case=PORT control=PORT seed=S lines=N [window=W crash=K "
			"stage=acked|timer mark=K]\n");
		return 2;
	}
	argc -= 2;
	argv += 2;
	au_check_keys(argc, argv, keys);
	cport = au_num(argc, argv, "case", 0, 1, 65535);
	kport = au_num(argc, argv, "control", 0, 1, 65535);
	n = au_num(argc, argv, "lines", 0, 1, 1000000);
	window = au_num(argc, argv, "window", 1, 1, 64);
	crash = au_num(argc, argv, "crash", -1, 0, 1000000);
	mark = au_num(argc, argv, "mark", -1, 0, 1000000);
	stage = au_arg(argc, argv, "stage", "acked");
	seed = strtoull(au_arg(argc, argv, "seed", "1"), NULL, 0);
	if (strcmp(stage, "acked") != 0 && strcmp(stage, "timer") != 0)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (crash >= 0)
		au_crash_init();
	c.seed = seed;
	k.seed = seed + 1;
	peer_connect(&c, cport);
	peer_connect(&k, kport);
	t0 = now_ns();
	for (long i = 0; i < n || c.acked < c.sent || k.acked < k.sent;) {
		if (i < n) {
			send_line(&c);
			au_inside = 1; /* a case line is in flight */
			send_line(&k);
			i++;
		}
		/* Keep at most window lines in flight; once all are sent, drain. */
		while (c.acked < c.sent && (c.sent - c.acked >= window || i == n)) {
			read_ack(&c);
			au_inside = c.acked < c.sent;
			if (crash == c.acked && !strcmp(stage, "acked"))
				au_crash_now("acked", c.acked);
			if (crash == c.acked && !strcmp(stage, "timer")) {
				uint64_t mean_us = (now_ns() - t0) / 1000 / (uint64_t)c.acked;

				au_crash_after(c.acked, (long)(vr_mix(seed ^ 0x7e57u) % (2 * mean_us + 1)));
			}
			if (mark == c.acked)
				printf("SMVM: crashpoint\n");
			if (mark >= 0 && c.acked == mark + MARK_RUN) {
				printf("SMVM: waiting for the kill\n");
				pause();
			}
		}
		while (k.acked < k.sent && (k.sent - k.acked >= window || i == n))
			read_ack(&k);
	}
	printf("SMVM: done case %ld\n", c.acked);
	for (;;)
		pause(); /* until the crash */
}
