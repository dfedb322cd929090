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
#include <time.h>

#include <curl/curl.h>

#include "crypto/crypto.h"
#include "http/client.h"
#include "job/webhook.h"
#include "net/ca.h"
#include "util/b64.h"
#include "util/hex.h"

static int forbidden_v4(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xA9FE || /* 169.254/16 */
	       (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8 || (a >> 22) == (100 << 2 | 1) ||    /* 172.16/12 192.168/16 100.64/10 */
	       (a >> 28) == 0xE || (a >> 28) == 0xF;                                             /* multicast, reserved */
}

static int forbidden(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return forbidden_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		int zero = 1, i;

		for (i = 0; i < 15; i++)
			zero &= b[i] == 0;
		if (zero)                                     /* :: and ::1 */
			return 1;
		if (memcmp(b, mapped, 12) == 0)
			return forbidden_v4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
		return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff;
	}
	return 1;
}

static int allow_private(void)
{
	const char *v = getenv("CCR_ALLOW_PRIVATE_CALLBACKS");

	return v && strcmp(v, "1") == 0;
}

int wh_check_url(const char *url, char *resolve_out, size_t n, struct err *e)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, addr[INET6_ADDRSTRLEN];
	struct addrinfo hints, *res = NULL, *ai;
	const char *h;
	int rc = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		err_set(e, "callbackUrl is not a valid URL");
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		err_set(e, "callbackUrl must use http or https protocol");
		goto out;
	}
	/* curl keeps IPv6 literals in brackets. */
	h = host;
	if (h[0] == '[') {
		h++;
		host[strlen(host) - 1] = 0;
	}
	if (getaddrinfo(h, port, &hints, &res) != 0 || !res) {
		err_set(e, "callbackUrl host %s does not resolve", h);
		goto out;
	}
	for (ai = res; ai; ai = ai->ai_next)
		if (forbidden(ai->ai_addr) && !allow_private()) {
			err_set(e, "callbackUrl host %s resolves to a loopback, private or link-local address "
				   "(set CCR_ALLOW_PRIVATE_CALLBACKS=1 to allow it in local development)", h);
			goto out;
		}
	if (!inet_ntop(res->ai_family,
		       res->ai_family == AF_INET ? (void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
						 : (void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr,
		       addr, sizeof(addr))) {
		err_set(e, "cannot format the address of %s", h);
		goto out;
	}
	snprintf(resolve_out, n, res->ai_family == AF_INET6 ? "%s:%s:[%s]" : "%s:%s:%s", h, port, addr);
	rc = 0;
out:
	if (res)
		freeaddrinfo(res);
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

/* One attempt; returns the HTTP status or 0 on a transport error. */
static long attempt(const char *url, const char *resolve, const char *secret, const char *id, const char *body,
		    size_t len)
{
	struct curl_slist *hdrs = NULL, *pin = NULL;
	struct buf seed = BUF_INIT, std = BUF_INIT, line = BUF_INIT;
	char ts[32];
	long status = 0;
	CURL *c = curl_easy_init();

	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	if (!c || wh_sign_seed(secret, ts, body, len, &seed) || wh_sign_std(secret, id, ts, body, len, &std))
		goto out;
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "User-Agent: cloudrun-claude-code/async-task");
	buf_printf(&line, "X-Webhook-Signature: %s", seed.p), hdrs = curl_slist_append(hdrs, line.p), buf_reset(&line);
	buf_printf(&line, "X-Webhook-Timestamp: %s", ts), hdrs = curl_slist_append(hdrs, line.p), buf_reset(&line);
	buf_printf(&line, "webhook-id: %s", id), hdrs = curl_slist_append(hdrs, line.p), buf_reset(&line);
	buf_printf(&line, "webhook-timestamp: %s", ts), hdrs = curl_slist_append(hdrs, line.p), buf_reset(&line);
	buf_printf(&line, "webhook-signature: %s", std.p), hdrs = curl_slist_append(hdrs, line.p);
	pin = curl_slist_append(NULL, resolve);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, pin);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	ca_curl_apply(c);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
out:
	curl_slist_free_all(hdrs);
	curl_slist_free_all(pin);
	buf_free(&seed), buf_free(&std), buf_free(&line);
	if (c)
		curl_easy_cleanup(c);
	return status;
}

int wh_deliver(const char *url, const char *secret, const char *body, size_t len, long deadline_ms,
	       struct wh_result *out, struct err *e)
{
	uint8_t rnd[16];
	char resolve[600], hexid[33];
	uint64_t deadline;
	unsigned n;

	memset(out, 0, sizeof(*out));
	if (cr_random(rnd, sizeof(rnd)) != 0)
		return err_set(e, "webhook: no randomness for the webhook id");
	hex_fmt(hexid, rnd, sizeof(rnd));
	snprintf(out->webhook_id, sizeof(out->webhook_id), "msg_%s", hexid);
	if (wh_check_url(url, resolve, sizeof(resolve), e) != 0)
		return -1;
	deadline = hc_now_ms() + (uint64_t)(deadline_ms > 0 ? deadline_ms : 600000);
	for (n = 0;; n++) {
		out->last_status = attempt(url, resolve, secret, out->webhook_id, body, len);
		out->attempts++;
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
