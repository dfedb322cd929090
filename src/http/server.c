/*
 * server.c: the HTTP/1.1 server declared in server.h.
 *
 * Concurrency model: one acceptor thread plus one thread per connection,
 * each with a small explicit stack (256 KiB of address space by default,
 * of which only the pages actually touched, typically 10-30 KiB, become
 * resident), and a hard cap on connections (max_connections) enforced by
 * the acceptor.  Why this and not an event loop:
 *
 *  - The handlers above this layer are blocking by nature: they seal
 *    payloads, call storage and Google APIs through libcurl, start child
 *    processes, and run SSE loops that sleep between log polls.  With a
 *    thread per connection each of them is plain sequential C with
 *    ordinary error handling; an event loop would force every one of
 *    them into callbacks or a state machine (or need a worker pool behind
 *    the loop, which is threads again plus hand-offs).
 *  - The load is small and long-lived: Cloud Run sends at most 1000
 *    concurrent requests to an instance, and the target is ~500 open SSE
 *    streams that mostly sleep.  Linux handles thousands of sleeping
 *    threads cheaply; the cost is the resident part of each stack plus an
 *    8 KiB read buffer, i.e. tens of MiB for 500 streams.
 *  - Isolation: a slow or hostile client only ever blocks its own thread,
 *    and every socket wait has a deadline (header, body, idle, write), so
 *    no client can hold a thread longer than those timeouts allow.
 *  - The stack is explicit (pthread_attr_setstacksize) rather than libc's
 *    default so that memory use is predictable; 256 KiB rather than 64 KiB
 *    leaves room for what handlers call (cJSON's recursive parser on
 *    deeply nested bodies, mbedTLS handshakes inside libcurl).
 *
 * I/O: sockets are non-blocking; every wait is a poll() with a deadline,
 * so timeouts are exact and a thread never sleeps in recv() or send().
 * Each wait that may end early for a drain also polls the read end of a
 * "drain pipe" that hs_shutdown writes one byte into and nobody reads: it
 * stays readable, so it wakes every waiting thread at once and for good.
 *
 * Parsing: http-parser (strict) does all of the HTTP syntax.  Its
 * callbacks copy the request target and the header fields into a
 * per-request arena (offsets, since the arena may move while it grows),
 * enforce the URL, header-size, header-count and body limits as the bytes
 * arrive (so an over-long header is refused before it is buffered), and
 * pause the parser at the end of each message.  The bytes after it stay
 * in the connection's read buffer: pipelined requests are answered one
 * after the other, in order.  Once a request is complete its path and
 * query are decoded into the arena, which is then frozen, so every string
 * handed to the handler stays valid until it returns.
 *
 * Errors the server produces itself (400, 408, 413, 414, 417, 431, 501,
 * 505) are answered with a JSON body and Connection: close, then the
 * connection "lingers": our write side is shut down and the client's
 * remaining bytes are read and dropped for up to a second, so that the
 * client reads the answer instead of a TCP reset.  Past the connection
 * cap (global, or max_per_client from one address) the acceptor keeps the
 * socket in its poll set until its request line starts (at most
 * AWAIT_MS): a cap_exempt request (serve's plain /health) is answered 200,
 * any other 503, both without blocking; then the socket lingers there.
 *
 * Shutdown: hs_shutdown sets the draining flag and writes the drain pipe;
 * the acceptor closes the listeners and exits; idle keep-alive
 * connections close; in-flight responses finish with Connection: close;
 * streaming handlers learn of it from on_drain and hs_stream_wait_closed.
 * Past the deadline every remaining socket is shut down (not closed, so
 * no descriptor can be reused under a running thread), which makes its
 * thread's next read or write fail at once.  Connections live in a list
 * under the server mutex; a thread unlinks and closes its socket under
 * that mutex as its last use of the server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "http_parser.h"

#include "http/server.h"
#include "util/clock.h"
#include "util/buf.h"
#include "util/jsjson.h"

#define HS_MAX_LISTEN 4
#define RBUF_SIZE 8192            /* per-connection read buffer */
#define LINGER_SLOTS 64           /* lingering 503 sockets the acceptor tracks */
#define LINGER_MS 1000            /* how long a refused socket lingers */
#define LINGER_MAX_BYTES (8u << 20) /* bytes dropped while lingering */
#define AWAIT_MS 500              /* how long a refused socket may take to send its request line */
#define ACCEPT_BATCH 64           /* accepts per wake-up before polling again */
#define MAX_QUERY_PARAMS 256
#define ARENA_KEEP (64u << 10)    /* larger arenas/bodies are freed between requests */

/* AddressSanitizer's redzones make stack frames several times larger: a
 * body nested 1000 levels deep (cJSON's limit) overflows 256 KiB there,
 * while the release build has room to spare.  The sanitizer build
 * (scripts/build-asan) scales the default stack to keep the same margin. */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if __has_feature(address_sanitizer) || defined(__SANITIZE_ADDRESS__)
#define HS_STACK_SCALE 4u
#else
#define HS_STACK_SCALE 1u
#endif

/* ---- types ------------------------------------------------------------ */

struct hs_hdr {
	size_t name, name_len;     /* offsets into the arena */
	size_t value, value_len;
};

struct hs_qp {
	size_t name, value;        /* offsets of NUL-terminated decoded strings */
};

enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

struct hs_conn;

struct hs_req {
	struct hs_conn *c;
	struct buf arena;          /* target, header fields, decoded path and query */
	struct buf body;
	struct buf qidx;           /* struct hs_qp[] */
	struct hs_hdr *hdrs;       /* max_headers entries */
	unsigned nhdrs;
	int last_cb;
	int url_done, headers_done, complete, have_method;
	size_t url_len, header_bytes, trailer_bytes;
	size_t raw_path, query, path;   /* arena offsets, valid once prepared */
	int fail_status;
	const char *fail_msg;
	int keep_alive;
	uint64_t t_start, t_headers;    /* microseconds, monotonic */
};

struct hs_resp {
	struct hs_conn *c;
	struct buf extra;          /* "Name: value\r\n" lines */
	int started;               /* 0, RESP_FULL, RESP_STREAM */
	int status;
	int close;
	int chunked, headless, ended;
	uint64_t body_bytes;
};

#define RESP_FULL 1
#define RESP_STREAM 2

struct hs_conn {
	struct hs_server *srv;
	struct hs_conn *prev, *next;
	int fd;
	int gone;                  /* the client is known to be gone */
	char remote[INET6_ADDRSTRLEN];
	int remote_port;
	http_parser parser;
	char *rbuf;
	size_t rlen, rpos;         /* bytes in rbuf, bytes parsed */
	struct hs_req req;
	struct hs_resp resp;
};

struct linger_slot {
	int fd;
	uint64_t deadline;         /* ms */
	size_t dropped;
	/* A refused socket first waits (AWAIT_MS) for its request line, to
	 * tell a cap_exempt request from the rest; then it is answered. */
	int awaiting;
	char head[40];
	size_t hlen;
	const char *why;           /* the 503's reason (a string constant) */
	struct sockaddr_storage ss;
};

struct hs_server {
	struct hs_config cfg;
	int lfd[HS_MAX_LISTEN];
	int nlisten;
	int port;
	int drain_pipe[2];
	int draining;              /* atomic */
	int started;
	pthread_t acceptor;
	pthread_attr_t attr;
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* signalled when a connection ends */
	struct hs_conn *conns;
	unsigned nconn;
	struct linger_slot linger[LINGER_SLOTS];
	int nlinger;
	uint64_t accept_pause_until;    /* ms; after EMFILE and friends */
};

/* ---- small helpers ---------------------------------------------------- */

static int is_draining(const struct hs_server *s)
{
	return __atomic_load_n(&s->draining, __ATOMIC_ACQUIRE);
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

size_t hs_pct_decode(char *dst, const char *src, size_t n, int plus_space)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int hi, lo;

		if (src[i] == '%' && i + 2 < n &&
		    (hi = hexval((unsigned char)src[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)src[i + 2])) >= 0) {
			dst[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus_space && src[i] == '+') {
			dst[o++] = ' ';
		} else {
			dst[o++] = src[i];
		}
	}
	dst[o] = 0;
	return o;
}

void hs_http_date(char dst[30], int64_t t)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm)) {
		snprintf(dst, 30, "Thu, 01 Jan 1970 00:00:00 GMT");
		return;
	}
	snprintf(dst, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* RFC 7230 token characters, for header names set by handlers. */
static int is_token(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch))
			return 0;
	}
	return 1;
}

static void set_remote(struct hs_conn *c, const struct sockaddr_storage *ss)
{
	c->remote[0] = 0;
	c->remote_port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		if (!inet_ntop(AF_INET, &a->sin_addr, c->remote, sizeof(c->remote)))
			c->remote[0] = 0;
		c->remote_port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			if (!inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], c->remote, sizeof(c->remote)))
				c->remote[0] = 0;
		} else if (!inet_ntop(AF_INET6, &a->sin6_addr, c->remote, sizeof(c->remote))) {
			c->remote[0] = 0;
		}
		c->remote_port = ntohs(a->sin6_port);
	}
}

/* ---- waiting and writing ---------------------------------------------- */

enum { W_READY, W_TIMEOUT, W_DRAIN, W_ERR };

/* Wait until fd has `events`, deadline (ms, 0 = none) passes, or (when
 * watch_drain) the server starts draining.  Readiness of the socket wins
 * over the drain, so a request that raced the drain is still read. */
static int wait_io(struct hs_conn *c, short events, uint64_t deadline, int watch_drain)
{
	for (;;) {
		struct pollfd pf[2];
		int timeout = -1, n, r;
		uint64_t now = (uint64_t)clock_mono_ms();

		if (deadline) {
			if (now >= deadline)
				return W_TIMEOUT;
			timeout = deadline - now > 0x7fffffff ? 0x7fffffff : (int)(deadline - now);
		}
		pf[0].fd = c->fd;
		pf[0].events = events;
		pf[0].revents = 0;
		n = 1;
		if (watch_drain) {
			pf[1].fd = c->srv->drain_pipe[0];
			pf[1].events = POLLIN;
			pf[1].revents = 0;
			n = 2;
		}
		r = poll(pf, (nfds_t)n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return W_ERR;
		}
		if (r == 0)
			continue;      /* re-check the deadline at the top */
		/* For reads any event is "ready": recv() reports EOF or the
		 * error.  For writes only POLLOUT is. */
		if (pf[0].revents & events)
			return W_READY;
		if (pf[0].revents)
			return (events & POLLIN) ? W_READY : W_ERR;
		if (n == 2 && (pf[1].revents & POLLIN))
			return W_DRAIN;
	}
}

/* Write all of iov; -1 (and c->gone) when the client is gone or makes no
 * progress for write_timeout_ms. */
static int conn_writev(struct hs_conn *c, struct iovec *iov, int n)
{
	uint64_t deadline = (uint64_t)clock_mono_ms() + c->srv->cfg.write_timeout_ms;

	if (c->gone)
		return -1;
	while (n > 0) {
		struct msghdr m;
		ssize_t w;

		if (iov->iov_len == 0) {
			iov++, n--;
			continue;
		}
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = (size_t)n;
		w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (wait_io(c, POLLOUT, deadline, 0) != W_READY)
					goto gone;
				continue;
			}
			goto gone;
		}
		deadline = (uint64_t)clock_mono_ms() + c->srv->cfg.write_timeout_ms;
		while (w > 0 && n > 0) {
			if ((size_t)w >= iov->iov_len) {
				w -= (ssize_t)iov->iov_len;
				iov->iov_len = 0;
				iov++, n--;
			} else {
				iov->iov_base = (char *)iov->iov_base + w;
				iov->iov_len -= (size_t)w;
				w = 0;
			}
		}
	}
	return 0;
gone:
	c->gone = 1;
	return -1;
}

static int conn_write(struct hs_conn *c, const void *p, size_t n)
{
	struct iovec iov;

	iov.iov_base = (void *)p;
	iov.iov_len = n;
	return conn_writev(c, &iov, 1);
}

/* Shut our side down, then read and drop what the client still sends for
 * up to LINGER_MS, so that it reads our answer rather than a reset. */
static void conn_linger(struct hs_conn *c)
{
	uint64_t deadline = (uint64_t)clock_mono_ms() + LINGER_MS;
	size_t dropped = 0;
	char sink[4096];

	if (shutdown(c->fd, SHUT_WR) != 0)
		return;
	while (dropped < LINGER_MAX_BYTES) {
		ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

		if (n > 0) {
			dropped += (size_t)n;
			continue;
		}
		if (n == 0)
			return;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return;
		if (wait_io(c, POLLIN, deadline, 0) != W_READY)
			return;
	}
}

/* ---- responses -------------------------------------------------------- */

static int conn_closing(const struct hs_conn *c)
{
	return c->resp.close || !c->req.keep_alive || c->parser.upgrade || is_draining(c->srv);
}

/* The status line and headers of a response into h.  content_length < 0
 * means none (a stream, or a status without a body). */
static int build_head(struct hs_conn *c, struct buf *h, int status, const char *ctype,
		      int64_t content_length, int chunked)
{
	const char *reason = http_status_str((enum http_status)status);
	char date[30];

	if (!reason || reason[0] == '<')
		reason = "Unknown";
	hs_http_date(date, (int64_t)time(NULL));
	if (buf_printf(h, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, reason, date) != 0)
		return -1;
	if (ctype && buf_printf(h, "Content-Type: %s\r\n", ctype) != 0)
		return -1;
	if (c->resp.extra.len && buf_add(h, c->resp.extra.p, c->resp.extra.len) != 0)
		return -1;
	if (content_length >= 0 && buf_printf(h, "Content-Length: %lld\r\n", (long long)content_length) != 0)
		return -1;
	if (chunked && buf_adds(h, "Transfer-Encoding: chunked\r\n") != 0)
		return -1;
	if (conn_closing(c)) {
		if (buf_adds(h, "Connection: close\r\n") != 0)
			return -1;
	} else if (c->parser.http_minor == 0) {
		if (buf_adds(h, "Connection: keep-alive\r\n") != 0)
			return -1;
	}
	return buf_adds(h, "\r\n");
}

static int status_ok(int status)
{
	return status >= 100 && status <= 599;
}

static int is_head(const struct hs_conn *c)
{
	return c->req.have_method && c->parser.method == HTTP_HEAD;
}

int hs_send(struct hs_resp *r, int status, const char *content_type, const void *body, size_t len)
{
	struct hs_conn *c = r->c;
	struct buf h = BUF_INIT;
	struct iovec iov[2];
	int no_body, rc;

	if (r->started)
		return -1;
	if (!status_ok(status))
		status = 500;
	r->started = RESP_FULL;
	r->status = status;
	no_body = status < 200 || status == 204 || status == 304;
	if (build_head(c, &h, status, content_type, no_body ? -1 : (int64_t)len, 0) != 0) {
		buf_free(&h);
		r->close = 1;
		c->gone = 1;
		return -1;
	}
	iov[0].iov_base = h.p;
	iov[0].iov_len = h.len;
	iov[1].iov_base = (void *)body;
	iov[1].iov_len = (no_body || is_head(c) || !body) ? 0 : len;
	rc = conn_writev(c, iov, 2);
	if (rc == 0 && !no_body && !is_head(c))
		r->body_bytes = len;
	buf_free(&h);
	return rc;
}

int hs_send_json_error(struct hs_resp *r, int status, const char *message)
{
	struct buf b = BUF_INIT;
	int rc;

	if (!message)
		message = "";
	if (buf_adds(&b, "{\"error\":") != 0 || jsj_string(&b, message, strlen(message)) != 0 ||
	    buf_addc(&b, '}') != 0) {
		buf_free(&b);
		return hs_send(r, status, HS_JSON, "{\"error\":\"out of memory\"}", 25);
	}
	rc = hs_send(r, status, HS_JSON, b.p, b.len);
	buf_free(&b);
	return rc;
}

int hs_resp_header(struct hs_resp *r, const char *name, const char *value)
{
	static const char *const reserved[] = { "date", "content-length", "transfer-encoding", "connection" };
	size_t i, oldlen = r->extra.len;

	if (r->started || !name || !value || !is_token(name))
		return -1;
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return -1;
	if (strpbrk(value, "\r\n"))
		return -1;
	if (buf_printf(&r->extra, "%s: %s\r\n", name, value) != 0) {
		r->extra.len = oldlen;
		return -1;
	}
	return 0;
}

void hs_resp_close(struct hs_resp *r)
{
	r->close = 1;
}

int hs_resp_started(const struct hs_resp *r)
{
	return r->started != 0;
}

int hs_stream_begin(struct hs_resp *r, int status, const char *const *headers)
{
	struct hs_conn *c = r->c;
	struct buf h = BUF_INIT;
	int rc;

	if (r->started)
		return -1;
	if (headers) {
		for (; headers[0]; headers += 2) {
			if (!headers[1] || hs_resp_header(r, headers[0], headers[1]) != 0)
				return -1;
		}
	}
	if (!status_ok(status))
		status = 500;
	r->started = RESP_STREAM;
	r->status = status;
	r->chunked = c->parser.http_minor >= 1;
	if (!r->chunked)
		r->close = 1;   /* HTTP/1.0: the body ends when the connection does */
	r->headless = is_head(c);
	if (build_head(c, &h, status, NULL, -1, r->chunked) != 0) {
		buf_free(&h);
		r->close = 1;
		c->gone = 1;
		return -1;
	}
	rc = conn_write(c, h.p, h.len);
	buf_free(&h);
	return rc;
}

int hs_stream_write(struct hs_resp *r, const void *data, size_t len)
{
	struct hs_conn *c = r->c;
	struct iovec iov[3];
	char size[24];

	if (r->started != RESP_STREAM || r->ended || c->gone)
		return -1;
	if (len == 0 || r->headless)
		return 0;
	if (!r->chunked) {
		if (conn_write(c, data, len) != 0)
			return -1;
		r->body_bytes += len;
		return 0;
	}
	iov[0].iov_base = size;
	iov[0].iov_len = (size_t)snprintf(size, sizeof(size), "%zx\r\n", len);
	iov[1].iov_base = (void *)data;
	iov[1].iov_len = len;
	iov[2].iov_base = "\r\n";
	iov[2].iov_len = 2;
	if (conn_writev(c, iov, 3) != 0)
		return -1;
	r->body_bytes += len;
	return 0;
}

int hs_stream_end(struct hs_resp *r)
{
	struct hs_conn *c = r->c;

	if (r->started != RESP_STREAM || c->gone)
		return -1;
	if (r->ended)
		return 0;
	r->ended = 1;
	if (r->chunked && !r->headless)
		return conn_write(c, "0\r\n\r\n", 5);
	return 0;
}

/* Read what the client sent meanwhile (a pipelined request) into the
 * free part of rbuf.  Returns -1 when the client is gone. */
static int absorb_input(struct hs_conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->rlen >= RBUF_SIZE)
			return 0;
		n = recv(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		c->gone = 1;
		return -1;
	}
}

/* One poll of the client socket (and the drain pipe), up to timeout ms. */
static int watch_client(struct hs_conn *c, int timeout, int watch_drain)
{
	struct pollfd pf[2];
	int n = 1, r;

	pf[0].fd = c->fd;
	pf[0].events = POLLRDHUP | (c->rlen < RBUF_SIZE ? POLLIN : 0);
	pf[0].revents = 0;
	if (watch_drain) {
		pf[1].fd = c->srv->drain_pipe[0];
		pf[1].events = POLLIN;
		pf[1].revents = 0;
		n = 2;
	}
	r = poll(pf, (nfds_t)n, timeout);
	if (r < 0)
		return errno == EINTR ? HS_WAIT_TIMEOUT : (c->gone = 1, HS_WAIT_GONE);
	if (r == 0)
		return HS_WAIT_TIMEOUT;
	if (pf[0].revents & POLLIN) {
		if (absorb_input(c) != 0)
			return HS_WAIT_GONE;
	}
	if (pf[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
		c->gone = 1;
		return HS_WAIT_GONE;
	}
	if (n == 2 && (pf[1].revents & POLLIN))
		return HS_WAIT_DRAINING;
	return HS_WAIT_TIMEOUT;
}

int hs_stream_wait_closed(struct hs_resp *r, unsigned ms)
{
	struct hs_conn *c = r->c;
	uint64_t deadline = (uint64_t)clock_mono_ms() + ms;

	for (;;) {
		uint64_t now;
		int w;

		if (c->gone)
			return HS_WAIT_GONE;
		if (is_draining(c->srv))
			return HS_WAIT_DRAINING;
		now = (uint64_t)clock_mono_ms();
		if (now >= deadline)
			return HS_WAIT_TIMEOUT;
		w = watch_client(c, (int)(deadline - now), 1);
		if (w != HS_WAIT_TIMEOUT)
			return w;
	}
}

int hs_req_client_gone(struct hs_req *r)
{
	struct hs_conn *c = r->c;

	if (!c->gone)
		watch_client(c, 0, 0);
	return c->gone;
}

/* ---- request accessors ------------------------------------------------ */

static const char *arena_str(const struct hs_req *r, size_t off)
{
	return r->arena.p ? r->arena.p + off : "";
}

const char *hs_req_method(const struct hs_req *r)
{
	return r->have_method ? http_method_str((enum http_method)r->c->parser.method) : "";
}

const char *hs_req_target(const struct hs_req *r)
{
	return r->url_done ? arena_str(r, 0) : "";
}

const char *hs_req_raw_path(const struct hs_req *r)
{
	return r->complete ? arena_str(r, r->raw_path) : "";
}

const char *hs_req_path(const struct hs_req *r)
{
	return r->complete ? arena_str(r, r->path) : "";
}

const char *hs_req_query_string(const struct hs_req *r)
{
	return r->complete ? arena_str(r, r->query) : "";
}

int hs_req_http_minor(const struct hs_req *r)
{
	return r->c->parser.http_minor;
}

const char *hs_req_query(const struct hs_req *r, const char *name)
{
	const struct hs_qp *q = (const struct hs_qp *)(const void *)r->qidx.p;
	size_t i, n = r->qidx.len / sizeof(struct hs_qp);

	for (i = 0; i < n; i++)
		if (strcmp(arena_str(r, q[i].name), name) == 0)
			return arena_str(r, q[i].value);
	return NULL;
}

size_t hs_req_query_count(const struct hs_req *r, const char *name)
{
	const struct hs_qp *q = (const struct hs_qp *)(const void *)r->qidx.p;
	size_t i, n = r->qidx.len / sizeof(struct hs_qp), count = 0;

	for (i = 0; i < n; i++)
		if (strcmp(arena_str(r, q[i].name), name) == 0)
			count++;
	return count;
}

const char *hs_req_header(const struct hs_req *r, const char *name)
{
	unsigned i;

	if (!r->headers_done)
		return NULL;
	for (i = 0; i < r->nhdrs; i++)
		if (strcasecmp(arena_str(r, r->hdrs[i].name), name) == 0)
			return arena_str(r, r->hdrs[i].value);
	return NULL;
}

size_t hs_req_header_count(const struct hs_req *r)
{
	return r->headers_done ? r->nhdrs : 0;
}

int hs_req_header_at(const struct hs_req *r, size_t i, const char **name, const char **value)
{
	if (!r->headers_done || i >= r->nhdrs)
		return -1;
	*name = arena_str(r, r->hdrs[i].name);
	*value = arena_str(r, r->hdrs[i].value);
	return 0;
}

const char *hs_req_body(const struct hs_req *r, size_t *len)
{
	if (len)
		*len = r->body.len;
	return r->body.p ? r->body.p : "";
}

const char *hs_req_remote_addr(const struct hs_req *r)
{
	return r->c->remote;
}

int hs_req_remote_port(const struct hs_req *r)
{
	return r->c->remote_port;
}

struct hs_server *hs_req_server(const struct hs_req *r)
{
	return r->c->srv;
}

/* ---- parser callbacks ------------------------------------------------- */

static int fail(struct hs_req *q, int status, const char *msg)
{
	if (!q->fail_status) {
		q->fail_status = status;
		q->fail_msg = msg;
	}
	return -1;
}

/* Terminate the element being collected (URL, field name or value). */
static int end_element(struct hs_req *q)
{
	if (q->last_cb == CB_NONE)
		return 0;
	if (buf_addc(&q->arena, 0) != 0)
		return fail(q, 500, "out of memory");
	if (q->last_cb == CB_URL) {
		q->url_done = 1;
	} else if (q->last_cb == CB_FIELD) {
		struct hs_hdr *h = &q->hdrs[q->nhdrs - 1];

		h->value = h->name + h->name_len;      /* "" until a value arrives */
		h->value_len = 0;
	} else {
		struct hs_hdr *h = &q->hdrs[q->nhdrs - 1];
		char *v = q->arena.p + h->value;

		while (h->value_len && (v[h->value_len - 1] == ' ' || v[h->value_len - 1] == '\t'))
			v[--h->value_len] = 0;
		while (h->value_len && (v[0] == ' ' || v[0] == '\t'))
			v++, h->value++, h->value_len--;
	}
	q->last_cb = CB_NONE;
	return 0;
}

static int cb_message_begin(http_parser *p)
{
	struct hs_conn *c = p->data;

	if (!c->req.t_start)
		c->req.t_start = (uint64_t)clock_mono_us();
	return 0;
}

static int cb_url(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;

	q->have_method = 1;
	q->last_cb = CB_URL;
	if (q->url_len + len > c->srv->cfg.max_url)
		return fail(q, 414, "request URL too long");
	q->url_len += len;
	q->header_bytes += len;
	if (buf_add(&q->arena, at, len) != 0)
		return fail(q, 500, "out of memory");
	return 0;
}

static int header_budget(struct hs_conn *c, size_t len)
{
	struct hs_req *q = &c->req;
	size_t *count = q->headers_done ? &q->trailer_bytes : &q->header_bytes;

	*count += len;
	if (*count > c->srv->cfg.max_header_bytes)
		return fail(q, 431, "request header fields too large");
	return 0;
}

static int cb_header_field(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;

	if (q->headers_done)     /* a trailer field: counted, not kept */
		return header_budget(c, len + 4);
	if (q->last_cb != CB_FIELD) {
		struct hs_hdr *h;

		if (end_element(q) != 0)
			return -1;
		if (q->nhdrs >= c->srv->cfg.max_headers)
			return fail(q, 431, "too many header fields");
		h = &q->hdrs[q->nhdrs++];
		memset(h, 0, sizeof(*h));
		h->name = q->arena.len;
		q->last_cb = CB_FIELD;
		if (header_budget(c, 4) != 0)      /* ": " and CRLF */
			return -1;
	}
	if (header_budget(c, len) != 0)
		return -1;
	if (buf_add(&q->arena, at, len) != 0)
		return fail(q, 500, "out of memory");
	q->hdrs[q->nhdrs - 1].name_len += len;
	return 0;
}

static int cb_header_value(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;

	if (q->headers_done)
		return header_budget(c, len);
	if (header_budget(c, len) != 0)
		return -1;
	if (q->last_cb != CB_VALUE) {
		if (q->last_cb != CB_FIELD)
			return fail(q, 400, "header value without a name");
		if (end_element(q) != 0)
			return -1;
		q->hdrs[q->nhdrs - 1].value = q->arena.len;
		q->last_cb = CB_VALUE;
	}
	if (buf_add(&q->arena, at, len) != 0)
		return fail(q, 500, "out of memory");
	q->hdrs[q->nhdrs - 1].value_len += len;
	return 0;
}

/* How many headers called name; the first one's value in *value. */
static unsigned header_count(const struct hs_req *q, const char *name, const char **value)
{
	unsigned i, n = 0;

	*value = NULL;
	for (i = 0; i < q->nhdrs; i++) {
		if (strcasecmp(arena_str(q, q->hdrs[i].name), name) == 0) {
			if (!n)
				*value = arena_str(q, q->hdrs[i].value);
			n++;
		}
	}
	return n;
}

static int cb_headers_complete(http_parser *p)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;
	const struct hs_config *cfg = &c->srv->cfg;
	const char *v;
	unsigned n;
	int has_body;

	if (end_element(q) != 0)
		return -1;
	q->headers_done = 1;
	q->t_headers = (uint64_t)clock_mono_us();
	if (p->http_major != 1)
		return fail(q, 505, "HTTP version not supported");
	if (p->method == HTTP_CONNECT)
		return fail(q, 400, "CONNECT is not supported");
	if (!q->url_done || q->url_len == 0)
		return fail(q, 400, "missing request target");
	n = header_count(q, "host", &v);
	if (n > 1 || (n == 0 && p->http_minor >= 1))
		return fail(q, 400, n ? "more than one Host header" : "missing Host header");
	n = header_count(q, "transfer-encoding", &v);
	if (n > 1)
		return fail(q, 400, "more than one Transfer-Encoding header");
	if (n == 1 && strcasecmp(v, "chunked") != 0)
		return fail(q, 501, "unsupported Transfer-Encoding (only chunked is)");
	if ((p->flags & F_CONTENTLENGTH) && !(p->flags & F_CHUNKED) && p->content_length > cfg->max_body)
		return fail(q, 413, "request entity too large");
	has_body = (p->flags & F_CHUNKED) ||
		   ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
	n = header_count(q, "expect", &v);
	if (n > 1 || (n == 1 && strcasecmp(v, "100-continue") != 0))
		return fail(q, 417, "unsupported Expect header (only 100-continue is)");
	if (n == 1 && has_body && p->http_minor >= 1) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		if (conn_write(c, cont, sizeof(cont) - 1) != 0)
			return -1;
	}
	return 0;
}

static int cb_body(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;

	if (len > c->srv->cfg.max_body - q->body.len)
		return fail(q, 413, "request entity too large");
	if (buf_add(&q->body, at, len) != 0)
		return fail(q, 500, "out of memory");
	return 0;
}

static int cb_message_complete(http_parser *p)
{
	struct hs_conn *c = p->data;

	c->req.complete = 1;
	c->req.keep_alive = http_should_keep_alive(p);
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = cb_message_begin,
	.on_url = cb_url,
	.on_header_field = cb_header_field,
	.on_header_value = cb_header_value,
	.on_headers_complete = cb_headers_complete,
	.on_body = cb_body,
	.on_message_complete = cb_message_complete,
};

/* ---- reading one request ---------------------------------------------- */

enum { RD_OK, RD_CLOSE, RD_FAIL };

static int parser_failure(struct hs_conn *c)
{
	struct hs_req *q = &c->req;
	enum http_errno en = HTTP_PARSER_ERRNO(&c->parser);

	if (q->fail_status)
		return RD_FAIL;
	if (c->gone)
		return RD_CLOSE;
	switch (en) {
	case HPE_HEADER_OVERFLOW:
		fail(q, 431, "request header fields too large");
		break;
	case HPE_INVALID_METHOD:
		fail(q, 400, "malformed request line: invalid method");
		break;
	case HPE_INVALID_URL:
	case HPE_INVALID_HOST:
	case HPE_INVALID_PORT:
	case HPE_INVALID_PATH:
	case HPE_INVALID_QUERY_STRING:
	case HPE_INVALID_FRAGMENT:
		fail(q, 400, "malformed request line: invalid request target");
		break;
	case HPE_INVALID_VERSION:
		fail(q, 400, "malformed request line: invalid HTTP version");
		break;
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		fail(q, 400, "Content-Length not allowed here (duplicate, or with Transfer-Encoding)");
		break;
	case HPE_INVALID_CONTENT_LENGTH:     /* also an overflowing chunk size */
		fail(q, 400, q->headers_done ? "malformed chunked body: chunk size too large"
					     : "invalid Content-Length");
		break;
	case HPE_INVALID_CHUNK_SIZE:
		fail(q, 400, "malformed chunked body: invalid chunk size");
		break;
	case HPE_INVALID_TRANSFER_ENCODING:
		fail(q, 400, "invalid Transfer-Encoding");
		break;
	case HPE_INVALID_HEADER_TOKEN:
		fail(q, 400, "malformed header: invalid character");
		break;
	default:
		if (q->headers_done && (c->parser.flags & F_CHUNKED))
			fail(q, 400, "malformed chunked body");
		else if (q->headers_done)
			fail(q, 400, "malformed request body");
		else
			fail(q, 400, "malformed request line or headers");
		break;
	}
	return RD_FAIL;
}

/* Decode the target into path, raw path, query and parameters. */
static int prepare_request(struct hs_req *q)
{
	struct http_parser_url u;
	const char *url;
	size_t plen, ulen = q->url_len, i, start, nparams = 0, qoff, qlen;
	size_t raw_off, raw_len;

	url = arena_str(q, 0);
	raw_off = 0;
	raw_len = ulen;
	qoff = 0;
	qlen = 0;
	if (!(ulen == 1 && url[0] == '*')) {
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, ulen, 0, &u) != 0)
			return fail(q, 400, "malformed request target");
		if (u.field_set & (1 << UF_PATH)) {
			raw_off = u.field_data[UF_PATH].off;
			raw_len = u.field_data[UF_PATH].len;
		} else {
			raw_len = 0;
		}
		if (u.field_set & (1 << UF_QUERY)) {
			qoff = u.field_data[UF_QUERY].off;
			qlen = u.field_data[UF_QUERY].len;
		}
	}
	/* raw path ("/" when an absolute-form target has none) */
	q->raw_path = q->arena.len;
	if (raw_len ? buf_add(&q->arena, q->arena.p + raw_off, raw_len) : buf_addc(&q->arena, '/'))
		return fail(q, 500, "out of memory");
	if (buf_addc(&q->arena, 0) != 0)
		return fail(q, 500, "out of memory");
	raw_len = raw_len ? raw_len : 1;
	q->query = q->arena.len;
	if ((qlen && buf_add(&q->arena, q->arena.p + qoff, qlen) != 0) || buf_addc(&q->arena, 0) != 0)
		return fail(q, 500, "out of memory");
	q->path = q->arena.len;
	if (buf_reserve(&q->arena, raw_len + 1) != 0)
		return fail(q, 500, "out of memory");
	plen = hs_pct_decode(q->arena.p + q->path, q->arena.p + q->raw_path, raw_len, 0);
	if (strlen(q->arena.p + q->path) != plen)
		return fail(q, 400, "malformed request target: NUL in path");
	q->arena.len += plen + 1;

	/* parameters: "a=1&b&c=x%20y" */
	for (start = 0, i = 0; i <= qlen && nparams < MAX_QUERY_PARAMS; i++) {
		size_t off = q->query, eq, n;
		struct hs_qp qp;
		const char *piece;

		if (i < qlen && q->arena.p[off + i] != '&')
			continue;
		n = i - start;
		if (n == 0) {
			start = i + 1;
			continue;
		}
		piece = q->arena.p + off + start;
		for (eq = 0; eq < n && piece[eq] != '='; eq++)
			;
		if (buf_reserve(&q->arena, n + 2) != 0)
			return fail(q, 500, "out of memory");
		piece = q->arena.p + off + start;       /* the arena may have moved */
		qp.name = q->arena.len;
		plen = hs_pct_decode(q->arena.p + qp.name, piece, eq, 1);
		if (strlen(q->arena.p + qp.name) != plen)
			return fail(q, 400, "malformed query string: NUL in a name");
		q->arena.len += plen + 1;
		qp.value = q->arena.len;
		plen = eq < n ? hs_pct_decode(q->arena.p + qp.value, piece + eq + 1, n - eq - 1, 1)
			      : (q->arena.p[qp.value] = 0, 0);
		if (strlen(q->arena.p + qp.value) != plen)
			return fail(q, 400, "malformed query string: NUL in a value");
		q->arena.len += plen + 1;
		if (buf_add(&q->qidx, &qp, sizeof(qp)) != 0)
			return fail(q, 500, "out of memory");
		nparams++;
		start = i + 1;
	}
	return 0;
}

static int read_request(struct hs_conn *c, uint64_t idle_deadline)
{
	struct hs_req *q = &c->req;
	const struct hs_config *cfg = &c->srv->cfg;

	for (;;) {
		uint64_t deadline;
		ssize_t n;

		if (c->rpos < c->rlen) {
			size_t avail = c->rlen - c->rpos, used;
			enum http_errno en;

			if (!q->t_start)
				q->t_start = (uint64_t)clock_mono_us();
			used = http_parser_execute(&c->parser, &parser_settings, c->rbuf + c->rpos, avail);
			c->rpos += used;
			en = HTTP_PARSER_ERRNO(&c->parser);
			if (q->complete && en == HPE_PAUSED) {
				memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
				c->rlen -= c->rpos;
				c->rpos = 0;
				if (prepare_request(q) != 0)
					return RD_FAIL;
				return RD_OK;
			}
			if (en != HPE_OK)
				return parser_failure(c);
			if (used != avail) {
				fail(q, 400, "malformed request");
				return RD_FAIL;
			}
		}
		c->rpos = c->rlen = 0;
		if (!q->t_start)
			deadline = idle_deadline;
		else if (!q->headers_done)
			deadline = q->t_start / 1000u + cfg->header_timeout_ms;
		else
			deadline = q->t_headers / 1000u + cfg->body_timeout_ms;
		if ((uint64_t)clock_mono_ms() >= deadline)
			goto timeout;
		n = recv(c->fd, c->rbuf, RBUF_SIZE, 0);
		if (n > 0) {
			c->rlen = (size_t)n;
			continue;
		}
		if (n == 0) {
			c->gone = 1;     /* EOF: nothing (more) to answer */
			return RD_CLOSE;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			c->gone = 1;
			return RD_CLOSE;
		}
		switch (wait_io(c, POLLIN, deadline, !q->t_start)) {
		case W_READY:
			continue;
		case W_TIMEOUT:
			goto timeout;
		default:
			return RD_CLOSE;
		}
	}
timeout:
	if (!q->t_start)
		return RD_CLOSE;
	fail(q, 408, "request timeout");
	return RD_FAIL;
}

/* ---- the connection thread -------------------------------------------- */

static void req_reset(struct hs_conn *c)
{
	struct hs_req *q = &c->req;
	struct hs_resp *r = &c->resp;

	if (q->arena.cap > ARENA_KEEP)
		buf_free(&q->arena);
	buf_reset(&q->arena);
	if (q->body.cap > ARENA_KEEP)
		buf_free(&q->body);
	buf_reset(&q->body);
	buf_reset(&q->qidx);
	q->nhdrs = 0;
	q->last_cb = CB_NONE;
	q->url_done = q->headers_done = q->complete = q->have_method = 0;
	q->url_len = q->header_bytes = q->trailer_bytes = 0;
	q->raw_path = q->query = q->path = 0;
	q->fail_status = 0;
	q->fail_msg = NULL;
	q->keep_alive = 0;
	q->t_start = q->t_headers = 0;
	buf_reset(&r->extra);
	r->started = 0;
	r->status = 0;
	r->close = 0;
	r->chunked = r->headless = r->ended = 0;
	r->body_bytes = 0;
	if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED)
		http_parser_pause(&c->parser, 0);
}

static void access_log(struct hs_conn *c)
{
	const struct hs_config *cfg = &c->srv->cfg;
	struct hs_req *q = &c->req;
	struct hs_access a;
	const char *v;

	if (!cfg->on_access)
		return;
	a.method = hs_req_method(q);
	a.target = hs_req_target(q);
	a.path = hs_req_path(q);
	a.status = c->resp.status;
	a.http_minor = c->parser.http_minor;
	a.body_bytes = c->resp.body_bytes;
	a.latency_us = q->t_start ? (uint64_t)clock_mono_us() - q->t_start : 0;
	v = hs_req_header(q, "user-agent");
	a.user_agent = v ? v : "";
	a.remote_addr = c->remote;
	v = hs_req_header(q, "x-cloud-trace-context");
	a.trace = v ? v : "";
	cfg->on_access(&a, cfg->app);
}

static void conn_free(struct hs_conn *c)
{
	buf_free(&c->req.arena);
	buf_free(&c->req.body);
	buf_free(&c->req.qidx);
	buf_free(&c->resp.extra);
	free(c->req.hdrs);
	free(c->rbuf);
	free(c);
}

static void conn_unregister(struct hs_server *s, struct hs_conn *c)
{
	pthread_mutex_lock(&s->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	s->nconn--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void serve_connection(struct hs_conn *c)
{
	struct hs_server *s = c->srv;
	const struct hs_config *cfg = &s->cfg;
	uint64_t idle_deadline = (uint64_t)clock_mono_ms() + cfg->header_timeout_ms;

	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	for (;;) {
		int rd, rc;

		req_reset(c);
		rd = read_request(c, idle_deadline);
		if (rd == RD_CLOSE)
			return;
		if (rd == RD_FAIL) {
			c->resp.close = 1;
			rc = hs_send_json_error(&c->resp, c->req.fail_status, c->req.fail_msg);
			access_log(c);
			if (rc == 0)
				conn_linger(c);
			return;
		}
		rc = cfg->handler(&c->req, &c->resp, cfg->app);
		if (!c->resp.started) {
			c->resp.close = 1;
			hs_send_json_error(&c->resp, 500, rc ? "internal error" : "the handler sent no response");
		} else if (c->resp.started == RESP_STREAM && !c->resp.ended) {
			if (rc == 0)
				hs_stream_end(&c->resp);
			else
				c->resp.close = 1;     /* no terminator: the client sees a cut */
		}
		if (rc != 0)
			c->resp.close = 1;
		if (c->resp.status == 0)
			c->resp.status = 500;
		access_log(c);
		if (c->gone || conn_closing(c))
			return;
		idle_deadline = (uint64_t)clock_mono_ms() + cfg->idle_timeout_ms;
	}
}

static void *conn_main(void *arg)
{
	struct hs_conn *c = arg;
	struct hs_server *s = c->srv;

	serve_connection(c);
	conn_unregister(s, c);     /* the last use of s */
	conn_free(c);
	return NULL;
}

/* ---- the acceptor ----------------------------------------------------- */

/* The access-log line of an answer the acceptor wrote itself. */
static void log_refused(struct hs_server *s, const struct sockaddr_storage *ss, int status)
{
	struct hs_conn fake;
	struct hs_access a;

	if (!s->cfg.on_access)
		return;
	memset(&fake, 0, sizeof(fake));
	set_remote(&fake, ss);
	memset(&a, 0, sizeof(a));
	a.method = a.target = a.path = a.user_agent = a.trace = "";
	a.status = status;
	a.http_minor = 1;
	a.remote_addr = fake.remote;
	s->cfg.on_access(&a, s->cfg.app);
}

/* Write a whole answer on a refused socket without blocking (a fresh
 * socket's buffer holds it; if not, the client is gone). */
static void answer_refused(struct hs_server *s, int fd, const struct sockaddr_storage *ss, int status,
			   const char *type, const char *body)
{
	struct buf b = BUF_INIT;
	char date[30];

	hs_http_date(date, (int64_t)time(NULL));
	if (buf_printf(&b, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n%sConnection: close\r\n"
			   "Content-Length: %zu\r\n\r\n%s",
		       status, status == 200 ? "OK" : "Service Unavailable", date, type,
		       status == 503 ? "Retry-After: 1\r\n" : "", strlen(body), body) == 0)
		(void)!send(fd, b.p, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	buf_free(&b);
	log_refused(s, ss, status);
}

static void answer_503(struct hs_server *s, int fd, const struct sockaddr_storage *ss, const char *why)
{
	struct buf body = BUF_INIT;

	if (buf_adds(&body, "{\"error\":") == 0 && jsj_string(&body, why, strlen(why)) == 0 && buf_addc(&body, '}') == 0)
		answer_refused(s, fd, ss, 503, HS_JSON, body.p);
	buf_free(&body);
}

/* 1 when the request line starts with a cap_exempt prefix, 0 when it
 * cannot, -1 while too few bytes have arrived to tell. */
static int cap_exempt(const struct hs_server *s, const char *head, size_t n)
{
	const char *const *p;
	int undecided = 0;

	for (p = s->cfg.cap_exempt; p && *p; p++) {
		size_t k = strlen(*p);
		if (n >= k && memcmp(head, *p, k) == 0)
			return 1;
		if (n < k && memcmp(head, *p, n) == 0)
			undecided = 1;
	}
	return undecided ? -1 : 0;
}

/* Keep a refused socket in the acceptor's poll set: `await` first waits
 * for its request line (see struct linger_slot), otherwise it has been
 * answered already and only lingers. */
static void linger_add(struct hs_server *s, int fd, const struct sockaddr_storage *ss, const char *why, int await)
{
	struct linger_slot *l;

	if (s->nlinger >= LINGER_SLOTS) {
		if (await)
			answer_503(s, fd, ss, why);
		close(fd);
		return;
	}
	if (!await && shutdown(fd, SHUT_WR) != 0) {
		close(fd);
		return;
	}
	l = &s->linger[s->nlinger++];
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->deadline = (uint64_t)clock_mono_ms() + (await ? AWAIT_MS : LINGER_MS);
	l->awaiting = await;
	l->why = why;
	l->ss = *ss;
}

static void linger_drop(struct hs_server *s, int i)
{
	close(s->linger[i].fd);
	s->linger[i] = s->linger[--s->nlinger];
}

/* An awaiting socket: read the start of its request line, then answer. */
static void await_service(struct hs_server *s, int i, int readable)
{
	struct linger_slot *l = &s->linger[i];
	int eof = 0, d;

	if (readable) {
		ssize_t n = recv(l->fd, l->head + l->hlen, sizeof(l->head) - 1 - l->hlen, 0);
		if (n > 0)
			l->hlen += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			eof = 1;
	}
	d = cap_exempt(s, l->head, l->hlen);
	if (d < 0 && !eof && l->hlen < sizeof(l->head) - 1 && (uint64_t)clock_mono_ms() < l->deadline)
		return;
	if (d == 1)
		answer_refused(s, l->fd, &l->ss, 200, s->cfg.cap_exempt_type ? s->cfg.cap_exempt_type : "text/plain",
			       s->cfg.cap_exempt_body ? s->cfg.cap_exempt_body : "");
	else
		answer_503(s, l->fd, &l->ss, l->why);
	l->awaiting = 0;
	l->deadline = (uint64_t)clock_mono_ms() + LINGER_MS;
	if (eof || shutdown(l->fd, SHUT_WR) != 0)
		linger_drop(s, i);
}

/* Read what a lingering socket sent; drop it at EOF, error or deadline. */
static void linger_service(struct hs_server *s, int i, int readable)
{
	struct linger_slot *l = &s->linger[i];
	char sink[4096];

	if (l->awaiting) {
		await_service(s, i, readable);
		return;
	}
	while (readable) {
		ssize_t n = recv(l->fd, sink, sizeof(sink), 0);

		if (n > 0) {
			l->dropped += (size_t)n;
			if (l->dropped > LINGER_MAX_BYTES)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			readable = 0;
		break;
	}
	if (readable || (uint64_t)clock_mono_ms() >= l->deadline)
		linger_drop(s, i);
}

/* Answer 503 on a fresh socket without blocking, then let it linger. */
static void refuse(struct hs_server *s, int fd, const struct sockaddr_storage *ss, const char *why)
{
	char sink[4096];

	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;     /* whatever request bytes already arrived */
	answer_503(s, fd, ss, why);
	linger_add(s, fd, ss, why, 0);
}

/* How many open connections come from the address of ss (s->mu held). */
static unsigned from_same_client(struct hs_server *s, const struct sockaddr_storage *ss)
{
	struct hs_conn probe;
	struct hs_conn *c;
	unsigned n = 0;

	memset(&probe, 0, sizeof(probe));
	set_remote(&probe, ss);
	if (!probe.remote[0])
		return 0;                  /* a socketpair or unknown family: no client address */
	for (c = s->conns; c; c = c->next)
		if (strcmp(c->remote, probe.remote) == 0)
			n++;
	return n;
}

static struct hs_conn *conn_new(struct hs_server *s, int fd, const struct sockaddr_storage *ss)
{
	struct hs_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = s;
	c->fd = fd;
	c->rbuf = malloc(RBUF_SIZE);
	c->req.hdrs = calloc(s->cfg.max_headers, sizeof(struct hs_hdr));
	if (!c->rbuf || !c->req.hdrs) {
		free(c->rbuf);
		free(c->req.hdrs);
		free(c);
		return NULL;
	}
	c->req.c = c;
	c->resp.c = c;
	set_remote(c, ss);
	return c;
}

static void accept_one(struct hs_server *s, int lfd, int *more)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct hs_conn *c;
	pthread_t t;
	int fd, one = 1, full;

	*more = 0;
	fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			*more = 1;
		else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			s->accept_pause_until = (uint64_t)clock_mono_ms() + 100;
		return;
	}
	*more = 1;
	if (ss.ss_family != AF_UNIX && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		/* not fatal: responses are written in one piece anyway */
	}
	pthread_mutex_lock(&s->mu);
	full = s->nconn >= s->cfg.max_connections ? 1 : from_same_client(s, &ss) >= s->cfg.max_per_client ? 2 : 0;
	pthread_mutex_unlock(&s->mu);
	if (full) {
		/* At a cap, a cap_exempt request (/health) is still answered. */
		linger_add(s, fd, &ss,
			   full == 1 ? "too many connections: the server is at its connection limit, retry later"
				     : "too many connections from this client address: close some, or retry later",
			   1);
		return;
	}
	c = conn_new(s, fd, &ss);
	if (!c) {
		refuse(s, fd, &ss, "out of memory");
		return;
	}
	pthread_mutex_lock(&s->mu);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconn++;
	pthread_mutex_unlock(&s->mu);
	if (pthread_create(&t, &s->attr, conn_main, c) != 0) {
		pthread_mutex_lock(&s->mu);
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		s->nconn--;
		pthread_mutex_unlock(&s->mu);
		conn_free(c);
		refuse(s, fd, &ss, "cannot start a thread for this connection, retry later");
	}
}

int hs_serve_fd(struct hs_server *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct hs_conn *c;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		ss.ss_family = AF_UNSPEC;     /* a socketpair: no address to show */
	c = conn_new(s, fd, &ss);
	if (!c)
		return -1;
	pthread_mutex_lock(&s->mu);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconn++;
	pthread_mutex_unlock(&s->mu);
	serve_connection(c);
	conn_unregister(s, c);
	conn_free(c);
	return 0;
}

static void *acceptor_main(void *arg)
{
	struct hs_server *s = arg;
	struct pollfd pf[HS_MAX_LISTEN + 1 + LINGER_SLOTS];
	int i;

	for (;;) {
		int n = 0, nl = 0, timeout = -1, r, listening;
		uint64_t now = (uint64_t)clock_mono_ms();

		listening = now >= s->accept_pause_until;
		if (listening) {
			for (i = 0; i < s->nlisten; i++, n++) {
				pf[n].fd = s->lfd[i];
				pf[n].events = POLLIN;
				pf[n].revents = 0;
			}
			nl = n;
		} else {
			timeout = (int)(s->accept_pause_until - now);
		}
		pf[n].fd = s->drain_pipe[0];
		pf[n].events = POLLIN;
		pf[n].revents = 0;
		n++;
		for (i = 0; i < s->nlinger; i++, n++) {
			int left = s->linger[i].deadline > now ? (int)(s->linger[i].deadline - now) : 0;

			pf[n].fd = s->linger[i].fd;
			pf[n].events = POLLIN;
			pf[n].revents = 0;
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
		r = poll(pf, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR)
			break;     /* cannot happen with valid descriptors */
		if (r < 0)
			continue;
		if (pf[nl].revents & POLLIN)
			break;
		/* lingering sockets, back to front so removals keep indexes */
		for (i = s->nlinger - 1; i >= 0; i--)
			linger_service(s, i, (pf[nl + 1 + i].revents & (POLLIN | POLLHUP | POLLERR)) != 0);
		for (i = 0; i < nl; i++) {
			int more = 1, k;

			if (!(pf[i].revents & POLLIN))
				continue;
			for (k = 0; k < ACCEPT_BATCH && more && !is_draining(s); k++)
				accept_one(s, pf[i].fd, &more);
		}
	}
	for (i = 0; i < s->nlisten; i++) {
		close(s->lfd[i]);
		s->lfd[i] = -1;
	}
	s->nlisten = 0;
	while (s->nlinger)
		linger_drop(s, s->nlinger - 1);
	return NULL;
}

/* ---- lifecycle -------------------------------------------------------- */

void hs_config_defaults(struct hs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_body = 2u << 20;
	c->max_url = 8192;
	c->max_header_bytes = 32768;
	c->max_headers = 100;
	c->max_connections = 1024;
	c->header_timeout_ms = 10000;
	c->body_timeout_ms = 30000;
	c->idle_timeout_ms = 65000;
	c->write_timeout_ms = 30000;
	c->stack_size = (256u << 10) * HS_STACK_SCALE;
}

struct hs_server *hs_new(const struct hs_config *cfg, struct err *e)
{
	struct hs_config d;
	struct hs_server *s;
	pthread_condattr_t ca;
	int rc;

	if (!cfg || !cfg->handler) {
		err_set(e, "http server: no handler");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		err_set(e, "http server: out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	hs_config_defaults(&d);
#define DEF(f) if (!s->cfg.f) s->cfg.f = d.f
	DEF(max_body);
	DEF(max_url);
	DEF(max_header_bytes);
	DEF(max_headers);
	DEF(max_connections);
	DEF(header_timeout_ms);
	DEF(body_timeout_ms);
	DEF(idle_timeout_ms);
	DEF(write_timeout_ms);
	DEF(stack_size);
#undef DEF
	if (s->cfg.max_url > 65535)     /* http_parser_parse_url's offsets are 16-bit */
		s->cfg.max_url = 65535;
	if (s->cfg.stack_size < 64u << 10)
		s->cfg.stack_size = 64u << 10;
	if (!s->cfg.max_per_client)      /* one client never takes every slot */
		s->cfg.max_per_client = s->cfg.max_connections - s->cfg.max_connections / 4;
	s->port = -1;
	s->drain_pipe[0] = s->drain_pipe[1] = -1;
	if (pipe2(s->drain_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		err_set(e, "http server: pipe: %s", strerror(errno));
		free(s);
		return NULL;
	}
	if ((rc = pthread_attr_init(&s->attr)) != 0 ||
	    (rc = pthread_attr_setstacksize(&s->attr, s->cfg.stack_size)) != 0 ||
	    (rc = pthread_attr_setdetachstate(&s->attr, PTHREAD_CREATE_DETACHED)) != 0) {
		err_set(e, "http server: thread attributes: %s", strerror(rc));
		goto fail;
	}
	if ((rc = pthread_mutex_init(&s->mu, NULL)) != 0) {
		err_set(e, "http server: mutex: %s", strerror(rc));
		goto fail;
	}
	if ((rc = pthread_condattr_init(&ca)) != 0 ||
	    (rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
	    (rc = pthread_cond_init(&s->cv, &ca)) != 0) {
		err_set(e, "http server: condition variable: %s", strerror(rc));
		goto fail;
	}
	pthread_condattr_destroy(&ca);
	return s;
fail:
	close(s->drain_pipe[0]);
	close(s->drain_pipe[1]);
	free(s);
	return NULL;
}

int hs_listen(struct hs_server *s, const char *host, int port, struct err *e)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char portstr[16];
	int fd, rc, one = 1, zero = 0;

	if (s->started)
		return err_set(e, "http server: hs_listen after hs_start");
	if (s->nlisten >= HS_MAX_LISTEN)
		return err_set(e, "http server: more than %d listeners", HS_MAX_LISTEN);
	if (port < 0 || port > 65535)
		return err_set(e, "invalid port %d", port);
	if (!host || !*host)
		host = "0.0.0.0";
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0 || !res)
		return err_set(e, "cannot resolve listen address '%s': %s", host, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err_set(e, "socket for %s: %s", host, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		goto sockfail;
	if (res->ai_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)res->ai_addr;
		int any = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(int)) != 0)
			goto sockfail;
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
		err_set(e, "cannot listen on %s port %d: %s", host, port, strerror(errno));
		goto out;
	}
	if (listen(fd, 511) != 0)
		goto sockfail;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		goto sockfail;
	if (s->nlisten == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	s->lfd[s->nlisten++] = fd;
	freeaddrinfo(res);
	return 0;
sockfail:
	err_set(e, "cannot listen on %s port %d: %s", host, port, strerror(errno));
out:
	close(fd);
	freeaddrinfo(res);
	return -1;
}

int hs_port(const struct hs_server *s)
{
	return s->port;
}

int hs_start(struct hs_server *s, struct err *e)
{
	int rc;

	if (s->started)
		return err_set(e, "http server: already started");
	if (s->nlisten == 0)
		return err_set(e, "http server: no listener (call hs_listen first)");
	rc = pthread_create(&s->acceptor, NULL, acceptor_main, s);
	if (rc != 0)
		return err_set(e, "http server: cannot start the acceptor thread: %s", strerror(rc));
	s->started = 1;
	return 0;
}

int hs_draining(const struct hs_server *s)
{
	return is_draining(s);
}

unsigned hs_connections(const struct hs_server *s)
{
	unsigned n;

	pthread_mutex_lock((pthread_mutex_t *)&s->mu);
	n = s->nconn;
	pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
	return n;
}

/* Wait until no connection is left or deadline (ms, monotonic); 1 if
 * some are left.  Called with s->mu held. */
static int wait_conns(struct hs_server *s, uint64_t deadline)
{
	while (s->nconn > 0) {
		struct timespec ts;
		uint64_t now = (uint64_t)clock_mono_ms();

		if (now >= deadline)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)((deadline - now) / 1000u);
		ts.tv_nsec += (long)((deadline - now) % 1000u) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == EINVAL)
			return 1;
	}
	return 0;
}

int hs_shutdown(struct hs_server *s, unsigned deadline_ms)
{
	uint64_t deadline = (uint64_t)clock_mono_ms() + deadline_ms;
	struct hs_conn *c;
	ssize_t w;
	int forced = 0;

	if (__atomic_exchange_n(&s->draining, 1, __ATOMIC_ACQ_REL))
		return 0;     /* already draining */
	do
		w = write(s->drain_pipe[1], "x", 1);
	while (w < 0 && errno == EINTR);
	if (s->started)
		pthread_join(s->acceptor, NULL);
	if (s->cfg.on_drain)
		s->cfg.on_drain(s->cfg.app);
	pthread_mutex_lock(&s->mu);
	if (wait_conns(s, deadline)) {
		forced = 1;
		for (c = s->conns; c; c = c->next)
			if (c->fd >= 0 && shutdown(c->fd, SHUT_RDWR) != 0) {
				/* already disconnected: its thread will notice */
			}
		if (wait_conns(s, (uint64_t)clock_mono_ms() + 1000))
			forced = 2;
	}
	pthread_mutex_unlock(&s->mu);
	return forced;
}

void hs_free(struct hs_server *s)
{
	int i;

	if (!s)
		return;
	if (s->started && !is_draining(s))
		hs_shutdown(s, 0);
	for (i = 0; i < s->nlisten; i++)
		close(s->lfd[i]);
	close(s->drain_pipe[0]);
	close(s->drain_pipe[1]);
	pthread_attr_destroy(&s->attr);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}
