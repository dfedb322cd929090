/*
 * client.c: the HTTP client of client.h.
 *
 * Design:
 *  - One curl easy handle per hc_do() call, configured once and performed
 *    once per attempt.  Handles are cheap; what is expensive (TCP and TLS
 *    set-up, DNS) is kept in one process-wide curl share handle holding
 *    the connection pool, the DNS cache and TLS sessions, guarded by one
 *    mutex per curl_lock_data, so concurrent calls from many threads reuse
 *    each other's connections.  If the share handle cannot be made, calls
 *    still work, just without reuse.
 *  - A buffer body goes out through CURLOPT_POSTFIELDS (curl rewinds it by
 *    itself); a callback body through CURLOPT_READFUNCTION, with the
 *    caller's rewind function used before each retry and for curl's own
 *    rewinds (CURLOPT_SEEKFUNCTION).  Any method can carry a body
 *    (CURLOPT_CUSTOMREQUEST), and PUT/POST/PATCH always send one, possibly
 *    empty, so "Content-Length: 0" status queries work.
 *  - The response body is appended to a struct buf with a size cap; the
 *    header callback keeps the headers of the last response only (it
 *    starts over at each status line, so "100 Continue" or an earlier
 *    attempt's headers never leak into the answer).
 *  - The retry loop is the only place that sleeps.  The schedule functions
 *    are pure (base and random value in, wait out) so the selftests can
 *    check their bounds without sleeping.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "ccr.h"
#include "crypto/crypto.h"
#include "http/client.h"
#include "net/ca.h"
#include "settings/settings.h"
#include "util/clock.h"

#define HC_DEFAULT_CONNECT_MS 10000L
#define HC_DEFAULT_TIMEOUT_MS 60000L
#define HC_DEFAULT_MAX_RESPONSE ((size_t)1 << 30)
#define HC_DEADLINE_FACTOR 120
#define HC_CAP_FACTOR 32

/* Static: a process-wide count of retries (hc_retries_total, for tests
 * and the bench), like the connection pool below. */
static atomic_ullong hc_retries;

/* ---- the shared connection pool ----------------------------------------- */

/* Static: one libcurl share (connections, DNS, TLS sessions) for every
 * request of the process, made on first use. */
static pthread_once_t share_once = PTHREAD_ONCE_INIT;
static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
	(void)h, (void)a, (void)u;
	if ((int)d >= 0 && d < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&share_locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
	(void)h, (void)u;
	if ((int)d >= 0 && d < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&share_locks[d]);
}

static void share_init(void)
{
	CURLSH *s;
	int i;

	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		if (pthread_mutex_init(&share_locks[i], NULL) != 0)
			return;
	s = curl_share_init();
	if (!s)
		return;
	if (curl_share_setopt(s, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
			curl_share_setopt(s, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
			curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
			curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
			curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK) {
		curl_share_cleanup(s);
		return;
	}
	share = s;
}

/* ---- the retry schedule ------------------------------------------------- */

long hc_retry_base_ms(void)
{
	return settings_int(SET_CCR_RETRY_BASE_MS);
}

long hc_default_deadline_ms(void)
{
	return HC_DEADLINE_FACTOR * hc_retry_base_ms();
}

uint64_t hc_backoff_ceiling_ms(unsigned n, long base_ms)
{
	uint64_t base = base_ms > 0 ? (uint64_t)base_ms : 1;

	/* 2^5 = 32 = the cap factor, so from n = 5 on the ceiling is the cap. */
	if (n >= 5)
		return base * HC_CAP_FACTOR;
	return base << n;
}

uint64_t hc_backoff_pick_ms(uint64_t ceiling_ms, uint32_t rnd)
{
	/* Uniform in [0, ceiling]: rnd / 2^32 scaled by ceiling + 1. */
	if (ceiling_ms >= ((uint64_t)1 << 31))
		ceiling_ms = ((uint64_t)1 << 31) - 1;
	return ((uint64_t)rnd * (ceiling_ms + 1)) >> 32;
}

/* An IMF-fixdate ("Wed, 21 Oct 2015 07:28:00 GMT") as a time; -1. */
static time_t http_date(const char *v)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm;
	char mon[4], gmt[4];
	const char *m;
	int consumed = 0;

	memset(&tm, 0, sizeof tm);
	if (sscanf(v, "%*3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3s%n", &tm.tm_mday, mon, &tm.tm_year,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, gmt, &consumed) != 7 || v[consumed] != 0 ||
			strcmp(gmt, "GMT") != 0 || strlen(mon) != 3 || !(m = strstr(months, mon)) ||
			(m - months) % 3 != 0)
		return (time_t)-1;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year -= 1900;
	return timegm(&tm);
}

long hc_retry_after_parse(const char *v, time_t now)
{
	unsigned long secs = 0;
	time_t at;

	if (!v || !*v)
		return -1;
	if (!isdigit((unsigned char)*v)) {
		if ((at = http_date(v)) == (time_t)-1)
			return -1;
		return at <= now ? 0 : at - now > 3600 ? 3600 : (long)(at - now);
	}
	for (; *v; v++) {
		if (!isdigit((unsigned char)*v))
			return -1;
		secs = secs * 10 + (unsigned long)(*v - '0');
		if (secs > 3600)
			secs = 3600;
	}
	return (long)secs;
}

long hc_retry_after_ms(const struct hc_response *rs)
{
	long secs = hc_retry_after_parse(hc_header(rs, "Retry-After"), time(NULL));

	return secs < 0 ? -1 : secs * hc_retry_base_ms();
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int hc_backoff_wait(unsigned n, long retry_after_ms, uint64_t deadline)
{
	uint32_t rnd;
	uint64_t wait, now;

	if (cr_random(&rnd, sizeof rnd) != 0)
		rnd = (uint32_t)((uint64_t)clock_mono_ms() * 2654435761u);
	wait = hc_backoff_pick_ms(hc_backoff_ceiling_ms(n, hc_retry_base_ms()), rnd);
	if (retry_after_ms >= 0 && (uint64_t)retry_after_ms > wait)
		wait = (uint64_t)retry_after_ms;
	now = (uint64_t)clock_mono_ms();
	if (now >= deadline || wait > deadline - now)
		return -1;
	atomic_fetch_add(&hc_retries, 1);
	sleep_ms(wait);
	return 0;
}

void hc_note_retry(void)
{
	atomic_fetch_add(&hc_retries, 1);
}

unsigned long long hc_retries_total(void)
{
	return atomic_load(&hc_retries);
}

int hc_status_retryable(long status)
{
	return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

static int status_retry(enum hc_retry r, long status)
{
	if (r == HC_RETRY_IDEMPOTENT)
		return hc_status_retryable(status);
	if (r == HC_RETRY_UNSENT)
		return status == 429;
	return 0;
}

static int transport_retry(enum hc_retry r, CURLcode cc)
{
	if (r == HC_RETRY_UNSENT)
		return cc == CURLE_COULDNT_CONNECT;
	if (r != HC_RETRY_IDEMPOTENT)
		return 0;
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

/* ---- messages ----------------------------------------------------------- */

void hc_url_for_message(const char *url, char *dst, size_t dstlen)
{
	const char *s, *rest, *auth_end, *at, *path_end;
	size_t plen;

	if (dstlen == 0)
		return;
	dst[0] = 0;
	if (!url)
		return;
	s = strstr(url, "://");
	rest = s ? s + 3 : url;
	plen = (size_t)(rest - url);
	auth_end = rest + strcspn(rest, "/?#");
	at = memchr(rest, '@', (size_t)(auth_end - rest));
	if (at)
		rest = at + 1;
	path_end = rest + strcspn(rest, "?#");
	snprintf(dst, dstlen, "%.*s%.*s", (int)plen, url, (int)(path_end - rest), rest);
}

/* ---- curl callbacks ----------------------------------------------------- */

struct sink {
	struct buf *b;
	size_t max;
	int too_big, oom;
};

static size_t on_write(char *p, size_t sz, size_t nm, void *arg)
{
	struct sink *s = arg;
	size_t n = sz * nm;

	if (n > s->max || s->b->len > s->max - n) {
		s->too_big = 1;
		return 0;
	}
	if (buf_add(s->b, p, n) != 0) {
		s->oom = 1;
		return 0;
	}
	return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct sink *s = arg;
	size_t n = sz * nm, len = n;
	const char *colon, *v;

	while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n'))
		len--;
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		buf_reset(s->b);
		return n;
	}
	colon = memchr(p, ':', len);
	if (!colon || colon == p)
		return n;
	v = colon + 1;
	while (v < p + len && (*v == ' ' || *v == '\t'))
		v++;
	while (len > (size_t)(v - p) && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (buf_add(s->b, p, (size_t)(colon - p)) != 0 || buf_add(s->b, ": ", 2) != 0 ||
			buf_add(s->b, v, len - (size_t)(v - p)) != 0 || buf_addc(s->b, 0) != 0) {
		s->oom = 1;
		return 0;
	}
	return n;
}

static size_t on_read(char *dst, size_t sz, size_t nm, void *arg)
{
	const struct hc_request *rq = arg;
	size_t r = rq->read(rq->read_arg, dst, sz * nm);

	return r == (size_t)-1 ? CURL_READFUNC_ABORT : r;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	const struct hc_request *rq = arg;

	if (off == 0 && origin == SEEK_SET && rq->rewind && rq->rewind(rq->read_arg) == 0)
		return CURL_SEEKFUNC_OK;
	return CURL_SEEKFUNC_CANTSEEK;
}

const char *hc_header(const struct hc_response *rs, const char *name)
{
	size_t nl = strlen(name), off = 0;

	while (rs && off < rs->headers.len) {
		const char *e = rs->headers.p + off;
		size_t el = strlen(e);

		if (el > nl + 1 && strncasecmp(e, name, nl) == 0 && e[nl] == ':')
			return e + nl + 2;
		off += el + 1;
	}
	return NULL;
}

void hc_response_free(struct hc_response *rs)
{
	if (!rs)
		return;
	buf_free(&rs->body);
	buf_free(&rs->headers);
	rs->status = 0;
	rs->attempts = 0;
}

/* ---- the call ----------------------------------------------------------- */

static int method_has_body(const char *m)
{
	return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

static int can_rewind(const struct hc_request *rq)
{
	if (!rq->read)
		return 1;
	return rq->rewind && rq->rewind(rq->read_arg) == 0;
}

/* One call in progress. */
struct call {
	const struct hc_request *rq;
	const char *method;
	char shown[512];               /* the URL as error messages show it */
	char errbuf[CURL_ERROR_SIZE];
	struct sink body_sink, head_sink;
	struct curl_slist *hl;
	CURL *c;
	int is_http;
};

#define SET(opt, val) do { \
		if (curl_easy_setopt(k->c, opt, val) != CURLE_OK) \
			return err_set(e, "%s %s: libcurl rejected option %s", k->method, k->shown, #opt); \
	} while (0)

/* The request headers plus "Expect:" (no 100-continue round trip). */
static int call_headers(struct call *k, struct err *e)
{
	const char *const *h;
	struct curl_slist *t;

	for (h = k->rq->headers; h && *h; h++) {
		if (!(t = curl_slist_append(k->hl, *h)))
			return err_set(e, "%s %s: out of memory", k->method, k->shown);
		k->hl = t;
	}
	if (!(t = curl_slist_append(k->hl, "Expect:")))
		return err_set(e, "%s %s: out of memory", k->method, k->shown);
	k->hl = t;
	return 0;
}

/* The transport: URL, TLS, timeouts, connection reuse, the sinks. */
static int call_transport(struct call *k, struct hc_response *rs, struct err *e)
{
	const struct hc_request *rq = k->rq;

	k->body_sink.b = &rs->body;
	k->body_sink.max = rq->max_response ? rq->max_response : HC_DEFAULT_MAX_RESPONSE;
	k->head_sink.b = &rs->headers;
	SET(CURLOPT_URL, rq->url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_ERRORBUFFER, k->errbuf);
	SET(CURLOPT_PROTOCOLS_STR, rq->allow_http ? "http,https" : "https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (!k->is_http && ca_curl_apply(k->c) != 0)
		return err_set(e, "%s %s: cannot load the trusted CA roots (check SSL_CERT_FILE / SSL_CERT_DIR)",
			       k->method, k->shown);
	if (share)
		SET(CURLOPT_SHARE, share);
	SET(CURLOPT_USERAGENT, "ccr/" CCR_VERSION);
	SET(CURLOPT_HTTPHEADER, k->hl);
	SET(CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : HC_DEFAULT_CONNECT_MS);
	SET(CURLOPT_TIMEOUT_MS, rq->timeout_ms > 0 ? rq->timeout_ms : HC_DEFAULT_TIMEOUT_MS);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	/* curl silently resends a request whose reused connection died before
	 * any answer byte, even a POST the server may have acted on.  Calls
	 * that must not run twice, or that must know how often they were sent,
	 * take a new connection, so such a failure reaches hc_do instead. */
	if (rq->retry != HC_RETRY_IDEMPOTENT || rq->own_attempts)
		SET(CURLOPT_FRESH_CONNECT, 1L);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, &k->body_sink);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, &k->head_sink);
	return 0;
}

/* The method and the request body. */
static int call_method(struct call *k, struct err *e)
{
	const struct hc_request *rq = k->rq;
	const char *method = k->method;

	if (rq->read || rq->body || rq->body_len || method_has_body(method)) {
		if (rq->read) {
			SET(CURLOPT_POST, 1L);
			SET(CURLOPT_READFUNCTION, on_read);
			SET(CURLOPT_READDATA, (void *)rq);
			SET(CURLOPT_SEEKFUNCTION, on_seek);
			SET(CURLOPT_SEEKDATA, (void *)rq);
			SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->read_len);
		} else {
			SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
			SET(CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
		}
		if (strcmp(method, "POST") != 0)
			SET(CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "HEAD") == 0) {
		SET(CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") == 0) {
		SET(CURLOPT_HTTPGET, 1L);
	} else {
		SET(CURLOPT_CUSTOMREQUEST, method);
	}
	return 0;
}

#undef SET

/* Send the request, again while the retry policy and deadline allow. */
static int call_perform(struct call *k, struct hc_response *rs, uint64_t deadline, struct err *e)
{
	const struct hc_request *rq = k->rq;
	CURLcode cc;
	unsigned n;

	for (n = 0;; n++) {
		buf_reset(&rs->body);
		buf_reset(&rs->headers);
		rs->status = 0;
		rs->attempts = n + 1;
		k->errbuf[0] = 0;
		cc = curl_easy_perform(k->c);
		if (cc == CURLE_OK) {
			long st = 0;

			if (curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &st) != CURLE_OK || st < 100)
				return err_set(e, "%s %s: no HTTP status in the answer", k->method, k->shown);
			rs->status = st;
			if (status_retry(rq->retry, st) && hc_backoff_wait(n, hc_retry_after_ms(rs), deadline) == 0 &&
			    can_rewind(rq))
				continue;
			return 0;
		}
		if (k->body_sink.too_big)
			return err_set(e, "%s %s: the answer is larger than %zu bytes", k->method, k->shown,
				       k->body_sink.max);
		if (k->body_sink.oom || k->head_sink.oom)
			return err_set(e, "%s %s: out of memory reading the answer", k->method, k->shown);
		if (transport_retry(rq->retry, cc) && hc_backoff_wait(n, -1, deadline) == 0 && can_rewind(rq))
			continue;
		if (n > 0)
			return err_set(e, "%s %s: %s (gave up after %u attempts)", k->method, k->shown,
				       k->errbuf[0] ? k->errbuf : curl_easy_strerror(cc), n + 1);
		return err_set(e, "%s %s: %s", k->method, k->shown, k->errbuf[0] ? k->errbuf : curl_easy_strerror(cc));
	}
}

int hc_do(const struct hc_request *rq, struct hc_response *rs, struct err *e)
{
	struct call k;
	struct curl_slist *t;
	uint64_t deadline;
	int rc;

	memset(&k, 0, sizeof(k));
	k.rq = rq;
	k.method = rq->method ? rq->method : "GET";
	buf_reset(&rs->body);
	buf_reset(&rs->headers);
	rs->status = 0;
	rs->attempts = 0;
	if (!rq->url)
		return err_set(e, "%s: no URL", k.method);
	hc_url_for_message(rq->url, k.shown, sizeof k.shown);
	k.is_http = strncmp(rq->url, "http://", 7) == 0;
	if (strncmp(rq->url, "https://", 8) != 0 && !(k.is_http && rq->allow_http))
		return err_set(e, "%s %s: refused: only https:// URLs are allowed here "
			"(http:// only for explicit endpoint overrides)", k.method, k.shown);
	deadline = (uint64_t)clock_mono_ms() + (uint64_t)(rq->deadline_ms > 0 ? rq->deadline_ms : hc_default_deadline_ms());
	pthread_once(&share_once, share_init);
	k.c = curl_easy_init();
	if (!k.c)
		return err_set(e, "%s %s: libcurl could not make a handle (out of memory?)", k.method, k.shown);
	rc = call_headers(&k, e);
	if (rc == 0)
		rc = call_transport(&k, rs, e);
	if (rc == 0)
		rc = call_method(&k, e);
	if (rc == 0)
		rc = call_perform(&k, rs, deadline, e);
	curl_easy_cleanup(k.c);
	/* curl's copies of the header lines may hold a bearer token. */
	for (t = k.hl; t; t = t->next)
		if (t->data)
			cr_wipe(t->data, strlen(t->data));
	curl_slist_free_all(k.hl);
	return rc;
}
