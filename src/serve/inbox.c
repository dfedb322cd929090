/*
 * inbox.c: POST /tasks/:taskId/messages, /interrupt and /end: talking to
 * a running task that takes follow-up messages (idleAfterResultSeconds).
 *
 * Each accepted request becomes one record, sealed with the payload
 * envelope (a message is as private as a prompt), with the id
 * <13-digit ms>-<8 hex>; ids of one serve grow strictly in the order
 * requests are accepted, and the job acts on records in id order.  In
 * local mode serve first hands the sealed record to the task's job over
 * its unix socket (task/msgsock.h; answered once the job has queued it);
 * when that fails (no job listens yet, or any more, or it did not answer
 * in time), and always in cloud mode, the record is stored as
 * inbox/<task id>/<id>.enc, which the job's inbox thread (job/convo.h)
 * reads, acts on and deletes.  So it works from any serve instance, in
 * both modes, and nothing is written in plaintext.  The log line of each
 * accepted request names the way it went ("via": "socket" or "inbox").
 * A task is addressed only while its metadata says acceptsMessages and it
 * has not ended.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "backend/config.h"
#include "crypto/crypto.h"
#include "task/msgsock.h"
#include "serve/log.h"
#include "serve/reconcile.h"
#include "serve/serve.h"
#include "serve/tasks.h"
#include "task/record.h"
#include "util/clock.h"
#include "util/hex.h"
#include "util/jscheck.h"
#include "util/jsjson.h"

#define INBOX_TEXT_MAX (1u << 20)
#define INBOX_DIRECT_TIMEOUT_MS 2000

static int terminal_status(const cJSON *meta)
{
	return tr_meta_terminal(meta);
}

/* The task may take a message now: 0, or an answered 4xx (-1). */
static int check_task(struct serve_ctx *sc, struct hs_resp *resp, const char *id)
{
	char key[TR_KEY_MAX];
	cJSON *meta;
	int rc = 0;

	if (!td_id_valid(id))
		return hs_send_json_error(resp, 400, "Invalid taskId format. Must be alphanumeric with underscores and "
						     "hyphens only."), -1;
	reconcile_check(sc->rec, id);
	if (!(meta = td_read_json(sc->be->storage, tr_key_metadata(key, id))))
		return hs_send_json_error(resp, 404, "Task not found"), -1;
	if (terminal_status(meta)) {
		hs_send_json_error(resp, 409, "the task has ended; start a new task (resumeTaskId continues its "
					      "conversation)");
		rc = -1;
	} else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "acceptsMessages"))) {
		hs_send_json_error(resp, 409, "the task does not take messages: start it with idleAfterResultSeconds");
		rc = -1;
	}
	cJSON_Delete(meta);
	return rc;
}

/* The time part of the next message id: the clock, but never the same
 * or an earlier millisecond than the last id this serve made. */
static long long next_id_ms(struct serve_ctx *sc)
{
	long long ms = (long long)clock_ms();

	pthread_mutex_lock(&sc->msg_ids.mu);
	if (ms <= sc->msg_ids.last)
		ms = sc->msg_ids.last + 1;
	sc->msg_ids.last = ms;
	pthread_mutex_unlock(&sc->msg_ids.mu);
	return ms;
}

/* Hand the sealed record to the task's job (local mode), else store it in
 * the inbox; *via says which.  0, or -1 with e set. */
static int deliver(struct serve_ctx *sc, const char *id, const char *msg_id, const struct buf *sealed,
		   const char **via, struct err *e)
{
	const char *meta[] = { "taskId", id, "encrypted", "true", NULL };
	struct storage_put_opts o = { "application/octet-stream", meta, 0 };
	struct err direct = ERR_INIT;
	char key[TR_KEY_MAX];

	*via = "socket";
	if (sc->be->mode == CFG_LOCAL &&
	    msk_send(sc->be->data_dir, id, sealed->p, sealed->len, INBOX_DIRECT_TIMEOUT_MS, &direct) == 0)
		return 0;
	if (direct.msg[0] && strncmp(direct.msg, "no job listens", 14) != 0)
		slog(SLOG_WARNING, "task inbox: %s; the message goes through the inbox", direct.msg);
	*via = "inbox";
	tr_key_inbox_message(key, id, msg_id);
	return storage_put(sc->be->storage, key, sealed->p, sealed->len, &o, e);
}

/* Pass {"type":type[,"text":text],"id","taskId"} sealed to the task and answer 202. */
static int post(struct serve_ctx *sc, struct hs_resp *resp, const char *id, const char *type, const char *text)
{
	struct buf plain = BUF_INIT, sealed = BUF_INIT, out = BUF_INIT;
	struct err e = ERR_INIT;
	char msg_id[40], rnd_hex[9];
	const char *via = "inbox";
	uint8_t rnd[4];
	cJSON *j = cJSON_CreateObject(), *a;
	int rc = -1;

	if (!j || cr_random(rnd, sizeof(rnd)) != 0) {
		cJSON_Delete(j);
		return hs_send_json_error(resp, 500, "out of memory or no random bytes"), 0;
	}
	hex_fmt(rnd_hex, rnd, sizeof(rnd));
	snprintf(msg_id, sizeof(msg_id), "%013lld-%s", next_id_ms(sc), rnd_hex);
	cJSON_AddStringToObject(j, "type", type);
	if (text)
		cJSON_AddStringToObject(j, "text", text);
	cJSON_AddStringToObject(j, "id", msg_id);
	cJSON_AddStringToObject(j, "taskId", id);
	if (jsj_print(&plain, j, 0) == 0 && envelope_seal(sc->be->sealer, plain.p, plain.len, &sealed, &e) == 0 &&
	    deliver(sc, id, msg_id, &sealed, &via, &e) == 0)
		rc = 0;
	if (plain.p)
		cr_wipe(plain.p, plain.len);
	buf_free(&plain);
	buf_free(&sealed);
	cJSON_Delete(j);
	if (rc != 0)
		return hs_send_json_error(resp, 503, e.msg[0] ? e.msg : "cannot store the message"), 0;
	if ((a = cJSON_CreateObject())) {
		cJSON_AddStringToObject(a, "taskId", id);
		cJSON_AddStringToObject(a, "messageId", msg_id);
		cJSON_AddStringToObject(a, "type", type);
		cJSON_AddStringToObject(a, "status", "queued");
		jsj_print(&out, a, 0);
		cJSON_Delete(a);
	}
	{	/* logged before the answer, so the log is complete when the client hears back */
		char extra[300];
		snprintf(extra, sizeof(extra), "\"task_id\":\"%s\",\"message_id\":\"%s\",\"kind\":\"%s\",\"via\":\"%s\"",
			 id, msg_id, type, via);
		slog_fields(SLOG_INFO, "task inbox: accepted", extra);
	}
	hs_send(resp, 202, HS_JSON, out.p ? out.p : "{}", out.p ? out.len : 2);
	buf_free(&out);
	return 0;
}

int api_message(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	const char *id = route_param(m, "taskId");
	size_t len = 0;
	const char *body = hs_req_body(req, &len);
	struct err e = ERR_INIT;
	const cJSON *text;
	cJSON *j;

	if (!serve_authorized(sc, req, resp))
		return 0;
	if (!body || len == 0 || jsc_json_check(body, len, &e) != 0 || !(j = cJSON_ParseWithLength(body, len)))
		return hs_send_json_error(resp, 400, "the body must be JSON: {\"text\": \"...\"}"), 0;
	text = cJSON_GetObjectItemCaseSensitive(j, "text");
	if (!cJSON_IsString(text) || !text->valuestring[0] || strlen(text->valuestring) > INBOX_TEXT_MAX) {
		cJSON_Delete(j);
		return hs_send_json_error(resp, 400, "text is required: a non-empty string of at most 1 MiB"), 0;
	}
	if (check_task(sc, resp, id) == 0)
		post(sc, resp, id, "message", text->valuestring);
	cJSON_Delete(j);
	return 0;
}

int api_interrupt(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	const char *id = route_param(m, "taskId");

	if (!serve_authorized(sc, req, resp))
		return 0;
	if (check_task(sc, resp, id) == 0)
		post(sc, resp, id, "interrupt", NULL);
	return 0;
}

int api_end(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	const char *id = route_param(m, "taskId");

	if (!serve_authorized(sc, req, resp))
		return 0;
	if (check_task(sc, resp, id) == 0)
		post(sc, resp, id, "end", NULL);
	return 0;
}
