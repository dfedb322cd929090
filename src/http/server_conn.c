/*
 * server_conn.c: one connection of the HTTP/1.1 server (see server.c for
 * the design): waits with deadlines, writes, the lingering close, reading
 * one request through http-parser, answering a request (handler, access
 * log, keep-alive or close), and the blocking loop of hs_serve_fd.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "http/server_int.h"

/* ---- small helpers ---------------------------------------------------- */


int hs_draining(const struct hs_server *s)
{
	return __atomic_load_n(&s->draining, __ATOMIC_ACQUIRE);
}
void hs_set_remote(struct hs_conn *c, const struct sockaddr_storage *ss)
{
	c->remote[0] = 0;
	c->remote_port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

		if (!inet_ntop(AF_INET, &a->sin_addr, c->remote, sizeof(c->remote)))
			c->remote[0] = 0;
		c->remote_port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			if (!inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], c->remote, sizeof(c->remote)))
				c->remote[0] = 0;
		} else if (!inet_ntop(AF_INET6, &a->sin6_addr, c->remote, sizeof(c->remote))) {
			c->remote[0] = 0;
		}
		c->remote_port = ntohs(a->sin6_port);
	}
}

/* ---- waiting and writing ---------------------------------------------- */

/* Wait until fd has `events`, deadline (ms, 0 = none) passes, or (when
 * watch_drain) the server starts draining.  Readiness of the socket wins
 * over the drain, so a request that raced the drain is still read. */
int hs_wait_io(struct hs_conn *c, short events, uint64_t deadline, int watch_drain)
{
	for (;;) {
		struct pollfd pf[2];
		int timeout = -1, n, r;
		uint64_t now = (uint64_t)clock_mono_ms();

		if (deadline) {
			if (now >= deadline)
				return W_TIMEOUT;
			timeout = deadline - now > 0x7fffffff ? 0x7fffffff : (int)(deadline - now);
		}
		pf[0].fd = c->fd;
		pf[0].events = events;
		pf[0].revents = 0;
		n = 1;
		if (watch_drain) {
			pf[1].fd = c->srv->drain_pipe[0];
			pf[1].events = POLLIN;
			pf[1].revents = 0;
			n = 2;
		}
		r = poll(pf, (nfds_t)n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return W_ERR;
		}
		if (r == 0)
			continue;      /* re-check the deadline at the top */
		/* For reads any event is "ready": recv() reports EOF or the
		 * error.  For writes only POLLOUT is. */
		if (pf[0].revents & events)
			return W_READY;
		if (pf[0].revents)
			return (events & POLLIN) ? W_READY : W_ERR;
		if (n == 2 && (pf[1].revents & POLLIN))
			return W_DRAIN;
	}
}

/* On the loop thread: keep what the socket does not take in obuf. */
static int writev_nowait(struct hs_conn *c, const struct iovec *iov, int n)
{
	int i;

	if (!c->obuf.len)      /* the write timeout counts from the first byte kept */
		c->write_deadline = (uint64_t)clock_mono_ms() + c->srv->cfg.write_timeout_ms;
	for (i = 0; i < n; i++)
		if (iov[i].iov_len && buf_add(&c->obuf, iov[i].iov_base, iov[i].iov_len) != 0)
			goto gone;
	if (c->obuf.len > OBUF_HARD)
		goto gone;
	return hs_obuf_push(c);
gone:
	c->gone = 1;
	return -1;
}

static int writev_wait(struct hs_conn *c, struct iovec *iov, int n);

/* Write all of iov; -1 (and c->gone) when the client is gone or makes no
 * progress for write_timeout_ms.  On the loop thread nothing waits (see
 * writev_nowait); elsewhere what obuf still holds goes first. */
int hs_conn_writev(struct hs_conn *c, struct iovec *iov, int n)
{
	if (c->gone)
		return -1;
	if (c->nonblock)
		return writev_nowait(c, iov, n);
	if (c->obuf.len && hs_conn_flush(c) != 0)
		return -1;
	return writev_wait(c, iov, n);
}

int hs_conn_flush(struct hs_conn *c)
{
	struct iovec iov;
	int rc;

	if (!c->obuf.len)
		return c->gone ? -1 : 0;
	iov.iov_base = c->obuf.p;
	iov.iov_len = c->obuf.len;
	rc = writev_wait(c, &iov, 1);
	buf_free(&c->obuf);
	return rc;
}

static int writev_wait(struct hs_conn *c, struct iovec *iov, int n)
{
	uint64_t deadline = (uint64_t)clock_mono_ms() + c->srv->cfg.write_timeout_ms;

	if (c->gone)
		return -1;
	while (n > 0) {
		struct msghdr m;
		ssize_t w;

		if (iov->iov_len == 0) {
			iov++, n--;
			continue;
		}
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = (size_t)n;
		w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (hs_wait_io(c, POLLOUT, deadline, 0) != W_READY)
					goto gone;
				continue;
			}
			goto gone;
		}
		deadline = (uint64_t)clock_mono_ms() + c->srv->cfg.write_timeout_ms;
		while (w > 0 && n > 0) {
			if ((size_t)w >= iov->iov_len) {
				w -= (ssize_t)iov->iov_len;
				iov->iov_len = 0;
				iov++, n--;
			} else {
				iov->iov_base = (char *)iov->iov_base + w;
				iov->iov_len -= (size_t)w;
				w = 0;
			}
		}
	}
	return 0;
gone:
	c->gone = 1;
	return -1;
}

int hs_conn_write(struct hs_conn *c, const void *p, size_t n)
{
	struct iovec iov;

	iov.iov_base = (void *)p;
	iov.iov_len = n;
	return hs_conn_writev(c, &iov, 1);
}

/* Shut our side down, then read and drop what the client still sends for
 * up to LINGER_MS, so that it reads our answer rather than a reset. */
void hs_conn_linger(struct hs_conn *c)
{
	uint64_t deadline = (uint64_t)clock_mono_ms() + LINGER_MS;
	size_t dropped = 0;
	char sink[4096];

	if (shutdown(c->fd, SHUT_WR) != 0)
		return;
	while (dropped < LINGER_MAX_BYTES) {
		ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

		if (n > 0) {
			dropped += (size_t)n;
			continue;
		}
		if (n == 0)
			return;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return;
		if (hs_wait_io(c, POLLIN, deadline, 0) != W_READY)
			return;
	}
}

int hs_conn_absorb(struct hs_conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->rlen >= RBUF_SIZE)
			return 0;
		n = recv(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		c->gone = 1;
		return -1;
	}
}

/* One poll of the client socket (and the drain pipe), up to timeout ms. */
static int watch_client(struct hs_conn *c, int timeout, int watch_drain)
{
	struct pollfd pf[2];
	int n = 1, r;

	pf[0].fd = c->fd;
	pf[0].events = POLLRDHUP | (c->rlen < RBUF_SIZE ? POLLIN : 0);
	pf[0].revents = 0;
	if (watch_drain) {
		pf[1].fd = c->srv->drain_pipe[0];
		pf[1].events = POLLIN;
		pf[1].revents = 0;
		n = 2;
	}
	r = poll(pf, (nfds_t)n, timeout);
	if (r < 0)
		return errno == EINTR ? HS_WAIT_TIMEOUT : (c->gone = 1, HS_WAIT_GONE);
	if (r == 0)
		return HS_WAIT_TIMEOUT;
	if (pf[0].revents & POLLIN) {
		if (hs_conn_absorb(c) != 0)
			return HS_WAIT_GONE;
	}
	if (pf[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
		c->gone = 1;
		return HS_WAIT_GONE;
	}
	if (n == 2 && (pf[1].revents & POLLIN))
		return HS_WAIT_DRAINING;
	return HS_WAIT_TIMEOUT;
}

int hs_stream_wait_closed(struct hs_resp *r, unsigned ms)
{
	struct hs_conn *c = r->c;
	uint64_t deadline = (uint64_t)clock_mono_ms() + ms;

	for (;;) {
		uint64_t now;
		int w;

		if (c->gone)
			return HS_WAIT_GONE;
		if (hs_draining(c->srv))
			return HS_WAIT_DRAINING;
		now = (uint64_t)clock_mono_ms();
		if (now >= deadline)
			return HS_WAIT_TIMEOUT;
		w = watch_client(c, (int)(deadline - now), 1);
		if (w != HS_WAIT_TIMEOUT)
			return w;
	}
}

int hs_req_client_gone(struct hs_req *r)
{
	struct hs_conn *c = r->c;

	if (!c->gone)
		watch_client(c, 0, 0);
	return c->gone;
}

/* ---- reading one request ---------------------------------------------- */

enum { GOAL_HEAD, GOAL_MESSAGE, GOAL_BODY };
#define RD_TIMEOUT 4    /* recv_more: the deadline passed */

/* Run the parser over the unparsed bytes of rbuf.  RD_OK once the goal
 * is reached (the header section; the whole message; some body bytes or
 * the end of the body), RD_MORE when it needs more input, RD_FAIL on a
 * malformed request.  The parser pauses at the end of a message, so the
 * bytes of a pipelined next request stay in rbuf. */
static int parse_buffered(struct hs_conn *c, int goal)
{
	struct hs_req *q = &c->req;

	while (c->rpos < c->rlen) {
		size_t avail = c->rlen - c->rpos, used;
		enum http_errno en;

		if (!q->t_start)
			q->t_start = (uint64_t)clock_mono_us();
		used = http_parser_execute(&c->parser, &hs_parser_settings, c->rbuf + c->rpos, avail);
		c->rpos += used;
		en = HTTP_PARSER_ERRNO(&c->parser);
		if (q->complete && en == HPE_PAUSED) {
			memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
			return RD_OK;
		}
		if (en == HPE_PAUSED && q->headers_done) {
			/* stream_body: stopped at the end of the head, one byte
			 * (its last LF) short; a message without a body is read
			 * to its end at once */
			http_parser_pause(&c->parser, 0);
			if (!(c->parser.flags & F_CHUNKED) &&
			    !(c->parser.content_length > 0 && c->parser.content_length != ULLONG_MAX))
				continue;
			http_parser_pause(&c->parser, 1);
			q->head_paused = 1;
			return RD_OK;
		}
		if (en != HPE_OK)
			return hs_parser_failure(c);
		if (used != avail) {
			hs_fail(q, 400, "malformed request");
			return RD_FAIL;
		}
	}
	c->rpos = c->rlen = 0;
	if (goal == GOAL_HEAD && q->headers_done)
		return RD_OK;
	if (goal == GOAL_BODY && q->body.len > q->body_off)
		return RD_OK;
	return RD_MORE;
}

/* Receive into the (empty) rbuf, waiting until deadline (ms).  RD_OK when
 * bytes arrived, RD_TIMEOUT, or RD_CLOSE (EOF, error, or the drain when
 * watch_drain). */
static int recv_more(struct hs_conn *c, uint64_t deadline, int watch_drain)
{
	for (;;) {
		ssize_t n;

		if ((uint64_t)clock_mono_ms() >= deadline)
			return RD_TIMEOUT;
		n = recv(c->fd, c->rbuf, RBUF_SIZE, 0);
		if (n > 0) {
			c->rlen = (size_t)n;
			return RD_OK;
		}
		if (n == 0) {
			c->gone = 1;     /* EOF: nothing (more) to answer */
			return RD_CLOSE;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			c->gone = 1;
			return RD_CLOSE;
		}
		switch (hs_wait_io(c, POLLIN, deadline, watch_drain)) {
		case W_READY:
			continue;
		case W_TIMEOUT:
			return RD_TIMEOUT;
		default:
			return RD_CLOSE;
		}
	}
}

int hs_request_ready(struct hs_conn *c)
{
	int stream = c->srv->cfg.stream_body;
	int rd = parse_buffered(c, stream ? GOAL_HEAD : GOAL_MESSAGE);

	if (rd == RD_OK && !stream && hs_prepare_request(&c->req) != 0)
		return RD_FAIL;
	return rd;
}

/* Read one request: its header section (stream_body) or all of it. */
static int read_request(struct hs_conn *c, uint64_t idle_deadline)
{
	struct hs_req *q = &c->req;
	const struct hs_config *cfg = &c->srv->cfg;

	for (;;) {
		uint64_t deadline;
		int rd = hs_request_ready(c);

		if (rd != RD_MORE)
			return rd;
		if (!q->t_start)
			deadline = idle_deadline;
		else if (!q->headers_done)
			deadline = q->t_start / 1000u + cfg->header_timeout_ms;
		else
			deadline = q->t_headers / 1000u + cfg->body_timeout_ms;
		rd = recv_more(c, deadline, !q->t_start);
		if (rd == RD_OK)
			continue;
		if (rd != RD_TIMEOUT || !q->t_start)
			return RD_CLOSE;
		hs_fail(q, 408, "request timeout");
		return RD_FAIL;
	}
}

long hs_req_body_read(struct hs_req *q, void *dst, size_t cap)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct hs_conn *c = q->c;
	size_t n;

	if (q->body_failed || !c->srv->cfg.stream_body)
		return q->body_failed ? -1 : 0;
	if (q->continue_due && !q->complete) {
		q->continue_due = 0;
		if (hs_conn_write(c, cont, sizeof(cont) - 1) != 0)
			goto failed;
	}
	while (q->body_off == q->body.len) {
		int rd;

		buf_reset(&q->body);
		q->body_off = 0;
		if (q->complete)
			return 0;
		if (q->head_paused) {
			q->head_paused = 0;
			http_parser_pause(&c->parser, 0);
		}
		rd = parse_buffered(c, GOAL_BODY);
		if (rd == RD_OK)
			continue;
		if (rd != RD_MORE)
			goto failed;
		rd = recv_more(c, (uint64_t)clock_mono_ms() + c->srv->cfg.body_timeout_ms, 0);
		if (rd == RD_TIMEOUT)
			hs_fail(q, 408, "request body not complete in time");
		if (rd != RD_OK)
			goto failed;
	}
	n = q->body.len - q->body_off;
	if (n > cap)
		n = cap;
	memcpy(dst, q->body.p + q->body_off, n);
	q->body_off += n;
	return (long)n;
failed:
	q->body_failed = 1;
	return -1;
}

int hs_req_take_socket(struct hs_req *q, struct buf *pending)
{
	struct hs_conn *c = q->c;
	size_t from = c->rpos + (q->head_paused ? 1 : 0);

	if (c->resp.started || !c->srv->cfg.stream_body || c->gone)
		return -1;
	if (from < c->rlen && buf_add(pending, c->rbuf + from, c->rlen - from) != 0)
		return -1;
	c->rpos = c->rlen = 0;
	c->resp.started = RESP_TAKEN;
	c->resp.status = 200;
	c->resp.close = 1;
	return c->fd;
}

/* ---- answering requests ------------------------------------------------ */

void hs_req_reset(struct hs_conn *c)
{
	struct hs_req *q = &c->req;
	struct hs_resp *r = &c->resp;

	if (q->arena.cap > ARENA_KEEP)
		buf_free(&q->arena);
	buf_reset(&q->arena);
	if (q->body.cap > ARENA_KEEP)
		buf_free(&q->body);
	buf_reset(&q->body);
	buf_reset(&q->qidx);
	q->nhdrs = 0;
	q->last_cb = CB_NONE;
	q->url_done = q->headers_done = q->complete = q->have_method = q->prepared = 0;
	q->body_off = 0;
	q->body_failed = q->continue_due = q->head_paused = 0;
	q->url_len = q->header_bytes = q->trailer_bytes = 0;
	q->raw_path = q->query = q->path = 0;
	q->fail_status = 0;
	q->fail_msg = NULL;
	q->keep_alive = 0;
	q->t_start = q->t_headers = 0;
	buf_reset(&r->extra);
	r->started = 0;
	r->status = 0;
	r->close = 0;
	r->chunked = r->headless = r->ended = 0;
	r->body_bytes = 0;
	r->reason[0] = 0;
	r->has_date = 0;
	if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED)
		http_parser_pause(&c->parser, 0);
}

static void access_log(struct hs_conn *c)
{
	const struct hs_config *cfg = &c->srv->cfg;
	struct hs_req *q = &c->req;
	struct hs_access a;
	const char *v;

	if (!cfg->on_access)
		return;
	a.method = hs_req_method(q);
	a.target = hs_req_target(q);
	a.path = hs_req_path(q);
	a.status = c->resp.status;
	a.http_minor = c->parser.http_minor;
	a.body_bytes = c->resp.body_bytes;
	a.latency_us = q->t_start ? (uint64_t)clock_mono_us() - q->t_start : 0;
	v = hs_req_header(q, "user-agent");
	a.user_agent = v ? v : "";
	a.remote_addr = c->remote;
	v = hs_req_header(q, "x-cloud-trace-context");
	a.trace = v ? v : "";
	cfg->on_access(&a, cfg->app);
}

void hs_conn_free(struct hs_conn *c)
{
	buf_free(&c->req.arena);
	buf_free(&c->req.body);
	buf_free(&c->req.qidx);
	buf_free(&c->resp.extra);
	buf_free(&c->obuf);
	free(c->req.hdrs);
	free(c->rbuf);
	free(c);
}

void hs_conn_register(struct hs_server *s, struct hs_conn *c)
{
	pthread_mutex_lock(&s->mu);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconn++;
	pthread_mutex_unlock(&s->mu);
}

void hs_conn_unregister(struct hs_server *s, struct hs_conn *c)
{
	if (c->data_free)
		c->data_free(c->data);
	c->data_free = NULL;
	c->data = NULL;
	pthread_mutex_lock(&s->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	s->nconn--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

int hs_conn_after(struct hs_conn *c, int rc)
{
	if (!c->resp.started) {
		c->resp.close = 1;
		hs_send_error(c, 500, rc ? "internal error" : "the handler sent no response");
	} else if (c->resp.started == RESP_STREAM && !c->resp.ended) {
		if (rc == 0)
			hs_stream_end(&c->resp);
		else
			c->resp.close = 1;     /* no terminator: the client sees a cut */
	}
	if (rc != 0)
		c->resp.close = 1;
	if (c->resp.status == 0)
		c->resp.status = 500;
	access_log(c);
	if (c->gone || c->resp.started == RESP_TAKEN)
		return ANS_DONE;
	if (hs_conn_closing(c)) {
		/* a body left unread: let the client read the answer */
		if (!c->req.complete && !c->nonblock)
			hs_conn_linger(c);
		return ANS_DONE;
	}
	return ANS_KEEP;
}

int hs_conn_answer(struct hs_conn *c, int rd)
{
	const struct hs_config *cfg = &c->srv->cfg;
	int rc;

	if (rd == RD_FAIL) {
		c->resp.close = 1;
		rc = hs_send_error(c, c->req.fail_status, c->req.fail_msg);
		access_log(c);
		if (rc == 0)
			hs_conn_linger(c);
		return ANS_DONE;
	}
	rc = cfg->handler(&c->req, &c->resp, cfg->app);
	if (c->park)
		return ANS_PARKED;
	return hs_conn_after(c, rc);
}

/* The blocking path (hs_serve_fd): read, answer, until the end. */
void hs_serve_connection(struct hs_conn *c)
{
	uint64_t idle_deadline = (uint64_t)clock_mono_ms() + c->srv->cfg.header_timeout_ms;

	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	for (;;) {
		int rd;

		hs_req_reset(c);
		rd = read_request(c, idle_deadline);
		if (rd == RD_CLOSE || hs_conn_answer(c, rd) != ANS_KEEP)
			return;
		idle_deadline = (uint64_t)clock_mono_ms() + c->srv->cfg.idle_timeout_ms;
	}
}

struct hs_conn *hs_conn_new(struct hs_server *s, int fd, const struct sockaddr_storage *ss)
{
	struct hs_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = EV_CONN;
	c->srv = s;
	c->fd = fd;
	c->rbuf = malloc(RBUF_SIZE);
	c->req.hdrs = calloc(s->cfg.max_headers, sizeof(struct hs_hdr));
	if (!c->rbuf || !c->req.hdrs) {
		free(c->rbuf);
		free(c->req.hdrs);
		free(c);
		return NULL;
	}
	c->req.c = c;
	c->resp.c = c;
	hs_set_remote(c, ss);
	return c;
}

int hs_serve_fd(struct hs_server *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct hs_conn *c;
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		return -1;
	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		ss.ss_family = AF_UNSPEC;     /* a socketpair: no address to show */
	c = hs_conn_new(s, fd, &ss);
	if (!c)
		return -1;
	hs_conn_register(s, c);
	hs_serve_connection(c);
	hs_conn_unregister(s, c);
	hs_conn_free(c);
	return 0;
}

