/*
 * kms.c: Cloud KMS encrypt/decrypt (see kms.h).
 *
 * Design: a struct kms is just the endpoint and the key name, fixed at
 * creation, so it is shared freely between threads.  Each operation is
 * one POST to v1/<key>:encrypt|decrypt through gauth_call (retried by
 * the HTTP client on transient failures), followed by the CRC32C checks;
 * the answer checks are separate functions so the selftests can feed
 * them canned answers.  Request and answer bodies of both operations can
 * hold secrets (a DEK, a decrypted payload), so they are wiped before
 * their memory is released.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "crypto/crypto.h"
#include "gcp/auth.h"
#include "gcp/common.h"
#include "gcp/kms.h"
#include "util/b64.h"
#include "util/crc32c.h"

#define INTEGRITY_TRIES 3

struct kms {
	struct gcp_endpoint ep;
	char *key;
	size_t key_len;             /* of the CryptoKey part (no version) */
};

static void wipe_buf(struct buf *b)
{
	if (b->p)
		cr_wipe(b->p, b->cap);
	buf_free(b);
}

const char *kms_location(const char **source)
{
	static const char *const vars[] = { "CCR_KMS_LOCATION", "REGION" };
	size_t i;

	for (i = 0; i < 2; i++)
		if (gcp_setting(vars[i])) {
			if (source)
				*source = vars[i];
			return gcp_setting(vars[i]);
		}
	if (source)
		*source = "the default";
	return KMS_DEFAULT_LOCATION;
}

int kms_default_key_name(struct buf *out, struct err *e)
{
	struct buf project = BUF_INIT;
	const char *loc = kms_location(NULL);
	const char *ring = gcp_setting("KMS_KEY_RING");
	const char *key = gcp_setting("KMS_KEY_NAME");
	int rc;

	if (gauth_project_id(&project, e) != 0) {
		buf_free(&project);
		return err_prefix(e, "Cloud KMS key name");
	}
	buf_reset(out);
	rc = buf_printf(out, "projects/%s/locations/%s/keyRings/%s/cryptoKeys/%s", project.p,
		loc, ring ? ring : KMS_DEFAULT_KEY_RING,
		key ? key : KMS_DEFAULT_KEY_NAME);
	buf_free(&project);
	return rc == 0 ? 0 : err_set(e, "out of memory");
}

/* projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V] */
static int valid_key(const char *k, size_t *key_len)
{
	static const char *const parts[] = { "projects", "locations", "keyRings", "cryptoKeys",
		"cryptoKeyVersions" };
	const char *p = k;
	size_t i;

	for (i = 0; i < 5; i++) {
		size_t n = strlen(parts[i]), seg;

		if (i == 4 && *p == 0)
			break;
		if (i > 0 && *p++ != '/')
			return 0;
		if (strncmp(p, parts[i], n) != 0 || p[n] != '/')
			return 0;
		p += n + 1;
		seg = strcspn(p, "/");
		if (seg == 0 || strcspn(p, " ?#%:\t\r\n") < seg)
			return 0;
		p += seg;
		if (i == 3)
			*key_len = (size_t)(p - k);
	}
	return *p == 0;
}

struct kms *kms_new(const char *key_name, struct err *e)
{
	struct kms *k = calloc(1, sizeof *k);
	struct buf dflt = BUF_INIT;

	if (!k) {
		err_set(e, "Cloud KMS: out of memory");
		return NULL;
	}
	if (!key_name) {
		if (kms_default_key_name(&dflt, e) != 0)
			goto fail;
		key_name = dflt.p;
	}
	if (!valid_key(key_name, &k->key_len)) {
		err_set(e, "Cloud KMS: \"%.300s\" is not a key name "
			"(projects/P/locations/L/keyRings/R/cryptoKeys/K)", key_name);
		goto fail;
	}
	if (gcp_endpoint_get(&k->ep, "CCR_KMS_ENDPOINT", KMS_DEFAULT_ENDPOINT, 0, e) != 0)
		goto fail;
	if (!(k->key = strdup(key_name))) {
		err_set(e, "Cloud KMS: out of memory");
		goto fail;
	}
	buf_free(&dflt);
	return k;
fail:
	buf_free(&dflt);
	free(k);
	return NULL;
}

void kms_free(struct kms *k)
{
	if (!k)
		return;
	free(k->key);
	free(k);
}

const char *kms_key(const struct kms *k)
{
	return k->key;
}

/* ---- bodies and answers ------------------------------------------------ */

static int body(struct buf *out, const char *field, const void *data, size_t n)
{
	if (buf_printf(out, "{\"%s\":\"", field) != 0 || b64_encode(out, data, n) != 0 ||
			buf_printf(out, "\",\"%sCrc32c\":", field) != 0 || gcp_crc32c_field(out, crc32c(data, n)) != 0 ||
			buf_addc(out, '}') != 0)
		return -1;
	return 0;
}

int kms_encrypt_body(struct buf *out, const void *plain, size_t n)
{
	return body(out, "plaintext", plain, n);
}

int kms_decrypt_body(struct buf *out, const void *cipher, size_t n)
{
	return body(out, "ciphertext", cipher, n);
}

/* Decode a bytes member (absent: empty, as proto3 omits empty fields). */
static int bytes_member(const cJSON *j, const char *key, struct buf *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		return -1;
	return b64_decode(out, v->valuestring, strlen(v->valuestring)) == 0 ? 0 : -1;
}

int kms_encrypt_answer(const char *json, size_t len, uint32_t sent_crc, struct buf *out, struct err *e)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	struct buf ct = BUF_INIT;
	uint32_t want;
	int rc = -1;

	(void)sent_crc;
	if (!cJSON_IsObject(j)) {
		err_set(e, "the encrypt answer is not JSON");
		goto out;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "verifiedPlaintextCrc32c"))) {
		err_set(e, "the service did not verify plaintextCrc32c (the request may have been corrupted)");
		goto out;
	}
	if (bytes_member(j, "ciphertext", &ct) != 0 || ct.len == 0) {
		err_set(e, "the encrypt answer has no valid ciphertext");
		goto out;
	}
	if (gcp_json_crc32c(j, "ciphertextCrc32c", &want) != 0) {
		err_set(e, "the encrypt answer has no ciphertextCrc32c");
		goto out;
	}
	if (crc32c(ct.p, ct.len) != want) {
		err_set(e, "the ciphertext does not match its ciphertextCrc32c (corrupted in transit)");
		goto out;
	}
	if (buf_add(out, ct.p, ct.len) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	rc = 0;
out:
	buf_free(&ct);
	cJSON_Delete(j);
	return rc;
}

int kms_decrypt_answer(const char *json, size_t len, struct buf *out, struct err *e)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	struct buf pt = BUF_INIT;
	uint32_t want = 0;
	int rc = -1;

	if (!cJSON_IsObject(j)) {
		err_set(e, "the decrypt answer is not JSON");
		goto out;
	}
	if (bytes_member(j, "plaintext", &pt) != 0) {
		err_set(e, "the decrypt answer has no valid plaintext");
		goto out;
	}
	if (gcp_json_crc32c(j, "plaintextCrc32c", &want) != 0 && pt.len > 0) {
		err_set(e, "the decrypt answer has no plaintextCrc32c");
		goto out;
	}
	if (crc32c(pt.p, pt.len) != want) {
		err_set(e, "the plaintext does not match its plaintextCrc32c (corrupted in transit)");
		goto out;
	}
	if (buf_add(out, pt.p ? pt.p : "", pt.len) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	rc = 0;
out:
	wipe_buf(&pt);
	if (j) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "plaintext");

		if (cJSON_IsString(v))
			cr_wipe(v->valuestring, strlen(v->valuestring));
		cJSON_Delete(j);
	}
	return rc;
}

/* ---- the calls --------------------------------------------------------- */

static int kms_call(struct kms *k, const char *verb, const struct buf *req, struct hc_response *rs,
	struct err *e)
{
	static const char *const hdrs[] = { "Content-Type: application/json; charset=UTF-8", NULL };
	struct hc_request rq = { 0 };
	struct buf url = BUF_INIT;
	struct gauth *a = gauth_default(e);
	int rc;

	if (!a)
		return err_prefix(e, "Cloud KMS %s", verb);
	if (buf_printf(&url, "%s/v1/%.*s:%s", k->ep.base, (int)(strcmp(verb, "decrypt") == 0 ?
			k->key_len : strlen(k->key)), k->key, verb) != 0) {
		buf_free(&url);
		return err_set(e, "Cloud KMS: out of memory");
	}
	rq.method = "POST";
	rq.url = url.p;
	rq.headers = hdrs;
	rq.body = req->p;
	rq.body_len = req->len;
	rq.retry = HC_RETRY_IDEMPOTENT;
	rq.allow_http = k->ep.allow_http;
	rq.timeout_ms = 30000;
	rq.max_response = 1 << 20;
	rc = gauth_call(a, &rq, rs, e);
	buf_free(&url);
	if (rc != 0)
		return err_prefix(e, "Cloud KMS %s with %s", verb, k->key);
	if (rs->status != 200)
		return gcp_http_error(e, rs, gauth_default_describe(), "Cloud KMS %s with %s", verb, k->key);
	return 0;
}

int kms_encrypt(struct kms *k, const void *plain, size_t n, struct buf *out, struct err *e)
{
	struct buf req = BUF_INIT;
	struct hc_response rs = HC_RESPONSE_INIT;
	int i, rc = -1;

	if (kms_encrypt_body(&req, plain, n) != 0) {
		err_set(e, "Cloud KMS: out of memory");
		goto out;
	}
	for (i = 0; i < INTEGRITY_TRIES; i++) {
		cJSON *j;
		const char *ver;
		int ok;

		if (kms_call(k, "encrypt", &req, &rs, e) != 0)
			goto out;
		j = gcp_json_parse(&rs.body);
		ver = gcp_json_str(j, "name");
		ok = !ver || (strncmp(ver, k->key, k->key_len) == 0 &&
			(ver[k->key_len] == 0 || ver[k->key_len] == '/'));
		cJSON_Delete(j);
		if (!ok) {
			err_set(e, "Cloud KMS encrypt with %s: the service used another key", k->key);
			goto out;
		}
		if (kms_encrypt_answer(rs.body.p, rs.body.len, crc32c(plain, n), out, e) == 0) {
			rc = 0;
			goto out;
		}
		err_prefix(e, "Cloud KMS encrypt with %s", k->key);
		hc_note_retry();
	}
out:
	wipe_buf(&req);
	hc_response_free(&rs);
	return rc;
}

int kms_decrypt(struct kms *k, const void *cipher, size_t n, struct buf *out, struct err *e)
{
	struct buf req = BUF_INIT;
	struct hc_response rs = HC_RESPONSE_INIT;
	int i, rc = -1;

	if (n == 0)
		return err_set(e, "Cloud KMS decrypt: the ciphertext is empty");
	if (kms_decrypt_body(&req, cipher, n) != 0) {
		err_set(e, "Cloud KMS: out of memory");
		goto out;
	}
	for (i = 0; i < INTEGRITY_TRIES; i++) {
		if (kms_call(k, "decrypt", &req, &rs, e) != 0)
			goto out;
		if (kms_decrypt_answer(rs.body.p, rs.body.len, out, e) == 0) {
			rc = 0;
			goto out;
		}
		err_prefix(e, "Cloud KMS decrypt with %s", k->key);
		hc_note_retry();
		if (rs.body.p)
			cr_wipe(rs.body.p, rs.body.cap);
	}
out:
	buf_free(&req);
	if (rs.body.p)
		cr_wipe(rs.body.p, rs.body.cap);
	hc_response_free(&rs);
	return rc;
}
