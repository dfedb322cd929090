/*
 * sseframe.h: the Server-Sent Events frames of a task's log (prefix sf_),
 * rendered once per line by the task's topic (topic.h) and written by
 * every stream that follows it (sse.h).
 *
 * Each stored line becomes `id: <line number>` + `data: <line>`, where a
 * line that is JSON is re-serialised as JavaScript would (the seed's
 * grammar) and anything else is wrapped as {"type":"text","content":...}.
 * A terminal task's stream ends with the seed's `event: cancelled` or
 * `event: error` when they apply, then `event: done` carrying the status,
 * terminal reason, exit code and usage.
 */
#ifndef CCR_SSEFRAME_H
#define CCR_SSEFRAME_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "util/buf.h"

/* sf_frame: one data frame for a log line (appended to out). */
int sf_frame(struct buf *out, uint64_t id, const char *line, size_t n);

/* sf_final: the closing events for a terminal task's metadata (appended
 * to out): the seed's `event: cancelled` or `event: error`, then `done`. */
int sf_final(struct buf *out, const cJSON *meta);

#endif
