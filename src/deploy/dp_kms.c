/*
 * dp_kms.c: the Cloud KMS key ring and key that seal task payloads (see
 * deploy.h).
 *
 * Names: the original's (KMS_KEY_RING cloudrun-claude-code-keys,
 * KMS_KEY_NAME async-task-payload-key) in REGION, the location the
 * original's code used.  Key rings and keys cannot be deleted, so neither
 * is ever replaced: a key that exists with another purpose is an error to
 * fix by hand, not something deploy changes.
 *
 * IAM on the key only: serve may encrypt (it seals each payload's data
 * key), the job may decrypt (it opens its own payload).  Neither can do
 * the other, and neither can manage the key.
 */
#include <stdio.h>
#include <string.h>

#include "deploy/deploy.h"
#include "gcp/common.h"

static int key_ring(struct dp_ctx *c, int *exists, struct err *e)
{
	char path[600];
	cJSON *cur = NULL, *body = NULL;
	int rc;

	snprintf(path, sizeof path, "/v1/projects/%s/locations/%s/keyRings/%s", c->cf->project, c->cf->region,
		c->cf->key_ring);
	if (dp_read(c, GREST_KMS, path, "the KMS key ring", &cur, e) != 0)
		return -1;
	*exists = cur != NULL;
	dp_say(c, "kms key ring", path + 4, cur ? "exists" : "create", "");
	cJSON_Delete(cur);
	if (*exists || c->cf->dry_run)
		return 0;
	snprintf(path, sizeof path, "/v1/projects/%s/locations/%s/keyRings?keyRingId=%s", c->cf->project,
		c->cf->region, c->cf->key_ring);
	if (!(body = cJSON_CreateObject()))
		return err_set(e, "out of memory");
	rc = dp_write(c, GREST_KMS, "POST", path, body, "creating the KMS key ring", NULL, e);
	cJSON_Delete(body);
	*exists = rc == 0;
	return rc;
}

static int crypto_key(struct dp_ctx *c, const char *ring, int ring_exists, int *exists, struct err *e)
{
	char path[700];
	cJSON *cur = NULL, *body = NULL;
	const char *purpose;
	int rc = -1;

	snprintf(path, sizeof path, "/v1/%s/cryptoKeys/%s", ring, c->cf->key);
	*exists = 0;
	if (ring_exists && dp_read(c, GREST_KMS, path, "the KMS key", &cur, e) != 0)
		return -1;
	if (cur) {
		purpose = gcp_json_str(cur, "purpose");
		if (purpose && strcmp(purpose, "ENCRYPT_DECRYPT") != 0) {
			err_set(e, "KMS key %s has purpose %.40s; ccr needs a symmetric ENCRYPT_DECRYPT key "
				"(pass --kms-key with another name)", path + 4, purpose);
			goto out;
		}
		*exists = 1;
		dp_say(c, "kms key", path + 4, "exists", "");
		rc = 0;
		goto out;
	}
	dp_say(c, "kms key", path + 4, "create", "(symmetric, ENCRYPT_DECRYPT)");
	if (c->cf->dry_run) {
		rc = 0;
		goto out;
	}
	snprintf(path, sizeof path, "/v1/%s/cryptoKeys?cryptoKeyId=%s", ring, c->cf->key);
	if (!(body = cJSON_CreateObject()) || !cJSON_AddStringToObject(body, "purpose", "ENCRYPT_DECRYPT")) {
		err_set(e, "out of memory");
		goto out;
	}
	rc = dp_write(c, GREST_KMS, "POST", path, body, "creating the KMS key", NULL, e);
	*exists = rc == 0;
out:
	cJSON_Delete(cur);
	cJSON_Delete(body);
	return rc;
}

int dp_kms(struct dp_ctx *c, struct err *e)
{
	struct dp_binding b[2] = {
		{ "roles/cloudkms.cryptoKeyEncrypter", "", "serve seals each task's payload (envelope "
			"encryption: it encrypts the payload's data key with this key); it never decrypts" },
		{ "roles/cloudkms.cryptoKeyDecrypter", "", "the job opens its own sealed payload (decrypts "
			"the data key); it never encrypts" },
	};
	char ring[400], key[600], get[700], set[700];
	int ring_exists = 0, key_exists = 0;

	snprintf(ring, sizeof ring, "projects/%s/locations/%s/keyRings/%s", c->cf->project, c->cf->region,
		c->cf->key_ring);
	if (key_ring(c, &ring_exists, e) != 0 || crypto_key(c, ring, ring_exists, &key_exists, e) != 0)
		return -1;
	snprintf(key, sizeof key, "%s/cryptoKeys/%s", ring, c->cf->key);
	snprintf(b[0].member, sizeof b[0].member, "serviceAccount:%s", c->serve_email);
	snprintf(b[1].member, sizeof b[1].member, "serviceAccount:%s", c->job_email);
	snprintf(get, sizeof get, "/v1/%s:getIamPolicy", key);
	snprintf(set, sizeof set, "/v1/%s:setIamPolicy", key);
	snprintf(ring, sizeof ring, "key %s", c->cf->key);
	return dp_iam_ensure(c, GREST_KMS, ring, "GET", get, "POST", set, 0, b, 2, key_exists, e);
}
