/*
 * redact.h: redaction of secrets by value.
 *
 * A task registers every secret it was given (API key, OAuth token, SSH
 * key, each environmentSecrets value, credentials found in URLs) once; any
 * text ccr is about to log, store or return as an error then goes through
 * redact_apply(), which replaces each occurrence of a registered value with
 * "[REDACTED]".  Values shorter than REDACT_MIN bytes are not registered
 * (they would blank out ordinary words).  Multi-line secrets (SSH keys) are
 * also registered line by line, so a fragment in an error is caught too.
 * Thread-safe: registration and application may race.
 */
#ifndef CCR_REDACT_H
#define CCR_REDACT_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

#define REDACT_MIN 6
#define REDACT_MARK "[REDACTED]"

/* redact_add: register a secret (copied). 0, or -1 out of memory. */
int redact_add(const char *secret);

/* redact_add_encoded: redact_add, plus the forms the value takes when a
 * program prints it encoded: base64 and base64url at any alignment inside
 * a longer encoded text, and percent-encoding.  For keys, tokens and the
 * values of environment secrets, which an agent could print either way. */
int redact_add_encoded(const char *secret);

/* redact_add_url: register the password/token part of a URL's userinfo. */
int redact_add_url(const char *url);

/* redact_apply: replace every registered secret in b, in place. */
int redact_apply(struct buf *b);

/* redact_str: a redacted copy of s into out (appended). */
int redact_str(struct buf *out, const char *s);

/* redact_err: redact e's message in place (secrets inside paths or
 * outputs it quotes); returns -1, so `return redact_err(e);` fails. */
int redact_err(struct err *e);

/* redact_clear: forget every secret (wiping the copies). */
void redact_clear(void);

#endif
