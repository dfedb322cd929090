/*
 * webhook.c: see webhook.h.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "crypto/crypto.h"
#include "http/client.h"
#include "webhook/webhook.h"
#include "net/addrclass.h"
#include "net/ca.h"
#include "util/b64.h"
#include "util/hex.h"
#include "util/clock.h"

/* The shared deny-list (net/addrclass.h): anything but a public address. */
static int forbidden(const struct sockaddr *sa)
{
	return ac_classify(sa) != AC_PUBLIC;
}

static int allow_private(const struct wh_policy *pol)
{
	return pol && pol->allow_private && strcmp(pol->allow_private, "1") == 0;
}

/* 1 when host is named in CCR_CALLBACK_ALLOW_HOSTS (comma-separated,
 * case-insensitive, exactly as written in the URL). */
static int allow_host(const struct wh_policy *pol, const char *host)
{
	const char *list = pol ? pol->allow_hosts : NULL, *p, *end;
	size_t n = strlen(host);

	for (p = list; p && *p; p = *end ? end + 1 : end) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		while (p < end && *p == ' ')
			p++;
		if ((size_t)(end - p) == n && strncasecmp(p, host, n) == 0)
			return 1;
	}
	return 0;
}

/* The first address of res, as a curl RESOLVE entry pinning it. */
static int pin_entry(const struct addrinfo *res, const char *h, const char *port, char *out, size_t n,
		     struct err *e)
{
	char addr[INET6_ADDRSTRLEN];
	const void *a = res->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
						  : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;

	if (!inet_ntop(res->ai_family, a, addr, sizeof(addr)))
		return err_set(e, "cannot format the address of %s", h);
	if (snprintf(out, n, res->ai_family == AF_INET6 ? "%s:%s:[%s]" : "%s:%s:%s", h, port, addr) >= (int)n)
		return err_set(e, "the host name %s is too long", h);
	return 0;
}

/* Resolve h and apply the deny-list; 0, WH_UNRESOLVED or -1 (refused). */
static int check_host(const char *what, const char *h, const char *port, const struct wh_policy *pol, unsigned flags,
		      char *resolve_out, size_t n, struct err *e)
{
	struct addrinfo hints, *res = NULL, *ai;
	int rc = 0, exempt = allow_private(pol) || allow_host(pol, h);

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(h, port, &hints, &res) != 0 || !res) {
		if (res)
			freeaddrinfo(res);
		if (flags & WH_CHECK_DNS_OPTIONAL)
			return 0;
		err_set(e, "%s host %s does not resolve", what, h);
		return WH_UNRESOLVED;
	}
	for (ai = res; ai && !exempt; ai = ai->ai_next)
		if (forbidden(ai->ai_addr)) {
			rc = err_set(e, "%s host %s resolves to a loopback, private or link-local address (set "
				   "CCR_ALLOW_PRIVATE_CALLBACKS=1 in local development, or name the host in "
				   "CCR_CALLBACK_ALLOW_HOSTS)", what, h);
			break;
		}
	if (rc == 0 && resolve_out)
		rc = pin_entry(res, h, port, resolve_out, n, e);
	freeaddrinfo(res);
	return rc;
}

int wh_check_url(const char *url, const char *what, const struct wh_policy *pol, unsigned flags, char *resolve_out,
		 size_t n, struct err *e)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	const char *h;
	int rc = -1;

	if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		err_set(e, "%s is not a valid URL", what);
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		err_set(e, "%s must use http or https protocol", what);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		err_set(e, "%s is not a valid URL", what);
		goto out;
	}
	/* curl keeps IPv6 literals in brackets. */
	h = host;
	if (h[0] == '[') {
		h++;
		host[strlen(host) - 1] = 0;
	}
	rc = check_host(what, h, port, pol, flags, resolve_out, n, e);
out:
	curl_free(scheme), curl_free(host), curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

int wh_sign_seed(const char *secret, const char *ts, const char *body, size_t len, struct buf *out)
{
	struct cr_hmac_sha256 h;
	uint8_t mac[32];
	char hex[65];

	cr_hmac_sha256_init(&h, secret, strlen(secret));
	cr_hmac_sha256_update(&h, ts, strlen(ts));
	cr_hmac_sha256_update(&h, ".", 1);
	cr_hmac_sha256_update(&h, body, len);
	cr_hmac_sha256_final(&h, mac);
	hex_fmt(hex, mac, sizeof(mac));
	return buf_printf(out, "sha256=%s", hex);
}

int wh_sign_std(const char *secret, const char *id, const char *ts, const char *body, size_t len, struct buf *out)
{
	struct buf key = BUF_INIT;
	struct cr_hmac_sha256 h;
	uint8_t mac[32];
	int rc;

	if (strncmp(secret, "whsec_", 6) != 0 || b64_decode(&key, secret + 6, strlen(secret + 6)) != 0) {
		buf_reset(&key);
		if (buf_adds(&key, secret) != 0)
			return -1;
	}
	cr_hmac_sha256_init(&h, key.p, key.len);
	cr_hmac_sha256_update(&h, id, strlen(id));
	cr_hmac_sha256_update(&h, ".", 1);
	cr_hmac_sha256_update(&h, ts, strlen(ts));
	cr_hmac_sha256_update(&h, ".", 1);
	cr_hmac_sha256_update(&h, body, len);
	cr_hmac_sha256_final(&h, mac);
	cr_wipe(key.p, key.len);
	buf_free(&key);
	rc = buf_adds(out, "v1,") || b64_encode(out, mac, sizeof(mac));
	return rc ? -1 : 0;
}

static size_t discard(char *p, size_t s, size_t n, void *u)
{
	(void)p, (void)u;
	return s * n;
}

/* What every hop of one attempt shares: the signed headers' inputs. */
struct wh_send {
	const char *secret, *id, *body;
	size_t len;
	char ts[32];
	const struct wh_policy *pol;
};

static struct curl_slist *add_header(struct curl_slist *h, struct buf *line, const char *name, const char *value)
{
	struct curl_slist *n;

	buf_reset(line);
	if (!h || buf_printf(line, "%s: %s", name, value) != 0 || !(n = curl_slist_append(h, line->p))) {
		curl_slist_free_all(h);
		return NULL;
	}
	return n;
}

/* The headers of one hop: both signatures always, Content-Type only
 * when the body goes with it. */
static struct curl_slist *hop_headers(const struct wh_send *s, int post)
{
	struct buf seed = BUF_INIT, std = BUF_INIT, line = BUF_INIT;
	struct curl_slist *h = curl_slist_append(NULL, "User-Agent: cloudrun-claude-code/async-task");

	if (wh_sign_seed(s->secret, s->ts, s->body, s->len, &seed) ||
	    wh_sign_std(s->secret, s->id, s->ts, s->body, s->len, &std)) {
		curl_slist_free_all(h);
		h = NULL;
	}
	if (post)
		h = add_header(h, &line, "Content-Type", "application/json");
	h = add_header(h, &line, "X-Webhook-Signature", seed.p);
	h = add_header(h, &line, "X-Webhook-Timestamp", s->ts);
	h = add_header(h, &line, "webhook-id", s->id);
	h = add_header(h, &line, "webhook-timestamp", s->ts);
	h = add_header(h, &line, "webhook-signature", std.p);
	buf_free(&seed), buf_free(&std), buf_free(&line);
	return h;
}

/* One request to url, pinned to resolve; POST with the body, or GET.
 * Returns the HTTP status (0 on a transport error); for a redirect,
 * *location receives the absolute target (malloc'd) when there is one. */
static long send_hop(const struct wh_send *s, const char *url, const char *resolve, int post, char **location)
{
	struct curl_slist *hdrs = hop_headers(s, post), *pin = curl_slist_append(NULL, resolve);
	long status = 0;
	char *to = NULL;
	CURL *c = curl_easy_init();

	*location = NULL;
	if (!c || !hdrs || !pin)
		goto out;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, pin);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (post) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, s->body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->len);
	} else {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);   /* followed here, each hop checked */
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	ca_curl_apply(c);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &to) == CURLE_OK && to)
			*location = strdup(to);
	}
out:
	curl_slist_free_all(hdrs);
	curl_slist_free_all(pin);
	if (c)
		curl_easy_cleanup(c);
	return status;
}

static int is_redirect(long status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* One attempt: POST to url (pinned to resolve), then follow redirects as
 * fetch and axios do: 307/308 repeat the POST with its body and headers,
 * 303 (and 301/302 after a POST) continue with a GET without body or
 * Content-Type.  Each target is checked like callbackUrl and pinned.
 * Returns the last status, 0 on a transport error (retried), or -1 with e
 * set when the chain is refused (not retried). */
static long attempt(struct wh_send *s, const char *url, const char *resolve, struct err *e)
{
	char pin[600], *cur = NULL, *next = NULL;
	int post = 1, rc;
	unsigned hops;
	long status;

	snprintf(s->ts, sizeof(s->ts), "%lld", (long long)time(NULL));
	for (hops = 0;; hops++) {
		status = send_hop(s, cur ? cur : url, cur ? pin : resolve, post, &next);
		if (!is_redirect(status) || !next)
			break;
		if (hops == WH_MAX_REDIRECTS) {
			status = err_set(e, "webhook: more than %d redirects; not retrying", WH_MAX_REDIRECTS);
			break;
		}
		if (status == 303 || ((status == 301 || status == 302) && post))
			post = 0;
		free(cur);
		cur = next;
		next = NULL;
		rc = wh_check_url(cur, "the redirect target", s->pol, 0, pin, sizeof(pin), e);
		if (rc != 0) {
			status = rc == WH_UNRESOLVED ? 0 : -1;
			if (rc != WH_UNRESOLVED)
				err_prefix(e, "webhook: redirect %u refused; not retrying", hops + 1);
			break;
		}
	}
	free(cur);
	free(next);
	return status;
}

int wh_deliver(const char *url, const char *secret, const struct wh_policy *pol, const char *body, size_t len,
	       long deadline_ms, struct wh_result *out, struct err *e)
{
	uint8_t rnd[16];
	char resolve[600], hexid[33];
	struct wh_send s = { secret, out->webhook_id, body, len, "", pol };
	uint64_t deadline;
	unsigned n;

	memset(out, 0, sizeof(*out));
	if (cr_random(rnd, sizeof(rnd)) != 0)
		return err_set(e, "webhook: no randomness for the webhook id");
	hex_fmt(hexid, rnd, sizeof(rnd));
	snprintf(out->webhook_id, sizeof(out->webhook_id), "msg_%s", hexid);
	if (wh_check_url(url, "callbackUrl", pol, 0, resolve, sizeof(resolve), e) != 0)
		return -1;
	deadline = (uint64_t)clock_mono_ms() + (uint64_t)(deadline_ms > 0 ? deadline_ms : 600000);
	for (n = 0;; n++) {
		out->last_status = attempt(&s, url, resolve, e);
		out->attempts++;
		if (out->last_status < 0) {
			out->last_status = 0;
			return -1;
		}
		if (out->last_status >= 200 && out->last_status < 300) {
			out->delivered = 1;
			return 0;
		}
		if (out->last_status == 410)
			return err_set(e, "webhook: the receiver answered 410 Gone; not retrying");
		if (hc_backoff_wait(n, -1, deadline) != 0)
			break;
	}
	if (out->last_status)
		return err_set(e, "webhook: no 2xx after %u attempts (last status %ld)", out->attempts, out->last_status);
	return err_set(e, "webhook: no answer after %u attempts (connection failed)", out->attempts);
}

cJSON *wh_report(const struct wh_result *wr, int rc, const char *error)
{
	cJSON *w = cJSON_CreateObject();

	if (!w)
		return NULL;
	cJSON_AddBoolToObject(w, "delivered", rc == 0);
	cJSON_AddStringToObject(w, "webhookId", wr->webhook_id);
	cJSON_AddNumberToObject(w, "attempts", wr->attempts);
	if (wr->last_status)
		cJSON_AddNumberToObject(w, "lastStatus", wr->last_status);
	if (rc != 0)
		cJSON_AddStringToObject(w, "error", error ? error : "");
	return w;
}

cJSON *wh_not_sent(const char *why)
{
	cJSON *w = cJSON_CreateObject();

	if (w) {
		cJSON_AddFalseToObject(w, "delivered");
		cJSON_AddStringToObject(w, "error", why);
	}
	return w;
}
