/*
 * webhook.h: the signed completion webhook (seed-spec §10.4, gcp-api §10).
 *
 * Each attempt POSTs the exact body bytes with two signature schemes under
 * one secret (CLOUDRUN_CALLBACK_SECRET):
 *   - the seed's: X-Webhook-Timestamp: <unix s>, X-Webhook-Signature:
 *     sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>;
 *   - Standard Webhooks: webhook-id (the same on every attempt),
 *     webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256(key,
 *     "<id>.<ts>.<body>")>, where key is the base64-decoded rest of a
 *     "whsec_..." secret, or the secret's bytes otherwise.
 * Attempts repeat with exponential backoff and full jitter until a 2xx
 * arrives or the deadline passes; 3xx is a failure (redirects are not
 * followed) and 410 stops retrying.  Before the first attempt the URL's host
 * is resolved and refused when any address is loopback, private,
 * link-local, unique-local, multicast or unspecified, unless
 * CCR_ALLOW_PRIVATE_CALLBACKS=1; the checked address is pinned for every
 * attempt, so DNS cannot be switched in between.
 */
#ifndef CCR_WEBHOOK_H
#define CCR_WEBHOOK_H

#include <stddef.h>

#include <cJSON.h>

#include "util/buf.h"
#include "util/err.h"

struct wh_result {
	int delivered;
	unsigned attempts;
	long last_status;
	char webhook_id[48];
};

/* wh_check_url: the SSRF check; on success resolve_out receives a curl
 * RESOLVE entry "host:port:address" pinning the checked address. */
int wh_check_url(const char *url, char *resolve_out, size_t n, struct err *e);

/* wh_sign_seed: "sha256=<hex>" for timestamp ts (appended to out). */
int wh_sign_seed(const char *secret, const char *ts, const char *body, size_t len, struct buf *out);

/* wh_sign_std: "v1,<base64>" for id and ts (appended to out). */
int wh_sign_std(const char *secret, const char *id, const char *ts, const char *body, size_t len, struct buf *out);

/* wh_deliver: deliver body to url until 2xx or deadline_ms.  0 when
 * delivered; -1 with e set otherwise (out says how far it got). */
int wh_deliver(const char *url, const char *secret, const char *body, size_t len, long deadline_ms,
	       struct wh_result *out, struct err *e);

/* wh_report: the metadata's "webhook" object for an attempt that ended
 * with rc (0 delivered) and, on failure, the (redacted) message. */
cJSON *wh_report(const struct wh_result *wr, int rc, const char *error);

/* wh_not_sent: the "webhook" object when no attempt was made, and why. */
cJSON *wh_not_sent(const char *why);

#endif
