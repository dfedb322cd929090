/*
 * dp_iam.c: `ccr deploy`'s two service accounts, and the one way every
 * IAM binding is added to a resource's policy (see deploy.h).
 *
 * Design: least privilege by resource.  Every grant is made on the one
 * resource it is for (the bucket, the key, each secret, the job), never
 * on the project, so the accounts can do nothing else.  A policy is read,
 * the missing (role, member) pairs are added to it, and it is written
 * back with the etag it was read with, so a concurrent change makes the
 * write fail (409) instead of being overwritten; it is written only when
 * something was missing.  Bindings are never removed: a deployment taken
 * over keeps the grants it had.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "deploy/deploy.h"
#include "gcp/common.h"

/* A new service account may take a few seconds to be usable in policies
 * (Google documents this delay): setIamPolicy is retried this often. */
#define NEW_MEMBER_TRIES 6
/* Read-modify-write rounds of a policy that others change at the same time. */
#define CONFLICT_TRIES 3

/* The binding of role in policy with no condition (NULL: none). */
static cJSON *find_role(cJSON *bindings, const char *role)
{
	cJSON *b;

	cJSON_ArrayForEach(b, bindings) {
		const char *r = gcp_json_str(b, "role");

		if (r && strcmp(r, role) == 0 && !cJSON_GetObjectItemCaseSensitive(b, "condition"))
			return b;
	}
	return NULL;
}

static int has_member(const cJSON *binding, const char *member)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(binding, "members"))
		if (cJSON_IsString(m) && strcmp(m->valuestring, member) == 0)
			return 1;
	return 0;
}

/* Add the missing bindings to policy; returns how many were added, or -1. */
static int merge(cJSON *policy, const struct dp_binding *want, int n, unsigned char *added)
{
	cJSON *bindings = cJSON_GetObjectItemCaseSensitive(policy, "bindings");
	int i, count = 0;

	if (!bindings) {
		if (!(bindings = cJSON_AddArrayToObject(policy, "bindings")))
			return -1;
	} else if (!cJSON_IsArray(bindings)) {
		return -1;
	}
	for (i = 0; i < n; i++) {
		cJSON *b = find_role(bindings, want[i].role), *members;

		added[i] = 0;
		if (b && has_member(b, want[i].member))
			continue;
		if (!b) {
			if (!(b = cJSON_CreateObject()) || !cJSON_AddStringToObject(b, "role", want[i].role) ||
					!cJSON_AddArrayToObject(b, "members")) {
				cJSON_Delete(b);
				return -1;
			}
			if (!cJSON_AddItemToArray(bindings, b)) {
				cJSON_Delete(b);
				return -1;
			}
		}
		members = cJSON_GetObjectItemCaseSensitive(b, "members");
		if (!cJSON_IsArray(members) || !cJSON_AddItemToArray(members, cJSON_CreateString(want[i].member)))
			return -1;
		added[i] = 1;
		count++;
	}
	return count;
}

static void explain(struct dp_ctx *c, const struct dp_binding *b, const char *mark)
{
	fprintf(c->out, "    %s %s -> %s\n        why: %s\n", mark, b->role, b->member, b->why);
}

static int set_policy(struct dp_ctx *c, enum grest_api api, const char *what, const char *method,
	const char *path, int storage_style, cJSON *policy, struct err *e)
{
	cJSON *body = policy, *wrap = NULL;
	struct timespec ts = { 2, 0 };
	int i, rc = -1;

	if (!storage_style) {
		if (!(wrap = cJSON_CreateObject()) || !cJSON_AddItemReferenceToObject(wrap, "policy", policy)) {
			cJSON_Delete(wrap);
			return err_set(e, "out of memory");
		}
		body = wrap;
	}
	for (i = 0; i < NEW_MEMBER_TRIES; i++) {
		rc = dp_write(c, api, method, path, body, what, NULL, e);
		/* 400 "... does not exist": a service account made a moment ago */
		if (rc == 0 || e->http != 400 || !strstr(e->msg, "does not exist"))
			break;
		nanosleep(&ts, NULL);
	}
	cJSON_Delete(wrap);
	return rc;
}

/* One read-modify-write of a policy (the plan lines printed when say). */
static int ensure_once(struct dp_ctx *c, enum grest_api api, const char *what, const char *get_method,
	const char *get_path, const char *set_method, const char *set_path, int storage_style,
	const struct dp_binding *want, int n, int say, struct err *e)
{
	struct grest_answer a = GREST_ANSWER_INIT;
	cJSON *empty = NULL;
	unsigned char added[16];
	char w[300];
	int i, count, rc = -1;

	snprintf(w, sizeof w, "IAM policy of %s", what);
	if (strcmp(get_method, "POST") == 0 && !(empty = cJSON_CreateObject())) {
		err_set(e, "out of memory");
		goto out;
	}
	if (dp_call(c, api, get_method, get_path, empty, HC_RETRY_IDEMPOTENT, &a, e) != 0) {
		err_prefix(e, "reading the %s", w);
		goto out;
	}
	if (empty)
		c->writes--;   /* a getIamPolicy sent as POST is still a read */
	if (a.status != 200 || !cJSON_IsObject(a.json)) {
		grest_error(e, &a, w);
		goto out;
	}
	if ((count = merge(a.json, want, n, added)) < 0) {
		err_set(e, "%s: the policy's bindings are not a list", w);
		goto out;
	}
	if (say) {
		dp_say(c, "iam policy", what, count ? "update" : "exists", count ? "(bindings added: +)" : "");
		for (i = 0; i < n; i++)
			explain(c, &want[i], added[i] ? "+" : "=");
	}
	rc = count && !c->cf->dry_run ? set_policy(c, api, w, set_method, set_path, storage_style, a.json, e) : 0;
out:
	cJSON_Delete(empty);
	grest_answer_free(&a);
	return rc;
}

int dp_iam_ensure(struct dp_ctx *c, enum grest_api api, const char *what, const char *get_method,
	const char *get_path, const char *set_method, const char *set_path, int storage_style,
	const struct dp_binding *want, int n, int exists, struct err *e)
{
	int i, rc = -1;

	if (n > 16)
		return err_set(e, "internal: too many bindings for %s", what);
	if (!exists) {
		dp_say(c, "iam policy", what, "add", "(the resource is not there yet)");
		for (i = 0; i < n; i++)
			explain(c, &want[i], "+");
		return 0;
	}
	/* 409: the policy changed between our read and write (its etag no longer
	 * matches): read it again and add to the new one, as Google advises. */
	for (i = 0; i < CONFLICT_TRIES; i++) {
		rc = ensure_once(c, api, what, get_method, get_path, set_method, set_path, storage_style, want, n,
			i == 0, e);
		if (rc == 0 || e->http != 409)
			break;
		fprintf(c->out, "    (the policy changed meanwhile: reading it again)\n");
	}
	return rc;
}

/* ---- the service accounts ------------------------------------------------ */

static int one_account(struct dp_ctx *c, const char *id, const char *display, const char *desc,
	char *email, size_t emaillen, struct err *e)
{
	struct buf path = BUF_INIT;
	cJSON *cur = NULL, *body = NULL, *sa;
	int rc = -1;

	if ((size_t)snprintf(email, emaillen, "%s@%s.iam.gserviceaccount.com", id, c->cf->project) >= emaillen)
		return err_set(e, "service account %s: the name is too long", id);
	if (buf_printf(&path, "/v1/projects/%s/serviceAccounts/%s", c->cf->project, email) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	if (dp_read(c, GREST_IAM, path.p, email, &cur, e) != 0)
		goto out;
	if (cur) {
		dp_say(c, "service account", email, "exists", "");
		rc = 0;
		goto out;
	}
	dp_say(c, "service account", email, "create", "");
	if (c->cf->dry_run) {
		rc = 0;
		goto out;
	}
	buf_reset(&path);
	if (buf_printf(&path, "/v1/projects/%s/serviceAccounts", c->cf->project) != 0 ||
			!(body = cJSON_CreateObject()) || !cJSON_AddStringToObject(body, "accountId", id) ||
			!(sa = cJSON_AddObjectToObject(body, "serviceAccount")) ||
			!cJSON_AddStringToObject(sa, "displayName", display) ||
			!cJSON_AddStringToObject(sa, "description", desc)) {
		err_set(e, "out of memory");
		goto out;
	}
	rc = dp_write(c, GREST_IAM, "POST", path.p, body, "creating the service account", NULL, e);
out:
	cJSON_Delete(cur);
	cJSON_Delete(body);
	buf_free(&path);
	return rc;
}

int dp_service_accounts(struct dp_ctx *c, struct err *e)
{
	if (one_account(c, c->cf->serve_sa, "ccr serve",
			"ccr's API service: starts the job, reads and writes task objects, seals payloads",
			c->serve_email, sizeof c->serve_email, e) != 0)
		return -1;
	return one_account(c, c->cf->job_sa, "ccr job",
		"ccr's task runner: opens sealed payloads, writes task objects, sends webhooks",
		c->job_email, sizeof c->job_email, e);
}
