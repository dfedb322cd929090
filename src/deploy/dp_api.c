/*
 * dp_api.c: the calls, comparisons and plan lines every resource file of
 * `ccr deploy` shares (see deploy.h).
 *
 * Design: the resource files describe what they want as JSON and leave
 * transport, counting, operation polling and the comparison rules to this
 * file, so the "no write on an unchanged second run" guarantee rests on
 * one comparison function (dp_diff) and one write path (dp_write).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deploy/deploy.h"
#include "gcp/common.h"
#include "util/clock.h"

#define OP_WAIT_MS (20 * 60 * 1000)

int dp_call(struct dp_ctx *c, enum grest_api api, const char *method, const char *path,
	const cJSON *body, enum hc_retry retry, struct grest_answer *a, struct err *e)
{
	char *text = NULL;
	int rc;

	if (body && !(text = cJSON_PrintUnformatted(body)))
		return err_set(e, "out of memory");
	c->calls++;
	if (strcmp(method, "GET") != 0)
		c->writes++;
	rc = grest_call(&c->ep[api], method, path, text, retry, a, e);
	cJSON_free(text);
	return rc;
}

int dp_read(struct dp_ctx *c, enum grest_api api, const char *path, const char *what, cJSON **cur,
	struct err *e)
{
	struct grest_answer a = GREST_ANSWER_INIT;

	*cur = NULL;
	if (dp_call(c, api, "GET", path, NULL, HC_RETRY_IDEMPOTENT, &a, e) != 0) {
		grest_answer_free(&a);
		return err_prefix(e, "reading %s", what);
	}
	if (a.status == 404) {
		grest_answer_free(&a);
		return 0;
	}
	if (a.status != 200 || !cJSON_IsObject(a.json)) {
		char w[300];

		snprintf(w, sizeof w, "reading %s (%s)", what, grest_api_name(api));
		grest_error(e, &a, w);
		grest_answer_free(&a);
		return -1;
	}
	*cur = a.json;
	a.json = NULL;
	grest_answer_free(&a);
	return 0;
}

int dp_write(struct dp_ctx *c, enum grest_api api, const char *method, const char *path,
	const cJSON *body, const char *what, cJSON **answer, struct err *e)
{
	struct grest_answer a = GREST_ANSWER_INIT;
	/* A create is not idempotent (a resend may answer 409); every other
	 * write here replaces a whole resource or policy (with its etag). */
	enum hc_retry retry = strcmp(method, "POST") == 0 && !strstr(path, ":setIamPolicy") ?
		HC_RETRY_UNSENT : HC_RETRY_IDEMPOTENT;
	int rc = -1;

	if (answer)
		*answer = NULL;
	if (dp_call(c, api, method, path, body, retry, &a, e) != 0) {
		err_prefix(e, "%s", what);
		goto out;
	}
	if (a.status < 200 || a.status > 299) {
		char w[300];

		snprintf(w, sizeof w, "%s (%s)", what, grest_api_name(api));
		grest_error(e, &a, w);
		goto out;
	}
	if (answer) {
		*answer = a.json;
		a.json = NULL;
	}
	rc = 0;
out:
	grest_answer_free(&a);
	return rc;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int dp_wait_op(struct dp_ctx *c, enum grest_api api, const char *version, cJSON *op, const char *what,
	cJSON **response, struct err *e)
{
	uint64_t deadline = (uint64_t)clock_mono_ms() + OP_WAIT_MS;
	cJSON *cur = op, *fresh = NULL;
	struct buf path = BUF_INIT;
	long wait = 100;
	int rc = -1;

	if (response)
		*response = NULL;

	for (;;) {
		const cJSON *err_obj = cJSON_GetObjectItemCaseSensitive(cur, "error");
		const char *name = gcp_json_str(cur, "name");

		if (cJSON_IsObject(err_obj)) {
			const char *msg = gcp_json_str(err_obj, "message");

			err_set(e, "%s: the operation failed: %.300s", what, msg ? msg : "(no message)");
			break;
		}
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cur, "done"))) {
			if (response)
				*response = cJSON_DetachItemFromObjectCaseSensitive(cur, "response");
			rc = 0;
			break;
		}
		if (!name) {
			err_set(e, "%s: the answer is not a long-running operation (no name)", what);
			break;
		}
		if ((uint64_t)clock_mono_ms() > deadline) {
			err_set(e, "%s: operation %.200s still not done after %d minutes", what, name,
				OP_WAIT_MS / 60000);
			break;
		}
		sleep_ms(wait);
		wait = wait < 2000 ? wait * 2 : 2000;
		buf_reset(&path);
		if (buf_printf(&path, "/%s/%s", version, name) != 0) {
			err_set(e, "out of memory");
			break;
		}
		cJSON_Delete(fresh);
		if (dp_read(c, api, path.p, what, &fresh, e) != 0)
			break;
		if (!fresh) {
			err_set(e, "%s: operation %.200s is gone (HTTP 404)", what, name);
			break;
		}
		cur = fresh;
	}
	cJSON_Delete(fresh);
	buf_free(&path);
	return rc;
}

/* A value proto3 JSON leaves out. */
static int is_default(const cJSON *v)
{
	if (cJSON_IsFalse(v) || cJSON_IsNull(v))
		return 1;
	if (cJSON_IsNumber(v))
		return v->valuedouble == 0;
	if (cJSON_IsString(v))
		return v->valuestring[0] == 0;
	if (cJSON_IsArray(v) || cJSON_IsObject(v))
		return v->child == NULL;
	return 0;
}

static int note(struct buf *changed, const char *path)
{
	if (changed->len && buf_adds(changed, ", ") != 0)
		return -1;
	return buf_adds(changed, *path ? path : "(all)");
}

/* Numbers may come back as strings (int64) and the other way round. */
static int scalar_equal(const cJSON *d, const cJSON *cur)
{
	char a[64], b[64];

	if (cJSON_IsString(d) && cJSON_IsString(cur))
		return strcmp(d->valuestring, cur->valuestring) == 0;
	if (cJSON_IsBool(d) || cJSON_IsBool(cur))
		return cJSON_IsBool(d) && cJSON_IsBool(cur) && cJSON_IsTrue(d) == cJSON_IsTrue(cur);
	if (!(cJSON_IsNumber(d) || cJSON_IsString(d)) || !(cJSON_IsNumber(cur) || cJSON_IsString(cur)))
		return 0;
	if (cJSON_IsNumber(d))
		snprintf(a, sizeof a, "%.17g", d->valuedouble);
	else
		snprintf(a, sizeof a, "%s", d->valuestring);
	if (cJSON_IsNumber(cur))
		snprintf(b, sizeof b, "%.17g", cur->valuedouble);
	else
		snprintf(b, sizeof b, "%s", cur->valuestring);
	return strcmp(a, b) == 0;
}

/* A Kubernetes-style quantity ("1", "1000m", "0.5", "4Gi", "512Mi", "1G") in
 * milli-units; -1 when s is not one. */
static double quantity(const char *s)
{
	static const struct {
		const char *suffix;
		double mult;
	} units[] = { { "m", 1e-3 }, { "k", 1e3 }, { "M", 1e6 }, { "G", 1e9 }, { "T", 1e12 },
		{ "Ki", 1024.0 }, { "Mi", 1048576.0 }, { "Gi", 1073741824.0 }, { "Ti", 1099511627776.0 } };
	char *end;
	double v;
	size_t i;

	if (!s || !*s)
		return -1;
	v = strtod(s, &end);
	if (end == s || v < 0)
		return -1;
	if (!*end)
		return v * 1000;
	for (i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(end, units[i].suffix) == 0)
			return v * units[i].mult * 1000;
	return -1;
}

/* Equal quantities (within rounding: "0.1" and "100m"). */
static int same_quantity(const char *a, const char *b)
{
	double x = quantity(a), y = quantity(b);

	return x >= 0 && y >= 0 && (x > y ? x - y : y - x) <= 1e-9 * (x > y ? x : y);
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && strcmp(s + n - t, tail) == 0;
}

int dp_diff(const cJSON *desired, const cJSON *current, const char *path, struct buf *changed)
{
	char sub[512];

	if (!current || cJSON_IsNull(current))
		return is_default(desired) ? 0 : note(changed, path);
	if (cJSON_IsObject(desired)) {
		const cJSON *k;

		if (!cJSON_IsObject(current))
			return note(changed, path);
		cJSON_ArrayForEach(k, desired) {
			snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", k->string);
			if (dp_diff(k, cJSON_GetObjectItemCaseSensitive(current, k->string), sub, changed) != 0)
				return -1;
		}
		return 0;
	}
	if (cJSON_IsArray(desired)) {
		int i, n = cJSON_GetArraySize(desired);

		if (!cJSON_IsArray(current) || cJSON_GetArraySize(current) != n)
			return note(changed, path);
		for (i = 0; i < n; i++) {
			snprintf(sub, sizeof sub, "%s[%d]", path, i);
			if (dp_diff(cJSON_GetArrayItem(desired, i), cJSON_GetArrayItem(current, i), sub,
					changed) != 0)
				return -1;
		}
		return 0;
	}
	/* CPU and memory limits: "1" and "1000m", "4Gi" and "4096Mi" are the same */
	if ((ends_with(path, "resources.limits.cpu") || ends_with(path, "resources.limits.memory")) &&
			cJSON_IsString(desired) && cJSON_IsString(current) && same_quantity(desired->valuestring,
			current->valuestring))
		return 0;
	return scalar_equal(desired, current) ? 0 : note(changed, path);
}

void dp_say(struct dp_ctx *c, const char *kind, const char *name, const char *state, const char *detail)
{
	int fields = detail && *detail && *detail != '(';   /* a list of changed fields */

	fprintf(c->out, "%-22s %s: %s%s%s%s%s\n", kind, name, c->cf->dry_run && strcmp(state, "exists") != 0 ?
		"would " : "", state, detail && *detail ? (fields ? " (changed: " : " ") : "", detail ? detail : "",
		fields ? ")" : "");
}
