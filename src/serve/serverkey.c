/*
 * serverkey.c: see serverkey.h.  The key lives in the caller's struct
 * serverkey (serve's context), never in a static.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"
#include "serve/serverkey.h"
#include "util/hex.h"

int serverkey_init(struct serverkey *sk, struct backends *be)
{
	memset(sk, 0, sizeof(*sk));
	sk->be = be;
	return pthread_mutex_init(&sk->lock, NULL) == 0 ? 0 : -1;
}

void serverkey_free(struct serverkey *sk)
{
	if (!sk->be)
		return;
	cr_wipe(sk->key, sizeof(sk->key));
	pthread_mutex_destroy(&sk->lock);
	sk->be = NULL;
}

/* Open the stored key into sk->key; e->http 404 when there is none. */
static int sk_read(struct serverkey *sk, struct err *e)
{
	struct backends *be = sk->be;
	struct buf sealed = BUF_INIT, plain = BUF_INIT;
	int rc = -1;

	if (storage_get(be->storage, SERVERKEY_OBJECT, 0, &sealed, e) != 0)
		goto out;
	if (envelope_open(be->sealer, sealed.p, sealed.len, &plain, e) != 0) {
		err_prefix(e, "cannot open the server key " SERVERKEY_OBJECT);
		goto out;
	}
	if (plain.len != sizeof(sk->key)) {
		err_set(e, "the server key " SERVERKEY_OBJECT " holds %zu bytes, not 32: delete it to make a new one",
			plain.len);
		goto out;
	}
	memcpy(sk->key, plain.p, sizeof(sk->key));
	rc = 0;
out:
	if (plain.p)
		cr_wipe(plain.p, plain.len);
	buf_free(&plain);
	buf_free(&sealed);
	return rc;
}

/* Make a key and store it create-only: 0 with sk->key set, 1 when another
 * instance stored one first (read that), -1 on failure. */
static int sk_create(struct serverkey *sk, struct err *e)
{
	struct backends *be = sk->be;
	struct storage_put_opts o = { "application/json", NULL, 1 };
	struct buf sealed = BUF_INIT;
	uint8_t k[32];
	int rc;

	if (cr_random(k, sizeof(k)) != 0)
		return err_set(e, "no random bytes for the server key");
	rc = envelope_seal(be->sealer, k, sizeof(k), &sealed, e);
	if (rc == 0)
		rc = storage_put(be->storage, SERVERKEY_OBJECT, sealed.p, sealed.len, &o, e);
	buf_free(&sealed);
	if (rc == 0)
		memcpy(sk->key, k, sizeof(k));
	cr_wipe(k, sizeof(k));
	if (rc != 0 && e->http == 412) {
		e->http = 0, e->msg[0] = 0;
		return 1;
	}
	return rc;
}

static int sk_load(struct serverkey *sk, struct err *e)
{
	int rc;

	pthread_mutex_lock(&sk->lock);
	rc = sk->loaded ? 0 : sk_read(sk, e);
	if (rc != 0 && e->http == 404) {
		e->http = 0, e->msg[0] = 0;
		rc = sk_create(sk, e);
		if (rc == 1)
			rc = sk_read(sk, e);
	}
	if (rc == 0)
		sk->loaded = 1;
	pthread_mutex_unlock(&sk->lock);
	if (rc != 0 && !e->http)
		e->http = 503;
	return rc;
}

int serverkey_mac(struct serverkey *sk, const char *label, const char *const *parts, const size_t *lens, size_t n,
		  char out[65], struct err *e)
{
	struct cr_hmac_sha256 h;
	uint8_t mac[CR_SHA256_LEN], len8[8];
	size_t i, k;

	if (sk_load(sk, e) != 0)
		return -1;
	cr_hmac_sha256_init(&h, sk->key, sizeof(sk->key));
	cr_hmac_sha256_update(&h, label, strlen(label) + 1);
	for (i = 0; i < n; i++) {
		for (k = 0; k < 8; k++)
			len8[k] = (uint8_t)((uint64_t)lens[i] >> (56 - 8 * k));
		cr_hmac_sha256_update(&h, len8, sizeof(len8));
		cr_hmac_sha256_update(&h, parts[i], lens[i]);
	}
	cr_hmac_sha256_final(&h, mac);
	hex_fmt(out, mac, sizeof(mac));
	return 0;
}
