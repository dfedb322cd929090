/*
 * logsink.c: see logsink.h.  One mutex guards the pending buffer; the
 * flusher thread waits on a condition variable with a timeout, so a line
 * wakes it at once.  It stores at once when the buffer reaches 100 lines,
 * or when the last store is at least the interval old; otherwise when the
 * interval since the last store has passed.  So a line after a quiet
 * spell goes out immediately, a steady stream goes out at most once per
 * interval, and a trickle is never held back until 100 lines piled up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "task/logsink.h"
#include "task/record.h"
#include "util/clock.h"

#define LINES_PER_CHUNK 100
#define CHUNK_BYTES (1 << 20)            /* a chunk is cut here too (one longer line: alone) */

struct logsink {
	struct storage *st;
	char task[256];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	struct buf pending;              /* lines, each ending in '\n' */
	size_t pending_lines, total_lines;
	unsigned chunk;                  /* index of the last stored chunk */
	int interval_ms, closing, stopped, failures, given_up;
	long give_up_ms;                 /* failing this long: give up (0: never) */
	int64_t failing_since;           /* clock_mono_ms() of the first failure of the current streak */
	void (*on_give_up)(void *arg);
	void *give_up_arg;
	struct timespec last_line;
	struct timespec first_pending;   /* arrival of the oldest pending line */
	struct timespec last_store;      /* when the last chunk was stored (0: never) */
	struct err last_err;
};

static void now_plus(struct timespec *ts, const struct timespec *from, int ms)
{
	*ts = *from;
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Store the pending lines as the next chunk (called without the mutex
 * held, with a private copy).  0 or -1. */
static int store_chunk(struct logsink *ls, unsigned index, const struct buf *data, struct err *e)
{
	struct storage_put_opts opts = { "application/x-ndjson", NULL, 0 };
	char key[TR_KEY_MAX], stamp[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	return storage_put(ls->st, tr_key_chunk(key, ls->task, index, stamp), data->p, data->len, &opts, e);
}

/* Storage that has failed for give_up_ms is not coming back in time: say
 * so once (the job then ends the task), and stop retrying. */
static void check_give_up(struct logsink *ls)
{
	long ms;

	if (ls->given_up || ls->give_up_ms <= 0)
		return;
	ms = (long)(clock_mono_ms() - ls->failing_since);
	if (ms < ls->give_up_ms)
		return;
	ls->given_up = 1;
	if (ls->on_give_up)
		ls->on_give_up(ls->give_up_arg);
}

/* Take the pending buffer and store it, retrying with backoff on failure.
 * Called with the mutex held; drops it while uploading. */
static void flush_locked(struct logsink *ls)
{
	struct buf data = BUF_INIT;
	size_t lines = 0, cut = 0;
	struct err e = ERR_INIT;
	int rc;

	if (ls->pending_lines == 0)
		return;
	/* At most LINES_PER_CHUNK lines, and about CHUNK_BYTES, go into one
	 * chunk, so that a reader never has to hold much more at once. */
	while (lines < LINES_PER_CHUNK && cut < ls->pending.len && (lines == 0 || cut < CHUNK_BYTES)) {
		const char *nl = memchr(ls->pending.p + cut, '\n', ls->pending.len - cut);
		cut = (size_t)(nl - ls->pending.p) + 1;
		lines++;
	}
	if (buf_add(&data, ls->pending.p, cut) != 0)
		return;
	memmove(ls->pending.p, ls->pending.p + cut, ls->pending.len - cut);
	ls->pending.len -= cut;
	ls->pending.p[ls->pending.len] = 0;
	ls->pending_lines -= lines;
	pthread_mutex_unlock(&ls->mu);
	rc = store_chunk(ls, ls->chunk + 1, &data, &e);
	pthread_mutex_lock(&ls->mu);
	if (rc == 0) {
		ls->chunk++;
		ls->failures = 0;
		clock_gettime(CLOCK_REALTIME, &ls->last_store);
		buf_free(&data);
		return;
	}
	/* Put the lines back in front of anything that arrived meanwhile. */
	if (ls->failures++ == 0)
		ls->failing_since = clock_mono_ms();
	ls->last_err = e;
	check_give_up(ls);
	if (buf_add(&data, ls->pending.p, ls->pending.len) == 0) {
		buf_free(&ls->pending);
		ls->pending = data;
		ls->pending_lines += lines;
	} else {
		buf_free(&data);   /* out of memory: these lines are lost */
	}
}

static int backoff_ms(int failures)
{
	int ms = 200 << (failures < 7 ? failures : 7);

	return ms > 20000 ? 20000 : ms;
}

static void *flusher(void *arg)
{
	struct logsink *ls = arg;
	struct timespec due;

	pthread_mutex_lock(&ls->mu);
	while (!ls->stopped) {
		if (ls->pending_lines == 0 && !ls->closing) {
			pthread_cond_wait(&ls->cv, &ls->mu);
			continue;
		}
		if (ls->pending_lines < LINES_PER_CHUNK && ls->pending.len < CHUNK_BYTES && !ls->closing) {
			if (ls->failures)
				now_plus(&due, &ls->last_line, backoff_ms(ls->failures));
			else
				now_plus(&due, &ls->last_store, ls->interval_ms);
			if (pthread_cond_timedwait(&ls->cv, &ls->mu, &due) != ETIMEDOUT)
				continue;
		}
		if (ls->given_up && !ls->closing) {
			pthread_cond_wait(&ls->cv, &ls->mu);
			continue;
		}
		flush_locked(ls);
		if (ls->failures && !ls->stopped) {
			clock_gettime(CLOCK_REALTIME, &ls->last_line);
			now_plus(&due, &ls->last_line, backoff_ms(ls->failures));
			pthread_cond_timedwait(&ls->cv, &ls->mu, &due);
		}
		if (ls->closing && ls->pending_lines == 0)
			break;
	}
	pthread_mutex_unlock(&ls->mu);
	return NULL;
}

/* The highest chunk index already stored for the task (0: none), so that
 * a second job on one task (a retried attempt) never overwrites a chunk
 * of the first.  A listing that fails counts as none. */
static unsigned last_stored_chunk(struct storage *st, const char *task_id)
{
	struct storage_list l;
	struct err e = ERR_INIT;
	char prefix[TR_KEY_MAX];
	unsigned best = 0;
	size_t i;
	int width;

	if (storage_list(st, tr_key_logs(prefix, task_id), NULL, &l, &e) != 0)
		return 0;
	for (i = 0; i < l.n; i++) {
		long v = tr_chunk_index(prefix, l.items[i].key, &width);
		if (v > (long)best && v < 100000000L)
			best = (unsigned)v;
	}
	storage_list_free(&l);
	return best;
}

struct logsink *logsink_open(struct storage *st, const char *task_id, int interval_ms, struct err *e)
{
	struct logsink *ls = calloc(1, sizeof(*ls));
	pthread_condattr_t ca;

	if (!ls) {
		err_set(e, "out of memory");
		return NULL;
	}
	ls->st = st;
	snprintf(ls->task, sizeof(ls->task), "%s", task_id);
	ls->chunk = last_stored_chunk(st, task_id);
	ls->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	pthread_mutex_init(&ls->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_REALTIME);
	pthread_cond_init(&ls->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&ls->thread, NULL, flusher, ls) != 0) {
		pthread_mutex_destroy(&ls->mu);
		pthread_cond_destroy(&ls->cv);
		free(ls);
		err_set(e, "cannot start the log writer thread");
		return NULL;
	}
	return ls;
}

int logsink_line(struct logsink *ls, const char *line, size_t n)
{
	size_t i;
	int rc;

	for (i = 0; i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
		;
	if (i == n)
		return 0;
	pthread_mutex_lock(&ls->mu);
	rc = buf_add(&ls->pending, line, n) || buf_addc(&ls->pending, '\n') ? -1 : 0;
	if (rc == 0) {
		clock_gettime(CLOCK_REALTIME, &ls->last_line);
		if (ls->pending_lines++ == 0)
			ls->first_pending = ls->last_line;
		ls->total_lines++;
		pthread_cond_signal(&ls->cv);
	}
	pthread_mutex_unlock(&ls->mu);
	return rc;
}

int logsink_close(struct logsink *ls, int deadline_ms, struct err *e)
{
	int64_t start = clock_mono_ms();
	int rc = 0;

	pthread_mutex_lock(&ls->mu);
	ls->closing = 1;
	pthread_cond_signal(&ls->cv);
	if (ls->given_up && deadline_ms > 2000)
		deadline_ms = 2000;          /* one last try, not another long wait */
	while (ls->pending_lines > 0) {
		pthread_mutex_unlock(&ls->mu);
		if (clock_mono_ms() - start > deadline_ms) {
			pthread_mutex_lock(&ls->mu);
			break;
		}
		struct timespec nap = { 0, 20 * 1000000L };
		nanosleep(&nap, NULL);
		pthread_mutex_lock(&ls->mu);
	}
	if (ls->pending_lines > 0)
		rc = err_set(e, "%zu log lines could not be stored: %s", ls->pending_lines, ls->last_err.msg);
	ls->stopped = 1;
	pthread_cond_signal(&ls->cv);
	pthread_mutex_unlock(&ls->mu);
	pthread_join(ls->thread, NULL);
	buf_free(&ls->pending);
	pthread_mutex_destroy(&ls->mu);
	pthread_cond_destroy(&ls->cv);
	free(ls);
	return rc;
}

void logsink_set_give_up(struct logsink *ls, long after_ms, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&ls->mu);
	ls->give_up_ms = after_ms;
	ls->on_give_up = fn;
	ls->give_up_arg = arg;
	pthread_mutex_unlock(&ls->mu);
}

size_t logsink_lines(const struct logsink *ls)
{
	return ls->total_lines;
}

unsigned logsink_chunks(const struct logsink *ls)
{
	return ls->chunk;
}
