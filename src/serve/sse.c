/*
 * sse.c: see sse.h.  A stream never reads storage for live lines: it
 * joins the task's topic (topic.h), whose one reader renders each line
 * once, and writes the shared frames in order.  Only lines older than the
 * topic's window are read here, for this stream alone.  Between frames it
 * checks its client once a second: a disconnect (which cancels the task
 * for cancelOnDisconnect), a draining server (`event: reconnect`), and
 * the 15 s keep-alive comment.
 */
#include <poll.h>
#include <stdio.h>
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

int sse_stream(const struct sse_src *src, struct hs_resp *resp, const char *task_id, uint64_t resume_after,
	       int cancel_on_disconnect)
{
	static const char *const headers[] = { "Content-Type", "text/event-stream", "Cache-Control",
					       "no-cache, no-transform", "X-Accel-Buffering", "no", NULL };
	int64_t last_write = clock_mono_ms();
	uint64_t want = resume_after + 1;
	struct topic_frame *f;
	struct topic *t;
	int live = 0, gone = 0, w;

	if (hs_stream_begin(resp, 200, headers) != 0)
		return -1;
	if (hs_stream_write(resp, "retry: 3000\n\n", 13) != 0)
		return -1;
	if (!(t = topic_join(src->topics, task_id)))
		return hs_stream_end(resp);
	for (;;) {
		enum topic_wait r = topic_next(t, want, live, 1000, &f);

		if (r == TOPIC_FRAME) {
			want++;
			live = 1;
			last_write = clock_mono_ms();
			if (write_frame(resp, f) != 0) {
				gone = 1;
				break;
			}
			continue;
		}
		if (r == TOPIC_ENDED) {
			write_frame(resp, f);
			break;
		}
		if (r == TOPIC_HISTORY) {
			if (read_history(src, resp, t, task_id, &want) != 0) {
				gone = 1;
				break;
			}
			continue;
		}
		if (r == TOPIC_BEHIND) {
			/* Too slow for the window: resume from storage, the others go on. */
			write_reconnect(resp, task_id, want - 1, "this stream fell behind");
			break;
		}
		if (clock_mono_ms() - last_write >= HEARTBEAT_MS) {
			if (hs_stream_write(resp, ": keepalive\n\n", 13) != 0) {
				gone = 1;
				break;
			}
			last_write = clock_mono_ms();
		}
		w = hs_stream_wait_closed(resp, 1);
		if (w == HS_WAIT_GONE) {
			gone = 1;
			break;
		}
		if (w == HS_WAIT_DRAINING) {
			write_reconnect(resp, task_id, want - 1, "server shutting down");
			break;
		}
	}
	topic_leave(src->topics, t);
	if (gone && cancel_on_disconnect)
		cancel_task(src, task_id);
	return hs_stream_end(resp);
}
