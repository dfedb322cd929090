/*
 * server_park.c: parked streams (server.h): a started stream whose
 * handler returned, kept by the loop at the cost of a struct, and the
 * output buffer that lets the loop write without waiting.
 *
 * Wake-ups come from any thread: hs_stream_wake sets the park's `woken`
 * flag and, when it was clear, pushes the park on a lock-free stack
 * (only the loop pops, and it takes the whole stack at once, so there is
 * no ABA) and kicks the loop's eventfd.  The loop clears the flag before
 * running the pump, so a wake during a pump makes another run.
 *
 * Lifetime: a park ends on a worker (its done may block: serve cancels a
 * task whose client left); after done returned nobody wakes it any more,
 * but an earlier wake may still be on the stack.  So the worker gives
 * the park back to the loop, which frees it only after the next time it
 * has taken the whole stack: every wake of it is behind by then.  The
 * connection outlives done (the stream's end and keep-alive follow on
 * the same worker).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "util/clock.h"
#include "http/server_int.h"

struct hs_park *hs_stream_park(struct hs_resp *r, const struct hs_park_ops *ops, void *ctx, unsigned tick_ms)
{
	struct hs_conn *c = r->c;
	struct hs_park *p;

	if (!c->looped || c->nonblock || c->park || c->gone || r->started != RESP_STREAM || r->ended || !ops ||
	    !ops->pump || !ops->done)
		return NULL;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	p->c = c;
	p->ops = *ops;
	p->ctx = ctx;
	p->tick_ms = tick_ms;
	p->state = P_WORKER;
	p->result = HS_PUMP_CONTINUE;
	c->park = p;
	return p;
}

void hs_stream_wake(struct hs_park *p)
{
	struct hs_server *s = p->c->srv;
	struct hs_park *top;

	if (__atomic_exchange_n(&p->woken, 1, __ATOMIC_ACQ_REL))
		return;            /* on the stack already */
	top = __atomic_load_n(&s->wakes, __ATOMIC_ACQUIRE);
	do
		p->wnext = top;
	while (!__atomic_compare_exchange_n(&s->wakes, &top, p, 1, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE));
	hs_loop_kick(s);
}

int hs_stream_writable(const struct hs_resp *r)
{
	return !r->c->nonblock || r->c->obuf.len < OBUF_SOFT;
}

/* ---- the output buffer ------------------------------------------------ */

int hs_obuf_push(struct hs_conn *c)
{
	size_t off = 0;

	while (off < c->obuf.len) {
		ssize_t w = send(c->fd, c->obuf.p + off, c->obuf.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		c->gone = 1;
		return -1;
	}
	if (off) {
		memmove(c->obuf.p, c->obuf.p + off, c->obuf.len - off);
		c->obuf.len -= off;
		c->write_deadline = (uint64_t)clock_mono_ms() + c->srv->cfg.write_timeout_ms;
	}
	if (!c->obuf.len) {
		if (c->obuf.cap > RBUF_SIZE)
			buf_free(&c->obuf);
		else
			buf_reset(&c->obuf);
	}
	return 0;
}

/* ---- on the loop -------------------------------------------------------- */

void hs_park_end(struct hs_server *s, struct hs_park *p, int why)
{
	p->why = why;
	p->state = P_WORKER;
	hs_loop_dispatch(s, p->c, JOB_PARK_END);
}

void hs_park_run(struct hs_server *s, struct hs_park *p, int flags)
{
	struct hs_conn *c = p->c;
	int rc;

	if (s->loop_drained)
		flags |= HS_PUMP_DRAINING;
	c->nonblock = 1;
	rc = p->ops.pump(p->ctx, &c->resp, flags);
	c->nonblock = 0;
	if (p->tick_ms)
		p->next_tick = (uint64_t)clock_mono_ms() + p->tick_ms;
	if (c->gone) {
		hs_park_end(s, p, HS_PARK_GONE);
	} else if (rc == HS_PUMP_END) {
		hs_park_end(s, p, (flags & HS_PUMP_DRAINING) ? HS_PARK_DRAINED : HS_PARK_ENDED);
	} else if (rc == HS_PUMP_WORKER) {
		p->state = P_WORKER;
		hs_loop_dispatch(s, c, JOB_PUMP);
	} else {
		if (p->tick_ms && p->next_tick < s->next_timer)
			s->next_timer = p->next_tick;
		if (c->obuf.len && c->write_deadline < s->next_timer)
			s->next_timer = c->write_deadline;
		hs_loop_arm(s, c);
	}
}

void hs_park_io(struct hs_server *s, struct hs_conn *c, uint32_t ev)
{
	struct hs_park *p = c->park;
	size_t was = c->obuf.len;

	if (ev & EPOLLIN)
		(void)hs_conn_absorb(c);       /* a pipelined request waits in rbuf; sets gone */
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->gone = 1;
	if (!c->gone && (ev & EPOLLOUT))
		(void)hs_obuf_push(c);
	if (c->gone) {
		hs_park_end(s, p, HS_PARK_GONE);
		return;
	}
	if (was >= OBUF_SOFT && c->obuf.len < OBUF_SOFT)
		hs_park_run(s, p, 0);          /* room again: the pump goes on */
	else
		hs_loop_arm(s, c);
}

void hs_park_drain_wakes(struct hs_server *s)
{
	struct hs_park *freeable = s->zparks, *p, *next;

	s->zparks = NULL;
	p = __atomic_exchange_n(&s->wakes, NULL, __ATOMIC_ACQ_REL);
	for (; p; p = next) {
		next = p->wnext;
		__atomic_store_n(&p->woken, 0, __ATOMIC_RELEASE);
		if (p->state == P_LOOP)
			hs_park_run(s, p, 0);
		/* P_WORKER: it runs when the loop gets it back; P_DEAD: ended */
	}
	for (p = freeable; p; p = next) {
		next = p->znext;
		free(p);
	}
}

/* ---- on a worker -------------------------------------------------------- */

void hs_park_pump_job(struct hs_conn *c)
{
	struct hs_park *p = c->park;
	int flags = HS_PUMP_ON_WORKER | (hs_draining(c->srv) ? HS_PUMP_DRAINING : 0);

	p->result = p->ops.pump(p->ctx, &c->resp, flags);
	if (p->result == HS_PUMP_WORKER)
		p->result = HS_PUMP_CONTINUE;
	c->hb = HB_PARKED;
	hs_loop_handback(c->srv, c);
}

int hs_park_end_job(struct hs_conn *c)
{
	struct hs_server *s = c->srv;
	struct hs_park *p = c->park;

	p->ops.done(p->ctx, p->why);
	c->park = NULL;
	pthread_mutex_lock(&s->inbox_mu);
	p->znext = s->dead_parks;
	s->dead_parks = p;
	pthread_mutex_unlock(&s->inbox_mu);
	hs_loop_kick(s);
	return hs_conn_after(c, 0);
}
