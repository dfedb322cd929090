/*
 * proxy_rig_test.c: the rig of the token proxy's selftests (proxy_rig.h),
 * entirely in-process on the loopback interface.
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
#include "proxy/proxy_rig.h"
#include "selftest/selftest.h"
#include "util/buf.h"
#include "util/fdio.h"


double tpt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the fake upstream ------------------------------------------------------- */


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

int send_all(int fd, const void *d, size_t n)
{
	return fd_send_all(fd, d, n);
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
	double end = tpt_now_ms() + ms;

	for (;;) {
		struct pollfd pf;
		double left = end - tpt_now_ms();

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

int listen_loopback(int *port)
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
int fu_requests(struct fake *f)
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


static size_t cl_write(char *d, size_t size, size_t nm, void *arg)
{
	struct cl *c = arg;
	size_t n = size * nm;

	c->t_last = tpt_now_ms();
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
void cl_run(struct cl *c, CURL *reuse)
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
	c->t0 = tpt_now_ms();
	c->rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
	curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &c->connect_code);
	if (!reuse)
		curl_easy_cleanup(h);
}

void cl_free(struct cl *c)
{
	curl_slist_free_all(c->hdrs);
	buf_free(&c->out);
	buf_free(&c->head);
	buf_free(&c->first);
}

void cl_header_add(struct cl *c, const char *fmt, const char *arg)
{
	char line[512];
	struct curl_slist *n;

	snprintf(line, sizeof(line), fmt, arg);
	n = curl_slist_append(c->hdrs, line);
	if (n)
		c->hdrs = n;
}


int rig_start(struct rig *r, enum tp_cred_kind kind, const char *upstream, char *why, size_t n)
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

void rig_stop(struct rig *r)
{
	if (r->proxy_ok)
		tp_stop(&r->p);
	if (r->fake_ok)
		fu_stop(&r->f);
}

void via_proxy(struct cl *c, struct rig *r, const char *target)
{
	snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%d%s", tp_port(&r->p), target);
}

/* No secret in the proxy's log lines so far. */
int log_clean(char *why, size_t n)
{
	int bad;

	pthread_mutex_lock(&log_mu);
	bad = log_text.p && (strstr(log_text.p, REAL_KEY) || strstr(log_text.p, REAL_TOKEN));
	pthread_mutex_unlock(&log_mu);
	return bad ? st_fail(why, n, "a real credential appeared in the proxy's log") : 0;
}

/* The request bodies the cases send. */
const char tpt_json_body[] = "{\"model\":\"claude-test\",\"max_tokens\":16,\"messages\":[{\"role\":\"user\","
				"\"content\":\"hi\"}]}";
const char tpt_sse_body[] = "{\"model\":\"claude-test\",\"max_tokens\":16,\"stream\":true,\"messages\":"
			       "[{\"role\":\"user\",\"content\":\"hi\"}]}";
