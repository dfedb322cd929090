/*
 * taskdoc.c: see taskdoc.h.
 */
#include <string.h>

#include "serve/taskdoc.h"
#include "util/jsjson.h"

int td_id_valid(const char *id)
{
	const char *c;

	if (!id || !*id || strlen(id) > TASK_ID_MAX)
		return 0;
	for (c = id; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
		      *c == '-'))
			return 0;
	return 1;
}

cJSON *td_read_json(struct storage *st, const char *key)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	cJSON *j = NULL;

	if (storage_get(st, key, 0, &b, &e) == 0)
		j = cJSON_ParseWithLength(b.p, b.len);
	buf_free(&b);
	return j;
}

int td_put_json(struct storage *st, const char *key, const cJSON *doc, unsigned indent, int if_absent,
		struct err *e)
{
	struct storage_put_opts o = { "application/json", NULL, if_absent };
	struct buf text = BUF_INIT;
	int rc;

	if (jsj_print(&text, doc, indent) != 0)
		return err_http(e, 500, "out of memory");
	rc = storage_put(st, key, text.p, text.len, &o, e);
	buf_free(&text);
	return rc;
}

int td_write_active(struct backends *be, const struct submitted *s, int async, int cancelling, struct err *e)
{
	char key[TR_KEY_MAX];
	cJSON *o = cJSON_CreateObject();
	int rc;

	if (!o)
		return err_http(e, 500, "out of memory");
	cJSON_AddStringToObject(o, "taskId", s->task_id);
	cJSON_AddStringToObject(o, "type", async ? "async" : "sync");
	cJSON_AddStringToObject(o, "executionName", s->execution_name.p ? s->execution_name.p : "");
	cJSON_AddStringToObject(o, "startedAt", s->created_at);
	cJSON_AddBoolToObject(o, "cancelling", cancelling);
	if (s->queued)
		cJSON_AddTrueToObject(o, "queued");
	rc = td_put_json(be->storage, tr_key_active(key, s->task_id), o, 0, 0, e);
	cJSON_Delete(o);
	return rc;
}

void td_submitted_free(struct submitted *s)
{
	buf_free(&s->execution_name);
	buf_free(&s->logs_path);
}
