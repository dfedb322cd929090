/*
 * egress.c: see egress.h.
 *
 * Design.  One listener thread accepts and hands each connection to a
 * detached thread of its own (a 256 KiB stack; the buffers live on the
 * heap).  A connection thread reads the request head, decides
 * (egpolicy.h), resolves, connects, answers or rewrites the head, then
 * relays both directions with non-blocking sockets and one poll() loop:
 * each direction has one buffer that is either being filled (poll for
 * input on its source) or drained (poll for output on its sink), so a
 * slow side stalls only its own direction and a peer that never reads
 * cannot block the thread.  A direction that reaches end of input is
 * half-closed on its sink once drained, so shutdown(SHUT_WR) semantics
 * pass through a tunnel.
 *
 * The state that connection threads use is in struct eg_shared, counted
 * by reference (the proxy holds one, each thread one): eg_stop() can give
 * up waiting for a thread stuck in getaddrinfo() without leaving it a
 * dangling pointer.  Every socket a thread owns is recorded in its slot
 * under the lock, and removed under the lock before it is closed, so
 * eg_stop() can shut them down without racing a close and a reused
 * descriptor number.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "job/egpolicy.h"
#include "job/egress.h"
#include "job/egress_http.h"
#include "util/buf.h"
#include "util/clock.h"

#define EG_HEAD_MAX 32768
#define EG_HEAD_TIMEOUT_MS 30000
#define EG_WINDOW 65536
#define EG_STOP_WAIT_MS 3000

struct eg_conn;

struct eg_shared {
	pthread_mutex_t lock;
	pthread_cond_t idle;            /* signalled when a connection ends */
	unsigned refs;                  /* the proxy + one per connection thread */
	unsigned active;
	unsigned max;
	int stopping;                   /* under lock; read unlocked as a hint */
	struct eg_conn **slots;         /* max entries */
	struct egp_policy pol;
	long idle_ms, connect_ms;
	void (*log)(void *arg, const char *line);
	void *log_arg;
};

struct eg_conn {
	struct eg_shared *sh;
	unsigned slot;
	int cfd, ufd;                   /* client, upstream (-1 when none) */
	char head[EG_HEAD_MAX + 1];
	size_t head_len, have;          /* head_len: bytes up to the blank line */
};

/* One direction of a relay. */
struct dir {
	int from, to;
	char *buf;
	size_t cap, len, off;
	int eof, shut;
	int rewrite;                    /* upstream->client: the response head is still to be rewritten */
};

/* ---- shared state ---- */

static void shared_release(struct eg_shared *sh)
{
	int last;

	pthread_mutex_lock(&sh->lock);
	last = --sh->refs == 0;
	pthread_mutex_unlock(&sh->lock);
	if (!last)
		return;
	egp_policy_free(&sh->pol);
	free(sh->slots);
	pthread_cond_destroy(&sh->idle);
	pthread_mutex_destroy(&sh->lock);
	free(sh);
}

static int stopping(struct eg_shared *sh)
{
	return __atomic_load_n(&sh->stopping, __ATOMIC_RELAXED);
}

static void logf_line(struct eg_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logf_line(struct eg_shared *sh, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!sh->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sh->log(sh->log_arg, line);
}

static void set_ufd(struct eg_conn *c, int fd)
{
	int old;

	pthread_mutex_lock(&c->sh->lock);
	old = c->ufd;
	c->ufd = fd;
	pthread_mutex_unlock(&c->sh->lock);
	if (old >= 0 && old != fd)
		close(old);
}

/* ---- socket helpers ---- */

static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ? -1 : 0;
}

/* Send all of p within timeout_ms (non-blocking fd). */
static int send_all(int fd, const char *p, size_t n, long timeout_ms)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;

	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w, n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		{
			struct pollfd pf = { fd, POLLOUT, 0 };
			int64_t left = deadline - clock_mono_ms();
			if (left <= 0 || poll(&pf, 1, (int)left) < 0)
				return -1;
		}
	}
	return 0;
}

/* After an answer of our own: half-close, then read what the client still
 * sends (a request body) for a moment, so that closing with unread data
 * does not reset the connection before the client has read the answer. */
static void drain_close(int fd)
{
	int64_t deadline = clock_mono_ms() + 1000;
	size_t total = 0;
	char sink[4096];

	shutdown(fd, SHUT_WR);
	while (total < (1u << 20)) {
		struct pollfd pf = { fd, POLLIN, 0 };
		int64_t left = deadline - clock_mono_ms();
		ssize_t r;

		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			return;
		r = recv(fd, sink, sizeof(sink), 0);
		if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR)))
			return;
		total += r > 0 ? (size_t)r : 0;
	}
}

static void reply(struct eg_conn *c, int status, const char *text, const char *body)
{
	struct buf r = BUF_INIT;

	if (buf_printf(&r,
		       "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
		       "Connection: close\r\n\r\nccr egress proxy: %s\n",
		       status, text, strlen(body) + 19, body) == 0 &&
	    send_all(c->cfd, r.p, r.len, 2000) == 0)
		drain_close(c->cfd);
	buf_free(&r);
}

/* ---- the request head ---- */

/* Read until the blank line: 0, or an HTTP status to answer (0 < s), or
 * -1 when the client went away or time ran out (no answer). */
static int read_head(struct eg_conn *c)
{
	int64_t deadline = clock_mono_ms() + EG_HEAD_TIMEOUT_MS;
	char *end;

	for (;;) {
		struct pollfd pf = { c->cfd, POLLIN, 0 };
		int64_t left = deadline - clock_mono_ms();
		ssize_t r;

		if (left <= 0 || stopping(c->sh))
			return -1;
		if (poll(&pf, 1, (int)(left > 500 ? 500 : left)) <= 0)
			continue;
		r = recv(c->cfd, c->head + c->have, EG_HEAD_MAX - c->have, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return -1;
		if (r < 0)
			continue;
		c->have += (size_t)r;
		c->head[c->have] = 0;
		if ((end = egh_find_blank(c->head, c->have))) {
			c->head_len = (size_t)(end - c->head) + 4;
			return 0;
		}
		if (c->have == EG_HEAD_MAX)
			return 431;
	}
}

/* ---- resolve, check, connect ---- */

static int refuse(struct eg_conn *c, const struct egh_request *r, const char *why)
{
	logf_line(c->sh, "egress proxy refused %s %s:%d: %s", r->is_connect ? "CONNECT" : r->method, r->host, r->port,
		  why);
	reply(c, 403, "Forbidden", why);
	return -1;
}

static int connect_one(struct eg_conn *c, const struct addrinfo *ai, int *err_out)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), soerr = 0;
	int64_t deadline = clock_mono_ms() + c->sh->connect_ms;
	socklen_t sl = sizeof(soerr);

	if (fd < 0)
		return *err_out = errno, -1;
	set_ufd(c, fd);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return *err_out = errno, -1;
	for (;;) {
		struct pollfd pf = { fd, POLLOUT, 0 };
		int64_t left = deadline - clock_mono_ms();
		if (left <= 0 || stopping(c->sh))
			return *err_out = ETIMEDOUT, -1;
		if (poll(&pf, 1, (int)(left > 200 ? 200 : left)) > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
		return *err_out = soerr ? soerr : errno, -1;
	return 0;
}

/* Resolve (no DNS for a literal), check every address, connect to the
 * first checked one that answers.  0, or -1 after answering. */
static int open_upstream(struct eg_conn *c, struct egh_request *r)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8], why[600];
	int rc, err = 0, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = r->is_ip ? AI_NUMERICHOST : 0;
	snprintf(port, sizeof(port), "%d", r->port);
	if ((rc = getaddrinfo(r->host, port, &hints, &res)) != 0 || !res) {
		snprintf(why, sizeof(why), "%s does not resolve (%s)", r->host, gai_strerror(rc));
		reply(c, 502, "Bad Gateway", why);
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next)
		if (egp_check_addr(&c->sh->pol, r->host, r->port, ai->ai_addr, why, sizeof(why)) != 0) {
			freeaddrinfo(res);
			return refuse(c, r, why);
		}
	for (ai = res; ai; ai = ai->ai_next)
		if (connect_one(c, ai, &err) == 0)
			break;
	freeaddrinfo(res);
	if (!ai) {
		set_ufd(c, -1);
		snprintf(why, sizeof(why), "cannot connect to %s:%d: %s", r->host, r->port, strerror(err));
		reply(c, err == ETIMEDOUT ? 504 : 502, err == ETIMEDOUT ? "Gateway Timeout" : "Bad Gateway", why);
		return -1;
	}
	setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

/* ---- relay ---- */

static int dir_init(struct dir *d, int from, int to, size_t cap, const char *initial, size_t n)
{
	memset(d, 0, sizeof(*d));
	d->from = from, d->to = to;
	d->cap = cap > n ? cap : n;
	if (!(d->buf = malloc(d->cap)))
		return -1;
	memcpy(d->buf, initial, n);
	d->len = n;
	return 0;
}

/* Upstream->client while rewriting: once the head is complete, replace
 * the buffer by the rewritten head and what followed it.  A 1xx head, or
 * one that does not parse or fit, is relayed unchanged from then on. */
static int dir_rewrite(struct dir *d)
{
	char *end = egh_find_blank(d->buf, d->len);
	struct buf out = BUF_INIT;
	size_t hl;

	if (!end) {
		if (d->len >= EG_HEAD_MAX || d->eof)
			d->rewrite = 0;
		return 0;
	}
	d->rewrite = 0;
	hl = (size_t)(end - d->buf) + 4;
	if (d->len >= 10 && d->buf[9] == '1')
		return 0;
	if (egh_rewrite_response(d->buf, hl, &out) != 0 || buf_add(&out, d->buf + hl, d->len - hl) != 0 ||
	    buf_reserve(&out, EG_WINDOW) != 0) {
		buf_free(&out);
		return 0;
	}
	free(d->buf);
	d->cap = out.cap;
	d->len = out.len;
	d->off = 0;
	d->buf = buf_detach(&out);
	return 0;
}

static int dir_wants_input(const struct dir *d)
{
	return !d->eof && (d->rewrite ? d->len + 1 < d->cap : d->off == d->len);
}

static int dir_read(struct dir *d)
{
	ssize_t r;

	if (!d->rewrite && d->off == d->len)
		d->off = d->len = 0;
	r = recv(d->from, d->buf + d->len, d->cap - d->len - (d->rewrite ? 1 : 0), 0);
	if (r > 0) {
		d->len += (size_t)r;
		if (d->rewrite) {
			d->buf[d->len] = 0;
			return dir_rewrite(d);
		}
		return 0;
	}
	if (r == 0) {
		d->eof = 1;
		return d->rewrite ? dir_rewrite(d) : 0;
	}
	return errno == EAGAIN || errno == EINTR ? 0 : -1;
}

static int dir_write(struct dir *d)
{
	ssize_t w = send(d->to, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);

	if (w > 0) {
		d->off += (size_t)w;
		return 0;
	}
	return w < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

static int dir_pending(const struct dir *d)
{
	return !d->rewrite && d->off < d->len;
}

/* Half-close the sink once the source ended and everything was sent. */
static void dir_finish(struct dir *d)
{
	if (d->eof && !d->rewrite && d->off == d->len && !d->shut) {
		shutdown(d->to, SHUT_WR);
		d->shut = 1;
	}
}

static short events_for(int fd, const struct dir *a, const struct dir *b)
{
	short ev = 0;

	if (a->from == fd && dir_wants_input(a))
		ev |= POLLIN;
	if (a->to == fd && dir_pending(a))
		ev |= POLLOUT;
	if (b->from == fd && dir_wants_input(b))
		ev |= POLLIN;
	if (b->to == fd && dir_pending(b))
		ev |= POLLOUT;
	return ev;
}

/* pf[0] is the client's socket, pf[1] the upstream's. */
static int dir_step(struct dir *d, const struct pollfd *pf, int cfd)
{
	const struct pollfd *src = d->from == cfd ? &pf[0] : &pf[1];
	const struct pollfd *dst = d->to == cfd ? &pf[0] : &pf[1];

	if (dir_pending(d) && (dst->revents & (POLLOUT | POLLERR | POLLHUP)) && dir_write(d) != 0)
		return -1;
	if (dir_wants_input(d) && (src->revents & (POLLIN | POLLERR | POLLHUP)) && dir_read(d) != 0)
		return -1;
	dir_finish(d);
	return 0;
}

static void relay(struct eg_conn *c, struct dir *up, struct dir *down, int http)
{
	while (!(up->shut && down->shut) && !stopping(c->sh)) {
		struct pollfd pf[2] = { { c->cfd, 0, 0 }, { c->ufd, 0, 0 } };
		int n;

		pf[0].events = events_for(c->cfd, up, down);
		pf[1].events = events_for(c->ufd, up, down);
		if (!pf[0].events && !pf[1].events)
			break;
		/* poll reports a hang-up even when asked for nothing: a side
		 * that has nothing to do waits for the other one */
		if (!pf[0].events)
			pf[0].fd = -1;
		if (!pf[1].events)
			pf[1].fd = -1;
		n = poll(pf, 2, (int)(c->sh->idle_ms > 0x7fffffff ? 0x7fffffff : c->sh->idle_ms));
		if (n == 0)
			break;                          /* idle */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (dir_step(up, pf, c->cfd) != 0 || dir_step(down, pf, c->cfd) != 0)
			break;
		if (http && down->shut)
			break;                          /* the answer is complete */
	}
}

/* ---- one connection ---- */

static int start_relay(struct eg_conn *c, const struct egh_request *r)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	struct dir up, down;
	struct buf first = BUF_INIT;
	int rc = -1;

	memset(&down, 0, sizeof(down));
	if (r->is_connect) {
		if (send_all(c->cfd, ok, sizeof(ok) - 1, 10000) != 0)
			return -1;
		rc = buf_add(&first, c->head + c->head_len, c->have - c->head_len);
	} else {
		rc = egh_upstream_head(r, &first) || buf_add(&first, c->head + c->head_len, c->have - c->head_len);
	}
	if (rc != 0 || dir_init(&up, c->cfd, c->ufd, EG_WINDOW, first.p ? first.p : "", first.len) != 0) {
		buf_free(&first);
		return -1;
	}
	buf_free(&first);
	if (dir_init(&down, c->ufd, c->cfd, r->is_connect ? EG_WINDOW : EG_HEAD_MAX + 1, "", 0) == 0) {
		down.rewrite = !r->is_connect;
		relay(c, &up, &down, !r->is_connect);
	}
	free(up.buf);
	free(down.buf);
	return 0;
}

static void serve_conn(struct eg_conn *c)
{
	struct egh_request r;
	int st;

	memset(&r, 0, sizeof(r));
	st = read_head(c);
	if (st == 431) {
		reply(c, 431, "Request Header Fields Too Large", "the request head is over 32 KiB");
		return;
	}
	if (st != 0)
		return;
	if ((st = egh_parse(c->head, c->head_len, &r)) != 0) {
		reply(c, st, st == 414 ? "URI Too Long" : st == 505 ? "HTTP Version Not Supported" :
			     st == 431 ? "Request Header Fields Too Large" : "Bad Request", r.why);
		return;
	}
	if (egp_check_name(&c->sh->pol, r.host, r.why, sizeof(r.why)) != 0) {
		refuse(c, &r, r.why);
		return;
	}
	if (open_upstream(c, &r) != 0)
		return;
	start_relay(c, &r);
}

static void *conn_main(void *arg)
{
	struct eg_conn *c = arg;
	struct eg_shared *sh = c->sh;
	int cfd, ufd;

	serve_conn(c);
	pthread_mutex_lock(&sh->lock);
	sh->slots[c->slot] = NULL;
	cfd = c->cfd, ufd = c->ufd;
	sh->active--;
	pthread_cond_broadcast(&sh->idle);
	pthread_mutex_unlock(&sh->lock);
	close(cfd);
	if (ufd >= 0)
		close(ufd);
	free(c);
	shared_release(sh);
	return NULL;
}

/* ---- listener ---- */

static void too_many(struct eg_shared *sh, int fd)
{
	static const char body[] = "ccr egress proxy: too many connections at once; try again\n";
	char msg[300];
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", sizeof(body) - 1, body);

	if (n > 0 && send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* the client will see the close */
	}
	logf_line(sh, "egress proxy refused a connection: %u connections are open (the limit)", sh->max);
}

/* Register a new connection and start its thread; closes fd on failure. */
static void admit(struct eg_shared *sh, int fd)
{
	struct eg_conn *c = NULL;
	pthread_attr_t attr;
	pthread_t th;
	unsigned i;

	pthread_mutex_lock(&sh->lock);
	if (sh->stopping || sh->active >= sh->max || !(c = calloc(1, sizeof(*c)))) {
		int full = !sh->stopping && sh->active >= sh->max;
		pthread_mutex_unlock(&sh->lock);
		if (full)
			too_many(sh, fd);
		close(fd);
		return;
	}
	for (i = 0; sh->slots[i]; i++)
		;
	c->sh = sh, c->slot = i, c->cfd = fd, c->ufd = -1;
	sh->slots[i] = c;
	sh->active++;
	sh->refs++;
	pthread_mutex_unlock(&sh->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&th, &attr, conn_main, c) != 0) {
		pthread_mutex_lock(&sh->lock);
		sh->slots[i] = NULL;
		sh->active--;
		sh->refs--;
		pthread_mutex_unlock(&sh->lock);
		close(fd);
		free(c);
	}
	pthread_attr_destroy(&attr);
}

static void *listener_main(void *arg)
{
	struct eg_proxy *p = arg;

	for (;;) {
		struct pollfd pf[2] = { { p->listen_fd, POLLIN, 0 }, { p->wake[0], POLLIN, 0 } };
		int fd;

		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			admit(p->sh, fd);
		else if (errno == EMFILE || errno == ENFILE)
			poll(NULL, 0, 100);     /* let connections end */
	}
	return NULL;
}

/* ---- start / stop ---- */

static int listen_loopback(struct eg_proxy *p, struct err *e)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->listen_fd < 0)
		return err_set(e, "egress proxy: cannot create a socket: %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(p->listen_fd, 128) != 0 ||
	    getsockname(p->listen_fd, (struct sockaddr *)&a, &al) != 0 || nonblock(p->listen_fd) != 0)
		return err_set(e, "egress proxy: cannot listen on 127.0.0.1: %s", strerror(errno));
	p->port = ntohs(a.sin_port);
	return 0;
}

static struct eg_shared *shared_new(const struct eg_config *cfg, struct err *e)
{
	struct eg_shared *sh = calloc(1, sizeof(*sh));

	if (!sh) {
		err_set(e, "egress proxy: out of memory");
		return NULL;
	}
	sh->max = cfg->max_tunnels ? cfg->max_tunnels : EG_MAX_TUNNELS_DEFAULT;
	sh->idle_ms = cfg->idle_ms > 0 ? cfg->idle_ms : EG_IDLE_MS_DEFAULT;
	sh->connect_ms = cfg->connect_ms > 0 ? cfg->connect_ms : EG_CONNECT_MS_DEFAULT;
	sh->log = cfg->log, sh->log_arg = cfg->log_arg;
	sh->refs = 1;
	pthread_mutex_init(&sh->lock, NULL);
	pthread_cond_init(&sh->idle, NULL);
	if (!(sh->slots = calloc(sh->max + 1, sizeof(*sh->slots))) ||
	    egp_list_csv(&sh->pol.op, cfg->allow, "CCR_EGRESS_ALLOW", e) != 0 ||
	    egp_list_json(&sh->pol.task, cfg->allowed_hosts, "allowedHosts", e) != 0 ||
	    egp_private_csv(&sh->pol, cfg->allow_private, e) != 0) {
		if (!sh->slots)
			err_set(e, "egress proxy: out of memory");
		shared_release(sh);
		return NULL;
	}
	return sh;
}

int eg_start(struct eg_proxy *p, const struct eg_config *cfg, struct err *e)
{
	memset(p, 0, sizeof(*p));
	p->listen_fd = p->wake[0] = p->wake[1] = -1;
	if (!(p->sh = shared_new(cfg, e)))
		return -1;
	if (listen_loopback(p, e) != 0 || pipe2(p->wake, O_CLOEXEC) != 0 ||
	    pthread_create(&p->listener, NULL, listener_main, p) != 0) {
		if (!e->msg[0])
			err_set(e, "egress proxy: cannot start: %s", strerror(errno));
		if (p->listen_fd >= 0)
			close(p->listen_fd);
		if (p->wake[0] >= 0)
			close(p->wake[0]), close(p->wake[1]);
		shared_release(p->sh);
		memset(p, 0, sizeof(*p));
		return -1;
	}
	p->started = 1;
	return 0;
}

int eg_port(const struct eg_proxy *p)
{
	return p->started ? p->port : 0;
}

void eg_stop(struct eg_proxy *p)
{
	struct eg_shared *sh = p->sh;
	struct timespec until;
	unsigned i;
	char c = 1;

	if (!p->started)
		return;
	pthread_mutex_lock(&sh->lock);
	__atomic_store_n(&sh->stopping, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&sh->lock);
	if (write(p->wake[1], &c, 1) < 0) {
		/* the listener also stops on the closed socket below */
	}
	pthread_join(p->listener, NULL);
	close(p->listen_fd);
	close(p->wake[0]);
	close(p->wake[1]);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += EG_STOP_WAIT_MS / 1000;
	pthread_mutex_lock(&sh->lock);
	for (i = 0; i < sh->max; i++)
		if (sh->slots[i]) {
			shutdown(sh->slots[i]->cfd, SHUT_RDWR);
			if (sh->slots[i]->ufd >= 0)
				shutdown(sh->slots[i]->ufd, SHUT_RDWR);
		}
	while (sh->active > 0 && pthread_cond_timedwait(&sh->idle, &sh->lock, &until) == 0)
		;
	pthread_mutex_unlock(&sh->lock);
	shared_release(sh);
	memset(p, 0, sizeof(*p));
	p->listen_fd = -1;
}
