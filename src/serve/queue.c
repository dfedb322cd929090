/*
 * queue.c: see queue.h.  The queue is the set of active records marked
 * queued; it is read from storage on every dispatch (a directory read in
 * local mode), so nothing about it lives in this process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/exec.h"
#include "serve/follow.h"
#include "task/record.h"
#include "serve/log.h"
#include "serve/queue.h"
#include "serve/taskdoc.h"

struct queued {
	char id[TASK_ID_MAX + 1];
	char since[40];
	int async;
};

static int by_age(const void *a, const void *b)
{
	const struct queued *x = a, *y = b;
	int c = strcmp(x->since, y->since);

	return c ? c : strcmp(x->id, y->id);
}

/* The queued records, oldest first; *n of them (free the array). */
static struct queued *read_queue(struct storage *st, size_t *n)
{
	struct storage_list l;
	struct err e = ERR_INIT;
	struct queued *q;
	size_t i;

	*n = 0;
	if (storage_list(st, TR_ACTIVE_PREFIX, NULL, &l, &e) != 0)
		return NULL;
	if (!(q = calloc(l.n + 1, sizeof(*q)))) {
		storage_list_free(&l);
		return NULL;
	}
	for (i = 0; i < l.n; i++) {
		cJSON *a = td_read_json(st, l.items[i].key);
		const cJSON *since = cJSON_GetObjectItemCaseSensitive(a, "startedAt");
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(a, "type");
		const char *id = tr_active_task(l.items[i].key);

		if (a && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "queued")) && td_id_valid(id)) {
			snprintf(q[*n].id, sizeof(q[*n].id), "%s", id);
			snprintf(q[*n].since, sizeof(q[*n].since), "%s", cJSON_IsString(since) ? since->valuestring : "");
			q[*n].async = cJSON_IsString(type) && strcmp(type->valuestring, "async") == 0;
			(*n)++;
		}
		cJSON_Delete(a);
	}
	storage_list_free(&l);
	qsort(q, *n, sizeof(*q), by_age);
	return q;
}

/* Rewrite a queued record as started, with its execution's name. */
static void mark_started(struct backends *be, const struct queued *q)
{
	struct submitted s;
	struct err e = ERR_INIT;

	memset(&s, 0, sizeof(s));
	snprintf(s.task_id, sizeof(s.task_id), "%s", q->id);
	snprintf(s.created_at, sizeof(s.created_at), "%s", q->since);
	if (buf_printf(&s.execution_name, "local/%s", q->id) != 0 || td_write_active(be, &s, q->async, 0, &e) != 0)
		slog(SLOG_ERROR, "cannot update the record of %s: %s", q->id, e.msg);
	td_submitted_free(&s);
}

/* Start one queued task: 0 started (or no longer startable), 1 no room. */
static int start_one(struct backends *be, queue_finalise_fn fin, void *arg, const struct queued *q)
{
	char key[TR_KEY_MAX], type_env[64], *payload_url;
	const char *extra[2] = { type_env, NULL };
	struct submitted s;
	struct buf url = BUF_INIT;
	struct err e = ERR_INIT;
	cJSON *meta;
	int rc;

	meta = td_read_json(be->storage, tr_key_metadata(key, q->id));
	if (!meta || tr_meta_status(meta) != TR_PENDING) {
		/* Cancelled meanwhile (the canceller tidied up), or already
		 * started by an instance that died before it could say so: the
		 * reconciler watches it from now on. */
		if (meta && !tr_meta_terminal(meta))
			mark_started(be, q);
		cJSON_Delete(meta);
		return 0;
	}
	cJSON_Delete(meta);
	tr_key_payload(key, q->id);
	payload_url = storage_url(be->storage, key, &url) == 0 && url.p ? url.p : key;
	snprintf(type_env, sizeof(type_env), "CCR_TASK_TYPE=%s", q->async ? "async" : "sync");
	memset(&s, 0, sizeof(s));
	rc = exec_start(be->exec, q->id, payload_url, extra, &s.execution_name, &e);
	buf_free(&url);
	if (rc == 1 || (rc < 0 && e.http == 409)) {
		td_submitted_free(&s);
		return rc == 1;           /* no room yet / another instance started it */
	}
	if (rc < 0) {
		slog(SLOG_ERROR, "queued task %s could not start: %s", q->id, e.msg);
		if (fin(arg, q->id, "failed", e.msg, &e) < 0)
			slog(SLOG_ERROR, "cannot finalise %s: %s", q->id, e.msg);
		td_submitted_free(&s);
		return 0;
	}
	td_submitted_free(&s);
	mark_started(be, q);
	slog(SLOG_INFO, "queued task %s started", q->id);
	return 0;
}

void queue_dispatch(struct backends *be, queue_finalise_fn fin, void *arg)
{
	struct queued *q;
	size_t n, i;

	if (!exec_can_count_slots(be->exec) || exec_free_slots(be->exec) <= 0)
		return;
	q = read_queue(be->storage, &n);
	for (i = 0; q && i < n; i++)
		if (start_one(be, fin, arg, &q[i]) == 1)
			break;
	free(q);
}
