/*
 * kms.h: Cloud KMS encrypt and decrypt with end-to-end CRC32C checks
 * (gcp-api.md §5).
 *
 * The key: projects/P/locations/L/keyRings/R/cryptoKeys/K where (the
 * seed's names and defaults, seed-spec §6)
 *   P = PROJECT_ID, else GCS_PROJECT_ID, else the ADC project,
 *   L = CCR_KMS_LOCATION, else REGION, else europe-west3 (the seed reads
 *       REGION only, and its setup script creates the key ring there;
 *       KMS_LOCATION, which its README documents, is never read),
 *   R = KMS_KEY_RING, else cloudrun-claude-code-keys,
 *   K = KMS_KEY_NAME, else async-task-payload-key.
 * Endpoint: https://cloudkms.googleapis.com, or CCR_KMS_ENDPOINT (which
 * may be http://, for a fake).
 *
 * Integrity (proto3 JSON: CRC32C values are int64, sent as strings):
 *   encrypt sends plaintextCrc32c and requires verifiedPlaintextCrc32c
 *   true and ciphertextCrc32c matching the returned ciphertext; decrypt
 *   sends ciphertextCrc32c and requires plaintextCrc32c to match the
 *   returned plaintext.  A response that fails a check is discarded and
 *   the call repeated (up to 3 times), as Google's documentation asks.
 * Both calls are retried on transient failures (they change nothing).
 * Plaintext is limited to 64 KiB by the service.
 *
 * Prefix kms_.
 */
#ifndef CCR_GCP_KMS_H
#define CCR_GCP_KMS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define KMS_DEFAULT_ENDPOINT "https://cloudkms.googleapis.com"
#define KMS_DEFAULT_LOCATION "europe-west3"
#define KMS_DEFAULT_KEY_RING "cloudrun-claude-code-keys"
#define KMS_DEFAULT_KEY_NAME "async-task-payload-key"

struct kms;

/* The key's location L (see above); *source (when not NULL) names where
 * it came from: "CCR_KMS_LOCATION", "REGION" or "the default". */
const char *kms_location(const char **source);

/* The key name from the environment (see above) into out. */
int kms_default_key_name(struct buf *out, struct err *e);

/* A client for key_name (NULL: kms_default_key_name()).  The name must
 * be projects/.../cryptoKeys/K (optionally .../cryptoKeyVersions/V). */
struct kms *kms_new(const char *key_name, struct err *e);
void kms_free(struct kms *k);
const char *kms_key(const struct kms *k);

/* Append the ciphertext of n bytes of plaintext to out. */
int kms_encrypt(struct kms *k, const void *plain, size_t n, struct buf *out, struct err *e);
/* Append the plaintext of n bytes of ciphertext to out (wipe it after use). */
int kms_decrypt(struct kms *k, const void *cipher, size_t n, struct buf *out, struct err *e);

/* Request bodies (exposed for the selftests):
 * {"plaintext":"<b64>","plaintextCrc32c":"<decimal>"} and
 * {"ciphertext":"<b64>","ciphertextCrc32c":"<decimal>"}. */
int kms_encrypt_body(struct buf *out, const void *plain, size_t n);
int kms_decrypt_body(struct buf *out, const void *cipher, size_t n);

/* Check an encrypt answer and append its ciphertext: 0, or -1 with the
 * failed check in e. */
int kms_encrypt_answer(const char *json, size_t len, uint32_t sent_crc, struct buf *out, struct err *e);
/* Check a decrypt answer and append its plaintext. */
int kms_decrypt_answer(const char *json, size_t len, struct buf *out, struct err *e);

#endif
