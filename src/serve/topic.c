/*
 * topic.c: see topic.h.
 *
 * A topic is a ring of frame pointers guarded by one mutex, with a
 * condition variable the reader broadcasts on each new frame.  Frames are
 * refcounted with atomics so a stream can write one to its socket without
 * holding the lock, while the reader drops it from the ring.  A parked
 * stream (no thread waiting on the condition variable) subscribes
 * instead: the reader calls its wake-up after each frame, under the lock.  The registry
 * is a short list under its own mutex; the reader thread is detached and
 * frees its topic when it stops, which happens when the last stream left
 * (the topic is out of the registry by then, so nobody can join it).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/follow.h"
#include "task/record.h"
#include "serve/sseframe.h"
#include "serve/topic.h"
#include "util/log.h"

#define DEFAULT_WINDOW 4096
#define WINDOW_BYTES (16u << 20)
#define IDLE_POLL_MAX_MS 2000
#define WATCH_SLICE_MS 250
#define WATCH_RECHECK_MS 30000             /* a quiet watched task is listed this often */

struct topic_frame {
	int refs;
	uint64_t id;                       /* 0: the closing events */
	size_t len;
	char data[];
};

struct topic {
	struct topics *reg;
	struct topic *next_t;
	char task_id[256];
	int users;                         /* under reg->mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct topic_frame **win;
	size_t cap, bytes;
	uint64_t first, next;              /* ids in the window: [first, next) */
	struct topic_frame *final;         /* the closing events, once terminal */
	int stop;
	struct topic_sub *subs;            /* woken on each frame (under mu) */
};

struct topics {
	pthread_mutex_t mu;
	pthread_cond_t gone;               /* signalled as each reader exits */
	int readers;                       /* reader threads still running */
	struct storage *st;
	size_t window;
	struct topic *list;
};

static struct topic_frame *frame_new(uint64_t id, const char *data, size_t len)
{
	struct topic_frame *f = malloc(sizeof(*f) + len);

	if (!f)
		return NULL;
	f->refs = 1;
	f->id = id;
	f->len = len;
	memcpy(f->data, data, len);
	return f;
}

void topic_frame_put(struct topic_frame *f)
{
	if (f && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(f);
}

const char *topic_frame_data(const struct topic_frame *f, size_t *len)
{
	*len = f->len;
	return f->data;
}

uint64_t topic_frame_id(const struct topic_frame *f)
{
	return f->id;
}

/* ---- the reader ---- */

/* Tell the subscribers something new is there (t->mu held). */
static void wake_subs(struct topic *t)
{
	struct topic_sub *s;

	for (s = t->subs; s; s = s->next)
		s->wake(s->arg);
}

/* Add a frame at the window's end, dropping the oldest past its bounds. */
static void push(struct topic *t, struct topic_frame *f)
{
	pthread_mutex_lock(&t->mu);
	while (t->next > t->first && (t->next - t->first >= t->cap || t->bytes + f->len > WINDOW_BYTES)) {
		struct topic_frame **slot = &t->win[t->first % t->cap];
		t->bytes -= (*slot)->len;
		topic_frame_put(*slot);
		*slot = NULL;
		t->first++;
	}
	t->win[t->next % t->cap] = f;
	t->bytes += f->len;
	t->next++;
	pthread_cond_broadcast(&t->cv);
	wake_subs(t);
	pthread_mutex_unlock(&t->mu);
}

static int on_line(void *arg, uint64_t id, const char *line, size_t n)
{
	struct topic *t = arg;
	struct buf b = BUF_INIT;
	struct topic_frame *f;

	if (sf_frame(&b, id, line, n) != 0 || !(f = frame_new(id, b.p, b.len))) {
		buf_free(&b);
		return -1;
	}
	buf_free(&b);
	push(t, f);
	return 0;
}

static int stopping(struct topic *t)
{
	int s;

	pthread_mutex_lock(&t->mu);
	s = t->stop;
	pthread_mutex_unlock(&t->mu);
	return s;
}

/* The CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Sleep up to ms, or until topic_leave stops the reader. */
static void pause_ms(struct topic *t, int ms)
{
	struct timespec ts;

	deadline_in(&ts, ms);
	pthread_mutex_lock(&t->mu);
	if (!t->stop)
		pthread_cond_timedwait(&t->cv, &t->mu, &ts);
	pthread_mutex_unlock(&t->mu);
}

/* Until the watch has news (1), or WATCH_SLICE_MS passed (0: time to
 * look at topic_leave); the news are taken, and the watch re-armed, by
 * storage_watch_keys. */
static int wait_watch(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, WATCH_SLICE_MS) > 0;
}

/* The task is over: the closing events become the last frame. */
static int finish(struct topic *t, const cJSON *meta)
{
	struct buf b = BUF_INIT;
	struct topic_frame *f;

	if (sf_final(&b, meta) != 0 || !(f = frame_new(0, b.p ? b.p : "", b.len))) {
		buf_free(&b);
		return -1;
	}
	buf_free(&b);
	pthread_mutex_lock(&t->mu);
	t->final = f;
	pthread_cond_broadcast(&t->cv);
	wake_subs(t);
	pthread_mutex_unlock(&t->mu);
	return 0;
}

static void topic_free(struct topic *t)
{
	size_t i;

	for (i = 0; i < t->cap; i++)
		topic_frame_put(t->win[i]);
	topic_frame_put(t->final);
	free(t->win);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}

/* When the task is terminal: read what is left, render the closing
 * events; 1 then (the reader is done), else 0. */
static int ended(struct topic *t, struct follow *f, struct err *e)
{
	cJSON *meta = follow_metadata(f, e);
	int done = tr_meta_terminal(meta) && follow_poll(f, on_line, t, e) >= 0 && finish(t, meta) == 0;

	cJSON_Delete(meta);
	return done;
}

/* Cloud mode (no watch): list after the last chunk, fast while lines
 * flow, backing off to IDLE_POLL_MAX_MS. */
static void read_polling(struct topic *t, struct follow *f)
{
	struct err e = ERR_INIT;
	int idle = 50;

	while (!stopping(t)) {
		if (follow_poll(f, on_line, t, &e) > 0) {
			idle = 50;
			continue;
		}
		if (ended(t, f, &e))
			break;
		pause_ms(t, idle);
		idle = idle * 2 > IDLE_POLL_MAX_MS ? IDLE_POLL_MAX_MS : idle * 2;
	}
}

/* Take the keys the watch named: chunks are read (follow_take), the
 * metadata sets *meta.  0, or non-zero when the names were lost or a
 * read failed: the caller lists then. */
static int take_keys(struct topic *t, struct follow *f, int watch, const char *meta_key, int *meta)
{
	struct err e = ERR_INIT;
	char **keys;
	size_t n, i;
	int rc = storage_watch_keys(f->st, watch, &keys, &n);

	for (i = 0; i < n; i++) {
		if (strcmp(keys[i], meta_key) == 0)
			*meta = 1;
		else if (rc == 0 && follow_take(f, keys[i], on_line, t, &e) < 0)
			rc = -1;
	}
	storage_keys_free(keys, n);
	return rc;
}

/* Local mode: the watch names each new object, so a chunk is read
 * without listing; the prefix is listed at the start (what was there
 * before the watch), when names were lost, once at the end, and after
 * WATCH_RECHECK_MS without news (should the watch have gone deaf: its
 * directory replaced).  The metadata is read when it changes (it lives
 * under the same prefix) and with each listing. */
static void read_watched(struct topic *t, struct follow *f, int watch)
{
	struct err e = ERR_INIT;
	char meta_key[TR_KEY_MAX];
	int list = 1, meta = 1, quiet = 0;

	tr_key_metadata(meta_key, t->task_id);
	while (!stopping(t)) {
		if (list) {
			list = follow_poll(f, on_line, t, &e) < 0;
			meta = 1;
		}
		if (meta && ended(t, f, &e))
			break;
		meta = 0;
		if (wait_watch(watch)) {
			quiet = 0;
		} else if ((quiet += WATCH_SLICE_MS) >= WATCH_RECHECK_MS) {
			list = 1;
			quiet = 0;
		}
		list |= take_keys(t, f, watch, meta_key, &meta) != 0;
	}
}

static void *reader_main(void *arg)
{
	struct topic *t = arg;
	struct storage *st = t->reg->st;
	struct follow f;
	char prefix[TR_KEY_MAX];
	int watch;

	follow_init(&f, st, t->task_id, 0);
	tr_key_logs(prefix, t->task_id);
	watch = storage_can_watch(st) ? storage_watch(st, prefix) : -1;
	if (watch >= 0)
		read_watched(t, &f, watch);
	else
		read_polling(t, &f);
	if (watch >= 0)
		storage_unwatch(st, watch);
	slog(SLOG_DEBUG, "topic %s: reader stopped after %llu lines in %llu chunks, %llu listings (%s)", t->task_id,
	     (unsigned long long)f.line_no, (unsigned long long)f.chunks, (unsigned long long)f.lists,
	     watch >= 0 ? "watched" : "polled");
	/* Still in the registry while streams follow: wait for the last one. */
	pthread_mutex_lock(&t->mu);
	while (!t->stop)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	{
		struct topics *r = t->reg;
		topic_free(t);
		pthread_mutex_lock(&r->mu);
		r->readers--;
		pthread_cond_broadcast(&r->gone);
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* ---- the registry ---- */

struct topics *topics_new(struct storage *st, size_t window)
{
	struct topics *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->gone, NULL);
	r->st = st;
	r->window = window ? window : DEFAULT_WINDOW;
	return r;
}

void topics_free(struct topics *r)
{
	if (!r)
		return;
	/* Every stream has ended, so every reader was told to stop: wait
	 * until none uses the storage any more. */
	pthread_mutex_lock(&r->mu);
	while (r->readers > 0)
		pthread_cond_wait(&r->gone, &r->mu);
	pthread_mutex_unlock(&r->mu);
	pthread_cond_destroy(&r->gone);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static struct topic *topic_new(struct topics *r, const char *task_id)
{
	struct topic *t = calloc(1, sizeof(*t));
	pthread_attr_t a;
	pthread_t th;
	int rc;

	if (!t || !(t->win = calloc(r->window, sizeof(*t->win)))) {
		free(t);
		return NULL;
	}
	t->reg = r;
	t->cap = r->window;
	t->first = t->next = 1;
	snprintf(t->task_id, sizeof(t->task_id), "%s", task_id);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 256u << 10);
	rc = pthread_create(&th, &a, reader_main, t);
	pthread_attr_destroy(&a);
	if (rc != 0) {
		topic_free(t);
		return NULL;
	}
	r->readers++;                      /* under r->mu (topic_join) */
	return t;
}

struct topic *topic_join(struct topics *r, const char *task_id)
{
	struct topic *t;

	pthread_mutex_lock(&r->mu);
	for (t = r->list; t && strcmp(t->task_id, task_id) != 0; t = t->next_t)
		;
	if (!t && (t = topic_new(r, task_id))) {
		t->next_t = r->list;
		r->list = t;
	}
	if (t)
		t->users++;
	pthread_mutex_unlock(&r->mu);
	return t;
}

void topic_leave(struct topics *r, struct topic *t)
{
	struct topic **p;
	int last;

	pthread_mutex_lock(&r->mu);
	last = --t->users == 0;
	if (last)
		for (p = &r->list; *p; p = &(*p)->next_t)
			if (*p == t) {
				*p = t->next_t;
				break;
			}
	pthread_mutex_unlock(&r->mu);
	if (!last)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = 1;                       /* the reader frees it */
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

/* ---- a stream's view ---- */

void topic_subscribe(struct topic *t, struct topic_sub *s)
{
	pthread_mutex_lock(&t->mu);
	s->next = t->subs;
	t->subs = s;
	pthread_mutex_unlock(&t->mu);
}

void topic_unsubscribe(struct topic *t, struct topic_sub *s)
{
	struct topic_sub **p;

	pthread_mutex_lock(&t->mu);
	for (p = &t->subs; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	pthread_mutex_unlock(&t->mu);
}

uint64_t topic_first(struct topic *t)
{
	uint64_t v;

	pthread_mutex_lock(&t->mu);
	v = t->first;
	pthread_mutex_unlock(&t->mu);
	return v;
}

enum topic_wait topic_next(struct topic *t, uint64_t want, int live, int ms, struct topic_frame **out)
{
	struct timespec ts;
	enum topic_wait r = TOPIC_TIMEOUT;

	*out = NULL;
	if (ms > 0)
		deadline_in(&ts, ms);
	pthread_mutex_lock(&t->mu);
	for (;;) {
		if (want < t->first) {
			r = live ? TOPIC_BEHIND : TOPIC_HISTORY;
			break;
		}
		if (want < t->next) {
			*out = t->win[want % t->cap];
			__atomic_add_fetch(&(*out)->refs, 1, __ATOMIC_ACQ_REL);
			r = TOPIC_FRAME;
			break;
		}
		if (t->final) {
			*out = t->final;
			__atomic_add_fetch(&(*out)->refs, 1, __ATOMIC_ACQ_REL);
			r = TOPIC_ENDED;
			break;
		}
		if (ms <= 0 || pthread_cond_timedwait(&t->cv, &t->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&t->mu);
	return r;
}
