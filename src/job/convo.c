/*
 * convo.c: see convo.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "crypto/crypto.h"
#include "job/convo.h"
#include "util/clock.h"
#include "util/jsjson.h"
#include "util/log.h"

#define CV_WRITE_TIMEOUT_MS 10000
#define CV_POLL_LISTENING_MS 1000

int cv_user_line(struct buf *out, const char *text)
{
	int rc = buf_adds(out, "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":");

	if (rc == 0)
		rc = jsj_string(out, text, strlen(text));
	if (rc == 0)
		rc = buf_adds(out, "}]}}\n");
	return rc;
}

/* Close stdin (locked): the CLI finishes and exits. */
static void end_locked(struct cv_ctx *c, const char *why, int by_ccr)
{
	if (c->fd >= 0) {
		c->closed_by_ccr = by_ccr;
		close(c->fd);
		c->fd = -1;
		slog(SLOG_INFO, "conversation: stdin of the CLI closed (%s)", why);
	}
	c->ended = 1;
}

/* Write all of line to the CLI's stdin; 0, or -1 (stdin then closed). */
static int send_line(struct cv_ctx *c, const char *line, size_t n)
{
	int64_t deadline = clock_mono_ms() + CV_WRITE_TIMEOUT_MS;
	size_t off = 0;
	int fd;

	pthread_mutex_lock(&c->lock);
	fd = c->fd;
	pthread_mutex_unlock(&c->lock);
	if (fd < 0)
		return -1;
	while (off < n) {
		ssize_t w = write(fd, line + off, n - off);
		struct pollfd p = { fd, POLLOUT, 0 };

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (clock_mono_ms() >= deadline)
			break;
		(void)poll(&p, 1, 100);
	}
	if (off == n)
		return 0;
	pthread_mutex_lock(&c->lock);
	end_locked(c, "the CLI no longer reads its input", 0);
	pthread_mutex_unlock(&c->lock);
	return -1;
}

/* Act on one opened record (key: its id or inbox key, via: how it came). */
static void act(struct cv_ctx *c, const char *json, size_t n, const char *key, const char *via)
{
	cJSON *j = cJSON_ParseWithLength(json, n);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
	struct buf line = BUF_INIT;

	if (cJSON_IsString(type) && strcmp(type->valuestring, "message") == 0 && cJSON_IsString(text)) {
		if (cv_user_line(&line, text->valuestring) == 0 && send_line(c, line.p, line.len) == 0) {
			pthread_mutex_lock(&c->lock);
			c->messages++;
			c->waiting = 0;
			pthread_mutex_unlock(&c->lock);
			slog(SLOG_INFO, "conversation: message %s passed to the CLI (via %s)", key, via);
		}
	} else if (cJSON_IsString(type) && strcmp(type->valuestring, "interrupt") == 0) {
		/* Marked before the write: the CLI may answer (its result line,
		 * read on another thread) before send_line returns. */
		pthread_mutex_lock(&c->lock);
		c->interrupts++;
		c->interrupt_sent = 1;
		buf_printf(&line, "{\"type\":\"control_request\",\"request_id\":\"ccr-interrupt-%u\",\"request\":"
				  "{\"subtype\":\"interrupt\"}}\n", c->interrupts);
		pthread_mutex_unlock(&c->lock);
		if (line.p && send_line(c, line.p, line.len) == 0) {
			slog(SLOG_INFO, "conversation: interrupt %s passed to the CLI (via %s)", key, via);
		} else {
			pthread_mutex_lock(&c->lock);
			c->interrupt_sent = 0;
			pthread_mutex_unlock(&c->lock);
		}
	} else if (cJSON_IsString(type) && strcmp(type->valuestring, "end") == 0) {
		pthread_mutex_lock(&c->lock);
		end_locked(c, strcmp(via, "socket") == 0 ? "POST /tasks/:id/end, via socket"
							 : "POST /tasks/:id/end, via inbox", 1);
		pthread_mutex_unlock(&c->lock);
	} else {
		slog(SLOG_WARNING, "conversation: inbox object %s is not a message, interrupt or end; ignored", key);
	}
	if (line.p)
		cr_wipe(line.p, line.len);
	buf_free(&line);
	cJSON_Delete(j);
}

struct cv_direct {
	struct cv_direct *next;
	char id[CV_ID_MAX];
	struct buf plain;
};

static void direct_free(struct cv_direct *d)
{
	if (d->plain.p)
		cr_wipe(d->plain.p, d->plain.len);
	buf_free(&d->plain);
	free(d);
}

/* 1 when id was taken on the socket (locked). */
static int seen_locked(struct cv_ctx *c, const char *id)
{
	unsigned i;

	for (i = 0; i < CV_SEEN && i < c->nseen; i++)
		if (strcmp(c->seen[i], id) == 0)
			return 1;
	return 0;
}

/* The head of the direct queue, off the queue, when its id sorts before
 * `before` (NULL: any); else NULL. */
static struct cv_direct *pop_direct(struct cv_ctx *c, const char *before)
{
	struct cv_direct *d;

	pthread_mutex_lock(&c->lock);
	d = c->queue;
	if (d && (!before || strcmp(d->id, before) < 0))
		c->queue = d->next;
	else
		d = NULL;
	pthread_mutex_unlock(&c->lock);
	return d;
}

static int ended_now(struct cv_ctx *c)
{
	int ended;

	pthread_mutex_lock(&c->lock);
	ended = c->ended;
	pthread_mutex_unlock(&c->lock);
	return ended;
}

static void take_direct(struct cv_ctx *c, struct cv_direct *d)
{
	if (ended_now(c))
		slog(SLOG_WARNING, "conversation: %s arrived after the conversation ended; dropped", d->id);
	else
		act(c, d->plain.p ? d->plain.p : "", d->plain.len, d->id, "socket");
	direct_free(d);
}

/* Read, act on and delete one inbox object (id: its message id). */
static void take_inbox(struct cv_ctx *c, const char *key, const char *id)
{
	struct buf sealed = BUF_INIT, plain = BUF_INIT;
	struct err e = ERR_INIT;
	int ended = ended_now(c), dup;

	pthread_mutex_lock(&c->lock);
	dup = seen_locked(c, id);
	pthread_mutex_unlock(&c->lock);
	if (dup)
		slog(SLOG_INFO, "conversation: %s came on the socket already; its inbox copy is dropped", key);
	else if (!ended && storage_get(c->st, key, 0, &sealed, &e) == 0 &&
		 envelope_open(c->sealer, sealed.p, sealed.len, &plain, &e) == 0)
		act(c, plain.p ? plain.p : "", plain.len, key, "inbox");
	else if (!ended)
		slog(SLOG_WARNING, "conversation: cannot read %s: %s", key, e.msg);
	else
		slog(SLOG_WARNING, "conversation: %s arrived after the conversation ended; dropped", key);
	if (storage_delete(c->st, key, &e) != 0)
		slog(SLOG_WARNING, "conversation: cannot delete %s: %s", key, e.msg);
	if (plain.p)
		cr_wipe(plain.p, plain.len);
	buf_free(&plain);
	buf_free(&sealed);
}

/* The message id of an inbox key: inbox/<task>/<id>.enc. */
static void id_of_key(const struct cv_ctx *c, const char *key, char *id, size_t n)
{
	size_t pl = strlen(c->prefix), kl = strlen(key);
	size_t il = kl > pl + 4 ? kl - pl - 4 : 0;

	snprintf(id, n, "%.*s", (int)il, il ? key + pl : "");
}

/* Act on the inbox's objects and the queued direct records, merged in id
 * order; nothing before the CLI's stdin is there. */
static void pass(struct cv_ctx *c)
{
	struct storage_list l;
	struct err e = ERR_INIT;
	size_t i = 0;
	int started;

	pthread_mutex_lock(&c->lock);
	started = c->fd >= 0 || c->ended;
	pthread_mutex_unlock(&c->lock);
	if (!started || storage_list(c->st, c->prefix, NULL, &l, &e) != 0)
		return;
	for (;;) {
		const char *key = i < l.n ? l.items[i].key : NULL;
		char id[CV_ID_MAX + 8] = "";
		struct cv_direct *d;

		if (key)
			id_of_key(c, key, id, sizeof(id));
		if ((d = pop_direct(c, key ? id : NULL))) {
			take_direct(c, d);
			continue;
		}
		if (!key)
			break;
		take_inbox(c, key, id);
		i++;
	}
	storage_list_free(&l);
}

/* msgsock's take: open a frame; queue it (by id) for the thread. */
static int take_frame(void *arg, const uint8_t *frame, size_t n)
{
	struct cv_ctx *c = arg;
	struct err e = ERR_INIT;
	struct cv_direct *d = calloc(1, sizeof(*d)), **pp;
	cJSON *j = NULL;
	const cJSON *id, *task;

	if (!d || envelope_open(c->sealer, frame, n, &d->plain, &e) != 0 ||
	    !(j = cJSON_ParseWithLength(d->plain.p, d->plain.len))) {
		slog(SLOG_WARNING, "conversation: refused a record on the message socket: %s",
			 e.msg[0] ? e.msg : "not a sealed JSON record");
		if (d)
			direct_free(d);
		return -1;
	}
	id = cJSON_GetObjectItemCaseSensitive(j, "id");
	task = cJSON_GetObjectItemCaseSensitive(j, "taskId");
	if (!cJSON_IsString(id) || !id->valuestring[0] || strlen(id->valuestring) >= CV_ID_MAX ||
	    !cJSON_IsString(task) || strcmp(task->valuestring, c->task_id) != 0) {
		slog(SLOG_WARNING, "conversation: refused a record on the message socket: no id, or another task's");
		cJSON_Delete(j);
		direct_free(d);
		return -1;
	}
	snprintf(d->id, sizeof(d->id), "%s", id->valuestring);
	cJSON_Delete(j);
	pthread_mutex_lock(&c->lock);
	if (seen_locked(c, d->id)) {
		pthread_mutex_unlock(&c->lock);
		direct_free(d);                /* serve sent it again: taken once */
		return 0;
	}
	snprintf(c->seen[c->nseen++ % CV_SEEN], CV_ID_MAX, "%s", d->id);
	for (pp = &c->queue; *pp && strcmp((*pp)->id, d->id) <= 0; pp = &(*pp)->next)
		;
	d->next = *pp;
	*pp = d;
	pthread_mutex_unlock(&c->lock);
	if (write(c->wake[1], "x", 1) < 0) {
		/* the pipe is full: the thread is awake anyway */
	}
	return 0;
}

static void check_idle(struct cv_ctx *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->fd >= 0 && c->waiting && clock_mono_ms() - c->result_at >= c->idle_after_ms)
		end_locked(c, "no message within idleAfterResultSeconds of the last result", 1);
	pthread_mutex_unlock(&c->lock);
}

static void *cv_main(void *arg)
{
	struct cv_ctx *c = arg;
	char drainbuf[16];

	for (;;) {
		struct pollfd p = { c->wake[0], POLLIN, 0 };
		int stop;
		long poll_ms;

		pthread_mutex_lock(&c->lock);
		poll_ms = c->poll_ms;
		pthread_mutex_unlock(&c->lock);
		(void)poll(&p, 1, (int)poll_ms);
		if (p.revents && read(c->wake[0], drainbuf, sizeof(drainbuf)) < 0 && errno != EAGAIN)
			break;
		pthread_mutex_lock(&c->lock);
		stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		pass(c);
		check_idle(c);
	}
	return NULL;
}

/* Local mode: take records on the task's socket too (task/msgsock.h). */
static void listen_direct(struct cv_ctx *c, const char *data_dir)
{
	struct err e = ERR_INIT;

	if (msk_listen(&c->ms, data_dir, c->task_id, take_frame, c, &e) != 0) {
		slog(SLOG_WARNING, "conversation: messages come through the inbox only: %s", e.msg);
		return;
	}
	c->ms_on = 1;
	if (c->poll_ms < CV_POLL_LISTENING_MS)
		c->poll_ms = CV_POLL_LISTENING_MS;
	slog(SLOG_INFO, "conversation: listening for messages on %s/%s", c->ms.dir, c->ms.name);
}

int cv_start(struct cv_ctx *c, struct storage *st, struct sealer *s, const char *task_id, long idle_after_ms,
	     long poll_ms, const char *data_dir, struct err *e)
{
	memset(c, 0, sizeof(*c));
	c->st = st;
	c->sealer = s;
	c->fd = -1;
	c->idle_after_ms = idle_after_ms;
	c->poll_ms = poll_ms > 0 ? poll_ms : 1000;
	snprintf(c->task_id, sizeof(c->task_id), "%s", task_id);
	tr_key_inbox(c->prefix, task_id);
	if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) != 0)
		return err_set(e, "cannot create a pipe for the conversation: %s", strerror(errno));
	pthread_mutex_init(&c->lock, NULL);
	if (data_dir)
		listen_direct(c, data_dir);
	if (pthread_create(&c->th, NULL, cv_main, c) != 0) {
		if (c->ms_on)
			msk_close(&c->ms);
		close(c->wake[0]), close(c->wake[1]);
		pthread_mutex_destroy(&c->lock);
		return err_set(e, "cannot start the conversation thread");
	}
	c->th_on = 1;
	return 0;
}

void cv_stdin(struct cv_ctx *c, int fd)
{
	pthread_mutex_lock(&c->lock);
	c->fd = fd;
	pthread_mutex_unlock(&c->lock);
	if (write(c->wake[1], "x", 1) < 0) {
		/* the thread looks at the next poll anyway */
	}
}

void cv_line(struct cv_ctx *c, const char *line, size_t n)
{
	cJSON *j = cJSON_ParseWithLength(line, n);
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");

	if (cJSON_IsString(type)) {
		pthread_mutex_lock(&c->lock);
		if (strcmp(type->valuestring, "result") == 0) {
			c->waiting = 1;
			c->result_at = clock_mono_ms();
			c->last_interrupted = c->interrupt_sent;
			c->interrupt_sent = 0;
		} else if (strcmp(type->valuestring, "system") != 0 &&
			   strcmp(type->valuestring, "control_response") != 0) {
			c->waiting = 0;
		}
		pthread_mutex_unlock(&c->lock);
	}
	cJSON_Delete(j);
}

void cv_stop(struct cv_ctx *c)
{
	struct cv_direct *d;
	struct storage_list l;
	struct err e = ERR_INIT;
	size_t i;

	if (!c->th_on)
		return;
	if (c->ms_on)
		msk_close(&c->ms);             /* serve now uses the inbox, emptied below */
	c->ms_on = 0;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_mutex_unlock(&c->lock);
	if (write(c->wake[1], "x", 1) < 0) {
		/* the thread sees stop at its next poll */
	}
	pthread_join(c->th, NULL);
	c->th_on = 0;
	pthread_mutex_lock(&c->lock);
	end_locked(c, "the run ended", 0);
	pthread_mutex_unlock(&c->lock);
	while ((d = pop_direct(c, NULL))) {
		slog(SLOG_WARNING, "conversation: %s arrived after the conversation ended; dropped", d->id);
		direct_free(d);
	}
	close(c->wake[0]), close(c->wake[1]);
	pthread_mutex_destroy(&c->lock);
	if (storage_list(c->st, c->prefix, NULL, &l, &e) == 0) {
		for (i = 0; i < l.n; i++)
			if (storage_delete(c->st, l.items[i].key, &e) != 0)
				slog(SLOG_WARNING, "conversation: cannot delete %s: %s", l.items[i].key, e.msg);
		storage_list_free(&l);
	}
}

int cv_ended_on_interrupt(struct cv_ctx *c)
{
	int r;

	pthread_mutex_lock(&c->lock);
	r = c->closed_by_ccr && c->last_interrupted;
	pthread_mutex_unlock(&c->lock);
	return r;
}
