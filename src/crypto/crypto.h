/*
 * crypto.h: ccr's cryptography, a thin layer over BearSSL.
 *
 * Everything ccr needs, and nothing more:
 *   - SHA-256 (one-shot and incremental) and HMAC-SHA256 (one-shot and
 *     incremental; webhook signatures, key derivation);
 *   - AES-256-GCM with a 96-bit IV and a 128-bit tag (the payload
 *     envelope of seed-spec §6);
 *   - RSASSA-PKCS1-v1_5 with SHA-256 ("RS256") signatures from a PEM private
 *     key (the service-account JWT of gcp-api §1.2);
 *   - kernel randomness (getrandom(2), so it works without /dev);
 *   - constant-time comparison and wiping of secrets.
 *
 * Conventions: prefix cr_; contexts are plain structs owned by the caller
 * (no allocation except the struct buf passed to cr_rs256_sign); functions
 * that can fail return 0 on success and -1 on failure.  Pointers may be
 * NULL only when the matching length is 0.
 */
#ifndef CCR_CRYPTO_H
#define CCR_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "bearssl.h"
#include "util/buf.h"

#define CR_SHA256_LEN 32
#define CR_GCM_KEY_LEN 32
#define CR_GCM_IV_LEN 12
#define CR_GCM_TAG_LEN 16

/* ---- hashing (hash.c) -------------------------------------------------- */

/* Incremental SHA-256: init, any number of updates, then final (which
 * leaves the context ready for a new init). */
struct cr_sha256 {
	br_sha256_context br;
};

void cr_sha256_init(struct cr_sha256 *ctx);
void cr_sha256_update(struct cr_sha256 *ctx, const void *data, size_t n);
void cr_sha256_final(struct cr_sha256 *ctx, uint8_t out[CR_SHA256_LEN]);

/* One-shot SHA-256 of n bytes. */
void cr_sha256(const void *data, size_t n, uint8_t out[CR_SHA256_LEN]);

/* Incremental HMAC-SHA256 (RFC 2104).  Keys of any length are accepted
 * (longer than 64 bytes: hashed first, as the RFC says).  final wipes the
 * context, which then needs a new init. */
struct cr_hmac_sha256 {
	br_hmac_context mac;
};

void cr_hmac_sha256_init(struct cr_hmac_sha256 *ctx, const void *key, size_t keylen);
void cr_hmac_sha256_update(struct cr_hmac_sha256 *ctx, const void *data, size_t n);
void cr_hmac_sha256_final(struct cr_hmac_sha256 *ctx, uint8_t out[CR_SHA256_LEN]);

/* One-shot HMAC-SHA256 of msg under key. */
void cr_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
	uint8_t out[CR_SHA256_LEN]);

/* ---- secrets (util.c) -------------------------------------------------- */

/* 1 when the n bytes at a and b are equal, else 0; the time taken depends
 * only on n, not on the contents. */
int cr_const_eq(const void *a, const void *b, size_t n);

/* Overwrite n bytes with zeros in a way the compiler cannot elide
 * (use it on keys, plaintext and key-decoder state before they go away). */
void cr_wipe(void *p, size_t n);

/* ---- randomness (random.c) --------------------------------------------- */

/* Fill out with n bytes from the kernel CSPRNG (getrandom(2), blocking
 * only until the pool is initialised at boot; restarts on EINTR and short
 * reads).  Falls back to /dev/urandom only on kernels without the system
 * call.  Returns 0, or -1 with errno set (out is then wiped). */
int cr_random(void *out, size_t n);

/* ---- AES-256-GCM (aead.c) ---------------------------------------------- */

/*
 * Encrypt n bytes of plain into out_cipher (n bytes; it may be the same
 * memory as plain, but must not otherwise overlap) and authenticate them
 * together with aadlen bytes of aad; write the 16-byte tag.  The IV must
 * never repeat under one key (use 12 bytes from cr_random()).  Returns 0,
 * or -1 on invalid arguments (NULL with a non-zero length).
 */
int cr_aes256gcm_seal(const uint8_t key[CR_GCM_KEY_LEN], const uint8_t iv[CR_GCM_IV_LEN],
	const void *aad, size_t aadlen, const void *plain, size_t n,
	void *out_cipher, uint8_t tag[CR_GCM_TAG_LEN]);

/*
 * Check and decrypt: out_plain receives n bytes (same aliasing rules as
 * seal).  Returns 0 when the tag matches (compared in constant time);
 * -1 when it does not (out_plain is then zeroed, so unauthenticated
 * plaintext never escapes) or on invalid arguments.
 */
int cr_aes256gcm_open(const uint8_t key[CR_GCM_KEY_LEN], const uint8_t iv[CR_GCM_IV_LEN],
	const void *aad, size_t aadlen, const void *cipher, size_t n,
	const uint8_t tag[CR_GCM_TAG_LEN], void *out_plain);

/* ---- RS256 (rsa.c) ----------------------------------------------------- */

/*
 * Sign n bytes of msg with RSASSA-PKCS1-v1_5 / SHA-256 and append the raw
 * signature (modulus length bytes, e.g. 256 for RSA-2048) to sig_out; the
 * JWT signature is b64_url_encode() of those bytes.
 *
 * pem_private_key is a NUL-terminated PEM text holding an unencrypted RSA
 * key as "-----BEGIN PRIVATE KEY-----" (PKCS#8, what Google service-account
 * JSON files carry in "private_key") or "-----BEGIN RSA PRIVATE KEY-----"
 * (PKCS#1).  Other PEM objects before the key are skipped; the final
 * newline may be missing.  RSA moduli up to 4096 bits.
 *
 * Returns 0, or -1 with a one-line reason in err (errlen bytes with the
 * NUL; err may be NULL when errlen is 0).  Every copy of the key made on
 * the way (decoder state, stack buffers) is wiped before returning.
 */
int cr_rs256_sign(const char *pem_private_key, const void *msg, size_t n,
	struct buf *sig_out, char *err, size_t errlen);

/* The selftest table, crypto_selftests (crypto_selftest.c), is declared in
 * selftest/suites.h. */

#endif
