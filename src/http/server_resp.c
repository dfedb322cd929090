/*
 * server_resp.c: responses of the HTTP/1.1 server: the head (status line,
 * Date, handler headers, framing, Connection), complete responses, JSON
 * errors and chunked streams.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/server_int.h"
#include "util/jsjson.h"

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

/* The Date of a response now: formatted once a second per thread. */
static void now_date(char dst[30])
{
	static __thread int64_t last = -1;
	static __thread char cached[30];
	int64_t t = (int64_t)time(NULL);

	if (t != last) {
		hs_http_date(cached, t);
		last = t;
	}
	memcpy(dst, cached, 30);
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

/* ---- responses -------------------------------------------------------- */

int hs_conn_closing(const struct hs_conn *c)
{
	return c->resp.close || !c->req.keep_alive || c->parser.upgrade || hs_draining(c->srv) ||
	       (c->srv->cfg.stream_body && !c->req.complete);
}

/* "Name: value\r\n" without printf (every response has a few). */
static int add_field(struct buf *h, const char *name, const char *value)
{
	return buf_adds(h, name) || buf_adds(h, value) || buf_add(h, "\r\n", 2) ? -1 : 0;
}

static int add_number(struct buf *h, const char *name, uint64_t v)
{
	char d[24], *p = d + sizeof(d);

	*--p = 0;
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	return add_field(h, name, p);
}

/* The status line and headers of a response into h.  content_length < 0
 * means none (a stream, or a status without a body). */
static int build_head(struct hs_conn *c, struct buf *h, int status, const char *ctype,
		      int64_t content_length, int chunked)
{
	const char *reason = http_status_str((enum http_status)status);
	char line[16], date[30];

	if (!reason || reason[0] == '<')
		reason = "Unknown";
	if (c->resp.reason[0])
		reason = c->resp.reason;
	memcpy(line, "HTTP/1.1 000 ", 14);     /* status_ok: 3 digits */
	line[9] = (char)('0' + status / 100);
	line[10] = (char)('0' + status / 10 % 10);
	line[11] = (char)('0' + status % 10);
	if (add_field(h, line, reason) != 0)
		return -1;
	now_date(date);
	if (!c->resp.has_date && add_field(h, "Date: ", date) != 0)
		return -1;
	if (ctype && add_field(h, "Content-Type: ", ctype) != 0)
		return -1;
	if (c->resp.extra.len && buf_add(h, c->resp.extra.p, c->resp.extra.len) != 0)
		return -1;
	if (content_length >= 0 && add_number(h, "Content-Length: ", (uint64_t)content_length) != 0)
		return -1;
	if (chunked && buf_adds(h, "Transfer-Encoding: chunked\r\n") != 0)
		return -1;
	if (hs_conn_closing(c)) {
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
	rc = hs_conn_writev(c, iov, 2);
	if (rc == 0 && !no_body && !is_head(c))
		r->body_bytes = len;
	buf_free(&h);
	return rc;
}

int hs_error_body(const struct hs_server *s, int status, const char *msg, struct buf *out, const char **ctype)
{
	if (s->cfg.error_body && s->cfg.error_body(status, msg, out, ctype, s->cfg.app) == 0)
		return 0;
	buf_reset(out);
	*ctype = HS_JSON;
	if (buf_adds(out, "{\"error\":") != 0 || jsj_string(out, msg, strlen(msg)) != 0 || buf_addc(out, '}') != 0)
		return -1;
	return 0;
}

int hs_send_error(struct hs_conn *c, int status, const char *msg)
{
	struct buf b = BUF_INIT;
	const char *ctype = HS_JSON;
	int rc;

	if (hs_error_body(c->srv, status, msg ? msg : "", &b, &ctype) != 0) {
		buf_free(&b);
		return hs_send(&c->resp, status, HS_JSON, "{\"error\":\"out of memory\"}", 25);
	}
	rc = hs_send(&c->resp, status, ctype, b.p, b.len);
	buf_free(&b);
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
	static const char *const reserved[] = { "content-length", "transfer-encoding", "connection" };
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
	if (strcasecmp(name, "date") == 0)
		r->has_date = 1;
	return 0;
}

void hs_resp_reason(struct hs_resp *r, const char *reason)
{
	size_t i, n = reason ? strlen(reason) : 0;

	if (r->started || n == 0 || n >= sizeof(r->reason))
		return;
	for (i = 0; i < n; i++)
		if ((unsigned char)reason[i] < 0x20 || (unsigned char)reason[i] >= 0x7f)
			return;
	memcpy(r->reason, reason, n + 1);
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
	return hs_stream_begin_length(r, status, headers, -1);
}

/* The framing of a streamed response: chunked, a Content-Length, or
 * (HTTP/1.0, length unknown) the end of the connection. */
static int64_t stream_framing(struct hs_resp *r, int status, int64_t length)
{
	struct hs_conn *c = r->c;

	r->headless = is_head(c);
	r->chunked = 0;
	if (status < 200 || status == 204 || status == 304) {
		r->headless = 1;
		return -1;
	}
	if (length >= 0)
		return length;
	r->chunked = c->parser.http_minor >= 1;
	if (!r->chunked)
		r->close = 1;   /* HTTP/1.0: the body ends when the connection does */
	return -1;
}

int hs_stream_begin_length(struct hs_resp *r, int status, const char *const *headers, int64_t length)
{
	struct hs_conn *c = r->c;
	struct buf h = BUF_INIT;
	int64_t cl;
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
	cl = stream_framing(r, status, length);
	if (build_head(c, &h, status, NULL, cl, r->chunked) != 0) {
		buf_free(&h);
		r->close = 1;
		c->gone = 1;
		return -1;
	}
	rc = hs_conn_write(c, h.p, h.len);
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
		if (hs_conn_write(c, data, len) != 0)
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
	if (hs_conn_writev(c, iov, 3) != 0)
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
		return hs_conn_write(c, "0\r\n\r\n", 5);
	return 0;
}

/* Read what the client sent meanwhile (a pipelined request) into the
 * free part of rbuf.  Returns -1 when the client is gone. */
