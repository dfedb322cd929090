/*
 * server_pool.c: the worker pool of the HTTP/1.1 server (see server.c for
 * why it is dynamic) and what a worker does with a connection the loop
 * gave it: answer the request (the handler may block), then answer the
 * pipelined requests already in its buffer, and give the connection back
 * to the loop (keep-alive, or a parked stream) or close it.
 *
 * The queue is a list under the pool's mutex.  A job starts a new thread
 * when fewer workers are idle than jobs wait and no thread is starting
 * already (a burst of quick requests is drained by the workers there are
 * instead of making one thread per request), up to max_connections (a
 * connection has at most one job at a time, so that is enough for every
 * blocking handler at once); the short jobs of parked streams (a pump
 * that reads history, a stream's end) start at most POOL_SHORT_MAX
 * threads, so 1,000 streams ending at once share a few workers.  A worker
 * idle for POOL_IDLE_MS exits unless it is one of the last POOL_MIN; past
 * POOL_SHORT_MAX threads (what a burst started) after POOL_BURST_IDLE_MS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "http/server_int.h"

/* The CLOCK_MONOTONIC time of ms (monotonic, ms) for a timed wait. */
static void abs_time(struct timespec *ts, uint64_t ms)
{
	ts->tv_sec = (time_t)(ms / 1000u);
	ts->tv_nsec = (long)(ms % 1000u) * 1000000L;
}

int hs_pool_init(struct hs_pool *p, unsigned max)
{
	pthread_condattr_t ca;
	int rc;

	memset(p, 0, sizeof(*p));
	p->max = max ? max : 1;
	if ((rc = pthread_mutex_init(&p->mu, NULL)) != 0)
		return rc;
	if ((rc = pthread_condattr_init(&ca)) != 0)
		return rc;
	if ((rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0 && (rc = pthread_cond_init(&p->cv, &ca)) == 0 &&
	    (rc = pthread_cond_init(&p->gone, &ca)) != 0)
		pthread_cond_destroy(&p->cv);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		pthread_mutex_destroy(&p->mu);
	return rc;
}

void hs_pool_destroy(struct hs_pool *p)
{
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	pthread_cond_destroy(&p->gone);
}

static int is_short(const struct hs_conn *c)
{
	return c->job == JOB_PUMP || c->job == JOB_PARK_END;
}

/* What a worker does with c. */
static void run_job(struct hs_conn *c)
{
	struct hs_server *s = c->srv;
	int r;

	if (c->job == JOB_PUMP) {
		hs_park_pump_job(c);
		return;
	}
	if (c->job == JOB_PARK_END)
		r = hs_park_end_job(c);
	else if (c->job == JOB_FINISH)
		r = (hs_conn_flush(c), ANS_DONE);
	else
		r = hs_conn_answer(c, c->rd);
	while (r == ANS_KEEP) {
		int rd;

		hs_req_reset(c);
		c->idle_deadline = (uint64_t)clock_mono_ms() + s->cfg.idle_timeout_ms;
		rd = hs_request_ready(c);
		if (rd == RD_MORE) {
			c->hb = HB_READ;           /* the loop waits for the rest */
			hs_loop_handback(s, c);
			return;
		}
		r = hs_conn_answer(c, rd);
	}
	if (r == ANS_PARKED) {
		c->hb = HB_PARKED;
		hs_loop_handback(s, c);
		return;
	}
	hs_conn_unregister(s, c);
	hs_conn_free(c);
}

static void *worker_main(void *arg);

/* One more worker for the job c, unless one is starting or a cap says
 * no (p->mu held). */
static void spawn(struct hs_server *s, const struct hs_conn *c)
{
	struct hs_pool *p = &s->pool;
	pthread_t t;

	if ((p->starting && p->nthreads) || p->nthreads >= p->max || (is_short(c) && p->nthreads >= POOL_SHORT_MAX))
		return;
	p->nthreads++;
	p->starting = 1;
	if (pthread_create(&t, &s->attr, worker_main, s) != 0) {
		p->nthreads--;
		p->starting = 0;
	}
}

static void *worker_main(void *arg)
{
	struct hs_server *s = arg;
	struct hs_pool *p = &s->pool;

	pthread_mutex_lock(&p->mu);
	p->starting = 0;
	for (;;) {
		struct hs_conn *c;

		while (!p->head && !p->stop) {
			struct timespec ts;
			int rc;

			abs_time(&ts, (uint64_t)clock_mono_ms() +
					   (p->nthreads > POOL_SHORT_MAX ? POOL_BURST_IDLE_MS : POOL_IDLE_MS));
			p->nidle++;
			rc = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
			p->nidle--;
			if (rc == ETIMEDOUT && !p->head && p->nthreads > POOL_MIN)
				goto out;
		}
		if (!p->head)
			break;             /* stopped */
		c = p->head;
		if (c->qnext && !p->nidle)
			spawn(s, c->qnext);     /* more wait, nobody takes them */
		p->head = c->qnext;
		if (!p->head)
			p->tail = NULL;
		c->qnext = NULL;
		p->queued--;
		pthread_mutex_unlock(&p->mu);
		run_job(c);
		pthread_mutex_lock(&p->mu);
	}
out:
	p->nthreads--;
	pthread_cond_broadcast(&p->gone);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int hs_pool_submit(struct hs_server *s, struct hs_conn *c)
{
	struct hs_pool *p = &s->pool;

	pthread_mutex_lock(&p->mu);
	c->qnext = NULL;
	if (p->tail)
		p->tail->qnext = c;
	else
		p->head = c;
	p->tail = c;
	p->queued++;
	if (p->nidle < p->queued)
		spawn(s, c);
	if (p->nthreads == 0) {
		/* no worker and none can start: take c back out (it is the tail,
		 * and alone, since every queued job had a worker) */
		p->head = p->tail = NULL;
		p->queued = 0;
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int hs_pool_stop(struct hs_server *s, uint64_t deadline)
{
	struct hs_pool *p = &s->pool;
	int left = 0;

	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	while (p->nthreads > 0) {
		struct timespec ts;

		abs_time(&ts, deadline);
		if (pthread_cond_timedwait(&p->gone, &p->mu, &ts) == ETIMEDOUT && p->nthreads > 0) {
			left = 1;
			break;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return left;
}
