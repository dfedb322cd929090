/*
 * log.h: the service log of `ccr serve` (prefix slog_): one JSON object
 * per line on stdout, in the shape Cloud Logging's structured logging
 * understands (severity, message, time; httpRequest and
 * logging.googleapis.com/trace for access logs).
 *
 * Lines are written whole under a mutex with one write(2), so lines from
 * concurrent threads never interleave.  LOG_LEVEL (debug, info, warn or
 * warning, error; default info) drops less severe lines.  Messages are
 * written as given: callers must not pass secrets or Claude's output.
 */
#ifndef CCR_SERVE_LOG_H
#define CCR_SERVE_LOG_H

#include "http/server.h"

enum slog_level { SLOG_DEBUG, SLOG_INFO, SLOG_WARNING, SLOG_ERROR };

/* Read LOG_LEVEL and the project (GOOGLE_CLOUD_PROJECT, else PROJECT_ID)
 * for trace names.  Call once, before any thread logs. */
void slog_init(void);

/* 1 when lines of this level are written. */
int slog_enabled(enum slog_level level);

/* A line with a printf-formatted message. */
void slog(enum slog_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line with message plus extra, pre-rendered JSON members appended
 * after "time" (e.g. "\"port\":8080"; NULL or "" for none). */
void slog_fields(enum slog_level level, const char *message, const char *extra);

/* The access-log line of one request (an hs_config.on_access hook body):
 * INFO below 400, WARNING for 4xx, ERROR for 5xx. */
void slog_access(const struct hs_access *a);

/* "projects/<project>/traces/<trace id>" from an X-Cloud-Trace-Context
 * value ("TRACE_ID/SPAN_ID;o=1") into out, or "" when there is no
 * project or the value is not well-formed.  Exported for the tests. */
void slog_trace_name(const char *project, const char *header, char *out, size_t outlen);

#endif
