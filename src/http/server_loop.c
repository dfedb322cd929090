/*
 * server_loop.c: the event loop of the HTTP/1.1 server (see server.c for
 * the design).  One thread, one epoll set: the listeners and the drain
 * pipe, an eventfd that workers and wake-ups write, the refused sockets
 * (server_accept.c), and the connections it owns, all level-triggered.
 * A connection's interest (c->armed) changes only when its state does,
 * so a kept-alive connection answered inline costs no epoll_ctl.
 *
 * A turn: wait (until the next timer), handle the events, take back the
 * connections workers returned (the inbox), run the woken parked streams,
 * check the timers when due, then free what this turn closed.  A
 * connection reading its request is parsed here as bytes arrive; once a
 * request is ready it goes to a worker (or, for cfg.is_inline, is
 * answered here).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/clock.h"
#include "http/server_int.h"

#define TIMER_NONE UINT64_MAX

static uint64_t now_ms(void)
{
	return (uint64_t)clock_mono_ms();
}

/* ---- the loop's list of connections ----------------------------------- */

static void link_conn(struct hs_server *s, struct hs_conn *c)
{
	c->lprev = NULL;
	c->lnext = s->lconns;
	if (s->lconns)
		s->lconns->lprev = c;
	s->lconns = c;
}

static void unlink_conn(struct hs_server *s, struct hs_conn *c)
{
	if (c->lprev)
		c->lprev->lnext = c->lnext;
	else if (s->lconns == c)
		s->lconns = c->lnext;
	if (c->lnext)
		c->lnext->lprev = c->lprev;
	c->lprev = c->lnext = NULL;
}

static void timer_at(struct hs_server *s, uint64_t t)
{
	if (t && t < s->next_timer)
		s->next_timer = t;
}

/* When a connection reading a request gives up (ms). */
static uint64_t read_deadline(const struct hs_conn *c)
{
	const struct hs_req *q = &c->req;
	const struct hs_config *cfg = &c->srv->cfg;

	if (!q->t_start)
		return c->idle_deadline;
	if (!q->headers_done)
		return q->t_start / 1000u + cfg->header_timeout_ms;
	return q->t_headers / 1000u + cfg->body_timeout_ms;
}

void hs_loop_kick(struct hs_server *s)
{
	uint64_t one = 1;

	if (!__atomic_exchange_n(&s->kicked, 1, __ATOMIC_ACQ_REL))
		(void)!write(s->evfd, &one, sizeof(one));
}

void hs_loop_arm(struct hs_server *s, struct hs_conn *c)
{
	struct epoll_event ev;
	uint32_t want = 0;

	if (c->where == C_LOOP_READ)
		want = EPOLLIN;
	else if (c->where == C_LOOP_FLUSH)
		want = EPOLLOUT;
	else if (c->where == C_LOOP_PARKED)
		want = EPOLLRDHUP | (c->rlen < RBUF_SIZE ? EPOLLIN : 0) | (c->obuf.len ? EPOLLOUT : 0);
	if (c->armed == (int)want)
		return;            /* watched already, for the same events */
	memset(&ev, 0, sizeof(ev));
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(s->epfd, c->armed >= 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0) {
		c->gone = 1;       /* cannot watch it: treat the client as gone */
		c->armed = 0;
		return;
	}
	c->armed = (int)want;
}

void hs_loop_close(struct hs_server *s, struct hs_conn *c)
{
	unlink_conn(s, c);
	c->where = C_DEAD;
	hs_conn_unregister(s, c);      /* closes the socket: out of the epoll set */
	c->znext = s->zconns;
	s->zconns = c;
}

/* Close c, idle: a handler's per-connection data is freed on a worker
 * (its free_fn may block, e.g. a TLS goodbye). */
static void close_idle(struct hs_server *s, struct hs_conn *c)
{
	if (c->data_free)
		hs_loop_dispatch(s, c, JOB_FINISH);
	else
		hs_loop_close(s, c);
}

int hs_loop_dispatch(struct hs_server *s, struct hs_conn *c, int job)
{
	if (c->armed >= 0)
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->armed = -1;
	unlink_conn(s, c);
	c->where = C_WORKER;
	c->job = job;
	if (hs_pool_submit(s, c) == 0)
		return 0;
	/* No thread at all: end it here. */
	if (c->park) {
		c->park->ops.done(c->park->ctx, HS_PARK_GONE);
		c->park->state = P_DEAD;
		c->park->znext = s->zparks;
		s->zparks = c->park;
		c->park = NULL;
	}
	link_conn(s, c);
	hs_loop_close(s, c);
	return -1;
}

void hs_loop_handback(struct hs_server *s, struct hs_conn *c)
{
	pthread_mutex_lock(&s->inbox_mu);
	c->qnext = s->inbox;
	s->inbox = c;
	pthread_mutex_unlock(&s->inbox_mu);
	hs_loop_kick(s);
}

/* ---- reading requests ------------------------------------------------- */

static int is_inline(struct hs_server *s, struct hs_conn *c)
{
	return s->cfg.is_inline && !s->cfg.stream_body && s->cfg.is_inline(&c->req, s->cfg.app);
}

/* Answer inline requests while they are ready in rbuf. */
static void run_inline(struct hs_server *s, struct hs_conn *c)
{
	int k, r, rd;

	for (k = 0; k < INLINE_BATCH; k++) {
		c->nonblock = 1;
		r = hs_conn_answer(c, RD_OK);
		c->nonblock = 0;
		if (r != ANS_KEEP) {
			if (c->obuf.len && !c->gone)
				hs_loop_dispatch(s, c, JOB_FINISH);     /* flush, then close */
			else
				hs_loop_close(s, c);
			return;
		}
		hs_req_reset(c);
		c->idle_deadline = now_ms() + s->cfg.idle_timeout_ms;
		if (c->obuf.len) {
			c->where = C_LOOP_FLUSH;           /* read on once it is written */
			timer_at(s, c->write_deadline);
			hs_loop_arm(s, c);
			return;
		}
		rd = hs_request_ready(c);
		if (rd == RD_MORE) {
			timer_at(s, read_deadline(c));
			hs_loop_arm(s, c);
			return;
		}
		if (rd != RD_OK || !is_inline(s, c)) {
			c->rd = rd;
			hs_loop_dispatch(s, c, JOB_REQUEST);
			return;
		}
	}
	c->rd = RD_OK;
	hs_loop_dispatch(s, c, JOB_REQUEST);
}

/* A request is ready (RD_OK) or refused (RD_FAIL). */
static void request_ready(struct hs_server *s, struct hs_conn *c, int rd)
{
	if (rd == RD_OK && is_inline(s, c)) {
		run_inline(s, c);
		return;
	}
	c->rd = rd;
	hs_loop_dispatch(s, c, JOB_REQUEST);
}

/* c's socket is readable: receive and parse until a request is ready,
 * the socket is empty, or the client is gone. */
static void read_event(struct hs_server *s, struct hs_conn *c)
{
	for (;;) {
		ssize_t n;
		int rd;

		if (c->rlen) {
			rd = hs_request_ready(c);
			if (rd != RD_MORE) {
				request_ready(s, c, rd);
				return;
			}
		}
		n = recv(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			timer_at(s, read_deadline(c));
			hs_loop_arm(s, c);
			return;
		}
		c->gone = 1;       /* EOF or error: nothing (more) to answer */
		close_idle(s, c);
		return;
	}
}

static void drain_idle(struct hs_server *s, struct hs_conn *c);

/* An inline answer was waiting for the socket: write on, then read on. */
static void flush_event(struct hs_server *s, struct hs_conn *c)
{
	if (hs_obuf_push(c) != 0) {
		hs_loop_close(s, c);
		return;
	}
	if (c->obuf.len) {
		timer_at(s, c->write_deadline);
		hs_loop_arm(s, c);
		return;
	}
	c->where = C_LOOP_READ;
	if (s->loop_drained && !c->req.t_start && !c->rlen)
		drain_idle(s, c);
	else
		read_event(s, c);
}

static void conn_event(struct hs_server *s, struct hs_conn *c, uint32_t ev)
{
	if (c->where == C_LOOP_READ)
		read_event(s, c);
	else if (c->where == C_LOOP_FLUSH)
		flush_event(s, c);
	else if (c->where == C_LOOP_PARKED)
		hs_park_io(s, c, ev);
}

/* An idle connection once the server drains: a request that raced the
 * drain is still read, otherwise it closes. */
static void drain_idle(struct hs_server *s, struct hs_conn *c)
{
	if (c->req.t_start || c->rlen)
		return;
	read_event(s, c);
	if (c->where == C_LOOP_READ && !c->req.t_start && !c->rlen)
		close_idle(s, c);
}

void hs_loop_adopt(struct hs_server *s, struct hs_conn *c)
{
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	hs_req_reset(c);
	c->looped = 1;
	c->armed = -1;
	c->where = C_LOOP_READ;
	c->idle_deadline = now_ms() + s->cfg.header_timeout_ms;
	link_conn(s, c);
	read_event(s, c);
}

/* ---- the inbox, the drain, the timers --------------------------------- */

static void take_back(struct hs_server *s, struct hs_conn *c)
{
	link_conn(s, c);
	if (c->hb == HB_PARKED) {
		c->where = C_LOOP_PARKED;
		c->park->state = P_LOOP;
		if (c->gone || c->park->result == HS_PUMP_END) {
			hs_park_end(s, c->park, c->gone ? HS_PARK_GONE : HS_PARK_ENDED);
			return;
		}
		hs_park_run(s, c->park, 0);      /* also covers wake-ups it missed */
		return;
	}
	c->where = C_LOOP_READ;
	if (s->loop_drained) {
		drain_idle(s, c);
		if (c->where != C_LOOP_READ)
			return;
	}
	timer_at(s, read_deadline(c));
	hs_loop_arm(s, c);
}

static void take_inbox(struct hs_server *s)
{
	struct hs_conn *c, *list;
	struct hs_park *p, *dead;

	pthread_mutex_lock(&s->inbox_mu);
	list = s->inbox;
	dead = s->dead_parks;
	s->inbox = NULL;
	s->dead_parks = NULL;
	pthread_mutex_unlock(&s->inbox_mu);
	for (; dead; dead = p) {
		p = dead->znext;
		dead->state = P_DEAD;
		dead->znext = s->zparks;
		s->zparks = dead;
	}
	for (; list; list = c) {
		c = list->qnext;
		list->qnext = NULL;
		take_back(s, list);
	}
}

static void on_drain(struct hs_server *s)
{
	struct hs_conn *c, *next;
	int i;

	(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->drain_pipe[0], NULL);
	for (i = 0; i < s->nlisten; i++)
		close(s->lfd[i]);          /* leaves the epoll set */
	s->nlisten = 0;
	pthread_mutex_lock(&s->mu);
	s->loop_drained = 1;
	pthread_mutex_unlock(&s->mu);
	for (c = s->lconns; c; c = next) {
		next = c->lnext;
		if (c->where == C_LOOP_READ)
			drain_idle(s, c);
		else if (c->where == C_LOOP_PARKED)
			hs_park_run(s, c->park, HS_PUMP_DRAINING);
	}
	pthread_mutex_lock(&s->mu);
	pthread_cond_broadcast(&s->cv);      /* hs_shutdown waits for the listeners to close */
	pthread_mutex_unlock(&s->mu);
}

/* One connection's deadlines. */
static void conn_timers(struct hs_server *s, struct hs_conn *c, uint64_t now)
{
	if (c->where == C_LOOP_READ) {
		if (now < read_deadline(c))
			timer_at(s, read_deadline(c));
		else if (!c->req.t_start)
			close_idle(s, c);          /* idle too long */
		else {
			hs_fail(&c->req, 408, "request timeout");
			c->rd = RD_FAIL;
			hs_loop_dispatch(s, c, JOB_REQUEST);
		}
		return;
	}
	if (c->obuf.len && now >= c->write_deadline) {
		c->gone = 1;               /* no write progress: the client is gone */
		if (c->where == C_LOOP_PARKED)
			hs_park_end(s, c->park, HS_PARK_GONE);
		else
			hs_loop_close(s, c);
		return;
	}
	if (c->obuf.len)
		timer_at(s, c->write_deadline);
	if (c->where == C_LOOP_PARKED && c->park->tick_ms) {
		if (now >= c->park->next_tick)
			hs_park_run(s, c->park, 0);
		if (c->where == C_LOOP_PARKED)
			timer_at(s, c->park->next_tick);
	}
}

static void listen_pause(struct hs_server *s, uint64_t now)
{
	struct epoll_event ev;
	int i, pause = now < s->accept_pause_until;

	if (pause == s->listen_paused || s->loop_drained)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	for (i = 0; i < s->nlisten; i++) {
		ev.data.u64 = TAG_LISTEN + (uint64_t)i;
		(void)epoll_ctl(s->epfd, pause ? EPOLL_CTL_DEL : EPOLL_CTL_ADD, s->lfd[i], &ev);
	}
	s->listen_paused = pause;
	if (pause)
		timer_at(s, s->accept_pause_until);
}

static void run_timers(struct hs_server *s)
{
	uint64_t now = now_ms();
	struct hs_conn *c, *next;

	if (now < s->next_timer)
		return;
	s->next_timer = TIMER_NONE;
	for (c = s->lconns; c; c = next) {
		next = c->lnext;
		conn_timers(s, c, now);
	}
	timer_at(s, hs_linger_timers(s, now));
	listen_pause(s, now);
	if (s->next_timer < now + TIMER_SLACK_MS)
		s->next_timer = now + TIMER_SLACK_MS;
}

/* ---- the loop ---------------------------------------------------------- */

static void free_closed(struct hs_server *s)
{
	while (s->zconns) {
		struct hs_conn *c = s->zconns;

		s->zconns = c->znext;
		hs_conn_free(c);
	}
}

static void handle_event(struct hs_server *s, const struct epoll_event *ev)
{
	uint64_t tag = ev->data.u64;

	if (tag == TAG_DRAIN) {
		on_drain(s);
	} else if (tag == TAG_WAKE) {
		uint64_t v;

		/* read first, then clear: a kick between the two either saw
		 * the flag set (its wake-up is taken later in this turn) or
		 * writes the eventfd again */
		(void)!read(s->evfd, &v, sizeof(v));
		__atomic_store_n(&s->kicked, 0, __ATOMIC_SEQ_CST);
	} else if (tag >= TAG_LISTEN && tag < TAG_LISTEN + HS_MAX_LISTEN) {
		if ((int)(tag - TAG_LISTEN) < s->nlisten)
			hs_accept_ready(s, s->lfd[tag - TAG_LISTEN]);
		listen_pause(s, now_ms());
	} else if (*(int *)ev->data.ptr == EV_LINGER) {
		hs_linger_event(s, ev->data.ptr, 1);
	} else {
		struct hs_conn *c = ev->data.ptr;

		if (c->where != C_DEAD && c->where != C_WORKER)
			conn_event(s, c, ev->events);
	}
}

/* The loop stops (hs_shutdown, after its deadline): end what is left. */
static void loop_exit(struct hs_server *s)
{
	int i;

	take_inbox(s);
	while (s->lconns) {
		struct hs_conn *c = s->lconns;

		if (c->park) {
			c->park->ops.done(c->park->ctx, HS_PARK_GONE);
			c->park->state = P_DEAD;
			c->park->znext = s->zparks;
			s->zparks = c->park;
			c->park = NULL;
		}
		hs_loop_close(s, c);
	}
	hs_park_drain_wakes(s);
	hs_park_drain_wakes(s);
	free_closed(s);
	hs_linger_close_all(s);
	for (i = 0; i < s->nlisten; i++)
		close(s->lfd[i]);
	s->nlisten = 0;
}

void *hs_loop_main(void *arg)
{
	struct hs_server *s = arg;
	struct epoll_event ev[LOOP_EVENTS];

	s->next_timer = TIMER_NONE;
	while (!__atomic_load_n(&s->loop_stop, __ATOMIC_ACQUIRE)) {
		int timeout = -1, n, i;

		if (s->next_timer != TIMER_NONE) {
			uint64_t now = now_ms();

			timeout = s->next_timer > now ? (int)(s->next_timer - now) : 0;
		}
		n = epoll_wait(s->epfd, ev, LOOP_EVENTS, timeout);
		if (n < 0 && errno != EINTR)
			break;     /* cannot happen with a valid epoll descriptor */
		for (i = 0; i < n; i++)
			handle_event(s, &ev[i]);
		take_inbox(s);
		hs_park_drain_wakes(s);
		run_timers(s);
		free_closed(s);
	}
	loop_exit(s);
	return NULL;
}
