/*
 * dp_secrets.c: the Secret Manager secrets of a ccr deployment: the
 * webhook callback secret (CLOUDRUN_CALLBACK_SECRET, in serve and the
 * job) and serve's API keys (CCR_API_KEYS).  See deploy.h.
 *
 * Values come from a file (--callback-secret-file, --api-keys-file; one
 * trailing newline is dropped) or are generated once: a secret that
 * already has a version keeps it, so a second run changes nothing and
 * webhook receivers keep verifying.  A value from a file is compared with
 * the latest version and added as a new version only when it differs
 * (the old versions stay, which is how a rollback works).  Values are
 * never printed; memory holding them is wiped.
 *
 * IAM on each secret: serve reads both (Cloud Run resolves the secret env
 * with the service's identity), the job reads the callback secret only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"
#include "deploy/deploy.h"
#include "gcp/secrets.h"
#include "util/b64.h"
#include "util/crc32c.h"
#include "util/hex.h"

#define MAX_SECRET_BYTES 65536

static void wipe(struct buf *b)
{
	if (b->p)
		cr_wipe(b->p, b->cap);
	buf_free(b);
}

static int read_value(const char *file, struct buf *out, struct err *e)
{
	FILE *f = fopen(file, "rb");
	char chunk[4096];
	size_t n;

	if (!f)
		return err_set(e, "cannot read the secret value file %s: %s", file, strerror(errno));
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (out->len + n > MAX_SECRET_BYTES || buf_add(out, chunk, n) != 0) {
			fclose(f);
			cr_wipe(chunk, sizeof chunk);
			return err_set(e, "%s: a secret value is at most %d bytes", file, MAX_SECRET_BYTES);
		}
	}
	cr_wipe(chunk, sizeof chunk);
	if (ferror(f)) {
		fclose(f);
		return err_set(e, "reading %s: %s", file, strerror(errno));
	}
	fclose(f);
	if (out->len && out->p[out->len - 1] == '\n')
		out->p[--out->len] = 0;
	if (out->len && out->p[out->len - 1] == '\r')
		out->p[--out->len] = 0;
	if (out->len == 0)
		return err_set(e, "%s is empty: a secret needs a value", file);
	return 0;
}

/* A fresh value: whsec_<base64 of 32 random bytes> (Standard Webhooks)
 * for the callback secret, ccr_<64 hex digits> for an API key. */
static int generate(int callback, struct buf *out, struct err *e)
{
	unsigned char raw[32];
	int rc;

	if (cr_random(raw, sizeof raw) != 0)
		return err_set(e, "no random bytes for a generated secret");
	rc = callback ? (buf_adds(out, "whsec_") || b64_encode(out, raw, sizeof raw)) :
		(buf_adds(out, "ccr_") || hex_encode(out, raw, sizeof raw));
	cr_wipe(raw, sizeof raw);
	return rc == 0 ? 0 : err_set(e, "out of memory");
}

/* The latest version's value into cur; *none = 1 when there is none. */
static int latest(struct dp_ctx *c, const char *id, struct buf *cur, int *none, struct err *e)
{
	struct grest_answer a = GREST_ANSWER_INIT;
	char path[400];
	int rc = -1;

	*none = 0;
	snprintf(path, sizeof path, "/v1/projects/%s/secrets/%s/versions/latest:access", c->cf->project, id);
	if (dp_call(c, GREST_SECRETMANAGER, "GET", path, NULL, HC_RETRY_IDEMPOTENT, &a, e) != 0) {
		err_prefix(e, "reading secret %s", id);
		goto out;
	}
	if (a.status == 404) {
		*none = 1;
		rc = 0;
		goto out;
	}
	if (a.status != 200) {
		char w[300];

		snprintf(w, sizeof w, "reading the latest version of secret %s", id);
		grest_error(e, &a, w);
		goto out;
	}
	rc = gsm_payload_from_json(a.rs.body.p, a.rs.body.len, cur, e);
	if (rc != 0)
		err_prefix(e, "secret %s", id);
out:
	if (a.rs.body.p)
		cr_wipe(a.rs.body.p, a.rs.body.cap);
	grest_answer_free(&a);
	return rc;
}

static int add_version(struct dp_ctx *c, const char *id, const struct buf *value, struct err *e)
{
	struct buf data = BUF_INIT, path = BUF_INIT;
	cJSON *body = cJSON_CreateObject(), *payload;
	char crc[24];
	int rc = -1;

	snprintf(crc, sizeof crc, "%lu", (unsigned long)crc32c(value->p, value->len));
	if (!body || !(payload = cJSON_AddObjectToObject(body, "payload")) ||
			b64_encode(&data, value->p, value->len) != 0 ||
			!cJSON_AddStringToObject(payload, "data", data.p) ||
			!cJSON_AddStringToObject(payload, "dataCrc32c", crc) ||
			buf_printf(&path, "/v1/projects/%s/secrets/%s:addVersion", c->cf->project, id) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	rc = dp_write(c, GREST_SECRETMANAGER, "POST", path.p, body, "adding a secret version", NULL, e);
out:
	if (body) {
		cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(body, "payload"), "data");

		if (cJSON_IsString(d))
			cr_wipe(d->valuestring, strlen(d->valuestring));
	}
	cJSON_Delete(body);
	wipe(&data);
	buf_free(&path);
	return rc;
}

static int create_secret(struct dp_ctx *c, const char *id, struct err *e)
{
	char path[400];
	cJSON *body = cJSON_Parse("{\"replication\":{\"automatic\":{}}}");
	int rc;

	if (!body)
		return err_set(e, "out of memory");
	snprintf(path, sizeof path, "/v1/projects/%s/secrets?secretId=%s", c->cf->project, id);
	rc = dp_write(c, GREST_SECRETMANAGER, "POST", path, body, "creating the secret", NULL, e);
	cJSON_Delete(body);
	return rc;
}

/* The secret and its value; *exists: it is there (or was just made). */
static int one_secret(struct dp_ctx *c, const char *id, const char *file, int callback, int *exists,
	struct err *e)
{
	struct buf want = BUF_INIT, cur = BUF_INIT;
	char path[400];
	cJSON *meta = NULL;
	int none = 1, rc = -1;
	const char *state;

	snprintf(path, sizeof path, "/v1/projects/%s/secrets/%s", c->cf->project, id);
	if (dp_read(c, GREST_SECRETMANAGER, path, "the secret", &meta, e) != 0)
		return -1;
	*exists = meta != NULL;
	cJSON_Delete(meta);
	if (file && read_value(file, &want, e) != 0)
		goto out;
	if (*exists && latest(c, id, &cur, &none, e) != 0)
		goto out;
	if (!*exists)
		state = "create";
	else if (none || (file && (cur.len != want.len || !cr_const_eq(cur.p, want.p, want.len))))
		state = "update";
	else
		state = "exists";
	dp_say(c, "secret", path + 4, state, !strcmp(state, "exists") ? "(value kept)" :
		file ? "(new version from the file)" : "(new version: generated; read it with `ccr gcp secret get ...`)");
	if (!strcmp(state, "exists") || c->cf->dry_run) {
		rc = 0;
		goto out;
	}
	if (!*exists && create_secret(c, id, e) != 0)
		goto out;
	*exists = 1;
	if (!file && generate(callback, &want, e) != 0)
		goto out;
	rc = add_version(c, id, &want, e);
out:
	wipe(&want);
	wipe(&cur);
	return rc;
}

static int secret_iam(struct dp_ctx *c, const char *id, int exists, int job_too, struct err *e)
{
	struct dp_binding b[2] = {
		{ "roles/secretmanager.secretAccessor", "", "" },
		{ "roles/secretmanager.secretAccessor", "", "the job signs each task's webhook with the "
			"callback secret (Cloud Run resolves it with the job's identity)" },
	};
	char get[400], set[400], what[300];

	b[0].why = job_too ? "serve signs the webhooks of tasks it finalises (Cloud Run resolves the "
		"secret env with the service's identity)" : "serve checks the Bearer API keys of every task "
		"request (resolved by Cloud Run with the service's identity)";
	snprintf(b[0].member, sizeof b[0].member, "serviceAccount:%s", c->serve_email);
	snprintf(b[1].member, sizeof b[1].member, "serviceAccount:%s", c->job_email);
	snprintf(get, sizeof get, "/v1/projects/%s/secrets/%s:getIamPolicy", c->cf->project, id);
	snprintf(set, sizeof set, "/v1/projects/%s/secrets/%s:setIamPolicy", c->cf->project, id);
	snprintf(what, sizeof what, "secret %s", id);
	return dp_iam_ensure(c, GREST_SECRETMANAGER, what, "GET", get, "POST", set, 0, b, job_too ? 2 : 1,
		exists, e);
}

int dp_secrets(struct dp_ctx *c, struct err *e)
{
	int exists;

	if (one_secret(c, c->cf->callback_secret, c->cf->callback_secret_file, 1, &exists, e) != 0 ||
			secret_iam(c, c->cf->callback_secret, exists, 1, e) != 0)
		return -1;
	if (one_secret(c, c->cf->api_keys_secret, c->cf->api_keys_file, 0, &exists, e) != 0)
		return -1;
	return secret_iam(c, c->cf->api_keys_secret, exists, 0, e);
}
