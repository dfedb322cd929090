/*
 * run.c: Cloud Run Admin API v2 jobs and executions (see run.h).
 *
 * Design: a struct crun fixes endpoint, project and region at creation
 * and is then read-only (thread-safe).  Request bodies are built with
 * jsj_string for correct escaping; answers are parsed with cJSON and
 * reduced to what ccr needs.  The state of an execution is derived from
 * its counters first (they are documented), and from the "Completed"
 * condition only when the counters do not decide (condition types are
 * not documented for v2).  Names are validated before they are put into
 * URLs, since they come from stored metadata.
 */
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcp/auth.h"
#include "gcp/common.h"
#include "gcp/run.h"
#include "util/jsjson.h"

struct crun {
	struct gcp_endpoint ep;
	char *project, *region;
};

static int valid_id(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
				*s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

/* A resource name: projects/... made of ids separated by '/'. */
static int valid_name(const char *s)
{
	const char *p;

	if (!s || strncmp(s, "projects/", 9) != 0)
		return 0;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
				*p == '-' || *p == '_' || *p == '.' || *p == '/'))
			return 0;
	return p[-1] != '/' && !strstr(s, "//");
}

struct crun *crun_new(const char *project, const char *region, struct err *e)
{
	struct crun *c = calloc(1, sizeof *c);
	struct buf p = BUF_INIT, r = BUF_INIT;
	struct err ignored = ERR_INIT;

	if (!c) {
		err_set(e, "Cloud Run: out of memory");
		return NULL;
	}
	if (gcp_endpoint_get(&c->ep, "CCR_RUN_ENDPOINT", CRUN_DEFAULT_ENDPOINT, 0, e) != 0)
		goto fail;
	if (!project) {
		if (gauth_project_id(&p, e) != 0) {
			err_prefix(e, "Cloud Run");
			goto fail;
		}
		project = p.p;
	}
	if (!region) {
		if (gauth_region(&r, &ignored) != 0) {
			buf_reset(&r);
			if (buf_adds(&r, CRUN_DEFAULT_REGION) != 0)
				goto oom;
		}
		region = r.p;
	}
	if (!valid_id(project) || !valid_id(region)) {
		err_set(e, "Cloud Run: invalid project \"%.100s\" or region \"%.100s\"", project, region);
		goto fail;
	}
	if (!(c->project = strdup(project)) || !(c->region = strdup(region)))
		goto oom;
	buf_free(&p);
	buf_free(&r);
	return c;
oom:
	err_set(e, "Cloud Run: out of memory");
fail:
	buf_free(&p);
	buf_free(&r);
	crun_free(c);
	return NULL;
}

void crun_free(struct crun *c)
{
	if (!c)
		return;
	free(c->project);
	free(c->region);
	free(c);
}

const char *crun_project(const struct crun *c)
{
	return c->project;
}

const char *crun_region(const struct crun *c)
{
	return c->region;
}

const char *crun_state_name(enum crun_state s)
{
	switch (s) {
	case CRUN_PENDING: return "PENDING";
	case CRUN_RUNNING: return "RUNNING";
	case CRUN_SUCCEEDED: return "SUCCEEDED";
	case CRUN_FAILED: return "FAILED";
	case CRUN_CANCELLED: return "CANCELLED";
	default: return "UNKNOWN";
	}
}

static int call(struct crun *c, const char *method, const char *url, const struct buf *body,
	enum hc_retry retry, struct hc_response *rs, struct err *e)
{
	static const char *const hdrs[] = { "Content-Type: application/json; charset=UTF-8", NULL };
	struct hc_request rq = { 0 };
	struct gauth *a = gauth_default(e);

	if (!a)
		return -1;
	rq.method = method;
	rq.url = url;
	rq.headers = body ? hdrs : NULL;
	rq.body = body ? body->p : NULL;
	rq.body_len = body ? body->len : 0;
	rq.retry = retry;
	rq.allow_http = c->ep.allow_http;
	rq.timeout_ms = 30000;
	rq.max_response = 4 << 20;
	return gauth_call(a, &rq, rs, e);
}

/* ---- jobs.run ---------------------------------------------------------- */

static int env_entry(struct buf *b, int *first, const char *name, size_t nlen, const char *value)
{
	if ((!*first && buf_addc(b, ',') != 0) || buf_adds(b, "{\"name\":") != 0 ||
			jsj_string(b, name, nlen) != 0 || buf_adds(b, ",\"value\":") != 0 ||
			jsj_string(b, value, strlen(value)) != 0 || buf_addc(b, '}') != 0)
		return -1;
	*first = 0;
	return 0;
}

int crun_run_body(struct buf *out, const char *task_id, const char *payload_path,
	const char *const *extra_env)
{
	const char *const *v;
	int first = 1;

	if (buf_adds(out, "{\"overrides\":{\"containerOverrides\":[{\"env\":[") != 0)
		return -1;
	if (task_id && env_entry(out, &first, "TASK_ID", 7, task_id) != 0)
		return -1;
	if (payload_path && env_entry(out, &first, "ENCRYPTED_PAYLOAD_PATH", 22, payload_path) != 0)
		return -1;
	for (v = extra_env; v && *v; v++) {
		const char *eq = strchr(*v, '=');

		if (!eq || eq == *v)
			return -1;
		if (env_entry(out, &first, *v, (size_t)(eq - *v), eq + 1) != 0)
			return -1;
	}
	return buf_adds(out, "]}]}}");
}

int crun_execution_from_operation(const char *json, size_t len, struct buf *out, struct err *e)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	const char *name = NULL, *opname;
	int rc = -1;

	if (!cJSON_IsObject(j)) {
		err_set(e, "the jobs.run answer is not JSON");
		goto out;
	}
	name = gcp_json_str(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "name");
	if (!name)
		name = gcp_json_str(cJSON_GetObjectItemCaseSensitive(j, "response"), "name");
	opname = gcp_json_str(j, "name");
	if (!name || !valid_name(name) || !strstr(name, "/executions/")) {
		err_set(e, "the jobs.run answer (operation %.200s) names no execution in metadata.name",
			opname ? opname : "?");
		goto out;
	}
	rc = buf_adds(out, name) == 0 ? 0 : err_set(e, "out of memory");
out:
	cJSON_Delete(j);
	return rc;
}

/* The seed quoted the whole JSON body of a failed jobs.run; one cleaned line of it. */
static void one_line(const struct buf *body, char *text, size_t size)
{
	size_t i, n = 0;

	for (i = 0; body->p && i < body->len && n + 1 < size; i++) {
		char ch = body->p[i];

		if (ch == '\n' || ch == '\r' || ch == '\t')
			ch = ' ';
		if ((unsigned char)ch < 0x20 || (ch == ' ' && n > 0 && text[n - 1] == ' '))
			continue;
		text[n++] = ch;
	}
	text[n] = 0;
}

/*
 * One jobs.run request.  On failure *maybe_started says whether the
 * service may have started the execution anyway (HTTP 5xx or 408, or a
 * connection lost after the request went out), and *retry_after holds
 * the answer's Retry-After in ms (or -1).
 */
static int run_attempt(struct crun *c, const char *url, const struct buf *body, const char *short_job,
	struct buf *exec_name, int *maybe_started, long *retry_after, struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	char text[300];
	int rc = -1;

	*maybe_started = 0;
	*retry_after = -1;
	if (call(c, "POST", url, body, HC_RETRY_UNSENT, &rs, e) != 0) {
		*maybe_started = e->http == 0;
		goto out;
	}
	if (rs.status == 404) {
		err_http(e, 404, "Cloud Run Job \"%s\" not found in %s. Deploy it first with scripts/deploy-job.sh",
			short_job, c->region);
	} else if (rs.status == 403) {
		err_http(e, 403, "Permission denied to run job \"%s\". Grant service account roles/run.developer "
			"permission.", short_job);
	} else if (rs.status < 200 || rs.status > 299) {
		one_line(&rs.body, text, sizeof text);
		err_http(e, (int)rs.status, "Job trigger failed (HTTP %ld): %s", rs.status, text);
		*maybe_started = rs.status >= 500 || rs.status == 408;
		*retry_after = hc_retry_after_ms(&rs);
	} else if (crun_execution_from_operation(rs.body.p ? rs.body.p : "", rs.body.len, exec_name, e) != 0) {
		err_prefix(e, "Cloud Run job \"%s\"", short_job);
	} else {
		rc = 0;
	}
out:
	hc_response_free(&rs);
	return rc;
}

/* 1 when env (an array of {name, value}) sets name to value. */
static int env_sets(const cJSON *env, const char *name, const char *value)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, env) {
		const char *n = gcp_json_str(v, "name"), *x = gcp_json_str(v, "value");

		if (n && x && strcmp(n, name) == 0 && strcmp(x, value) == 0)
			return 1;
	}
	return 0;
}

/* 1 when an execution resource was started for task_id: one of its
 * template.containers[] has TASK_ID=task_id in its env.  Execution.template
 * is a TaskTemplate (containers directly under it), unlike Job.template,
 * which is an ExecutionTemplate with the TaskTemplate one level deeper. */
static int started_for(const cJSON *exe, const char *task_id)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(exe, "template");
	const cJSON *ct;

	cJSON_ArrayForEach(ct, cJSON_GetObjectItemCaseSensitive(t, "containers"))
		if (env_sets(cJSON_GetObjectItemCaseSensitive(ct, "env"), "TASK_ID", task_id))
			return 1;
	return 0;
}

/*
 * One page of executions.list of job_path (newest first), continuing at
 * token (NULL: the first page).  The execution started for task_id is
 * appended to out; the page's nextPageToken (if any) replaces *next, and
 * *seen counts the executions looked at.
 * 1 found, 0 not on this page, -1 error.
 */
static int find_on_page(struct crun *c, const char *job_path, const char *task_id, const char *token,
	struct buf *next, int *seen, struct buf *out, struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	const cJSON *x;
	const char *nt;
	cJSON *j = NULL;
	int rc = -1;

	buf_reset(next);
	if (buf_printf(&url, "%s/v2/%s/executions?pageSize=%d", c->ep.base, job_path, CRUN_LIST_PAGE_SIZE) != 0 ||
			(token && (buf_adds(&url, "&pageToken=") != 0 || gcp_pct_encodes(&url, token) != 0))) {
		err_set(e, "out of memory");
		goto out;
	}
	if (call(c, "GET", url.p, NULL, HC_RETRY_IDEMPOTENT, &rs, e) != 0)
		goto out;
	if (rs.status != 200) {
		gcp_http_error(e, &rs, gauth_default_describe(), "Cloud Run executions of %.200s", job_path);
		goto out;
	}
	j = gcp_json_parse(&rs.body);
	if (!cJSON_IsObject(j)) {
		err_set(e, "Cloud Run executions of %.200s: the answer is not a JSON object", job_path);
		goto out;
	}
	rc = 0;
	cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(j, "executions")) {
		const char *name = gcp_json_str(x, "name");

		(*seen)++;
		if (name && valid_name(name) && strstr(name, "/executions/") && started_for(x, task_id)) {
			rc = buf_adds(out, name) == 0 ? 1 : err_set(e, "out of memory");
			goto out;
		}
	}
	nt = gcp_json_str(j, "nextPageToken");
	if (nt && *nt && buf_adds(next, nt) != 0)
		rc = err_set(e, "out of memory");
out:
	cJSON_Delete(j);
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

/*
 * executions.list of job_path, newest first, page after page (at most
 * CRUN_LIST_MAX_PAGES): the execution started for task_id, appended to
 * out.  1 found, 0 not found (the list ended), -1 error, -2 the list
 * is longer than the pages searched: then it is unknown whether jobs.run
 * started the task, and sending it again could run the task twice.
 */
static int find_execution(struct crun *c, const char *job_path, const char *task_id, struct buf *out,
	struct err *e)
{
	struct buf token = BUF_INIT, next = BUF_INIT;
	int page, seen = 0, rc = -1;

	for (page = 0; page < CRUN_LIST_MAX_PAGES; page++) {
		rc = find_on_page(c, job_path, task_id, page ? token.p : NULL, &next, &seen, out, e);
		if (rc != 0 || next.len == 0)
			goto out;
		buf_reset(&token);
		if (buf_add(&token, next.p, next.len) != 0) {
			rc = err_set(e, "out of memory");
			goto out;
		}
	}
	rc = -2;
	err_set(e, "Cloud Run: jobs.run for task %.100s failed without an answer, and its execution is "
		"not among the newest %d executions of %.200s (%d pages searched, the list goes on); not "
		"running the job again, since it may have started: look for TASK_ID=%.100s in the job's "
		"executions", task_id, seen, job_path, CRUN_LIST_MAX_PAGES, task_id);
out:
	buf_free(&token);
	buf_free(&next);
	return rc;
}

/*
 * jobs.run is not idempotent, so a failed attempt is sent again only when
 * it certainly started nothing: hc retries a request that never left
 * (HC_RETRY_UNSENT), and after an ambiguous failure (5xx, 408, a lost
 * answer) the job's newest executions are searched for this task's
 * TASK_ID first.  If one is there it is the answer; if not, jobs.run is
 * sent again after the usual backoff.  Without a task id there is nothing
 * to search for, and an ambiguous failure is final.
 */
int crun_run_job(struct crun *c, const char *job, const char *task_id, const char *payload_path,
	const char *const *extra_env, struct buf *exec_name, struct err *e)
{
	struct buf url = BUF_INIT, body = BUF_INIT, path = BUF_INIT;
	const char *short_job = job ? strrchr(job, '/') : NULL;
	const char *const *v;
	uint64_t deadline = hc_now_ms() + (uint64_t)hc_default_deadline_ms();
	unsigned n;
	int rc = -1;

	short_job = short_job ? short_job + 1 : job;
	if (!job || (strchr(job, '/') ? !valid_name(job) || !strstr(job, "/jobs/") : !valid_id(job)))
		return err_set(e, "Cloud Run: \"%.200s\" is not a job name", job ? job : "");
	for (v = extra_env; v && *v; v++)
		if (!strchr(*v, '=') || **v == '=')
			return err_set(e, "Cloud Run: the environment entry \"%.100s\" is not NAME=value", *v);
	if ((strchr(job, '/') ? buf_adds(&path, job)
			: buf_printf(&path, "projects/%s/locations/%s/jobs/%s", c->project, c->region, job)) != 0 ||
			buf_printf(&url, "%s/v2/%s:run", c->ep.base, path.p) != 0 ||
			crun_run_body(&body, task_id, payload_path, extra_env) != 0) {
		err_set(e, "Cloud Run: out of memory");
		goto out;
	}
	for (n = 0;; n++) {
		struct err le = ERR_INIT;
		int maybe, found;
		long retry_after;

		if (run_attempt(c, url.p, &body, short_job, exec_name, &maybe, &retry_after, e) == 0) {
			rc = 0;
			break;
		}
		if (!maybe || !task_id || hc_backoff_wait(n, retry_after, deadline) != 0)
			break;
		found = find_execution(c, path.p, task_id, exec_name, &le);
		if (found != 0) {
			rc = found > 0 ? 0 : -1;
			if (found == -2)  /* on a listing error, report the jobs.run failure */
				*e = le;
			break;
		}
	}
out:
	buf_free(&url);
	buf_free(&body);
	buf_free(&path);
	return rc;
}

/* ---- executions -------------------------------------------------------- */

/* A task count of an Execution: an int32 in the API; anything negative,
 * absent or beyond int counts as 0 or is capped (an answer never makes a
 * count negative; found by the gcp_json fuzz target). */
static int count_of(const cJSON *exe, const char *key)
{
	int64_t v;

	if (gcp_json_i64(exe, key, &v) != 0 || v < 0)
		return 0;
	return v > INT_MAX ? INT_MAX : (int)v;
}

void crun_status_from_json(const cJSON *exe, struct crun_status *out)
{
	const cJSON *conds, *cd;
	const char *ct, *cstate = NULL, *reason = NULL;

	memset(out, 0, sizeof *out);
	out->state = CRUN_UNKNOWN;
	if (!cJSON_IsObject(exe))
		return;
	out->task_count = count_of(exe, "taskCount");
	out->running = count_of(exe, "runningCount");
	out->succeeded = count_of(exe, "succeededCount");
	out->failed = count_of(exe, "failedCount");
	out->cancelled = count_of(exe, "cancelledCount");
	ct = gcp_json_str(exe, "completionTime");
	if (ct) {
		out->done = 1;
		snprintf(out->completion_time, sizeof out->completion_time, "%s", ct);
	}
	conds = cJSON_GetObjectItemCaseSensitive(exe, "conditions");
	cJSON_ArrayForEach(cd, conds) {
		const char *type = gcp_json_str(cd, "type");

		if (type && strcmp(type, "Completed") == 0) {
			const char *msg = gcp_json_str(cd, "message");

			cstate = gcp_json_str(cd, "state");
			reason = gcp_json_str(cd, "executionReason");
			if (msg)
				snprintf(out->message, sizeof out->message, "%s", msg);
		}
	}
	if (!out->done) {
		out->state = out->running > 0 || gcp_json_str(exe, "startTime") ? CRUN_RUNNING : CRUN_PENDING;
		return;
	}
	if (out->cancelled > 0 || (reason && strcmp(reason, "CANCELLED") == 0))
		out->state = CRUN_CANCELLED;
	else if (out->failed > 0)
		out->state = CRUN_FAILED;
	else if (out->succeeded > 0 && out->succeeded >= (out->task_count > 0 ? out->task_count : 1))
		out->state = CRUN_SUCCEEDED;
	else if (cstate && strcmp(cstate, "CONDITION_SUCCEEDED") == 0)
		out->state = CRUN_SUCCEEDED;
	else if (cstate && strcmp(cstate, "CONDITION_FAILED") == 0)
		out->state = CRUN_FAILED;
}

/* An execution name, resolving an operation name (seed bug B4) first. */
static int resolve(struct crun *c, const char *name, struct buf *exec, struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	int rc = -1;

	if (!valid_name(name))
		return err_set(e, "Cloud Run: \"%.200s\" is not an execution name", name ? name : "");
	if (strstr(name, "/executions/"))
		return buf_adds(exec, name) == 0 ? 0 : err_set(e, "out of memory");
	if (!strstr(name, "/operations/"))
		return err_set(e, "Cloud Run: \"%.200s\" is neither an execution nor an operation name", name);
	if (buf_printf(&url, "%s/v2/%s", c->ep.base, name) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	if (call(c, "GET", url.p, NULL, HC_RETRY_IDEMPOTENT, &rs, e) != 0) {
		err_prefix(e, "Cloud Run operation %.200s", name);
		goto out;
	}
	if (rs.status != 200) {
		gcp_http_error(e, &rs, gauth_default_describe(), "Cloud Run operation %.200s", name);
		goto out;
	}
	rc = crun_execution_from_operation(rs.body.p ? rs.body.p : "", rs.body.len, exec, e);
out:
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

int crun_get_execution(struct crun *c, const char *name, struct crun_status *out, struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT, exec = BUF_INIT;
	cJSON *j = NULL;
	int rc = -1;

	if (resolve(c, name, &exec, e) != 0)
		goto out;
	if (buf_printf(&url, "%s/v2/%s", c->ep.base, exec.p) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	if (call(c, "GET", url.p, NULL, HC_RETRY_IDEMPOTENT, &rs, e) != 0) {
		err_prefix(e, "Cloud Run execution %.200s", exec.p);
		goto out;
	}
	if (rs.status != 200) {
		gcp_http_error(e, &rs, gauth_default_describe(), "Cloud Run execution %.200s%s", exec.p, rs.status == 404 ? " not found" : "");
		goto out;
	}
	j = gcp_json_parse(&rs.body);
	if (!cJSON_IsObject(j)) {
		err_set(e, "Cloud Run execution %.200s: the answer is not JSON", exec.p);
		goto out;
	}
	crun_status_from_json(j, out);
	rc = 0;
out:
	cJSON_Delete(j);
	hc_response_free(&rs);
	buf_free(&url);
	buf_free(&exec);
	return rc;
}

int crun_cancel_execution(struct crun *c, const char *name, struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT, exec = BUF_INIT, body = BUF_INIT;
	int rc = -1;

	if (resolve(c, name, &exec, e) != 0)
		goto out;
	if (buf_printf(&url, "%s/v2/%s:cancel", c->ep.base, exec.p) != 0 || buf_adds(&body, "{}") != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	if (call(c, "POST", url.p, &body, HC_RETRY_IDEMPOTENT, &rs, e) != 0) {
		err_prefix(e, "cancel of Cloud Run execution %.200s", exec.p);
		goto out;
	}
	if (rs.status < 200 || rs.status > 299) {
		gcp_http_error(e, &rs, gauth_default_describe(), "cancel of Cloud Run execution %.200s%s", exec.p,
			rs.status == 404 ? ": not found" : "");
		goto out;
	}
	rc = 0;
out:
	hc_response_free(&rs);
	buf_free(&url);
	buf_free(&exec);
	buf_free(&body);
	return rc;
}
