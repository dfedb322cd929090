/*
 * proxy.c: the token proxy (see proxy.h for what it does and refuses).
 *
 * Design.
 *
 * Threads.  One listener thread polls the listening socket and a wake-up
 * pipe; each accepted connection runs on its own thread (a fixed table of
 * slots, max_connections long), which owns the socket, an http-parser
 * and, from its first forwarded request on, one libcurl easy handle that
 * it keeps for the connection's life so the upstream connection (and its
 * TLS session) is reused by the client's keep-alive requests.  Blocking
 * calls are bounded: socket waits are poll()s of at most 250 ms that
 * re-check the stop flag, and libcurl's progress callback (called at
 * transfer loop (libcurl's multi interface, polled in 100 ms steps)
 * checks the flag and whether the client hung up.  tp_stop() sets the
 * flag and wakes the listener, which shuts down every client socket and
 * joins every thread.
 *
 * Request path.  Bytes from the client go through http-parser (strict
 * mode: conflicting Content-Length / Transfer-Encoding and other
 * smuggling forms are errors).  The parser is paused at the end of each
 * message, so bytes of a pipelined next request stay in the input buffer
 * for the next round.  Once the header section is complete the request is
 * checked (method, origin-form target, credential) and refused or
 * forwarded.  The body is not collected: libcurl's read callback pulls
 * it, parsing more client input only when the bytes parsed so far are
 * used up, so at most one input buffer (16 KiB) is held at a time.  A
 * chunked request body goes upstream chunked, a Content-Length body with
 * the same length.
 *
 * Response path.  libcurl's header callback collects the final response's
 * header block (1xx interim responses and trailers are skipped) and, at
 * its blank line, writes the status line and the filtered headers to the
 * client at once, so the client sees headers even when the body takes a
 * while.  The write callback sends each body piece straight to the client
 * (TCP_NODELAY, one sendmsg per piece), framed with Content-Length when
 * the upstream declared one and chunked otherwise, and feeds the same
 * bytes to the usage meter.  Nothing is sent to the client before the
 * upstream's header block is complete, so any failure up to then can
 * still be answered with a clean 502.
 *
 * Pinning.  The upstream URL is the pinned base plus the client's target,
 * which must start with '/' and hold only visible ASCII without '\' or
 * '#'; the joined URL is parsed again with libcurl's URL parser and its
 * scheme, host and port must equal the pinned ones, or the request is
 * refused.  Redirects are not followed.
 *
 * Secrets.  The real credential lives in one heap copy; the header line
 * made from it for each request is wiped after use (libcurl's own copy
 * of the header list is wiped before it is freed).  Log lines and errors
 * never include it and still go through redact_apply().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cJSON.h"
#include "crypto/crypto.h"
#include "http_parser.h"
#include "job/prices.h"
#include "job/proxy.h"
#include "util/clock.h"
#include "net/ca.h"
#include "net/netinit.h"
#include "util/buf.h"
#include "util/jsjson.h"
#include "util/redact.h"
#include "settings/settings.h"

#define TP_IN_SIZE 16384                /* one read from the client */
#define TP_MAX_URL 16384
#define TP_MAX_HEADERS 128
#define TP_MAX_RESP_HEADERS 256
#define TP_IDLE_MS (300 * 1000)         /* keep-alive wait for the next request */
#define TP_STALL_MS (120 * 1000)        /* no progress inside one request */
#define TP_SLICE_MS 250                 /* poll slice between stop-flag checks */
#define TP_POLL_MS 100                  /* transfer loop: stop / hang-up checks */
#define TP_CONNECT_TIMEOUT_MS 30000L
#define TP_LOW_SPEED_TIME 600L          /* abort an upstream silent for 10 min */
#define TP_METER_LINE_MAX (256 * 1024)  /* longest SSE line kept */
#define TP_METER_JSON_MAX (32u << 20)   /* largest JSON body metered */
#define TP_THREAD_STACK (1024 * 1024)
#define TP_DUMMY_PREFIX "sk-ant-ccr-proxy-"

enum slot_state { SLOT_FREE = 0, SLOT_RUNNING, SLOT_DONE };

struct tp_slot {
	struct tp_proxy *p;
	enum slot_state state;
	int fd;                 /* closed by the connection thread, under p->lock */
	pthread_t th;
};

struct tp_hdr {
	size_t name, val;       /* offsets into the header buffer (NUL-terminated) */
	int has_val;
};

/* Response body framing towards the client. */
enum resp_mode { RM_NONE, RM_LENGTH, RM_CHUNKED, RM_CLOSE };

enum meter_kind { MK_NONE, MK_SSE, MK_JSON };

struct tp_meter {
	enum meter_kind kind;
	struct buf line;        /* SSE: the current line */
	int line_over;          /* it grew past TP_METER_LINE_MAX */
	int cr;                 /* the last byte was '\r' */
	int event;              /* 1 message_start, 2 message_delta, 0 other */
	struct buf data;        /* SSE: data lines of the current event */
	int data_over;
	int have_data;
	struct buf json;        /* JSON body */
	int json_over;
	uint64_t seen[4];       /* usage values already counted in this response */
	uint64_t seen_1h;       /* of which 1-hour cache writes (priced higher) */
	char model[128];        /* the response's model, for its price */
};

struct tp_conn {
	struct tp_proxy *p;
	struct tp_slot *slot;
	int fd;
	http_parser hp;
	char in[TP_IN_SIZE];
	size_t in_off, in_len;

	/* The request being handled. */
	struct buf url;
	struct buf hbuf;
	struct tp_hdr hdrs[TP_MAX_HEADERS];
	size_t nhdrs;
	int in_value;
	int begun, hdr_done, msg_done;
	int fail_status;        /* set by a parser callback that gave up */
	int method, http_major, http_minor, client_keep;
	long long clen;         /* request body length, -1 chunked */
	int has_body;
	struct buf body;        /* parsed body bytes not yet given to libcurl */
	size_t body_off;

	/* The response being relayed. */
	CURL *curl;
	CURLM *multi;           /* drives curl; one per connection, kept */
	char errbuf[CURL_ERROR_SIZE];
	int status;
	char reason[64];
	struct buf rhbuf;
	struct tp_hdr rhdrs[TP_MAX_RESP_HEADERS];
	size_t nrhdrs;
	int resp_started;       /* bytes of the response went to the client */
	int head_req;
	enum resp_mode mode;
	int keep;               /* keep the client connection after this response */
	int client_gone;
	int bad_body;           /* the request body did not parse */
	int is_messages;
	struct tp_meter meter;
};

/* ---- small helpers ------------------------------------------------------ */

static int stopping(const struct tp_proxy *p)
{
	return __atomic_load_n(&p->stopping, __ATOMIC_ACQUIRE);
}

static void tp_log(struct tp_proxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tp_log(struct tp_proxy *p, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int rc;

	if (!p->log)
		return;
	va_start(ap, fmt);
	rc = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (rc == 0 && redact_apply(&b) == 0)
		p->log(p->log_arg, b.p);
	buf_free(&b);
}

static void count(struct tp_proxy *p, uint64_t *field)
{
	pthread_mutex_lock(&p->lock);
	(*field)++;
	pthread_mutex_unlock(&p->lock);
}

static int ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

/* Send every byte of iov[0..n) to the client, waiting in slices. */
static int conn_sendv(struct tp_conn *c, struct iovec *iov, int n)
{
	double deadline = clock_mono_ms() + TP_STALL_MS;

	while (n > 0) {
		struct msghdr mh;
		ssize_t w;

		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)n;
		w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			struct pollfd pf;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			if (stopping(c->p) || clock_mono_ms() > deadline)
				return -1;
			pf.fd = c->fd;
			pf.events = POLLOUT;
			pf.revents = 0;
			if (poll(&pf, 1, TP_SLICE_MS) < 0 && errno != EINTR)
				return -1;
			continue;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++, n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int conn_send(struct tp_conn *c, const void *data, size_t len)
{
	struct iovec iov;

	iov.iov_base = (void *)data;
	iov.iov_len = len;
	return conn_sendv(c, &iov, 1);
}

/* Read once from the client into the input buffer.  1: bytes arrived,
 * 0: end of stream, -1: error or stop, -2: timeout. */
static int conn_recv(struct tp_conn *c, int timeout_ms)
{
	double deadline = clock_mono_ms() + timeout_ms;

	for (;;) {
		struct pollfd pf;
		ssize_t r = recv(c->fd, c->in, sizeof(c->in), MSG_DONTWAIT);

		if (r > 0) {
			c->in_off = 0;
			c->in_len = (size_t)r;
			return 1;
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (stopping(c->p))
			return -1;
		if (clock_mono_ms() > deadline)
			return -2;
		pf.fd = c->fd;
		pf.events = POLLIN;
		pf.revents = 0;
		if (poll(&pf, 1, TP_SLICE_MS) < 0 && errno != EINTR)
			return -1;
	}
}

/* After an answer that ends the connection: stop writing, then read and
 * drop what the client still sends for a moment, so closing with unread
 * data does not turn into a reset that destroys the answer in flight. */
static void conn_linger(struct tp_conn *c)
{
	double deadline = clock_mono_ms() + 500;
	size_t dropped = 0;

	if (shutdown(c->fd, SHUT_WR) != 0)
		return;
	while (dropped < (1u << 20) && clock_mono_ms() < deadline && !stopping(c->p)) {
		struct pollfd pf;
		ssize_t r;

		pf.fd = c->fd;
		pf.events = POLLIN;
		pf.revents = 0;
		if (poll(&pf, 1, 50) < 0 && errno != EINTR)
			return;
		r = recv(c->fd, c->in, sizeof(c->in), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return;
		if (r > 0)
			dropped += (size_t)r;
	}
}

/* ---- answers made by the proxy itself ------------------------------------ */

static const char *reason_of(int status)
{
	const char *s = http_status_str((enum http_status)status);

	return s && strcmp(s, "<unknown>") != 0 ? s : "Status";
}

/* An Anthropic-style JSON error; the connection is closed afterwards. */
static void conn_refuse(struct tp_conn *c, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void conn_refuse(struct tp_conn *c, int status, const char *type, const char *fmt, ...)
{
	struct buf msg = BUF_INIT, body = BUF_INIT, head = BUF_INIT;
	va_list ap;
	int rc;

	count(c->p, &c->p->usage.refused);
	va_start(ap, fmt);
	rc = buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (rc == 0 && redact_apply(&msg) == 0) {
		const char *m = strncmp(msg.p, "ccr token proxy: ", 17) == 0 ? msg.p + 17 : msg.p;

		tp_log(c->p, "token proxy: answered %d: %s", status, m);
		rc = buf_printf(&body, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", type);
		if (rc == 0)
			rc = jsj_string(&body, msg.p, msg.len);
		if (rc == 0)
			rc = buf_adds(&body, "}}\n");
		if (rc == 0)
			rc = buf_printf(&head,
					"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
					"Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
					status, reason_of(status), body.len,
					status == 405 ? "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n" : "");
		if (rc == 0) {
			struct iovec iov[2];

			iov[0].iov_base = head.p;
			iov[0].iov_len = head.len;
			iov[1].iov_base = body.p;
			iov[1].iov_len = c->head_req ? 0 : body.len;
			if (conn_sendv(c, iov, 2) == 0)
				c->resp_started = 1;
		}
	}
	buf_free(&msg);
	buf_free(&body);
	buf_free(&head);
	conn_linger(c);
}

/* ---- request parsing ------------------------------------------------------ */

static int on_message_begin(http_parser *hp)
{
	struct tp_conn *c = hp->data;

	c->begun = 1;
	return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
	struct tp_conn *c = hp->data;

	if (c->url.len + n > TP_MAX_URL) {
		c->fail_status = 414;
		return 1;
	}
	if (buf_add(&c->url, at, n) != 0) {
		c->fail_status = 500;
		return 1;
	}
	return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
	struct tp_conn *c = hp->data;

	if (c->hdr_done)
		return 0;       /* trailers of a chunked body: dropped */
	if (c->in_value || c->nhdrs == 0) {
		if (c->nhdrs == TP_MAX_HEADERS) {
			c->fail_status = 431;
			return 1;
		}
		/* NUL-terminate the previous value, start a new name. */
		if (c->nhdrs > 0 && buf_addc(&c->hbuf, 0) != 0) {
			c->fail_status = 500;
			return 1;
		}
		c->hdrs[c->nhdrs].name = c->hbuf.len;
		c->hdrs[c->nhdrs].has_val = 0;
		c->nhdrs++;
		c->in_value = 0;
	}
	if (buf_add(&c->hbuf, at, n) != 0) {
		c->fail_status = 500;
		return 1;
	}
	return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
	struct tp_conn *c = hp->data;
	struct tp_hdr *h;

	if (c->hdr_done)
		return 0;
	if (c->nhdrs == 0)
		return 1;
	h = &c->hdrs[c->nhdrs - 1];
	if (!c->in_value) {
		if (buf_addc(&c->hbuf, 0) != 0) {
			c->fail_status = 500;
			return 1;
		}
		h->val = c->hbuf.len;
		h->has_val = 1;
		c->in_value = 1;
	}
	if (buf_add(&c->hbuf, at, n) != 0) {
		c->fail_status = 500;
		return 1;
	}
	return 0;
}

static int on_headers_complete(http_parser *hp)
{
	struct tp_conn *c = hp->data;
	size_t i;

	if (c->nhdrs > 0 && buf_addc(&c->hbuf, 0) != 0) {
		c->fail_status = 500;
		return -1;
	}
	/* A header without any value callback has the empty value. */
	for (i = 0; i < c->nhdrs; i++)
		if (!c->hdrs[i].has_val) {
			if (buf_addc(&c->hbuf, 0) != 0) {
				c->fail_status = 500;
				return -1;
			}
			c->hdrs[i].val = c->hbuf.len - 1;
			c->hdrs[i].has_val = 1;
		}
	if (buf_addc(&c->url, 0) != 0) {
		c->fail_status = 500;
		return -1;
	}
	c->url.len--;
	c->method = hp->method;
	c->http_major = hp->http_major;
	c->http_minor = hp->http_minor;
	c->client_keep = http_should_keep_alive(hp);
	if (hp->flags & F_CHUNKED)
		c->clen = -1;
	else if ((hp->flags & F_CONTENTLENGTH) && hp->content_length != ULLONG_MAX)
		c->clen = (long long)hp->content_length;
	else
		c->clen = 0;
	c->has_body = c->clen != 0;
	c->hdr_done = 1;
	return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
	struct tp_conn *c = hp->data;

	if (buf_add(&c->body, at, n) != 0) {
		c->fail_status = 500;
		return 1;
	}
	return 0;
}

static int on_message_complete(http_parser *hp)
{
	struct tp_conn *c = hp->data;

	c->msg_done = 1;
	/* Leave the bytes of a pipelined next request unparsed for now. */
	http_parser_pause(hp, 1);
	return 0;
}

static const http_parser_settings tp_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

enum { PUMP_OK = 0, PUMP_EOF = 1, PUMP_ERR = -1, PUMP_TIMEOUT = -2, PUMP_BAD = -3 };

/* Parse buffered client input, reading more first when none is left. */
static int conn_pump(struct tp_conn *c, int timeout_ms)
{
	enum http_errno he;
	size_t want, n;

	if (c->in_off == c->in_len) {
		int r = conn_recv(c, timeout_ms);

		if (r == 0) {
			(void)http_parser_execute(&c->hp, &tp_settings, NULL, 0);
			return PUMP_EOF;
		}
		if (r == -2)
			return PUMP_TIMEOUT;
		if (r < 0)
			return PUMP_ERR;
	}
	want = c->in_len - c->in_off;
	n = http_parser_execute(&c->hp, &tp_settings, c->in + c->in_off, want);
	c->in_off += n;
	he = HTTP_PARSER_ERRNO(&c->hp);
	if (he == HPE_PAUSED)
		return PUMP_OK;
	if (he != HPE_OK)
		return PUMP_BAD;
	if (n != want && !c->hp.upgrade)
		return PUMP_BAD;
	return PUMP_OK;
}

static const char *hdr_name(const struct tp_conn *c, size_t i)
{
	return c->hbuf.p + c->hdrs[i].name;
}

static const char *hdr_val(const struct tp_conn *c, size_t i)
{
	return c->hbuf.p + c->hdrs[i].val;
}

/* The first request header called name, or NULL. */
static const char *req_header(const struct tp_conn *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nhdrs; i++)
		if (ieq(hdr_name(c, i), name))
			return hdr_val(c, i);
	return NULL;
}

/* Is name one of the comma-separated tokens in list (case-insensitive)? */
static int in_token_list(const char *list, const char *name)
{
	size_t nl = strlen(name);

	while (list && *list) {
		const char *end;
		size_t len;

		while (*list == ' ' || *list == '\t' || *list == ',')
			list++;
		end = list;
		while (*end && *end != ',')
			end++;
		len = (size_t)(end - list);
		while (len > 0 && (list[len - 1] == ' ' || list[len - 1] == '\t'))
			len--;
		if (len == nl && len > 0 && strncasecmp(list, name, nl) == 0)
			return 1;
		list = end;
	}
	return 0;
}

/* Hop-by-hop and proxy headers, which never cross the proxy in either
 * direction, plus the headers the message's own Connection header names. */
static int is_hop_header(const char *name, const struct tp_conn *c, int request)
{
	static const char *const hop[] = { "connection", "keep-alive", "te", "trailer",
		"transfer-encoding", "upgrade", NULL };
	size_t i;

	for (i = 0; hop[i]; i++)
		if (ieq(name, hop[i]))
			return 1;
	if (strncasecmp(name, "proxy-", 6) == 0)
		return 1;
	if (request) {
		for (i = 0; i < c->nhdrs; i++)
			if (ieq(hdr_name(c, i), "connection") && in_token_list(hdr_val(c, i), name))
				return 1;
	} else {
		for (i = 0; i < c->nrhdrs; i++)
			if (ieq(c->rhbuf.p + c->rhdrs[i].name, "connection") &&
			    in_token_list(c->rhbuf.p + c->rhdrs[i].val, name))
				return 1;
	}
	return 0;
}

/* Does value equal the dummy (constant time in the dummy's length)? */
static int is_dummy(const struct tp_proxy *p, const char *v, size_t n)
{
	size_t dl = strlen(p->dummy);

	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return n == dl && cr_const_eq(v, p->dummy, dl);
}

/* 1 when the request carries the proxy's dummy credential. */
static int has_dummy(const struct tp_conn *c)
{
	size_t i;
	int ok = 0;

	for (i = 0; i < c->nhdrs; i++) {
		const char *n = hdr_name(c, i), *v = hdr_val(c, i);

		if (ieq(n, "x-api-key") && is_dummy(c->p, v, strlen(v)))
			ok = 1;
		if (ieq(n, "authorization") && strncasecmp(v, "Bearer ", 7) == 0) {
			v += 7;
			while (*v == ' ')
				v++;
			if (is_dummy(c->p, v, strlen(v)))
				ok = 1;
		}
	}
	return ok;
}

/* Origin-form: '/' then visible ASCII, no '\' (some parsers read it as
 * '/') and no '#' (a fragment is not part of a request target). */
static int origin_form(const char *t)
{
	if (t[0] != '/')
		return 0;
	for (; *t; t++) {
		unsigned char ch = (unsigned char)*t;

		if (ch <= 0x20 || ch >= 0x7f || ch == '\\' || ch == '#')
			return 0;
	}
	return 1;
}

static int method_allowed(int m)
{
	return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH ||
	       m == HTTP_DELETE || m == HTTP_OPTIONS;
}

/* 1 when the task's budget is spent and this is a Messages request (a
 * call that costs money): refused with an Anthropic-style error, which
 * the CLI reports as an API error and does not retry. */
static int over_budget(struct tp_conn *c)
{
	struct tp_proxy *p = c->p;
	const char *u = c->url.p ? c->url.p : "";
	double cost;

	if (!(p->budget_usd > 0) || c->method != HTTP_POST || strncmp(u, "/v1/messages", 12) != 0 ||
	    strncmp(u, "/v1/messages/count_tokens", 25) == 0)
		return 0;
	pthread_mutex_lock(&p->lock);
	cost = p->usage.cost_usd;
	if (cost >= p->budget_usd)
		p->usage.budget_refused++;
	pthread_mutex_unlock(&p->lock);
	if (cost < p->budget_usd)
		return 0;
	conn_refuse(c, 400, "invalid_request_error",
		    "ccr token proxy: this task's budget of $%.4f is spent (metered cost $%.4f); the request was not "
		    "sent (budget_exceeded)",
		    p->budget_usd, cost);
	return 1;
}

/* Check a request whose header section is complete.  0 to forward it;
 * -1 when it was refused (answer sent, connection to be closed). */
static int conn_check(struct tp_conn *c)
{
	const char *expect;
	size_t i;

	if (c->method == HTTP_CONNECT) {
		conn_refuse(c, 405, "invalid_request_error",
			    "ccr token proxy: CONNECT is refused; this proxy only forwards origin-form "
			    "requests (/v1/...) to its pinned upstream");
		return -1;
	}
	if (c->hp.upgrade || req_header(c, "upgrade")) {
		conn_refuse(c, 400, "invalid_request_error",
			    "ccr token proxy: protocol upgrades are not supported");
		return -1;
	}
	if (!method_allowed(c->method)) {
		conn_refuse(c, 405, "invalid_request_error", "ccr token proxy: method %s is not supported",
			    http_method_str((enum http_method)c->method));
		return -1;
	}
	if (c->http_major != 1) {
		conn_refuse(c, 505, "invalid_request_error", "ccr token proxy: only HTTP/1.x is supported");
		return -1;
	}
	if (!origin_form(c->url.p)) {
		conn_refuse(c, 400, "invalid_request_error",
			    "ccr token proxy: only origin-form request targets (\"/v1/messages?...\") are "
			    "accepted; absolute-form and other targets are refused so the credential can "
			    "only reach the pinned upstream");
		return -1;
	}
	for (i = 0; i < c->nhdrs; i++) {
		const char *v = hdr_val(c, i);

		if (strpbrk(v, "\r\n")) {
			conn_refuse(c, 400, "invalid_request_error", "ccr token proxy: a header value holds a line break");
			return -1;
		}
	}
	if (!has_dummy(c)) {
		conn_refuse(c, 401, "authentication_error",
			    "ccr token proxy: the request does not carry this task's proxy credential "
			    "(x-api-key or Authorization: Bearer); use the value ccr put in the CLI's "
			    "environment");
		return -1;
	}
	if (over_budget(c))
		return -1;
	expect = req_header(c, "expect");
	if (expect) {
		if (!ieq(expect, "100-continue")) {
			conn_refuse(c, 417, "invalid_request_error",
				    "ccr token proxy: only \"Expect: 100-continue\" is supported");
			return -1;
		}
		if (!c->msg_done && conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0) {
			c->client_gone = 1;
			return -1;
		}
	}
	return 0;
}

/* ---- usage metering -------------------------------------------------------- */

static const char *const usage_names[4] = { "input_tokens", "output_tokens",
	"cache_creation_input_tokens", "cache_read_input_tokens" };

/* The increase of usage.cache_creation.ephemeral_1h_input_tokens (part of
 * cache_creation_input_tokens, written to the 1-hour cache). */
static double new_1h_writes(struct tp_conn *c, const cJSON *u)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(u, "cache_creation"),
							  "ephemeral_1h_input_tokens");
	uint64_t n;

	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 1e15)
		return 0;
	n = (uint64_t)v->valuedouble;
	if (n <= c->meter.seen_1h)
		return 0;
	n -= c->meter.seen_1h;
	c->meter.seen_1h += n;
	return (double)n;
}

/* Add the increase of each usage field over what this response already
 * counted (stream usage values are cumulative). */
static void meter_usage(struct tp_conn *c, const cJSON *u)
{
	struct tp_proxy *p = c->p;
	uint64_t *tot[4];
	double delta[4];
	int i;

	if (!cJSON_IsObject(u))
		return;
	tot[0] = &p->usage.input_tokens;
	tot[1] = &p->usage.output_tokens;
	tot[2] = &p->usage.cache_creation_input_tokens;
	tot[3] = &p->usage.cache_read_input_tokens;
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < 4; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(u, usage_names[i]);
		uint64_t n;

		delta[i] = 0;
		if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 1e15)
			continue;
		n = (uint64_t)v->valuedouble;
		if (n > c->meter.seen[i]) {
			delta[i] = (double)(n - c->meter.seen[i]);
			*tot[i] += n - c->meter.seen[i];
			c->meter.seen[i] = n;
		}
	}
	p->usage.cost_usd += price_cost(price_for(c->meter.model), delta[0], delta[1], delta[2], delta[3]) +
			     price_1h_extra(price_for(c->meter.model), new_1h_writes(c, u));
	pthread_mutex_unlock(&p->lock);
}

/* Remember the response's model, which prices its usage. */
static void meter_model(struct tp_conn *c, const cJSON *model)
{
	snprintf(c->meter.model, sizeof(c->meter.model), "%s", cJSON_IsString(model) ? model->valuestring : "");
}

/* The end of one SSE event: meter message_start / message_delta. */
static void meter_event(struct tp_conn *c)
{
	struct tp_meter *m = &c->meter;
	cJSON *j;

	if (m->event && m->have_data && !m->data_over) {
		j = cJSON_ParseWithLength(m->data.p, m->data.len);
		if (j) {
			if (m->event == 1) {
				const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");

				count(c->p, &c->p->usage.requests);
				meter_model(c, cJSON_GetObjectItemCaseSensitive(msg, "model"));
				meter_usage(c, cJSON_GetObjectItemCaseSensitive(msg, "usage"));
			} else {
				meter_usage(c, cJSON_GetObjectItemCaseSensitive(j, "usage"));
			}
			cJSON_Delete(j);
		}
	}
	m->event = 0;
	m->have_data = 0;
	m->data_over = 0;
	buf_reset(&m->data);
}

/* One SSE line (without its end of line). */
static void meter_line(struct tp_conn *c, const char *l, size_t n)
{
	struct tp_meter *m = &c->meter;
	const char *colon, *v;
	size_t fl, vl;

	if (n == 0) {
		meter_event(c);
		return;
	}
	if (l[0] == ':')
		return;
	colon = memchr(l, ':', n);
	fl = colon ? (size_t)(colon - l) : n;
	v = colon ? colon + 1 : l + n;
	vl = n - (size_t)(v - l);
	if (vl > 0 && *v == ' ')
		v++, vl--;
	if (fl == 5 && memcmp(l, "event", 5) == 0) {
		m->event = vl == 13 && memcmp(v, "message_start", 13) == 0   ? 1
			   : vl == 13 && memcmp(v, "message_delta", 13) == 0 ? 2
									     : 0;
	} else if (fl == 4 && memcmp(l, "data", 4) == 0) {
		if (m->data.len + vl + 1 > TP_METER_LINE_MAX) {
			m->data_over = 1;
			return;
		}
		if ((m->have_data && buf_addc(&m->data, '\n') != 0) || buf_add(&m->data, v, vl) != 0)
			m->data_over = 1;
		m->have_data = 1;
	}
}

/* Feed response body bytes to the meter. */
static void meter_feed(struct tp_conn *c, const char *d, size_t n)
{
	struct tp_meter *m = &c->meter;
	size_t i = 0;

	if (m->kind == MK_JSON) {
		if (m->json_over || m->json.len + n > TP_METER_JSON_MAX || buf_add(&m->json, d, n) != 0)
			m->json_over = 1;
		return;
	}
	if (m->kind != MK_SSE)
		return;
	while (i < n) {
		size_t j = i;

		if (m->cr && d[i] == '\n') {    /* the LF of a CRLF */
			m->cr = 0;
			i++;
			continue;
		}
		m->cr = 0;
		while (j < n && d[j] != '\r' && d[j] != '\n')
			j++;
		if (j > i && !m->line_over) {
			if (m->line.len + (j - i) > TP_METER_LINE_MAX || buf_add(&m->line, d + i, j - i) != 0)
				m->line_over = 1;
		}
		if (j == n)
			break;
		if (m->line_over)
			meter_line(c, "x", 1);  /* a line we could not keep: ignored */
		else
			meter_line(c, m->line.p ? m->line.p : "", m->line.len);
		buf_reset(&m->line);
		m->line_over = 0;
		m->cr = d[j] == '\r';
		i = j + 1;
	}
}

/* The response is over: meter a JSON body. */
static void meter_finish(struct tp_conn *c)
{
	struct tp_meter *m = &c->meter;
	cJSON *j;

	if (m->kind != MK_JSON || m->json_over || m->json.len == 0)
		return;
	j = cJSON_ParseWithLength(m->json.p, m->json.len);
	if (!j)
		return;
	if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "usage"))) {
		count(c->p, &c->p->usage.requests);
		meter_model(c, cJSON_GetObjectItemCaseSensitive(j, "model"));
		meter_usage(c, cJSON_GetObjectItemCaseSensitive(j, "usage"));
	}
	cJSON_Delete(j);
}

static void meter_reset(struct tp_meter *m)
{
	buf_free(&m->line);
	buf_free(&m->data);
	buf_free(&m->json);
	memset(m, 0, sizeof(*m));
}

/* ---- relaying the response -------------------------------------------------- */

static const char *resp_header(const struct tp_conn *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nrhdrs; i++)
		if (ieq(c->rhbuf.p + c->rhdrs[i].name, name))
			return c->rhbuf.p + c->rhdrs[i].val;
	return NULL;
}

/* Parse a Content-Length value; -1 when absent or not a plain number. */
static long long parse_length(const char *v)
{
	long long n = 0;

	if (!v || !*v)
		return -1;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (LLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*v - '0');
	}
	return n;
}

/* The upstream's header block is complete: decide the framing, set up the
 * meter and send the status line and headers to the client. */
static int resp_begin(struct tp_conn *c)
{
	struct buf h = BUF_INIT;
	const char *te = resp_header(c, "transfer-encoding");
	const char *ce = resp_header(c, "content-encoding");
	const char *ct = resp_header(c, "content-type");
	long long len = parse_length(resp_header(c, "content-length"));
	int http11 = c->http_major == 1 && c->http_minor >= 1;
	size_t i;
	int rc;

	if (c->head_req || c->status == 204 || c->status == 304)
		c->mode = RM_NONE;
	else if (!te && len >= 0)
		c->mode = RM_LENGTH;
	else
		c->mode = http11 ? RM_CHUNKED : RM_CLOSE;
	c->keep = c->client_keep && c->msg_done && c->mode != RM_CLOSE;

	if (c->is_messages && c->status == 200 && (!ce || ieq(ce, "identity")) && ct) {
		if (strncasecmp(ct, "text/event-stream", 17) == 0)
			c->meter.kind = MK_SSE;
		else if (strncasecmp(ct, "application/json", 16) == 0)
			c->meter.kind = MK_JSON;
	}

	rc = buf_printf(&h, "HTTP/1.1 %d %s\r\n", c->status, c->reason[0] ? c->reason : reason_of(c->status));
	for (i = 0; rc == 0 && i < c->nrhdrs; i++) {
		const char *n = c->rhbuf.p + c->rhdrs[i].name;

		if (is_hop_header(n, c, 0) || ieq(n, "content-length"))
			continue;
		rc = buf_printf(&h, "%s: %s\r\n", n, c->rhbuf.p + c->rhdrs[i].val);
	}
	if (rc == 0 && c->mode == RM_LENGTH)
		rc = buf_printf(&h, "Content-Length: %lld\r\n", len);
	if (rc == 0 && c->mode == RM_NONE && len >= 0 && c->head_req)
		rc = buf_printf(&h, "Content-Length: %lld\r\n", len);
	if (rc == 0 && c->mode == RM_CHUNKED)
		rc = buf_adds(&h, "Transfer-Encoding: chunked\r\n");
	if (rc == 0 && !c->keep)
		rc = buf_adds(&h, "Connection: close\r\n");
	else if (rc == 0 && !http11)
		rc = buf_adds(&h, "Connection: keep-alive\r\n");
	if (rc == 0)
		rc = buf_adds(&h, "\r\n");
	if (rc == 0) {
		c->resp_started = 1;
		rc = conn_send(c, h.p, h.len);
		if (rc != 0)
			c->client_gone = 1;
	}
	buf_free(&h);
	return rc;
}

/* libcurl header callback: one line of the upstream's header block. */
static size_t hdr_cb(char *d, size_t size, size_t nitems, void *arg)
{
	struct tp_conn *c = arg;
	size_t n = size * nitems, len = n;

	if (c->resp_started)
		return n;               /* trailers: not relayed */
	while (len > 0 && (d[len - 1] == '\n' || d[len - 1] == '\r'))
		len--;
	if (len == 0) {
		if (c->status >= 100 && c->status < 200)
			return n;       /* end of an interim response */
		if (c->status < 200)
			return 0;
		return resp_begin(c) == 0 ? n : 0;
	}
	if (len > 5 && memcmp(d, "HTTP/", 5) == 0) {
		const char *s = memchr(d, ' ', len), *r;
		size_t rl;

		buf_reset(&c->rhbuf);
		c->nrhdrs = 0;
		c->reason[0] = 0;
		c->status = 0;
		if (!s || (size_t)(s - d) + 4 > len)
			return 0;
		c->status = (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
		if (c->status < 100 || c->status > 999)
			return 0;
		r = s + 4;
		while (r < d + len && *r == ' ')
			r++;
		rl = (size_t)(d + len - r);
		if (rl < sizeof(c->reason)) {
			size_t i;

			for (i = 0; i < rl && r[i] >= 0x20 && r[i] < 0x7f; i++)
				;
			if (i == rl) {
				memcpy(c->reason, r, rl);
				c->reason[rl] = 0;
			}
		}
		return n;
	}
	if (d[0] == ' ' || d[0] == '\t') {
		/* An obsolete folded continuation: append to the last value. */
		if (c->nrhdrs == 0 || c->rhbuf.len == 0)
			return 0;
		c->rhbuf.len--;         /* drop the NUL */
		if (buf_addc(&c->rhbuf, ' ') != 0 || buf_add(&c->rhbuf, d, len) != 0 || buf_addc(&c->rhbuf, 0) != 0)
			return 0;
		return n;
	} else {
		const char *colon = memchr(d, ':', len);
		const char *v;
		size_t nl, vl;

		if (!colon || colon == d || c->nrhdrs == TP_MAX_RESP_HEADERS)
			return 0;
		nl = (size_t)(colon - d);
		v = colon + 1;
		while (v < d + len && (*v == ' ' || *v == '\t'))
			v++;
		vl = (size_t)(d + len - v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		c->rhdrs[c->nrhdrs].name = c->rhbuf.len;
		if (buf_add(&c->rhbuf, d, nl) != 0 || buf_addc(&c->rhbuf, 0) != 0)
			return 0;
		c->rhdrs[c->nrhdrs].val = c->rhbuf.len;
		if (buf_add(&c->rhbuf, v, vl) != 0 || buf_addc(&c->rhbuf, 0) != 0)
			return 0;
		c->nrhdrs++;
	}
	return n;
}

/* libcurl write callback: one piece of the response body, straight on. */
static size_t body_cb(char *d, size_t size, size_t nitems, void *arg)
{
	struct tp_conn *c = arg;
	size_t n = size * nitems;
	struct iovec iov[3];
	char hex[24];
	int rc;

	if (!c->resp_started && resp_begin(c) != 0)
		return 0;
	if (n == 0)
		return 0;
	meter_feed(c, d, n);
	if (c->mode == RM_NONE)
		return n;
	if (c->mode == RM_CHUNKED) {
		iov[0].iov_base = hex;
		iov[0].iov_len = (size_t)snprintf(hex, sizeof(hex), "%zx\r\n", n);
		iov[1].iov_base = d;
		iov[1].iov_len = n;
		iov[2].iov_base = "\r\n";
		iov[2].iov_len = 2;
		rc = conn_sendv(c, iov, 3);
	} else {
		rc = conn_send(c, d, n);
	}
	if (rc != 0) {
		c->client_gone = 1;
		return 0;
	}
	return n;
}

/* libcurl read callback: the next bytes of the client's request body. */
static size_t read_cb(char *dst, size_t size, size_t nitems, void *arg)
{
	struct tp_conn *c = arg;
	size_t n = size * nitems, avail;

	while (c->body.len == c->body_off) {
		int r;

		buf_reset(&c->body);
		c->body_off = 0;
		if (c->msg_done)
			return 0;
		r = conn_pump(c, TP_STALL_MS);
		if (r != PUMP_OK) {
			if (r == PUMP_BAD)
				c->bad_body = 1;
			else
				c->client_gone = 1;
			return CURL_READFUNC_ABORT;
		}
	}
	avail = c->body.len - c->body_off;
	if (n > avail)
		n = avail;
	memcpy(dst, c->body.p + c->body_off, n);
	c->body_off += n;
	return n;
}

/* Has the client hung up while its response is being relayed?  Only
 * asked once the request is complete (before that the read callback
 * sees it).  A half-close counts: HTTP clients do not half-close. */
static int client_hung_up(struct tp_conn *c)
{
	struct pollfd pf;

	if (!c->msg_done)
		return 0;
	pf.fd = c->fd;
	pf.events = POLLRDHUP;
	pf.revents = 0;
	if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
		c->client_gone = 1;
		return 1;
	}
	return 0;
}

/* Run the configured transfer: libcurl's multi interface, polled in
 * TP_POLL_MS steps so a stop or a client hang-up aborts it quickly
 * (removing an unfinished transfer closes its upstream connection). */
static CURLcode run_transfer(struct tp_conn *c)
{
	CURLcode res = CURLE_OK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;

	if (!c->multi && !(c->multi = curl_multi_init()))
		return CURLE_OUT_OF_MEMORY;
	if (curl_multi_add_handle(c->multi, c->curl) != CURLM_OK)
		return CURLE_FAILED_INIT;
	for (;;) {
		mc = curl_multi_perform(c->multi, &running);
		if (mc != CURLM_OK) {
			snprintf(c->errbuf, sizeof(c->errbuf), "libcurl: %s", curl_multi_strerror(mc));
			res = CURLE_FAILED_INIT;
			break;
		}
		if (!running)
			break;
		if (stopping(c->p) || client_hung_up(c)) {
			snprintf(c->errbuf, sizeof(c->errbuf), "%s", stopping(c->p) ? "proxy stopping" : "client gone");
			res = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		mc = curl_multi_poll(c->multi, NULL, 0, TP_POLL_MS, NULL);
		if (mc != CURLM_OK) {
			snprintf(c->errbuf, sizeof(c->errbuf), "libcurl: %s", curl_multi_strerror(mc));
			res = CURLE_FAILED_INIT;
			break;
		}
	}
	if (!running)
		while ((msg = curl_multi_info_read(c->multi, &left)))
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->curl)
				res = msg->data.result;
	(void)curl_multi_remove_handle(c->multi, c->curl);
	return res;
}

/* ---- forwarding ------------------------------------------------------------- */

/* Does url (the pinned base plus the client's target) still point at the
 * pinned scheme, host and port?  1 yes, 0 no. */
static int url_pinned(const struct tp_proxy *p, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
	int ok = 0;

	if (!u)
		return 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER)
		ok = strcmp(scheme, p->up_scheme) == 0 && strcmp(host, p->up_host) == 0 &&
		     strcmp(port, p->up_port) == 0;
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_url_cleanup(u);
	return ok;
}

/* Append "Name: value" (or "Name;" for an empty value, libcurl's way of
 * sending one) to the list.  0, or -1 out of memory. */
static int slist_add(struct curl_slist **l, const char *name, const char *val)
{
	struct buf line = BUF_INIT;
	struct curl_slist *nl;
	int rc = *val ? buf_printf(&line, "%s: %s", name, val) : buf_printf(&line, "%s;", name);

	nl = rc == 0 ? curl_slist_append(*l, line.p) : NULL;
	cr_wipe(line.p, line.len);
	buf_free(&line);
	if (!nl)
		return -1;
	*l = nl;
	return 0;
}

static int slist_raw(struct curl_slist **l, const char *line)
{
	struct curl_slist *nl = curl_slist_append(*l, line);

	if (!nl)
		return -1;
	*l = nl;
	return 0;
}

/* Wipe every line (one holds the credential), then free the list. */
static void slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist *i;

	for (i = l; i; i = i->next)
		if (i->data)
			cr_wipe(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

/* The header list for the upstream: the client's end-to-end headers minus
 * credentials, then the real credential, then suppressions of libcurl's
 * own defaults the client did not ask for. */
static struct curl_slist *upstream_headers(struct tp_conn *c)
{
	static const char *const dropped[] = { "host", "content-length", "expect", "x-api-key", "authorization",
		"accept-encoding", NULL };
	struct tp_proxy *p = c->p;
	struct curl_slist *l = NULL;
	size_t i, k;
	int rc = 0;

	for (i = 0; rc == 0 && i < c->nhdrs; i++) {
		const char *n = hdr_name(c, i);

		for (k = 0; dropped[k] && !ieq(n, dropped[k]); k++)
			;
		if (dropped[k] || is_hop_header(n, c, 1))
			continue;
		rc = slist_add(&l, n, hdr_val(c, i));
	}
	if (rc == 0) {
		struct buf cred = BUF_INIT;

		if (p->kind == TP_CRED_OAUTH)
			rc = buf_adds(&cred, "Authorization: Bearer ");
		else
			rc = buf_adds(&cred, "x-api-key: ");
		if (rc == 0)
			rc = buf_add(&cred, p->secret, p->secret_len);
		if (rc == 0)
			rc = slist_raw(&l, cred.p);
		if (cred.p)
			cr_wipe(cred.p, cred.len);
		buf_free(&cred);
	}
	/* Remove libcurl's own defaults: no 100-continue round trip, and no
	 * Accept or form Content-Type the client did not send. */
	if (rc == 0)
		rc = slist_raw(&l, "Expect:");
	if (rc == 0 && !req_header(c, "accept"))
		rc = slist_raw(&l, "Accept:");
	if (rc == 0 && !req_header(c, "content-type"))
		rc = slist_raw(&l, "Content-Type:");
	if (rc != 0) {
		slist_wipe_free(l);
		return NULL;
	}
	return l;
}

#define SETOPT(h, opt, val) (ok = ok && curl_easy_setopt((h), (opt), (val)) == CURLE_OK)

/* Configure the easy handle for this request.  0, or -1. */
static int curl_setup(struct tp_conn *c, const char *url, struct curl_slist *hl)
{
	struct tp_proxy *p = c->p;
	CURL *h = c->curl;
	int ok = 1;

	curl_easy_reset(h);
	c->errbuf[0] = 0;
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_URL, url);
	SETOPT(h, CURLOPT_PROTOCOLS_STR, p->up_scheme);
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(h, CURLOPT_PATH_AS_IS, 1L);
	SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(h, CURLOPT_SHARE, (CURLSH *)p->share);
	SETOPT(h, CURLOPT_HTTPHEADER, hl);
	SETOPT(h, CURLOPT_HEADERFUNCTION, hdr_cb);
	SETOPT(h, CURLOPT_HEADERDATA, c);
	SETOPT(h, CURLOPT_WRITEFUNCTION, body_cb);
	SETOPT(h, CURLOPT_WRITEDATA, c);
	SETOPT(h, CURLOPT_ERRORBUFFER, c->errbuf);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, TP_CONNECT_TIMEOUT_MS);
	SETOPT(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(h, CURLOPT_LOW_SPEED_TIME, TP_LOW_SPEED_TIME);
	SETOPT(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	SETOPT(h, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
	SETOPT(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	SETOPT(h, CURLOPT_TCP_NODELAY, 1L);
	SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (p->up_loopback)
		SETOPT(h, CURLOPT_PROXY, "");
	if (ok && strcmp(p->up_scheme, "https") == 0 && ca_curl_apply(h) != 0)
		ok = 0;

	if (c->method == HTTP_HEAD) {
		SETOPT(h, CURLOPT_NOBODY, 1L);
	} else if (c->has_body || c->method == HTTP_POST || c->method == HTTP_PUT || c->method == HTTP_PATCH) {
		SETOPT(h, CURLOPT_POST, 1L);
		SETOPT(h, CURLOPT_READFUNCTION, read_cb);
		SETOPT(h, CURLOPT_READDATA, c);
		SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->clen);
		if (c->method != HTTP_POST)
			SETOPT(h, CURLOPT_CUSTOMREQUEST, http_method_str((enum http_method)c->method));
	} else if (c->method == HTTP_GET) {
		SETOPT(h, CURLOPT_HTTPGET, 1L);
	} else {
		SETOPT(h, CURLOPT_CUSTOMREQUEST, http_method_str((enum http_method)c->method));
	}
	return ok ? 0 : -1;
}

/* Forward a checked request and relay the answer.  1 when the client
 * connection can carry another request, 0 when it must be closed. */
static int conn_forward(struct tp_conn *c)
{
	struct tp_proxy *p = c->p;
	struct buf url = BUF_INIT;
	struct curl_slist *hl = NULL;
	const char *q;
	size_t plen;
	CURLcode rc;

	q = strchr(c->url.p, '?');
	plen = q ? (size_t)(q - c->url.p) : c->url.len;
	c->is_messages = c->method == HTTP_POST && plen == 12 && memcmp(c->url.p, "/v1/messages", 12) == 0;
	c->head_req = c->method == HTTP_HEAD;

	if (buf_printf(&url, "%s%s", p->base, c->url.p) != 0) {
		conn_refuse(c, 500, "api_error", "ccr token proxy: out of memory");
		return 0;
	}
	if (!url_pinned(p, url.p)) {
		buf_free(&url);
		conn_refuse(c, 400, "invalid_request_error",
			    "ccr token proxy: the request target does not resolve to the pinned upstream");
		return 0;
	}
	if (!c->curl && !(c->curl = curl_easy_init())) {
		buf_free(&url);
		conn_refuse(c, 500, "api_error", "ccr token proxy: cannot create a libcurl handle (out of memory)");
		return 0;
	}
	hl = upstream_headers(c);
	if (!hl || curl_setup(c, url.p, hl) != 0) {
		slist_wipe_free(hl);
		buf_free(&url);
		conn_refuse(c, 500, "api_error", "ccr token proxy: cannot set up the upstream request (out of memory?)");
		return 0;
	}
	count(p, &p->usage.forwarded);
	rc = run_transfer(c);
	/* libcurl keeps pointers to the list until the next reset. */
	(void)curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	slist_wipe_free(hl);

	if (rc != CURLE_OK) {
		const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
		size_t el = strlen(c->errbuf);

		while (el > 0 && (c->errbuf[el - 1] == '\n' || c->errbuf[el - 1] == '\r' || c->errbuf[el - 1] == ' '))
			c->errbuf[--el] = 0;

		if (c->client_gone) {
			tp_log(p, "token proxy: client went away during %s %.*s; upstream request aborted",
			       http_method_str((enum http_method)c->method), (int)plen, c->url.p);
		} else if (c->bad_body && !c->resp_started) {
			conn_refuse(c, c->fail_status ? c->fail_status : 400,
				    c->fail_status == 500 ? "api_error" : "invalid_request_error",
				    "ccr token proxy: malformed request body: %s; upstream request aborted",
				    http_errno_description(HTTP_PARSER_ERRNO(&c->hp)));
		} else if (!c->resp_started && !stopping(p)) {
			conn_refuse(c, 502, "api_error",
				    "Bad Gateway: ccr token proxy could not get an answer from %s for %s %.*s: %s",
				    p->base, http_method_str((enum http_method)c->method), (int)plen, c->url.p, why);
		} else {
			tp_log(p, "token proxy: upstream failed in the middle of %s %.*s: %s; connection closed",
			       http_method_str((enum http_method)c->method), (int)plen, c->url.p, why);
		}
		meter_finish(c);
		buf_free(&url);
		return 0;
	}
	buf_free(&url);
	meter_finish(c);
	if (!c->resp_started)
		return 0;
	if (c->mode == RM_CHUNKED && conn_send(c, "0\r\n\r\n", 5) != 0)
		return 0;
	if (!c->msg_done) {
		/* Answered before the client finished its body (an early 413,
		 * say): close without a reset that could destroy the answer. */
		conn_linger(c);
		return 0;
	}
	return c->keep;
}

/* ---- connections -------------------------------------------------------------- */

static void req_reset(struct tp_conn *c)
{
	buf_reset(&c->url);
	buf_reset(&c->hbuf);
	buf_reset(&c->body);
	buf_reset(&c->rhbuf);
	c->body_off = 0;
	c->nhdrs = 0;
	c->nrhdrs = 0;
	c->in_value = 0;
	c->begun = c->hdr_done = c->msg_done = 0;
	c->fail_status = 0;
	c->clen = 0;
	c->has_body = 0;
	c->status = 0;
	c->reason[0] = 0;
	c->resp_started = 0;
	c->head_req = 0;
	c->mode = RM_NONE;
	c->keep = 0;
	c->bad_body = 0;
	c->is_messages = 0;
	meter_reset(&c->meter);
}

/* Read, check and forward one request.  1 to go on with the next one. */
static int conn_request(struct tp_conn *c)
{
	req_reset(c);
	http_parser_pause(&c->hp, 0);
	while (!c->hdr_done) {
		int r = conn_pump(c, c->begun ? TP_STALL_MS : TP_IDLE_MS);

		if (r == PUMP_OK)
			continue;
		if (r == PUMP_TIMEOUT && c->begun)
			conn_refuse(c, 408, "invalid_request_error",
				    "ccr token proxy: the request was not complete in time");
		if (r == PUMP_BAD) {
			int st = c->fail_status ? c->fail_status : 400;

			c->head_req = c->hp.method == HTTP_HEAD;
			conn_refuse(c, st, st == 500 ? "api_error" : "invalid_request_error",
				    "ccr token proxy: %s",
				    st == 414   ? "the request target is too long"
				    : st == 431 ? "too many request headers"
				    : st == 500 ? "out of memory"
						: http_errno_description(HTTP_PARSER_ERRNO(&c->hp)));
		}
		return 0;
	}
	c->head_req = c->method == HTTP_HEAD;
	if (conn_check(c) != 0)
		return 0;
	return conn_forward(c);
}

static void conn_free(struct tp_conn *c)
{
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	buf_free(&c->url);
	buf_free(&c->hbuf);
	buf_free(&c->body);
	buf_free(&c->rhbuf);
	meter_reset(&c->meter);
	cr_wipe(c->in, sizeof(c->in));
	free(c);
}

static void *conn_main(void *arg)
{
	struct tp_slot *s = arg;
	struct tp_proxy *p = s->p;
	struct tp_conn *c = calloc(1, sizeof(*c));

	if (c) {
		c->p = p;
		c->slot = s;
		c->fd = s->fd;
		http_parser_init(&c->hp, HTTP_REQUEST);
		c->hp.data = c;
		while (!stopping(p) && conn_request(c))
			;
		conn_free(c);
	}
	pthread_mutex_lock(&p->lock);
	close(s->fd);
	s->fd = -1;
	s->state = SLOT_DONE;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Answer a connection there is no slot for, without a thread. */
static void refuse_busy(int fd)
{
	static const char body[] = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
				   "\"ccr token proxy: too many simultaneous connections\"}}\n";
	char head[160];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
			 sizeof(body) - 1);

	if (n > 0 && send(fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n)
		(void)send(fd, body, sizeof(body) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)shutdown(fd, SHUT_WR);
	close(fd);
}

/* Join connection threads that have finished.  Call with p->lock held. */
static void reap_locked(struct tp_proxy *p)
{
	unsigned i;

	for (i = 0; i < p->nslots; i++)
		if (p->slots[i].state == SLOT_DONE) {
			pthread_join(p->slots[i].th, NULL);
			p->slots[i].state = SLOT_FREE;
		}
}

static void accept_one(struct tp_proxy *p, pthread_attr_t *attr)
{
	struct tp_slot *s = NULL;
	unsigned i;
	int fd, one = 1;

	fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			tp_log(p, "token proxy: cannot accept a connection: %s", strerror(errno));
			usleep(100 * 1000);
		}
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_mutex_lock(&p->lock);
	reap_locked(p);
	for (i = 0; i < p->nslots && !s; i++)
		if (p->slots[i].state == SLOT_FREE)
			s = &p->slots[i];
	if (s) {
		s->fd = fd;
		s->state = SLOT_RUNNING;
		if (pthread_create(&s->th, attr, conn_main, s) != 0) {
			s->state = SLOT_FREE;
			s->fd = -1;
			s = NULL;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (!s) {
		count(p, &p->usage.refused);
		tp_log(p, "token proxy: 503: no free connection slot (max %u)", p->nslots);
		refuse_busy(fd);
	}
}

static void *listener_main(void *arg)
{
	struct tp_proxy *p = arg;
	pthread_attr_t attr;
	int attr_ok = pthread_attr_init(&attr) == 0;
	unsigned i;

	if (attr_ok)
		(void)pthread_attr_setstacksize(&attr, TP_THREAD_STACK);
	while (!stopping(p)) {
		struct pollfd pf[2];

		pf[0].fd = p->listen_fd;
		pf[0].events = POLLIN;
		pf[0].revents = 0;
		pf[1].fd = p->wake[0];
		pf[1].events = POLLIN;
		pf[1].revents = 0;
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			tp_log(p, "token proxy: poll failed: %s", strerror(errno));
			usleep(100 * 1000);
			continue;
		}
		if (stopping(p))
			break;
		if (pf[0].revents & POLLIN)
			accept_one(p, attr_ok ? &attr : NULL);
	}
	/* Wake every connection thread, then wait for all of them. */
	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->nslots; i++)
		if (p->slots[i].state == SLOT_RUNNING && p->slots[i].fd >= 0)
			(void)shutdown(p->slots[i].fd, SHUT_RDWR);
	pthread_mutex_unlock(&p->lock);
	for (i = 0; i < p->nslots; i++) {
		enum slot_state st;

		pthread_mutex_lock(&p->lock);
		st = p->slots[i].state;
		pthread_mutex_unlock(&p->lock);
		if (st != SLOT_FREE) {
			pthread_join(p->slots[i].th, NULL);
			p->slots[i].state = SLOT_FREE;
		}
	}
	if (attr_ok)
		pthread_attr_destroy(&attr);
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct tp_proxy *p = arg;

	(void)h, (void)access;
	pthread_mutex_lock(&p->share_lock[(unsigned)data % 8]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct tp_proxy *p = arg;

	(void)h;
	pthread_mutex_unlock(&p->share_lock[(unsigned)data % 8]);
}

static int is_loopback_host(const char *h)
{
	return strcmp(h, "127.0.0.1") == 0 || strcmp(h, "[::1]") == 0 || strcmp(h, "::1") == 0 ||
	       strcasecmp(h, "localhost") == 0;
}

/* Check and record the upstream: scheme, host, port and base URL. */
static int set_upstream(struct tp_proxy *p, const char *url, const char *from, struct err *e)
{
	CURLU *u = curl_url();
	char *user = NULL, *query = NULL, *frag = NULL, *path = NULL;
	CURLUcode uc;
	int rc = -1;

	if (!u)
		return err_set(e, "token proxy: out of memory");
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc != CURLUE_OK) {
		err_set(e, "token proxy: the upstream URL from %s is not a valid URL (%s); expected https://host[:port]",
			from, curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &p->up_scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &p->up_host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p->up_port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		err_set(e, "token proxy: the upstream URL from %s has no host; expected https://host[:port]", from);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		err_set(e, "token proxy: the upstream URL from %s must not hold user info, a query or a fragment", from);
		goto out;
	}
	p->up_loopback = is_loopback_host(p->up_host);
	if (strcmp(p->up_scheme, "https") != 0 && !(strcmp(p->up_scheme, "http") == 0 && p->up_loopback)) {
		err_set(e, "token proxy: the upstream URL from %s must be https:// (plain http only to 127.0.0.1, "
			"::1 or localhost, for tests)", from);
		goto out;
	}
	{
		size_t pl = strlen(path);
		struct buf b = BUF_INIT;
		char *given_port = NULL;

		while (pl > 0 && path[pl - 1] == '/')
			pl--;
		(void)curl_url_get(u, CURLUPART_PORT, &given_port, 0);
		rc = buf_printf(&b, "%s://%s%s%s%.*s", p->up_scheme, p->up_host, given_port ? ":" : "",
				given_port ? given_port : "", (int)pl, path);
		curl_free(given_port);
		if (rc != 0) {
			buf_free(&b);
			err_set(e, "token proxy: out of memory");
			goto out;
		}
		p->base = buf_detach(&b);
	}
	rc = 0;
out:
	curl_free(user);
	curl_free(query);
	curl_free(frag);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

static void free_fields(struct tp_proxy *p)
{
	if (p->secret) {
		cr_wipe(p->secret, p->secret_len);
		free(p->secret);
		p->secret = NULL;
	}
	cr_wipe(p->dummy, sizeof(p->dummy));
	free(p->base);
	curl_free(p->up_scheme);
	curl_free(p->up_host);
	curl_free(p->up_port);
	p->base = p->up_scheme = p->up_host = p->up_port = NULL;
	free(p->slots);
	p->slots = NULL;
	if (p->share) {
		curl_share_cleanup(p->share);
		p->share = NULL;
	}
}

/* Copy the credential without surrounding whitespace; it must be made of
 * visible ASCII only (it goes into an HTTP header). */
static int set_secret(struct tp_proxy *p, const char *cred, struct err *e)
{
	const char *s = cred, *end;
	size_t n, i;

	if (!cred)
		return err_set(e, "token proxy: no Anthropic credential given (anthropicApiKey or anthropicOAuthToken)");
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	n = (size_t)(end - s);
	if (n == 0)
		return err_set(e, "token proxy: the Anthropic credential is empty");
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return err_set(e, "token proxy: the Anthropic credential holds a space, control or non-ASCII "
					  "character at offset %zu; it cannot go in an HTTP header (check how it was pasted)", i);
	p->secret = malloc(n + 1);
	if (!p->secret)
		return err_set(e, "token proxy: out of memory");
	memcpy(p->secret, s, n);
	p->secret[n] = 0;
	p->secret_len = n;
	if (redact_add(p->secret) != 0)
		return err_set(e, "token proxy: out of memory registering the credential for redaction");
	return 0;
}

static int make_dummy(struct tp_proxy *p, struct err *e)
{
	static const char hexd[] = "0123456789abcdef";
	unsigned char r[32];
	size_t i, off = sizeof(TP_DUMMY_PREFIX) - 1;

	if (cr_random(r, sizeof(r)) != 0)
		return err_set(e, "token proxy: no kernel randomness for the dummy credential: %s", strerror(errno));
	memcpy(p->dummy, TP_DUMMY_PREFIX, off);
	for (i = 0; i < sizeof(r); i++) {
		p->dummy[off++] = hexd[r[i] >> 4];
		p->dummy[off++] = hexd[r[i] & 15];
	}
	p->dummy[off] = 0;
	cr_wipe(r, sizeof(r));
	if (redact_add(p->dummy) != 0)
		return err_set(e, "token proxy: out of memory registering the dummy credential for redaction");
	return 0;
}

static int open_listener(struct tp_proxy *p, struct err *e)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p->listen_fd < 0)
		return err_set(e, "token proxy: cannot create a socket: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return err_set(e, "token proxy: cannot bind 127.0.0.1 (is the loopback interface up?): %s",
			       strerror(errno));
	if (listen(p->listen_fd, 128) != 0)
		return err_set(e, "token proxy: cannot listen on 127.0.0.1: %s", strerror(errno));
	if (getsockname(p->listen_fd, (struct sockaddr *)&sa, &sl) != 0)
		return err_set(e, "token proxy: cannot read the listening port: %s", strerror(errno));
	p->port = ntohs(sa.sin_port);
	return 0;
}

int tp_start(struct tp_proxy *p, const struct tp_config *cfg, struct err *e)
{
	const char *up = cfg->upstream, *from = "the task configuration";
	char ierr[256] = "";
	unsigned i;
	int nmu = 0, lock_ok = 0;

	memset(p, 0, sizeof(*p));
	p->listen_fd = -1;
	p->wake[0] = p->wake[1] = -1;
	if (cfg->kind != TP_CRED_API_KEY && cfg->kind != TP_CRED_OAUTH)
		return err_set(e, "token proxy: credential kind must be TP_CRED_API_KEY or TP_CRED_OAUTH");
	if (!up || !*up) {
		up = settings_str(SET_CCR_ANTHROPIC_UPSTREAM);
		from = "$" TP_UPSTREAM_ENV;
	}
	if (!up || !*up) {
		up = TP_DEFAULT_UPSTREAM;
		from = "the default";
	}
	if (net_global_init(ierr, sizeof(ierr)) != 0)
		return err_set(e, "token proxy: %s", ierr);
	p->kind = cfg->kind;
	p->budget_usd = cfg->budget_usd > 0 ? cfg->budget_usd : 0;
	p->log = cfg->log;
	p->log_arg = cfg->log_arg;
	p->nslots = cfg->max_connections ? cfg->max_connections : TP_MAX_CONNECTIONS_DEFAULT;
	if (set_secret(p, cfg->credential, e) != 0 || make_dummy(p, e) != 0 || set_upstream(p, up, from, e) != 0)
		goto fail;
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	if (!p->slots) {
		err_set(e, "token proxy: out of memory");
		goto fail;
	}
	for (i = 0; i < p->nslots; i++) {
		p->slots[i].p = p;
		p->slots[i].fd = -1;
	}
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		err_set(e, "token proxy: cannot create a mutex");
		goto fail;
	}
	lock_ok = 1;
	for (nmu = 0; nmu < 8; nmu++)
		if (pthread_mutex_init(&p->share_lock[nmu], NULL) != 0) {
			err_set(e, "token proxy: cannot create a mutex");
			goto fail;
		}
	p->share = curl_share_init();
	if (!p->share || curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(p->share, CURLSHOPT_USERDATA, p) != CURLSHE_OK ||
	    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		err_set(e, "token proxy: cannot set up a libcurl share handle (out of memory?)");
		goto fail;
	}
	if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		err_set(e, "token proxy: cannot create a pipe: %s", strerror(errno));
		goto fail;
	}
	if (open_listener(p, e) != 0)
		goto fail;
	{
		pthread_attr_t attr;
		int rc;

		if (pthread_attr_init(&attr) != 0) {
			err_set(e, "token proxy: cannot start its thread (out of memory?)");
			goto fail;
		}
		(void)pthread_attr_setstacksize(&attr, 256 * 1024);
		rc = pthread_create(&p->listener, &attr, listener_main, p);
		pthread_attr_destroy(&attr);
		if (rc != 0) {
			err_set(e, "token proxy: cannot start its thread: %s", strerror(rc));
			goto fail;
		}
	}
	p->started = 1;
	return 0;

fail:
	if (p->listen_fd >= 0)
		close(p->listen_fd);
	if (p->wake[0] >= 0) {
		close(p->wake[0]);
		close(p->wake[1]);
	}
	p->listen_fd = p->wake[0] = p->wake[1] = -1;
	free_fields(p);
	while (nmu > 0)
		pthread_mutex_destroy(&p->share_lock[--nmu]);
	if (lock_ok)
		pthread_mutex_destroy(&p->lock);
	return -1;
}

int tp_port(const struct tp_proxy *p)
{
	return p->port;
}

const char *tp_dummy(const struct tp_proxy *p)
{
	return p->dummy;
}

const char *tp_cred_env(const struct tp_proxy *p)
{
	return p->kind == TP_CRED_OAUTH ? "CLAUDE_CODE_OAUTH_TOKEN" : "ANTHROPIC_API_KEY";
}

const char *tp_upstream(const struct tp_proxy *p)
{
	return p->base ? p->base : "";
}

void tp_usage(struct tp_proxy *p, struct tp_usage *out)
{
	if (!p->started) {
		*out = p->usage;
		return;
	}
	pthread_mutex_lock(&p->lock);
	*out = p->usage;
	pthread_mutex_unlock(&p->lock);
}

void tp_stop(struct tp_proxy *p)
{
	int i;

	if (!p->started)
		return;
	__atomic_store_n(&p->stopping, 1, __ATOMIC_RELEASE);
	while (write(p->wake[1], "x", 1) < 0 && errno == EINTR)
		;
	pthread_join(p->listener, NULL);
	close(p->listen_fd);
	close(p->wake[0]);
	close(p->wake[1]);
	p->listen_fd = p->wake[0] = p->wake[1] = -1;
	free_fields(p);
	for (i = 0; i < 8; i++)
		pthread_mutex_destroy(&p->share_lock[i]);
	pthread_mutex_destroy(&p->lock);
	p->started = 0;
}
