/*
 * envelope.c: the seed's payload envelope (seed-spec §6), above the
 * sealing seam.
 *
 * seal: DEK = 32 random bytes, wrapped by the backend; IV = 12 random
 * bytes; AES-256-GCM over the payload with no AAD; the result is the
 * compact JSON {"version":"v2-envelope","encryptedDek","iv","authTag",
 * "encryptedData"} with standard padded base64, in exactly that key order.
 * open: a JSON object whose version is "v2-envelope" is unwrapped and
 * decrypted; anything else goes to the backend's direct decryption (the
 * seed's legacy format), when it has one.  The DEK is wiped after use.
 */
#include <string.h>

#include <cJSON.h>

#include "backend/seal.h"
#include "crypto/crypto.h"
#include "util/b64.h"

static int add_field(struct buf *out, const char *name, const void *data, size_t n, int last)
{
	if (buf_printf(out, "\"%s\":\"", name) != 0 || b64_encode(out, data, n) != 0)
		return -1;
	return buf_adds(out, last ? "\"}" : "\",");
}

int envelope_seal(struct sealer *s, const void *plain, size_t n, struct buf *out, struct err *e)
{
	uint8_t dek[32], iv[CR_GCM_IV_LEN], tag[CR_GCM_TAG_LEN];
	struct buf wrapped = BUF_INIT, cipher = BUF_INIT;
	size_t start = out->len;
	int rc = -1;

	if (cr_random(dek, sizeof(dek)) != 0 || cr_random(iv, sizeof(iv)) != 0)
		return err_set(e, "Envelope encryption failed: no randomness from the kernel");
	if (seal_wrap(s, dek, &wrapped, e) != 0) {
		err_prefix(e, "Envelope encryption failed");
		goto done;
	}
	if (buf_reserve(&cipher, n + 1) != 0) {
		err_set(e, "Envelope encryption failed: out of memory");
		goto done;
	}
	if (cr_aes256gcm_seal(dek, iv, NULL, 0, plain, n, cipher.p, tag) != 0) {
		err_set(e, "Envelope encryption failed: AES-GCM refused its input");
		goto done;
	}
	cipher.len = n;
	if (buf_adds(out, "{\"version\":\"v2-envelope\",") != 0 ||
	    add_field(out, "encryptedDek", wrapped.p, wrapped.len, 0) != 0 ||
	    add_field(out, "iv", iv, sizeof(iv), 0) != 0 || add_field(out, "authTag", tag, sizeof(tag), 0) != 0 ||
	    add_field(out, "encryptedData", cipher.p, cipher.len, 1) != 0) {
		out->len = start;
		err_set(e, "Envelope encryption failed: out of memory");
		goto done;
	}
	rc = 0;
done:
	cr_wipe(dek, sizeof(dek));
	buf_free(&wrapped);
	buf_free(&cipher);
	return rc;
}

/* Decode the base64 string field `name` of env into out; -1 with e set. */
static int field(const cJSON *env, const char *name, struct buf *out, struct err *e)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(env, name);

	if (!cJSON_IsString(v) || !v->valuestring)
		return err_set(e, "Payload decryption failed: envelope field %s is missing or not a string", name);
	if (b64_decode(out, v->valuestring, strlen(v->valuestring)) != 0)
		return err_set(e, "Payload decryption failed: envelope field %s is not valid base64", name);
	return 0;
}

static int open_v2(struct sealer *s, const cJSON *env, struct buf *out, struct err *e)
{
	struct buf wdek = BUF_INIT, iv = BUF_INIT, tag = BUF_INIT, data = BUF_INIT;
	uint8_t dek[32];
	size_t start = out->len;
	int rc = -1;

	if (field(env, "encryptedDek", &wdek, e) || field(env, "iv", &iv, e) || field(env, "authTag", &tag, e) ||
	    field(env, "encryptedData", &data, e))
		goto done;
	if (iv.len != CR_GCM_IV_LEN || tag.len != CR_GCM_TAG_LEN) {
		err_set(e, "Payload decryption failed: iv must be 12 bytes and authTag 16 (got %zu and %zu)", iv.len,
			tag.len);
		goto done;
	}
	if (seal_unwrap(s, (const uint8_t *)wdek.p, wdek.len, dek, e) != 0) {
		err_prefix(e, "Payload decryption failed");
		goto done;
	}
	if (buf_reserve(out, data.len + 1) != 0) {
		err_set(e, "Payload decryption failed: out of memory");
		goto wipe;
	}
	if (cr_aes256gcm_open(dek, (const uint8_t *)iv.p, NULL, 0, data.p, data.len, (const uint8_t *)tag.p,
			      out->p + start) != 0) {
		err_set(e, "Payload decryption failed: the authentication tag does not match (wrong key or damaged payload)");
		goto wipe;
	}
	out->len = start + data.len;
	out->p[out->len] = 0;
	rc = 0;
wipe:
	cr_wipe(dek, sizeof(dek));
done:
	buf_free(&wdek);
	buf_free(&iv);
	buf_free(&tag);
	buf_free(&data);
	return rc;
}

int envelope_open(struct sealer *s, const void *blob, size_t n, struct buf *out, struct err *e)
{
	cJSON *env = cJSON_ParseWithLength(blob, n);
	const cJSON *ver = env ? cJSON_GetObjectItemCaseSensitive(env, "version") : NULL;
	int rc;

	if (cJSON_IsObject(env) && cJSON_IsString(ver) && strcmp(ver->valuestring, "v2-envelope") == 0) {
		rc = open_v2(s, env, out, e);
	} else if (seal_can_decrypt_direct(s)) {
		rc = seal_decrypt_direct(s, blob, n, out, e);
		if (rc != 0)
			err_prefix(e, "Payload decryption failed");
	} else {
		rc = err_set(e, "Payload decryption failed: not a v2-envelope payload, and the %s sealing backend has no "
				"legacy format", seal_backend_name(s));
	}
	cJSON_Delete(env);
	return rc;
}
