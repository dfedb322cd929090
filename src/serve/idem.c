/*
 * idem.c: see idem.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "serve/idem.h"
#include "serve/serverkey.h"
#include "task/record.h"
#include "util/clock.h"
#include "util/jsjson.h"

/* A claim without a 202 body and without its task's metadata after this
 * long belongs to a request that died before storing its task. */
#define IDEM_STALE_MS 60000

int idem_key_valid(const char *key)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > IDEM_KEY_MAX)
		return 0;
	for (; *key; key++)
		if (*key < 0x20 || *key > 0x7e)
			return 0;
	return 1;
}

static int macs(struct serverkey *sk, const char *endpoint, const char *key, const cJSON *body, struct idem *out,
		struct err *e)
{
	const char *cred = tasks_credential(body);
	const char *p1[2] = { cred, key };
	size_t l1[2] = { strlen(cred), strlen(key) };
	struct buf text = BUF_INIT;
	char mac[65];
	int rc;

	if (serverkey_mac(sk, "idempotency-key", p1, l1, 2, mac, e) != 0)
		return -1;
	tr_key_idempotency(out->object, mac);
	if (jsj_stringify(&text, body) != 0)
		return err_http(e, 500, "out of memory");
	{
		const char *p2[2] = { endpoint, text.p };
		size_t l2[2] = { strlen(endpoint), text.len };
		rc = serverkey_mac(sk, "idempotency-body", p2, l2, 2, out->body_mac, e);
	}
	cr_wipe(text.p, text.len);
	buf_free(&text);
	return rc;
}

static int put_record(struct backends *be, const struct idem *im, const cJSON *response, int create, struct err *e)
{
	struct storage_put_opts o = { "application/json", NULL, create };
	struct buf text = BUF_INIT;
	char now[32];
	cJSON *r = cJSON_CreateObject();
	int rc;

	if (!r)
		return err_http(e, 500, "out of memory");
	clock_iso(now);
	cJSON_AddStringToObject(r, "taskId", im->task_id);
	cJSON_AddStringToObject(r, "bodyHmac", im->body_mac);
	cJSON_AddNumberToObject(r, "createdAtMs", (double)clock_ms());
	cJSON_AddStringToObject(r, "createdAt", now);
	if (response)
		cJSON_AddItemToObject(r, "response", cJSON_Duplicate(response, 1));
	rc = jsj_print(&text, r, 0) == 0 ? storage_put(be->storage, im->object, text.p, text.len, &o, e)
					  : err_http(e, 500, "out of memory");
	cJSON_Delete(r);
	buf_free(&text);
	return rc;
}

static int task_stored(struct backends *be, const char *task_id)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char key[TR_KEY_MAX];
	int rc;

	rc = storage_get(be->storage, tr_key_metadata(key, task_id), 0, &b, &e) == 0 || e.http != 404;
	buf_free(&b);
	return rc;
}

/* Judge an existing record: 1 replay (out filled), 0 expired or stale
 * (deleted: claim again), -1 error. */
static int judge(struct backends *be, const cJSON *rec, struct idem *out, struct err *e)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "taskId");
	const cJSON *bm = cJSON_GetObjectItemCaseSensitive(rec, "bodyHmac");
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(rec, "createdAtMs");
	const cJSON *resp = cJSON_GetObjectItemCaseSensitive(rec, "response");
	int64_t age;

	if (!cJSON_IsString(id) || !td_id_valid(id->valuestring) || !cJSON_IsString(bm) || !cJSON_IsNumber(at))
		return err_http(e, 500, "the idempotency record %s is damaged: delete it to use this key again",
				out->object);
	age = clock_ms() - (int64_t)at->valuedouble;
	if (age > (int64_t)IDEM_TTL_S * 1000 ||
	    (!cJSON_IsObject(resp) && age > IDEM_STALE_MS && !task_stored(be, id->valuestring))) {
		if (storage_delete(be->storage, out->object, e) != 0)
			return -1;
		return 0;
	}
	if (strcmp(bm->valuestring, out->body_mac) != 0)
		return err_http(e, 422, "Idempotency-Key was already used with a different request body (task %s); "
					"use a new key for a new request",
				id->valuestring);
	snprintf(out->task_id, sizeof(out->task_id), "%s", id->valuestring);
	out->response = cJSON_IsObject(resp) ? cJSON_Duplicate(resp, 1) : NULL;
	return 1;
}

int idem_begin(struct backends *be, struct serverkey *sk, const char *endpoint, const char *key, const cJSON *body, struct idem *out,
	       struct err *e)
{
	int tries, rc;

	memset(out, 0, sizeof(*out));
	if (!idem_key_valid(key))
		return err_http(e, 400, "Idempotency-Key must be 1 to %d printable ASCII characters", IDEM_KEY_MAX);
	if (macs(sk, endpoint, key, body, out, e) != 0)
		return -1;
	tasks_new_id(body, strcmp(endpoint, "run-async") == 0, out->task_id);
	for (tries = 0; tries < 3; tries++) {
		struct buf b = BUF_INIT;
		cJSON *rec;

		if (put_record(be, out, NULL, 1, e) == 0)
			return IDEM_NEW;
		if (e->http != 412)
			return -1;
		e->http = 0, e->msg[0] = 0;
		if (storage_get(be->storage, out->object, 0, &b, e) != 0) {
			buf_free(&b);
			if (e->http == 404) {          /* deleted meanwhile: claim again */
				e->http = 0, e->msg[0] = 0;
				continue;
			}
			return -1;
		}
		rec = cJSON_ParseWithLength(b.p, b.len);
		buf_free(&b);
		if (!rec)
			return err_http(e, 500, "the idempotency record %s is not JSON: delete it to use this key again",
					out->object);
		rc = judge(be, rec, out, e);
		cJSON_Delete(rec);
		if (rc != 0)
			return rc < 0 ? -1 : IDEM_REPLAY;
	}
	return err_http(e, 409, "Idempotency-Key is contended by concurrent requests; retry");
}

void idem_commit(struct backends *be, struct idem *im, const cJSON *response)
{
	struct err e = ERR_INIT;

	/* A failure leaves the claim without its 202 body: replays of /run
	 * still find the task; /run-async replays answer from the task. */
	put_record(be, im, response, 0, &e);
}

void idem_abort(struct backends *be, struct idem *im)
{
	struct err e = ERR_INIT;

	storage_delete(be->storage, im->object, &e);
}

void idem_free(struct idem *im)
{
	cJSON_Delete(im->response);
	im->response = NULL;
}
