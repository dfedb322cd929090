/*
 * proxy_more_test.c: selftests for the token proxy: upstream failures,
 * client hang-ups, tp_stop, framing, malformed requests, pipelining,
 * configuration errors and the added latency (registered in
 * proxy_test.c's table).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "net/netinit.h"
#include "proxy/proxy_rig.h"
#include "selftest/selftest.h"

/* Upstream down: 502 Bad Gateway. */
int t_down(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	char up[64];
	int port = 0, fd = listen_loopback(&port), fail = 1;

	if (fd < 0)
		return st_fail(why, n, "cannot find a free port");
	close(fd);              /* nothing listens there now */
	snprintf(up, sizeof(up), "http://127.0.0.1:%d", port);
	if (rig_start(&r, TP_CRED_API_KEY, up, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.body = tpt_json_body;
	c.blen = strlen(tpt_json_body);
	cl_run(&c, NULL);
	if (c.rc != CURLE_OK || c.status != 502)
		st_fail(why, n, "want 502, got %ld (%s)", c.status, curl_easy_strerror(c.rc));
	else if (!c.out.p || !strstr(c.out.p, "Bad Gateway") || !strstr(c.head.p, "502 Bad Gateway"))
		st_fail(why, n, "the 502 does not say Bad Gateway");
	else
		fail = log_clean(why, n);
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* The client hangs up mid-stream: the proxy drops the upstream request. */
int t_gone(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	double t0;
	int closed = 0, fail = 1;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?pause=4000");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.body = tpt_sse_body;
	c.blen = strlen(tpt_sse_body);
	c.abort_after_first = 1;
	cl_run(&c, NULL);       /* returns at the first piece: the client is gone */
	t0 = tpt_now_ms();
	while (tpt_now_ms() - t0 < 3500 && !closed) {
		usleep(20 * 1000);
		pthread_mutex_lock(&r.f.mu);
		closed = r.f.peer_closed;
		pthread_mutex_unlock(&r.f.mu);
	}
	if (c.pieces != 1)
		st_fail(why, n, "the client did not get the first event (%s)", curl_easy_strerror(c.rc));
	else if (!closed)
		st_fail(why, n, "the upstream connection stayed open after the client left");
	else {
		snprintf(why, n, "upstream dropped %.0f ms after the client", tpt_now_ms() - t0);
		fail = 0;
	}
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

static void *cl_thread(void *arg)
{
	cl_run(arg, NULL);
	return NULL;
}

/* tp_stop() during a stream returns promptly and cuts the stream. */
int t_stop(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	pthread_t th;
	double t0, took;
	int fail = 1, got = 0;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?pause=4000");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.body = tpt_sse_body;
	c.blen = strlen(tpt_sse_body);
	if (pthread_create(&th, NULL, cl_thread, &c) != 0) {
		cl_free(&c);
		rig_stop(&r);
		return st_fail(why, n, "cannot start a client thread");
	}
	for (t0 = tpt_now_ms(); tpt_now_ms() - t0 < 3000 && !got;) {
		usleep(10 * 1000);
		got = __atomic_load_n(&c.pieces, __ATOMIC_ACQUIRE) > 0;
	}
	t0 = tpt_now_ms();
	tp_stop(&r.p);
	r.proxy_ok = 0;
	took = tpt_now_ms() - t0;
	pthread_join(th, NULL);
	if (!got)
		st_fail(why, n, "the stream never started");
	else if (took > 2000)
		st_fail(why, n, "tp_stop took %.0f ms", took);
	else if (c.rc == CURLE_OK)
		st_fail(why, n, "the stream was not cut off");
	else if (tp_dummy(&r.p)[0] != 0)
		st_fail(why, n, "the dummy was not wiped");
	else {
		snprintf(why, n, "tp_stop took %.0f ms", took);
		fail = 0;
	}
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* Framing: HEAD keeps Content-Length without a body; a close-delimited
 * upstream body reaches the client chunked; keep-alive works. */
int t_framing(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	CURL *h = curl_easy_init();
	int fail = 1;

	if (!h)
		return st_fail(why, n, "curl_easy_init failed");
	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		curl_easy_cleanup(h);
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/close");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_run(&c, h);
	if (c.rc != CURLE_OK || c.status != 200 || !c.out.p || strcmp(c.out.p, "close-delimited body\n") != 0 ||
	    !strcasestr(c.head.p, "transfer-encoding: chunked")) {
		st_fail(why, n, "close-delimited: %s, status %ld", curl_easy_strerror(c.rc), c.status);
		goto out;
	}
	cl_free(&c);
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/echo");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.method = "HEAD";
	cl_run(&c, h);
	if (c.rc != CURLE_OK || c.status != 200 || c.out.len != 0 || !strcasestr(c.head.p, "content-length: 0")) {
		st_fail(why, n, "HEAD: %s, status %ld", curl_easy_strerror(c.rc), c.status);
		goto out;
	}
	cl_free(&c);
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/echo");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.body = "again";
	c.blen = 5;
	cl_run(&c, h);
	if (c.rc != CURLE_OK || c.status != 200 || !c.out.p || strcmp(c.out.p, "again") != 0) {
		st_fail(why, n, "keep-alive request: %s, status %ld", curl_easy_strerror(c.rc), c.status);
		goto out;
	}
	fail = 0;
out:
	cl_free(&c);
	curl_easy_cleanup(h);
	rig_stop(&r);
	return fail;
}

/* Send raw bytes to the proxy, read the answer until it closes. */
static int raw_exchange(int port, const char *req, char *out, size_t outlen)
{
	struct sockaddr_in sa;
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { 5, 0 };

	out[0] = 0;
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || send_all(fd, req, strlen(req)) != 0) {
		close(fd);
		return -1;
	}
	while (got + 1 < outlen) {
		ssize_t r = recv(fd, out + got, outlen - 1 - got, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
		out[got] = 0;
	}
	close(fd);
	return 0;
}

/* Malformed and smuggling-shaped requests get 4xx; the upstream sees none. */
int t_malformed(char *why, size_t n)
{
	static const struct {
		const char *req;
		const char *want;
	} cases[] = {
		{ "GET /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
		  "x-api-key: %s\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 " },
		{ "POST /v1/messages HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\nx-api-key: %s\r\n\r\nab",
		  "HTTP/1.1 400 " },
		{ "GET /v1/messa ges HTTP/1.1\r\nx-api-key: %s\r\n\r\n", "HTTP/1.1 400 " },
		{ "OPTIONS * HTTP/1.1\r\nx-api-key: %s\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET //evil.example/x HTTP/1.1\r\nx-api-key: %s-no\r\n\r\n", "HTTP/1.1 401 " },
		{ "TRACE /v1/messages HTTP/1.1\r\nx-api-key: %s\r\n\r\n", "HTTP/1.1 405 " },
		{ "POST /v1/messages HTTP/1.1\r\nExpect: magic\r\nContent-Length: 2\r\nx-api-key: %s\r\n\r\nab",
		  "HTTP/1.1 417 " },
		{ "GET /v1/messages HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nx-api-key: %s\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nx-api-key: %s\r\n\r\n5\r\nabcde\r\nzz\r\n",
		  "HTTP/1.1 400 " },
	};
	struct rig r;
	size_t i;
	int fail = 0;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]) && !fail; i++) {
		char req[1024], out[4096];

		snprintf(req, sizeof(req), cases[i].req, tp_dummy(&r.p));
		if (raw_exchange(tp_port(&r.p), req, out, sizeof(out)) != 0)
			fail = st_fail(why, n, "case %zu: cannot talk to the proxy", i);
		else if (strncmp(out, cases[i].want, strlen(cases[i].want)) != 0)
			fail = st_fail(why, n, "case %zu: want \"%s\", got \"%.40s\"", i, cases[i].want, out);
	}
	if (!fail && fu_requests(&r.f) != 0)
		fail = st_fail(why, n, "the upstream saw %d requests", fu_requests(&r.f));
	rig_stop(&r);
	return fail;
}

/* Two pipelined requests in one packet get two answers, in order. */
int t_pipeline(char *why, size_t n)
{
	struct rig r;
	char req[1024], out[4096];
	const char *a, *b;
	int fail = 1;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	snprintf(req, sizeof(req),
		 "POST /echo HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nContent-Length: 9\r\n\r\nfirst-one"
		 "POST /echo HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nTransfer-Encoding: chunked\r\n"
		 "Connection: close\r\n\r\n3\r\nsec\r\n7\r\nond-one\r\n0\r\n\r\n",
		 tp_dummy(&r.p), tp_dummy(&r.p));
	if (raw_exchange(tp_port(&r.p), req, out, sizeof(out)) != 0)
		st_fail(why, n, "cannot talk to the proxy");
	else if (!(a = strstr(out, "HTTP/1.1 200 ")) || !(b = strstr(a + 1, "HTTP/1.1 200 ")))
		st_fail(why, n, "want two 200 answers, got \"%.60s\"", out);
	else if (!strstr(a, "\r\n\r\nfirst-one") || !strstr(b, "\r\n\r\nsecond-one") || strstr(a, "second-one") < b)
		st_fail(why, n, "the answers are out of order or changed");
	else if (fu_requests(&r.f) != 2)
		st_fail(why, n, "the upstream saw %d requests, want 2", fu_requests(&r.f));
	else
		fail = 0;
	rig_stop(&r);
	return fail;
}

/* Configuration errors are actionable and never show the credential. */
int t_config(char *why, size_t n)
{
	struct tp_proxy p;
	struct tp_config cfg;
	struct err e = ERR_INIT;
	int fail = 1;

	if (net_global_init(why, n) != 0)
		return 1;
	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = TP_CRED_API_KEY;
	cfg.credential = "sk-ant-api03-bad key-with-a-space-0123456789";
	cfg.upstream = "https://api.example.invalid";
	if (tp_start(&p, &cfg, &e) == 0) {
		tp_stop(&p);
		st_fail(why, n, "a credential with a space was accepted");
		goto out;
	}
	if (strstr(e.msg, "bad key") || strstr(e.msg, "0123456789")) {
		st_fail(why, n, "the error shows the credential");
		goto out;
	}
	cfg.credential = REAL_KEY;
	cfg.upstream = "http://evil.example";
	if (tp_start(&p, &cfg, &e) == 0) {
		tp_stop(&p);
		st_fail(why, n, "plain http to a non-loopback host was accepted");
		goto out;
	}
	cfg.upstream = "https://user:pw@api.example.invalid";
	if (tp_start(&p, &cfg, &e) == 0) {
		tp_stop(&p);
		st_fail(why, n, "an upstream with user info was accepted");
		goto out;
	}
	/* The caller's CCR_ANTHROPIC_UPSTREAM is used when the config names none. */
	cfg.upstream = NULL;
	cfg.upstream_env = "https://gateway.example.invalid:8443/anthropic/";
	if (tp_start(&p, &cfg, &e) != 0) {
		st_fail(why, n, "tp_start with %s: %s", TP_UPSTREAM_ENV, e.msg);
		goto out;
	}
	if (strcmp(tp_upstream(&p), "https://gateway.example.invalid:8443/anthropic") != 0 ||
	    strncmp(tp_dummy(&p), "sk-ant-ccr-proxy-", 17) != 0 || strlen(tp_dummy(&p)) != 17 + 64 ||
	    strcmp(tp_cred_env(&p), "ANTHROPIC_API_KEY") != 0 || tp_port(&p) <= 0) {
		tp_stop(&p);
		st_fail(why, n, "upstream %s, or dummy/env/port wrong", tp_upstream(&p));
		goto out;
	}
	tp_stop(&p);
	tp_stop(&p);            /* twice is harmless */
	cfg.upstream_env = "";
	if (tp_start(&p, &cfg, &e) != 0 || strcmp(tp_upstream(&p), TP_DEFAULT_UPSTREAM) != 0) {
		st_fail(why, n, "default upstream: %s", e.msg[0] ? e.msg : tp_upstream(&p));
		tp_stop(&p);
		goto out;
	}
	tp_stop(&p);
	fail = 0;
out:
	return fail;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Time to first byte, direct to the fake and through the proxy, over
 * keep-alive connections (reported; fails only if the proxy is slow). */
int t_overhead(char *why, size_t n)
{
	enum { N = 300 };
	struct rig r;
	double *ttfb = calloc(2 * N, sizeof(double));
	CURL *h = curl_easy_init();
	int pass, i, fail = 0, conns_before;

	if (!ttfb || !h) {
		free(ttfb);
		if (h)
			curl_easy_cleanup(h);
		return st_fail(why, n, "out of memory");
	}
	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		free(ttfb);
		curl_easy_cleanup(h);
		rig_stop(&r);
		return 1;
	}
	conns_before = 0;
	for (pass = 0; pass < 2 && !fail; pass++) {
		pthread_mutex_lock(&r.f.mu);
		conns_before = r.f.conns;
		pthread_mutex_unlock(&r.f.mu);
		for (i = 0; i < N && !fail; i++) {
			struct cl c;
			curl_off_t t = 0;

			memset(&c, 0, sizeof(c));
			if (pass == 0)
				snprintf(c.url, sizeof(c.url), "http://127.0.0.1:%d/v1/messages?in=1&out=1", r.f.port);
			else
				via_proxy(&c, &r, "/v1/messages?in=1&out=1");
			cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
			cl_header_add(&c, "%s", "Content-Type: application/json");
			c.body = tpt_json_body;
			c.blen = strlen(tpt_json_body);
			cl_run(&c, h);
			if (c.rc != CURLE_OK || c.status != 200)
				fail = st_fail(why, n, "request %d failed: %s, %ld", i, curl_easy_strerror(c.rc), c.status);
			curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME_T, &t);
			ttfb[pass * N + i] = (double)t;
			cl_free(&c);
		}
	}
	if (!fail) {
		double dm, dp, pm, pp;
		int upstream_conns;

		pthread_mutex_lock(&r.f.mu);
		upstream_conns = r.f.conns - conns_before;
		pthread_mutex_unlock(&r.f.mu);
		qsort(ttfb, N, sizeof(double), cmp_double);
		qsort(ttfb + N, N, sizeof(double), cmp_double);
		dm = ttfb[N / 2], dp = ttfb[N * 9 / 10];
		pm = ttfb[N + N / 2], pp = ttfb[N + N * 9 / 10];
		if (upstream_conns > 2)
			fail = st_fail(why, n, "%d upstream connections for %d keep-alive requests", upstream_conns, N);
		else if (pm > dm + 50000)
			fail = st_fail(why, n, "proxy median TTFB %.0f us vs %.0f us direct", pm, dm);
		else
			snprintf(why, n, "TTFB median %.0f us direct, %.0f us proxied (+%.0f); p90 %.0f / %.0f us; n=%d",
				 dm, pm, pm - dm, dp, pp, N);
	}
	free(ttfb);
	curl_easy_cleanup(h);
	rig_stop(&r);
	return fail;
}

