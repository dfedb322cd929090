/*
 * reconcile.c: see reconcile.h.
 *
 * One check of a task reads active/<id> and the metadata; a task that is
 * terminal only loses its stale active mark, a queued one is left to the
 * queue, and any other asks the executor about its execution.  "Gone" is
 * either an execution that finished (succeeded, failed, cancelled) or
 * one the executor no longer knows: a local job whose pid (with its start
 * time) is not alive, a Cloud Run execution answering 404.  An executor
 * that cannot answer (an API error) is asked again at the next sweep:
 * doubt never finalises a task.  Before finalising, the metadata is read
 * once more, since a job that ended normally writes it just before it
 * exits.  A finalised task also loses what its conversation left: its
 * inbox objects and its message socket's file (task/msgsock.h).
 *
 * Webhooks of finalised tasks go out on a detached thread each, with the
 * same signatures and retries as the job's, so a slow receiver never
 * holds up the sweep; the outcome is added to the metadata afterwards.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/exec.h"
#include "serve/follow.h"
#include "task/msgsock.h"
#include "task/record.h"
#include "serve/log.h"
#include "serve/queue.h"
#include "serve/reconcile.h"
#include "serve/taskdoc.h"
#include "task/logsink.h"
#include "task/report.h"
#include "util/clock.h"
#include "util/jsjson.h"
#include "webhook/webhook.h"

#define RECENT 64
#define RECHECK_MS 1000

struct reconciler {
	struct backends *be;
	struct reconcile_cfg cfg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, wake;
	struct {
		unsigned long hash;
		int64_t at;
	} recent[RECENT];                /* on-demand checks, to rate-limit them */
};

static cJSON *read_doc(struct reconciler *r, tr_key_fn key_fn, const char *id)
{
	char key[TR_KEY_MAX];

	return td_read_json(r->be->storage, key_fn(key, id));
}

static void drop_key(struct reconciler *r, tr_key_fn key_fn, const char *id)
{
	struct err e = ERR_INIT;
	char key[TR_KEY_MAX];

	key_fn(key, id);
	if (storage_delete(r->be->storage, key, &e) != 0)
		slog(SLOG_WARNING, "reconcile: cannot delete %s: %s", key, e.msg);
}

/* A dead job's conversation leftovers: its inbox objects and, in local
 * mode, its message socket's file (task/msgsock.h). */
static void drop_inbox(struct reconciler *r, const char *id)
{
	struct storage_list l;
	struct err e = ERR_INIT;
	char prefix[TR_KEY_MAX];
	size_t i;

	tr_key_inbox(prefix, id);
	if (storage_list(r->be->storage, prefix, NULL, &l, &e) != 0) {
		slog(SLOG_WARNING, "reconcile: cannot list %s: %s", prefix, e.msg);
	} else {
		for (i = 0; i < l.n; i++)
			if (storage_delete(r->be->storage, l.items[i].key, &e) != 0)
				slog(SLOG_WARNING, "reconcile: cannot delete %s: %s", l.items[i].key, e.msg);
		storage_list_free(&l);
	}
	if (r->be->mode == CFG_LOCAL)
		msk_remove(r->be->data_dir, id);
}

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

/* ---- the webhook of a finalised task ---- */

struct hook_job {
	struct storage *st;
	long deadline_ms;
	const struct wh_policy *pol;   /* serve's, outlives every hook thread */
	char *id, *url, *body, *secret;
};

static void hook_job_free(struct hook_job *h)
{
	free(h->id);
	free(h->url);
	free(h->body);
	free(h->secret);
	free(h);
}

/* Add the delivery's outcome to the stored metadata. */
static void record_hook(struct storage *st, const char *id, cJSON *w)
{
	struct storage_put_opts o = { "application/json", NULL, 0 };
	struct err e = ERR_INIT;
	struct buf text = BUF_INIT;
	char key[TR_KEY_MAX];
	cJSON *meta = td_read_json(st, tr_key_metadata(key, id));

	if (meta && w) {
		cJSON_DeleteItemFromObject(meta, "webhook");
		cJSON_AddItemToObject(meta, "webhook", w);
		w = NULL;
		if (jsj_print(&text, meta, 2) != 0 || storage_put(st, key, text.p, text.len, &o, &e) != 0)
			slog(SLOG_WARNING, "reconcile: cannot record the webhook of %s: %s", id, e.msg);
	}
	cJSON_Delete(w);
	cJSON_Delete(meta);
	buf_free(&text);
}

static void *hook_thread(void *arg)
{
	struct hook_job *h = arg;
	struct wh_result wr;
	struct err e = ERR_INIT;
	int rc = wh_deliver(h->url, h->secret, h->pol, h->body, strlen(h->body), h->deadline_ms, &wr, &e);

	if (rc != 0)
		slog(SLOG_ERROR, "reconcile: webhook for %s not delivered: %s", h->id, e.msg);
	record_hook(h->st, h->id, wh_report(&wr, rc, e.msg));
	hook_job_free(h);
	return NULL;
}

static void send_hook(struct reconciler *r, const char *id, const struct report *rep)
{
	struct buf body = BUF_INIT;
	struct hook_job *h;
	pthread_attr_t attr;
	pthread_t th;

	if (!rep->callback_url)
		return;
	if (!r->cfg.callback_secret || !*r->cfg.callback_secret) {
		slog(SLOG_ERROR, "CLOUDRUN_CALLBACK_SECRET is not set: the webhook for %s was not sent", id);
		record_hook(r->be->storage, id, wh_not_sent("CLOUDRUN_CALLBACK_SECRET is not set: the webhook was not sent"));
		return;
	}
	if (report_webhook(rep, &body) != 0 || !(h = calloc(1, sizeof(*h)))) {
		buf_free(&body);
		return;
	}
	h->st = r->be->storage;
	h->deadline_ms = r->cfg.webhook_deadline_ms;
	h->pol = r->cfg.callbacks;
	h->id = strdup(id);
	h->url = strdup(rep->callback_url);
	h->secret = strdup(r->cfg.callback_secret);
	h->body = body.p;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (!h->id || !h->url || !h->secret || !h->body || pthread_create(&th, &attr, hook_thread, h) != 0) {
		slog(SLOG_ERROR, "reconcile: cannot start the webhook delivery for %s", id);
		hook_job_free(h);
	}
	pthread_attr_destroy(&attr);
}

/* ---- finalising ---- */

/* The create-only claim that makes finalising happen once. */
static int claim(struct reconciler *r, const char *id, const char *reason, const char *msg, struct err *e)
{
	struct storage_put_opts o = { "application/json", NULL, 1 };
	struct buf text = BUF_INIT;
	char key[TR_KEY_MAX], now[32];
	cJSON *c = cJSON_CreateObject();
	int rc = -1;

	clock_iso(now);
	tr_key_reconciled(key, id);
	if (c && cJSON_AddStringToObject(c, "terminalReason", reason) && cJSON_AddStringToObject(c, "observed", msg) &&
	    cJSON_AddStringToObject(c, "at", now) && jsj_print(&text, c, 2) == 0)
		rc = storage_put(r->be->storage, key, text.p, text.len, &o, e);
	else
		err_set(e, "out of memory");
	cJSON_Delete(c);
	buf_free(&text);
	if (rc != 0 && e->http == 412)
		return 1;
	return rc;
}

/* The terminal report, from what the stored metadata says. */
static void fill_report(struct report *rep, const char *id, const cJSON *meta, const char *reason, const char *msg,
			struct buf *logs_url, struct reconciler *r)
{
	char prefix[TR_KEY_MAX];
	int cancelled = strcmp(reason, "cancelled") == 0;

	report_init(rep, id);
	rep->callback_url = str_of(meta, "callbackUrl");
	rep->metadata = cJSON_GetObjectItemCaseSensitive(meta, "metadata");
	copy_str(rep->created_at, sizeof(rep->created_at), str_of(meta, "createdAt"));
	copy_str(rep->started_at, sizeof(rep->started_at), str_of(meta, "startedAt"));
	copy_str(rep->execution_name, sizeof(rep->execution_name), str_of(meta, "executionName"));
	clock_iso(rep->completed_at);
	if (storage_url(r->be->storage, tr_key_logs(prefix, id), logs_url) == 0)
		rep->logs_path = logs_url->p;
	rep->status = cancelled ? TR_CANCELLED : TR_FAILED;
	rep->reason = reason;
	rep->exit_code = cancelled ? 130 : 1;
	buf_adds(&rep->error, cancelled ? "Task cancelled by user" : msg);
}

/* The log's last line says what happened, as the job's own error lines do. */
static void close_log(struct reconciler *r, const char *id, const char *msg)
{
	struct err e = ERR_INIT;
	struct buf line = BUF_INIT;
	struct logsink *ls = logsink_open(r->be->storage, id, 20, &e);
	char now[32];

	if (!ls) {
		slog(SLOG_WARNING, "reconcile: cannot append to the log of %s: %s", id, e.msg);
		return;
	}
	clock_iso(now);
	buf_adds(&line, "{\"type\":\"error\",\"error\":");
	jsj_string(&line, msg, strlen(msg));
	buf_printf(&line, ",\"timestamp\":\"%s\"}", now);
	if (line.p)
		logsink_line(ls, line.p, line.len);
	if (logsink_close(ls, 30000, &e) != 0)
		slog(SLOG_WARNING, "reconcile: the log of %s: %s", id, e.msg);
	buf_free(&line);
}

static int put_terminal(struct reconciler *r, const char *id, const struct report *rep, struct err *e)
{
	struct storage_put_opts o = { "application/json", NULL, 0 };
	struct buf text = BUF_INIT;
	char key[TR_KEY_MAX];
	int rc;

	tr_key_metadata(key, id);
	if (report_metadata(rep, &text) != 0)
		return err_set(e, "out of memory");
	rc = storage_put(r->be->storage, key, text.p, text.len, &o, e);
	buf_free(&text);
	return rc;
}

int reconcile_finalise(struct reconciler *r, const char *id, const char *reason, const char *msg, struct err *e)
{
	struct report rep;
	struct buf logs_url = BUF_INIT;
	struct err ignore = ERR_INIT;
	cJSON *meta;
	int rc = claim(r, id, reason, msg, e);

	if (rc != 0)
		return rc;
	meta = read_doc(r, tr_key_metadata, id);
	drop_inbox(r, id);
	if (!meta || tr_meta_terminal(meta)) {
		drop_key(r, tr_key_active, id);
		cJSON_Delete(meta);
		return 1;
	}
	fill_report(&rep, id, meta, reason, msg, &logs_url, r);
	close_log(r, id, msg);
	rc = put_terminal(r, id, &rep, e);
	drop_key(r, tr_key_payload, id);
	drop_key(r, tr_key_active, id);
	if (r->be->mode == CFG_LOCAL && tr_remove_workspaces(r->cfg.workspace_root, id, &ignore) < 0)
		slog(SLOG_WARNING, "reconcile: cannot remove the workspace of %s: %s", id, ignore.msg);
	slog(rc == 0 ? SLOG_WARNING : SLOG_ERROR, "task %s finalised as %s (%s): %s", id, tr_status_name(rep.status),
	     reason, msg);
	if (rc == 0)
		send_hook(r, id, &rep);
	report_free(&rep);
	buf_free(&logs_url);
	cJSON_Delete(meta);
	return rc;
}

/* ---- checking ---- */

/* What the executor says about a started task: 1 gone (msg filled),
 * 0 alive or unknown. */
static int execution_gone(struct reconciler *r, const char *name, int *cancelled, char *msg, size_t n)
{
	static const char *const names[] = { "pending", "running", "succeeded", "failed", "cancelled", "unknown" };
	struct exec_status st;
	struct err e = ERR_INIT;

	*cancelled = 0;
	if (exec_status(r->be->exec, name, &st, &e) != 0) {
		if (e.http != 404)
			return 0;
		snprintf(msg, n, "the execution %s no longer exists", name);
		return 1;
	}
	if (st.state == EXEC_PENDING || st.state == EXEC_RUNNING)
		return 0;
	if (st.state == EXEC_UNKNOWN && r->be->mode != CFG_LOCAL)
		return 0;
	*cancelled = st.state == EXEC_CANCELLED;
	if (st.state == EXEC_UNKNOWN)
		snprintf(msg, n, "the job process of %s is gone (killed, or its machine restarted) and it wrote no "
				 "terminal state", name);
	else if (st.exit_code >= 0)
		snprintf(msg, n, "the execution %s ended (%s, exit code %d) without writing a terminal state", name,
			 names[st.state], st.exit_code);
	else
		snprintf(msg, n, "the execution %s ended (%s) without writing a terminal state", name, names[st.state]);
	return 1;
}

static void check(struct reconciler *r, const char *id)
{
	cJSON *active = read_doc(r, tr_key_active, id), *meta = NULL;
	const char *name;
	char msg[700];
	int cancelled;
	struct err e = ERR_INIT;

	if (!active || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(active, "queued")))
		goto out;
	meta = read_doc(r, tr_key_metadata, id);
	if (!meta)
		goto out;
	if (tr_meta_terminal(meta)) {
		drop_key(r, tr_key_active, id);
		goto out;
	}
	name = str_of(active, "executionName");
	if (!name || !*name || !execution_gone(r, name, &cancelled, msg, sizeof(msg)))
		goto out;
	cJSON_Delete(meta);
	meta = read_doc(r, tr_key_metadata, id);     /* the job may have just finished */
	if (!meta || tr_meta_terminal(meta))
		goto out;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(active, "cancelling")))
		cancelled = 1;
	if (reconcile_finalise(r, id, cancelled ? "cancelled" : "lost", msg, &e) < 0)
		slog(SLOG_ERROR, "reconcile: cannot finalise %s: %s", id, e.msg);
out:
	cJSON_Delete(active);
	cJSON_Delete(meta);
}

static void sweep(struct reconciler *r)
{
	struct storage_list l;
	struct err e = ERR_INIT;
	size_t i;

	if (storage_list(r->be->storage, TR_ACTIVE_PREFIX, NULL, &l, &e) != 0) {
		slog(SLOG_WARNING, "reconcile: cannot list active tasks: %s", e.msg);
		return;
	}
	for (i = 0; i < l.n && !r->stop; i++)
		if (td_id_valid(tr_active_task(l.items[i].key)))
			check(r, tr_active_task(l.items[i].key));
	storage_list_free(&l);
	exec_tidy(r->be->exec);
}

static unsigned long hash_id(const char *s)
{
	unsigned long h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

void reconcile_check(struct reconciler *r, const char *id)
{
	unsigned long h = hash_id(id);
	int64_t now = clock_mono_ms();
	size_t slot = h % RECENT;

	if (!r || !td_id_valid(id))
		return;
	pthread_mutex_lock(&r->mu);
	if (r->recent[slot].hash == h && now - r->recent[slot].at < RECHECK_MS) {
		pthread_mutex_unlock(&r->mu);
		return;
	}
	r->recent[slot].hash = h;
	r->recent[slot].at = now;
	pthread_mutex_unlock(&r->mu);
	check(r, id);
}

void reconcile_wake(struct reconciler *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->wake = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* queue_dispatch's way to end a queued task that can never start. */
static int finalise_queued(void *arg, const char *id, const char *reason, const char *msg, struct err *e)
{
	return reconcile_finalise(arg, id, reason, msg, e);
}

/* Sleep until the next tick: the queue is looked at every 250 ms in local
 * mode (cheap: one directory read), the full sweep every interval. */
static void *loop(void *arg)
{
	struct reconciler *r = arg;
	int64_t next_sweep = 0;

	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		struct timespec due;
		int64_t now = clock_mono_ms();
		int do_sweep = r->wake || now >= next_sweep;

		r->wake = 0;
		pthread_mutex_unlock(&r->mu);
		if (do_sweep) {
			sweep(r);
			next_sweep = clock_mono_ms() + r->cfg.interval_ms;
		}
		if (r->be->mode == CFG_LOCAL)
			queue_dispatch(r->be, finalise_queued, r);
		pthread_mutex_lock(&r->mu);
		if (r->stop || r->wake)
			continue;
		clock_gettime(CLOCK_REALTIME, &due);
		due.tv_nsec += (r->be->mode == CFG_LOCAL ? 250 : 1000) * 1000000L;
		due.tv_sec += due.tv_nsec / 1000000000L;
		due.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&r->cv, &r->mu, &due);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* A local job ended: sweep now (a killed one is finalised at once, and
 * a slot is free for the queue). */
static void wake_cb(void *arg)
{
	reconcile_wake(arg);
}

struct reconciler *reconcile_start(struct backends *be, const struct reconcile_cfg *cfg, struct err *e)
{
	struct reconciler *r = calloc(1, sizeof(*r));

	if (!r) {
		err_set(e, "out of memory");
		return NULL;
	}
	r->be = be;
	r->cfg = *cfg;
	if (r->cfg.interval_ms < 100)
		r->cfg.interval_ms = 100;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	exec_notify(be->exec, wake_cb, r);
	if (pthread_create(&r->thread, NULL, loop, r) != 0) {
		err_set(e, "cannot start the reconciler thread: %s", strerror(errno));
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cv);
		free(r);
		return NULL;
	}
	return r;
}

void reconcile_stop(struct reconciler *r)
{
	if (!r)
		return;
	exec_notify(r->be->exec, NULL, NULL);
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r);
}
