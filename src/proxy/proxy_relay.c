/*
 * proxy_relay.c: forwarding one checked request with libcurl and relaying
 * the answer through the server core.
 *
 * Request path.  The body is not collected: libcurl's read callback pulls
 * it with hs_req_body_read, which parses more client input only when the
 * bytes parsed so far are used up, so at most one read buffer is held at
 * a time.  A chunked request body goes upstream chunked, a Content-Length
 * body with the same length.
 *
 * Response path.  libcurl's header callback collects the final response's
 * header block (1xx interim responses and trailers are skipped) and, at
 * its blank line, starts the client's response at once (status, reason,
 * the filtered headers; hs_stream_begin_length frames it with the
 * upstream's Content-Length, else chunked, or for HTTP/1.0 by closing),
 * so the client sees headers even when the body takes a while.  The write
 * callback hands each body piece to hs_stream_write straight away and to
 * the usage meter.  Nothing is sent to the client before the upstream's
 * header block is complete, so any failure up to then can still be
 * answered with a clean 502.
 *
 * The transfer runs on libcurl's multi interface, polled in TP_POLL_MS
 * steps so that the server's drain (tp_stop) or a client hang-up aborts
 * it quickly (removing an unfinished transfer closes its upstream
 * connection).
 *
 * Pinning.  The upstream URL is the pinned base plus the client's target,
 * which proxy_check.c made sure is origin-form; the joined URL is parsed
 * again with libcurl's URL parser and its scheme, host and port must
 * equal the pinned ones, or the request is refused.  Redirects are not
 * followed.
 *
 * Secrets.  The header line made from the real credential for each
 * request is wiped after use (libcurl's own copy of the header list is
 * wiped before it is freed).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "http_parser.h"
#include "net/ca.h"
#include "proxy/proxy_int.h"

static const char *resp_header(const struct tp_req *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nrhdrs; i++)
		if (tp_ieq(r->rhbuf.p + r->rhdrs[i].name, name))
			return r->rhbuf.p + r->rhdrs[i].val;
	return NULL;
}

/* Parse a Content-Length value; -1 when absent or not a plain number. */
static long long parse_length(const char *v)
{
	long long n = 0;

	if (!v || !*v)
		return -1;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (LLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*v - '0');
	}
	return n;
}

/* The upstream's header block is complete: set up the meter and start
 * the client's response with the status, reason and filtered headers. */
static int resp_begin(struct tp_req *r)
{
	const char *te = resp_header(r, "transfer-encoding");
	long long len = parse_length(resp_header(r, "content-length"));
	size_t i;

	if (r->is_messages)
		um_begin(&r->meter, r->status, resp_header(r, "content-type"), resp_header(r, "content-encoding"));
	hs_resp_reason(r->hr, r->reason);
	for (i = 0; i < r->nrhdrs; i++) {
		const char *n = r->rhbuf.p + r->rhdrs[i].name;

		if (tp_is_hop_header(r, n, 0) || tp_ieq(n, "content-length"))
			continue;
		(void)hs_resp_header(r->hr, n, r->rhbuf.p + r->rhdrs[i].val);
	}
	r->resp_started = 1;
	if (hs_stream_begin_length(r->hr, r->status, NULL, te ? -1 : len) != 0) {
		r->client_gone = 1;
		return -1;
	}
	return 0;
}

/* libcurl header callback: one line of the upstream's header block. */
static size_t hdr_cb(char *d, size_t size, size_t nitems, void *arg)
{
	struct tp_req *q = arg;
	size_t n = size * nitems, len = n;

	if (q->resp_started)
		return n;               /* trailers: not relayed */
	while (len > 0 && (d[len - 1] == '\n' || d[len - 1] == '\r'))
		len--;
	if (len == 0) {
		if (q->status >= 100 && q->status < 200)
			return n;       /* end of an interim response */
		if (q->status < 200)
			return 0;
		return resp_begin(q) == 0 ? n : 0;
	}
	if (len > 5 && memcmp(d, "HTTP/", 5) == 0) {
		const char *s = memchr(d, ' ', len), *r;
		size_t rl;

		buf_reset(&q->rhbuf);
		q->nrhdrs = 0;
		q->reason[0] = 0;
		q->status = 0;
		if (!s || (size_t)(s - d) + 4 > len)
			return 0;
		q->status = (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
		if (q->status < 100 || q->status > 999)
			return 0;
		r = s + 4;
		while (r < d + len && *r == ' ')
			r++;
		rl = (size_t)(d + len - r);
		if (rl < sizeof(q->reason)) {
			size_t i;

			for (i = 0; i < rl && r[i] >= 0x20 && r[i] < 0x7f; i++)
				;
			if (i == rl) {
				memcpy(q->reason, r, rl);
				q->reason[rl] = 0;
			}
		}
		return n;
	}
	if (d[0] == ' ' || d[0] == '\t') {
		/* An obsolete folded continuation: append to the last value. */
		if (q->nrhdrs == 0 || q->rhbuf.len == 0)
			return 0;
		q->rhbuf.len--;         /* drop the NUL */
		if (buf_addc(&q->rhbuf, ' ') != 0 || buf_add(&q->rhbuf, d, len) != 0 || buf_addc(&q->rhbuf, 0) != 0)
			return 0;
		return n;
	} else {
		const char *colon = memchr(d, ':', len);
		const char *v;
		size_t nl, vl;

		if (!colon || colon == d || q->nrhdrs == TP_MAX_RESP_HEADERS)
			return 0;
		nl = (size_t)(colon - d);
		v = colon + 1;
		while (v < d + len && (*v == ' ' || *v == '\t'))
			v++;
		vl = (size_t)(d + len - v);
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		q->rhdrs[q->nrhdrs].name = q->rhbuf.len;
		if (buf_add(&q->rhbuf, d, nl) != 0 || buf_addc(&q->rhbuf, 0) != 0)
			return 0;
		q->rhdrs[q->nrhdrs].val = q->rhbuf.len;
		if (buf_add(&q->rhbuf, v, vl) != 0 || buf_addc(&q->rhbuf, 0) != 0)
			return 0;
		q->nrhdrs++;
	}
	return n;
}


/* libcurl write callback: one piece of the response body, straight on. */
static size_t body_cb(char *d, size_t size, size_t nitems, void *arg)
{
	struct tp_req *r = arg;
	size_t n = size * nitems;

	if (!r->resp_started && resp_begin(r) != 0)
		return 0;
	if (n == 0)
		return 0;
	um_feed(&r->meter, d, n);
	if (hs_stream_write(r->hr, d, n) != 0) {
		r->client_gone = 1;
		return 0;
	}
	return n;
}

/* libcurl read callback: the next bytes of the client's request body. */
static size_t read_cb(char *dst, size_t size, size_t nitems, void *arg)
{
	struct tp_req *r = arg;
	long n = hs_req_body_read(r->hq, dst, size * nitems);

	if (n >= 0)
		return (size_t)n;
	r->bad_body = 1;
	return CURL_READFUNC_ABORT;
}

/* Has the client hung up while its response is being relayed?  Only
 * asked once the request is complete (before that the read callback
 * sees it).  A half-close counts: HTTP clients do not half-close. */
static int client_hung_up(struct tp_req *r)
{
	if (!hs_req_complete(r->hq) || !hs_req_client_gone(r->hq))
		return 0;
	r->client_gone = 1;
	return 1;
}

/* 1 once the server drains (tp_stop). */
static int draining(const struct tp_req *r)
{
	return hs_draining(hs_req_server(r->hq));
}

/* Run the configured transfer: libcurl's multi interface, polled in
 * TP_POLL_MS steps so a stop or a client hang-up aborts it quickly
 * (removing an unfinished transfer closes its upstream connection). */
static CURLcode run_transfer(struct tp_req *r)
{
	CURLcode res = CURLE_OK;
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;

	struct tp_conn *c = r->conn;

	if (!c->multi && !(c->multi = curl_multi_init()))
		return CURLE_OUT_OF_MEMORY;
	if (curl_multi_add_handle(c->multi, c->curl) != CURLM_OK)
		return CURLE_FAILED_INIT;
	for (;;) {
		mc = curl_multi_perform(c->multi, &running);
		if (mc != CURLM_OK) {
			snprintf(r->errbuf, sizeof(r->errbuf), "libcurl: %s", curl_multi_strerror(mc));
			res = CURLE_FAILED_INIT;
			break;
		}
		if (!running)
			break;
		if (draining(r) || client_hung_up(r)) {
			snprintf(r->errbuf, sizeof(r->errbuf), "%s", draining(r) ? "proxy stopping" : "client gone");
			res = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		mc = curl_multi_poll(c->multi, NULL, 0, TP_POLL_MS, NULL);
		if (mc != CURLM_OK) {
			snprintf(r->errbuf, sizeof(r->errbuf), "libcurl: %s", curl_multi_strerror(mc));
			res = CURLE_FAILED_INIT;
			break;
		}
	}
	if (!running)
		while ((msg = curl_multi_info_read(c->multi, &left)))
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->curl)
				res = msg->data.result;
	(void)curl_multi_remove_handle(c->multi, c->curl);
	return res;
}

/* Does url (the pinned base plus the client's target) still point at the
 * pinned scheme, host and port?  1 yes, 0 no. */
static int url_pinned(const struct tp_proxy *p, const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;
	int ok = 0;

	if (!u)
		return 0;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_NO_USER)
		ok = strcmp(scheme, p->up_scheme) == 0 && strcmp(host, p->up_host) == 0 &&
		     strcmp(port, p->up_port) == 0;
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_url_cleanup(u);
	return ok;
}

/* Append "Name: value" (or "Name;" for an empty value, libcurl's way of
 * sending one) to the list.  0, or -1 out of memory. */
static int slist_add(struct curl_slist **l, const char *name, const char *val)
{
	struct buf line = BUF_INIT;
	struct curl_slist *nl;
	int rc = *val ? buf_printf(&line, "%s: %s", name, val) : buf_printf(&line, "%s;", name);

	nl = rc == 0 ? curl_slist_append(*l, line.p) : NULL;
	cr_wipe(line.p, line.len);
	buf_free(&line);
	if (!nl)
		return -1;
	*l = nl;
	return 0;
}

static int slist_raw(struct curl_slist **l, const char *line)
{
	struct curl_slist *nl = curl_slist_append(*l, line);

	if (!nl)
		return -1;
	*l = nl;
	return 0;
}

/* Wipe every line (one holds the credential), then free the list. */
static void slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist *i;

	for (i = l; i; i = i->next)
		if (i->data)
			cr_wipe(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

/* The header list for the upstream: the client's end-to-end headers minus
 * credentials, then the real credential, then suppressions of libcurl's
 * own defaults the client did not ask for. */
static struct curl_slist *upstream_headers(struct tp_req *r)
{
	static const char *const dropped[] = { "host", "content-length", "expect", "x-api-key", "authorization",
		"accept-encoding", NULL };
	struct tp_proxy *p = r->p;
	struct curl_slist *l = NULL;
	size_t i, k, nh = hs_req_header_count(r->hq);
	int rc = 0;

	for (i = 0; rc == 0 && i < nh; i++) {
		const char *n, *v;

		if (hs_req_header_at(r->hq, i, &n, &v) != 0)
			continue;
		for (k = 0; dropped[k] && !tp_ieq(n, dropped[k]); k++)
			;
		if (dropped[k] || tp_is_hop_header(r, n, 1))
			continue;
		rc = slist_add(&l, n, v);
	}
	if (rc == 0) {
		struct buf cred = BUF_INIT;

		if (p->kind == TP_CRED_OAUTH)
			rc = buf_adds(&cred, "Authorization: Bearer ");
		else
			rc = buf_adds(&cred, "x-api-key: ");
		if (rc == 0)
			rc = buf_add(&cred, p->secret, p->secret_len);
		if (rc == 0)
			rc = slist_raw(&l, cred.p);
		if (cred.p)
			cr_wipe(cred.p, cred.len);
		buf_free(&cred);
	}
	/* Remove libcurl's own defaults: no 100-continue round trip, and no
	 * Accept or form Content-Type the client did not send. */
	if (rc == 0)
		rc = slist_raw(&l, "Expect:");
	if (rc == 0 && !hs_req_header(r->hq, "accept"))
		rc = slist_raw(&l, "Accept:");
	if (rc == 0 && !hs_req_header(r->hq, "content-type"))
		rc = slist_raw(&l, "Content-Type:");
	if (rc != 0) {
		slist_wipe_free(l);
		return NULL;
	}
	return l;
}

#define SETOPT(h, opt, val) (ok = ok && curl_easy_setopt((h), (opt), (val)) == CURLE_OK)

/* Configure the easy handle for this request.  0, or -1. */
static int curl_setup(struct tp_req *r, const char *url, struct curl_slist *hl)
{
	struct tp_proxy *p = r->p;
	CURL *h = r->conn->curl;
	int ok = 1;

	curl_easy_reset(h);
	r->errbuf[0] = 0;
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_URL, url);
	SETOPT(h, CURLOPT_PROTOCOLS_STR, p->up_scheme);
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(h, CURLOPT_PATH_AS_IS, 1L);
	SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SETOPT(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
	SETOPT(h, CURLOPT_SHARE, (CURLSH *)p->share);
	SETOPT(h, CURLOPT_HTTPHEADER, hl);
	SETOPT(h, CURLOPT_HEADERFUNCTION, hdr_cb);
	SETOPT(h, CURLOPT_HEADERDATA, r);
	SETOPT(h, CURLOPT_WRITEFUNCTION, body_cb);
	SETOPT(h, CURLOPT_WRITEDATA, r);
	SETOPT(h, CURLOPT_ERRORBUFFER, r->errbuf);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, TP_CONNECT_TIMEOUT_MS);
	SETOPT(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(h, CURLOPT_LOW_SPEED_TIME, TP_LOW_SPEED_TIME);
	SETOPT(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	SETOPT(h, CURLOPT_HTTP_TRANSFER_DECODING, 1L);
	SETOPT(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	SETOPT(h, CURLOPT_TCP_NODELAY, 1L);
	SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (p->up_loopback)
		SETOPT(h, CURLOPT_PROXY, "");
	if (ok && strcmp(p->up_scheme, "https") == 0 && ca_curl_apply(h) != 0)
		ok = 0;

	if (r->method == HTTP_HEAD) {
		SETOPT(h, CURLOPT_NOBODY, 1L);
	} else if (r->has_body || r->method == HTTP_POST || r->method == HTTP_PUT || r->method == HTTP_PATCH) {
		SETOPT(h, CURLOPT_POST, 1L);
		SETOPT(h, CURLOPT_READFUNCTION, read_cb);
		SETOPT(h, CURLOPT_READDATA, r);
		SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->clen);
		if (r->method != HTTP_POST)
			SETOPT(h, CURLOPT_CUSTOMREQUEST, http_method_str((enum http_method)r->method));
	} else if (r->method == HTTP_GET) {
		SETOPT(h, CURLOPT_HTTPGET, 1L);
	} else {
		SETOPT(h, CURLOPT_CUSTOMREQUEST, http_method_str((enum http_method)r->method));
	}
	return ok ? 0 : -1;
}

/* ---- forwarding ------------------------------------------------------------- */

void tp_conn_free(void *arg)
{
	struct tp_conn *c = arg;

	if (!c)
		return;
	if (c->multi)
		curl_multi_cleanup(c->multi);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c);
}

/* The client connection's upstream handles, made at its first request. */
static struct tp_conn *conn_of(struct tp_req *r)
{
	struct tp_conn *c = hs_conn_data(r->hq);

	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (!(c->curl = curl_easy_init())) {
		free(c);
		return NULL;
	}
	hs_set_conn_data(r->hq, c, tp_conn_free);
	return c;
}

/* The transfer failed: answer what can still be answered, log the rest.
 * Returns -1 when a started response must be cut off. */
static int forward_failed(struct tp_req *r, CURLcode rc)
{
	struct tp_proxy *p = r->p;
	const char *why = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc), *msg;
	size_t el = strlen(r->errbuf);
	int st;

	while (el > 0 && (r->errbuf[el - 1] == '\n' || r->errbuf[el - 1] == '\r' || r->errbuf[el - 1] == ' '))
		r->errbuf[--el] = 0;
	st = hs_req_error(r->hq, &msg);
	if (r->client_gone || (r->bad_body && st == 0)) {
		tp_log(p, "token proxy: client went away during %s %.*s; upstream request aborted",
		       hs_req_method(r->hq), (int)r->plen, r->url);
	} else if (r->bad_body && !r->resp_started) {
		tp_refuse(r, st, st >= 500 ? "api_error" : "invalid_request_error",
			  "ccr token proxy: %s; upstream request aborted", msg);
	} else if (!r->resp_started && !draining(r)) {
		tp_refuse(r, 502, "api_error",
			  "Bad Gateway: ccr token proxy could not get an answer from %s for %s %.*s: %s", p->base,
			  hs_req_method(r->hq), (int)r->plen, r->url, why);
	} else {
		tp_log(p, "token proxy: upstream failed in the middle of %s %.*s: %s; connection closed",
		       hs_req_method(r->hq), (int)r->plen, r->url, why);
	}
	return r->resp_started ? -1 : 0;
}

/* Set up the upstream URL, handle and header list; 0, or -1 refused. */
static int forward_setup(struct tp_req *r, struct buf *url, struct curl_slist **hl)
{
	struct tp_proxy *p = r->p;

	if (buf_printf(url, "%s%s", p->base, r->url) != 0) {
		tp_refuse(r, 500, "api_error", "ccr token proxy: out of memory");
		return -1;
	}
	if (!url_pinned(p, url->p)) {
		tp_refuse(r, 400, "invalid_request_error",
			  "ccr token proxy: the request target does not resolve to the pinned upstream");
		return -1;
	}
	if (!(r->conn = conn_of(r))) {
		tp_refuse(r, 500, "api_error", "ccr token proxy: cannot create a libcurl handle (out of memory)");
		return -1;
	}
	*hl = upstream_headers(r);
	if (!*hl || curl_setup(r, url->p, *hl) != 0) {
		tp_refuse(r, 500, "api_error", "ccr token proxy: cannot set up the upstream request (out of memory?)");
		return -1;
	}
	return 0;
}

int tp_forward(struct tp_req *r)
{
	struct buf url = BUF_INIT;
	struct curl_slist *hl = NULL;
	CURLcode rc;
	int ret = 0;

	if (forward_setup(r, &url, &hl) != 0) {
		slist_wipe_free(hl);
		buf_free(&url);
		return 0;
	}
	tp_count(r->p, &r->p->usage.forwarded);
	rc = run_transfer(r);
	/* libcurl keeps pointers to the list until the next reset. */
	(void)curl_easy_setopt(r->conn->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	slist_wipe_free(hl);
	buf_free(&url);
	um_finish(&r->meter);          /* before the client sees the end */
	if (rc != CURLE_OK)
		ret = forward_failed(r, rc);
	else if (r->resp_started && hs_stream_end(r->hr) != 0)
		ret = -1;
	return ret;
}
