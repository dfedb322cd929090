/*
 * dp_bucket.c: the Cloud Storage bucket of a ccr deployment: task logs,
 * metadata and sealed payloads (see deploy.h).
 *
 * Owned fields: the lifecycle rules, which are the original's
 * (gcs-lifecycle.json): session logs and metadata go after 30 days,
 * sealed payloads after 1 day (the job deletes a payload when it is done;
 * the rule catches the ones a crash left behind).  A new bucket is made
 * in REGION with uniform bucket-level access, so the bucket's IAM policy
 * is the only access control; an existing bucket keeps its location and
 * access mode (neither can be changed in place anyway).
 *
 * IAM on the bucket (not the project): both accounts get
 * roles/storage.objectUser, which reads, writes, lists and deletes
 * objects but cannot change the bucket or anyone's access.
 */
#include <stdio.h>
#include <string.h>

#include "deploy/deploy.h"

static const char lifecycle_json[] =
	"{\"rule\":["
	"{\"action\":{\"type\":\"Delete\"},\"condition\":{\"age\":30,\"matchesPrefix\":[\"sessions/\"]}},"
	"{\"action\":{\"type\":\"Delete\"},\"condition\":{\"age\":1,\"matchesPrefix\":[\"tasks/\"]}}]}";

static int bucket_iam(struct dp_ctx *c, int exists, struct err *e)
{
	struct dp_binding b[2] = {
		{ "roles/storage.objectUser", "", "serve writes the sealed payload and the pending metadata, "
			"reads task logs for /run streams and GET /tasks, and removes a failed submit's objects" },
		{ "roles/storage.objectUser", "", "the job reads its sealed payload, writes log chunks and "
			"metadata, uploads files, and deletes the payload when the task ends" },
	};
	char path[600], what[300];

	snprintf(b[0].member, sizeof b[0].member, "serviceAccount:%s", c->serve_email);
	snprintf(b[1].member, sizeof b[1].member, "serviceAccount:%s", c->job_email);
	snprintf(path, sizeof path, "/storage/v1/b/%s/iam", c->cf->bucket);
	snprintf(what, sizeof what, "bucket %s", c->cf->bucket);
	return dp_iam_ensure(c, GREST_STORAGE, what, "GET", path, "PUT", path, 1, b, 2, exists, e);
}

static cJSON *new_bucket_body(const struct dp_ctx *c, cJSON *lifecycle)
{
	cJSON *b = cJSON_CreateObject(), *iam, *ubla;

	if (!b || !cJSON_AddStringToObject(b, "name", c->cf->bucket) ||
			!cJSON_AddStringToObject(b, "location", c->cf->region) ||
			!(iam = cJSON_AddObjectToObject(b, "iamConfiguration")) ||
			!(ubla = cJSON_AddObjectToObject(iam, "uniformBucketLevelAccess")) ||
			!cJSON_AddTrueToObject(ubla, "enabled")) {
		cJSON_Delete(b);
		cJSON_Delete(lifecycle);
		return NULL;
	}
	if (!cJSON_AddItemToObject(b, "lifecycle", lifecycle)) {
		cJSON_Delete(b);
		cJSON_Delete(lifecycle);
		return NULL;
	}
	return b;
}

int dp_bucket(struct dp_ctx *c, struct err *e)
{
	struct buf path = BUF_INIT, changed = BUF_INIT;
	cJSON *cur = NULL, *want = cJSON_Parse(lifecycle_json), *body = NULL;
	int rc = -1, exists;

	if (!want || buf_printf(&path, "/storage/v1/b/%s", c->cf->bucket) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	if (dp_read(c, GREST_STORAGE, path.p, "the bucket", &cur, e) != 0)
		goto out;
	exists = cur != NULL;
	if (!cur) {
		dp_say(c, "bucket", c->cf->bucket, "create", "(lifecycle: sessions/ 30 days, tasks/ 1 day)");
		if (!c->cf->dry_run) {
			char q[300];

			body = new_bucket_body(c, want);
			want = NULL;
			snprintf(q, sizeof q, "/storage/v1/b?project=%s", c->cf->project);
			if (!body) {
				err_set(e, "out of memory");
				goto out;
			}
			if (dp_write(c, GREST_STORAGE, "POST", q, body, "creating the bucket", NULL, e) != 0)
				goto out;
			exists = 1;
		}
	} else {
		if (dp_diff(want, cJSON_GetObjectItemCaseSensitive(cur, "lifecycle"), "lifecycle", &changed) != 0) {
			err_set(e, "out of memory");
			goto out;
		}
		dp_say(c, "bucket", c->cf->bucket, changed.len ? "update" : "exists", changed.p);
		if (changed.len && !c->cf->dry_run) {
			if (!(body = cJSON_CreateObject()) || !cJSON_AddItemToObject(body, "lifecycle", want)) {
				err_set(e, "out of memory");
				goto out;
			}
			want = NULL;
			if (dp_write(c, GREST_STORAGE, "PATCH", path.p, body, "updating the bucket's lifecycle",
					NULL, e) != 0)
				goto out;
		}
	}
	rc = bucket_iam(c, exists, e);
out:
	cJSON_Delete(cur);
	cJSON_Delete(want);
	cJSON_Delete(body);
	buf_free(&path);
	buf_free(&changed);
	return rc;
}
