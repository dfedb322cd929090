/*
 * tasks.c: see tasks.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "serve/reconcile.h"
#include "serve/serverkey.h"
#include "serve/tasks.h"
#include "task/payload.h"
#include "task/record.h"
#include "task/report.h"
#include "util/clock.h"
#include "util/hex.h"
#include "util/jscheck.h"
#include "util/jsjson.h"
#include "webhook/webhook.h"

static int truthy(const cJSON *v)
{
	if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
		return 0;
	if (cJSON_IsString(v))
		return v->valuestring[0] != 0;
	if (cJSON_IsNumber(v))
		return v->valuedouble != 0;
	return 1;
}

/* The member `name` as JSON.parse would keep it: the last of duplicates. */
static const cJSON *member(const cJSON *obj, const char *name)
{
	const cJSON *it, *last = NULL;

	cJSON_ArrayForEach(it, obj)
		if (it->string && strcmp(it->string, name) == 0)
			last = it;
	return last;
}

int tasks_validate(const cJSON *body, int async, const struct wh_policy *pol, struct err *e)
{
	const cJSON *cb = member(body, "callbackUrl");
	const cJSON *id = member(body, "taskId");
	struct payload p;
	struct buf text = BUF_INIT;
	int rc;

	if (!truthy(member(body, "prompt")))
		return err_http(e, 400, "prompt is required");
	if (async && !truthy(cb))
		return err_http(e, 400, "callbackUrl is required for async tasks");
	if (!truthy(member(body, "anthropicApiKey")) && !truthy(member(body, "anthropicOAuthToken")))
		return err_http(e, 400, "Either anthropicApiKey or anthropicOAuthToken is required");
	if (async && !cJSON_IsString(cb))
		return err_http(e, 400, "callbackUrl is not a valid URL");
	/* The delivery's own check (scheme, then the deny-list of private
	 * addresses), so a URL that would be refused is a 400 now, not a
	 * failed webhook later.  A name that does not resolve yet passes. */
	if (async && wh_check_url(cb->valuestring, "callbackUrl", pol, WH_CHECK_DNS_OPTIONAL, NULL, 0, e) != 0) {
		e->http = 400;
		return -1;
	}
	if (async && truthy(id) && (!cJSON_IsString(id) || !td_id_valid(id->valuestring)))
		return err_http(e, 400, "taskId must be URL-safe (alphanumeric, underscore, hyphen only)");
	/* Every other field's type, exactly as the job will read it: the job
	 * parses what store_payload() stores, the body as JSON.stringify
	 * prints it (the last of duplicate keys, non-finite numbers as null). */
	if (jsj_stringify(&text, body) != 0)
		return err_http(e, 500, "out of memory");
	rc = payload_parse(&p, text.p, text.len, e);
	cr_wipe(text.p, text.len);
	buf_free(&text);
	if (rc != 0) {
		e->http = 400;
		return -1;
	}
	payload_free(&p);
	return 0;
}

static void uuid4(char out[37])
{
	uint8_t b[16];
	char h[33];

	cr_random(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	hex_fmt(h, b, sizeof(b));
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

/* idleAfterResultSeconds > 0 (a number, or a string holding one). */
static int accepts_messages(const cJSON *body)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "idleAfterResultSeconds");
	double d = 0;

	if (cJSON_IsNumber(v))
		d = v->valuedouble;
	else if (!cJSON_IsString(v) || jsc_number(v->valuestring, &d) != 0)
		d = 0;
	return d > 0;
}

/* The pending metadata document (task/report.h builds every state). */
static int put_pending(struct storage *st, const struct submitted *s, const cJSON *body, const char *payload_url,
		       int async, struct err *e)
{
	struct storage_put_opts o = { "application/json", NULL, 1 };
	const cJSON *cb = cJSON_GetObjectItemCaseSensitive(body, "callbackUrl");
	char key[TR_KEY_MAX];
	struct report r;
	struct buf text = BUF_INIT;
	int rc;

	report_init(&r, s->task_id);
	snprintf(r.created_at, sizeof(r.created_at), "%s", s->created_at);
	r.callback_url = async && cJSON_IsString(cb) ? cb->valuestring : NULL;
	r.metadata = cJSON_GetObjectItemCaseSensitive(body, "metadata");
	r.payload_path = payload_url;
	r.sync = !async;
	r.accepts_messages = accepts_messages(body);
	rc = report_metadata(&r, &text) == 0 ? storage_put(st, tr_key_metadata(key, s->task_id), text.p, text.len, &o, e)
					      : err_http(e, 500, "out of memory");
	report_free(&r);
	buf_free(&text);
	return rc;
}

static int store_payload(struct backends *be, const cJSON *body, const char *key, const char *task_id, struct err *e)
{
	const char *meta[] = { "taskId", task_id, "encrypted", "true", "encryptedAt", NULL, NULL };
	struct storage_put_opts o = { "application/octet-stream", meta, 0 };
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	char now[32];
	int rc = -1;

	clock_iso(now);
	meta[5] = now;
	if (jsj_stringify(&plain, body) != 0)
		err_http(e, 500, "out of memory");
	else if (envelope_seal(be->sealer, plain.p, plain.len, &sealed, e) != 0)
		e->http = 500;
	else
		rc = storage_put(be->storage, key, sealed.p, sealed.len, &o, e);
	cr_wipe(plain.p, plain.len);
	buf_free(&plain);
	buf_free(&sealed);
	return rc;
}

const char *tasks_credential(const cJSON *body)
{
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(body, "anthropicApiKey");

	if (cJSON_IsString(k) && k->valuestring[0])
		return k->valuestring;
	k = cJSON_GetObjectItemCaseSensitive(body, "anthropicOAuthToken");
	return cJSON_IsString(k) ? k->valuestring : "";
}

/* The keyed hash of the request's credential: who may resume the task. */
static int owner_mac(struct serverkey *sk, const cJSON *body, char out[65], struct err *e)
{
	const char *cred = tasks_credential(body);
	const char *parts[1] = { cred };
	size_t lens[1] = { strlen(cred) };

	return serverkey_mac(sk, "task-owner", parts, lens, 1, out, e);
}

/* A request with resumeTaskId: that task must exist, belong to the same
 * credential and have ended with a stored session. */
static int check_resume(struct backends *be, const cJSON *body, const char *mac, struct err *e)
{
	const cJSON *rid = cJSON_GetObjectItemCaseSensitive(body, "resumeTaskId");
	char key[TR_KEY_MAX];
	cJSON *owner, *meta;
	const cJSON *v;
	int rc = 0;

	if (!cJSON_IsString(rid) || !rid->valuestring[0])
		return 0;
	if (!(meta = td_read_json(be->storage, tr_key_metadata(key, rid->valuestring))))
		return err_http(e, 404, "resumeTaskId: task %s not found", rid->valuestring);
	owner = td_read_json(be->storage, tr_key_owner(key, rid->valuestring));
	v = cJSON_GetObjectItemCaseSensitive(owner, "credentialHmac");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, mac) != 0)
		rc = err_http(e, 403, "resumeTaskId: task %s was started with another credential; only the holder of "
				      "its anthropicApiKey or anthropicOAuthToken may resume it", rid->valuestring);
	else if (!tr_meta_terminal(meta))
		rc = err_http(e, 409, "resumeTaskId: task %s has not ended yet; resume it once it has",
			      rid->valuestring);
	else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(meta, "sessionId")))
		rc = err_http(e, 409, "resumeTaskId: task %s has no stored session to resume (its CLI never started, "
				      "or its transcript could not be stored)", rid->valuestring);
	cJSON_Delete(owner);
	cJSON_Delete(meta);
	return rc;
}

static int put_owner(struct backends *be, const char *task_id, const char *mac, struct err *e)
{
	char key[TR_KEY_MAX];
	cJSON *o = cJSON_CreateObject();
	int rc;

	if (!o)
		return err_http(e, 500, "out of memory");
	cJSON_AddStringToObject(o, "credentialHmac", mac);
	rc = td_put_json(be->storage, tr_key_owner(key, task_id), o, 0, 0, e);
	cJSON_Delete(o);
	return rc;
}

void tasks_new_id(const cJSON *body, int async, char out[TASK_ID_MAX + 8])
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "taskId");
	char uuid[37];

	uuid4(uuid);
	if (async && truthy(id))
		snprintf(out, TASK_ID_MAX + 8, "%s", id->valuestring);
	else
		snprintf(out, TASK_ID_MAX + 8, "%s%s", async ? "" : "sync-", uuid);
}

int tasks_submit(struct backends *be, struct serverkey *sk, const cJSON *body, int async, const char *task_id, struct submitted *out,
		 struct err *e)
{
	char payload_key[TR_KEY_MAX], meta_key[TR_KEY_MAX], owner_key[TR_KEY_MAX], logs[TR_KEY_MAX];
	char env_name[300], mac[65];
	const char *extra[2] = { env_name, NULL };
	struct buf payload_url = BUF_INIT;
	struct err ignore = ERR_INIT;
	int stage = 0, rc;

	memset(out, 0, sizeof(*out));
	out->cancel_on_disconnect = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "cancelOnDisconnect"));
	if (task_id)
		snprintf(out->task_id, sizeof(out->task_id), "%s", task_id);
	else
		tasks_new_id(body, async, out->task_id);
	clock_iso(out->created_at);
	tr_key_payload(payload_key, out->task_id);
	tr_key_metadata(meta_key, out->task_id);
	tr_key_owner(owner_key, out->task_id);
	storage_url(be->storage, payload_key, &payload_url);
	storage_url(be->storage, tr_key_logs(logs, out->task_id), &out->logs_path);
	if ((rc = owner_mac(sk, body, mac, e)) != 0 || (rc = check_resume(be, body, mac, e)) != 0)
		goto fail;
	/* A task id is used once: an existing task is never overwritten. */
	if ((rc = put_pending(be->storage, out, body, payload_url.p ? payload_url.p : payload_key, async, e)) != 0) {
		if (e->http == 412)
			err_http(e, 409, "a task with taskId %s already exists", out->task_id);
		goto fail;
	}
	stage = 1;
	if ((rc = put_owner(be, out->task_id, mac, e)) != 0 ||
	    (rc = store_payload(be, body, payload_key, out->task_id, e)) != 0)
		goto fail;
	stage = 2;
	snprintf(env_name, sizeof(env_name), "CCR_TASK_TYPE=%s", async ? "async" : "sync");
	rc = exec_start(be->exec, out->task_id, payload_url.p ? payload_url.p : payload_key, extra,
				  &out->execution_name, e);
	if (rc < 0)
		goto fail;
	out->queued = rc == 1;
	stage = 3;
	if ((rc = td_write_active(be, out, async, 0, e)) != 0)
		goto fail;
	buf_free(&payload_url);
	return 0;
fail:
	if (!e->http)
		e->http = 500;
	if (stage >= 3)
		exec_cancel(be->exec, out->execution_name.p, &ignore);
	if (stage >= 2)
		storage_delete(be->storage, payload_key, &ignore);
	if (stage >= 1) {
		storage_delete(be->storage, owner_key, &ignore);
		storage_delete(be->storage, meta_key, &ignore);
	}
	buf_free(&payload_url);
	return -1;
}

void tasks_json_reply(struct buf *body, const char *fmt_err, const char *msg, const char *task_id, const char *status)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return;
	if (fmt_err)
		cJSON_AddStringToObject(o, "error", fmt_err);
	if (msg)
		cJSON_AddStringToObject(o, "message", msg);
	if (task_id)
		cJSON_AddStringToObject(o, "taskId", task_id);
	if (status)
		cJSON_AddStringToObject(o, "status", status);
	jsj_print(body, o, 0);
	cJSON_Delete(o);
}

/* Mark the running task's active record as cancelling. */
static void mark_cancelling(struct backends *be, const char *id, const cJSON *active)
{
	struct submitted s;
	struct err e = ERR_INIT;
	const cJSON *v;

	memset(&s, 0, sizeof(s));
	snprintf(s.task_id, sizeof(s.task_id), "%s", id);
	v = cJSON_GetObjectItemCaseSensitive(active, "startedAt");
	snprintf(s.created_at, sizeof(s.created_at), "%s", cJSON_IsString(v) ? v->valuestring : "");
	buf_adds(&s.execution_name, cJSON_GetObjectItemCaseSensitive(active, "executionName")->valuestring);
	v = cJSON_GetObjectItemCaseSensitive(active, "type");
	td_write_active(be, &s, cJSON_IsString(v) && !strcmp(v->valuestring, "async"), 1, &e);
	td_submitted_free(&s);
}

void tasks_cancel(struct backends *be, struct reconciler *rec, const char *id, struct tr_cancel_result *out)
{
	char key[TR_KEY_MAX];
	struct err e = ERR_INIT;
	cJSON *active, *meta;
	const cJSON *v;

	memset(out, 0, sizeof(*out));
	if (!td_id_valid(id)) {
		out->outcome = TR_CANCEL_BAD_ID;
		return;
	}
	active = td_read_json(be->storage, tr_key_active(key, id));
	meta = active ? td_read_json(be->storage, tr_key_metadata(key, id)) : NULL;
	if (!active || tr_meta_terminal(meta)) {
		out->outcome = TR_CANCEL_NOT_RUNNING;
	} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(active, "queued"))) {
		/* Never started: it ends here, as cancelled, at once. */
		out->outcome = reconcile_finalise(rec, id, "cancelled", "cancelled while queued", &e) < 0 ? TR_CANCEL_FAILED
													    : TR_CANCEL_DONE;
		snprintf(out->msg, sizeof(out->msg), "%s", e.msg);
	} else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(active, "cancelling"))) {
		out->outcome = TR_CANCEL_ALREADY;
	} else if (!cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(active, "executionName")) ||
		   exec_cancel(be->exec, v->valuestring, &e) != 0) {
		out->outcome = TR_CANCEL_FAILED;
		snprintf(out->msg, sizeof(out->msg), "Task cancellation initiated but encountered an error");
	} else {
		mark_cancelling(be, id, active);
		out->outcome = TR_CANCEL_DONE;
	}
	cJSON_Delete(active);
	cJSON_Delete(meta);
}

int tasks_active(struct backends *be, size_t limit, struct buf *body, struct err *e)
{
	struct storage_list l;
	cJSON *o = cJSON_CreateObject(), *arr;
	size_t i, n = 0;
	int rc;

	if (!o || !(arr = cJSON_CreateArray())) {
		cJSON_Delete(o);
		return err_http(e, 500, "out of memory");
	}
	if (storage_list(be->storage, TR_ACTIVE_PREFIX, NULL, &l, e) != 0) {
		cJSON_Delete(o);
		cJSON_Delete(arr);
		return -1;
	}
	for (i = 0; i < l.n && n < limit; i++) {
		const char *id = tr_active_task(l.items[i].key);
		char meta_key[TR_KEY_MAX];
		cJSON *a = td_read_json(be->storage, l.items[i].key), *m;

		m = id && td_id_valid(id) ? td_read_json(be->storage, tr_key_metadata(meta_key, id)) : NULL;
		if (!a || tr_meta_terminal(m)) {
			struct err ignore = ERR_INIT;
			storage_delete(be->storage, l.items[i].key, &ignore);   /* finished: unmark */
		} else {
			cJSON_DeleteItemFromObject(a, "queued");
			cJSON_AddItemToArray(arr, a);
			a = NULL;
			n++;
		}
		cJSON_Delete(a);
		cJSON_Delete(m);
	}
	storage_list_free(&l);
	cJSON_AddNumberToObject(o, "active", (double)n);
	cJSON_AddItemToObject(o, "tasks", arr);
	rc = jsj_print(body, o, 0);
	cJSON_Delete(o);
	return rc == 0 ? 0 : err_http(e, 500, "out of memory");
}

void tasks_get(struct backends *be, const char *id, int *status, struct buf *body)
{
	char key[TR_KEY_MAX];
	cJSON *meta, *active;

	if (!td_id_valid(id)) {
		*status = 400;
		tasks_json_reply(body, "Invalid taskId format. Must be alphanumeric with underscores and hyphens only.",
				 NULL, NULL, NULL);
		return;
	}
	if (!(meta = td_read_json(be->storage, tr_key_metadata(key, id)))) {
		*status = 404;
		tasks_json_reply(body, "Task not found", NULL, id, NULL);
		return;
	}
	active = td_read_json(be->storage, tr_key_active(key, id));
	if (active && !cJSON_GetObjectItemCaseSensitive(meta, "executionName"))
		cJSON_AddItemToObject(meta, "executionName",
				      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(active, "executionName"), 1));
	if (active && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(active, "queued")) &&
	    tr_meta_status(meta) == TR_PENDING)
		cJSON_ReplaceItemInObject(meta, "status", cJSON_CreateString("queued"));
	*status = 200;
	jsj_print(body, meta, 0);
	cJSON_Delete(meta);
	cJSON_Delete(active);
}
