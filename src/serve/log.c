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

static int add_member(struct buf *b, const char *name, const char *value)
{
	return buf_printf(b, ",\"%s\":", name) != 0 || jsj_string(b, value, strlen(value)) != 0 ? -1 : 0;
}

/* "httpRequest":{...}[,"logging.googleapis.com/trace":..] */
static int access_fields(struct buf *b, const struct hs_access *a, const char *project)
{
	char trace[256];

	if (buf_adds(b, "\"httpRequest\":{\"requestMethod\":") != 0 || jsj_string(b, a->method, strlen(a->method)) != 0 ||
	    add_member(b, "requestUrl", a->target) != 0 ||
	    buf_printf(b, ",\"status\":%d,\"responseSize\":\"%llu\",\"latency\":\"%llu.%06llus\"", a->status,
		       (unsigned long long)a->body_bytes, (unsigned long long)(a->latency_us / 1000000u),
		       (unsigned long long)(a->latency_us % 1000000u)) != 0 ||
	    add_member(b, "userAgent", a->user_agent) != 0 || add_member(b, "remoteIp", a->remote_addr) != 0 ||
	    buf_printf(b, ",\"protocol\":\"HTTP/1.%d\"}", a->http_minor) != 0)
		return -1;
	slog_trace_name(project, a->trace, trace, sizeof(trace));
	return trace[0] ? add_member(b, "logging.googleapis.com/trace", trace) : 0;
}

void slog_access(const struct hs_access *a, const char *project)
{
	enum slog_level level = a->status >= 500 ? SLOG_ERROR : a->status >= 400 ? SLOG_WARNING : SLOG_INFO;
	struct buf m = BUF_INIT, x = BUF_INIT;
	int ok;

	if (!slog_enabled(level))
		return;
	if (a->method[0])
		ok = buf_printf(&m, "%s %s %d", a->method, a->target, a->status) == 0;
	else
		ok = buf_printf(&m, "%d (request not parsed) from %s", a->status, a->remote_addr) == 0;
	if (ok && access_fields(&x, a, project) == 0)
		slog_fields(level, m.p, x.p);
	buf_free(&m);
	buf_free(&x);
}
