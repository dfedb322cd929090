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
 *
 * The queue (serve's access log): once slog_queue_start ran, a queued
 * line is appended to an in-memory batch and a writer thread writes the
 * batches, so the thread that answered a request (the event loop, for
 * /health) neither formats the time twice nor blocks in write(2) per
 * line.  The writer lets a batch gather for BATCH_WAIT_US (2 ms) after
 * its first line, so a burst costs one wake-up and one write rather than
 * one of each per line.  The batch is bounded (QUEUE_MAX): past it, a caller waits for
 * the writer, so a stalled stdout slows serve down rather than growing it
 * or losing lines.  slog_queue_stop writes what is left and ends the
 * thread.  Other lines are written at once, as before (a line logged
 * before an answer is out before that answer).
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

#define QUEUE_MAX (1u << 20)       /* bytes of queued lines before callers wait */
#define BATCH_WAIT_US 2000         /* a batch gathers this long before its write */

static struct {
	pthread_mutex_t mu;
	enum slog_level min;
	int fd;
	int (*redact)(struct buf *text);
} lg = { PTHREAD_MUTEX_INITIALIZER, SLOG_INFO, 1, NULL };

/* The access log's queue (see the top). */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t more, room;
	struct buf batch;
	int on, stop;
	pthread_t th;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, BUF_INIT, 0, 0, 0 };

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

static void write_out(const char *p, size_t n)
{
	size_t off = 0;

	pthread_mutex_lock(&lg.mu);
	while (off < n) {
		ssize_t w = write(lg.fd, p + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	pthread_mutex_unlock(&lg.mu);
}

/* Append to the batch (1), or 0 when the queue is not running. */
static int enqueue(const struct buf *b)
{
	int queued = 0;

	pthread_mutex_lock(&q.mu);
	while (q.on && !q.stop && q.batch.len >= QUEUE_MAX)
		pthread_cond_wait(&q.room, &q.mu);
	if (q.on && !q.stop) {
		int was_empty = q.batch.len == 0;

		queued = buf_add(&q.batch, b->p, b->len) == 0;
		if (queued && was_empty)
			pthread_cond_signal(&q.more);      /* one wake-up per batch */
	}
	pthread_mutex_unlock(&q.mu);
	return queued;
}

static void emit(struct buf *b, int queued)
{
	if (buf_addc(b, '\n') != 0)
		return;
	if (!queued || !enqueue(b))
		write_out(b->p, b->len);
}

static void *writer_main(void *arg)
{
	struct buf out = BUF_INIT;

	(void)arg;
	pthread_mutex_lock(&q.mu);
	for (;;) {
		while (!q.batch.len && !q.stop)
			pthread_cond_wait(&q.more, &q.mu);
		if (!q.batch.len)
			break;                              /* stopping, and all written */
		if (!q.stop && q.batch.len < QUEUE_MAX / 4) {
			/* Let a burst gather: one write for many lines. */
			pthread_mutex_unlock(&q.mu);
			usleep(BATCH_WAIT_US);
			pthread_mutex_lock(&q.mu);
		}
		out = q.batch;
		q.batch = (struct buf)BUF_INIT;
		pthread_cond_broadcast(&q.room);
		pthread_mutex_unlock(&q.mu);
		write_out(out.p, out.len);
		buf_free(&out);
		pthread_mutex_lock(&q.mu);
	}
	pthread_mutex_unlock(&q.mu);
	return NULL;
}

int slog_queue_start(void)
{
	int rc;

	pthread_mutex_lock(&q.mu);
	q.stop = 0;
	rc = q.on ? 0 : pthread_create(&q.th, NULL, writer_main, NULL) == 0 ? 0 : -1;
	if (rc == 0)
		q.on = 1;
	pthread_mutex_unlock(&q.mu);
	return rc;
}

void slog_queue_stop(void)
{
	pthread_mutex_lock(&q.mu);
	if (!q.on) {
		pthread_mutex_unlock(&q.mu);
		return;
	}
	q.stop = 1;
	pthread_cond_broadcast(&q.more);
	pthread_cond_broadcast(&q.room);
	pthread_mutex_unlock(&q.mu);
	pthread_join(q.th, NULL);
	pthread_mutex_lock(&q.mu);
	q.on = 0;
	buf_free(&q.batch);
	pthread_mutex_unlock(&q.mu);
}

/* The line: {"severity":..,"message":..,"time":..[,extra]} (built
 * without printf: serve's access log writes one per request). */
static void render(enum slog_level level, const char *msg, size_t mlen, const char *extra, size_t xlen,
		   int queued)
{
	struct buf b = BUF_INIT;
	char ts[32];

	clock_iso(ts);
	if (buf_reserve(&b, mlen + xlen + 96) == 0 && buf_adds(&b, "{\"severity\":\"") == 0 &&
	    buf_adds(&b, level_names[level]) == 0 && buf_adds(&b, "\",\"message\":") == 0 &&
	    jsj_string(&b, msg, mlen) == 0 && buf_adds(&b, ",\"time\":\"") == 0 && buf_adds(&b, ts) == 0 &&
	    buf_addc(&b, '"') == 0 && (!xlen || (buf_addc(&b, ',') == 0 && buf_add(&b, extra, xlen) == 0)) &&
	    buf_addc(&b, '}') == 0)
		emit(&b, queued);
	buf_free(&b);
}

/* A line from pieces the caller owns: redacted first (on copies) when
 * there is a hook. */
static void line(enum slog_level level, const char *msg, size_t mlen, const char *extra, size_t xlen, int queued)
{
	struct buf m = BUF_INIT, x = BUF_INIT;

	if (!lg.redact) {
		render(level, msg, mlen, extra, xlen, queued);
		return;
	}
	if (buf_add(&m, msg, mlen) == 0 && buf_add(&x, extra, xlen) == 0 && (!m.p || lg.redact(&m) == 0) &&
	    (!x.p || lg.redact(&x) == 0))
		render(level, m.p ? m.p : "", m.len, x.p ? x.p : "", x.len, queued);
	buf_free(&m);
	buf_free(&x);
}

static void fields(enum slog_level level, const char *message, const char *extra, int queued)
{
	if (slog_enabled(level))
		line(level, message, strlen(message), extra ? extra : "", extra ? strlen(extra) : 0, queued);
}

void slog_fields(enum slog_level level, const char *message, const char *extra)
{
	fields(level, message, extra, 0);
}

void slog_fields_queued(enum slog_level level, const char *message, const char *extra)
{
	fields(level, message, extra, 1);
}

void slog(enum slog_level level, const char *fmt, ...)
{
	struct buf m = BUF_INIT;
	va_list ap;
	int rc;

	if (!slog_enabled(level))
		return;
	va_start(ap, fmt);
	rc = buf_vprintf(&m, fmt, ap);
	va_end(ap);
	if (rc == 0)
		line(level, m.p ? m.p : "", m.len, "", 0, 0);
	buf_free(&m);
}
