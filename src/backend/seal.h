/*
 * seal.h: the sealing seam: who wraps a payload's data-encryption key.
 * Two backends: a local 32-byte key file (seal_local.c, created 0600 on
 * first use) and a Cloud KMS key (seal_kms.c).
 *
 * Above the seam, envelope.c implements the seed's payload envelope:
 * a fresh random DEK, AES-256-GCM (12-byte IV, no AAD, 16-byte tag), and
 * the JSON {"version":"v2-envelope","encryptedDek","iv","authTag",
 * "encryptedData"}.  Only the DEK crosses this seam, so the envelope is
 * byte-compatible with the seed's whichever backend wraps the key.
 */
#ifndef CCR_SEAL_H
#define CCR_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct sealer;

struct seal_ops {
	const char *name;                  /* "local" or "kms" */
	/* Wrap a 32-byte DEK; append the opaque wrapped bytes to out. */
	int (*wrap)(struct sealer *s, const uint8_t dek[32], struct buf *out, struct err *e);
	/* Unwrap bytes made by wrap into a 32-byte DEK. */
	int (*unwrap)(struct sealer *s, const uint8_t *wrapped, size_t n, uint8_t dek[32], struct err *e);
	/* The seed's legacy format: the whole payload encrypted directly by
	 * the key (KMS).  NULL when the backend has no such format. */
	int (*decrypt_direct)(struct sealer *s, const uint8_t *blob, size_t n, struct buf *out, struct err *e);
	void (*free)(struct sealer *s);
};

struct sealer {
	const struct seal_ops *ops;
};

/* The calls code above the seam makes (seal_seam.c); the optional legacy
 * format is asked with seal_can_decrypt_direct(). */
int seal_wrap(struct sealer *s, const uint8_t dek[32], struct buf *out, struct err *e);
int seal_unwrap(struct sealer *s, const uint8_t *wrapped, size_t n, uint8_t dek[32], struct err *e);
int seal_can_decrypt_direct(const struct sealer *s);
int seal_decrypt_direct(struct sealer *s, const uint8_t *blob, size_t n, struct buf *out, struct err *e);
const char *seal_backend_name(const struct sealer *s);
/* seal_free: release the backend (NULL is ignored). */
void seal_free(struct sealer *s);

struct sealer *seal_local_new(const char *key_path, struct err *e);
struct sealer *seal_kms_new(const char *key_name, struct err *e);

/* envelope_seal: seal plaintext into the envelope JSON (appended to out). */
int envelope_seal(struct sealer *s, const void *plain, size_t n, struct buf *out, struct err *e);

/* envelope_open: open an envelope (or a legacy blob) into out. */
int envelope_open(struct sealer *s, const void *blob, size_t n, struct buf *out, struct err *e);

#endif
