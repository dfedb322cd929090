/*
 * sse.h: a task's log as Server-Sent Events (seed-spec §3.1, with ccr's
 * additions).
 *
 * Frames: each stored line becomes `id: <line number>` + `data: <line>`,
 * where a line that is JSON is re-serialised as JavaScript would (the
 * seed's grammar) and anything else is wrapped as {"type":"text",
 * "content":...}.  The stream opens with `retry: 3000`, sends a `: keepalive`
 * comment every 15 s, and ends with the seed's `event: cancelled` or
 * `event: error` when they apply, then `event: done` carrying the status,
 * terminal reason, exit code and usage.  When the server drains, open
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

/* sse_stream: stream task_id's log from line resume_after+1 until the task
 * is terminal.  cancel_on_disconnect: a client that goes away cancels the
 * task (POST /run with cancelOnDisconnect: true); otherwise the task runs
 * on and the client may resume.  Returns when the stream ended. */
struct serve_ctx;
int sse_stream(struct serve_ctx *sc, struct hs_resp *resp, const char *task_id, uint64_t resume_after,
	       int cancel_on_disconnect);

/* sse_final: the closing events for a terminal task's metadata (appended
 * to out): the seed's `event: cancelled` or `event: error`, then `done`. */
int sse_final(struct buf *out, const cJSON *meta);

/* sse_last_event_id: a Last-Event-ID (or ?lastEventId=) value as the line
 * number to resume after: "" is 0, else only decimal digits whose value
 * fits in 64 bits (no sign, no spaces).  0, or -1 when it is not one. */
int sse_last_event_id(const char *s, uint64_t *out);

/* sse_frame: one data frame for a log line (appended to out). */
int sse_frame(struct buf *out, uint64_t id, const char *line, size_t n);

#endif
