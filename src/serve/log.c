/*
 * log.c: the JSON-lines service log declared in log.h.
 *
 * Each line is built in a private buffer (strings escaped with
 * jsj_string, so any bytes are safe), then written with a single write(2)
 * under a process-wide mutex: concurrent threads never interleave, and a
 * reader of stdout sees whole lines.  If memory runs out the line is
 * dropped (logging never fails its caller).  Settings are read once by
 * slog_init, before the server starts threads, and only read afterwards.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "serve/log.h"
#include "util/buf.h"
#include "util/jsjson.h"
#include "settings/settings.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static enum slog_level min_level = SLOG_INFO;
static char project[128];

static const char *const level_names[] = { "DEBUG", "INFO", "WARNING", "ERROR" };

void slog_init(void)
{
	const char *v = settings_str(SET_LOG_LEVEL);
	const char *p = settings_str(SET_GOOGLE_CLOUD_PROJECT);

	if (v && *v) {
		if (strcasecmp(v, "debug") == 0)
			min_level = SLOG_DEBUG;
		else if (strcasecmp(v, "info") == 0)
			min_level = SLOG_INFO;
		else if (strcasecmp(v, "warn") == 0 || strcasecmp(v, "warning") == 0)
			min_level = SLOG_WARNING;
		else if (strcasecmp(v, "error") == 0)
			min_level = SLOG_ERROR;
	}
	if (!p || !*p)
		p = settings_str(SET_PROJECT_ID);
	if (p && strlen(p) < sizeof(project))
		snprintf(project, sizeof(project), "%s", p);
}

int slog_enabled(enum slog_level level)
{
	return level >= min_level;
}

static void emit(struct buf *b)
{
	size_t off = 0;

	if (buf_addc(b, '\n') != 0)
		return;
	pthread_mutex_lock(&log_mu);
	while (off < b->len) {
		ssize_t w = write(1, b->p + off, b->len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	pthread_mutex_unlock(&log_mu);
}

/* {"severity":..,"message":..,"time":.. (no closing brace) */
static int head(struct buf *b, enum slog_level level, const char *msg, size_t msglen)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (!gmtime_r(&ts.tv_sec, &tm))
		memset(&tm, 0, sizeof(tm));
	if (buf_printf(b, "{\"severity\":\"%s\",\"message\":", level_names[level]) != 0 ||
	    jsj_string(b, msg, msglen) != 0)
		return -1;
	return buf_printf(b, ",\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"", tm.tm_year + 1900,
			  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			  ts.tv_nsec / 1000000L);
}

void slog_fields(enum slog_level level, const char *message, const char *extra)
{
	struct buf b = BUF_INIT;

	if (!slog_enabled(level))
		return;
	if (head(&b, level, message, strlen(message)) == 0 &&
	    (!extra || !*extra || buf_printf(&b, ",%s", extra) == 0) && buf_addc(&b, '}') == 0)
		emit(&b);
	buf_free(&b);
}

void slog(enum slog_level level, const char *fmt, ...)
{
	struct buf m = BUF_INIT, b = BUF_INIT;
	va_list ap;
	int rc;

	if (!slog_enabled(level))
		return;
	va_start(ap, fmt);
	rc = buf_vprintf(&m, fmt, ap);
	va_end(ap);
	if (rc == 0 && head(&b, level, m.p ? m.p : "", m.len) == 0 && buf_addc(&b, '}') == 0)
		emit(&b);
	buf_free(&m);
	buf_free(&b);
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

void slog_access(const struct hs_access *a)
{
	enum slog_level level = a->status >= 500 ? SLOG_ERROR : a->status >= 400 ? SLOG_WARNING : SLOG_INFO;
	struct buf m = BUF_INIT, b = BUF_INIT;
	char trace[256];
	int ok;

	if (!slog_enabled(level))
		return;
	if (a->method[0])
		ok = buf_printf(&m, "%s %s %d", a->method, a->target, a->status) == 0;
	else
		ok = buf_printf(&m, "%d (request not parsed) from %s", a->status, a->remote_addr) == 0;
	ok = ok && head(&b, level, m.p, m.len) == 0 &&
	     buf_adds(&b, ",\"httpRequest\":{\"requestMethod\":") == 0 &&
	     jsj_string(&b, a->method, strlen(a->method)) == 0 &&
	     add_member(&b, "requestUrl", a->target) == 0 &&
	     buf_printf(&b, ",\"status\":%d,\"responseSize\":\"%llu\",\"latency\":\"%llu.%06llus\"",
			a->status, (unsigned long long)a->body_bytes,
			(unsigned long long)(a->latency_us / 1000000u),
			(unsigned long long)(a->latency_us % 1000000u)) == 0 &&
	     add_member(&b, "userAgent", a->user_agent) == 0 &&
	     add_member(&b, "remoteIp", a->remote_addr) == 0 &&
	     buf_printf(&b, ",\"protocol\":\"HTTP/1.%d\"}", a->http_minor) == 0;
	slog_trace_name(project, a->trace, trace, sizeof(trace));
	if (ok && trace[0])
		ok = add_member(&b, "logging.googleapis.com/trace", trace) == 0;
	if (ok && buf_addc(&b, '}') == 0)
		emit(&b);
	buf_free(&m);
	buf_free(&b);
}
