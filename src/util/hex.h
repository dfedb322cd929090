/*
 * hex.h: lower-case hexadecimal encoding and decoding.
 *
 * hex_encode() appends 2n lower-case hex digits to a buffer; hex_fmt()
 * writes them into caller memory (2n + 1 bytes, NUL-terminated) for the
 * fixed-size cases (digests, ids) where no allocation is wanted.
 *
 * The decoders accept upper- and lower-case digits, and reject an odd
 * length or any other character (including whitespace) with -1.
 * hex_decode() appends n/2 bytes to a buffer (-2 when memory runs out,
 * buffer unchanged on failure); hex_decode_mem() writes n/2 bytes to dst,
 * which must hold dstlen >= n/2 bytes (-1 otherwise).
 */
#ifndef CCR_HEX_H
#define CCR_HEX_H

#include <stddef.h>

#include "util/buf.h"

/* hex_digit: the value of one hex digit (either case), or -1. */
int hex_digit(char c);
int hex_encode(struct buf *out, const void *data, size_t n);
void hex_fmt(char *dst, const void *data, size_t n);

int hex_decode(struct buf *out, const char *s, size_t n);
int hex_decode_mem(void *dst, size_t dstlen, const char *s, size_t n);

#endif
