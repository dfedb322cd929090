/*
 * server.c: the HTTP/1.1 server declared in server.h.
 *
 * Concurrency model: one acceptor thread plus one thread per connection,
 * each with a small explicit stack (256 KiB of address space by default,
 * of which only the pages actually touched, typically 10-30 KiB, become
 * resident), and a hard cap on connections (max_connections) enforced by
 * the acceptor.  Why this and not an event loop:
 *
 *  - The handlers above this layer are blocking by nature: they seal
 *    payloads, call storage and Google APIs through libcurl, start child
 *    processes, and run SSE loops that sleep between log polls.  With a
 *    thread per connection each of them is plain sequential C with
 *    ordinary error handling; an event loop would force every one of
 *    them into callbacks or a state machine (or need a worker pool behind
 *    the loop, which is threads again plus hand-offs).
 *  - The load is small and long-lived: Cloud Run sends at most 1000
 *    concurrent requests to an instance, and the target is ~500 open SSE
 *    streams that mostly sleep.  Linux handles thousands of sleeping
 *    threads cheaply; the cost is the resident part of each stack plus an
 *    8 KiB read buffer, i.e. tens of MiB for 500 streams.
 *  - Isolation: a slow or hostile client only ever blocks its own thread,
 *    and every socket wait has a deadline (header, body, idle, write), so
 *    no client can hold a thread longer than those timeouts allow.
 *  - The stack is explicit (pthread_attr_setstacksize) rather than libc's
 *    default so that memory use is predictable; 256 KiB rather than 64 KiB
 *    leaves room for what handlers call (cJSON's recursive parser on
 *    deeply nested bodies, mbedTLS handshakes inside libcurl).
 *
 * I/O: sockets are non-blocking; every wait is a poll() with a deadline,
 * so timeouts are exact and a thread never sleeps in recv() or send().
 * Each wait that may end early for a drain also polls the read end of a
 * "drain pipe" that hs_shutdown writes one byte into and nobody reads: it
 * stays readable, so it wakes every waiting thread at once and for good.
 *
 * Parsing: http-parser (strict) does all of the HTTP syntax.  Its
 * callbacks copy the request target and the header fields into a
 * per-request arena (offsets, since the arena may move while it grows),
 * enforce the URL, header-size, header-count and body limits as the bytes
 * arrive (so an over-long header is refused before it is buffered), and
 * pause the parser at the end of each message.  The bytes after it stay
 * in the connection's read buffer: pipelined requests are answered one
 * after the other, in order.  Once a request is complete its path and
 * query are decoded into the arena, which is then frozen, so every string
 * handed to the handler stays valid until it returns.
 *
 * Errors the server produces itself (400, 408, 413, 414, 417, 431, 501,
 * 505) are answered with a JSON body and Connection: close, then the
 * connection "lingers": our write side is shut down and the client's
 * remaining bytes are read and dropped for up to a second, so that the
 * client reads the answer instead of a TCP reset.  Past the connection
 * cap (global, or max_per_client from one address) the acceptor keeps the
 * socket in its poll set until its request line starts (at most
 * AWAIT_MS): a cap_exempt request (serve's plain /health) is answered 200,
 * any other 503, both without blocking; then the socket lingers there.
 *
 * Shutdown: hs_shutdown sets the draining flag and writes the drain pipe;
 * the acceptor closes the listeners and exits; idle keep-alive
 * connections close; in-flight responses finish with Connection: close;
 * streaming handlers learn of it from on_drain and hs_stream_wait_closed.
 * Past the deadline every remaining socket is shut down (not closed, so
 * no descriptor can be reused under a running thread), which makes its
 * thread's next read or write fail at once.  Connections live in a list
 * under the server mutex; a thread unlinks and closes its socket under
 * that mutex as its last use of the server.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
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
#include "util/jsjson.h"

/* ---- the acceptor ----------------------------------------------------- */

/* The access-log line of an answer the acceptor wrote itself. */
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

/* Keep a refused socket in the acceptor's poll set: `await` first waits
 * for its request line (see struct linger_slot), otherwise it has been
 * answered already and only lingers. */
static void linger_add(struct hs_server *s, int fd, const struct sockaddr_storage *ss, const char *why, int await)
{
	struct linger_slot *l;

	if (s->nlinger >= LINGER_SLOTS) {
		if (await)
			answer_503(s, fd, ss, why);
		close(fd);
		return;
	}
	if (!await && shutdown(fd, SHUT_WR) != 0) {
		close(fd);
		return;
	}
	l = &s->linger[s->nlinger++];
	memset(l, 0, sizeof(*l));
	l->fd = fd;
	l->deadline = (uint64_t)clock_mono_ms() + (await ? AWAIT_MS : LINGER_MS);
	l->awaiting = await;
	l->why = why;
	l->ss = *ss;
}

static void linger_drop(struct hs_server *s, int i)
{
	close(s->linger[i].fd);
	s->linger[i] = s->linger[--s->nlinger];
}

/* An awaiting socket: read the start of its request line, then answer. */
static void await_service(struct hs_server *s, int i, int readable)
{
	struct linger_slot *l = &s->linger[i];
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
		linger_drop(s, i);
}

/* Read what a lingering socket sent; drop it at EOF, error or deadline. */
static void linger_service(struct hs_server *s, int i, int readable)
{
	struct linger_slot *l = &s->linger[i];
	char sink[4096];

	if (l->awaiting) {
		await_service(s, i, readable);
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
		linger_drop(s, i);
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
	pthread_t t;
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
	if (pthread_create(&t, &s->attr, hs_conn_main, c) != 0) {
		c->fd = -1;      /* still ours: refused below */
		hs_conn_unregister(s, c);
		hs_conn_free(c);
		refuse(s, fd, &ss, "cannot start a thread for this connection, retry later");
	}
}

static void *acceptor_main(void *arg)
{
	struct hs_server *s = arg;
	struct pollfd pf[HS_MAX_LISTEN + 1 + LINGER_SLOTS];
	int i;

	for (;;) {
		int n = 0, nl = 0, timeout = -1, r, listening;
		uint64_t now = (uint64_t)clock_mono_ms();

		listening = now >= s->accept_pause_until;
		if (listening) {
			for (i = 0; i < s->nlisten; i++, n++) {
				pf[n].fd = s->lfd[i];
				pf[n].events = POLLIN;
				pf[n].revents = 0;
			}
			nl = n;
		} else {
			timeout = (int)(s->accept_pause_until - now);
		}
		pf[n].fd = s->drain_pipe[0];
		pf[n].events = POLLIN;
		pf[n].revents = 0;
		n++;
		for (i = 0; i < s->nlinger; i++, n++) {
			int left = s->linger[i].deadline > now ? (int)(s->linger[i].deadline - now) : 0;

			pf[n].fd = s->linger[i].fd;
			pf[n].events = POLLIN;
			pf[n].revents = 0;
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
		r = poll(pf, (nfds_t)n, timeout);
		if (r < 0 && errno != EINTR)
			break;     /* cannot happen with valid descriptors */
		if (r < 0)
			continue;
		if (pf[nl].revents & POLLIN)
			break;
		/* lingering sockets, back to front so removals keep indexes */
		for (i = s->nlinger - 1; i >= 0; i--)
			linger_service(s, i, (pf[nl + 1 + i].revents & (POLLIN | POLLHUP | POLLERR)) != 0);
		for (i = 0; i < nl; i++) {
			int more = 1, k;

			if (!(pf[i].revents & POLLIN))
				continue;
			for (k = 0; k < ACCEPT_BATCH && more && !hs_draining(s); k++)
				accept_one(s, pf[i].fd, &more);
		}
	}
	for (i = 0; i < s->nlisten; i++) {
		close(s->lfd[i]);
		s->lfd[i] = -1;
	}
	s->nlisten = 0;
	while (s->nlinger)
		linger_drop(s, s->nlinger - 1);
	return NULL;
}

/* ---- lifecycle -------------------------------------------------------- */

void hs_config_defaults(struct hs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->max_body = 2u << 20;
	c->max_url = 8192;
	c->max_header_bytes = 32768;
	c->max_headers = 100;
	c->max_connections = 1024;
	c->header_timeout_ms = 10000;
	c->body_timeout_ms = 30000;
	c->idle_timeout_ms = 65000;
	c->write_timeout_ms = 30000;
	c->stack_size = (256u << 10) * HS_STACK_SCALE;
}

struct hs_server *hs_new(const struct hs_config *cfg, struct err *e)
{
	struct hs_config d;
	struct hs_server *s;
	pthread_condattr_t ca;
	int rc;

	if (!cfg || !cfg->handler) {
		err_set(e, "http server: no handler");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		err_set(e, "http server: out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	hs_config_defaults(&d);
#define DEF(f) if (!s->cfg.f) s->cfg.f = d.f
	DEF(max_body);
	DEF(max_url);
	DEF(max_header_bytes);
	DEF(max_headers);
	DEF(max_connections);
	DEF(header_timeout_ms);
	DEF(body_timeout_ms);
	DEF(idle_timeout_ms);
	DEF(write_timeout_ms);
	DEF(stack_size);
#undef DEF
	if (s->cfg.max_url > 65535)     /* http_parser_parse_url's offsets are 16-bit */
		s->cfg.max_url = 65535;
	if (s->cfg.stack_size < 64u << 10)
		s->cfg.stack_size = 64u << 10;
	if (!s->cfg.max_per_client)      /* one client never takes every slot */
		s->cfg.max_per_client = s->cfg.max_connections - s->cfg.max_connections / 4;
	s->port = -1;
	s->drain_pipe[0] = s->drain_pipe[1] = -1;
	if (pipe2(s->drain_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		err_set(e, "http server: pipe: %s", strerror(errno));
		free(s);
		return NULL;
	}
	if ((rc = pthread_attr_init(&s->attr)) != 0 ||
	    (rc = pthread_attr_setstacksize(&s->attr, s->cfg.stack_size)) != 0 ||
	    (rc = pthread_attr_setdetachstate(&s->attr, PTHREAD_CREATE_DETACHED)) != 0) {
		err_set(e, "http server: thread attributes: %s", strerror(rc));
		goto fail;
	}
	if ((rc = pthread_mutex_init(&s->mu, NULL)) != 0) {
		err_set(e, "http server: mutex: %s", strerror(rc));
		goto fail;
	}
	if ((rc = pthread_condattr_init(&ca)) != 0 ||
	    (rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
	    (rc = pthread_cond_init(&s->cv, &ca)) != 0) {
		err_set(e, "http server: condition variable: %s", strerror(rc));
		goto fail;
	}
	pthread_condattr_destroy(&ca);
	return s;
fail:
	close(s->drain_pipe[0]);
	close(s->drain_pipe[1]);
	free(s);
	return NULL;
}

int hs_listen(struct hs_server *s, const char *host, int port, struct err *e)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char portstr[16];
	int fd, rc, one = 1, zero = 0;

	if (s->started)
		return err_set(e, "http server: hs_listen after hs_start");
	if (s->nlisten >= HS_MAX_LISTEN)
		return err_set(e, "http server: more than %d listeners", HS_MAX_LISTEN);
	if (port < 0 || port > 65535)
		return err_set(e, "invalid port %d", port);
	if (!host || !*host)
		host = "0.0.0.0";
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0 || !res)
		return err_set(e, "cannot resolve listen address '%s': %s", host, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err_set(e, "socket for %s: %s", host, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		goto sockfail;
	if (res->ai_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)res->ai_addr;
		int any = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(int)) != 0)
			goto sockfail;
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
		err_set(e, "cannot listen on %s port %d: %s", host, port, strerror(errno));
		goto out;
	}
	if (listen(fd, 511) != 0)
		goto sockfail;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		goto sockfail;
	if (s->nlisten == 0)
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	s->lfd[s->nlisten++] = fd;
	freeaddrinfo(res);
	return 0;
sockfail:
	err_set(e, "cannot listen on %s port %d: %s", host, port, strerror(errno));
out:
	close(fd);
	freeaddrinfo(res);
	return -1;
}

int hs_port(const struct hs_server *s)
{
	return s->port;
}

int hs_start(struct hs_server *s, struct err *e)
{
	int rc;

	if (s->started)
		return err_set(e, "http server: already started");
	if (s->nlisten == 0)
		return err_set(e, "http server: no listener (call hs_listen first)");
	rc = pthread_create(&s->acceptor, NULL, acceptor_main, s);
	if (rc != 0)
		return err_set(e, "http server: cannot start the acceptor thread: %s", strerror(rc));
	s->started = 1;
	return 0;
}

unsigned hs_connections(const struct hs_server *s)
{
	unsigned n;

	pthread_mutex_lock((pthread_mutex_t *)&s->mu);
	n = s->nconn;
	pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
	return n;
}

/* Wait until no connection is left or deadline (ms, monotonic); 1 if
 * some are left.  Called with s->mu held. */
static int wait_conns(struct hs_server *s, uint64_t deadline)
{
	while (s->nconn > 0) {
		struct timespec ts;
		uint64_t now = (uint64_t)clock_mono_ms();

		if (now >= deadline)
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)((deadline - now) / 1000u);
		ts.tv_nsec += (long)((deadline - now) % 1000u) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == EINVAL)
			return 1;
	}
	return 0;
}

int hs_shutdown(struct hs_server *s, unsigned deadline_ms)
{
	uint64_t deadline = (uint64_t)clock_mono_ms() + deadline_ms;
	struct hs_conn *c;
	ssize_t w;
	int forced = 0;

	if (__atomic_exchange_n(&s->draining, 1, __ATOMIC_ACQ_REL))
		return 0;     /* already draining */
	do
		w = write(s->drain_pipe[1], "x", 1);
	while (w < 0 && errno == EINTR);
	if (s->started)
		pthread_join(s->acceptor, NULL);
	if (s->cfg.on_drain)
		s->cfg.on_drain(s->cfg.app);
	pthread_mutex_lock(&s->mu);
	if (wait_conns(s, deadline)) {
		forced = 1;
		for (c = s->conns; c; c = c->next)
			if (c->fd >= 0 && shutdown(c->fd, SHUT_RDWR) != 0) {
				/* already disconnected: its thread will notice */
			}
		if (wait_conns(s, (uint64_t)clock_mono_ms() + 1000))
			forced = 2;
	}
	pthread_mutex_unlock(&s->mu);
	return forced;
}

void hs_free(struct hs_server *s)
{
	int i;

	if (!s)
		return;
	if (s->started && !hs_draining(s))
		hs_shutdown(s, 0);
	for (i = 0; i < s->nlisten; i++)
		close(s->lfd[i]);
	close(s->drain_pipe[0]);
	close(s->drain_pipe[1]);
	pthread_attr_destroy(&s->attr);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}
