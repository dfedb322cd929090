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
 * arrives or the deadline passes; 410 stops retrying.
 *
 * Redirects are followed as the original's HTTP client did (fetch and
 * axios agree): 307 and 308 repeat the POST with the same body and
 * headers (signatures included); 303, and 301/302 after a POST, continue
 * with a GET that carries the signature headers but no body and no
 * Content-Type; any other 3xx is a failure.  At most WH_MAX_REDIRECTS
 * hops per attempt (axios's default, 21); more is a failure that is not
 * retried.  A 2xx at the end of the chain counts as delivered.
 *
 * SSRF guard (wh_check_url): before the first attempt the URL's host is
 * resolved and refused when any address is loopback, private,
 * link-local, unique-local, multicast, unspecified or reserved (the
 * classes of net/addrclass.h, IPv4 embedded in IPv6 included), unless
 * CCR_ALLOW_PRIVATE_CALLBACKS=1 or the host is named in
 * CCR_CALLBACK_ALLOW_HOSTS; the checked address is pinned for every
 * attempt, so DNS cannot be switched in between.  Every redirect target
 * is checked (and pinned) the same way before it is contacted; a refused
 * target ends the delivery without retries.  `ccr serve` runs the same
 * check when a task is submitted (WH_CHECK_DNS_OPTIONAL: a name that does
 * not resolve yet passes there and is checked again at delivery).
 */
#ifndef CCR_WEBHOOK_H
#define CCR_WEBHOOK_H

#include <stddef.h>

#include <cJSON.h>

#include "util/buf.h"
#include "util/err.h"

#define WH_MAX_REDIRECTS 21

/* wh_check_url flags and its "does not resolve" result. */
#define WH_CHECK_DNS_OPTIONAL 1u
#define WH_UNRESOLVED (-2)

struct wh_result {
	int delivered;
	unsigned attempts;
	long last_status;
	char webhook_id[48];
};

/* The operator's exemptions from the deny-list: their settings, read once
 * by the caller (serve_settings, job_settings); NULL: none. */
struct wh_policy {
	const char *allow_private;  /* CCR_ALLOW_PRIVATE_CALLBACKS: "1" exempts every address */
	const char *allow_hosts;    /* CCR_CALLBACK_ALLOW_HOSTS: hosts exempt, comma-separated */
};

/* wh_check_url: the SSRF check of url (http or https, host not on the
 * deny-list, unless pol exempts it); `what` names the URL in messages
 * ("callbackUrl").  Returns
 * 0; -1 when refused; WH_UNRESOLVED when the host does not resolve
 * (unless flags has WH_CHECK_DNS_OPTIONAL).  On success, when resolve_out
 * is not NULL and the host resolved, it receives a curl RESOLVE entry
 * "host:port:address" pinning the checked address. */
int wh_check_url(const char *url, const char *what, const struct wh_policy *pol, unsigned flags, char *resolve_out,
		 size_t n, struct err *e);

/* wh_sign_seed: "sha256=<hex>" for timestamp ts (appended to out). */
int wh_sign_seed(const char *secret, const char *ts, const char *body, size_t len, struct buf *out);

/* wh_sign_std: "v1,<base64>" for id and ts (appended to out). */
int wh_sign_std(const char *secret, const char *id, const char *ts, const char *body, size_t len, struct buf *out);

/* wh_deliver: deliver body to url until 2xx or deadline_ms; url and each
 * redirect target are checked (wh_check_url with pol).  0 when delivered;
 * -1 with e set otherwise (out says how far it got). */
int wh_deliver(const char *url, const char *secret, const struct wh_policy *pol, const char *body, size_t len,
	       long deadline_ms, struct wh_result *out, struct err *e);

/* wh_report: the metadata's "webhook" object for an attempt that ended
 * with rc (0 delivered) and, on failure, the (redacted) message. */
cJSON *wh_report(const struct wh_result *wr, int rc, const char *error);

/* wh_not_sent: the "webhook" object when no attempt was made, and why. */
cJSON *wh_not_sent(const char *why);

#endif
