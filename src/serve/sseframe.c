/*
 * sseframe.c: see sseframe.h.
 */
#include <string.h>

#include "serve/sseframe.h"
#include "task/record.h"
#include "util/jsjson.h"

int sf_frame(struct buf *out, uint64_t id, const char *line, size_t n)
{
	cJSON *v = cJSON_ParseWithLength(line, n);
	int rc = buf_printf(out, "id: %llu\ndata: ", (unsigned long long)id);

	if (rc == 0 && v)
		rc = jsj_stringify(out, v);
	else if (rc == 0)
		rc = buf_adds(out, "{\"type\":\"text\",\"content\":") || jsj_string(out, line, n) || buf_addc(out, '}');
	cJSON_Delete(v);
	return rc || buf_adds(out, "\n\n") ? -1 : 0;
}

/* The seed's terminal event (if any), then ccr's `done`. */
int sf_final(struct buf *out_buf, const cJSON *meta)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(meta, "error");
	struct buf out = BUF_INIT;
	cJSON *done = cJSON_CreateObject();
	static const char *keys[] = { "status", "terminalReason", "exitCode", "durationMs", "error" };
	size_t i;
	int rc;

	if (tr_meta_status(meta) == TR_CANCELLED) {
		buf_adds(&out, "event: cancelled\ndata: {\"message\":\"Task cancelled by user\"}\n\n");
	} else if (tr_meta_status(meta) == TR_FAILED) {
		buf_adds(&out, "event: error\ndata: {\"error\":");
		if (cJSON_IsString(err) && err->valuestring[0])
			jsj_string(&out, err->valuestring, strlen(err->valuestring));
		else
			buf_adds(&out, "\"Task failed\"");
		buf_adds(&out, "}\n\n");
	}
	if (done) {
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, keys[i]);
			if (v)
				cJSON_AddItemToObject(done, keys[i], cJSON_Duplicate(v, 1));
		}
		{
			const cJSON *res = cJSON_GetObjectItemCaseSensitive(meta, "result");
			const cJSON *u = cJSON_GetObjectItemCaseSensitive(res, "usage");
			if (u)
				cJSON_AddItemToObject(done, "usage", cJSON_Duplicate(u, 1));
			if ((u = cJSON_GetObjectItemCaseSensitive(meta, "proxyUsage")))
				cJSON_AddItemToObject(done, "proxyUsage", cJSON_Duplicate(u, 1));
		}
		buf_adds(&out, "event: done\ndata: ");
		jsj_stringify(&out, done);
		buf_adds(&out, "\n\n");
		cJSON_Delete(done);
	}
	rc = out.p ? buf_add(out_buf, out.p, out.len) : 0;
	buf_free(&out);
	return rc;
}
