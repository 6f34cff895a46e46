/* SPDX-License-Identifier: MIT */
/* logd.c -- a libuv TCP server that appends each line to a pmlog and acks it once durable
 *
 * Protocol: the client sends lines ending in '\n'.  For each line the server
 * answers "OK <n>\n", n being the line's record number in the log, and only
 * after the record is durable.  A line longer than --max-line gets
 * "ERR ...\n" and the connection is closed; what was acknowledged before
 * stays in the log, the long line does not enter it.
 *
 * Group commit: lines read in one turn of the event loop, from every
 * connection, go to the log in one pmlog_append_many() (one persist for the
 * records, one for their commit words) from a uv_check handle, which runs
 * right after the loop's I/O callbacks.  Acks are written after it returns.
 *
 * SIGTERM/SIGINT drain: stop accepting and reading, commit and acknowledge
 * every whole line already read, close the connections once their acks are
 * written, close the log, exit 0.  A partial line is never written.
 */
#include "pmlog.h"

#include <syncmap.h>

#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define ACK_MAX 32		    /* "OK 18446744073709551615\n" */
#define WRITE_HIGH_WATER (1u << 20) /* stop reading a client that does not read its acks */
#define LINGER_MS 2000		    /* after our FIN, wait this long for the client's */

static const char usage[] =
	"usage: logd [-p PORT] [-b ADDR] [-m MAX_LINE] [-c CHUNK] [--fsync] [-q] LOGFILE\n"
	"  -p, --port PORT       TCP port (default 7411; 0 picks a free one)\n"
	"  -b, --bind ADDR       address to listen on (default 127.0.0.1)\n"
	"  -m, --max-line BYTES  longest line accepted (default 65536)\n"
	"  -c, --chunk BYTES     log growth step (default 1m)\n"
	"      --fsync           persist with write + fdatasync instead of libsyncmap\n"
	"  -q, --quiet           no per-connection messages\n"
	"Prints 'logd: listening on ADDR:PORT ...' on stdout once it accepts.\n"
	"SIGTERM or SIGINT: drain (ack every whole line read), close the log, exit 0.\n";

struct conn;

/* A whole line waiting for the next commit: its bytes live in the arena. */
struct pending {
	struct conn *c;
	size_t off, len;
};

struct server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_signal_t sigterm, sigint;
	uv_check_t committer;
	struct pmlog *log;
	size_t max_line;
	int quiet, draining;
	struct conn *conns; /* every open connection */
	struct pending *pend;
	size_t npend, cappend;
	char *arena;
	size_t arena_len, arena_cap;
	struct iovec *iov;
	size_t cap_iov;
	uint64_t committed, conns_total, errors;
	int exit_code;
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t linger;
	struct server *s;
	struct conn *prev, *next;
	char *line; /* the partial line read so far */
	size_t len, cap;
	int refs;      /* handles not yet closed + lines in the batch */
	int discard;   /* no more lines taken: oversize, drain or finish */
	int finishing; /* FIN queued or sent */
	int closed;    /* uv_close called */
	int paused;    /* reading stopped: too many acks unread by the client */
	const char *err_msg;
	char *acks; /* acks of the current commit, flushed in one write */
	size_t nacks, capacks;
	uint64_t id;
};

struct wreq {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static void conn_close(struct conn *c);
static void conn_finish(struct conn *c);
static void conn_resume(struct conn *c);

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (q == NULL) {
		fprintf(stderr, "logd: out of memory\n");
		exit(1);
	}
	return q;
}

static void conn_unref(struct conn *c)
{
	if (--c->refs > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (c->s->conns == c)
		c->s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c->line);
	free(c->acks);
	free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void conn_close(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	c->discard = 1;
	uv_timer_stop(&c->linger);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
	uv_close((uv_handle_t *)&c->linger, on_handle_closed);
}

static void on_linger(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	free(req);
	(void)status;
	/* Our FIN is out; the client closes its side when it has read the acks.
	 * Closing before that could reset the connection and lose them. */
	if (!c->closed)
		uv_timer_start(&c->linger, on_linger, LINGER_MS, 0);
	conn_unref(c);
}

/* No more lines from c: send what is queued (acks, then err_msg), FIN,
 * keep reading and discarding until the client closes or LINGER_MS pass. */
static void conn_finish(struct conn *c)
{
	uv_shutdown_t *req;

	if (c->finishing || c->closed)
		return;
	c->finishing = 1;
	c->discard = 1;
	conn_resume(c); /* read and discard until the client's FIN: no reset */
	req = xrealloc(NULL, sizeof(*req));
	req->data = c;
	c->refs++;
	if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
		free(req);
		c->refs--;
		conn_close(c);
	}
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void alloc_buf(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(suggested);
	buf->len = buf->base != NULL ? suggested : 0;
}

static void conn_resume(struct conn *c)
{
	if (c->paused && !c->closed) {
		c->paused = 0;
		uv_read_start((uv_stream_t *)&c->tcp, alloc_buf, on_read);
	}
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *c = w->c;

	if (status < 0 && !c->closed)
		conn_close(c); /* the client went away: nothing more to tell it */
	else if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_HIGH_WATER / 2)
		conn_resume(c);
	free(w);
	conn_unref(c);
}

static void send_bytes(struct conn *c, const char *data, size_t n)
{
	struct wreq *w;
	uv_buf_t b;

	if (c->closed || n == 0)
		return;
	w = xrealloc(NULL, sizeof(*w) + n);
	memcpy(w->data, data, n);
	w->c = c;
	b = uv_buf_init(w->data, (unsigned)n);
	c->refs++;
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
		free(w);
		c->refs--;
		conn_close(c);
		return;
	}
	/* Backpressure: a client that sends without reading its acks. */
	if (!c->discard && !c->paused &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_HIGH_WATER) {
		c->paused = 1;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
}

/* Queue a whole line of c for the next commit. */
static void take_line(struct server *s, struct conn *c, const char *a, size_t alen, const char *b,
		      size_t blen)
{
	size_t n = alen + blen;

	if (s->arena_len + n > s->arena_cap) {
		s->arena_cap = (s->arena_len + n) * 2;
		s->arena = xrealloc(s->arena, s->arena_cap);
	}
	if (alen > 0) /* a is NULL while the connection had no partial line */
		memcpy(s->arena + s->arena_len, a, alen);
	if (blen > 0)
		memcpy(s->arena + s->arena_len + alen, b, blen);
	if (s->npend == s->cappend) {
		s->cappend = s->cappend ? s->cappend * 2 : 256;
		s->pend = xrealloc(s->pend, s->cappend * sizeof(*s->pend));
	}
	s->pend[s->npend++] = (struct pending){.c = c, .off = s->arena_len, .len = n};
	s->arena_len += n;
	c->refs++; /* the batch holds c until its ack is queued */
}

static void oversize(struct conn *c)
{
	struct server *s = c->s;

	if (!s->quiet)
		fprintf(stderr, "logd: connection %" PRIu64 ": line longer than %zu bytes; closing\n", c->id,
			s->max_line);
	c->err_msg = "ERR line too long; closing\n";
	c->discard = 1;
	c->len = 0;
}

/* Split what arrived into lines: whole ones join the batch, the rest waits. */
static void feed(struct conn *c, const char *p, size_t n)
{
	struct server *s = c->s;

	while (n > 0 && !c->discard) {
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl != NULL ? (size_t)(nl - p) : n;

		if (c->len + seg > s->max_line) {
			oversize(c);
			return;
		}
		if (nl == NULL) {
			if (c->len + seg > c->cap) {
				c->cap = c->len + seg > 2 * c->cap ? c->len + seg : 2 * c->cap;
				c->line = xrealloc(c->line, c->cap);
			}
			memcpy(c->line + c->len, p, seg);
			c->len += seg;
			return;
		}
		take_line(s, c, c->line, c->len, p, seg);
		c->len = 0;
		p += seg + 1;
		n -= seg + 1;
	}
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;

	if (nread > 0 && !c->discard)
		feed(c, buf->base, (size_t)nread);
	free(buf->base);
	if (nread >= 0)
		return;
	/* EOF or error: a partial line is dropped, never written.  Whole lines
	 * already in the batch are still committed; their acks have nowhere to go. */
	if (!c->s->quiet && c->len > 0)
		fprintf(stderr,
			"logd: connection %" PRIu64 ": closed with a partial line (%zu bytes) dropped\n",
			c->id, c->len);
	c->len = 0;
	conn_close(c);
}

static void add_ack(struct conn *c, uint64_t seq)
{
	if (c->nacks + ACK_MAX > c->capacks) {
		c->capacks = c->capacks ? c->capacks * 2 : 4096;
		c->acks = xrealloc(c->acks, c->capacks);
	}
	c->nacks += (size_t)snprintf(c->acks + c->nacks, ACK_MAX, "OK %" PRIu64 "\n", seq);
}

/* A failed commit: none of the batch is acknowledged; its clients are told
 * and disconnected (they may retry: a line may then be in the log twice). */
static void commit_failed(struct server *s, int err)
{
	char msg[128];

	s->errors++;
	fprintf(stderr, "logd: appending %zu lines failed: %s\n", s->npend, strerror(err));
	snprintf(msg, sizeof(msg), "ERR log append failed: %s; closing\n", strerror(err));
	for (size_t i = 0; i < s->npend; i++) {
		struct conn *c = s->pend[i].c;

		if (!c->closed && !c->finishing) {
			send_bytes(c, msg, strlen(msg));
			conn_finish(c);
		}
	}
}

static void commit(struct server *s)
{
	uint64_t first = pmlog_count(s->log);
	int rc, err;

	if (s->npend > s->cap_iov) {
		s->cap_iov = s->npend * 2;
		s->iov = xrealloc(s->iov, s->cap_iov * sizeof(*s->iov));
	}
	for (size_t i = 0; i < s->npend; i++)
		s->iov[i] = (struct iovec){.iov_base = s->arena + s->pend[i].off, .iov_len = s->pend[i].len};
	rc = pmlog_append_many(s->log, s->iov, s->npend);
	err = errno;
	if (rc != 0) {
		commit_failed(s, err);
	} else {
		/* Durable now: only from here on may anyone hear "OK". */
		s->committed += s->npend;
		for (size_t i = 0; i < s->npend; i++)
			if (!s->pend[i].c->closed)
				add_ack(s->pend[i].c, first + i);
		for (size_t i = 0; i < s->npend; i++) {
			struct conn *c = s->pend[i].c;

			send_bytes(c, c->acks, c->nacks);
			c->nacks = 0;
		}
	}
	for (size_t i = 0; i < s->npend; i++)
		conn_unref(s->pend[i].c);
	s->npend = 0;
	s->arena_len = 0;
}

/* After the loop's I/O callbacks: commit the turn's lines, then deal with
 * connections that must go (oversized line: its ERR after the acks). */
static void on_check(uv_check_t *h)
{
	struct server *s = h->data;

	if (s->npend > 0)
		commit(s);
	for (struct conn *c = s->conns; c != NULL; c = c->next) {
		if (c->err_msg != NULL && !c->closed) {
			send_bytes(c, c->err_msg, strlen(c->err_msg));
			c->err_msg = NULL;
			conn_finish(c);
		}
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	struct server *s = server->data;
	struct conn *c;

	if (status < 0 || s->draining)
		return;
	c = xrealloc(NULL, sizeof(*c));
	memset(c, 0, sizeof(*c));
	c->s = s;
	c->id = ++s->conns_total;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->linger);
	c->tcp.data = c->linger.data = c;
	c->refs = 2; /* the two handles */
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, alloc_buf, on_read);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *s = h->data;

	if (s->draining)
		return;
	s->draining = 1;
	fprintf(stderr, "logd: %s: draining\n", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	uv_close((uv_handle_t *)&s->listener, NULL);
	/* Whole lines read so far are committed and acknowledged; nothing more
	 * is taken.  Every connection then closes once its acks are out. */
	for (struct conn *c = s->conns; c != NULL; c = c->next) {
		c->discard = 1;
		c->len = 0;
	}
	on_check(&s->committer);
	for (struct conn *c = s->conns; c != NULL; c = c->next)
		conn_finish(c);
	uv_close((uv_handle_t *)&s->committer, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
}

struct opts {
	const char *bind, *file;
	int port;
	struct pmlog_opts log;
	size_t max_line;
	int quiet;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"port", required_argument, NULL, 'p'},
		{"bind", required_argument, NULL, 'b'},
		{"max-line", required_argument, NULL, 'm'},
		{"chunk", required_argument, NULL, 'c'},
		{"fsync", no_argument, NULL, 'F'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int ch;
	size_t v;

	*o = (struct opts){.bind = "127.0.0.1", .port = 7411, .max_line = 65536, .log = {.create = 1}};
	while ((ch = getopt_long(argc, argv, "p:b:m:c:qhV", lo, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (ex_parse_size(optarg, &v) != 0 || v > 65535) {
				fprintf(stderr, "logd: invalid port '%s'\n", optarg);
				return -1;
			}
			o->port = (int)v;
			break;
		case 'b': o->bind = optarg; break;
		case 'm':
			if (ex_parse_size(optarg, &o->max_line) != 0 || o->max_line == 0 ||
			    o->max_line > PMLOG_MAX_RECORD) {
				fprintf(stderr, "logd: invalid max line '%s' (1..%u)\n", optarg,
					PMLOG_MAX_RECORD);
				return -1;
			}
			break;
		case 'c':
			if (ex_parse_size(optarg, &o->log.chunk) != 0 || o->log.chunk == 0) {
				fprintf(stderr, "logd: invalid chunk '%s'\n", optarg);
				return -1;
			}
			break;
		case 'F': o->log.backend = PMLOG_FSYNC; break;
		case 'q': o->quiet = 1; break;
		case 'h': fputs(usage, stdout); exit(0);
		case 'V': printf("logd (libsyncmap) %s\n", syncmap_version_string()); exit(0);
		default: fputs(usage, stderr); return -1;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return -1;
	}
	o->file = argv[optind];
	return 0;
}

static int listen_on(struct server *s, const struct opts *o)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss), rc;
	char host[64];

	if (uv_ip4_addr(o->bind, o->port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(o->bind, o->port, (struct sockaddr_in6 *)&ss) != 0) {
		fprintf(stderr, "logd: invalid address '%s'\n", o->bind);
		return -1;
	}
	uv_tcp_init(s->loop, &s->listener);
	s->listener.data = s;
	rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
	if (rc == 0)
		rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
	if (rc != 0) {
		fprintf(stderr, "logd: listening on %s:%d: %s\n", o->bind, o->port, uv_strerror(rc));
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
	else
		uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
	printf("logd: listening on %s:%d (log %s, %s, persist by %s, %" PRIu64 " records)\n", host,
	       ntohs(((struct sockaddr_in *)&ss)->sin_port), o->file, pmlog_mode_name(s->log),
	       pmlog_persist_name(s->log), pmlog_count(s->log));
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct server s;
	struct opts o;
	char err[512];

	if (parse(argc, argv, &o) != 0)
		return 2;
	/* A client that vanishes while its acks are written must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	memset(&s, 0, sizeof(s));
	s.loop = uv_default_loop();
	s.max_line = o.max_line;
	s.quiet = o.quiet;
	s.log = pmlog_open(o.file, &o.log, err, sizeof(err));
	if (s.log == NULL) {
		fprintf(stderr, "logd: %s\n", err);
		return 1;
	}
	if (listen_on(&s, &o) != 0) {
		pmlog_close(s.log);
		return 1;
	}
	uv_check_init(s.loop, &s.committer);
	s.committer.data = &s;
	uv_check_start(&s.committer, on_check);
	uv_signal_init(s.loop, &s.sigterm);
	uv_signal_init(s.loop, &s.sigint);
	s.sigterm.data = s.sigint.data = &s;
	uv_signal_start(&s.sigterm, on_signal, SIGTERM);
	uv_signal_start(&s.sigint, on_signal, SIGINT);

	uv_run(s.loop, UV_RUN_DEFAULT);

	/* The loop ends when every handle is closed: the drain is complete. */
	uv_loop_close(s.loop);
	if (pmlog_close(s.log) != 0) {
		fprintf(stderr, "logd: closing the log: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr,
		"logd: drained: %" PRIu64 " lines committed from %" PRIu64 " connections, %" PRIu64
		" failed commits; exiting\n",
		s.committed, s.conns_total, s.errors);
	free(s.pend);
	free(s.arena);
	free(s.iov);
	return s.errors > 0 ? 1 : 0;
}
