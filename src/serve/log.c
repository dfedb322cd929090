/*
 * log.c: the access log declared in log.h.  The line itself is written
 * by the one log (util/log.c); this file renders the request's members.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/log.h"
#include "util/buf.h"
#include "util/jsjson.h"

void slog_project(const char *p, char *out, size_t n)
{
	out[0] = 0;
	if (p && strlen(p) < n)
		snprintf(out, n, "%s", p);
}

void slog_trace_name(const char *proj, const char *header, char *out, size_t outlen)
{
	size_t n = 0;

	out[0] = 0;
	if (!proj || !*proj || !header)
		return;
	while (n < 32 && ((header[n] >= '0' && header[n] <= '9') || (header[n] >= 'a' && header[n] <= 'f') ||
			  (header[n] >= 'A' && header[n] <= 'F')))
		n++;
	if (n != 32 || (header[n] && header[n] != '/' && header[n] != ';'))
		return;
	snprintf(out, outlen, "projects/%s/traces/%.32s", proj, header);
}

/* ,"name":"<value as a JSON string>" */
static int add_member(struct buf *b, const char *name, const char *value)
{
	return buf_adds(b, ",\"") != 0 || buf_adds(b, name) != 0 || buf_adds(b, "\":") != 0 ||
	       jsj_string(b, value, strlen(value)) != 0 ? -1 : 0;
}

/* ,"status":S,"responseSize":"N","latency":"s.uuuuuus" */
static int add_numbers(struct buf *b, const struct hs_access *a)
{
	return buf_adds(b, ",\"status\":") != 0 || buf_addu(b, (unsigned)a->status, 0) != 0 ||
	       buf_adds(b, ",\"responseSize\":\"") != 0 || buf_addu(b, a->body_bytes, 0) != 0 ||
	       buf_adds(b, "\",\"latency\":\"") != 0 || buf_addu(b, a->latency_us / 1000000u, 0) != 0 ||
	       buf_addc(b, '.') != 0 || buf_addu(b, a->latency_us % 1000000u, 6) != 0 || buf_adds(b, "s\"") != 0
		       ? -1 : 0;
}

/* "httpRequest":{...}[,"logging.googleapis.com/trace":..]  (no printf:
 * one of these per request) */
static int access_fields(struct buf *b, const struct hs_access *a, const char *project)
{
	char trace[256];

	if (buf_adds(b, "\"httpRequest\":{\"requestMethod\":") != 0 || jsj_string(b, a->method, strlen(a->method)) != 0 ||
	    add_member(b, "requestUrl", a->target) != 0 || add_numbers(b, a) != 0 ||
	    add_member(b, "userAgent", a->user_agent) != 0 || add_member(b, "remoteIp", a->remote_addr) != 0 ||
	    buf_adds(b, ",\"protocol\":\"HTTP/1.") != 0 || buf_addu(b, (unsigned)a->http_minor, 0) != 0 ||
	    buf_adds(b, "\"}") != 0)
		return -1;
	slog_trace_name(project, a->trace, trace, sizeof(trace));
	return trace[0] ? add_member(b, "logging.googleapis.com/trace", trace) : 0;
}

/* "METHOD TARGET STATUS", or "STATUS (request not parsed) from ADDR" */
static int access_message(struct buf *m, const struct hs_access *a)
{
	if (!a->method[0])
		return buf_addu(m, (unsigned)a->status, 0) != 0 || buf_adds(m, " (request not parsed) from ") != 0 ||
		       buf_adds(m, a->remote_addr) != 0 ? -1 : 0;
	return buf_adds(m, a->method) != 0 || buf_addc(m, ' ') != 0 || buf_adds(m, a->target) != 0 ||
	       buf_addc(m, ' ') != 0 || buf_addu(m, (unsigned)a->status, 0) != 0 ? -1 : 0;
}

void slog_access(const struct hs_access *a, const char *project)
{
	enum slog_level level = a->status >= 500 ? SLOG_ERROR : a->status >= 400 ? SLOG_WARNING : SLOG_INFO;
	struct buf m = BUF_INIT, x = BUF_INIT;
	int ok;

	if (!slog_enabled(level))
		return;
	ok = access_message(&m, a) == 0;
	if (ok && access_fields(&x, a, project) == 0)
		slog_fields_queued(level, m.p, x.p);
	buf_free(&m);
	buf_free(&x);
}
