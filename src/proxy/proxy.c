/*
 * proxy.c: the token proxy (see proxy.h for what it does and refuses).
 *
 * Design.  The proxy is a handler on ccr's HTTP/1.1 server core
 * (http/server.h), as a reverse proxy is a handler on h2o's server: the
 * core accepts on 127.0.0.1, caps connections (busy answer 503), runs
 * each request on a worker thread, parses each request head with http-parser
 * (strict: conflicting Content-Length / Transfer-Encoding and other
 * smuggling forms are errors), applies the deadlines (head, body, idle,
 * write) and the lingering close, and drains on tp_stop.  It runs in
 * streaming-body mode: the handler, tp_handle, is called once the header
 * section is complete and pulls the body as libcurl sends it upstream.
 * Malformed HTTP is answered by the core, in the proxy's Anthropic-style
 * format (tp_error_body).
 *
 * tp_handle checks the request (proxy_check.c), then forwards it and
 * relays the answer (proxy_relay.c), metering usage (meter.c).  Each
 * client connection keeps one libcurl easy handle (the core's
 * per-connection data) so the upstream connection and its TLS session
 * are reused by the client's keep-alive requests; DNS answers and TLS
 * sessions are shared between connections.
 *
 * Secrets.  The real credential lives in one heap copy, wiped by tp_stop.
 * Log lines and errors never include it and still go through
 * redact_apply().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "crypto/crypto.h"
#include "http_parser.h"
#include "net/netinit.h"
#include "proxy/proxy_int.h"
#include "util/redact.h"

void tp_log(struct tp_proxy *p, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int rc;

	if (!p->log)
		return;
	va_start(ap, fmt);
	rc = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (rc == 0 && redact_apply(&b) == 0)
		p->log(p->log_arg, b.p);
	buf_free(&b);
}

void tp_count(struct tp_proxy *p, uint64_t *field)
{
	pthread_mutex_lock(&p->lock);
	(*field)++;
	pthread_mutex_unlock(&p->lock);
}

int tp_ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

/* The meter's callback: add one metered step to the running totals. */
static void usage_add(void *arg, const struct um_delta *d)
{
	struct tp_proxy *p = arg;

	pthread_mutex_lock(&p->lock);
	p->usage.requests += d->requests;
	p->usage.input_tokens += d->tokens[0];
	p->usage.output_tokens += d->tokens[1];
	p->usage.cache_creation_input_tokens += d->tokens[2];
	p->usage.cache_read_input_tokens += d->tokens[3];
	p->usage.cost_usd += d->cost_usd;
	pthread_mutex_unlock(&p->lock);
}

/* The core's error answers (malformed HTTP, timeouts, the busy 503), in
 * the Anthropic format the CLI understands; counted and logged as the
 * proxy's own refusals. */
static int tp_error_body(int status, const char *msg, struct buf *out, const char **ctype, void *app)
{
	struct tp_proxy *p = app;
	struct buf m = BUF_INIT;
	const char *type = status == 503 ? "overloaded_error" : status >= 500 ? "api_error" : "invalid_request_error";
	int rc;

	tp_count(p, &p->usage.refused);
	tp_log(p, "token proxy: answered %d: %s", status, msg);
	rc = buf_printf(&m, "ccr token proxy: %s", msg);
	if (rc == 0)
		rc = tp_error_json(out, type, m.p);
	buf_free(&m);
	*ctype = "application/json";
	return rc;
}

/* The core's handler: one request, its header section complete. */
static int tp_handle(struct hs_req *hq, struct hs_resp *hr, void *app)
{
	struct tp_req *r = calloc(1, sizeof(*r));
	const char *te, *q;
	int rc = 0;

	if (!r)
		return -1;
	r->p = app;
	r->hq = hq;
	r->hr = hr;
	r->url = hs_req_target(hq);
	r->method = hs_req_method_id(hq);
	q = strchr(r->url, '?');
	r->plen = q ? (size_t)(q - r->url) : strlen(r->url);
	te = hs_req_header(hq, "transfer-encoding");
	r->clen = te ? -1 : hs_req_header(hq, "content-length") ? strtoll(hs_req_header(hq, "content-length"), NULL, 10) : 0;
	r->has_body = r->clen != 0;
	r->head_req = r->method == HTTP_HEAD;
	r->is_messages = r->method == HTTP_POST && r->plen == 12 && memcmp(r->url, "/v1/messages", 12) == 0;
	um_init(&r->meter, usage_add, r->p);
	if (tp_check(r) == 0)
		rc = tp_forward(r);
	um_reset(&r->meter);
	buf_free(&r->rhbuf);
	free(r);
	return rc;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct tp_proxy *p = arg;

	(void)h, (void)access;
	pthread_mutex_lock(&p->share_lock[(unsigned)data % 8]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct tp_proxy *p = arg;

	(void)h;
	pthread_mutex_unlock(&p->share_lock[(unsigned)data % 8]);
}

static int is_loopback_host(const char *h)
{
	return strcmp(h, "127.0.0.1") == 0 || strcmp(h, "[::1]") == 0 || strcmp(h, "::1") == 0 ||
	       strcasecmp(h, "localhost") == 0;
}

/* Check and record the upstream: scheme, host, port and base URL. */
static int set_upstream(struct tp_proxy *p, const char *url, const char *from, struct err *e)
{
	CURLU *u = curl_url();
	char *user = NULL, *query = NULL, *frag = NULL, *path = NULL;
	CURLUcode uc;
	int rc = -1;

	if (!u)
		return err_set(e, "token proxy: out of memory");
	uc = curl_url_set(u, CURLUPART_URL, url, 0);
	if (uc != CURLUE_OK) {
		err_set(e, "token proxy: the upstream URL from %s is not a valid URL (%s); expected https://host[:port]",
			from, curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &p->up_scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &p->up_host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p->up_port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
		err_set(e, "token proxy: the upstream URL from %s has no host; expected https://host[:port]", from);
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
		err_set(e, "token proxy: the upstream URL from %s must not hold user info, a query or a fragment", from);
		goto out;
	}
	p->up_loopback = is_loopback_host(p->up_host);
	if (strcmp(p->up_scheme, "https") != 0 && !(strcmp(p->up_scheme, "http") == 0 && p->up_loopback)) {
		err_set(e, "token proxy: the upstream URL from %s must be https:// (plain http only to 127.0.0.1, "
			"::1 or localhost, for tests)", from);
		goto out;
	}
	{
		size_t pl = strlen(path);
		struct buf b = BUF_INIT;
		char *given_port = NULL;

		while (pl > 0 && path[pl - 1] == '/')
			pl--;
		(void)curl_url_get(u, CURLUPART_PORT, &given_port, 0);
		rc = buf_printf(&b, "%s://%s%s%s%.*s", p->up_scheme, p->up_host, given_port ? ":" : "",
				given_port ? given_port : "", (int)pl, path);
		curl_free(given_port);
		if (rc != 0) {
			buf_free(&b);
			err_set(e, "token proxy: out of memory");
			goto out;
		}
		p->base = buf_detach(&b);
	}
	rc = 0;
out:
	curl_free(user);
	curl_free(query);
	curl_free(frag);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

static void free_fields(struct tp_proxy *p)
{
	if (p->secret) {
		cr_wipe(p->secret, p->secret_len);
		free(p->secret);
		p->secret = NULL;
	}
	cr_wipe(p->dummy, sizeof(p->dummy));
	free(p->base);
	curl_free(p->up_scheme);
	curl_free(p->up_host);
	curl_free(p->up_port);
	p->base = p->up_scheme = p->up_host = p->up_port = NULL;
	if (p->share) {
		curl_share_cleanup(p->share);
		p->share = NULL;
	}
}

/* Copy the credential without surrounding whitespace; it must be made of
 * visible ASCII only (it goes into an HTTP header). */
static int set_secret(struct tp_proxy *p, const char *cred, struct err *e)
{
	const char *s = cred, *end;
	size_t n, i;

	if (!cred)
		return err_set(e, "token proxy: no Anthropic credential given (anthropicApiKey or anthropicOAuthToken)");
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	n = (size_t)(end - s);
	if (n == 0)
		return err_set(e, "token proxy: the Anthropic credential is empty");
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return err_set(e, "token proxy: the Anthropic credential holds a space, control or non-ASCII "
					  "character at offset %zu; it cannot go in an HTTP header (check how it was pasted)", i);
	p->secret = malloc(n + 1);
	if (!p->secret)
		return err_set(e, "token proxy: out of memory");
	memcpy(p->secret, s, n);
	p->secret[n] = 0;
	p->secret_len = n;
	if (redact_add(p->secret) != 0)
		return err_set(e, "token proxy: out of memory registering the credential for redaction");
	return 0;
}

static int make_dummy(struct tp_proxy *p, struct err *e)
{
	static const char hexd[] = "0123456789abcdef";
	unsigned char r[32];
	size_t i, off = sizeof(TP_DUMMY_PREFIX) - 1;

	if (cr_random(r, sizeof(r)) != 0)
		return err_set(e, "token proxy: no kernel randomness for the dummy credential: %s", strerror(errno));
	memcpy(p->dummy, TP_DUMMY_PREFIX, off);
	for (i = 0; i < sizeof(r); i++) {
		p->dummy[off++] = hexd[r[i] >> 4];
		p->dummy[off++] = hexd[r[i] & 15];
	}
	p->dummy[off] = 0;
	cr_wipe(r, sizeof(r));
	if (redact_add(p->dummy) != 0)
		return err_set(e, "token proxy: out of memory registering the dummy credential for redaction");
	return 0;
}

/* Run the proxy as a handler on a server core listening on 127.0.0.1. */
static int start_server(struct tp_proxy *p, unsigned max_conn, struct err *e)
{
	struct hs_config hc;

	hs_config_defaults(&hc);
	hc.stream_body = 1;
	hc.allow_connect = 1;           /* refused by tp_check with 405 */
	hc.host_optional = 1;
	hc.max_url = TP_MAX_URL;
	hc.max_headers = TP_MAX_HEADERS;
	hc.max_header_bytes = TP_MAX_HEADER_BYTES;
	hc.max_connections = max_conn;
	hc.max_per_client = max_conn;   /* every client is the local CLI */
	hc.header_timeout_ms = hc.body_timeout_ms = hc.write_timeout_ms = TP_STALL_MS;
	hc.idle_timeout_ms = TP_IDLE_MS;
	hc.stack_size = TP_THREAD_STACK;
	hc.handler = tp_handle;
	hc.error_body = tp_error_body;
	hc.app = p;
	if (!(p->srv = hs_new(&hc, e)))
		return -1;
	if (hs_listen(p->srv, "127.0.0.1", 0, e) != 0 || hs_start(p->srv, e) != 0) {
		err_set(e, "token proxy: %s (is the loopback interface up?)", e->msg);
		hs_free(p->srv);
		p->srv = NULL;
		return -1;
	}
	p->port = hs_port(p->srv);
	return 0;
}

/* Mutexes and the libcurl share handle; 0 or -1. */
static int start_shared(struct tp_proxy *p, int *nmu, struct err *e)
{
	for (*nmu = 0; *nmu < 8; (*nmu)++)
		if (pthread_mutex_init(&p->share_lock[*nmu], NULL) != 0)
			return err_set(e, "token proxy: cannot create a mutex");
	p->share = curl_share_init();
	if (!p->share || curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
	    curl_share_setopt(p->share, CURLSHOPT_USERDATA, p) != CURLSHE_OK ||
	    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
		return err_set(e, "token proxy: cannot set up a libcurl share handle (out of memory?)");
	return 0;
}

int tp_start(struct tp_proxy *p, const struct tp_config *cfg, struct err *e)
{
	const char *up = cfg->upstream, *from = "the task configuration";
	char ierr[256] = "";
	int nmu = 0, lock_ok = 0;

	memset(p, 0, sizeof(*p));
	if (cfg->kind != TP_CRED_API_KEY && cfg->kind != TP_CRED_OAUTH)
		return err_set(e, "token proxy: credential kind must be TP_CRED_API_KEY or TP_CRED_OAUTH");
	if (!up || !*up) {
		up = cfg->upstream_env;
		from = "$" TP_UPSTREAM_ENV;
	}
	if (!up || !*up) {
		up = TP_DEFAULT_UPSTREAM;
		from = "the default";
	}
	if (net_global_init(ierr, sizeof(ierr)) != 0)
		return err_set(e, "token proxy: %s", ierr);
	p->kind = cfg->kind;
	p->budget_usd = cfg->budget_usd > 0 ? cfg->budget_usd : 0;
	p->log = cfg->log;
	p->log_arg = cfg->log_arg;
	if (set_secret(p, cfg->credential, e) != 0 || make_dummy(p, e) != 0 || set_upstream(p, up, from, e) != 0)
		goto fail;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		err_set(e, "token proxy: cannot create a mutex");
		goto fail;
	}
	lock_ok = 1;
	if (start_shared(p, &nmu, e) != 0 ||
	    start_server(p, cfg->max_connections ? cfg->max_connections : TP_MAX_CONNECTIONS_DEFAULT, e) != 0)
		goto fail;
	p->started = 1;
	return 0;

fail:
	free_fields(p);
	while (nmu > 0)
		pthread_mutex_destroy(&p->share_lock[--nmu]);
	if (lock_ok)
		pthread_mutex_destroy(&p->lock);
	return -1;
}

int tp_port(const struct tp_proxy *p)
{
	return p->port;
}

const char *tp_dummy(const struct tp_proxy *p)
{
	return p->dummy;
}

const char *tp_cred_env(const struct tp_proxy *p)
{
	return p->kind == TP_CRED_OAUTH ? "CLAUDE_CODE_OAUTH_TOKEN" : "ANTHROPIC_API_KEY";
}

const char *tp_upstream(const struct tp_proxy *p)
{
	return p->base ? p->base : "";
}

void tp_usage(struct tp_proxy *p, struct tp_usage *out)
{
	if (!p->started) {
		*out = p->usage;
		return;
	}
	pthread_mutex_lock(&p->lock);
	*out = p->usage;
	pthread_mutex_unlock(&p->lock);
}

void tp_stop(struct tp_proxy *p)
{
	int i;

	if (!p->started)
		return;
	/* The core's drain with no grace: in-flight relays are cut off (the
	 * transfer loop sees hs_draining), then every connection thread has
	 * run its last use of the proxy (tp_conn_free) before it counts as
	 * closed. */
	if (hs_shutdown(p->srv, 0) == 2)
		while (hs_connections(p->srv) > 0)
			usleep(10 * 1000);
	hs_free(p->srv);
	p->srv = NULL;
	free_fields(p);
	for (i = 0; i < 8; i++)
		pthread_mutex_destroy(&p->share_lock[i]);
	pthread_mutex_destroy(&p->lock);
	p->started = 0;
}
