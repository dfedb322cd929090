/*
 * report.c: see report.h.  Documents are built as cJSON trees in key order
 * and printed by jsjson, so they match JavaScript's JSON.stringify byte
 * for byte.
 */
#include <stdio.h>
#include <string.h>

#include "task/report.h"
#include "util/jsjson.h"

void report_init(struct report *r, const char *task_id)
{
	memset(r, 0, sizeof(*r));
	r->task_id = task_id;
	r->status = TR_PENDING;
	r->exit_code = -1;
}

void report_free(struct report *r)
{
	buf_free(&r->error);
	cJSON_Delete(r->result);
	cJSON_Delete(r->proxy_usage);
	cJSON_Delete(r->uploaded_files);
	cJSON_Delete(r->git_commit);
	cJSON_Delete(r->external_pr);
	cJSON_Delete(r->billing);
	cJSON_Delete(r->webhook);
}

static void count_turn(struct report *r, const cJSON *msg)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(msg, "message"), "id");

	/* The CLI may print one line per content block of one message. */
	if (cJSON_IsString(id) && id->valuestring) {
		if (strcmp(id->valuestring, r->last_msg_id) == 0)
			return;
		snprintf(r->last_msg_id, sizeof(r->last_msg_id), "%s", id->valuestring);
	}
	r->turns++;
}

static void keep_result(struct report *r, const cJSON *msg)
{
	static const char *keys[] = { "session_id", "num_turns", "usage", "modelUsage", "total_cost_usd", "is_error",
				      "subtype" };
	cJSON *res = cJSON_CreateObject();
	size_t i;

	if (!res)
		return;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, keys[i]);
		if (v)
			cJSON_AddItemToObject(res, keys[i], cJSON_Duplicate(v, 1));
	}
	{
		const cJSON *txt = cJSON_GetObjectItemCaseSensitive(msg, "result");
		const cJSON *sub = cJSON_GetObjectItemCaseSensitive(msg, "subtype");
		int is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "is_error"));
		if (is_error && cJSON_IsString(txt))
			snprintf(r->result_error, sizeof(r->result_error), "%s", txt->valuestring);
		r->result_ok = !is_error && cJSON_IsString(sub) && strcmp(sub->valuestring, "success") == 0;
	}
	if (cJSON_GetObjectItemCaseSensitive(msg, "total_cost_usd"))
		cJSON_AddStringToObject(res, "costSource", "claude-cli-estimate");
	cJSON_Delete(r->result);
	r->result = res;
}

void report_line(struct report *r, const char *line, size_t n)
{
	cJSON *msg = cJSON_ParseWithLength(line, n);
	const cJSON *type = msg ? cJSON_GetObjectItemCaseSensitive(msg, "type") : NULL;

	if (cJSON_IsString(type)) {
		const cJSON *sid = cJSON_GetObjectItemCaseSensitive(msg, "session_id");

		if (!r->session_id[0] && cJSON_IsString(sid) && strlen(sid->valuestring) < sizeof(r->session_id))
			snprintf(r->session_id, sizeof(r->session_id), "%s", sid->valuestring);
		if (strcmp(type->valuestring, "assistant") == 0)
			count_turn(r, msg);
		else if (strcmp(type->valuestring, "result") == 0)
			keep_result(r, msg);
		else if (strcmp(type->valuestring, "error") == 0)
			r->errors++;
	}
	cJSON_Delete(msg);
}

static void add_str(cJSON *o, const char *k, const char *v)
{
	if (v && *v)
		cJSON_AddStringToObject(o, k, v);
}

static void add_dup(cJSON *o, const char *k, const cJSON *v)
{
	if (v)
		cJSON_AddItemToObject(o, k, cJSON_Duplicate(v, 1));
}

static int terminal(const struct report *r)
{
	return tr_status_terminal(r->status);
}

/* A stored session: its id (what --resume takes), and what it continued. */
static void add_session(cJSON *o, const struct report *r)
{
	add_str(o, "resumedFrom", r->resumed_from);
	if (r->transcript_bytes > 0) {
		add_str(o, "sessionId", r->session_id);
		cJSON_AddNumberToObject(o, "sessionTranscriptBytes", (double)r->transcript_bytes);
	}
}

/* ccr's additions, after the seed's keys. */
static void add_outcome(cJSON *o, const struct report *r)
{
	add_str(o, "executionName", r->execution_name);
	if (!terminal(r)) {
		if (r->sandbox)
			add_str(o, "sandbox", r->sandbox);
		return;
	}
	add_str(o, "terminalReason", r->reason);
	cJSON_AddNumberToObject(o, "exitCode", r->exit_code);
	cJSON_AddNumberToObject(o, "durationMs", (double)r->duration_ms);
	add_dup(o, "result", r->result);
	add_dup(o, "proxyUsage", r->proxy_usage);
	add_session(o, r);
	add_dup(o, "uploadedFiles", r->uploaded_files);
	add_dup(o, "gitCommit", r->git_commit);
	add_dup(o, "externalRepoPR", r->external_pr);
	add_dup(o, "billing", r->billing);
	if (r->stopped_after_result)
		cJSON_AddTrueToObject(o, "stoppedAfterResult");
	if (r->sandbox)
		add_str(o, "sandbox", r->sandbox);
}

/* The document serve writes when a task is submitted (the seed's keys
 * and order): a sync task says so instead of echoing metadata. */
static int submitted_doc(const struct report *r, struct buf *out)
{
	cJSON *o = cJSON_CreateObject();
	int rc;

	if (!o)
		return -1;
	cJSON_AddStringToObject(o, "taskId", r->task_id);
	cJSON_AddStringToObject(o, "status", tr_status_name(r->status));
	add_str(o, "callbackUrl", r->callback_url);
	cJSON_AddStringToObject(o, "createdAt", r->created_at);
	cJSON_AddStringToObject(o, "encryptedPayloadPath", r->payload_path);
	if (r->accepts_messages)
		cJSON_AddTrueToObject(o, "acceptsMessages");
	if (!r->sync)
		cJSON_AddItemToObject(o, "metadata", r->metadata && !cJSON_IsNull(r->metadata)
							     ? cJSON_Duplicate(r->metadata, 1) : cJSON_CreateObject());
	else
		cJSON_AddStringToObject(o, "executionMode", "sync");
	rc = jsj_print(out, o, 2);
	cJSON_Delete(o);
	return rc;
}

int report_metadata(const struct report *r, struct buf *out)
{
	cJSON *o;
	int rc;

	if (r->payload_path)
		return submitted_doc(r, out);
	if (!(o = cJSON_CreateObject()))
		return -1;
	cJSON_AddStringToObject(o, "taskId", r->task_id);
	cJSON_AddStringToObject(o, "status", tr_status_name(r->status));
	add_str(o, "callbackUrl", r->callback_url);
	add_str(o, "createdAt", r->created_at);
	add_str(o, "startedAt", r->started_at);
	if (terminal(r)) {
		add_str(o, "completedAt", r->completed_at);
		if (r->status == TR_CANCELLED)
			add_str(o, "cancelledAt", r->completed_at);
		if (r->error.len)
			cJSON_AddStringToObject(o, "error", r->error.p);
	}
	add_dup(o, "metadata", r->metadata);
	if (r->accepts_messages)
		cJSON_AddTrueToObject(o, "acceptsMessages");
	add_outcome(o, r);
	add_dup(o, "webhook", r->webhook);
	rc = jsj_print(out, o, 2);
	cJSON_Delete(o);
	return rc;
}

int report_webhook(const struct report *r, struct buf *out)
{
	cJSON *o = cJSON_CreateObject(), *sum;
	int rc;

	if (!o)
		return -1;
	cJSON_AddStringToObject(o, "taskId", r->task_id);
	cJSON_AddStringToObject(o, "status", tr_status_name(r->status));
	cJSON_AddNumberToObject(o, "exitCode", r->exit_code);
	add_str(o, "logsPath", r->logs_path);
	sum = cJSON_AddObjectToObject(o, "summary");
	if (sum) {
		cJSON_AddNumberToObject(sum, "durationMs", (double)r->duration_ms);
		if (r->turns)
			cJSON_AddNumberToObject(sum, "turns", r->turns);
		if (r->errors)
			cJSON_AddNumberToObject(sum, "errors", r->errors);
		add_str(sum, "startedAt", r->started_at);
		add_str(sum, "completedAt", r->completed_at);
		if (r->status == TR_CANCELLED)
			add_str(sum, "cancelledAt", r->completed_at);
	}
	if (r->error.len)
		cJSON_AddStringToObject(o, "error", r->error.p);
	add_dup(o, "metadata", r->metadata);
	add_dup(o, "externalRepoPR", r->external_pr);
	add_dup(o, "uploadedFiles", r->uploaded_files);
	add_dup(o, "gitCommit", r->git_commit);
	add_dup(o, "billing", r->billing);
	add_str(o, "terminalReason", r->reason);
	add_str(o, "executionName", r->execution_name);
	add_dup(o, "result", r->result);
	add_dup(o, "proxyUsage", r->proxy_usage);
	add_session(o, r);
	rc = jsj_print(out, o, 0);
	cJSON_Delete(o);
	return rc;
}
