/*
 * proxy_test.c: selftests for the token proxy: credentials, refusals,
 * streaming, bodies and usage (the rest is in proxy_more_test.c; the
 * rig, a fake upstream and a libcurl client, in proxy_rig.c).  Every
 * case starts its own fake and proxy, so counters start at zero.
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

#include "proxy/proxy_rig.h"
#include "selftest/selftest.h"
#include "selftest/suites.h"

/* The dummy in x-api-key becomes the real key; other credentials, proxy and
 * hop-by-hop headers are dropped; Host is the upstream's. */
static int t_apikey(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	char host[64];
	const char *h;
	int fail = 1;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?beta=true");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_header_add(&c, "%s", "Authorization: Bearer sk-ant-some-other-credential");
	cl_header_add(&c, "%s", "anthropic-version: 2023-06-01");
	cl_header_add(&c, "%s", "Proxy-Authorization: Basic c2VjcmV0");
	cl_header_add(&c, "%s", "Connection: keep-alive, X-Hop");
	cl_header_add(&c, "%s", "X-Hop: must-not-pass");
	cl_header_add(&c, "%s", "Content-Type: application/json");
	cl_header_add(&c, "%s", "X-Empty;");
	c.body = tpt_json_body;
	c.blen = strlen(tpt_json_body);
	cl_run(&c, NULL);
	snprintf(host, sizeof(host), "host: 127.0.0.1:%d\n", r.f.port);
	pthread_mutex_lock(&r.f.mu);
	h = r.f.last_headers.p ? r.f.last_headers.p : "";
	if (c.rc != CURLE_OK || c.status != 200)
		st_fail(why, n, "request failed: %s, status %ld", curl_easy_strerror(c.rc), c.status);
	else if (r.f.requests != 1)
		st_fail(why, n, "the upstream saw %d requests, want 1", r.f.requests);
	else if (!strstr(h, "x-api-key: " REAL_KEY "\n") || strstr(strstr(h, "x-api-key:") + 1, "x-api-key:"))
		st_fail(why, n, "the upstream did not get exactly one x-api-key with the real key");
	else if (strstr(h, "authorization:") || strstr(h, "proxy-") || strstr(h, "x-hop") || strstr(h, "connection:"))
		st_fail(why, n, "a credential, proxy or hop-by-hop header reached the upstream");
	else if (strstr(h, tp_dummy(&r.p)))
		st_fail(why, n, "the dummy credential reached the upstream");
	else if (!strstr(h, host))
		st_fail(why, n, "the upstream saw the wrong Host (want %.*s)", (int)strlen(host) - 1, host);
	else if (!strstr(h, "anthropic-version: 2023-06-01\n") || !strstr(h, "x-empty: \n"))
		st_fail(why, n, "end-to-end headers were not forwarded");
	else if (strcmp(r.f.last_body.p ? r.f.last_body.p : "", tpt_json_body) != 0 || strcmp(r.f.last_method, "POST") != 0 ||
		 strcmp(r.f.last_target, "/v1/messages?beta=true") != 0)
		st_fail(why, n, "method, target or body changed on the way");
	else if (!c.out.p || !strstr(c.out.p, "\"msg_fake\"") || !strstr(c.head.p, "request-id: req_fake_json"))
		st_fail(why, n, "the answer did not come back intact");
	else
		fail = log_clean(why, n);
	pthread_mutex_unlock(&r.f.mu);
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* OAuth mode: "Authorization: Bearer <dummy>" becomes the real token. */
static int t_oauth(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	const char *h;
	int fail = 1;

	if (rig_start(&r, TP_CRED_OAUTH, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?beta=true");
	cl_header_add(&c, "Authorization: Bearer %s", tp_dummy(&r.p));
	cl_header_add(&c, "%s", "Content-Type: application/json");
	c.body = tpt_json_body;
	c.blen = strlen(tpt_json_body);
	cl_run(&c, NULL);
	pthread_mutex_lock(&r.f.mu);
	h = r.f.last_headers.p ? r.f.last_headers.p : "";
	if (c.rc != CURLE_OK || c.status != 200)
		st_fail(why, n, "request failed: %s, status %ld", curl_easy_strerror(c.rc), c.status);
	else if (!strstr(h, "authorization: Bearer " REAL_TOKEN "\n"))
		st_fail(why, n, "the upstream did not get the real token as Bearer");
	else if (strstr(h, "x-api-key") || strstr(h, tp_dummy(&r.p)))
		st_fail(why, n, "x-api-key or the dummy reached the upstream");
	else if (strcmp(tp_cred_env(&r.p), "CLAUDE_CODE_OAUTH_TOKEN") != 0)
		st_fail(why, n, "tp_cred_env gave %s", tp_cred_env(&r.p));
	else
		fail = log_clean(why, n);
	pthread_mutex_unlock(&r.f.mu);
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* Without the dummy: 401, and nothing reaches the upstream. */
static int t_noauth(char *why, size_t n)
{
	static const char *const bad[] = { NULL, "x-api-key: sk-ant-api03-someone-elses-key",
		"Authorization: Bearer sk-ant-oat01-not-the-dummy", "Authorization: Basic Zm9vOmJhcg==",
		"x-api-key: ", NULL };
	struct rig r;
	int i, fail = 0;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	for (i = 0; i < 5 && !fail; i++) {
		struct cl c;
		char prefix[80];

		memset(&c, 0, sizeof(c));
		via_proxy(&c, &r, "/v1/messages");
		if (bad[i])
			cl_header_add(&c, "%s", bad[i]);
		/* Also a near miss: the dummy with its last character changed. */
		if (i == 4) {
			snprintf(prefix, sizeof(prefix), "%s", tp_dummy(&r.p));
			prefix[strlen(prefix) - 1] ^= 1;
			cl_header_add(&c, "x-api-key: %s", prefix);
		}
		c.body = tpt_json_body;
		c.blen = strlen(tpt_json_body);
		cl_run(&c, NULL);
		if (c.rc != CURLE_OK || c.status != 401)
			fail = st_fail(why, n, "case %d: want 401, got %ld (%s)", i, c.status, curl_easy_strerror(c.rc));
		else if (!c.out.p || !strstr(c.out.p, "\"authentication_error\""))
			fail = st_fail(why, n, "case %d: the 401 body is not an authentication_error", i);
		cl_free(&c);
	}
	if (!fail && fu_requests(&r.f) != 0)
		fail = st_fail(why, n, "the upstream saw %d requests", fu_requests(&r.f));
	if (!fail && r.f.conns != 0)
		fail = st_fail(why, n, "the proxy connected to the upstream");
	rig_stop(&r);
	return fail ? fail : log_clean(why, n);
}

/* Absolute-form targets and CONNECT are refused, even with the dummy. */
static int t_absolute(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	char proxy[64];
	int fail = 1;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", tp_port(&r.p));
	/* libcurl sends "GET http://evil.example/v1/messages HTTP/1.1" to a proxy. */
	memset(&c, 0, sizeof(c));
	snprintf(c.url, sizeof(c.url), "http://evil.example/v1/messages");
	c.proxy = proxy;
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_run(&c, NULL);
	if (c.rc != CURLE_OK || c.status != 400 || !c.out.p || !strstr(c.out.p, "origin-form")) {
		st_fail(why, n, "absolute-form: want 400, got %ld (%s)", c.status, curl_easy_strerror(c.rc));
		goto out;
	}
	cl_free(&c);
	/* And "CONNECT evil.example:443 HTTP/1.1". */
	memset(&c, 0, sizeof(c));
	snprintf(c.url, sizeof(c.url), "http://evil.example:443/");
	c.proxy = proxy;
	c.tunnel = 1;
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_run(&c, NULL);
	if (c.rc == CURLE_OK || c.connect_code != 405) {
		st_fail(why, n, "CONNECT: want 405, got %ld (%s)", c.connect_code, curl_easy_strerror(c.rc));
		goto out;
	}
	if (fu_requests(&r.f) != 0 || r.f.conns != 0) {
		st_fail(why, n, "the upstream saw a connection");
		goto out;
	}
	fail = log_clean(why, n);
out:
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* A streamed answer arrives in pieces: the first event long before the
 * upstream has finished. */
static int t_sse(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	int fail = 1;
	double gap;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?beta=true&pause=400&in=25&out=15&cc=5&cr=100");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_header_add(&c, "%s", "Content-Type: application/json");
	c.body = tpt_sse_body;
	c.blen = strlen(tpt_sse_body);
	cl_run(&c, NULL);
	gap = c.t_last - c.t_first;
	pthread_mutex_lock(&r.f.mu);
	if (c.rc != CURLE_OK || c.status != 200)
		st_fail(why, n, "request failed: %s, status %ld", curl_easy_strerror(c.rc), c.status);
	else if (!c.first.p || !strstr(c.first.p, "event: message_start") || strstr(c.first.p, "message_stop"))
		st_fail(why, n, "the first piece was not message_start alone");
	else if (gap < 300)
		st_fail(why, n, "the first event arrived only %.0f ms before the end: buffered", gap);
	else if (!r.f.sent.p || c.out.len != r.f.sent.len || memcmp(c.out.p, r.f.sent.p, c.out.len) != 0)
		st_fail(why, n, "the stream changed on the way (%zu bytes in, %zu out)", r.f.sent.len, c.out.len);
	else if (!strstr(c.head.p, "text/event-stream") || !strstr(c.head.p, "request-id: req_fake_sse") ||
		 !strcasestr(c.head.p, "transfer-encoding: chunked"))
		st_fail(why, n, "the SSE response headers were not relayed");
	else {
		snprintf(why, n, "%d pieces, first event %.0f ms before the last", c.pieces, gap);
		fail = 0;
	}
	pthread_mutex_unlock(&r.f.mu);
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* Chunked and Content-Length request bodies are forwarded intact. */
static int t_chunked(char *why, size_t n)
{
	struct rig r;
	struct buf body = BUF_INIT;
	int pass, fail = 0;
	size_t i;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	for (i = 0; i < 300000 && buf_addc(&body, (char)('a' + (i * 7 + i / 251) % 26)) == 0; i++)
		;
	if (body.len != 300000)
		fail = st_fail(why, n, "out of memory");
	for (pass = 0; pass < 2 && !fail; pass++) {
		struct cl c;

		memset(&c, 0, sizeof(c));
		via_proxy(&c, &r, "/echo");
		cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
		c.body = body.p;
		c.blen = body.len;
		c.chunked = pass == 0;
		cl_run(&c, NULL);
		pthread_mutex_lock(&r.f.mu);
		if (c.rc != CURLE_OK || c.status != 200)
			fail = st_fail(why, n, "%s body: %s, status %ld", pass ? "length" : "chunked",
				       curl_easy_strerror(c.rc), c.status);
		else if (r.f.last_body.len != body.len || memcmp(r.f.last_body.p, body.p, body.len) != 0)
			fail = st_fail(why, n, "%s body: the upstream got %zu bytes, not the %zu sent",
				       pass ? "length" : "chunked", r.f.last_body.len, body.len);
		else if (r.f.last_chunked != (pass == 0))
			fail = st_fail(why, n, "%s body: framing changed on the way", pass ? "length" : "chunked");
		else if (pass == 1 && !strstr(r.f.last_headers.p, "content-length: 300000\n"))
			fail = st_fail(why, n, "length body: Content-Length not forwarded");
		else if (c.out.len != body.len || memcmp(c.out.p, body.p, body.len) != 0)
			fail = st_fail(why, n, "%s body: the echo came back changed", pass ? "length" : "chunked");
		pthread_mutex_unlock(&r.f.mu);
		cl_free(&c);
	}
	buf_free(&body);
	rig_stop(&r);
	return fail;
}

/* Usage totals over two streamed answers and one JSON answer. */
static int t_usage(char *why, size_t n)
{
	static const char *const targets[] = { "/v1/messages?beta=true&in=25&out=15&cc=5&cr=100",
		"/v1/messages?beta=true&in=7&out=3&cc=0&cr=50", "/v1/messages?in=2&out=4&cc=1&cr=0",
		"/v1/messages/count_tokens?in=1000" };
	struct rig r;
	struct tp_usage u;
	int i, fail = 0;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	for (i = 0; i < 4 && !fail; i++) {
		struct cl c;

		memset(&c, 0, sizeof(c));
		via_proxy(&c, &r, targets[i]);
		cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
		c.body = i < 2 ? tpt_sse_body : tpt_json_body;
		c.blen = strlen(c.body);
		cl_run(&c, NULL);
		if (c.rc != CURLE_OK || (c.status != 200 && !(i == 3 && c.status == 404)))
			fail = st_fail(why, n, "request %d: %s, status %ld", i, curl_easy_strerror(c.rc), c.status);
		cl_free(&c);
	}
	tp_usage(&r.p, &u);
	if (!fail && (u.requests != 3 || u.input_tokens != 34 || u.output_tokens != 22 ||
		      u.cache_creation_input_tokens != 6 || u.cache_read_input_tokens != 150 || u.forwarded != 4))
		fail = st_fail(why, n,
			       "got requests %llu in %llu out %llu cache_creation %llu cache_read %llu forwarded %llu; "
			       "want 3 34 22 6 150 4",
			       (unsigned long long)u.requests, (unsigned long long)u.input_tokens,
			       (unsigned long long)u.output_tokens, (unsigned long long)u.cache_creation_input_tokens,
			       (unsigned long long)u.cache_read_input_tokens, (unsigned long long)u.forwarded);
	rig_stop(&r);
	tp_usage(&r.p, &u);
	if (!fail && u.input_tokens != 34)
		fail = st_fail(why, n, "totals not readable after tp_stop");
	return fail;
}

const struct st_case proxy_tests[] = {
	{ "apikey", t_apikey },
	{ "oauth", t_oauth },
	{ "noauth", t_noauth },
	{ "absolute", t_absolute },
	{ "malformed", t_malformed },
	{ "sse", t_sse },
	{ "chunked", t_chunked },
	{ "framing", t_framing },
	{ "pipeline", t_pipeline },
	{ "usage", t_usage },
	{ "down", t_down },
	{ "gone", t_gone },
	{ "stop", t_stop },
	{ "config", t_config },
	{ "overhead", t_overhead },
	{ NULL, NULL },
};
