/*
 * log.h: the one log of ccr (prefix slog_), for `ccr serve` and `ccr job`:
 * one JSON object per line, in the shape Cloud Logging's structured
 * logging understands ({"severity":..,"message":..,"time":..} plus any
 * fields the caller adds: httpRequest, logging.googleapis.com/trace, ...).
 *
 * Lines are written whole under a mutex with one write(2) loop, so lines
 * from concurrent threads never interleave.  LOG_LEVEL (debug, info, warn
 * or warning, error; default info) drops less severe lines.  The output
 * descriptor is stdout for serve (its stdout is the container's log) and
 * stderr for the job (its stdout is left to the agent's tools); the job
 * also sets a redaction hook, applied to each message and to the extra
 * fields, so no registered secret reaches its log.  The settings are set
 * once, before any thread logs, and only read afterwards.
 */
#ifndef CCR_UTIL_LOG_H
#define CCR_UTIL_LOG_H

#include <stddef.h>

#include "util/buf.h"

enum slog_level { SLOG_DEBUG, SLOG_INFO, SLOG_WARNING, SLOG_ERROR };

/* slog_init: level is LOG_LEVEL's value (debug, info, warn, error; NULL or
 * empty: info); lines go to fd (1 or 2), each message and
 * field passed through redact first (NULL: none; it edits the buffer in
 * place and returns 0, or -1 to drop the line).  Call once, before any
 * thread logs. */
void slog_init(int fd, int (*redact)(struct buf *text), const char *level);

/* 1 when lines of this level are written. */
int slog_enabled(enum slog_level level);

/* A line with a printf-formatted message. */
void slog(enum slog_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line with message plus extra, pre-rendered JSON members appended
 * after "time" (e.g. "\"port\":8080"; NULL or "" for none). */
void slog_fields(enum slog_level level, const char *message, const char *extra);

/* slog_fields through the queue (serve's access log): the line is written
 * by a writer thread, soon and in order with the other queued lines; a
 * line logged with slog or slog_fields afterwards may come out first.
 * Without a running queue it is slog_fields. */
void slog_fields_queued(enum slog_level level, const char *message, const char *extra);

/* slog_queue_start: start the writer thread (once; 0, or -1 when no
 * thread can start: queued lines are then written at once).
 * slog_queue_stop: write every queued line, stop the thread. */
int slog_queue_start(void);
void slog_queue_stop(void);

#endif
