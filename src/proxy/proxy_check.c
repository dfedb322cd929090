/*
 * proxy_check.c: what the token proxy refuses before anything reaches the
 * upstream (see proxy.h for the list), and its Anthropic-style error
 * answers: {"type":"error","error":{"type":...,"message":...}}, as the CLI
 * expects them from the API.  The server core answers malformed HTTP
 * itself, in the same format (tp_error_body in proxy.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "http_parser.h"
#include "proxy/proxy_int.h"
#include "util/jsjson.h"
#include "util/redact.h"

int tp_error_json(struct buf *out, const char *type, const char *msg)
{
	if (buf_printf(out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", type) != 0 ||
	    jsj_string(out, msg, strlen(msg)) != 0 || buf_adds(out, "}}\n") != 0)
		return -1;
	return 0;
}

void tp_refuse(struct tp_req *r, int status, const char *type, const char *fmt, ...)
{
	struct buf msg = BUF_INIT, body = BUF_INIT;
	va_list ap;
	int rc;

	tp_count(r->p, &r->p->usage.refused);
	va_start(ap, fmt);
	rc = buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (rc == 0 && redact_apply(&msg) == 0) {
		const char *m = strncmp(msg.p, "ccr token proxy: ", 17) == 0 ? msg.p + 17 : msg.p;

		tp_log(r->p, "token proxy: answered %d: %s", status, m);
		if (tp_error_json(&body, type, msg.p) == 0) {
			if (status == 405)
				(void)hs_resp_header(r->hr, "Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
			hs_resp_close(r->hr);
			if (hs_send(r->hr, status, "application/json", body.p, body.len) == 0)
				r->resp_started = 1;
		}
	}
	buf_free(&msg);
	buf_free(&body);
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

int tp_is_hop_header(const struct tp_req *r, const char *name, int request)
{
	static const char *const hop[] = { "connection", "keep-alive", "te", "trailer",
		"transfer-encoding", "upgrade", NULL };
	size_t i, n;

	for (i = 0; hop[i]; i++)
		if (tp_ieq(name, hop[i]))
			return 1;
	if (strncasecmp(name, "proxy-", 6) == 0)
		return 1;
	if (request) {
		const char *hn, *hv;

		n = hs_req_header_count(r->hq);
		for (i = 0; i < n; i++)
			if (hs_req_header_at(r->hq, i, &hn, &hv) == 0 && tp_ieq(hn, "connection") &&
			    in_token_list(hv, name))
				return 1;
	} else {
		for (i = 0; i < r->nrhdrs; i++)
			if (tp_ieq(r->rhbuf.p + r->rhdrs[i].name, "connection") &&
			    in_token_list(r->rhbuf.p + r->rhdrs[i].val, name))
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
static int has_dummy(const struct tp_req *r)
{
	size_t i, n = hs_req_header_count(r->hq);
	int ok = 0;

	for (i = 0; i < n; i++) {
		const char *hn, *v;

		if (hs_req_header_at(r->hq, i, &hn, &v) != 0)
			continue;
		if (tp_ieq(hn, "x-api-key") && is_dummy(r->p, v, strlen(v)))
			ok = 1;
		if (tp_ieq(hn, "authorization") && strncasecmp(v, "Bearer ", 7) == 0) {
			v += 7;
			while (*v == ' ')
				v++;
			if (is_dummy(r->p, v, strlen(v)))
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
static int over_budget(struct tp_req *r)
{
	struct tp_proxy *p = r->p;
	const char *u = r->url;
	double cost;

	if (!(p->budget_usd > 0) || r->method != HTTP_POST || strncmp(u, "/v1/messages", 12) != 0 ||
	    strncmp(u, "/v1/messages/count_tokens", 25) == 0)
		return 0;
	pthread_mutex_lock(&p->lock);
	cost = p->usage.cost_usd;
	if (cost >= p->budget_usd)
		p->usage.budget_refused++;
	pthread_mutex_unlock(&p->lock);
	if (cost < p->budget_usd)
		return 0;
	tp_refuse(r, 400, "invalid_request_error",
		    "ccr token proxy: this task's budget of $%.4f is spent (metered cost $%.4f); the request was not "
		    "sent (budget_exceeded)",
		    p->budget_usd, cost);
	return 1;
}

/* The request line: CONNECT, upgrades, methods, the target's form. */
static int check_line(struct tp_req *r)
{
	if (r->method == HTTP_CONNECT) {
		tp_refuse(r, 405, "invalid_request_error",
			  "ccr token proxy: CONNECT is refused; this proxy only forwards origin-form "
			  "requests (/v1/...) to its pinned upstream");
		return -1;
	}
	if (hs_req_header(r->hq, "upgrade")) {
		tp_refuse(r, 400, "invalid_request_error", "ccr token proxy: protocol upgrades are not supported");
		return -1;
	}
	if (!method_allowed(r->method)) {
		tp_refuse(r, 405, "invalid_request_error", "ccr token proxy: method %s is not supported",
			  hs_req_method(r->hq));
		return -1;
	}
	if (!origin_form(r->url)) {
		tp_refuse(r, 400, "invalid_request_error",
			  "ccr token proxy: only origin-form request targets (\"/v1/messages?...\") are "
			  "accepted; absolute-form and other targets are refused so the credential can "
			  "only reach the pinned upstream");
		return -1;
	}
	return 0;
}

int tp_check(struct tp_req *r)
{
	if (check_line(r) != 0)
		return -1;
	if (!has_dummy(r)) {
		tp_refuse(r, 401, "authentication_error",
			  "ccr token proxy: the request does not carry this task's proxy credential "
			  "(x-api-key or Authorization: Bearer); use the value ccr put in the CLI's "
			  "environment");
		return -1;
	}
	if (over_budget(r))
		return -1;
	return 0;
}
