/*
 * sse.c: see sse.h.  The loop waits on the storage's change notification
 * when the backend has one (local: a wait on the task's log directory,
 * armed before the first read; all streams share one inotify instance),
 * otherwise it polls, fast while lines flow and backing off to 2 s when
 * idle (also when the system's inotify watch limit is reached); between
 * waits it checks the client, so a disconnect is noticed within a wait
 * (at most 250 ms with a watch).
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "serve/follow.h"
#include "serve/sse.h"
#include "serve/tasks.h"
#include "util/clock.h"
#include "util/jsjson.h"

#define HEARTBEAT_MS 15000
#define IDLE_POLL_MAX_MS 2000

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

int sse_frame(struct buf *out, uint64_t id, const char *line, size_t n)
{
	cJSON *v = cJSON_ParseWithLength(line, n);
	int rc = buf_printf(out, "id: %llu\ndata: ", (unsigned long long)id);

	if (rc == 0 && v)
		rc = jsj_stringify(out, v);
	else if (rc == 0)
		rc = buf_adds(out, "{\"type\":\"text\",\"content\":") || jsj_string(out, line, n) || buf_addc(out, '}');
	cJSON_Delete(v);
	return rc || buf_adds(out, "\n\n") ? -1 : 0;
}

struct emit_ctx {
	struct hs_resp *resp;
	struct buf frames;
};

static int emit(void *arg, uint64_t id, const char *line, size_t n)
{
	struct emit_ctx *c = arg;

	return sse_frame(&c->frames, id, line, n);
}

static int flush_frames(struct emit_ctx *c)
{
	int rc = 0;

	if (c->frames.len)
		rc = hs_stream_write(c->resp, c->frames.p, c->frames.len);
	buf_reset(&c->frames);
	return rc;
}

/* The seed's terminal event (if any), then ccr's `done`. */
static void final_events(struct hs_resp *resp, const cJSON *meta)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(meta, "status");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(meta, "error");
	struct buf out = BUF_INIT;
	cJSON *done = cJSON_CreateObject();
	static const char *keys[] = { "status", "terminalReason", "exitCode", "durationMs", "error" };
	size_t i;

	if (cJSON_IsString(st) && strcmp(st->valuestring, "cancelled") == 0) {
		buf_adds(&out, "event: cancelled\ndata: {\"message\":\"Task cancelled by user\"}\n\n");
	} else if (cJSON_IsString(st) && strcmp(st->valuestring, "failed") == 0) {
		buf_adds(&out, "event: error\ndata: {\"error\":");
		if (cJSON_IsString(err) && err->valuestring[0])
			jsj_string(&out, err->valuestring, strlen(err->valuestring));
		else
			buf_adds(&out, "\"Task failed\"");
		buf_adds(&out, "}\n\n");
	}
	if (done) {
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, keys[i]);
			if (v)
				cJSON_AddItemToObject(done, keys[i], cJSON_Duplicate(v, 1));
		}
		{
			const cJSON *res = cJSON_GetObjectItemCaseSensitive(meta, "result");
			const cJSON *u = cJSON_GetObjectItemCaseSensitive(res, "usage");
			if (u)
				cJSON_AddItemToObject(done, "usage", cJSON_Duplicate(u, 1));
			if ((u = cJSON_GetObjectItemCaseSensitive(meta, "proxyUsage")))
				cJSON_AddItemToObject(done, "proxyUsage", cJSON_Duplicate(u, 1));
		}
		buf_adds(&out, "event: done\ndata: ");
		jsj_stringify(&out, done);
		buf_adds(&out, "\n\n");
		cJSON_Delete(done);
	}
	if (out.p)
		hs_stream_write(resp, out.p, out.len);
	buf_free(&out);
}

/* Wait up to ms for the watch to fire, then drain its events. */
static void wait_watch(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char drain[4096];

	if (poll(&p, 1, ms) > 0)
		while (read(fd, drain, sizeof(drain)) > 0)
			;
}

static void cancel_task(struct backends *be, struct reconciler *rec, const char *task_id)
{
	struct buf body = BUF_INIT;
	int status;

	tasks_cancel(be, rec, task_id, &status, &body);
	buf_free(&body);
}

int sse_stream(struct backends *be, struct hs_resp *resp, const char *task_id, uint64_t resume_after,
	       struct reconciler *rec, int cancel_on_disconnect)
{
	static const char *const headers[] = { "Content-Type", "text/event-stream", "Cache-Control",
					       "no-cache, no-transform", "X-Accel-Buffering", "no", NULL };
	struct emit_ctx c = { resp, BUF_INIT };
	struct follow f;
	struct err e = ERR_INIT;
	int64_t last_write = clock_mono_ms();
	int idle_ms = 50, n, w, watch;
	char prefix[300];
	cJSON *meta = NULL;

	if (hs_stream_begin(resp, 200, headers) != 0)
		return -1;
	if (hs_stream_write(resp, "retry: 3000\n\n", 13) != 0)
		return -1;
	follow_init(&f, be->storage, task_id, resume_after);
	snprintf(prefix, sizeof(prefix), "sessions/%s/", task_id);
	/* Armed before the first read, so no new chunk can slip between a
	 * read and the next wait. */
	watch = be->storage->ops->watch ? be->storage->ops->watch(be->storage, prefix) : -1;
	for (;;) {
		n = follow_poll(&f, emit, &c, &e);
		if (n > 0) {
			if (flush_frames(&c) != 0) {
				if (cancel_on_disconnect)
					cancel_task(be, rec, task_id);
				break;
			}
			last_write = clock_mono_ms();
			idle_ms = 50;
			continue;
		}
		/* Nothing new: is the task over?  Then one last read. */
		cJSON_Delete(meta);
		meta = follow_metadata(&f, &e);
		if (follow_is_terminal(meta)) {
			if (follow_poll(&f, emit, &c, &e) >= 0) {
				flush_frames(&c);
				final_events(resp, meta);
				break;
			}
			/* The log could not be read (storage failing past the
			 * client's retries): never end the stream short of a line;
			 * wait and read again. */
		}
		if (clock_mono_ms() - last_write >= HEARTBEAT_MS) {
			if (hs_stream_write(resp, ": keepalive\n\n", 13) != 0)
				break;
			last_write = clock_mono_ms();
		}
		if (watch >= 0) {
			/* A new object wakes us at once; check the client meanwhile. */
			w = hs_stream_wait_closed(resp, 1);
			if (w == HS_WAIT_TIMEOUT)
				wait_watch(watch, 250);
		} else {
			w = hs_stream_wait_closed(resp, (unsigned)idle_ms);
			idle_ms = idle_ms * 2 > IDLE_POLL_MAX_MS ? IDLE_POLL_MAX_MS : idle_ms * 2;
		}
		if (w == HS_WAIT_GONE) {
			if (cancel_on_disconnect)
				cancel_task(be, rec, task_id);
			break;
		}
		if (w == HS_WAIT_DRAINING) {
			buf_printf(&c.frames, "event: reconnect\ndata: {\"message\":\"server shutting down; reconnect "
					      "with Last-Event-ID\",\"taskId\":\"%s\",\"lastEventId\":%llu}\n\n",
				   task_id, (unsigned long long)f.line_no);
			flush_frames(&c);
			break;
		}
	}
	if (watch >= 0)
		be->storage->ops->unwatch(be->storage, watch);
	cJSON_Delete(meta);
	buf_free(&c.frames);
	return hs_stream_end(resp);
}
