/*
 * convo.c: see convo.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "crypto/crypto.h"
#include "job/convo.h"
#include "job/task_int.h"
#include "util/clock.h"
#include "util/jsjson.h"

#define CV_WRITE_TIMEOUT_MS 10000

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
		task_log("INFO", "conversation: stdin of the CLI closed (%s)", why);
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

/* Act on one opened inbox message. */
static void act(struct cv_ctx *c, const char *json, size_t n, const char *key)
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
			task_log("INFO", "conversation: message %s passed to the CLI", key);
		}
	} else if (cJSON_IsString(type) && strcmp(type->valuestring, "interrupt") == 0) {
		pthread_mutex_lock(&c->lock);
		c->interrupts++;
		buf_printf(&line, "{\"type\":\"control_request\",\"request_id\":\"ccr-interrupt-%u\",\"request\":"
				  "{\"subtype\":\"interrupt\"}}\n", c->interrupts);
		pthread_mutex_unlock(&c->lock);
		if (line.p && send_line(c, line.p, line.len) == 0) {
			pthread_mutex_lock(&c->lock);
			c->interrupt_sent = 1;
			pthread_mutex_unlock(&c->lock);
			task_log("INFO", "conversation: interrupt %s passed to the CLI", key);
		}
	} else if (cJSON_IsString(type) && strcmp(type->valuestring, "end") == 0) {
		pthread_mutex_lock(&c->lock);
		end_locked(c, "POST /tasks/:id/end", 1);
		pthread_mutex_unlock(&c->lock);
	} else {
		task_log("WARNING", "conversation: inbox object %s is not a message, interrupt or end; ignored", key);
	}
	if (line.p)
		cr_wipe(line.p, line.len);
	buf_free(&line);
	cJSON_Delete(j);
}

/* Read, act on and delete the inbox's objects, oldest first. */
static void drain(struct cv_ctx *c)
{
	struct storage_list l;
	struct err e = ERR_INIT;
	size_t i;
	int started, ended;

	pthread_mutex_lock(&c->lock);
	started = c->fd >= 0 || c->ended;
	ended = c->ended;
	pthread_mutex_unlock(&c->lock);
	if (!started || storage_list(c->st, c->prefix, NULL, &l, &e) != 0)
		return;
	for (i = 0; i < l.n; i++) {
		struct buf sealed = BUF_INIT, plain = BUF_INIT;
		const char *key = l.items[i].key;

		if (!ended && storage_get(c->st, key, 0, &sealed, &e) == 0 &&
		    envelope_open(c->sealer, sealed.p, sealed.len, &plain, &e) == 0)
			act(c, plain.p ? plain.p : "", plain.len, key);
		else if (!ended)
			task_log("WARNING", "conversation: cannot read %s: %s", key, e.msg);
		else
			task_log("WARNING", "conversation: %s arrived after the conversation ended; dropped", key);
		if (storage_delete(c->st, key, &e) != 0)
			task_log("WARNING", "conversation: cannot delete %s: %s", key, e.msg);
		if (plain.p)
			cr_wipe(plain.p, plain.len);
		buf_free(&plain);
		buf_free(&sealed);
		pthread_mutex_lock(&c->lock);
		ended = c->ended;
		pthread_mutex_unlock(&c->lock);
	}
	storage_list_free(&l);
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

		(void)poll(&p, 1, (int)c->poll_ms);
		if (p.revents && read(c->wake[0], drainbuf, sizeof(drainbuf)) < 0 && errno != EAGAIN)
			break;
		pthread_mutex_lock(&c->lock);
		stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		drain(c);
		check_idle(c);
	}
	return NULL;
}

int cv_start(struct cv_ctx *c, struct storage *st, struct sealer *s, const char *task_id, long idle_after_ms,
	     long poll_ms, struct err *e)
{
	memset(c, 0, sizeof(*c));
	c->st = st;
	c->sealer = s;
	c->fd = -1;
	c->idle_after_ms = idle_after_ms;
	c->poll_ms = poll_ms > 0 ? poll_ms : 1000;
	snprintf(c->prefix, sizeof(c->prefix), "inbox/%s/", task_id);
	if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) != 0)
		return err_set(e, "cannot create a pipe for the conversation: %s", strerror(errno));
	pthread_mutex_init(&c->lock, NULL);
	if (pthread_create(&c->th, NULL, cv_main, c) != 0) {
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
	struct storage_list l;
	struct err e = ERR_INIT;
	size_t i;

	if (!c->th_on)
		return;
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
	close(c->wake[0]), close(c->wake[1]);
	pthread_mutex_destroy(&c->lock);
	if (storage_list(c->st, c->prefix, NULL, &l, &e) == 0) {
		for (i = 0; i < l.n; i++)
			if (storage_delete(c->st, l.items[i].key, &e) != 0)
				task_log("WARNING", "conversation: cannot delete %s: %s", l.items[i].key, e.msg);
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
