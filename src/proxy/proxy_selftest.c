/*
 * proxy_selftest.c: selftests for the token proxy, entirely in-process on
 * the loopback interface.
 *
 * A fake upstream (plain HTTP on 127.0.0.1, one thread per connection,
 * requests parsed with http-parser) records what reached it and answers by
 * path: /v1/messages with a streamed SSE answer (when the body says
 * "stream":true; the query sets the usage numbers and a pause after the
 * first event) or a JSON Message, /echo with the request body, /close
 * with a close-delimited body.  libcurl plays the client.  Every case
 * starts its own fake and proxy, so counters start at zero.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http_parser.h"
#include "proxy/proxy.h"
#include "net/netinit.h"
#include "selftest/selftest.h"
#include "util/buf.h"

#define REAL_KEY "sk-ant-api03-selftest-REAL-key-0123456789abcdef"
#define REAL_TOKEN "sk-ant-oat01-selftest-REAL-token-0123456789abcdef"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the fake upstream ------------------------------------------------------- */

#define FU_MAX_CONN 32

struct fake {
	int fd, port;
	int wake[2];
	pthread_t th;
	pthread_mutex_t mu;
	int conns, requests;            /* accepted connections, complete requests */
	char last_method[16];
	char last_target[1024];
	struct buf last_headers;        /* "name: value\n", names lower-cased */
	struct buf last_body;
	int last_chunked;
	int peer_closed;                /* a peer hung up during an SSE pause */
	struct buf sent;                /* the body of the last SSE answer */
	int cfd[FU_MAX_CONN];
	pthread_t cth[FU_MAX_CONN];
	int ncth;
};

struct fu_conn {
	struct fake *f;
	int fd;
	http_parser hp;
	struct buf url, hdrs, body;
	int in_value, done, chunked;
};

static int fu_url(http_parser *hp, const char *at, size_t n)
{
	struct fu_conn *c = hp->data;

	return buf_add(&c->url, at, n) == 0 ? 0 : 1;
}

static int fu_field(http_parser *hp, const char *at, size_t n)
{
	struct fu_conn *c = hp->data;
	size_t i;

	if (c->in_value && buf_addc(&c->hdrs, '\n') != 0)
		return 1;
	c->in_value = 0;
	for (i = 0; i < n; i++) {
		char ch = at[i];

		if (buf_addc(&c->hdrs, (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch)) != 0)
			return 1;
	}
	return 0;
}

static int fu_value(http_parser *hp, const char *at, size_t n)
{
	struct fu_conn *c = hp->data;

	if (!c->in_value && buf_adds(&c->hdrs, ": ") != 0)
		return 1;
	c->in_value = 1;
	return buf_add(&c->hdrs, at, n) == 0 ? 0 : 1;
}

static int fu_headers_done(http_parser *hp)
{
	struct fu_conn *c = hp->data;

	c->chunked = (hp->flags & F_CHUNKED) != 0;
	return c->in_value && buf_addc(&c->hdrs, '\n') != 0 ? -1 : 0;
}

static int fu_body(http_parser *hp, const char *at, size_t n)
{
	struct fu_conn *c = hp->data;

	return buf_add(&c->body, at, n) == 0 ? 0 : 1;
}

static int fu_done(http_parser *hp)
{
	struct fu_conn *c = hp->data;

	c->done = 1;
	http_parser_pause(hp, 1);
	return 0;
}

static const http_parser_settings fu_settings = {
	.on_url = fu_url,
	.on_header_field = fu_field,
	.on_header_value = fu_value,
	.on_headers_complete = fu_headers_done,
	.on_body = fu_body,
	.on_message_complete = fu_done,
};

static int send_all(int fd, const void *d, size_t n)
{
	const char *p = d;

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_chunk(int fd, const char *d, size_t n)
{
	char hex[24];
	int hl = snprintf(hex, sizeof(hex), "%zx\r\n", n);

	return send_all(fd, hex, (size_t)hl) == 0 && send_all(fd, d, n) == 0 && send_all(fd, "\r\n", 2) == 0 ? 0 : -1;
}

/* An integer query parameter ("...&name=12"), or def. */
static int qint(const char *target, const char *name, int def)
{
	const char *q = strchr(target, '?');
	size_t nl = strlen(name);

	while (q) {
		q++;
		if (strncmp(q, name, nl) == 0 && q[nl] == '=')
			return atoi(q + nl + 1);
		q = strchr(q, '&');
	}
	return def;
}

/* Wait ms, watching for the peer hanging up.  0, or -1 when it did. */
static int fu_pause(struct fu_conn *c, int ms)
{
	double end = now_ms() + ms;

	for (;;) {
		struct pollfd pf;
		double left = end - now_ms();

		if (left <= 0)
			return 0;
		pf.fd = c->fd;
		pf.events = POLLRDHUP;
		pf.revents = 0;
		if (poll(&pf, 1, (int)left + 1) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			pthread_mutex_lock(&c->f->mu);
			c->f->peer_closed = 1;
			pthread_mutex_unlock(&c->f->mu);
			return -1;
		}
	}
}

/* A streamed Messages answer; the pause comes after message_start. */
static int fu_sse(struct fu_conn *c, const char *target)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
				   "Cache-Control: no-cache\r\nrequest-id: req_fake_sse\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n";
	char ev[7][512];
	struct buf all = BUF_INIT;
	int in = qint(target, "in", 0), out = qint(target, "out", 0);
	int cc = qint(target, "cc", 0), cr = qint(target, "cr", 0);
	int i, rc = 0;

	snprintf(ev[0], sizeof(ev[0]),
		 "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_fake\","
		 "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-test\","
		 "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":%d,\"output_tokens\":1,"
		 "\"cache_creation_input_tokens\":%d,\"cache_read_input_tokens\":%d}}}\n\n",
		 in, cc, cr);
	snprintf(ev[1], sizeof(ev[1]), "event: content_block_start\ndata: {\"type\":\"content_block_start\","
				       "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
	snprintf(ev[2], sizeof(ev[2]), "event: ping\ndata: {\"type\": \"ping\"}\n\n");
	snprintf(ev[3], sizeof(ev[3]), "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
				       "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n");
	snprintf(ev[4], sizeof(ev[4]), "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
	/* CRLF line ends here, and input_tokens repeated: cumulative, not new. */
	snprintf(ev[5], sizeof(ev[5]),
		 "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
		 "\"stop_sequence\":null},\"usage\":{\"input_tokens\":%d,\"output_tokens\":%d}}\r\n\r\n",
		 in, out);
	snprintf(ev[6], sizeof(ev[6]), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");

	if (send_all(c->fd, head, sizeof(head) - 1) != 0 || send_chunk(c->fd, ev[0], strlen(ev[0])) != 0)
		return -1;
	(void)buf_adds(&all, ev[0]);
	if (fu_pause(c, qint(target, "pause", 0)) != 0) {
		buf_free(&all);
		return -1;
	}
	for (i = 1; i < 7 && rc == 0; i++) {
		rc = send_chunk(c->fd, ev[i], strlen(ev[i]));
		(void)buf_adds(&all, ev[i]);
	}
	/* Recorded before the last chunk goes out: the client cannot finish
	 * (and compare) before it has that chunk. */
	pthread_mutex_lock(&c->f->mu);
	buf_free(&c->f->sent);
	c->f->sent = all;
	pthread_mutex_unlock(&c->f->mu);
	if (rc == 0)
		rc = send_all(c->fd, "0\r\n\r\n", 5);
	return rc;
}

static int fu_reply(struct fu_conn *c, int status, const char *ctype, const char *extra, const void *body, size_t n,
		    int head_only)
{
	char head[512];
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
			  status, status == 200 ? "OK" : "Not Found", ctype, n, extra);

	if (send_all(c->fd, head, (size_t)hl) != 0)
		return -1;
	return head_only || n == 0 ? 0 : send_all(c->fd, body, n);
}

/* Answer one request.  0 to keep the connection, -1 to close it. */
static int fu_answer(struct fu_conn *c)
{
	const char *t = c->url.p ? c->url.p : "";
	size_t plen = strcspn(t, "?");

	if (plen == 12 && strncmp(t, "/v1/messages", 12) == 0) {
		char json[512];
		int n;

		if (c->body.p && strstr(c->body.p, "\"stream\":true"))
			return fu_sse(c, t);
		n = snprintf(json, sizeof(json),
			     "{\"id\":\"msg_fake\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":"
			     "\"text\",\"text\":\"hi\"}],\"model\":\"claude-test\",\"stop_reason\":\"end_turn\","
			     "\"usage\":{\"input_tokens\":%d,\"output_tokens\":%d,\"cache_creation_input_tokens\":%d,"
			     "\"cache_read_input_tokens\":%d}}",
			     qint(t, "in", 0), qint(t, "out", 0), qint(t, "cc", 0), qint(t, "cr", 0));
		return fu_reply(c, 200, "application/json", "request-id: req_fake_json\r\n", json, (size_t)n, 0);
	}
	if (plen == 5 && strncmp(t, "/echo", 5) == 0)
		return fu_reply(c, 200, "application/octet-stream", "", c->body.p, c->body.len,
				c->hp.method == HTTP_HEAD);
	if (plen == 6 && strncmp(t, "/close", 6) == 0) {
		static const char r[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
					"close-delimited body\n";

		(void)send_all(c->fd, r, sizeof(r) - 1);
		return -1;
	}
	return fu_reply(c, 404, "application/json", "", "{\"type\":\"error\"}", 16, 0);
}

static void *fu_conn_main(void *arg)
{
	struct fu_conn *c = arg;
	char in[16384];
	size_t off = 0, len = 0;

	http_parser_init(&c->hp, HTTP_REQUEST);
	c->hp.data = c;
	for (;;) {
		buf_reset(&c->url);
		buf_reset(&c->hdrs);
		buf_reset(&c->body);
		c->in_value = c->done = c->chunked = 0;
		http_parser_pause(&c->hp, 0);
		while (!c->done) {
			enum http_errno he;
			size_t n;

			if (off == len) {
				ssize_t r = recv(c->fd, in, sizeof(in), 0);

				if (r <= 0)
					goto out;
				off = 0;
				len = (size_t)r;
			}
			n = http_parser_execute(&c->hp, &fu_settings, in + off, len - off);
			off += n;
			he = HTTP_PARSER_ERRNO(&c->hp);
			if (he != HPE_OK && he != HPE_PAUSED)
				goto out;
		}
		if (buf_addc(&c->url, 0) != 0 || buf_addc(&c->body, 0) != 0)
			goto out;
		c->url.len--, c->body.len--;
		pthread_mutex_lock(&c->f->mu);
		c->f->requests++;
		snprintf(c->f->last_method, sizeof(c->f->last_method), "%s",
			 http_method_str((enum http_method)c->hp.method));
		snprintf(c->f->last_target, sizeof(c->f->last_target), "%s", c->url.p);
		buf_reset(&c->f->last_headers);
		buf_reset(&c->f->last_body);
		(void)buf_add(&c->f->last_headers, c->hdrs.p ? c->hdrs.p : "", c->hdrs.len);
		(void)buf_add(&c->f->last_body, c->body.p, c->body.len);
		c->f->last_chunked = c->chunked;
		pthread_mutex_unlock(&c->f->mu);
		if (fu_answer(c) != 0 || !http_should_keep_alive(&c->hp))
			break;
	}
out:
	/* The socket itself is closed by fu_stop (no fd reuse races). */
	(void)shutdown(c->fd, SHUT_RDWR);
	buf_free(&c->url);
	buf_free(&c->hdrs);
	buf_free(&c->body);
	free(c);
	return NULL;
}

static void *fu_main(void *arg)
{
	struct fake *f = arg;
	int one = 1;

	for (;;) {
		struct pollfd pf[2];
		struct fu_conn *c;
		int fd;

		pf[0].fd = f->fd;
		pf[0].events = POLLIN;
		pf[1].fd = f->wake[0];
		pf[1].events = POLLIN;
		pf[0].revents = pf[1].revents = 0;
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		fd = accept4(f->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		pthread_mutex_lock(&f->mu);
		f->conns++;
		if (!c || f->ncth == FU_MAX_CONN) {
			pthread_mutex_unlock(&f->mu);
			free(c);
			close(fd);
			continue;
		}
		c->f = f;
		c->fd = fd;
		f->cfd[f->ncth] = fd;
		if (pthread_create(&f->cth[f->ncth], NULL, fu_conn_main, c) != 0) {
			free(c);
			close(fd);
		} else {
			f->ncth++;
		}
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

static int listen_loopback(int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static int fu_start(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	f->fd = listen_loopback(&f->port);
	if (f->fd < 0)
		return -1;
	if (pipe2(f->wake, O_CLOEXEC) != 0) {
		close(f->fd);
		return -1;
	}
	pthread_mutex_init(&f->mu, NULL);
	if (pthread_create(&f->th, NULL, fu_main, f) != 0) {
		close(f->fd);
		close(f->wake[0]);
		close(f->wake[1]);
		pthread_mutex_destroy(&f->mu);
		return -1;
	}
	return 0;
}

static void fu_stop(struct fake *f)
{
	int i;

	(void)!write(f->wake[1], "x", 1);
	pthread_join(f->th, NULL);
	for (i = 0; i < f->ncth; i++)
		(void)shutdown(f->cfd[i], SHUT_RDWR);
	for (i = 0; i < f->ncth; i++) {
		pthread_join(f->cth[i], NULL);
		close(f->cfd[i]);
	}
	close(f->fd);
	close(f->wake[0]);
	close(f->wake[1]);
	buf_free(&f->last_headers);
	buf_free(&f->last_body);
	buf_free(&f->sent);
	pthread_mutex_destroy(&f->mu);
}

/* Copy of the fake's counters (the fake is read under its lock). */
static int fu_requests(struct fake *f)
{
	int n;

	pthread_mutex_lock(&f->mu);
	n = f->requests;
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* ---- the client side ------------------------------------------------------------ */

/* Log lines of the proxy, to check that no secret reaches them. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct buf log_text;

static void log_sink(void *arg, const char *line)
{
	(void)arg;
	pthread_mutex_lock(&log_mu);
	(void)buf_adds(&log_text, line);
	(void)buf_addc(&log_text, '\n');
	pthread_mutex_unlock(&log_mu);
}

struct cl {
	/* request */
	char url[512];
	const char *method;             /* NULL: GET, or POST when body is set */
	struct curl_slist *hdrs;
	const char *body;
	size_t blen;
	int chunked;                    /* send body through a read callback, no length */
	const char *proxy;              /* use as an HTTP proxy (absolute-form / CONNECT) */
	int tunnel;
	int abort_after_first;
	/* result */
	CURLcode rc;
	long status, connect_code;
	struct buf out, head, first;
	double t0, t_first, t_last;
	int pieces;
	size_t rd_off;
};

static size_t cl_write(char *d, size_t size, size_t nm, void *arg)
{
	struct cl *c = arg;
	size_t n = size * nm;

	c->t_last = now_ms();
	if (__atomic_fetch_add(&c->pieces, 1, __ATOMIC_ACQ_REL) == 0) {
		c->t_first = c->t_last;
		(void)buf_add(&c->first, d, n);
		if (c->abort_after_first)
			return 0;
	}
	return buf_add(&c->out, d, n) == 0 ? n : 0;
}

static size_t cl_header(char *d, size_t size, size_t nm, void *arg)
{
	struct cl *c = arg;

	return buf_add(&c->head, d, size * nm) == 0 ? size * nm : 0;
}

static size_t cl_read(char *dst, size_t size, size_t nm, void *arg)
{
	struct cl *c = arg;
	size_t n = size * nm, left = c->blen - c->rd_off;

	if (n > 1000)
		n = 1000;       /* many small chunks */
	if (n > left)
		n = left;
	memcpy(dst, c->body + c->rd_off, n);
	c->rd_off += n;
	return n;
}

/* Run the request described in c (with handle h if given, else a new one). */
static void cl_run(struct cl *c, CURL *reuse)
{
	CURL *h = reuse ? reuse : curl_easy_init();

	c->rc = CURLE_FAILED_INIT;
	if (!h)
		return;
	if (reuse)
		curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cl_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_PROXY, c->proxy ? c->proxy : "");
	if (c->tunnel)
		curl_easy_setopt(h, CURLOPT_HTTPPROXYTUNNEL, 1L);
	if (c->hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
	if (c->body && c->chunked) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, cl_read);
		curl_easy_setopt(h, CURLOPT_READDATA, c);
	} else if (c->body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->blen);
	}
	if (c->method && strcmp(c->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (c->method)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
	c->t0 = now_ms();
	c->rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &c->connect_code);
	if (!reuse)
		curl_easy_cleanup(h);
}

static void cl_free(struct cl *c)
{
	curl_slist_free_all(c->hdrs);
	buf_free(&c->out);
	buf_free(&c->head);
	buf_free(&c->first);
}

static void cl_header_add(struct cl *c, const char *fmt, const char *arg)
{
	char line[512];
	struct curl_slist *n;

	snprintf(line, sizeof(line), fmt, arg);
	n = curl_slist_append(c->hdrs, line);
	if (n)
		c->hdrs = n;
}

/* A fake and a proxy in front of it. */
struct rig {
	struct fake f;
	struct tp_proxy p;
	int fake_ok, proxy_ok;
};

static int rig_start(struct rig *r, enum tp_cred_kind kind, const char *upstream, char *why, size_t n)
{
	struct tp_config cfg;
	struct err e = ERR_INIT;
	char up[64];

	memset(r, 0, sizeof(*r));
	if (net_global_init(why, n) != 0)
		return 1;
	if (fu_start(&r->f) != 0)
		return st_fail(why, n, "cannot start the fake upstream on 127.0.0.1: %s", strerror(errno));
	r->fake_ok = 1;
	snprintf(up, sizeof(up), "http://127.0.0.1:%d/", r->f.port);
	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = kind;
	cfg.credential = kind == TP_CRED_OAUTH ? REAL_TOKEN : REAL_KEY;
	cfg.upstream = upstream ? upstream : up;
	cfg.log = log_sink;
	if (tp_start(&r->p, &cfg, &e) != 0)
		return st_fail(why, n, "tp_start: %s", e.msg);
	r->proxy_ok = 1;
	return 0;
}

static void rig_stop(struct rig *r)
{
	if (r->proxy_ok)
		tp_stop(&r->p);
	if (r->fake_ok)
		fu_stop(&r->f);
}

static void via_proxy(struct cl *c, struct rig *r, const char *target)
{
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d%s", tp_port(&r->p), target);
}

/* No secret in the proxy's log lines so far. */
static int log_clean(char *why, size_t n)
{
	int bad;

	pthread_mutex_lock(&log_mu);
	bad = log_text.p && (strstr(log_text.p, REAL_KEY) || strstr(log_text.p, REAL_TOKEN));
	pthread_mutex_unlock(&log_mu);
	return bad ? st_fail(why, n, "a real credential appeared in the proxy's log") : 0;
}

/* ---- cases ------------------------------------------------------------------------ */

static const char json_body[] = "{\"model\":\"claude-test\",\"max_tokens\":16,\"messages\":[{\"role\":\"user\","
				"\"content\":\"hi\"}]}";
static const char sse_body[] = "{\"model\":\"claude-test\",\"max_tokens\":16,\"stream\":true,\"messages\":"
			       "[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* The dummy in x-api-key becomes the real key; other credentials, proxy and
 * hop-by-hop headers are dropped; Host is the upstream's. */
static int t_apikey(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	char host[64];
	const char *h;
	int fail = 1;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?beta=true");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_header_add(&c, "%s", "Authorization: Bearer sk-ant-some-other-credential");
	cl_header_add(&c, "%s", "anthropic-version: 2023-06-01");
	cl_header_add(&c, "%s", "Proxy-Authorization: Basic c2VjcmV0");
	cl_header_add(&c, "%s", "Connection: keep-alive, X-Hop");
	cl_header_add(&c, "%s", "X-Hop: must-not-pass");
	cl_header_add(&c, "%s", "Content-Type: application/json");
	cl_header_add(&c, "%s", "X-Empty;");
	c.body = json_body;
	c.blen = strlen(json_body);
	cl_run(&c, NULL);
	snprintf(host, sizeof(host), "host: 127.0.0.1:%d\n", r.f.port);
	pthread_mutex_lock(&r.f.mu);
	h = r.f.last_headers.p ? r.f.last_headers.p : "";
	if (c.rc != CURLE_OK || c.status != 200)
		st_fail(why, n, "request failed: %s, status %ld", curl_easy_strerror(c.rc), c.status);
	else if (r.f.requests != 1)
		st_fail(why, n, "the upstream saw %d requests, want 1", r.f.requests);
	else if (!strstr(h, "x-api-key: " REAL_KEY "\n") || strstr(strstr(h, "x-api-key:") + 1, "x-api-key:"))
		st_fail(why, n, "the upstream did not get exactly one x-api-key with the real key");
	else if (strstr(h, "authorization:") || strstr(h, "proxy-") || strstr(h, "x-hop") || strstr(h, "connection:"))
		st_fail(why, n, "a credential, proxy or hop-by-hop header reached the upstream");
	else if (strstr(h, tp_dummy(&r.p)))
		st_fail(why, n, "the dummy credential reached the upstream");
	else if (!strstr(h, host))
		st_fail(why, n, "the upstream saw the wrong Host (want %.*s)", (int)strlen(host) - 1, host);
	else if (!strstr(h, "anthropic-version: 2023-06-01\n") || !strstr(h, "x-empty: \n"))
		st_fail(why, n, "end-to-end headers were not forwarded");
	else if (strcmp(r.f.last_body.p ? r.f.last_body.p : "", json_body) != 0 || strcmp(r.f.last_method, "POST") != 0 ||
		 strcmp(r.f.last_target, "/v1/messages?beta=true") != 0)
		st_fail(why, n, "method, target or body changed on the way");
	else if (!c.out.p || !strstr(c.out.p, "\"msg_fake\"") || !strstr(c.head.p, "request-id: req_fake_json"))
		st_fail(why, n, "the answer did not come back intact");
	else
		fail = log_clean(why, n);
	pthread_mutex_unlock(&r.f.mu);
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* OAuth mode: "Authorization: Bearer <dummy>" becomes the real token. */
static int t_oauth(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	const char *h;
	int fail = 1;

	if (rig_start(&r, TP_CRED_OAUTH, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?beta=true");
	cl_header_add(&c, "Authorization: Bearer %s", tp_dummy(&r.p));
	cl_header_add(&c, "%s", "Content-Type: application/json");
	c.body = json_body;
	c.blen = strlen(json_body);
	cl_run(&c, NULL);
	pthread_mutex_lock(&r.f.mu);
	h = r.f.last_headers.p ? r.f.last_headers.p : "";
	if (c.rc != CURLE_OK || c.status != 200)
		st_fail(why, n, "request failed: %s, status %ld", curl_easy_strerror(c.rc), c.status);
	else if (!strstr(h, "authorization: Bearer " REAL_TOKEN "\n"))
		st_fail(why, n, "the upstream did not get the real token as Bearer");
	else if (strstr(h, "x-api-key") || strstr(h, tp_dummy(&r.p)))
		st_fail(why, n, "x-api-key or the dummy reached the upstream");
	else if (strcmp(tp_cred_env(&r.p), "CLAUDE_CODE_OAUTH_TOKEN") != 0)
		st_fail(why, n, "tp_cred_env gave %s", tp_cred_env(&r.p));
	else
		fail = log_clean(why, n);
	pthread_mutex_unlock(&r.f.mu);
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* Without the dummy: 401, and nothing reaches the upstream. */
static int t_noauth(char *why, size_t n)
{
	static const char *const bad[] = { NULL, "x-api-key: sk-ant-api03-someone-elses-key",
		"Authorization: Bearer sk-ant-oat01-not-the-dummy", "Authorization: Basic Zm9vOmJhcg==",
		"x-api-key: ", NULL };
	struct rig r;
	int i, fail = 0;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	for (i = 0; i < 5 && !fail; i++) {
		struct cl c;
		char prefix[80];

		memset(&c, 0, sizeof(c));
		via_proxy(&c, &r, "/v1/messages");
		if (bad[i])
			cl_header_add(&c, "%s", bad[i]);
		/* Also a near miss: the dummy with its last character changed. */
		if (i == 4) {
			snprintf(prefix, sizeof(prefix), "%s", tp_dummy(&r.p));
			prefix[strlen(prefix) - 1] ^= 1;
			cl_header_add(&c, "x-api-key: %s", prefix);
		}
		c.body = json_body;
		c.blen = strlen(json_body);
		cl_run(&c, NULL);
		if (c.rc != CURLE_OK || c.status != 401)
			fail = st_fail(why, n, "case %d: want 401, got %ld (%s)", i, c.status, curl_easy_strerror(c.rc));
		else if (!c.out.p || !strstr(c.out.p, "\"authentication_error\""))
			fail = st_fail(why, n, "case %d: the 401 body is not an authentication_error", i);
		cl_free(&c);
	}
	if (!fail && fu_requests(&r.f) != 0)
		fail = st_fail(why, n, "the upstream saw %d requests", fu_requests(&r.f));
	if (!fail && r.f.conns != 0)
		fail = st_fail(why, n, "the proxy connected to the upstream");
	rig_stop(&r);
	return fail ? fail : log_clean(why, n);
}

/* Absolute-form targets and CONNECT are refused, even with the dummy. */
static int t_absolute(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	char proxy[64];
	int fail = 1;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", tp_port(&r.p));
	/* libcurl sends "GET http://evil.example/v1/messages HTTP/1.1" to a proxy. */
	memset(&c, 0, sizeof(c));
	snprintf(c.url, sizeof(c.url), "http://evil.example/v1/messages");
	c.proxy = proxy;
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_run(&c, NULL);
	if (c.rc != CURLE_OK || c.status != 400 || !c.out.p || !strstr(c.out.p, "origin-form")) {
		st_fail(why, n, "absolute-form: want 400, got %ld (%s)", c.status, curl_easy_strerror(c.rc));
		goto out;
	}
	cl_free(&c);
	/* And "CONNECT evil.example:443 HTTP/1.1". */
	memset(&c, 0, sizeof(c));
	snprintf(c.url, sizeof(c.url), "http://evil.example:443/");
	c.proxy = proxy;
	c.tunnel = 1;
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_run(&c, NULL);
	if (c.rc == CURLE_OK || c.connect_code != 405) {
		st_fail(why, n, "CONNECT: want 405, got %ld (%s)", c.connect_code, curl_easy_strerror(c.rc));
		goto out;
	}
	if (fu_requests(&r.f) != 0 || r.f.conns != 0) {
		st_fail(why, n, "the upstream saw a connection");
		goto out;
	}
	fail = log_clean(why, n);
out:
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* A streamed answer arrives in pieces: the first event long before the
 * upstream has finished. */
static int t_sse(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	int fail = 1;
	double gap;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?beta=true&pause=400&in=25&out=15&cc=5&cr=100");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_header_add(&c, "%s", "Content-Type: application/json");
	c.body = sse_body;
	c.blen = strlen(sse_body);
	cl_run(&c, NULL);
	gap = c.t_last - c.t_first;
	pthread_mutex_lock(&r.f.mu);
	if (c.rc != CURLE_OK || c.status != 200)
		st_fail(why, n, "request failed: %s, status %ld", curl_easy_strerror(c.rc), c.status);
	else if (!c.first.p || !strstr(c.first.p, "event: message_start") || strstr(c.first.p, "message_stop"))
		st_fail(why, n, "the first piece was not message_start alone");
	else if (gap < 300)
		st_fail(why, n, "the first event arrived only %.0f ms before the end: buffered", gap);
	else if (!r.f.sent.p || c.out.len != r.f.sent.len || memcmp(c.out.p, r.f.sent.p, c.out.len) != 0)
		st_fail(why, n, "the stream changed on the way (%zu bytes in, %zu out)", r.f.sent.len, c.out.len);
	else if (!strstr(c.head.p, "text/event-stream") || !strstr(c.head.p, "request-id: req_fake_sse") ||
		 !strcasestr(c.head.p, "transfer-encoding: chunked"))
		st_fail(why, n, "the SSE response headers were not relayed");
	else {
		snprintf(why, n, "%d pieces, first event %.0f ms before the last", c.pieces, gap);
		fail = 0;
	}
	pthread_mutex_unlock(&r.f.mu);
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* Chunked and Content-Length request bodies are forwarded intact. */
static int t_chunked(char *why, size_t n)
{
	struct rig r;
	struct buf body = BUF_INIT;
	int pass, fail = 0;
	size_t i;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	for (i = 0; i < 300000 && buf_addc(&body, (char)('a' + (i * 7 + i / 251) % 26)) == 0; i++)
		;
	if (body.len != 300000)
		fail = st_fail(why, n, "out of memory");
	for (pass = 0; pass < 2 && !fail; pass++) {
		struct cl c;

		memset(&c, 0, sizeof(c));
		via_proxy(&c, &r, "/echo");
		cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
		c.body = body.p;
		c.blen = body.len;
		c.chunked = pass == 0;
		cl_run(&c, NULL);
		pthread_mutex_lock(&r.f.mu);
		if (c.rc != CURLE_OK || c.status != 200)
			fail = st_fail(why, n, "%s body: %s, status %ld", pass ? "length" : "chunked",
				       curl_easy_strerror(c.rc), c.status);
		else if (r.f.last_body.len != body.len || memcmp(r.f.last_body.p, body.p, body.len) != 0)
			fail = st_fail(why, n, "%s body: the upstream got %zu bytes, not the %zu sent",
				       pass ? "length" : "chunked", r.f.last_body.len, body.len);
		else if (r.f.last_chunked != (pass == 0))
			fail = st_fail(why, n, "%s body: framing changed on the way", pass ? "length" : "chunked");
		else if (pass == 1 && !strstr(r.f.last_headers.p, "content-length: 300000\n"))
			fail = st_fail(why, n, "length body: Content-Length not forwarded");
		else if (c.out.len != body.len || memcmp(c.out.p, body.p, body.len) != 0)
			fail = st_fail(why, n, "%s body: the echo came back changed", pass ? "length" : "chunked");
		pthread_mutex_unlock(&r.f.mu);
		cl_free(&c);
	}
	buf_free(&body);
	rig_stop(&r);
	return fail;
}

/* Usage totals over two streamed answers and one JSON answer. */
static int t_usage(char *why, size_t n)
{
	static const char *const targets[] = { "/v1/messages?beta=true&in=25&out=15&cc=5&cr=100",
		"/v1/messages?beta=true&in=7&out=3&cc=0&cr=50", "/v1/messages?in=2&out=4&cc=1&cr=0",
		"/v1/messages/count_tokens?in=1000" };
	struct rig r;
	struct tp_usage u;
	int i, fail = 0;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	for (i = 0; i < 4 && !fail; i++) {
		struct cl c;

		memset(&c, 0, sizeof(c));
		via_proxy(&c, &r, targets[i]);
		cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
		c.body = i < 2 ? sse_body : json_body;
		c.blen = strlen(c.body);
		cl_run(&c, NULL);
		if (c.rc != CURLE_OK || (c.status != 200 && !(i == 3 && c.status == 404)))
			fail = st_fail(why, n, "request %d: %s, status %ld", i, curl_easy_strerror(c.rc), c.status);
		cl_free(&c);
	}
	tp_usage(&r.p, &u);
	if (!fail && (u.requests != 3 || u.input_tokens != 34 || u.output_tokens != 22 ||
		      u.cache_creation_input_tokens != 6 || u.cache_read_input_tokens != 150 || u.forwarded != 4))
		fail = st_fail(why, n,
			       "got requests %llu in %llu out %llu cache_creation %llu cache_read %llu forwarded %llu; "
			       "want 3 34 22 6 150 4",
			       (unsigned long long)u.requests, (unsigned long long)u.input_tokens,
			       (unsigned long long)u.output_tokens, (unsigned long long)u.cache_creation_input_tokens,
			       (unsigned long long)u.cache_read_input_tokens, (unsigned long long)u.forwarded);
	rig_stop(&r);
	tp_usage(&r.p, &u);
	if (!fail && u.input_tokens != 34)
		fail = st_fail(why, n, "totals not readable after tp_stop");
	return fail;
}

/* Upstream down: 502 Bad Gateway. */
static int t_down(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	char up[64];
	int port = 0, fd = listen_loopback(&port), fail = 1;

	if (fd < 0)
		return st_fail(why, n, "cannot find a free port");
	close(fd);              /* nothing listens there now */
	snprintf(up, sizeof(up), "http://127.0.0.1:%d", port);
	if (rig_start(&r, TP_CRED_API_KEY, up, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.body = json_body;
	c.blen = strlen(json_body);
	cl_run(&c, NULL);
	if (c.rc != CURLE_OK || c.status != 502)
		st_fail(why, n, "want 502, got %ld (%s)", c.status, curl_easy_strerror(c.rc));
	else if (!c.out.p || !strstr(c.out.p, "Bad Gateway") || !strstr(c.head.p, "502 Bad Gateway"))
		st_fail(why, n, "the 502 does not say Bad Gateway");
	else
		fail = log_clean(why, n);
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* The client hangs up mid-stream: the proxy drops the upstream request. */
static int t_gone(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	double t0;
	int closed = 0, fail = 1;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?pause=4000");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.body = sse_body;
	c.blen = strlen(sse_body);
	c.abort_after_first = 1;
	cl_run(&c, NULL);       /* returns at the first piece: the client is gone */
	t0 = now_ms();
	while (now_ms() - t0 < 3500 && !closed) {
		usleep(20 * 1000);
		pthread_mutex_lock(&r.f.mu);
		closed = r.f.peer_closed;
		pthread_mutex_unlock(&r.f.mu);
	}
	if (c.pieces != 1)
		st_fail(why, n, "the client did not get the first event (%s)", curl_easy_strerror(c.rc));
	else if (!closed)
		st_fail(why, n, "the upstream connection stayed open after the client left");
	else {
		snprintf(why, n, "upstream dropped %.0f ms after the client", now_ms() - t0);
		fail = 0;
	}
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

static void *cl_thread(void *arg)
{
	cl_run(arg, NULL);
	return NULL;
}

/* tp_stop() during a stream returns promptly and cuts the stream. */
static int t_stop(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	pthread_t th;
	double t0, took;
	int fail = 1, got = 0;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/v1/messages?pause=4000");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.body = sse_body;
	c.blen = strlen(sse_body);
	if (pthread_create(&th, NULL, cl_thread, &c) != 0) {
		cl_free(&c);
		rig_stop(&r);
		return st_fail(why, n, "cannot start a client thread");
	}
	for (t0 = now_ms(); now_ms() - t0 < 3000 && !got;) {
		usleep(10 * 1000);
		got = __atomic_load_n(&c.pieces, __ATOMIC_ACQUIRE) > 0;
	}
	t0 = now_ms();
	tp_stop(&r.p);
	r.proxy_ok = 0;
	took = now_ms() - t0;
	pthread_join(th, NULL);
	if (!got)
		st_fail(why, n, "the stream never started");
	else if (took > 2000)
		st_fail(why, n, "tp_stop took %.0f ms", took);
	else if (c.rc == CURLE_OK)
		st_fail(why, n, "the stream was not cut off");
	else if (tp_dummy(&r.p)[0] != 0)
		st_fail(why, n, "the dummy was not wiped");
	else {
		snprintf(why, n, "tp_stop took %.0f ms", took);
		fail = 0;
	}
	cl_free(&c);
	rig_stop(&r);
	return fail;
}

/* Framing: HEAD keeps Content-Length without a body; a close-delimited
 * upstream body reaches the client chunked; keep-alive works. */
static int t_framing(char *why, size_t n)
{
	struct rig r;
	struct cl c;
	CURL *h = curl_easy_init();
	int fail = 1;

	if (!h)
		return st_fail(why, n, "curl_easy_init failed");
	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		curl_easy_cleanup(h);
		rig_stop(&r);
		return 1;
	}
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/close");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	cl_run(&c, h);
	if (c.rc != CURLE_OK || c.status != 200 || !c.out.p || strcmp(c.out.p, "close-delimited body\n") != 0 ||
	    !strcasestr(c.head.p, "transfer-encoding: chunked")) {
		st_fail(why, n, "close-delimited: %s, status %ld", curl_easy_strerror(c.rc), c.status);
		goto out;
	}
	cl_free(&c);
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/echo");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.method = "HEAD";
	cl_run(&c, h);
	if (c.rc != CURLE_OK || c.status != 200 || c.out.len != 0 || !strcasestr(c.head.p, "content-length: 0")) {
		st_fail(why, n, "HEAD: %s, status %ld", curl_easy_strerror(c.rc), c.status);
		goto out;
	}
	cl_free(&c);
	memset(&c, 0, sizeof(c));
	via_proxy(&c, &r, "/echo");
	cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
	c.body = "again";
	c.blen = 5;
	cl_run(&c, h);
	if (c.rc != CURLE_OK || c.status != 200 || !c.out.p || strcmp(c.out.p, "again") != 0) {
		st_fail(why, n, "keep-alive request: %s, status %ld", curl_easy_strerror(c.rc), c.status);
		goto out;
	}
	fail = 0;
out:
	cl_free(&c);
	curl_easy_cleanup(h);
	rig_stop(&r);
	return fail;
}

/* Send raw bytes to the proxy, read the answer until it closes. */
static int raw_exchange(int port, const char *req, char *out, size_t outlen)
{
	struct sockaddr_in sa;
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { 5, 0 };

	out[0] = 0;
	if (fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || send_all(fd, req, strlen(req)) != 0) {
		close(fd);
		return -1;
	}
	while (got + 1 < outlen) {
		ssize_t r = recv(fd, out + got, outlen - 1 - got, 0);

		if (r <= 0)
			break;
		got += (size_t)r;
		out[got] = 0;
	}
	close(fd);
	return 0;
}

/* Malformed and smuggling-shaped requests get 4xx; the upstream sees none. */
static int t_malformed(char *why, size_t n)
{
	static const struct {
		const char *req;
		const char *want;
	} cases[] = {
		{ "GET /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
		  "x-api-key: %s\r\n\r\n0\r\n\r\n", "HTTP/1.1 400 " },
		{ "POST /v1/messages HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\nx-api-key: %s\r\n\r\nab",
		  "HTTP/1.1 400 " },
		{ "GET /v1/messa ges HTTP/1.1\r\nx-api-key: %s\r\n\r\n", "HTTP/1.1 400 " },
		{ "OPTIONS * HTTP/1.1\r\nx-api-key: %s\r\n\r\n", "HTTP/1.1 400 " },
		{ "GET //evil.example/x HTTP/1.1\r\nx-api-key: %s-no\r\n\r\n", "HTTP/1.1 401 " },
		{ "TRACE /v1/messages HTTP/1.1\r\nx-api-key: %s\r\n\r\n", "HTTP/1.1 405 " },
		{ "POST /v1/messages HTTP/1.1\r\nExpect: magic\r\nContent-Length: 2\r\nx-api-key: %s\r\n\r\nab",
		  "HTTP/1.1 417 " },
		{ "GET /v1/messages HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nx-api-key: %s\r\n\r\n",
		  "HTTP/1.1 400 " },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nx-api-key: %s\r\n\r\n5\r\nabcde\r\nzz\r\n",
		  "HTTP/1.1 400 " },
	};
	struct rig r;
	size_t i;
	int fail = 0;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]) && !fail; i++) {
		char req[1024], out[4096];

		snprintf(req, sizeof(req), cases[i].req, tp_dummy(&r.p));
		if (raw_exchange(tp_port(&r.p), req, out, sizeof(out)) != 0)
			fail = st_fail(why, n, "case %zu: cannot talk to the proxy", i);
		else if (strncmp(out, cases[i].want, strlen(cases[i].want)) != 0)
			fail = st_fail(why, n, "case %zu: want \"%s\", got \"%.40s\"", i, cases[i].want, out);
	}
	if (!fail && fu_requests(&r.f) != 0)
		fail = st_fail(why, n, "the upstream saw %d requests", fu_requests(&r.f));
	rig_stop(&r);
	return fail;
}

/* Two pipelined requests in one packet get two answers, in order. */
static int t_pipeline(char *why, size_t n)
{
	struct rig r;
	char req[1024], out[4096];
	const char *a, *b;
	int fail = 1;

	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		rig_stop(&r);
		return 1;
	}
	snprintf(req, sizeof(req),
		 "POST /echo HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nContent-Length: 9\r\n\r\nfirst-one"
		 "POST /echo HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nTransfer-Encoding: chunked\r\n"
		 "Connection: close\r\n\r\n3\r\nsec\r\n7\r\nond-one\r\n0\r\n\r\n",
		 tp_dummy(&r.p), tp_dummy(&r.p));
	if (raw_exchange(tp_port(&r.p), req, out, sizeof(out)) != 0)
		st_fail(why, n, "cannot talk to the proxy");
	else if (!(a = strstr(out, "HTTP/1.1 200 ")) || !(b = strstr(a + 1, "HTTP/1.1 200 ")))
		st_fail(why, n, "want two 200 answers, got \"%.60s\"", out);
	else if (!strstr(a, "\r\n\r\nfirst-one") || !strstr(b, "\r\n\r\nsecond-one") || strstr(a, "second-one") < b)
		st_fail(why, n, "the answers are out of order or changed");
	else if (fu_requests(&r.f) != 2)
		st_fail(why, n, "the upstream saw %d requests, want 2", fu_requests(&r.f));
	else
		fail = 0;
	rig_stop(&r);
	return fail;
}

/* Configuration errors are actionable and never show the credential. */
static int t_config(char *why, size_t n)
{
	struct tp_proxy p;
	struct tp_config cfg;
	struct err e = ERR_INIT;
	const char *old = getenv(TP_UPSTREAM_ENV);
	char *saved = old ? strdup(old) : NULL;
	int fail = 1;

	if (net_global_init(why, n) != 0) {
		free(saved);
		return 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = TP_CRED_API_KEY;
	cfg.credential = "sk-ant-api03-bad key-with-a-space-0123456789";
	cfg.upstream = "https://api.example.invalid";
	if (tp_start(&p, &cfg, &e) == 0) {
		tp_stop(&p);
		st_fail(why, n, "a credential with a space was accepted");
		goto out;
	}
	if (strstr(e.msg, "bad key") || strstr(e.msg, "0123456789")) {
		st_fail(why, n, "the error shows the credential");
		goto out;
	}
	cfg.credential = REAL_KEY;
	cfg.upstream = "http://evil.example";
	if (tp_start(&p, &cfg, &e) == 0) {
		tp_stop(&p);
		st_fail(why, n, "plain http to a non-loopback host was accepted");
		goto out;
	}
	cfg.upstream = "https://user:pw@api.example.invalid";
	if (tp_start(&p, &cfg, &e) == 0) {
		tp_stop(&p);
		st_fail(why, n, "an upstream with user info was accepted");
		goto out;
	}
	/* The environment variable is used when the config names none. */
	cfg.upstream = NULL;
	setenv(TP_UPSTREAM_ENV, "https://gateway.example.invalid:8443/anthropic/", 1);
	if (tp_start(&p, &cfg, &e) != 0) {
		st_fail(why, n, "tp_start with %s: %s", TP_UPSTREAM_ENV, e.msg);
		goto out;
	}
	if (strcmp(tp_upstream(&p), "https://gateway.example.invalid:8443/anthropic") != 0 ||
	    strncmp(tp_dummy(&p), "sk-ant-ccr-proxy-", 17) != 0 || strlen(tp_dummy(&p)) != 17 + 64 ||
	    strcmp(tp_cred_env(&p), "ANTHROPIC_API_KEY") != 0 || tp_port(&p) <= 0) {
		tp_stop(&p);
		st_fail(why, n, "upstream %s, or dummy/env/port wrong", tp_upstream(&p));
		goto out;
	}
	tp_stop(&p);
	tp_stop(&p);            /* twice is harmless */
	unsetenv(TP_UPSTREAM_ENV);
	if (tp_start(&p, &cfg, &e) != 0 || strcmp(tp_upstream(&p), TP_DEFAULT_UPSTREAM) != 0) {
		st_fail(why, n, "default upstream: %s", e.msg[0] ? e.msg : tp_upstream(&p));
		tp_stop(&p);
		goto out;
	}
	tp_stop(&p);
	fail = 0;
out:
	if (saved)
		setenv(TP_UPSTREAM_ENV, saved, 1);
	else
		unsetenv(TP_UPSTREAM_ENV);
	free(saved);
	return fail;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Time to first byte, direct to the fake and through the proxy, over
 * keep-alive connections (reported; fails only if the proxy is slow). */
static int t_overhead(char *why, size_t n)
{
	enum { N = 300 };
	struct rig r;
	double *ttfb = calloc(2 * N, sizeof(double));
	CURL *h = curl_easy_init();
	int pass, i, fail = 0, conns_before;

	if (!ttfb || !h) {
		free(ttfb);
		if (h)
			curl_easy_cleanup(h);
		return st_fail(why, n, "out of memory");
	}
	if (rig_start(&r, TP_CRED_API_KEY, NULL, why, n) != 0) {
		free(ttfb);
		curl_easy_cleanup(h);
		rig_stop(&r);
		return 1;
	}
	conns_before = 0;
	for (pass = 0; pass < 2 && !fail; pass++) {
		pthread_mutex_lock(&r.f.mu);
		conns_before = r.f.conns;
		pthread_mutex_unlock(&r.f.mu);
		for (i = 0; i < N && !fail; i++) {
			struct cl c;
			curl_off_t t = 0;

			memset(&c, 0, sizeof(c));
			if (pass == 0)
				snprintf(c.url, sizeof(c.url), "http://127.0.0.1:%d/v1/messages?in=1&out=1", r.f.port);
			else
				via_proxy(&c, &r, "/v1/messages?in=1&out=1");
			cl_header_add(&c, "x-api-key: %s", tp_dummy(&r.p));
			cl_header_add(&c, "%s", "Content-Type: application/json");
			c.body = json_body;
			c.blen = strlen(json_body);
			cl_run(&c, h);
			if (c.rc != CURLE_OK || c.status != 200)
				fail = st_fail(why, n, "request %d failed: %s, %ld", i, curl_easy_strerror(c.rc), c.status);
			curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME_T, &t);
			ttfb[pass * N + i] = (double)t;
			cl_free(&c);
		}
	}
	if (!fail) {
		double dm, dp, pm, pp;
		int upstream_conns;

		pthread_mutex_lock(&r.f.mu);
		upstream_conns = r.f.conns - conns_before;
		pthread_mutex_unlock(&r.f.mu);
		qsort(ttfb, N, sizeof(double), cmp_double);
		qsort(ttfb + N, N, sizeof(double), cmp_double);
		dm = ttfb[N / 2], dp = ttfb[N * 9 / 10];
		pm = ttfb[N + N / 2], pp = ttfb[N + N * 9 / 10];
		if (upstream_conns > 2)
			fail = st_fail(why, n, "%d upstream connections for %d keep-alive requests", upstream_conns, N);
		else if (pm > dm + 50000)
			fail = st_fail(why, n, "proxy median TTFB %.0f us vs %.0f us direct", pm, dm);
		else
			snprintf(why, n, "TTFB median %.0f us direct, %.0f us proxied (+%.0f); p90 %.0f / %.0f us; n=%d",
				 dm, pm, pm - dm, dp, pp, N);
	}
	free(ttfb);
	curl_easy_cleanup(h);
	rig_stop(&r);
	return fail;
}

const struct st_case proxy_selftests[] = {
	{ "apikey", t_apikey },
	{ "oauth", t_oauth },
	{ "noauth", t_noauth },
	{ "absolute", t_absolute },
	{ "malformed", t_malformed },
	{ "sse", t_sse },
	{ "chunked", t_chunked },
	{ "framing", t_framing },
	{ "pipeline", t_pipeline },
	{ "usage", t_usage },
	{ "down", t_down },
	{ "gone", t_gone },
	{ "stop", t_stop },
	{ "config", t_config },
	{ "overhead", t_overhead },
	{ NULL, NULL },
};
