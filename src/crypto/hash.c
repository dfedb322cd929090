/*
 * hash.c: SHA-256 and HMAC-SHA256 over BearSSL's br_sha256 / br_hmac.
 *
 * Design: the cr_ structs embed the BearSSL contexts directly (no
 * allocation).  HMAC key setup goes through a br_hmac_key_context that
 * lives only on the stack of cr_hmac_sha256_init() and is wiped there; the
 * running br_hmac_context holds the derived inner/outer pads, so it is
 * wiped by cr_hmac_sha256_final() and by the one-shot function.
 */
#include "crypto/crypto.h"

void cr_sha256_init(struct cr_sha256 *ctx)
{
	br_sha256_init(&ctx->br);
}

void cr_sha256_update(struct cr_sha256 *ctx, const void *data, size_t n)
{
	if (n > 0)
		br_sha256_update(&ctx->br, data, n);
}

void cr_sha256_final(struct cr_sha256 *ctx, uint8_t out[CR_SHA256_LEN])
{
	br_sha256_out(&ctx->br, out);
	br_sha256_init(&ctx->br);
}

void cr_sha256(const void *data, size_t n, uint8_t out[CR_SHA256_LEN])
{
	struct cr_sha256 ctx;

	cr_sha256_init(&ctx);
	cr_sha256_update(&ctx, data, n);
	cr_sha256_final(&ctx, out);
}

void cr_hmac_sha256_init(struct cr_hmac_sha256 *ctx, const void *key, size_t keylen)
{
	br_hmac_key_context kc;

	br_hmac_key_init(&kc, &br_sha256_vtable, keylen > 0 ? key : "", keylen);
	br_hmac_init(&ctx->mac, &kc, 0);
	cr_wipe(&kc, sizeof kc);
}

void cr_hmac_sha256_update(struct cr_hmac_sha256 *ctx, const void *data, size_t n)
{
	if (n > 0)
		br_hmac_update(&ctx->mac, data, n);
}

void cr_hmac_sha256_final(struct cr_hmac_sha256 *ctx, uint8_t out[CR_SHA256_LEN])
{
	br_hmac_out(&ctx->mac, out);
	cr_wipe(ctx, sizeof *ctx);
}

void cr_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
	uint8_t out[CR_SHA256_LEN])
{
	struct cr_hmac_sha256 ctx;

	cr_hmac_sha256_init(&ctx, key, keylen);
	cr_hmac_sha256_update(&ctx, msg, n);
	cr_hmac_sha256_final(&ctx, out);
}
