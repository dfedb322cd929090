/*
 * dp_job.c: the Cloud Run Job that runs one task per execution (`ccr
 * job`), the env both Cloud Run resources share, and the create-or-patch
 * step both use (see deploy.h).
 *
 * The job as the original deployed it (deploy-job.sh): 1 task, max
 * retries 1 (a retried attempt finalises the task instead of running the
 * agent again: README "A task's lifecycle"), task timeout 24 h, 1 vCPU,
 * 4 GiB; its own service account; env GCS_LOGS_BUCKET, PROJECT_ID,
 * REGION, KMS_KEY_RING, KMS_KEY_NAME and the callback secret.
 *
 * Create answers a long-running operation, as does patch; both are waited
 * for.  A patch sends the whole desired resource (Cloud Run jobs.patch
 * has no update mask): fields ccr does not manage are reset by an update,
 * and left alone when nothing changed.
 *
 * IAM on the job only: serve may run it with overrides (TASK_ID and the
 * payload path per execution) and read and cancel its executions.
 */
#include <stdio.h>
#include <string.h>

#include "deploy/deploy.h"

static int add_var(cJSON *env, const char *name, const char *value)
{
	cJSON *v = cJSON_CreateObject();

	if (!v || !cJSON_AddStringToObject(v, "name", name) || !cJSON_AddStringToObject(v, "value", value)) {
		cJSON_Delete(v);
		return -1;
	}
	if (!cJSON_AddItemToArray(env, v)) {
		cJSON_Delete(v);
		return -1;
	}
	return 0;
}

static int add_secret_var(cJSON *env, const char *name, const char *secret)
{
	cJSON *v = cJSON_CreateObject(), *src, *ref;

	if (!v || !cJSON_AddStringToObject(v, "name", name) || !(src = cJSON_AddObjectToObject(v, "valueSource")) ||
			!(ref = cJSON_AddObjectToObject(src, "secretKeyRef")) ||
			!cJSON_AddStringToObject(ref, "secret", secret) ||
			!cJSON_AddStringToObject(ref, "version", "latest")) {
		cJSON_Delete(v);
		return -1;
	}
	if (!cJSON_AddItemToArray(env, v)) {
		cJSON_Delete(v);
		return -1;
	}
	return 0;
}

cJSON *dp_env(const struct dp_ctx *c, int for_service)
{
	const struct dp_config *cf = c->cf;
	cJSON *env = cJSON_CreateArray();
	int i, bad = !env;

	bad = bad || add_var(env, "GCS_LOGS_BUCKET", cf->bucket) || add_var(env, "PROJECT_ID", cf->project) ||
		add_var(env, "REGION", cf->region) || add_var(env, "KMS_KEY_RING", cf->key_ring) ||
		add_var(env, "KMS_KEY_NAME", cf->key);
	if (for_service)
		bad = bad || add_var(env, "CLOUDRUN_JOB_NAME", cf->job);
	for (i = 0; i < cf->n_env && !bad; i++) {
		char name[128];
		const char *eq = strchr(cf->env[i], '=');

		snprintf(name, sizeof name, "%.*s", (int)(eq - cf->env[i]), cf->env[i]);
		bad = add_var(env, name, eq + 1);
	}
	bad = bad || add_secret_var(env, "CLOUDRUN_CALLBACK_SECRET", cf->callback_secret);
	if (for_service)
		bad = bad || add_secret_var(env, "CCR_API_KEYS", cf->api_keys_secret);
	if (bad) {
		cJSON_Delete(env);
		return NULL;
	}
	return env;
}

/* {"image": ..., "env": [...], "resources": {"limits": {"cpu", "memory"}}} */
static cJSON *container(const struct dp_ctx *c, const char *image, int for_service, const char *cpu,
	const char *memory)
{
	cJSON *k = cJSON_CreateObject(), *env = dp_env(c, for_service), *res, *lim;

	if (!k || !env || !cJSON_AddStringToObject(k, "image", image)) {
		cJSON_Delete(k);
		cJSON_Delete(env);
		return NULL;
	}
	if (!cJSON_AddItemToObject(k, "env", env)) {
		cJSON_Delete(k);
		cJSON_Delete(env);
		return NULL;
	}
	if (!(res = cJSON_AddObjectToObject(k, "resources")) || !(lim = cJSON_AddObjectToObject(res, "limits")) ||
			!cJSON_AddStringToObject(lim, "cpu", cpu) || !cJSON_AddStringToObject(lim, "memory", memory)) {
		cJSON_Delete(k);
		return NULL;
	}
	return k;
}

cJSON *dp_container(const struct dp_ctx *c, int for_service)
{
	const struct dp_config *cf = c->cf;

	return for_service ? container(c, c->serve_image, 1, cf->serve_cpu, cf->serve_memory) :
		container(c, c->job_image, 0, cf->job_cpu, cf->job_memory);
}

static cJSON *desired_job(const struct dp_ctx *c)
{
	cJSON *j = cJSON_CreateObject(), *t, *tt, *cs, *k = dp_container(c, 0);

	if (!j || !k || !(t = cJSON_AddObjectToObject(j, "template")) ||
			!cJSON_AddNumberToObject(t, "taskCount", 1) ||
			!(tt = cJSON_AddObjectToObject(t, "template")) ||
			!cJSON_AddNumberToObject(tt, "maxRetries", c->cf->job_max_retries) ||
			!cJSON_AddStringToObject(tt, "timeout", c->cf->job_timeout) ||
			!cJSON_AddStringToObject(tt, "serviceAccount", c->job_email) ||
			!(cs = cJSON_AddArrayToObject(tt, "containers"))) {
		cJSON_Delete(j);
		cJSON_Delete(k);
		return NULL;
	}
	if (!cJSON_AddItemToArray(cs, k)) {
		cJSON_Delete(j);
		cJSON_Delete(k);
		return NULL;
	}
	return j;
}

/* The resource's uri (services have one) into uri. */
static void take_uri(const cJSON *res, char *uri, size_t urilen)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(res, "uri");

	if (uri && urilen && cJSON_IsString(u))
		snprintf(uri, urilen, "%s", u->valuestring);
}

int dp_run_apply(struct dp_ctx *c, const char *kind, const char *id, cJSON *want, int *exists,
	char *uri, size_t urilen, struct err *e)
{
	const char *label = strcmp(kind, "jobs") == 0 ? "cloud run job" : "cloud run service";
	struct buf path = BUF_INIT, changed = BUF_INIT;
	cJSON *cur = NULL, *op = NULL, *done = NULL;
	char what[300];
	int rc = -1;

	if (uri && urilen)
		uri[0] = 0;

	if (buf_printf(&path, "/v2/projects/%s/locations/%s/%s/%s", c->cf->project, c->cf->region, kind, id) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	if (dp_read(c, GREST_RUN, path.p, label, &cur, e) != 0)
		goto out;
	*exists = cur != NULL;
	if (cur && dp_diff(want, cur, "", &changed) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	dp_say(c, label, path.p + 4, !cur ? "create" : changed.len ? "update" : "exists", changed.p);
	take_uri(cur, uri, urilen);
	if ((cur && !changed.len) || c->cf->dry_run) {
		rc = 0;
		goto out;
	}
	snprintf(what, sizeof what, "%s %s %s", cur ? "updating" : "creating", label, id);
	if (!cur) {
		buf_reset(&path);
		if (buf_printf(&path, "/v2/projects/%s/locations/%s/%s?%sId=%s", c->cf->project, c->cf->region, kind,
				strcmp(kind, "jobs") == 0 ? "job" : "service", id) != 0) {
			err_set(e, "out of memory");
			goto out;
		}
	}
	if (dp_write(c, GREST_RUN, cur ? "PATCH" : "POST", path.p, want, what, &op, e) != 0 ||
			dp_wait_op(c, GREST_RUN, "v2", op, what, &done, e) != 0)
		goto out;
	take_uri(done, uri, urilen);
	*exists = 1;
	rc = 0;
out:
	cJSON_Delete(cur);
	cJSON_Delete(op);
	cJSON_Delete(done);
	buf_free(&path);
	buf_free(&changed);
	return rc;
}

int dp_job(struct dp_ctx *c, struct err *e)
{
	struct dp_binding b[1] = {
		{ "roles/run.jobsExecutorWithOverrides", "", "serve starts one execution per task with "
			"env overrides (TASK_ID, ENCRYPTED_PAYLOAD_PATH), reads its state and cancels it" },
	};
	cJSON *want = desired_job(c);
	char get[500], set[500], what[300];
	int exists = 0, rc;

	if (!want)
		return err_set(e, "out of memory");
	rc = dp_run_apply(c, "jobs", c->cf->job, want, &exists, NULL, 0, e);
	cJSON_Delete(want);
	if (rc != 0)
		return -1;
	snprintf(b[0].member, sizeof b[0].member, "serviceAccount:%s", c->serve_email);
	snprintf(get, sizeof get, "/v2/projects/%s/locations/%s/jobs/%s:getIamPolicy", c->cf->project,
		c->cf->region, c->cf->job);
	snprintf(set, sizeof set, "/v2/projects/%s/locations/%s/jobs/%s:setIamPolicy", c->cf->project,
		c->cf->region, c->cf->job);
	snprintf(what, sizeof what, "job %s", c->cf->job);
	return dp_iam_ensure(c, GREST_RUN, what, "GET", get, "POST", set, 0, b, 1, exists, e);
}
