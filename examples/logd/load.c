/* SPDX-License-Identifier: MIT */
/* load.c -- logd-load: a libuv load generator for logd, measuring ack latency and throughput
 *
 * N connections each keep W lines in flight: a line is sent, and the next
 * one only when an ack has come back, so latency is send-to-ack of every
 * line.  --compare starts logd twice (libsyncmap, then --fsync) on fresh
 * logs and runs the same load against each, for a side-by-side answer.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <syncmap.h> /* the version only: logd-load drives logd over TCP */

#include "common.h"
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

static const char usage[] =
	"usage: logd-load [-H HOST] [-p PORT] [-c CONNS] [-w WINDOW] [-s BYTES] [-d SECONDS | -n LINES]\n"
	"       logd-load --compare [--dir DIR] [--logd PATH] [-c CONNS] [-w WINDOW] [-s BYTES] [-d "
	"SECONDS]\n"
	"  -H, --host HOST      logd's address (default 127.0.0.1)\n"
	"  -p, --port PORT      logd's port (default 7411)\n"
	"  -c, --conns N        connections (default 4)\n"
	"  -w, --window N       lines in flight per connection (default 1)\n"
	"  -s, --size BYTES     line length including the newline (default 128)\n"
	"  -d, --duration SECS  send for this long (default 3)\n"
	"  -n, --lines N        send exactly N lines per connection instead\n"
	"      --compare        start logd with libsyncmap, then with --fsync, load both\n"
	"      --dir DIR        where --compare puts its logs (default .); removed afterwards\n"
	"      --logd PATH      the logd binary (default: next to this program)\n";

struct cfg {
	const char *host;
	int port, conns, window;
	size_t size;
	double seconds;
	uint64_t lines; /* per connection; 0: by duration */
};

struct result {
	uint64_t acks, errors, sent;
	double secs;
	double p50, p99, max; /* microseconds */
	char first_error[160];
};

struct run;

struct client {
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct run *run;
	int id;
	uint64_t sent, acked;
	uint64_t *ts; /* send times of the lines in flight, a ring of `window` */
	size_t head, inflight;
	char rbuf[64];
	size_t rlen;
	int closing;
};

struct run {
	uv_loop_t loop;
	uv_timer_t timer;
	const struct cfg *cfg;
	struct client *clients;
	int open;
	int stop;
	uint64_t *lat;
	size_t nlat, caplat;
	struct result *res;
	uint64_t t0;
};

static void client_close(struct client *c);

static void on_write(uv_write_t *req, int status)
{
	struct client *c = req->data;

	if (status < 0 && !c->closing) {
		c->run->res->errors++;
		snprintf(c->run->res->first_error, sizeof(c->run->res->first_error), "write: %s",
			 uv_strerror(status));
		client_close(c);
	}
	free(req);
}

/* Line k of connection id, exactly `size` bytes with its newline. */
static void make_line(char *buf, size_t size, int id, uint64_t k)
{
	int n = snprintf(buf, size, "c%d n%" PRIu64 " ", id, k);
	size_t at = n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;

	for (; at + 1 < size; at++)
		buf[at] = (char)('a' + (at + k) % 26);
	buf[size - 1] = '\n';
}

static void send_more(struct client *c)
{
	const struct cfg *cfg = c->run->cfg;

	while (!c->closing && !c->run->stop && c->inflight < (size_t)cfg->window &&
	       (cfg->lines == 0 || c->sent < cfg->lines)) {
		uv_write_t *req = malloc(sizeof(*req) + cfg->size);
		char *line = (char *)(req + 1);
		uv_buf_t b;

		if (req == NULL)
			return;
		make_line(line, cfg->size, c->id, c->sent);
		b = uv_buf_init(line, (unsigned)cfg->size);
		req->data = c;
		c->ts[(c->head + c->inflight) % (size_t)cfg->window] = uv_hrtime();
		c->inflight++;
		c->sent++;
		c->run->res->sent++;
		if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
			free(req);
			client_close(c);
			return;
		}
	}
	if (c->inflight == 0 && (c->run->stop || (cfg->lines != 0 && c->sent >= cfg->lines)))
		client_close(c);
}

static void on_closed(uv_handle_t *h)
{
	struct client *c = h->data;

	if (--c->run->open == 0)
		uv_timer_stop(&c->run->timer);
}

static void client_close(struct client *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void record(struct run *r, uint64_t ns)
{
	if (r->nlat == r->caplat) {
		r->caplat = r->caplat ? r->caplat * 2 : 65536;
		r->lat = realloc(r->lat, r->caplat * sizeof(*r->lat));
		if (r->lat == NULL) {
			fprintf(stderr, "logd-load: out of memory\n");
			exit(1);
		}
	}
	r->lat[r->nlat++] = ns;
}

static void got_line(struct client *c, const char *line)
{
	struct run *r = c->run;

	if (strncmp(line, "OK ", 3) == 0 && c->inflight > 0) {
		record(r, uv_hrtime() - c->ts[c->head]);
		c->head = (c->head + 1) % (size_t)r->cfg->window;
		c->inflight--;
		c->acked++;
		r->res->acks++;
		return;
	}
	r->res->errors++;
	if (r->res->first_error[0] == '\0')
		snprintf(r->res->first_error, sizeof(r->res->first_error), "connection %d: %s", c->id, line);
	client_close(c);
}

static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(suggested);
	buf->len = buf->base != NULL ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct client *c = s->data;

	for (ssize_t i = 0; i < nread && !c->closing; i++) {
		if (buf->base[i] != '\n') {
			if (c->rlen < sizeof(c->rbuf) - 1)
				c->rbuf[c->rlen++] = buf->base[i];
			continue;
		}
		c->rbuf[c->rlen] = '\0';
		c->rlen = 0;
		got_line(c, c->rbuf);
	}
	free(buf->base);
	if (nread < 0 && !c->closing) {
		if (c->inflight > 0) {
			c->run->res->errors++;
			snprintf(c->run->res->first_error, sizeof(c->run->res->first_error),
				 "connection %d: closed by logd with %zu lines unacknowledged (%s)", c->id,
				 c->inflight, uv_strerror((int)nread));
		}
		client_close(c);
		return;
	}
	if (!c->closing)
		send_more(c);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct client *c = req->data;

	if (status < 0) {
		c->run->res->errors++;
		snprintf(c->run->res->first_error, sizeof(c->run->res->first_error), "connect: %s",
			 uv_strerror(status));
		client_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, alloc_buf, on_read);
	send_more(c);
}

static void on_timer(uv_timer_t *t)
{
	struct run *r = t->data;

	/* Stop sending; every connection closes once its lines are acked. */
	r->stop = 1;
	for (int i = 0; i < r->cfg->conns; i++)
		if (!r->clients[i].closing && r->clients[i].inflight == 0)
			client_close(&r->clients[i]);
}

static int run_load(const struct cfg *cfg, struct result *res)
{
	struct sockaddr_storage addr;
	struct run r;

	memset(res, 0, sizeof(*res));
	if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr) != 0 &&
	    uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr) != 0) {
		fprintf(stderr, "logd-load: invalid address '%s'\n", cfg->host);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.res = res;
	r.clients = calloc((size_t)cfg->conns, sizeof(*r.clients));
	if (r.clients == NULL || uv_loop_init(&r.loop) != 0)
		return -1;
	uv_timer_init(&r.loop, &r.timer);
	r.timer.data = &r;
	r.t0 = uv_hrtime();
	if (cfg->lines == 0)
		uv_timer_start(&r.timer, on_timer, (uint64_t)(cfg->seconds * 1000), 0);
	for (int i = 0; i < cfg->conns; i++) {
		struct client *c = &r.clients[i];

		c->run = &r;
		c->id = i;
		c->ts = calloc((size_t)cfg->window, sizeof(*c->ts));
		uv_tcp_init(&r.loop, &c->tcp);
		c->tcp.data = c->creq.data = c;
		r.open++;
		uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&addr, on_connect);
	}
	uv_run(&r.loop, UV_RUN_DEFAULT);
	res->secs = (double)(uv_hrtime() - r.t0) / 1e9;
	uv_close((uv_handle_t *)&r.timer, NULL);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	uv_loop_close(&r.loop);
	qsort(r.lat, r.nlat, sizeof(*r.lat), ex_cmp_u64);
	res->p50 = ex_pct_us(r.lat, r.nlat, 50);
	res->p99 = ex_pct_us(r.lat, r.nlat, 99);
	res->max = r.nlat ? (double)r.lat[r.nlat - 1] / 1000.0 : 0;
	for (int i = 0; i < cfg->conns; i++)
		free(r.clients[i].ts);
	free(r.clients);
	free(r.lat);
	return 0;
}

static void print_result(const char *label, const struct result *res)
{
	printf("%-34s %9" PRIu64 " %10.0f %9.1f %9.1f %9.1f %6" PRIu64 "\n", label, res->acks,
	       res->secs > 0 ? (double)res->acks / res->secs : 0, res->p50, res->p99, res->max, res->errors);
	if (res->first_error[0] != '\0')
		printf("  first error: %s\n", res->first_error);
}

static void print_header(const struct cfg *cfg)
{
	printf("logd-load: %d connections x window %d, %zu-byte lines, ", cfg->conns, cfg->window, cfg->size);
	if (cfg->lines)
		printf("%" PRIu64 " lines each\n", cfg->lines);
	else
		printf("%.1f s\n", cfg->seconds);
	printf("%-34s %9s %10s %9s %9s %9s %6s\n", "server", "acks", "lines/s", "p50 us", "p99 us", "max us",
	       "errors");
}

/* Start logd on `log`, read its "listening on HOST:PORT (...)" line. */
static pid_t start_logd(const char *logd, const char *log, int fsync, int *port, char *desc, size_t desclen)
{
	char line[512], *at;
	int fds[2];
	pid_t pid;
	FILE *f;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		if (fsync)
			execl(logd, logd, "--port", "0", "--quiet", "--fsync", log, (char *)NULL);
		else
			execl(logd, logd, "--port", "0", "--quiet", log, (char *)NULL);
		fprintf(stderr, "logd-load: cannot run %s: %s\n", logd, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	if (pid < 0 || f == NULL || fgets(line, sizeof(line), f) == NULL ||
	    (at = strstr(line, "listening on ")) == NULL || (at = strrchr(at, ':')) == NULL ||
	    sscanf(at + 1, "%d", port) != 1) {
		fprintf(stderr, "logd-load: %s did not start\n", logd);
		if (f != NULL)
			fclose(f);
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		return -1;
	}
	fclose(f);
	at = strchr(line, '(');
	snprintf(desc, desclen, "%s", at != NULL ? at + 1 : "?");
	desc[strcspn(desc, ")\n")] = '\0';
	return pid;
}

static int stop_logd(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int compare(struct cfg *cfg, const char *dir, const char *logd)
{
	static const char *const names[2] = {"syncmap", "fsync"};
	struct result res[2];
	char log[2][PATH_MAX], desc[2][256], label[64];
	int rc = 0;

	for (int i = 0; i < 2; i++) {
		pid_t pid;

		snprintf(log[i], PATH_MAX, "%s/logd-load-%d-%s.pmlog", dir, (int)getpid(), names[i]);
		pid = start_logd(logd, log[i], i == 1, &cfg->port, desc[i], sizeof(desc[i]));
		if (pid < 0) {
			unlink(log[i]);
			return 1;
		}
		if (run_load(cfg, &res[i]) != 0)
			rc = 1;
		if (stop_logd(pid) != 0) {
			fprintf(stderr, "logd-load: logd (%s) did not exit cleanly after SIGTERM\n",
				names[i]);
			rc = 1;
		}
		unlink(log[i]);
	}
	print_header(cfg);
	for (int i = 0; i < 2; i++) {
		/* desc: "log PATH, MODE, persist by KIND, N records": keep MODE and KIND. */
		char *mode = strstr(desc[i], ", "), *kind = strstr(desc[i], "persist by ");
		int mlen = mode != NULL ? (int)strcspn(mode + 2, ",") : 0;
		int klen = kind != NULL ? (int)strcspn(kind + 11, ",") : 0;

		if (kind != NULL && mode != NULL &&
		    strncmp(mode + 2 + mlen - klen, kind + 11, (size_t)klen) != 0)
			snprintf(label, sizeof(label), "%.*s (%.*s)", mlen > 40 ? 40 : mlen, mode + 2,
				 klen > 20 ? 20 : klen, kind + 11);
		else
			snprintf(label, sizeof(label), "%.*s", mlen > 40 ? 40 : mlen,
				 mode != NULL ? mode + 2 : "?");
		print_result(label, &res[i]);
		rc |= res[i].errors > 0 || res[i].acks == 0;
	}
	return rc;
}

static int parse_num(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"conns", required_argument, NULL, 'c'},
		{"window", required_argument, NULL, 'w'},
		{"size", required_argument, NULL, 's'},
		{"duration", required_argument, NULL, 'd'},
		{"lines", required_argument, NULL, 'n'},
		{"compare", no_argument, NULL, 'C'},
		{"dir", required_argument, NULL, 'D'},
		{"logd", required_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct cfg cfg = {
		.host = "127.0.0.1", .port = 7411, .conns = 4, .window = 1, .size = 128, .seconds = 3};
	const char *dir = ".", *logd = NULL;
	char self[PATH_MAX], logd_buf[PATH_MAX + 8];
	int ch, do_compare = 0;
	long v;
	char *end;
	struct result res;

	while ((ch = getopt_long(argc, argv, "H:p:c:w:s:d:n:hV", lo, NULL)) != -1) {
		switch (ch) {
		case 'H': cfg.host = optarg; break;
		case 'p':
			if (parse_num(optarg, 1, 65535, &v) != 0)
				goto bad;
			cfg.port = (int)v;
			break;
		case 'c':
			if (parse_num(optarg, 1, 10000, &v) != 0)
				goto bad;
			cfg.conns = (int)v;
			break;
		case 'w':
			if (parse_num(optarg, 1, 100000, &v) != 0)
				goto bad;
			cfg.window = (int)v;
			break;
		case 's':
			if (parse_num(optarg, 2, 1 << 24, &v) != 0)
				goto bad;
			cfg.size = (size_t)v;
			break;
		case 'd':
			cfg.seconds = strtod(optarg, &end);
			if (*end != '\0' || !(cfg.seconds > 0))
				goto bad;
			break;
		case 'n':
			if (parse_num(optarg, 1, LONG_MAX, &v) != 0)
				goto bad;
			cfg.lines = (uint64_t)v;
			break;
		case 'C': do_compare = 1; break;
		case 'D': dir = optarg; break;
		case 'L': logd = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V':
			printf("logd-load (libsyncmap) %d.%d.%d\n", SYNCMAP_VERSION_MAJOR,
			       SYNCMAP_VERSION_MINOR, SYNCMAP_VERSION_PATCH);
			return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (do_compare) {
		if (logd == NULL) {
			ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

			self[n > 0 ? n : 0] = '\0';
			*(strrchr(self, '/') != NULL ? strrchr(self, '/') + 1 : self) = '\0';
			snprintf(logd_buf, sizeof(logd_buf), "%slogd", self);
			logd = logd_buf;
		}
		return compare(&cfg, dir, logd);
	}
	if (run_load(&cfg, &res) != 0)
		return 1;
	print_header(&cfg);
	print_result("logd", &res);
	return res.errors > 0 || res.acks == 0;
bad:
	fprintf(stderr, "logd-load: invalid value '%s' for -%c\n", optarg, ch);
	return 2;
}
