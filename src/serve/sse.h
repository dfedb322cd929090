/*
 * sse.h: a task's log as Server-Sent Events (seed-spec §3.1, with ccr's
 * additions).
 *
 * Frames (sseframe.h): each stored line becomes `id: <line number>` +
 * `data: <line>`.  The stream opens with `retry: 3000`, sends a
 * `: keepalive` comment every 15 s, and ends with the seed's
 * `event: cancelled` or `event: error` when they apply, then `event: done`
 * carrying the status, terminal reason, exit code and usage.  When the server drains, open
 * streams get `event: reconnect` and end; the task goes on.  So does a
 * stream whose client reads too slowly to stay within the task's window
 * of recent lines (topic.h): it resumes from storage with Last-Event-ID.
 */
#ifndef CCR_SSE_H
#define CCR_SSE_H

#include <stdint.h>

#include <cJSON.h>

#include "backend/config.h"
#include "http/server.h"

/* What a stream reads and acts on: given explicitly (serve/api.c fills it
 * from its serve_ctx), so this module depends on nothing above it. */
struct reconciler;
struct topics;
struct sse_src {
	struct backends *be;
	struct reconciler *rec;    /* finalises a task cancelled while queued */
	struct topics *topics;     /* one reader per followed task (topic.h) */
};

/* sse_stream: stream task_id's log from line resume_after+1 until the task
 * is terminal.  cancel_on_disconnect: a client that goes away cancels the
 * task (POST /run with cancelOnDisconnect: true); otherwise the task runs
 * on and the client may resume.  Returns when the stream ended. */
int sse_stream(const struct sse_src *src, struct hs_resp *resp, const char *task_id, uint64_t resume_after,
	       int cancel_on_disconnect);

/* sse_last_event_id: a Last-Event-ID (or ?lastEventId=) value as the line
 * number to resume after: "" is 0, else only decimal digits whose value
 * fits in 64 bits (no sign, no spaces).  0, or -1 when it is not one. */
int sse_last_event_id(const char *s, uint64_t *out);

#endif
