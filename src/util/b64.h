/*
 * b64.h: base64 (RFC 4648 §4) and base64url (RFC 4648 §5).
 *
 * Encoders append to a struct buf: b64_encode() writes the standard
 * alphabet with '=' padding (what Cloud KMS and the payload envelope use);
 * b64_url_encode() writes the URL-safe alphabet without padding (what JWS
 * and JWT use).
 *
 * Decoders append the decoded bytes to a struct buf.  They accept input
 * with or without the trailing '=' padding (if present it must be exactly
 * right), and reject with -1 any character outside the alphabet
 * (including whitespace and the other alphabet's '+' '/' or '-' '_'), a
 * length that no encoding can have (4k+1 characters), and non-zero unused
 * bits in the last character (non-canonical input).  On any failure the
 * buffer is left as it was.
 *
 * Return values: 0 on success, -1 on invalid input, -2 when memory runs
 * out (encoders can only return 0 or -2).
 */
#ifndef CCR_B64_H
#define CCR_B64_H

#include <stddef.h>

#include "util/buf.h"

/* Length of the standard (padded) encoding of n bytes, excluding NUL.
 * Returns 0 if it would not fit in a size_t. */
size_t b64_encoded_len(size_t n);

/* Length of the url (unpadded) encoding of n bytes, excluding NUL.
 * Returns 0 if it would not fit in a size_t. */
size_t b64_url_encoded_len(size_t n);

int b64_encode(struct buf *out, const void *data, size_t n);
int b64_url_encode(struct buf *out, const void *data, size_t n);

int b64_decode(struct buf *out, const char *s, size_t n);
int b64_url_decode(struct buf *out, const char *s, size_t n);

#endif
