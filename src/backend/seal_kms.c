/*
 * seal_kms.c: the sealing seam over a Cloud KMS key.
 *
 * wrap = KMS encrypt of the 32-byte DEK; unwrap = KMS decrypt, which
 * must give exactly 32 bytes; decrypt_direct = KMS decrypt of the whole
 * blob, the seed's legacy format (payloads encrypted by KMS directly,
 * before the envelope).  Both directions carry CRC32C checks (kms.c).
 * Plaintext DEKs only live in the caller's array and in buffers that
 * are wiped before they are freed.
 */
#include <stdlib.h>
#include <string.h>

#include "backend/seal.h"
#include "crypto/crypto.h"
#include "gcp/kms.h"

struct seal_kms {
	struct sealer base;
	struct kms *k;
};

static void wipe_buf(struct buf *b)
{
	if (b->p)
		cr_wipe(b->p, b->cap);
	buf_free(b);
}

static int k_wrap(struct sealer *s, const uint8_t dek[32], struct buf *out, struct err *e)
{
	return kms_encrypt(((struct seal_kms *)s)->k, dek, 32, out, e);
}

static int k_unwrap(struct sealer *s, const uint8_t *wrapped, size_t n, uint8_t dek[32], struct err *e)
{
	struct buf pt = BUF_INIT;
	int rc = -1;

	if (kms_decrypt(((struct seal_kms *)s)->k, wrapped, n, &pt, e) != 0)
		goto out;
	if (pt.len != 32) {
		err_set(e, "the KMS-unwrapped key is %zu bytes, not 32", pt.len);
		goto out;
	}
	memcpy(dek, pt.p, 32);
	rc = 0;
out:
	wipe_buf(&pt);
	return rc;
}

static int k_direct(struct sealer *s, const uint8_t *blob, size_t n, struct buf *out, struct err *e)
{
	return kms_decrypt(((struct seal_kms *)s)->k, blob, n, out, e);
}

static void k_free(struct sealer *s)
{
	struct seal_kms *sk = (struct seal_kms *)s;

	if (!sk)
		return;
	kms_free(sk->k);
	free(sk);
}

static const struct seal_ops kms_ops = { "kms", k_wrap, k_unwrap, k_direct, k_free };

struct sealer *seal_kms_new(const char *key_name, struct err *e)
{
	struct seal_kms *sk = calloc(1, sizeof *sk);

	if (!sk) {
		err_set(e, "seal: out of memory");
		return NULL;
	}
	sk->k = kms_new(key_name, e);
	if (!sk->k) {
		free(sk);
		return NULL;
	}
	sk->base.ops = &kms_ops;
	return &sk->base;
}
