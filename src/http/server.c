/*
 * server.c: the HTTP/1.1 server declared in server.h: its design, and
 * the lifecycle (new, listen, start, drain, free).
 *
 * Concurrency model: one event-loop thread (epoll) plus a dynamic pool of
 * worker threads.
 *
 *  - The loop owns the listeners, accepting (and the caps), every idle
 *    keep-alive connection, every connection reading its request (the
 *    head in stream_body mode, the whole message otherwise), the sockets
 *    refused past a cap, and every parked stream.  None of these costs a
 *    thread: 1,000 idle keep-alive connections or SSE streams are 1,000
 *    small structs and read buffers in an epoll set.
 *  - A request that is ready for its handler goes to a worker, which runs
 *    the same blocking code path as a thread per connection did: the
 *    handlers above this layer block by nature (storage and Google APIs
 *    through libcurl, KMS, child processes, the token proxy's upstream,
 *    egress CONNECT tunnels), and stay plain sequential C with ordinary
 *    error handling.  When the answer is done and the connection stays
 *    open, the worker answers an already-buffered pipelined request
 *    itself, or hands the connection back to the loop (its inbox and an
 *    eventfd).
 *  - The pool grows on demand: an idle worker is reused, and when none is
 *    idle a new one starts, up to max_connections, so handlers that block
 *    for long (a proxy tunnel) never starve each other; a worker idle for
 *    POOL_IDLE_MS exits, down to POOL_MIN.  A fixed-size pool would either
 *    be too small for long tunnels or hold idle threads for nothing.
 *  - Non-blocking handlers can skip the hand-off (cfg.is_inline: serve's
 *    plain /health), answering on the loop thread; their writes never
 *    wait (an output buffer, flushed on EPOLLOUT).
 *  - A streaming handler can park its stream (server_park.c): it returns,
 *    the loop keeps the connection and runs the handler's pump on wake-ups
 *    (serve's topic pushing a frame), ticks and the drain, with the same
 *    output buffer.  A pump that must block asks for a worker once.
 *
 * Ownership: a connection belongs to exactly one thread at a time.
 * Handing it to a worker removes its socket from the epoll set, so no
 * event can reach the loop while a worker has it (epoll reports a socket
 * once per wait, and the hand-off happens while its event is handled or
 * after the batch); the worker gives it back through the inbox, and the
 * loop adds it again.  A connection the loop
 * closes is freed only at the end of the loop's turn, after every event
 * of the batch was looked at.  Thread stacks are explicit (256 KiB of
 * address space, only the touched pages resident) so memory is
 * predictable and deep cJSON or mbedTLS frames fit.
 *
 * I/O on a worker: sockets are non-blocking; every wait is a poll() with
 * a deadline, so timeouts are exact and a thread never sleeps in recv()
 * or send().  Each wait that may end early for a drain also polls the
 * read end of a "drain pipe" that hs_shutdown writes one byte into and
 * nobody reads: it stays readable, so it wakes every waiting thread at
 * once and for good.  On the loop the same deadlines (header, body, idle,
 * write, lingering) are checked by a timer scan of the loop's
 * connections, at most every TIMER_SLACK_MS.
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
 * 505) are answered (on a worker) with a JSON body and Connection: close,
 * then the connection "lingers": our write side is shut down and the
 * client's remaining bytes are read and dropped for up to a second, so
 * that the client reads the answer instead of a TCP reset.  Past the
 * connection cap (global, or max_per_client from one address) the loop
 * keeps the socket until its request line starts (server_accept.c).
 *
 * Shutdown: hs_shutdown sets the draining flag and writes the drain pipe;
 * the loop closes the listeners and the idle keep-alive connections and
 * runs every parked stream's pump once with HS_PUMP_DRAINING; in-flight
 * responses finish with Connection: close; blocking streaming handlers
 * learn of it from on_drain and hs_stream_wait_closed.  Past the deadline
 * every remaining socket is shut down (not closed, so no descriptor can
 * be reused under a running thread), which makes its next read or write
 * fail at once.  Then the loop stops and the pool's threads exit.
 * Connections live in a list under the server mutex (the caps count
 * them); a connection is unlinked and its socket closed under that mutex.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
	s->epfd = s->evfd = -1;
	for (rc = 0; rc < LINGER_SLOTS; rc++)
		s->linger[rc].fd = -1;
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
	if ((rc = pthread_mutex_init(&s->inbox_mu, NULL)) != 0 || (rc = hs_pool_init(&s->pool, s->cfg.max_connections)) != 0) {
		err_set(e, "http server: worker pool: %s", strerror(rc));
		goto fail;
	}
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

/* Add fd to the loop's epoll set, tagged with tag (level-triggered). */
static int ep_add(struct hs_server *s, int fd, uint64_t tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = tag;
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int hs_start(struct hs_server *s, struct err *e)
{
	pthread_attr_t la;
	int rc, i;

	if (s->started)
		return err_set(e, "http server: already started");
	if (s->nlisten == 0)
		return err_set(e, "http server: no listener (call hs_listen first)");
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->epfd < 0 || s->evfd < 0)
		return err_set(e, "http server: cannot make the event loop: %s", strerror(errno));
	if (ep_add(s, s->drain_pipe[0], TAG_DRAIN) != 0 || ep_add(s, s->evfd, TAG_WAKE) != 0)
		return err_set(e, "http server: epoll: %s", strerror(errno));
	for (i = 0; i < s->nlisten; i++)
		if (ep_add(s, s->lfd[i], TAG_LISTEN + (uint64_t)i) != 0)
			return err_set(e, "http server: epoll: %s", strerror(errno));
	/* the loop runs inline handlers and pumps: the workers' stack size */
	if ((rc = pthread_attr_init(&la)) != 0)
		return err_set(e, "http server: thread attributes: %s", strerror(rc));
	rc = pthread_attr_setstacksize(&la, s->cfg.stack_size);
	if (rc == 0)
		rc = pthread_create(&s->loop, &la, hs_loop_main, s);
	pthread_attr_destroy(&la);
	if (rc != 0)
		return err_set(e, "http server: cannot start the event loop thread: %s", strerror(rc));
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
	pthread_mutex_lock(&s->mu);
	while (s->started && !s->loop_drained)        /* the listeners are closed */
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
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
	if (s->started) {
		__atomic_store_n(&s->loop_stop, 1, __ATOMIC_RELEASE);
		hs_loop_kick(s);
		pthread_join(s->loop, NULL);
		s->started = 0;
	}
	if (hs_pool_stop(s, (uint64_t)clock_mono_ms() + (forced == 2 ? 100 : 1000)))
		forced = 2;
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
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->evfd >= 0)
		close(s->evfd);
	hs_pool_destroy(&s->pool);
	pthread_mutex_destroy(&s->inbox_mu);
	close(s->drain_pipe[0]);
	close(s->drain_pipe[1]);
	pthread_attr_destroy(&s->attr);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}
