/*
 * sse.c: see sse.h.  A stream never reads storage for live lines: it
 * joins the task's topic (topic.h), whose one reader renders each line
 * once, and writes the shared frames in order.  Only lines older than the
 * topic's window are read here, for this stream alone.
 *
 * A stream costs no thread: once its head and `retry:` are out it parks
 * (server.h, hs_stream_park) and subscribes to the topic, whose reader
 * wakes it after each frame.  The pump (on the HTTP loop thread, never
 * blocking) writes what the topic has, stopping while the connection's
 * output buffer is full; history from storage makes it ask for a worker
 * once.  A tick each second sends the 15 s `: keepalive` comment; a
 * draining server gets `event: reconnect`; a client that goes away ends
 * the stream (done: cancels the task for cancelOnDisconnect, on a worker).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serve/follow.h"
#include "serve/sseframe.h"
#include "serve/topic.h"
#include "serve/sse.h"
#include "serve/tasks.h"
#include "util/clock.h"
#include "util/jsjson.h"

#define HEARTBEAT_MS 15000

int sse_last_event_id(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	for (; *s; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static void cancel_task(const struct sse_src *src, const char *task_id)
{
	struct tr_cancel_result r;

	tasks_cancel(src->be, src->rec, task_id, &r);
}

/* Lines older than the topic's window, read from storage for this
 * stream alone (a resume from an old Last-Event-ID). */
struct history {
	struct hs_resp *resp;
	uint64_t *want, limit;
	int stopped, gone;
};

static int history_line(void *arg, uint64_t id, const char *line, size_t n)
{
	struct history *h = arg;
	struct buf b = BUF_INIT;

	if (id >= h->limit) {
		h->stopped = 1;
		return 1;                          /* the window has it from here */
	}
	if (sf_frame(&b, id, line, n) != 0 || hs_stream_write(h->resp, b.p, b.len) != 0) {
		buf_free(&b);
		h->gone = 1;
		return 1;
	}
	buf_free(&b);
	*h->want = id + 1;
	return 0;
}

/* 0, or -1 when the client is gone. */
static int read_history(const struct sse_src *src, struct hs_resp *resp, struct topic *t, const char *task_id,
			uint64_t *want)
{
	struct history h = { resp, want, topic_first(t), 0, 0 };
	struct follow f;
	struct err e = ERR_INIT;
	uint64_t before = *want;

	follow_init(&f, src->be->storage, task_id, *want - 1);
	while (!h.stopped && !h.gone && follow_poll(&f, history_line, &h, &e) > 0)
		;
	if (h.gone)
		return -1;
	if (*want == before && !h.stopped)
		usleep(100000);                    /* storage failing, or behind the reader: retry */
	return 0;
}

static int write_reconnect(struct hs_resp *resp, const char *task_id, uint64_t last, const char *why)
{
	struct buf b = BUF_INIT;
	int rc = buf_printf(&b, "event: reconnect\ndata: {\"message\":\"%s; reconnect with Last-Event-ID\","
				"\"taskId\":\"%s\",\"lastEventId\":%llu}\n\n",
			    why, task_id, (unsigned long long)last);

	if (rc == 0)
		rc = hs_stream_write(resp, b.p, b.len);
	buf_free(&b);
	return rc;
}

/* Write one frame of the topic; 0, or -1 when the client is gone. */
static int write_frame(struct hs_resp *resp, struct topic_frame *f)
{
	size_t len;
	const char *data = topic_frame_data(f, &len);
	int rc = len ? hs_stream_write(resp, data, len) : 0;

	topic_frame_put(f);
	return rc;
}

/* One stream, parked or not. */
struct sse_ctx {
	struct sse_src src;
	struct topic *t;
	struct topic_sub sub;
	struct hs_park *park;
	uint64_t want;
	int64_t last_write;
	int live, cancel;
	int wait_ms;                       /* topic_next's wait: 0 when parked */
	char task_id[];
};

/* Write what the topic has for the stream: HS_PUMP_CONTINUE, _END or
 * _WORKER (history to read, and not on a worker). */
static int sse_pump(void *arg, struct hs_resp *resp, int flags)
{
	struct sse_ctx *x = arg;
	struct topic_frame *f;

	if (flags & HS_PUMP_DRAINING) {
		write_reconnect(resp, x->task_id, x->want - 1, "server shutting down");
		return HS_PUMP_END;
	}
	while (hs_stream_writable(resp)) {
		enum topic_wait r = topic_next(x->t, x->want, x->live, x->wait_ms, &f);

		if (r == TOPIC_FRAME) {
			x->want++;
			x->live = 1;
			x->last_write = clock_mono_ms();
			if (write_frame(resp, f) != 0)
				return HS_PUMP_END;
			continue;
		}
		if (r == TOPIC_ENDED) {
			write_frame(resp, f);
			return HS_PUMP_END;
		}
		if (r == TOPIC_HISTORY) {
			if (!(flags & HS_PUMP_ON_WORKER))
				return HS_PUMP_WORKER;
			if (read_history(&x->src, resp, x->t, x->task_id, &x->want) != 0)
				return HS_PUMP_END;
			continue;
		}
		if (r == TOPIC_BEHIND) {
			/* Too slow for the window: resume from storage, the others go on. */
			write_reconnect(resp, x->task_id, x->want - 1, "this stream fell behind");
			return HS_PUMP_END;
		}
		break;                             /* nothing new */
	}
	if (clock_mono_ms() - x->last_write >= HEARTBEAT_MS) {
		if (hs_stream_write(resp, ": keepalive\n\n", 13) != 0)
			return HS_PUMP_END;
		x->last_write = clock_mono_ms();
	}
	return HS_PUMP_CONTINUE;
}

static void sse_wake(void *arg)
{
	hs_stream_wake(((struct sse_ctx *)arg)->park);
}

/* The stream ended (why: HS_PARK_*). */
static void sse_done(void *arg, int why)
{
	struct sse_ctx *x = arg;

	if (x->park)
		topic_unsubscribe(x->t, &x->sub);
	topic_leave(x->src.topics, x->t);
	if (why == HS_PARK_GONE && x->cancel)
		cancel_task(&x->src, x->task_id);
	free(x);
}

/* A connection the loop does not serve (hs_serve_fd): the stream keeps
 * this thread, waiting in topic_next. */
static void run_here(struct sse_ctx *x, struct hs_resp *resp)
{
	int why = HS_PARK_ENDED, w;

	x->wait_ms = 1000;
	for (;;) {
		if (sse_pump(x, resp, HS_PUMP_ON_WORKER) == HS_PUMP_END)
			break;
		w = hs_stream_wait_closed(resp, 1);
		if (w == HS_WAIT_GONE) {
			why = HS_PARK_GONE;
			break;
		}
		if (w == HS_WAIT_DRAINING) {
			sse_pump(x, resp, HS_PUMP_DRAINING);
			break;
		}
	}
	if (hs_stream_end(resp) != 0)
		why = HS_PARK_GONE;
	sse_done(x, why);
}

int sse_stream(const struct sse_src *src, struct hs_resp *resp, const char *task_id, uint64_t resume_after,
	       int cancel_on_disconnect)
{
	static const char *const headers[] = { "Content-Type", "text/event-stream", "Cache-Control",
					       "no-cache, no-transform", "X-Accel-Buffering", "no", NULL };
	static const struct hs_park_ops ops = { sse_pump, sse_done };
	size_t n = strlen(task_id);
	struct sse_ctx *x;
	struct topic *t;

	if (hs_stream_begin(resp, 200, headers) != 0)
		return -1;
	if (hs_stream_write(resp, "retry: 3000\n\n", 13) != 0)
		return -1;
	if (!(t = topic_join(src->topics, task_id)))
		return hs_stream_end(resp);
	if (!(x = calloc(1, sizeof(*x) + n + 1))) {
		topic_leave(src->topics, t);
		return -1;
	}
	x->src = *src;
	x->t = t;
	x->want = resume_after + 1;
	x->last_write = clock_mono_ms();
	x->cancel = cancel_on_disconnect;
	memcpy(x->task_id, task_id, n + 1);
	x->park = hs_stream_park(resp, &ops, x, 1000);
	if (!x->park) {
		run_here(x, resp);
		return 0;
	}
	x->sub.wake = sse_wake;
	x->sub.arg = x;
	topic_subscribe(t, &x->sub);
	return 0;                          /* the loop runs the pump from here */
}
