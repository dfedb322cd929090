/*
 * client.h: ccr's HTTP client, a thin layer over one libcurl easy handle
 * per call, with the retry policy every Google Cloud call shares.
 *
 * A call is described by a struct hc_request (method, URL, headers, a body
 * from a buffer or a callback, timeouts, a retry class) and answered in a
 * struct hc_response (status, body, all response headers of the final
 * response).  hc_do() returns 0 whenever an HTTP response arrived, whatever
 * its status, so callers map statuses themselves; it returns -1 only when
 * no response could be had (connection refused or reset, timeout, TLS
 * failure, a body too large), with the reason in `e`.
 *
 * Transport: HTTPS only (TLS >= 1.2, peer and host verified against the
 * roots of ca_curl_apply()), unless the caller sets allow_http, which ccr
 * does only for explicit endpoint overrides (emulators, fakes, the
 * metadata server).  Redirects are never followed (a resumable upload's
 * 308 is an answer, not a redirect).  CURLOPT_NOSIGNAL is set, so calls
 * are safe from any thread; connections, DNS answers and TLS sessions are
 * shared between calls and threads through one locked curl share handle.
 * No "Expect: 100-continue" round trip is made.  Calls that are not
 * HC_RETRY_IDEMPOTENT always open a new connection: on a reused one, curl
 * would silently resend a request whose connection died before the
 * answer, which for a POST may run it twice.
 *
 * Retries (hc_do does them; enum hc_retry says which):
 *   - HC_RETRY_IDEMPOTENT: retry on HTTP 408, 429 and 5xx, and on
 *     connection refused/reset, send/receive failures, empty replies and
 *     timeouts.  Use it for calls that are idempotent, or made safe by a
 *     precondition (GCS ifGenerationMatch).
 *   - HC_RETRY_UNSENT: retry only what certainly never reached the
 *     service: a connection that could not be opened, and HTTP 429.  For
 *     calls that must not run twice (Cloud Run jobs.run).
 *   - HC_RETRY_NEVER: one attempt.
 * Waits are exponential with full jitter: before retry n (0-based) the
 * wait is uniform in [0, min(32 * base, base * 2^n)], base = 1 s.  A
 * Retry-After header (seconds or an HTTP-date) makes the wait at least
 * that long.  No retry starts after the call's deadline (default
 * 120 * base, i.e. 120 s) and no wait extends past it.
 *
 * Environment: CCR_RETRY_BASE_MS (1..60000, default 1000) replaces the
 * 1 s base and so scales the whole schedule: the initial wait, the 32x
 * cap, Retry-After values (read as seconds * base / 1000) and the default
 * deadline.  Tests set it to a few milliseconds to run fast.
 *
 * Every retry, wherever it happens (hc_do or a caller's own loop through
 * hc_backoff_wait), adds one to a process-wide atomic counter that tests
 * and benchmarks read with hc_retries_total().
 *
 * Error messages name the method and the URL without its query string
 * (session URIs carry upload ids) and never include headers or bodies;
 * callers must not put secrets into URLs.
 */
#ifndef CCR_HTTP_CLIENT_H
#define CCR_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/buf.h"
#include "util/err.h"

enum hc_retry {
	HC_RETRY_NEVER = 0,
	HC_RETRY_IDEMPOTENT,
	HC_RETRY_UNSENT,
};

/* A body callback copies up to n bytes into dst and returns how many
 * (0 at the end), or (size_t)-1 to abort the call. */
typedef size_t (*hc_read_fn)(void *arg, char *dst, size_t n);
/* Rewind a callback body to its start before a retry: 0, or -1 when it
 * cannot (the call then fails instead of retrying). */
typedef int (*hc_rewind_fn)(void *arg);

struct hc_request {
	const char *method;             /* "GET", "POST", "PUT", "DELETE", ...; NULL: GET */
	const char *url;
	const char *const *headers;     /* NULL or NULL-terminated "Name: value" lines */
	/* Body, from a buffer ... */
	const void *body;
	size_t body_len;
	/* ... or from a callback (used when read != NULL). read_len is the
	 * exact length, or -1 for a chunked body. */
	hc_read_fn read;
	hc_rewind_fn rewind;
	void *read_arg;
	int64_t read_len;
	enum hc_retry retry;
	int own_attempts;               /* every send is one of ours, counted in
	                                 * hc_response.attempts: no silent resend by
	                                 * curl (implied unless HC_RETRY_IDEMPOTENT) */
	int allow_http;                 /* accept http:// (endpoint overrides only) */
	long connect_timeout_ms;        /* 0: 10 s */
	long timeout_ms;                /* per attempt; 0: 60 s */
	long deadline_ms;               /* no retry starts later than this after the
	                                 * call began; 0: 120 * base */
	size_t max_response;            /* largest body accepted; 0: 1 GiB */
};

struct hc_response {
	long status;                    /* of the final attempt */
	struct buf body;
	struct buf headers;             /* "name: value" entries, each NUL-terminated */
	unsigned attempts;
};

#define HC_RESPONSE_INIT { 0, BUF_INIT, BUF_INIT, 0 }

/* Run the request (with retries).  rs is reset first; free it with
 * hc_response_free() whatever hc_do returned. */
int hc_do(const struct hc_request *rq, struct hc_response *rs, struct err *e);
void hc_response_free(struct hc_response *rs);

/* The value of the first response header called name (case-insensitive),
 * NUL-terminated, or NULL when absent. */
const char *hc_header(const struct hc_response *rs, const char *name);

/* 1 when a status is worth retrying (408, 429, 5xx). */
int hc_status_retryable(long status);

/* ---- the retry schedule (for callers with their own retry loops) ------- */

/* The base in ms: CCR_RETRY_BASE_MS or 1000. */
long hc_retry_base_ms(void);
/* The upper bound of the wait before retry n: min(32*base, base*2^n). */
uint64_t hc_backoff_ceiling_ms(unsigned n, long base_ms);
/* Full jitter: a wait in [0, ceiling] from a 32-bit random value. */
uint64_t hc_backoff_pick_ms(uint64_t ceiling_ms, uint32_t rnd);
/* Retry-After of a response in ms (seconds scaled by base/1000), or -1. */
long hc_retry_after_ms(const struct hc_response *rs);
/* A Retry-After value in seconds at time now: delay-seconds, or an
 * IMF-fixdate HTTP-date (0 when past); capped at 3600; -1 when invalid. */
long hc_retry_after_parse(const char *value, time_t now);
/* The default deadline length: 120 * base. */
long hc_default_deadline_ms(void);
/*
 * Wait before retry n (at least retry_after_ms when that is >= 0), and
 * count the retry.  Returns 0 after waiting, or -1 without waiting when
 * the wait would end after deadline (a clock_mono_ms() value).
 */
int hc_backoff_wait(unsigned n, long retry_after_ms, uint64_t deadline);

/* Retries made by this process so far (all threads). */
unsigned long long hc_retries_total(void);
/* Count one retry made without hc_backoff_wait (e.g. after a token
 * refresh on HTTP 401). */
void hc_note_retry(void);

/* A URL for messages: scheme://host/path, query and userinfo removed. */
void hc_url_for_message(const char *url, char *dst, size_t dstlen);

#endif
