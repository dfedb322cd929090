/*
 * tasks.h: the task operations behind the API, on top of the storage,
 * sealing and execution seams (never a particular backend).
 *
 * Task state lives in storage, not in one process, so every serve instance
 * sees the same tasks: sessions/<id>/metadata.json (the seed's document)
 * and active/<id> (ccr's record of a started task: its type, execution
 * name, start time and whether a cancel was asked for).  The job removes
 * active/<id> when it finishes; a reader that finds a terminal task still
 * marked active removes the mark itself.
 */
#ifndef CCR_TASKS_H
#define CCR_TASKS_H

#include <cJSON.h>

#include "backend/config.h"
#include "serve/taskdoc.h"
#include "task/record.h"

struct serverkey;

/* sessions/<id>/owner.json (tr_key_owner): {"credentialHmac"}, the server
 * key's HMAC of the task's Anthropic credential (serve/serverkey.h): only
 * a request with the same credential may resume the task (resumeTaskId). */

/* tasks_validate: the seed's checks in the seed's order (for /run-async,
 * callbackUrl also against the webhook's deny-list of private addresses,
 * with serve's exemptions pol, webhook/webhook.h), then type checks.  On failure e->msg is the seed's
 * message (or ccr's own for checks the seed lacked) and e->http 400. */
struct wh_policy;
int tasks_validate(const cJSON *body, int async, const struct wh_policy *pol, struct err *e);

/* tasks_submit: seal the body, store it, write pending metadata and the
 * owner record, start the execution, as task_id (NULL: tasks_new_id's
 * choice).  With resumeTaskId, that task must exist (404), have the same
 * credential (403) and have ended with a stored session (409).  On
 * failure nothing is left behind (fixes B23).  sk keys the owner record
 * (serverkey.h). */
int tasks_submit(struct backends *be, struct serverkey *sk, const cJSON *body, int async, const char *task_id, struct submitted *out,
		 struct err *e);

/* tasks_credential: the request's anthropicApiKey, else its
 * anthropicOAuthToken, else "". */
const char *tasks_credential(const cJSON *body);

/* tasks_new_id: the id a new task gets: the body's taskId (/run-async),
 * else a random UUID ("sync-" + UUID for /run). */
void tasks_new_id(const cJSON *body, int async, char out[TASK_ID_MAX + 8]);

struct reconciler;

/* tasks_cancel: cancel task_id: what it came to in out (serve/api.c
 * words the seed's answer).  A queued task is finalised as cancelled at
 * once (through rec). */
void tasks_cancel(struct backends *be, struct reconciler *rec, const char *task_id, struct tr_cancel_result *out);

/* tasks_json_reply: the seed's small answer object, {"error","message",
 * "taskId","status"}, each member only when not NULL (appended to body). */
void tasks_json_reply(struct buf *body, const char *error, const char *msg, const char *task_id, const char *status);

/* tasks_active: {"active":n,"tasks":[...]} from storage, at most limit. */
int tasks_active(struct backends *be, size_t limit, struct buf *body, struct err *e);

/* tasks_get: the metadata document plus the active record; 404 when none. */
void tasks_get(struct backends *be, const char *task_id, int *status, struct buf *body);

#endif
