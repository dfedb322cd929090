/*
 * taskdoc.h: the stored task documents the serve modules share (prefix
 * td_): a task id's shape, reading a JSON object from storage, and the
 * active/<id> record.  The lowest layer of serve's task code: tasks.c (the
 * API's operations), queue.c and reconcile.c all build on it, and it
 * includes none of them, so the dependencies point one way
 * (api/routes -> tasks -> queue/reconcile -> taskdoc).
 */
#ifndef CCR_TASKDOC_H
#define CCR_TASKDOC_H

#include <cJSON.h>

#include "backend/config.h"
#include "task/record.h"

#define TASK_ID_MAX 128

/* A task as stored at submission (tasks_submit fills it). */
struct submitted {
	char task_id[TASK_ID_MAX + 8];
	char created_at[32];
	struct buf execution_name;
	struct buf logs_path;
	int queued;
	int cancel_on_disconnect;          /* the request's cancelOnDisconnect */
};

/* td_submitted_free: the buffers of s. */
void td_submitted_free(struct submitted *s);

/* td_id_valid: the seed's ^[a-zA-Z0-9_-]+$, at most TASK_ID_MAX. */
int td_id_valid(const char *id);

/* td_read_json: the object at key, parsed; NULL when missing or not JSON. */
cJSON *td_read_json(struct storage *st, const char *key);

/* td_put_json: store doc at key as JSON (indent as jsj_print; if_absent:
 * a create-only write).  Errors carry HTTP status 500 for out of memory. */
int td_put_json(struct storage *st, const char *key, const cJSON *doc, unsigned indent, int if_absent,
		struct err *e);

/* td_write_active: write active/<id> for s (queued when s->queued). */
int td_write_active(struct backends *be, const struct submitted *s, int async, int cancelling, struct err *e);

#endif
