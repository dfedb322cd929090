/*
 * log.c: the JSON-lines log declared in log.h.
 *
 * Each line is built in a private buffer (strings escaped with
 * jsj_string, so any bytes are safe), then written under the mutex: a
 * reader sees whole lines.  If memory runs out the line is dropped
 * (logging never fails its caller).
 *
 * The settings live in one static struct: the log is the process's own
 * output, used from every module and thread without a context to pass;
 * it is written once by slog_init, before threads start, and read-only
 * afterwards.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/jsjson.h"
#include "util/log.h"

static struct {
	pthread_mutex_t mu;
	enum slog_level min;
	int fd;
	int (*redact)(struct buf *text);
} lg = { PTHREAD_MUTEX_INITIALIZER, SLOG_INFO, 1, NULL };

static const char *const level_names[] = { "DEBUG", "INFO", "WARNING", "ERROR" };

void slog_init(int fd, int (*redact)(struct buf *text), const char *v)
{
	lg.fd = fd;
	lg.redact = redact;
	if (!v || !*v)
		return;
	if (strcasecmp(v, "debug") == 0)
		lg.min = SLOG_DEBUG;
	else if (strcasecmp(v, "info") == 0)
		lg.min = SLOG_INFO;
	else if (strcasecmp(v, "warn") == 0 || strcasecmp(v, "warning") == 0)
		lg.min = SLOG_WARNING;
	else if (strcasecmp(v, "error") == 0)
		lg.min = SLOG_ERROR;
}

int slog_enabled(enum slog_level level)
{
	return level >= lg.min;
}

static void emit(struct buf *b)
{
	size_t off = 0;

	if (buf_addc(b, '\n') != 0)
		return;
	pthread_mutex_lock(&lg.mu);
	while (off < b->len) {
		ssize_t w = write(lg.fd, b->p + off, b->len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	pthread_mutex_unlock(&lg.mu);
}

/* The line: {"severity":..,"message":..,"time":..[,extra]} */
static void line(enum slog_level level, struct buf *msg, struct buf *extra)
{
	struct buf b = BUF_INIT;
	char ts[32];

	if (lg.redact && ((msg->p && lg.redact(msg) != 0) || (extra->p && lg.redact(extra) != 0)))
		return;
	clock_iso(ts);
	if (buf_printf(&b, "{\"severity\":\"%s\",\"message\":", level_names[level]) == 0 &&
	    jsj_string(&b, msg->p ? msg->p : "", msg->len) == 0 && buf_printf(&b, ",\"time\":\"%s\"", ts) == 0 &&
	    (!extra->len || buf_printf(&b, ",%s", extra->p) == 0) && buf_addc(&b, '}') == 0)
		emit(&b);
	buf_free(&b);
}

void slog_fields(enum slog_level level, const char *message, const char *extra)
{
	struct buf m = BUF_INIT, x = BUF_INIT;

	if (slog_enabled(level) && buf_adds(&m, message) == 0 && (!extra || buf_adds(&x, extra) == 0))
		line(level, &m, &x);
	buf_free(&m);
	buf_free(&x);
}

void slog(enum slog_level level, const char *fmt, ...)
{
	struct buf m = BUF_INIT, x = BUF_INIT;
	va_list ap;
	int rc;

	if (!slog_enabled(level))
		return;
	va_start(ap, fmt);
	rc = buf_vprintf(&m, fmt, ap);
	va_end(ap);
	if (rc == 0)
		line(level, &m, &x);
	buf_free(&m);
}
