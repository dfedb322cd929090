/*
 * log.h: the access log of `ccr serve` (prefix slog_), on the one log of
 * ccr (util/log.h, included here for the service's other lines): one
 * line per request with Cloud Logging's httpRequest and
 * logging.googleapis.com/trace members.  Messages are written as given:
 * callers must not pass secrets or Claude's output.
 */
#ifndef CCR_SERVE_LOG_H
#define CCR_SERVE_LOG_H

#include "http/server.h"
#include "util/log.h"

/* The project for trace names, project (serve_settings.project:
 * GOOGLE_CLOUD_PROJECT, else PROJECT_ID; "" when NULL or longer than
 * n - 1), into out. */
void slog_project(const char *project, char *out, size_t n);

/* The access-log line of one request (an hs_config.on_access hook body):
 * INFO below 400, WARNING for 4xx, ERROR for 5xx; project as above. */
void slog_access(const struct hs_access *a, const char *project);

/* "projects/<project>/traces/<trace id>" from an X-Cloud-Trace-Context
 * value ("TRACE_ID/SPAN_ID;o=1") into out, or "" when there is no
 * project or the value is not well-formed.  Exported for the tests. */
void slog_trace_name(const char *project, const char *header, char *out, size_t outlen);

#endif
