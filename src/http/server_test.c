/*
 * server_test.c: selftests of the HTTP server (http_tests).
 *
 * Each case that needs a server starts one in-process on 127.0.0.1 port 0
 * with a small test handler, talks to it over a loopback socket, and shuts
 * it down again: the request accessors, bodies (Content-Length and
 * chunked), pipelining, the stream framing, disconnect detection, the
 * drain, and the limits with small settings.  Nothing outside the binary
 * is needed but the loopback interface.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http/server.h"
#include "selftest/selftest.h"
#include "util/buf.h"

/* ---- what the handlers saw (cases run one at a time) -------------------- */

static int wait_result = -1;     /* atomic: what /wait's hs_stream_wait_closed returned */
static int drain_calls;          /* atomic */

/* the parked stream of /park (server.h, hs_stream_park) */
static struct hs_park *park_handle;   /* atomic */
static int park_runs, park_why = -1;  /* atomic */

static int park_pump(void *ctx, struct hs_resp *r, int flags)
{
	int n = __atomic_add_fetch(&park_runs, 1, __ATOMIC_ACQ_REL), keep = ctx != NULL;
	char b[16];

	if (flags & HS_PUMP_DRAINING) {
		(void)hs_stream_write(r, "bye", 3);
		return HS_PUMP_END;
	}
	if (!keep && n == 2 && !(flags & HS_PUMP_ON_WORKER))
		return HS_PUMP_WORKER;         /* the run after the first wake wants a worker */
	if (keep && n > 1)
		return HS_PUMP_CONTINUE;
	snprintf(b, sizeof(b), "p%d%s", n, (flags & HS_PUMP_ON_WORKER) ? "w" : "");
	if (hs_stream_write(r, b, strlen(b)) != 0)
		return HS_PUMP_END;
	return !keep && n >= 4 ? HS_PUMP_END : HS_PUMP_CONTINUE;
}

static void park_done(void *ctx, int why)
{
	(void)ctx;
	if (__atomic_exchange_n(&park_why, why, __ATOMIC_ACQ_REL) != -1)
		__atomic_store_n(&park_why, 99, __ATOMIC_RELEASE);     /* called twice */
}

static void msleep(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int test_handler(struct hs_req *req, struct hs_resp *resp, void *app)
{
	const char *path = hs_req_path(req);

	(void)app;
	if (strcmp(path, "/none") == 0)
		return 0;
	if (strcmp(path, "/fail") == 0)
		return -1;
	if (strcmp(path, "/stream") == 0) {
		static const char *const hdrs[] = { "Content-Type", "text/event-stream", "X-A", "1", NULL };

		if (hs_stream_begin(resp, 200, hdrs) != 0 || hs_stream_write(resp, "hello", 5) != 0 ||
		    hs_stream_write(resp, "", 0) != 0 || hs_stream_write(resp, "0123456789abcdefX", 17) != 0)
			return -1;
		return hs_stream_end(resp);
	}
	if (strcmp(path, "/park") == 0) {
		static const struct hs_park_ops ops = { park_pump, park_done };
		struct hs_park *p;

		if (hs_stream_begin(resp, 200, NULL) != 0)
			return -1;
		p = hs_stream_park(resp, &ops, hs_req_query(req, "keep") ? (void *)&ops : NULL, 0);
		__atomic_store_n(&park_handle, p, __ATOMIC_RELEASE);
		return p ? 0 : -1;
	}
	if (strcmp(path, "/wait") == 0) {
		int w;

		if (hs_stream_begin(resp, 200, NULL) != 0 || hs_stream_write(resp, "start", 5) != 0)
			return -1;
		w = hs_stream_wait_closed(resp, 5000);
		__atomic_store_n(&wait_result, w, __ATOMIC_RELEASE);
		if (w == HS_WAIT_DRAINING && hs_stream_write(resp, "bye", 3) != 0)
			return -1;
		return 0;      /* the server writes the terminating chunk */
	}
	if (strncmp(path, "/echo", 5) == 0) {
		struct buf b = BUF_INIT;
		const char *a = hs_req_query(req, "a"), *bq = hs_req_query(req, "b");
		const char *x = hs_req_header(req, "X-TEST");
		size_t blen;
		const char *body = hs_req_body(req, &blen);
		int rc;

		if (hs_resp_header(resp, "Bad Name", "v") == 0 || hs_resp_header(resp, "X-Ok", "a\r\nb") == 0 ||
		    hs_resp_header(resp, "content-length", "1") == 0 || hs_resp_header(resp, "X-Ok", "yes") != 0)
			return -1;
		if (buf_printf(&b, "%s|%s|%s|%s|%s|%s|%s|%zu|", hs_req_method(req), path, hs_req_raw_path(req),
			       hs_req_query_string(req), a ? a : "(null)", bq ? bq : "(null)", x ? x : "(null)",
			       hs_req_header_count(req)) != 0 ||
		    buf_add(&b, body, blen) != 0) {
			buf_free(&b);
			return -1;
		}
		rc = hs_send(resp, 200, "text/plain", b.p, b.len);
		buf_free(&b);
		return rc;
	}
	return hs_send_json_error(resp, 404, "no \"such\" route");
}

static void test_drain_hook(void *app)
{
	(void)app;
	__atomic_add_fetch(&drain_calls, 1, __ATOMIC_ACQ_REL);
}

/* ---- a server and a client --------------------------------------------- */

static struct hs_server *start(struct hs_config *cfg, char *why, size_t n)
{
	struct err e = ERR_INIT;
	struct hs_server *s;

	cfg->handler = test_handler;
	cfg->on_drain = test_drain_hook;
	s = hs_new(cfg, &e);
	if (!s) {
		st_fail(why, n, "hs_new: %s", e.msg);
		return NULL;
	}
	if (hs_listen(s, "127.0.0.1", 0, &e) != 0 || hs_start(s, &e) != 0) {
		st_fail(why, n, "%s", e.msg);
		hs_free(s);
		return NULL;
	}
	return s;
}

static struct hs_server *start_default(char *why, size_t n)
{
	struct hs_config cfg;

	hs_config_defaults(&cfg);
	return start(&cfg, why, n);
}

static int stop(struct hs_server *s)
{
	int rc = hs_shutdown(s, 2000);

	if (rc < 2)
		hs_free(s);
	return rc;
}

static int dial(struct hs_server *s)
{
	struct sockaddr_in a;
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)hs_port(s));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until EOF (or until `until` appears, when not NULL). */
static int read_until(int fd, struct buf *out, const char *until)
{
	char tmp[4096];

	for (;;) {
		ssize_t n;

		if (until && out->p && strstr(out->p, until))
			return 0;
		n = recv(fd, tmp, sizeof(tmp), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return 0;
		if (n < 0)
			return errno == ECONNRESET ? 0 : -1;
		if (buf_add(out, tmp, (size_t)n) != 0)
			return -1;
	}
}

/* One exchange on a fresh connection: send req, read everything. */
static int roundtrip(struct hs_server *s, const char *req, struct buf *out)
{
	int fd = dial(s), rc;

	if (fd < 0)
		return -1;
	rc = send_all(fd, req, strlen(req));
	if (rc == 0)
		rc = read_until(fd, out, NULL);
	close(fd);
	return rc;
}

static int expect_status(struct hs_server *s, const char *req, const char *status_line, const char *body_has,
			 char *why, size_t n)
{
	struct buf out = BUF_INIT;
	int rc = 0;

	if (roundtrip(s, req, &out) != 0 || !out.p)
		rc = st_fail(why, n, "no answer to %.40s", req);
	else if (strncmp(out.p, status_line, strlen(status_line)) != 0)
		rc = st_fail(why, n, "%.40s: got %.60s", req, out.p);
	else if (body_has && !strstr(out.p, body_has))
		rc = st_fail(why, n, "%.40s: body lacks %s: %.200s", req, body_has, out.p);
	buf_free(&out);
	return rc;
}

/* ---- cases ------------------------------------------------------------- */

static int t_pct(char *why, size_t n)
{
	static const struct {
		const char *in;
		int plus;
		const char *out;
	} v[] = {
		{ "a%20b+c", 0, "a b+c" }, { "a%20b+c", 1, "a b c" }, { "%41%4a%4A", 0, "AJJ" },
		{ "%zz%4", 0, "%zz%4" },   { "100%", 1, "100%" },     { "%E2%82%AC", 0, "\xE2\x82\xAC" },
		{ "", 0, "" },
	};
	char out[64];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t len = hs_pct_decode(out, v[i].in, strlen(v[i].in), v[i].plus);

		if (strcmp(out, v[i].out) != 0 || len != strlen(v[i].out))
			return st_fail(why, n, "'%s' -> '%s', want '%s'", v[i].in, out, v[i].out);
	}
	if (hs_pct_decode(out, "a%00b", 5, 0) != 3 || out[1] != 0)
		return st_fail(why, n, "%%00 not decoded to NUL");
	return 0;
}

static int t_date(char *why, size_t n)
{
	char d[30];

	hs_http_date(d, 784111777);
	if (strcmp(d, "Sun, 06 Nov 1994 08:49:37 GMT") != 0)
		return st_fail(why, n, "got %s", d);
	hs_http_date(d, 0);
	if (strcmp(d, "Thu, 01 Jan 1970 00:00:00 GMT") != 0)
		return st_fail(why, n, "got %s", d);
	return 0;
}

static int t_request(char *why, size_t n)
{
	struct hs_server *s = start_default(why, n);
	int rc;

	if (!s)
		return 1;
	rc = expect_status(s,
			   "GET /echo%20x/?a=1%262+3&b&a=2 HTTP/1.1\r\nHost: h\r\nX-Test:   v 1  \r\n"
			   "Connection: close\r\n\r\n",
			   "HTTP/1.1 200 OK\r\n", "\r\n\r\nGET|/echo x/|/echo%20x/|a=1%262+3&b&a=2|1&2 3||v 1|3|",
			   why, n);
	if (!rc)
		rc = expect_status(s, "GET /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\n",
				   "X-Ok: yes\r\n", why, n);
	if (!rc)
		rc = expect_status(s, "GET http://example.com/echo/abs?a=z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
				   "HTTP/1.1 200 OK\r\n", "|/echo/abs|/echo/abs|a=z|z|", why, n);
	if (!rc) {      /* HEAD: the headers of the GET answer, no body */
		struct buf out = BUF_INIT;

		if (roundtrip(s, "HEAD /echo HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", &out) != 0 || !out.p ||
		    !strstr(out.p, "Content-Length: 41\r\n") || out.len < 4 ||
		    strcmp(out.p + out.len - 4, "\r\n\r\n") != 0)
			rc = st_fail(why, n, "HEAD answer: %.300s", out.p ? out.p : "(none)");
		buf_free(&out);
	}
	if (!rc)
		rc = expect_status(s, "GET /nope HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
				   "HTTP/1.1 404 Not Found\r\n",
				   "Content-Type: application/json; charset=utf-8\r\n", why, n);
	if (!rc)
		rc = expect_status(s, "GET /nope HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
				   "HTTP/1.1 404", "\r\n\r\n{\"error\":\"no \\\"such\\\" route\"}", why, n);
	stop(s);
	return rc;
}

static int t_body(char *why, size_t n)
{
	struct hs_server *s = start_default(why, n);
	int rc;

	if (!s)
		return 1;
	rc = expect_status(s,
			   "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
			   "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: 1\r\n\r\n",
			   "HTTP/1.1 200 OK\r\n", "|hello world", why, n);
	if (!rc)
		rc = expect_status(s, "PUT /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
				   "HTTP/1.1 200 OK\r\n", "PUT|/echo|/echo||(null)|(null)|(null)|3|abc", why, n);
	stop(s);
	return rc;
}

static int t_pipeline(char *why, size_t n)
{
	struct hs_server *s = start_default(why, n);
	struct buf out = BUF_INIT;
	const char *first, *second;
	int rc = 0;

	if (!s)
		return 1;
	if (roundtrip(s,
		      "GET /echo/1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /echo/2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n"
		      "hiGET /echo/3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		      &out) != 0 || !out.p)
		rc = st_fail(why, n, "no answer");
	else if (!(first = strstr(out.p, "GET|/echo/1|")) || !(second = strstr(out.p, "POST|/echo/2|")) ||
		 second < first || !strstr(second, "|hiHTTP/1.1 200 OK") || !strstr(second, "GET|/echo/3|"))
		rc = st_fail(why, n, "answers missing or out of order: %.300s", out.p);
	buf_free(&out);
	stop(s);
	return rc;
}

static int t_stream(char *why, size_t n)
{
	struct hs_server *s = start_default(why, n);
	int rc;

	if (!s)
		return 1;
	rc = expect_status(s, "GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK\r\n",
			   "Content-Type: text/event-stream\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n"
			   "Connection: close\r\n\r\n5\r\nhello\r\n11\r\n0123456789abcdefX\r\n0\r\n\r\n",
			   why, n);
	if (!rc)      /* HTTP/1.0: no chunking, the end is the close */
		rc = expect_status(s, "GET /stream HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\n",
				   "Connection: close\r\n\r\nhello0123456789abcdefX", why, n);
	stop(s);
	return rc;
}

static int t_nosend(char *why, size_t n)
{
	struct hs_server *s = start_default(why, n);
	int rc;

	if (!s)
		return 1;
	rc = expect_status(s, "GET /none HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 500", "no response", why, n);
	if (!rc)
		rc = expect_status(s, "GET /fail HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 500", "internal error", why, n);
	stop(s);
	return rc;
}

/* Wait until wait_result is set (the handler's wait returned). */
static int await_result(unsigned ms)
{
	unsigned waited = 0;
	int w;

	while ((w = __atomic_load_n(&wait_result, __ATOMIC_ACQUIRE)) < 0 && waited < ms) {
		msleep(5);
		waited += 5;
	}
	return w;
}

static int t_gone(char *why, size_t n)
{
	struct hs_server *s = start_default(why, n);
	struct buf out = BUF_INIT;
	struct timespec t0, t1;
	int fd, rc = 0, w;
	double ms;

	if (!s)
		return 1;
	__atomic_store_n(&wait_result, -1, __ATOMIC_RELEASE);
	fd = dial(s);
	if (fd < 0 || send_all(fd, "GET /wait HTTP/1.1\r\nHost: h\r\n\r\n", 32) != 0 ||
	    read_until(fd, &out, "start\r\n") != 0) {
		rc = st_fail(why, n, "no stream start");
	} else {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		close(fd);
		fd = -1;
		w = await_result(3000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (w != HS_WAIT_GONE)
			rc = st_fail(why, n, "hs_stream_wait_closed returned %d, want GONE", w);
		else if (ms > 500)
			rc = st_fail(why, n, "disconnect noticed after %.0f ms", ms);
		else
			snprintf(why, n, "noticed in %.1f ms", ms);
	}
	if (fd >= 0)
		close(fd);
	buf_free(&out);
	stop(s);
	return rc;
}

static int t_drain(char *why, size_t n)
{
	struct hs_server *s = start_default(why, n);
	struct buf out = BUF_INIT, idle_out = BUF_INIT;
	int fd, idle, rc = 0, sd;

	if (!s)
		return 1;
	__atomic_store_n(&wait_result, -1, __ATOMIC_RELEASE);
	__atomic_store_n(&drain_calls, 0, __ATOMIC_RELEASE);
	fd = dial(s);
	idle = dial(s);
	if (fd < 0 || idle < 0 || send_all(fd, "GET /wait HTTP/1.1\r\nHost: h\r\n\r\n", 32) != 0 ||
	    read_until(fd, &out, "start\r\n") != 0 ||
	    send_all(idle, "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n", 32) != 0 ||
	    read_until(idle, &idle_out, "GET|") != 0) {
		rc = st_fail(why, n, "setup failed");
		if (fd >= 0)
			close(fd);
		if (idle >= 0)
			close(idle);
		buf_free(&out);
		buf_free(&idle_out);
		stop(s);
		return rc;
	}
	sd = hs_shutdown(s, 3000);
	if (read_until(fd, &out, NULL) != 0 || read_until(idle, &idle_out, NULL) != 0)
		rc = st_fail(why, n, "reading after the drain failed");
	else if (sd != 0)
		rc = st_fail(why, n, "hs_shutdown returned %d", sd);
	else if (__atomic_load_n(&drain_calls, __ATOMIC_ACQUIRE) != 1)
		rc = st_fail(why, n, "on_drain called %d times", drain_calls);
	else if (__atomic_load_n(&wait_result, __ATOMIC_ACQUIRE) != HS_WAIT_DRAINING)
		rc = st_fail(why, n, "the stream's wait returned %d, want DRAINING", wait_result);
	else if (!strstr(out.p, "start\r\n3\r\nbye\r\n0\r\n\r\n"))
		rc = st_fail(why, n, "stream did not end with the last event: %.200s", out.p);
	else if (hs_connections(s) != 0)
		rc = st_fail(why, n, "%u connections left", hs_connections(s));
	else if ((sd = dial(s)) >= 0) {
		close(sd);
		rc = st_fail(why, n, "still accepting after the drain");
	}
	close(fd);
	close(idle);
	buf_free(&out);
	buf_free(&idle_out);
	hs_free(s);
	return rc;
}

static int t_limits(char *why, size_t n)
{
	struct hs_config cfg;
	struct hs_server *s;
	char big[600];
	char req[1024];
	int rc;

	hs_config_defaults(&cfg);
	cfg.max_body = 10;
	cfg.max_url = 100;
	cfg.max_header_bytes = 300;
	cfg.max_headers = 4;
	s = start(&cfg, why, n);
	if (!s)
		return 1;
	rc = expect_status(s, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n0123456789a",
			   "HTTP/1.1 413", "{\"error\":\"request entity too large\"}", why, n);
	if (!rc)
		rc = expect_status(s, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
				   "HTTP/1.1 200", "|0123456789", why, n);
	if (!rc)
		rc = expect_status(s, "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n",
				   "HTTP/1.1 413", NULL, why, n);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	snprintf(req, sizeof(req), "GET /%.150s HTTP/1.1\r\nHost: h\r\n\r\n", big);
	if (!rc)
		rc = expect_status(s, req, "HTTP/1.1 414", "too long", why, n);
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: h\r\nX: %.400s\r\n\r\n", big);
	if (!rc)
		rc = expect_status(s, req, "HTTP/1.1 431", "too large", why, n);
	if (!rc)
		rc = expect_status(s, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
				   "HTTP/1.1 431", "too many", why, n);
	if (!rc)
		rc = expect_status(s, "GET / HTTP/3.0\r\nHost: h\r\n\r\n", "HTTP/1.1 505", "version", why, n);
	stop(s);
	return rc;
}

static int t_timeout(char *why, size_t n)
{
	struct hs_config cfg;
	struct hs_server *s;
	int rc;

	hs_config_defaults(&cfg);
	cfg.header_timeout_ms = 150;
	cfg.body_timeout_ms = 150;
	s = start(&cfg, why, n);
	if (!s)
		return 1;
	rc = expect_status(s, "GET /echo HTTP/1.1\r\nHost: h\r\nX-Half: ", "HTTP/1.1 408", "request timeout", why, n);
	if (!rc)
		rc = expect_status(s, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab", "HTTP/1.1 408",
				   "request timeout", why, n);
	stop(s);
	return rc;
}

static int t_conncap(char *why, size_t n)
{
	struct hs_config cfg;
	struct hs_server *s;
	int held, rc;

	hs_config_defaults(&cfg);
	cfg.max_connections = 1;
	s = start(&cfg, why, n);
	if (!s)
		return 1;
	held = dial(s);
	if (held < 0) {
		stop(s);
		return st_fail(why, n, "cannot connect");
	}
	msleep(50);
	rc = expect_status(s, "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 503", "connection limit", why, n);
	close(held);
	stop(s);
	return rc;
}

/* Wait until park_why is set (the stream's done ran). */
static int await_why(unsigned ms)
{
	unsigned waited = 0;
	int w;

	while ((w = __atomic_load_n(&park_why, __ATOMIC_ACQUIRE)) < 0 && waited < ms) {
		msleep(5);
		waited += 5;
	}
	return w;
}

/* Open /park (with ?keep: a stream that never ends by itself) and read
 * its first pump's output; the socket, or -1. */
static int park_open(struct hs_server *s, const char *target, struct buf *out)
{
	char req[128];
	int fd = dial(s);

	__atomic_store_n(&park_runs, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&park_why, -1, __ATOMIC_RELEASE);
	__atomic_store_n(&park_handle, NULL, __ATOMIC_RELEASE);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", target);
	if (fd >= 0 && (send_all(fd, req, strlen(req)) != 0 || read_until(fd, out, "p1\r\n") != 0)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* A parked stream: woken from another thread, a pump on a worker, the
 * end (done once, ENDED), the client leaving (GONE), the drain (DRAINED). */
static int t_park(char *why, size_t n)
{
	struct hs_server *s = start_default(why, n);
	struct buf out = BUF_INIT;
	int fd, rc = 0, w;

	if (!s)
		return 1;
	fd = park_open(s, "/park", &out);
	if (fd < 0)
		rc = st_fail(why, n, "no first pump: %.100s", out.p ? out.p : "");
	if (!rc) {
		hs_stream_wake(__atomic_load_n(&park_handle, __ATOMIC_ACQUIRE));
		if (read_until(fd, &out, "0\r\n\r\n") != 0 || !strstr(out.p, "2\r\np1\r\n3\r\np3w\r\n2\r\np4\r\n0\r\n\r\n"))
			rc = st_fail(why, n, "woken stream sent %.200s", out.p);
		else if ((w = await_why(3000)) != HS_PARK_ENDED)
			rc = st_fail(why, n, "done got %d, want ENDED once", w);
	}
	if (fd >= 0)
		close(fd);
	buf_reset(&out);
	if (!rc && (fd = park_open(s, "/park?keep", &out)) >= 0) {
		close(fd);
		if ((w = await_why(3000)) != HS_PARK_GONE)
			rc = st_fail(why, n, "done got %d after the client left, want GONE", w);
	}
	buf_reset(&out);
	if (!rc && (fd = park_open(s, "/park?keep", &out)) >= 0) {
		w = hs_shutdown(s, 3000);
		if (read_until(fd, &out, NULL) != 0 || !strstr(out.p, "3\r\nbye\r\n0\r\n\r\n") || w != 0)
			rc = st_fail(why, n, "drain: shutdown %d, stream sent %.200s", w, out.p);
		else if ((w = await_why(3000)) != HS_PARK_DRAINED)
			rc = st_fail(why, n, "done got %d in the drain, want DRAINED", w);
		close(fd);
		hs_free(s);
		s = NULL;
	}
	buf_free(&out);
	if (s)
		stop(s);
	return rc;
}

const struct st_case http_tests[] = {
	{ "pct_decode", t_pct },
	{ "date", t_date },
	{ "request", t_request },
	{ "body", t_body },
	{ "pipeline", t_pipeline },
	{ "stream", t_stream },
	{ "no_response", t_nosend },
	{ "client_gone", t_gone },
	{ "drain", t_drain },
	{ "limits", t_limits },
	{ "timeout", t_timeout },
	{ "conn_cap", t_conncap },
	{ "park", t_park },
	{ NULL, NULL },
};
