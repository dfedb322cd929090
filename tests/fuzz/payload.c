/*
 * payload.c: a request body -> task validation (src/serve/tasks.c
 * tasks_validate, src/task/payload.c payload_parse).
 *
 * Properties: payload_parse either fails with a message or yields a
 * payload whose fields have the documented types and ranges (prompt and a
 * credential present, numbers in range, string arrays of strings,
 * environmentSecrets of strings); and the server's check of a synchronous
 * task (tasks_validate) accepts a body exactly when the job can parse what
 * the server stores for it (the body printed by jsj_stringify, as Node's
 * JSON.stringify would: 1e999 is Infinity and is stored as null), so
 * nothing the API accepts can fail later as "invalid payload".
 */
#include <math.h>

#include "cJSON.h"
#include "fuzz.h"
#include "task/payload.h"
#include "serve/tasks.h"
#include "util/jsjson.h"

static void check_strings(const cJSON *arr, const char *what)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, arr)
		FUZZ_CHECK(cJSON_IsString(it) && it->valuestring, "%s holds a non-string", what);
}

static void check_payload(const struct payload *p)
{
	FUZZ_CHECK(p->prompt && p->prompt[0], "no prompt");
	FUZZ_CHECK(p->api_key || p->oauth_token, "no credential");
	FUZZ_CHECK(p->cwd_relative && p->git_branch, "defaults missing");
	FUZZ_CHECK(p->timeout_minutes > 0 && p->timeout_minutes <= PAYLOAD_MAX_TIMEOUT_MIN, "timeout %g",
		   p->timeout_minutes);
	FUZZ_CHECK(p->max_turns >= 0 && p->max_turns <= 100000, "maxTurns %d", p->max_turns);
	FUZZ_CHECK(p->git_depth >= 0 && p->git_depth <= 1000000, "gitDepth %d", p->git_depth);
	check_strings(p->allowed_tools, "allowedTools");
	check_strings(p->disallowed_tools, "disallowedTools");
	check_strings(p->pre_exec, "preExecutionCommands");
	check_strings(p->allowed_hosts, "allowedHosts");
	check_strings(p->env_secrets, "environmentSecrets");
	FUZZ_CHECK(!p->post_actions || cJSON_IsObject(p->post_actions), "postExecutionActions");
	FUZZ_CHECK(!p->mcp_config || cJSON_IsObject(p->mcp_config), "mcpConfig");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload p;
	struct err e = ERR_INIT, ev = ERR_INIT;
	cJSON *body;
	int rc, rv;

	rc = payload_parse(&p, (const char *)data, size, &e);
	if (rc == 0) {
		check_payload(&p);
		payload_free(&p);
	} else {
		FUZZ_CHECK(e.msg[0], "payload_parse failed without a message");
	}
	body = cJSON_ParseWithLength((const char *)data, size);
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		return 0;
	}
	rv = tasks_validate(body, 0, NULL, &ev);
	{
		struct buf stored = BUF_INIT;
		struct err es = ERR_INIT;
		int rs;

		FUZZ_CHECK(jsj_stringify(&stored, body) == 0, "jsj_stringify");
		rs = payload_parse(&p, stored.p, stored.len, &es);
		if (rs == 0) {
			check_payload(&p);
			payload_free(&p);
		}
		FUZZ_CHECK((rv == 0) == (rs == 0), "tasks_validate %d (%s) but the job's payload_parse %d (%s)", rv,
			   ev.msg, rs, es.msg);
		buf_free(&stored);
	}
	if (rv != 0)
		FUZZ_CHECK(ev.http == 400 || ev.http == 500, "tasks_validate status %d", ev.http);
	memset(&ev, 0, sizeof(ev));
	rv = tasks_validate(body, 1, NULL, &ev);
	if (rv != 0)
		FUZZ_CHECK(ev.msg[0], "async tasks_validate failed without a message");
	cJSON_Delete(body);
	return 0;
}
