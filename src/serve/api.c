/*
 * api.c: the task endpoints of `ccr serve` (seed-spec §2.3–§2.6, plus
 * GET /tasks/:taskId and GET /tasks/:taskId/events).
 *
 * Every handler reads the request, calls tasks.c or sse.c, and writes the
 * seed's status codes and bodies.  Bodies are JSON objects in UTF-8 that
 * JSON.parse would accept (util/jscheck.h: no trailing data, no raw
 * control characters in strings, finite numbers); any other body is a 400
 * with a JSON error naming the byte at fault, never a crash.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include <cJSON.h>

#include "serve/idem.h"
#include "serve/log.h"
#include "serve/reconcile.h"
#include "serve/serve.h"
#include "serve/sse.h"
#include "serve/sysprompt.h"
#include "serve/tasks.h"
#include "util/jscheck.h"
#include "util/jsjson.h"

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], need, cp, min;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			need = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			need = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			need = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		for (size_t k = 1; k <= need; k++) {
			if (i + k >= n || (s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* The request body as a JSON object, or an answered 400 (returns NULL). */
static cJSON *json_body(struct hs_req *req, struct hs_resp *resp)
{
	const char *ct = hs_req_header(req, "Content-Type");
	size_t len = 0;
	const char *body = hs_req_body(req, &len);
	struct err e = ERR_INIT;
	cJSON *j;

	/* Like the seed, a non-JSON content type reads as an empty object, and
	 * so does an empty JSON body (body-parser's rule). */
	if (!ct || strncasecmp(ct, "application/json", 16) != 0 || len == 0)
		return cJSON_CreateObject();
	if (!utf8_valid((const unsigned char *)body, len)) {
		hs_send_json_error(resp, 400, "request body is not valid UTF-8");
		return NULL;
	}
	/* body-parser's decoder dropped a leading byte order mark. */
	if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0)
		body += 3, len -= 3;
	/* JSON.parse's grammar first: cJSON alone would take trailing data,
	 * raw control characters (a NUL cuts a string short) and 1e999. */
	if (jsc_json_check(body, len, &e) != 0) {
		err_prefix(&e, "request body is not valid JSON");
		hs_send_json_error(resp, 400, e.msg);
		return NULL;
	}
	j = cJSON_ParseWithLength(body, len);
	if (!j) {
		hs_send_json_error(resp, 400, "request body is not valid JSON");
		return NULL;
	}
	if (cJSON_IsArray(j)) {
		/* The seed reads an array as an object without fields. */
		cJSON_Delete(j);
		return cJSON_CreateObject();
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		hs_send_json_error(resp, 400, "request body must be a JSON object");
		return NULL;
	}
	return j;
}

/* A log line carrying the task id as its own field (task ids are
 * validated or generated, so they need no escaping). */
static void tlog(enum slog_level lv, const char *task, const char *fmt, ...)
{
	char msg[768], extra[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(extra, sizeof(extra), "\"task_id\":\"%s\"", td_id_valid(task) ? task : "");
	slog_fields(lv, msg, extra);
}

static int send_buf(struct hs_resp *resp, int status, const struct buf *b)
{
	return hs_send(resp, status, HS_JSON, b->p ? b->p : "{}", b->p ? b->len : 2);
}

/* Submit the request's task.  0: started (s filled); 1: an Idempotency-Key
 * replay (im names the original task); -1: answered with an error.  With
 * an Idempotency-Key, the key is claimed before the task is stored and
 * released again when the task could not be started. */
static int submit(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, int async, struct submitted *s,
		  struct idem *im)
{
	const char *ikey = hs_req_header(req, "Idempotency-Key");
	struct err e = ERR_INIT;
	cJSON *body = json_body(req, resp);
	int rc, claimed = 0;

	if (!body)
		return -1;
	rc = tasks_validate(body, async, &sc->set->callbacks, &e);
	if (rc == 0 && ikey) {
		rc = idem_begin(sc->be, &sc->key, async ? "run-async" : "run", ikey, body, im, &e);
		if (rc == IDEM_REPLAY) {
			cJSON_Delete(body);
			tlog(SLOG_INFO, im->task_id, "Idempotency-Key replay: answering with the original task");
			return 1;
		}
		claimed = rc == IDEM_NEW;
	}
	if (rc == 0 && (rc = sysprompt_apply(sc->prompt, body, &e)) != 0)
		e.http = 503;
	if (rc == 0)
		rc = tasks_submit(sc->be, &sc->key, body, async, claimed ? im->task_id : NULL, s, &e);
	cJSON_Delete(body);
	if (rc != 0) {
		if (claimed)
			idem_abort(sc->be, im);
		tlog(SLOG_WARNING, s->task_id, "task not started: %s", e.msg);
		hs_send_json_error(resp, e.http ? e.http : 500, e.msg);
		return -1;
	}
	tlog(SLOG_INFO, s->task_id, "task started (%s)%s", s->execution_name.p ? s->execution_name.p : "",
		       s->queued ? ", queued" : "");
	return 0;
}

/* The Last-Event-ID of req (header, or ?lastEventId=): 0 and *after, or
 * -1 after answering a 400. */
/* Stream a task's log (sse.h) from what the service holds. */
static void stream(struct serve_ctx *sc, struct hs_resp *resp, const char *task_id, uint64_t after,
		   int cancel_on_disconnect)
{
	struct sse_src src = { sc->be, sc->rec, sc->topics };

	sse_stream(&src, resp, task_id, after, cancel_on_disconnect);
}

static int last_event_id(struct hs_req *req, struct hs_resp *resp, uint64_t *after)
{
	const char *last = hs_req_header(req, "Last-Event-ID");

	*after = 0;
	if (!last)
		last = hs_req_query(req, "lastEventId");
	if (last && sse_last_event_id(last, after) != 0) {
		hs_send_json_error(resp, 400, "Last-Event-ID must be a line number (decimal digits)");
		return -1;
	}
	return 0;
}

int api_run(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	struct submitted s;
	struct idem im;
	uint64_t after = 0;
	cJSON *o;
	int rc;

	if (!serve_authorized(sc, req, resp))
		return 0;
	(void)m;
	memset(&s, 0, sizeof(s));
	memset(&im, 0, sizeof(im));
	/* Last-Event-ID only means something to a replay (Idempotency-Key). */
	if (hs_req_header(req, "Idempotency-Key") && last_event_id(req, resp, &after) != 0)
		return 0;
	rc = submit(sc, req, resp, 0, &s, &im);
	if (rc == 1 && !im.response) {
		hs_send_json_error(resp, 409,
				   "a request with this Idempotency-Key is still being processed; retry in a few seconds");
	} else if (rc == 1) {
		/* The original task's stream, from the start or Last-Event-ID. */
		stream(sc, resp, im.task_id, after, 0);
	} else if (rc == 0) {
		if (im.object[0] && (o = cJSON_CreateObject())) {
			cJSON_AddStringToObject(o, "taskId", s.task_id);
			idem_commit(sc->be, &im, o);
			cJSON_Delete(o);
		}
		/* A client that goes away does not end the task: it can come back
		 * with GET /tasks/:id/events and Last-Event-ID, unless it asked
		 * otherwise. */
		stream(sc, resp, s.task_id, 0, s.cancel_on_disconnect);
	}
	idem_free(&im);
	td_submitted_free(&s);
	return 0;
}

int api_run_async(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	struct submitted s;
	struct idem im;
	struct buf out = BUF_INIT;
	cJSON *o;
	int rc;

	if (!serve_authorized(sc, req, resp))
		return 0;
	(void)m;
	memset(&s, 0, sizeof(s));
	memset(&im, 0, sizeof(im));
	rc = submit(sc, req, resp, 1, &s, &im);
	if (rc == 1 && !im.response) {
		hs_send_json_error(resp, 409,
				   "a request with this Idempotency-Key is still being processed; retry in a few seconds");
	} else if (rc == 1) {
		jsj_print(&out, im.response, 0);
		send_buf(resp, 202, &out);
	} else if (rc == 0 && (o = cJSON_CreateObject())) {
		cJSON_AddStringToObject(o, "taskId", s.task_id);
		cJSON_AddStringToObject(o, "status", s.queued ? "queued" : "pending");
		cJSON_AddStringToObject(o, "logsPath", s.logs_path.p ? s.logs_path.p : "");
		cJSON_AddStringToObject(o, "createdAt", s.created_at);
		cJSON_AddStringToObject(o, "executionName", s.execution_name.p ? s.execution_name.p : "");
		jsj_print(&out, o, 0);
		if (im.object[0])
			idem_commit(sc->be, &im, o);
		cJSON_Delete(o);
		send_buf(resp, 202, &out);
	} else if (rc == 0) {
		send_buf(resp, 202, &out);
	}
	buf_free(&out);
	idem_free(&im);
	td_submitted_free(&s);
	return 0;
}

int api_cancel(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	const char *id = route_param(m, "taskId");
	struct tr_cancel_result r;
	struct buf out = BUF_INIT;
	char msg[300];
	int status = 200;

	if (!serve_authorized(sc, req, resp))
		return 0;
	(void)req;
	reconcile_check(sc->rec, id);
	tasks_cancel(sc->be, sc->rec, id, &r);
	switch (r.outcome) {
	case TR_CANCEL_BAD_ID:
		status = 400;
		tasks_json_reply(&out, "Invalid taskId format. Must be alphanumeric with underscores and hyphens only.",
				 NULL, NULL, NULL);
		break;
	case TR_CANCEL_NOT_RUNNING:
		status = 404;
		snprintf(msg, sizeof(msg), "Task %s is not currently running or has already completed", id);
		tasks_json_reply(&out, "Task not found", msg, id, NULL);
		break;
	case TR_CANCEL_DONE:
		tasks_json_reply(&out, NULL, "Task cancelled successfully", id, "cancelled");
		break;
	case TR_CANCEL_ALREADY:
		tasks_json_reply(&out, NULL, "Task is already being cancelled", id, "cancelling");
		break;
	case TR_CANCEL_FAILED:
		status = 500;
		tasks_json_reply(&out, "Failed to cancel task", r.msg, id, NULL);
		break;
	}
	send_buf(resp, status, &out);
	buf_free(&out);
	return 0;
}

int api_status(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;

	if (!serve_authorized(sc, req, resp))
		return 0;
	(void)req, (void)m;
	if (tasks_active(sc->be, 1000, &out, &e) != 0) {
		buf_reset(&out);
		buf_adds(&out, "{\"error\":\"Internal server error\",\"message\":");
		jsj_string(&out, e.msg, strlen(e.msg));
		buf_addc(&out, '}');
		send_buf(resp, 500, &out);
	} else {
		send_buf(resp, 200, &out);
	}
	buf_free(&out);
	return 0;
}

int api_task(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	struct buf out = BUF_INIT;
	int status = 500;

	if (!serve_authorized(sc, req, resp))
		return 0;
	(void)req;
	reconcile_check(sc->rec, route_param(m, "taskId"));
	tasks_get(sc->be, route_param(m, "taskId"), &status, &out);
	send_buf(resp, status, &out);
	buf_free(&out);
	return 0;
}

int api_events(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	const char *id = route_param(m, "taskId");
	struct buf out = BUF_INIT;
	uint64_t after = 0;
	int status = 500;

	if (!serve_authorized(sc, req, resp))
		return 0;
	if (last_event_id(req, resp, &after) != 0)
		return 0;
	reconcile_check(sc->rec, id);
	tasks_get(sc->be, id, &status, &out);
	buf_free(&out);
	if (status != 200)
		return hs_send_json_error(resp, status, status == 404 ? "Task not found" : "Invalid taskId format"), 0;
	stream(sc, resp, id, after, 0);
	return 0;
}
