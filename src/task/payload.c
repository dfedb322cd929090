/*
 * payload.c: see payload.h.  One small checker per JSON type; the table of
 * fields below is the whole contract, in the seed's order.
 */
#include <math.h>
#include <string.h>

#include "crypto/crypto.h"
#include "net/hostpat.h"
#include "task/payload.h"
#include "util/jscheck.h"
#include "util/redact.h"

/* Truthiness as JavaScript sees it. */
static int truthy(const cJSON *v)
{
	if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
		return 0;
	if (cJSON_IsString(v))
		return v->valuestring && v->valuestring[0];
	if (cJSON_IsNumber(v))
		return v->valuedouble != 0 && !isnan(v->valuedouble);
	return 1;
}

static const cJSON *get(const struct payload *p, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(p->root, name);

	return truthy(v) ? v : NULL;
}

static int want_string(const struct payload *p, const char *name, const char **out, struct err *e)
{
	const cJSON *v = get(p, name);

	*out = NULL;
	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		return err_set(e, "%s must be a string", name);
	*out = v->valuestring;
	return 0;
}

static int want_string_array(const struct payload *p, const char *name, const cJSON **out, struct err *e)
{
	const cJSON *v = get(p, name), *it;

	*out = NULL;
	if (!v)
		return 0;
	if (!cJSON_IsArray(v))
		return err_set(e, "%s must be an array of strings", name);
	cJSON_ArrayForEach(it, v)
		if (!cJSON_IsString(it))
			return err_set(e, "%s must be an array of strings", name);
	*out = v;
	return 0;
}

static int want_object(const struct payload *p, const char *name, const cJSON **out, struct err *e)
{
	const cJSON *v = get(p, name);

	*out = NULL;
	if (!v)
		return 0;
	if (!cJSON_IsObject(v))
		return err_set(e, "%s must be an object", name);
	*out = v;
	return 0;
}

/* A number, or a string JavaScript's Number() reads as a finite number
 * (the original coerced these fields; jscheck.h has the exact grammar). */
static int want_number(const struct payload *p, const char *name, double *out, struct err *e)
{
	const cJSON *v = get(p, name);

	if (!v)
		return 0;
	if (cJSON_IsString(v) && jsc_number(v->valuestring, out) == 0)
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return err_set(e, "%s must be a number or a string holding one (such as \"10\")", name);
	*out = v->valuedouble;
	return 0;
}

/* Every duration field: its unit in milliseconds and its ceiling.  A value
 * is absent/0 (the default), or at least one second, or refused: below a
 * second it would round to 0 ms, which turns the limit off. */
static const struct {
	const char *name, *unit;
	double unit_ms, max;
	size_t off;
} durations[] = {
	{ "timeoutMinutes", "minutes", 60000.0, PAYLOAD_MAX_TIMEOUT_MIN, offsetof(struct payload, timeout_minutes) },
	{ "idleTimeoutMinutes", "minutes", 60000.0, PAYLOAD_MAX_TIMEOUT_MIN,
	  offsetof(struct payload, idle_timeout_minutes) },
};

static int check_durations(struct payload *p, struct err *e)
{
	size_t i;

	for (i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
		double v = 0, *slot = (double *)((char *)p + durations[i].off);

		if (want_number(p, durations[i].name, &v, e) != 0)
			return -1;
		if (v < 0)
			return err_set(e, "%s must be positive", durations[i].name);
		if (v > 0 && v * durations[i].unit_ms < 1000.0)
			return err_set(e, "%s must be at least one second (%.6g %s), or 0 for the default",
				       durations[i].name, 1000.0 / durations[i].unit_ms, durations[i].unit);
		*slot = v > durations[i].max ? durations[i].max : v;
	}
	return 0;
}

static int check_strings(const struct payload *p, struct err *e)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
		{ "prompt", offsetof(struct payload, prompt) },
		{ "anthropicApiKey", offsetof(struct payload, api_key) },
		{ "anthropicOAuthToken", offsetof(struct payload, oauth_token) },
		{ "systemPrompt", offsetof(struct payload, system_prompt) },
		{ "appendSystemPrompt", offsetof(struct payload, append_system_prompt) },
		{ "permissionMode", offsetof(struct payload, permission_mode) },
		{ "model", offsetof(struct payload, model) },
		{ "fallbackModel", offsetof(struct payload, fallback_model) },
		{ "cwdRelative", offsetof(struct payload, cwd_relative) },
		{ "gitRepo", offsetof(struct payload, git_repo) },
		{ "gitBranch", offsetof(struct payload, git_branch) },
		{ "sshKey", offsetof(struct payload, ssh_key) },
		{ "callbackUrl", offsetof(struct payload, callback_url) },
		{ "resumeTaskId", offsetof(struct payload, resume_task_id) },
	};
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (want_string(p, fields[i].name, (const char **)((char *)p + fields[i].off), e) != 0)
			return -1;
	return 0;
}

static int check_objects(struct payload *p, struct err *e)
{
	const cJSON *it;

	if (want_object(p, "postExecutionActions", &p->post_actions, e) ||
	    want_object(p, "environmentSecrets", &p->env_secrets, e) ||
	    want_object(p, "mcpConfig", &p->mcp_config, e) || want_object(p, "slashCommands", &p->slash_commands, e) ||
	    want_object(p, "subagents", &p->subagents, e) ||
	    want_object(p, "externalTestRepo", &p->external_test_repo, e))
		return -1;
	cJSON_ArrayForEach(it, p->env_secrets)
		if (!cJSON_IsString(it))
			return err_set(e, "environmentSecrets.%s must be a string", it->string);
	p->metadata = cJSON_GetObjectItemCaseSensitive(p->root, "metadata");
	return 0;
}

/* maxBudgetUsd: absent/0 (no budget of its own), or a positive number of
 * US dollars, at most PAYLOAD_MAX_BUDGET_USD.  idleAfterResultSeconds:
 * absent/0 (the CLI gets the prompt and ends), or how long a task that
 * takes follow-up messages waits for one after each result. */
static int check_budget(struct payload *p, struct err *e)
{
	double b = 0;

	if (want_number(p, "maxBudgetUsd", &b, e))
		return -1;
	if (b < 0 || b > PAYLOAD_MAX_BUDGET_USD)
		return err_set(e, "maxBudgetUsd must be a number of US dollars above 0 and at most %g",
			       PAYLOAD_MAX_BUDGET_USD);
	p->max_budget_usd = b;
	b = 0;
	if (want_number(p, "idleAfterResultSeconds", &b, e))
		return -1;
	if (b < 0 || b > PAYLOAD_MAX_IDLE_AFTER_RESULT_S)
		return err_set(e, "idleAfterResultSeconds must be between 0 and %g", PAYLOAD_MAX_IDLE_AFTER_RESULT_S);
	p->idle_after_result_s = b;
	return 0;
}

static int check_numbers(struct payload *p, struct err *e)
{
	double turns = 0, depth = 1;
	const cJSON *pipe = cJSON_GetObjectItemCaseSensitive(p->root, "useNamedPipe");

	if (want_number(p, "maxTurns", &turns, e) || want_number(p, "gitDepth", &depth, e) ||
	    check_durations(p, e))
		return -1;
	if (turns < 0 || turns > 100000)
		return err_set(e, "maxTurns must be between 1 and 100000");
	if (depth < 0 || depth > 1000000)
		return err_set(e, "gitDepth must be a positive number");
	p->max_turns = (int)turns;
	p->git_depth = (int)depth;
	p->use_named_pipe = !cJSON_IsFalse(pipe);
	return check_budget(p, e);
}

/* resumeTaskId: a task id as the seed's taskId rule has it. */
static int check_resume(const struct payload *p, struct err *e)
{
	const char *c = p->resume_task_id;

	if (!c)
		return 0;
	if (strlen(c) > 128)
		return err_set(e, "resumeTaskId must be a task id (at most 128 characters)");
	for (; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
		      *c == '-'))
			return err_set(e, "resumeTaskId must be a task id (alphanumeric, underscore, hyphen only)");
	return 0;
}

/* cancelOnDisconnect: a boolean when given (a new field: no JavaScript
 * truthiness to keep). */
static int check_flags(struct payload *p, struct err *e)
{
	const cJSON *cod = cJSON_GetObjectItemCaseSensitive(p->root, "cancelOnDisconnect");

	if (cod && !cJSON_IsNull(cod) && !cJSON_IsBool(cod))
		return err_set(e, "cancelOnDisconnect must be a boolean");
	p->cancel_on_disconnect = cJSON_IsTrue(cod);
	return 0;
}

/* allowedHosts: what the egress proxy may reach for this task, within the
 * operator's CCR_EGRESS_ALLOW (net/hostpat.h has the entry syntax). */
static int check_allowed_hosts(struct payload *p, struct err *e)
{
	const cJSON *it;
	int i = 0;

	if (want_string_array(p, "allowedHosts", &p->allowed_hosts, e) != 0)
		return -1;
	cJSON_ArrayForEach(it, p->allowed_hosts) {
		if (hp_pattern_check(it->valuestring, e) != 0)
			return err_prefix(e, "allowedHosts[%d]", i);
		i++;
	}
	return 0;
}

int payload_parse(struct payload *p, const char *json, size_t n, struct err *e)
{
	memset(p, 0, sizeof(*p));
	p->root = cJSON_ParseWithLength(json, n);
	if (!p->root)
		return err_set(e, "the payload is not valid JSON");
	if (!cJSON_IsObject(p->root)) {
		payload_free(p);
		return err_set(e, "the payload must be a JSON object");
	}
	if (check_strings(p, e) || check_objects(p, e) || check_numbers(p, e) || check_flags(p, e) ||
	    check_resume(p, e) ||
	    want_string_array(p, "allowedTools", &p->allowed_tools, e) ||
	    want_string_array(p, "disallowedTools", &p->disallowed_tools, e) ||
	    want_string_array(p, "preExecutionCommands", &p->pre_exec, e) || check_allowed_hosts(p, e))
		goto bad;
	if (!p->prompt) {
		err_set(e, "prompt is required");
		goto bad;
	}
	if (!p->api_key && !p->oauth_token) {
		err_set(e, "Either anthropicApiKey or anthropicOAuthToken is required");
		goto bad;
	}
	if (!p->cwd_relative)
		p->cwd_relative = ".";
	if (!p->git_branch)
		p->git_branch = "main";
	if (p->timeout_minutes <= 0)
		p->timeout_minutes = PAYLOAD_DEFAULT_TIMEOUT_MIN;
	return 0;
bad:
	payload_free(p);
	return -1;
}

/* Every string of the request (keys, secrets, the SSH key) is wiped
 * before the tree goes back to the allocator. */
static void wipe_strings(cJSON *v)
{
	cJSON *it;

	for (it = v; it; it = it->next) {
		if (it->valuestring)
			cr_wipe(it->valuestring, strlen(it->valuestring));
		if (it->child)
			wipe_strings(it->child);
	}
}

void payload_free(struct payload *p)
{
	if (p->root)
		wipe_strings(p->root);
	cJSON_Delete(p->root);
	memset(p, 0, sizeof(*p));
}

int payload_register_secrets(const struct payload *p)
{
	const cJSON *it;
	int rc = 0;

	rc |= redact_add_encoded(p->api_key);
	rc |= redact_add_encoded(p->oauth_token);
	rc |= redact_add(p->ssh_key);
	rc |= redact_add_url(p->git_repo);
	cJSON_ArrayForEach(it, p->env_secrets)
		rc |= redact_add_encoded(it->valuestring);
	if (p->external_test_repo) {
		it = cJSON_GetObjectItemCaseSensitive(p->external_test_repo, "installationAccessToken");
		if (cJSON_IsString(it))
			rc |= redact_add_encoded(it->valuestring);
	}
	return rc ? -1 : 0;
}
