/*
 * logsink.h: the task's output log, written to storage as the seed's
 * JSONL chunk objects (seed-spec §5.1).
 *
 * Lines go into a buffer; a background thread writes the buffer as the
 * next chunk `sessions/<task>/<NNNNNN>-<YYYYMMDDhhmmss>.jsonl` (named by
 * task/record.h's tr_key_chunk) when it holds 100 lines, or as soon as a
 * line is complete provided the last chunk was stored at least
 * `interval_ms` ago (else when that interval has passed).
 * Indexes are zero-padded to six digits so names sort correctly past 999
 * (seed readers parse the number, so they read these too).  A failed upload keeps its
 * lines and is retried with backoff; it never loses a line and never
 * crashes the job.  logsink_close() flushes everything that is left and
 * returns only when it is stored (or the deadline passed, which it
 * reports), so terminal metadata can be written after the last chunk.
 * Numbering continues after the chunks already stored for the task, so a
 * second job on the same task (a retried attempt) appends.
 */
#ifndef CCR_LOGSINK_H
#define CCR_LOGSINK_H

#include <stddef.h>

#include "backend/storage.h"

struct logsink;

struct logsink *logsink_open(struct storage *st, const char *task_id, int interval_ms, struct err *e);

/* logsink_line: append one line (no newline; blank lines are dropped). */
int logsink_line(struct logsink *ls, const char *line, size_t n);

/* logsink_close: flush all, stop the thread, free.  0 when every line was
 * stored; -1 with e set when some could not be stored by deadline_ms. */
int logsink_close(struct logsink *ls, int deadline_ms, struct err *e);

/* logsink_set_give_up: when storing has failed without a break for
 * after_ms, call fn(arg) once (from the writer thread) and stop retrying
 * until logsink_close, which then makes one short last attempt: a job
 * whose storage is gone ends in bounded time instead of waiting forever. */
void logsink_set_give_up(struct logsink *ls, long after_ms, void (*fn)(void *arg), void *arg);

/* Counts for the result summary. */
size_t logsink_lines(const struct logsink *ls);
unsigned logsink_chunks(const struct logsink *ls);

#endif
