/* SPDX-License-Identifier: MIT */
/* test_logd.c -- logd: acks after durability, oversized lines, disconnects, SIGTERM drain */
#include "helpers.h"
#include "pmlog.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct loopfs fs, copy;
static char dir[PATH_MAX];
static pid_t server = -1;

static void cleanup(void)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
	}
	loopfs_done(&copy);
	loopfs_done(&fs);
	remove_tree(dir);
}

TestSuite(logd, .fini = cleanup);

static const char *shm_dir(void)
{
	cr_assert_not_null(scratch_dir(dir, sizeof(dir), "/dev/shm", "logd-test"));
	return dir;
}

static int sh(const char *fmt, ...)
{
	char cmd[4 * PATH_MAX];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

/* Start logd on d/name with extra arguments; its port.  stderr goes to
 * d/logd.err for the failure messages. */
static int start_server(const char *d, const char *name, const char *const *extra)
{
	char log[PATH_MAX], errf[PATH_MAX], line[512], *at;
	const char *argv[16];
	int fds[2], n = 0, port = -1;
	FILE *f;

	snprintf(log, sizeof(log), "%s/%s", d, name);
	snprintf(errf, sizeof(errf), "%s/logd.err", d);
	argv[n++] = LOGD_BIN;
	argv[n++] = "--port";
	argv[n++] = "0";
	for (; extra != NULL && *extra != NULL; extra++)
		argv[n++] = *extra;
	argv[n++] = log;
	argv[n] = NULL;
	cr_assert_eq(pipe(fds), 0);
	server = fork();
	cr_assert_geq(server, 0);
	if (server == 0) {
		int e = open(errf, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(fds[1], 1);
		dup2(e, 2);
		close(fds[0]);
		execv(LOGD_BIN, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(line, sizeof(line), f), "logd did not start (see %s)", errf);
	fclose(f);
	at = strstr(line, "listening on ");
	cr_assert(at && (at = strrchr(at, ':')) && sscanf(at + 1, "%d", &port) == 1, "logd said: %s", line);
	return port;
}

static int connect_to(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 20};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
	/* A hung server fails the test instead of hanging it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		cr_assert_gt(w, 0, "send: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
}

/* One line from the server without its newline: its length, 0 at EOF
 * (the server closed in order), -1 on error (reset, timeout). */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = recv(fd, buf + n, 1, 0);

		if (r < 0)
			return -1;
		if (r == 0)
			return n == 0 ? 0 : -1;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return (ssize_t)n + 1;
		}
		n++;
	}
	return -1;
}

static void expect_ack(int fd, uint64_t seq)
{
	char line[128], want[64];

	cr_assert_gt(read_line(fd, line, sizeof(line)), 0, "no ack (errno %d)", errno);
	snprintf(want, sizeof(want), "OK %llu", (unsigned long long)seq);
	cr_assert_str_eq(line, want);
}

/* SIGTERM and the exit status (-1 if it did not exit within 20 s). */
static int stop_server(int sig)
{
	int st = 0;

	kill(server, sig);
	for (int i = 0; i < 2000; i++) {
		pid_t p = waitpid(server, &st, WNOHANG);

		if (p == server) {
			server = -1;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	return -1;
}

struct lines {
	size_t n;
	char **s;
};

static void collect(void *arg, uint64_t idx, size_t off, const void *data, uint32_t len)
{
	struct lines *l = arg;

	(void)off;
	cr_assert_eq(idx, l->n);
	if ((l->n & (l->n - 1)) == 0) /* 0, 1, 2, 4, ...: grow at powers of two */
		l->s = realloc(l->s, (l->n ? 2 * l->n : 1) * sizeof(*l->s));
	cr_assert_not_null(l->s);
	l->s[l->n] = strndup(data, len);
	cr_assert_eq(strlen(l->s[l->n]), len, "record %llu holds a NUL", (unsigned long long)idx);
	l->n++;
}

static void read_log(const char *path, struct lines *out)
{
	struct pmlog_opts o = {.readonly = 1};
	char err[256];
	struct pmlog *l = pmlog_open(path, &o, err, sizeof(err));
	enum pmlog_stop why;

	cr_assert_not_null(l, "%s", err);
	out->n = 0;
	out->s = NULL;
	cr_assert_eq(pmlog_foreach(l, collect, out), 0);
	cr_assert_eq(pmlog_torn(l, &why), 0, "%s: torn tail (%s)", path, pmlog_stop_str(why));
	pmlog_close(l);
}

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->s[i]);
	free(l->s);
	l->n = 0;
}

static void log_path(char *out, const char *d, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", d, name);
}

static void roundtrip(const char *const *extra)
{
	const char *d = shm_dir();
	char log[PATH_MAX], line[64];
	struct lines got;
	int port = start_server(d, "rt.pmlog", extra);
	int a = connect_to(port), b = connect_to(port);

	/* Two connections taking turns: each ack names the line's record. */
	for (int i = 0; i < 100; i++) {
		int fd = i % 2 ? b : a;

		snprintf(line, sizeof(line), "line %d from %c\n", i, i % 2 ? 'b' : 'a');
		send_all(fd, line, strlen(line));
		expect_ack(fd, (uint64_t)i);
	}
	close(a);
	close(b);
	cr_assert_eq(stop_server(SIGTERM), 0);
	log_path(log, d, "rt.pmlog");
	read_log(log, &got);
	cr_assert_eq(got.n, 100);
	for (int i = 0; i < 100; i++) {
		snprintf(line, sizeof(line), "line %d from %c", i, i % 2 ? 'b' : 'a');
		cr_assert_str_eq(got.s[i], line);
	}
	lines_free(&got);
}

Test(logd, acks_name_each_line_in_order)
{
	roundtrip(NULL);
}

/* logd and pmlog read sizes with one grammar (examples/common): logd used to
 * refuse the g suffix that pmlog took. */
Test(logd, sizes_take_the_same_suffixes_as_pmlog)
{
	static const char *const extra[] = {"-c", "1g", NULL};

	roundtrip(extra);
	/* 2^64 KiB does not fit: refused, as a usage error, by both. */
	cr_expect_eq(sh("%s -c 18446744073709551615k /dev/null 2>/dev/null", LOGD_BIN), 2);
	cr_expect_eq(sh("%s -p 1x /dev/null 2>/dev/null", LOGD_BIN), 2);
}

Test(logd, fsync_mode_acks_name_each_line_in_order)
{
	static const char *const extra[] = {"--fsync", NULL};

	roundtrip(extra);
}

/*
 * The ack means durable: K lines are sent, and the moment the K-th ack is
 * read the server is killed and the loop device copied with O_DIRECT (what
 * a power cut leaves).  Every acknowledged line must be in the copy's log.
 * A file written with write(2) and no sync before the acks is the control:
 * if it were complete in the copy, the copy could not tell.
 */
static void ack_means_durable(const char *const *extra)
{
	enum { K = 300 };
	char log[PATH_MAX], ctl[PATH_MAX], why[256], *batch, *p;
	struct lines got;
	struct stat st;
	int port, fd, cfd;
	char buf[4096];

	LOOPFS_OR_SKIP(&fs, "ext4", 128, "commit=60");
	if (fs.own_dir || fs.dev[0] == '\0')
		cr_skip_test("needs a loop device of its own (SYNCMAP_TEST_DIR is set)");
	port = start_server(fs.dir, "durable.pmlog", extra);
	log_path(ctl, fs.dir, "control.txt");
	cfd = open(ctl, O_WRONLY | O_CREAT, 0644);
	memset(buf, 'c', sizeof(buf));
	for (int i = 0; i < 32; i++)
		cr_assert_eq(write(cfd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	fd = connect_to(port);
	batch = p = malloc(K * 32);
	for (int i = 0; i < K; i++)
		p += sprintf(p, "durable line %d\n", i);
	send_all(fd, batch, (size_t)(p - batch));
	for (int i = 0; i < K; i++)
		expect_ack(fd, (uint64_t)i);
	/* The last ack is in: from here the server may do nothing more. */
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	server = -1;
	snprintf(copy.img, sizeof(copy.img), "/dev/shm/logd-crash-%d.img", (int)getpid());
	cr_assert_eq(sh("dd if='%s' of='%s' bs=1M iflag=direct conv=sparse status=none", fs.dev, copy.img),
		     0);
	cr_assert_eq(loopfs_mount_image(&copy, copy.img, "", why, sizeof(why)), 0, "mount the copy: %s", why);
	close(fd);
	close(cfd);

	log_path(log, copy.dir, "durable.pmlog");
	read_log(log, &got);
	cr_assert_geq(got.n, K, "only %zu of %d acknowledged lines survived", got.n, K);
	for (int i = 0; i < K; i++) {
		char want[32];

		snprintf(want, sizeof(want), "durable line %d", i);
		cr_assert_str_eq(got.s[i], want);
	}
	lines_free(&got);
	log_path(ctl, copy.dir, "control.txt");
	cr_assert(stat(ctl, &st) != 0 || st.st_size < 32 * (off_t)sizeof(buf),
		  "the unsynced control survived: the copy proves nothing");
	free(batch);
}

Test(logd, ack_means_durable_syncmap, .timeout = 120)
{
	ack_means_durable(NULL);
}

Test(logd, ack_means_durable_fsync, .timeout = 120)
{
	static const char *const extra[] = {"--fsync", NULL};

	ack_means_durable(extra);
}

/* An oversized line: the lines before it are acked, then ERR and an orderly
 * close; the long line never enters the log, and others are served on. */
Test(logd, oversized_line_gets_error_and_close)
{
	static const char *const extra[] = {"--max-line", "100", NULL};
	const char *d = shm_dir();
	char log[PATH_MAX], line[256], big[600];
	struct lines got;
	int port = start_server(d, "big.pmlog", extra), a, b;

	a = connect_to(port);
	memset(big, 'x', sizeof(big));
	send_all(a, "good 1\ngood 2\n", 14);
	send_all(a, big, sizeof(big));
	send_all(a, "\nafter the long one\n", 20);
	expect_ack(a, 0);
	expect_ack(a, 1);
	cr_assert_gt(read_line(a, line, sizeof(line)), 0, "no error line");
	cr_assert(strncmp(line, "ERR line too long", 17) == 0, "got '%s'", line);
	cr_assert_eq(read_line(a, line, sizeof(line)), 0, "not an orderly close after the error");
	close(a);

	/* The same without any newline: a partial line past the limit. */
	a = connect_to(port);
	send_all(a, big, sizeof(big));
	cr_assert_gt(read_line(a, line, sizeof(line)), 0);
	cr_assert(strncmp(line, "ERR line too long", 17) == 0, "got '%s'", line);
	cr_assert_eq(read_line(a, line, sizeof(line)), 0);
	close(a);

	b = connect_to(port);
	send_all(b, "from b\n", 7);
	expect_ack(b, 2);
	memset(big, 'y', 100);
	big[100] = '\n';
	send_all(b, big, 101); /* exactly the limit: accepted */
	expect_ack(b, 3);
	close(b);
	cr_assert_eq(stop_server(SIGTERM), 0);
	log_path(log, d, "big.pmlog");
	read_log(log, &got);
	cr_assert_eq(got.n, 4);
	cr_assert_str_eq(got.s[0], "good 1");
	cr_assert_str_eq(got.s[1], "good 2");
	cr_assert_str_eq(got.s[2], "from b");
	cr_assert_eq(strlen(got.s[3]), 100);
	lines_free(&got);
}

/* Clients that go away mid-line, with acks unread, or with a reset: whole
 * lines are kept, partial ones never written, the server carries on. */
Test(logd, client_disconnects_mid_line)
{
	const char *d = shm_dir();
	char log[PATH_MAX];
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct lines got;
	int port = start_server(d, "gone.pmlog", NULL), a, b, c;

	a = connect_to(port);
	send_all(a, "whole from a\npartial from a", 27);
	close(a);	/* its ack is never read */
	usleep(200000); /* a's line first, so that the record numbers below are known */
	c = connect_to(port);
	send_all(c, "whole from c\npartial from c", 27);
	expect_ack(c, 1);
	setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c); /* reset */
	b = connect_to(port);
	send_all(b, "from b\n", 7);
	expect_ack(b, 2);
	close(b);
	cr_assert_eq(stop_server(SIGTERM), 0);
	log_path(log, d, "gone.pmlog");
	read_log(log, &got);
	cr_assert_eq(got.n, 3);
	cr_assert_str_eq(got.s[0], "whole from a");
	cr_assert_str_eq(got.s[1], "whole from c");
	cr_assert_str_eq(got.s[2], "from b");
	lines_free(&got);
}

/* Send whole lines "client C line K" without blocking until the socket is
 * full (or max bytes); the number of lines sent whole.  A line cut by a full
 * socket is left partial on purpose: the server must drop it. */
static int fill_socket(int fd, int c, size_t max)
{
	char line[64];
	size_t sent = 0;
	int k = 0;

	cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	for (;; k++) {
		int n = snprintf(line, sizeof(line), "client %d line %d\n", c, k);
		ssize_t w = send(fd, line, (size_t)n, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		cr_assert_gt(w, 0, "send: %s", strerror(errno));
		sent += (size_t)w;
		if (w < n || sent >= max)
			break;
	}
	cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK), 0);
	return k;
}

/*
 * SIGTERM with lines in flight: the server is stopped while 4 clients fill
 * their sockets, then gets SIGTERM and SIGCONT together, so it drains with
 * data unread.  An idle client holds a partial line and never closes.  The
 * server must exit 0 on its own; every line it committed must have been
 * acknowledged (acks == records); each client's records must be a prefix of
 * what it sent, in order, whole; the partial line must not be in the log.
 */
Test(logd, sigterm_drains_and_exits_cleanly, .timeout = 60)
{
	enum { C = 4 };
	const char *d = shm_dir();
	char log[PATH_MAX], line[128];
	int fds[C], port = start_server(d, "drain.pmlog", NULL), acked[C] = {0}, sent[C], idle;
	struct lines got;
	size_t total = 0, all = 0, next[C] = {0};
	ssize_t r;

	for (int c = 0; c < C; c++)
		fds[c] = connect_to(port);
	idle = connect_to(port);
	send_all(idle, "half a line from the idle client", 32);
	usleep(100000); /* let the server accept them all and read the half line */
	kill(server, SIGSTOP);
	for (int c = 0; c < C; c++) {
		sent[c] = fill_socket(fds[c], c, 4u << 20);
		all += (size_t)sent[c];
	}
	kill(server, SIGTERM);
	kill(server, SIGCONT);
	for (int c = 0; c < C; c++) {
		while ((r = read_line(fds[c], line, sizeof(line))) > 0) {
			cr_assert(strncmp(line, "OK ", 3) == 0, "client %d got '%s'", c, line);
			acked[c]++;
		}
		cr_assert_eq(r, 0, "client %d: no orderly close after the drain", c);
		total += (size_t)acked[c];
	}
	cr_assert_eq(read_line(idle, line, sizeof(line)), 0, "the idle client was not closed in order");
	cr_assert_eq(stop_server(0), 0, "logd did not exit 0 after SIGTERM");
	for (int c = 0; c < C; c++)
		close(fds[c]);
	close(idle);
	log_path(log, d, "drain.pmlog");
	read_log(log, &got);
	cr_assert_eq(got.n, total, "%zu records in the log, %zu acknowledged", got.n, total);
	for (size_t i = 0; i < got.n; i++) {
		int c = -1, k = -1;

		cr_assert_eq(sscanf(got.s[i], "client %d line %d", &c, &k), 2, "record %zu: '%s'", i,
			     got.s[i]);
		cr_assert(c >= 0 && c < C && k == (int)next[c] && k < sent[c],
			  "record %zu: '%s' out of order", i, got.s[i]);
		snprintf(line, sizeof(line), "client %d line %d", c, k);
		cr_assert_str_eq(got.s[i], line);
		next[c]++;
	}
	for (int c = 0; c < C; c++)
		cr_assert_eq(next[c], (size_t)acked[c], "client %d: %zu lines in the log, %d acked", c,
			     next[c], acked[c]);
	cr_log_info("drain: %zu of %zu lines sent were read and committed before the drain", total, all);
	lines_free(&got);
}

Test(logd, load_compare_reports_both_servers, .timeout = 60)
{
	const char *d = shm_dir();
	char out[PATH_MAX], cmd[3 * PATH_MAX];
	FILE *f;
	char line[256];
	int rows = 0;

	snprintf(out, sizeof(out), "%s/compare.out", d);
	snprintf(cmd, sizeof(cmd), "'%s' --compare --logd '%s' --dir '%s' -c 2 -w 2 -d 1 > '%s' 2>/dev/null",
		 LOGD_LOAD_BIN, LOGD_BIN, d, out);
	cr_assert_eq(sh("%s", cmd), 0, "%s", cmd);
	f = fopen(out, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long long acks, errors;
		double rate, p50, p99, max;
		char *tok[32];
		int n = 0;

		if (strncmp(line, "syncmap", 7) != 0 && strncmp(line, "write + fdatasync", 17) != 0)
			continue;
		/* The label has spaces in it; the six numbers end the row. */
		for (char *t = strtok(line, " \n"); t != NULL && n < 32; t = strtok(NULL, " \n"))
			tok[n++] = t;
		cr_assert_geq(n, 7, "short row");
		cr_assert(sscanf(tok[n - 6], "%llu", &acks) == 1 && sscanf(tok[n - 5], "%lf", &rate) == 1 &&
				  sscanf(tok[n - 4], "%lf", &p50) == 1 &&
				  sscanf(tok[n - 3], "%lf", &p99) == 1 &&
				  sscanf(tok[n - 2], "%lf", &max) == 1 &&
				  sscanf(tok[n - 1], "%llu", &errors) == 1,
			  "unparsable row");
		cr_assert(acks > 0 && rate > 0 && p50 > 0 && p99 >= p50 && errors == 0,
			  "acks %llu rate %f p50 %f p99 %f errors %llu", acks, rate, p50, p99, errors);
		rows++;
	}
	fclose(f);
	cr_assert_eq(rows, 2, "expected a syncmap row and an fdatasync row");
}
