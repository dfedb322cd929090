/*
 * server_accept.c: accepting connections on the loop thread (see
 * server.c): TCP_NODELAY, the caps (global, and per client address),
 * and the sockets refused past a cap.  A refused socket is kept in a
 * fixed slot, watched by the loop's epoll, until its request line starts
 * (AWAIT_MS at most): a cap_exempt request (serve's plain /health) is
 * answered 200, any other 503, both without blocking; then it lingers
 * (LINGER_MS) so the client reads the answer rather than a reset.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "http/server_int.h"

/* The access-log line of an answer the loop wrote itself. */
static void log_refused(struct hs_server *s, const struct sockaddr_storage *ss, int status)
{
	struct hs_conn fake;
	struct hs_access a;

	if (!s->cfg.on_access)
		return;
	memset(&fake, 0, sizeof(fake));
	hs_set_remote(&fake, ss);
	memset(&a, 0, sizeof(a));
	a.method = a.target = a.path = a.user_agent = a.trace = "";
	a.status = status;
	a.http_minor = 1;
	a.remote_addr = fake.remote;
	s->cfg.on_access(&a, s->cfg.app);
}

/* Write a whole answer on a refused socket without blocking (a fresh
 * socket's buffer holds it; if not, the client is gone). */
static void answer_refused(struct hs_server *s, int fd, const struct sockaddr_storage *ss, int status,
			   const char *type, const char *body)
{
	struct buf b = BUF_INIT;
	char date[30];

	hs_http_date(date, (int64_t)time(NULL));
	if (buf_printf(&b, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n%sConnection: close\r\n"
			   "Content-Length: %zu\r\n\r\n%s",
		       status, status == 200 ? "OK" : "Service Unavailable", date, type,
		       status == 503 ? "Retry-After: 1\r\n" : "", strlen(body), body) == 0)
		(void)!send(fd, b.p, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	buf_free(&b);
	log_refused(s, ss, status);
}

static void answer_503(struct hs_server *s, int fd, const struct sockaddr_storage *ss, const char *why)
{
	struct buf body = BUF_INIT;
	const char *ctype = HS_JSON;

	if (hs_error_body(s, 503, why, &body, &ctype) == 0)
		answer_refused(s, fd, ss, 503, ctype, body.p ? body.p : "");
	buf_free(&body);
}

/* 1 when head starts with one of the prefixes, 0 when it cannot, -1
 * while too few bytes have arrived to tell. */
int hs_prefix_match(const char *head, size_t n, const char *const *prefixes)
{
	const char *const *p;
	int undecided = 0;

	for (p = prefixes; p && *p; p++) {
		size_t k = strlen(*p);
		if (n >= k && memcmp(head, *p, k) == 0)
			return 1;
		if (n < k && memcmp(head, *p, n) == 0)
			undecided = 1;
	}
	return undecided ? -1 : 0;
}

/* Keep a refused socket in the loop's epoll set: `await` first waits
 * for its request line (see struct linger_slot), otherwise it has been
 * answered already and only lingers. */
static void linger_add(struct hs_server *s, int fd, const struct sockaddr_storage *ss, const char *why, int await)
{
	struct linger_slot *l = NULL;
	struct epoll_event ev;
	int i;

	for (i = 0; i < LINGER_SLOTS && !l; i++)
		if (s->linger[i].fd < 0)
			l = &s->linger[i];
	if (!l) {
		if (await)
			answer_503(s, fd, ss, why);
		close(fd);
		return;
	}
	if (!await && shutdown(fd, SHUT_WR) != 0) {
		close(fd);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = l;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		if (await)
			answer_503(s, fd, ss, why);
		close(fd);
		return;
	}
	s->nlinger++;
	memset(l, 0, sizeof(*l));
	l->kind = EV_LINGER;
	l->fd = fd;
	l->deadline = (uint64_t)clock_mono_ms() + (await ? AWAIT_MS : LINGER_MS);
	l->awaiting = await;
	l->why = why;
	l->ss = *ss;
}

static void linger_drop(struct hs_server *s, struct linger_slot *l)
{
	close(l->fd);      /* leaves the epoll set */
	l->fd = -1;
	s->nlinger--;
}

/* An awaiting socket: read the start of its request line, then answer. */
static void await_service(struct hs_server *s, struct linger_slot *l, int readable)
{
	const char *type = "text/plain", *body = "";
	int eof = 0, d;

	if (readable) {
		ssize_t n = recv(l->fd, l->head + l->hlen, sizeof(l->head) - 1 - l->hlen, 0);
		if (n > 0)
			l->hlen += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			eof = 1;
	}
	d = s->cfg.cap_exempt ? s->cfg.cap_exempt(l->head, l->hlen, &type, &body, s->cfg.app) : 0;
	if (d < 0 && !eof && l->hlen < sizeof(l->head) - 1 && (uint64_t)clock_mono_ms() < l->deadline)
		return;
	if (d == 1)
		answer_refused(s, l->fd, &l->ss, 200, type, body);
	else
		answer_503(s, l->fd, &l->ss, l->why);
	l->awaiting = 0;
	l->deadline = (uint64_t)clock_mono_ms() + LINGER_MS;
	if (eof || shutdown(l->fd, SHUT_WR) != 0)
		linger_drop(s, l);
}

/* Read what a lingering socket sent; drop it at EOF, error or deadline. */
void hs_linger_event(struct hs_server *s, struct linger_slot *l, int readable)
{
	char sink[4096];

	if (l->fd < 0)
		return;
	if (l->awaiting) {
		await_service(s, l, readable);
		return;
	}
	while (readable) {
		ssize_t n = recv(l->fd, sink, sizeof(sink), 0);

		if (n > 0) {
			l->dropped += (size_t)n;
			if (l->dropped > LINGER_MAX_BYTES)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			readable = 0;
		break;
	}
	if (readable || (uint64_t)clock_mono_ms() >= l->deadline)
		linger_drop(s, l);
}

uint64_t hs_linger_timers(struct hs_server *s, uint64_t now)
{
	uint64_t next = 0;
	int i;

	for (i = 0; i < LINGER_SLOTS && s->nlinger; i++) {
		struct linger_slot *l = &s->linger[i];

		if (l->fd >= 0 && l->deadline <= now)
			hs_linger_event(s, l, 0);
		if (l->fd >= 0 && (!next || l->deadline < next))
			next = l->deadline;
	}
	return next;
}

void hs_linger_close_all(struct hs_server *s)
{
	int i;

	for (i = 0; i < LINGER_SLOTS; i++)
		if (s->linger[i].fd >= 0)
			linger_drop(s, &s->linger[i]);
}

/* Answer 503 on a fresh socket without blocking, then let it linger. */
static void refuse(struct hs_server *s, int fd, const struct sockaddr_storage *ss, const char *why)
{
	char sink[4096];

	while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;     /* whatever request bytes already arrived */
	answer_503(s, fd, ss, why);
	linger_add(s, fd, ss, why, 0);
}

/* How many open connections come from the address of ss (s->mu held). */
static unsigned from_same_client(struct hs_server *s, const struct sockaddr_storage *ss)
{
	struct hs_conn probe;
	struct hs_conn *c;
	unsigned n = 0;

	memset(&probe, 0, sizeof(probe));
	hs_set_remote(&probe, ss);
	if (!probe.remote[0])
		return 0;                  /* a socketpair or unknown family: no client address */
	for (c = s->conns; c; c = c->next)
		if (strcmp(c->remote, probe.remote) == 0)
			n++;
	return n;
}

static void accept_one(struct hs_server *s, int lfd, int *more)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct hs_conn *c;
	int fd, one = 1, full;

	*more = 0;
	fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			*more = 1;
		else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			s->accept_pause_until = (uint64_t)clock_mono_ms() + 100;
		return;
	}
	*more = 1;
	if (ss.ss_family != AF_UNIX && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
		/* not fatal: responses are written in one piece anyway */
	}
	pthread_mutex_lock(&s->mu);
	full = s->nconn >= s->cfg.max_connections ? 1 : from_same_client(s, &ss) >= s->cfg.max_per_client ? 2 : 0;
	pthread_mutex_unlock(&s->mu);
	if (full) {
		/* At a cap, a cap_exempt request (/health) is still answered. */
		linger_add(s, fd, &ss,
			   full == 1 ? "too many connections: the server is at its connection limit, retry later"
				     : "too many connections from this client address: close some, or retry later",
			   1);
		return;
	}
	c = hs_conn_new(s, fd, &ss);
	if (!c) {
		refuse(s, fd, &ss, "out of memory");
		return;
	}
	hs_conn_register(s, c);
	hs_loop_adopt(s, c);
}

/* A listener is readable: accept a batch (the rest on the next turn). */
void hs_accept_ready(struct hs_server *s, int lfd)
{
	int more = 1, k;

	if ((uint64_t)clock_mono_ms() < s->accept_pause_until)
		return;
	for (k = 0; k < ACCEPT_BATCH && more && !hs_draining(s); k++)
		accept_one(s, lfd, &more);
}
