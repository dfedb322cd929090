/*
 * idem.h: Idempotency-Key on POST /run and POST /run-async.
 *
 * A request carrying the header claims idempotency/<mac> (mac: the server
 * key's HMAC of the request's Anthropic credential and the key, so keys of
 * different callers never meet and the bucket reveals neither) with a
 * create-only write, before its task is stored.  The record holds the task
 * id, an HMAC of the endpoint and the body, its creation time and, once
 * the task started, the 202 body.  A later request with the same key and
 * the same body within IDEM_TTL_S gets the original task; with another
 * body, a 422.  The record lives in storage, so this holds across serve
 * instances and both storage backends.  A record older than IDEM_TTL_S,
 * or one whose request died before its task was stored, is replaced.
 */
#ifndef CCR_IDEM_H
#define CCR_IDEM_H

#include <cJSON.h>

#include "backend/config.h"
#include "serve/tasks.h"
#include "task/record.h"

struct serverkey;

#define IDEM_TTL_S (24 * 3600)
#define IDEM_KEY_MAX 255

struct idem {
	char object[TR_KEY_MAX];           /* idempotency/<mac> (tr_key_idempotency) */
	char body_mac[65];
	char task_id[TASK_ID_MAX + 8];     /* the task this key names */
	cJSON *response;                   /* replay: the original 202 body, or NULL while in flight */
};

enum idem_outcome { IDEM_NEW = 0, IDEM_REPLAY = 1 };

/* idem_key_valid: 1..IDEM_KEY_MAX printable ASCII characters. */
int idem_key_valid(const char *key);

/* idem_begin: claim key for body (already validated) on endpoint ("run",
 * "run-async").  IDEM_NEW: the caller submits the task with the id in
 * out->task_id (chosen here: the body's taskId for /run-async, else a new
 * one) and then calls idem_commit or idem_abort.  IDEM_REPLAY: out holds
 * the original task.  -1: e->http 422 (same key, another body), 503
 * (storage), 400.  sk keys the stored hashes (serverkey.h). */
int idem_begin(struct backends *be, struct serverkey *sk, const char *endpoint, const char *key, const cJSON *body, struct idem *out,
	       struct err *e);

/* idem_commit: record the 202 body of the task just started. */
void idem_commit(struct backends *be, struct idem *im, const cJSON *response);

/* idem_abort: the task was not started: free the key again. */
void idem_abort(struct backends *be, struct idem *im);

void idem_free(struct idem *im);

#endif
