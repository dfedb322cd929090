/*
 * egress.c: see egress.h.
 *
 * Design.  The listener is ccr's HTTP/1.1 server core (http/server.h):
 * it accepts on 127.0.0.1, caps connections (busy answer 503), gives each
 * connection a thread (a 256 KiB stack; the buffers live on the heap),
 * reads and checks the request head with its deadline, and answers
 * malformed heads (in this proxy's text/plain form, eg_error_body).  The
 * handler, eg_handle, rebuilds the head for egress_http.h's checks,
 * decides (egpolicy.h), resolves, connects, answers or takes the socket
 * over (hs_req_take_socket), writes the tunnel's 200 or the rewritten
 * head, then relays both directions with non-blocking sockets and one
 * poll() loop:
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
 * dangling pointer (the server core is then left allocated too).  Every
 * upstream socket a thread owns is recorded in its slot under the lock,
 * and removed under the lock before it is closed, so the drain hook can
 * shut them down without racing a close and a reused descriptor number;
 * the client sockets are the core's, which shuts them down itself.
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

#include "http/server.h"
#include "egress/egpolicy.h"
#include "egress/egress.h"
#include "egress/egress_http.h"
#include "util/buf.h"
#include "util/clock.h"

#define EG_HEAD_MAX 32768
#define EG_HEAD_TIMEOUT_MS 30000
#define EG_WINDOW 65536

struct eg_conn;

struct eg_shared {
	pthread_mutex_t lock;
	unsigned refs;                  /* the proxy + one per connection thread */
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
	struct hs_req *hq;
	struct hs_resp *hr;
	int cfd, ufd;                   /* client (once taken over), upstream (-1 when none) */
	struct buf head;                /* the request head, rebuilt for egh_parse */
	struct buf pending;             /* what the client sent after the head */
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

static void reply(struct eg_conn *c, int status, const char *text, const char *body)
{
	struct buf r = BUF_INIT;

	hs_resp_reason(c->hr, text);
	hs_resp_close(c->hr);
	if (buf_printf(&r, "ccr egress proxy: %s\n", body) == 0)
		(void)hs_send(c->hr, status, "text/plain; charset=utf-8", r.p, r.len);
	buf_free(&r);
}

/* ---- the request head ---- */

/* The head as the client sent it, for egh_parse: the request line and
 * the header fields the server core parsed.  0, or -1 out of memory. */
static int rebuild_head(struct eg_conn *c)
{
	size_t i, n = hs_req_header_count(c->hq);
	const char *name, *value;

	if (buf_printf(&c->head, "%s %s HTTP/1.%d\r\n", hs_req_method(c->hq), hs_req_target(c->hq),
		       hs_req_http_minor(c->hq)) != 0)
		return -1;
	for (i = 0; i < n; i++)
		if (hs_req_header_at(c->hq, i, &name, &value) != 0 || buf_printf(&c->head, "%s: %s\r\n", name, value) != 0)
			return -1;
	return buf_adds(&c->head, "\r\n");
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
	if ((c->cfd = hs_req_take_socket(c->hq, &c->pending)) < 0)
		return -1;
	if (r->is_connect) {
		if (send_all(c->cfd, ok, sizeof(ok) - 1, 10000) != 0)
			return -1;
		rc = buf_add(&first, c->pending.p, c->pending.len);
	} else {
		rc = egh_upstream_head(r, &first) || buf_add(&first, c->pending.p, c->pending.len);
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
	if (rebuild_head(c) != 0) {
		reply(c, 500, "Internal Server Error", "out of memory");
		return;
	}
	if ((st = egh_parse(c->head.p, c->head.len, &r)) != 0) {
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

/* Take a slot (for the drain hook) and a reference to the shared state. */
static struct eg_conn *conn_new(struct eg_shared *sh, struct hs_req *hq, struct hs_resp *hr)
{
	struct eg_conn *c = calloc(1, sizeof(*c));
	unsigned i;

	if (!c)
		return NULL;
	pthread_mutex_lock(&sh->lock);
	for (i = 0; i < sh->max && sh->slots[i]; i++)
		;
	if (i == sh->max) {
		pthread_mutex_unlock(&sh->lock);
		free(c);
		return NULL;
	}
	c->sh = sh, c->slot = i, c->hq = hq, c->hr = hr, c->cfd = c->ufd = -1;
	sh->slots[i] = c;
	sh->refs++;
	pthread_mutex_unlock(&sh->lock);
	return c;
}

/* The server core's handler: one request head (a connection carries one). */
static int eg_handle(struct hs_req *hq, struct hs_resp *hr, void *app)
{
	struct eg_shared *sh = app;
	struct eg_conn *c = conn_new(sh, hq, hr);
	int ufd;

	if (!c)
		return -1;
	serve_conn(c);
	pthread_mutex_lock(&sh->lock);
	sh->slots[c->slot] = NULL;
	ufd = c->ufd;
	pthread_mutex_unlock(&sh->lock);
	if (ufd >= 0)
		close(ufd);
	buf_free(&c->head);
	buf_free(&c->pending);
	free(c);
	shared_release(sh);
	return 0;
}

/* ---- the server core's hooks ---- */

/* Its own answers (malformed heads, the cap) in this proxy's form. */
static int eg_error_body(int status, const char *msg, struct buf *out, const char **ctype, void *app)
{
	struct eg_shared *sh = app;

	if (status == 503) {
		msg = "too many connections at once; try again";
		logf_line(sh, "egress proxy refused a connection: %u connections are open (the limit)", sh->max);
	} else if (status == 414) {
		msg = "request target over 8192 bytes";
	} else if (status == 431) {
		msg = "the request head is over 32 KiB or 100 header lines";
	} else if (status == 505) {
		msg = "only HTTP/1.x is supported";
	} else if (status == 408) {
		msg = "the request head did not arrive within 30 s";
	}
	*ctype = "text/plain; charset=utf-8";
	return buf_printf(out, "ccr egress proxy: %s\n", msg);
}

/* eg_stop: cut every upstream socket (the core cuts the clients'). */
static void eg_drain(void *app)
{
	struct eg_shared *sh = app;
	unsigned i;

	pthread_mutex_lock(&sh->lock);
	__atomic_store_n(&sh->stopping, 1, __ATOMIC_RELAXED);
	for (i = 0; i < sh->max; i++)
		if (sh->slots[i] && sh->slots[i]->ufd >= 0)
			shutdown(sh->slots[i]->ufd, SHUT_RDWR);
	pthread_mutex_unlock(&sh->lock);
}

/* ---- start / stop ---- */

static struct hs_server *start_server(struct eg_shared *sh, int *port, struct err *e)
{
	struct hs_config hc;
	struct hs_server *srv;

	hs_config_defaults(&hc);
	hc.stream_body = 1;
	hc.allow_connect = 1;
	hc.host_optional = 1;
	hc.max_url = EGH_TARGET_MAX;
	hc.max_headers = EGH_HEAD_LINES;
	hc.max_header_bytes = EG_HEAD_MAX;
	hc.max_connections = hc.max_per_client = sh->max;
	hc.header_timeout_ms = EG_HEAD_TIMEOUT_MS;
	hc.stack_size = 256 * 1024;
	hc.handler = eg_handle;
	hc.error_body = eg_error_body;
	hc.on_drain = eg_drain;
	hc.app = sh;
	if (!(srv = hs_new(&hc, e)))
		return NULL;
	if (hs_listen(srv, "127.0.0.1", 0, e) != 0 || hs_start(srv, e) != 0) {
		err_set(e, "egress proxy: %s", e->msg);
		hs_free(srv);
		return NULL;
	}
	*port = hs_port(srv);
	return srv;
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
	if (!(p->sh = shared_new(cfg, e)))
		return -1;
	if (!(p->srv = start_server(p->sh, &p->port, e))) {
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
	if (!p->started)
		return;
	/* Stop accepting, cut every connection (eg_drain, then the core)
	 * and wait up to a second; a thread still resolving a name after that
	 * keeps its own reference to the shared state, and the core stays
	 * allocated. */
	if (hs_shutdown(p->srv, 0) != 2)
		hs_free(p->srv);
	shared_release(p->sh);
	memset(p, 0, sizeof(*p));
}
