/*
 * err.h: the error a failing call hands back to its caller.
 *
 * Every layer that can fail takes a `struct err *` and, on failure, fills
 * it with one line a user can act on (what failed, on what, and why) and
 * returns -1.  `http` carries the HTTP status when the failure came from a
 * remote API (0 otherwise), so callers can map 404/412/403 without parsing
 * text.  Messages never hold secrets: callers pass redacted values only.
 */
#ifndef CCR_ERR_H
#define CCR_ERR_H

#include <stddef.h>

struct err {
	int http;         /* HTTP status of a remote failure, or 0 */
	char msg[512];
};

#define ERR_INIT { 0, { 0 } }

/* err_set: format msg (http = 0) and return -1. */
int err_set(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* err_http: like err_set, recording an HTTP status. Returns -1. */
int err_http(struct err *e, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* err_prefix: prepend "what: " to an existing message. Returns -1. */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
