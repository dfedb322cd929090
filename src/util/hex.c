/*
 * hex.c: hexadecimal encoding / decoding.
 *
 * Design: hex_fmt() and hex_decode_mem() do the work on caller memory;
 * the struct buf variants reserve the exact room once and call them, so
 * there is a single encoder and a single decoder.  Digit values are
 * computed from character ranges (no tables).
 */
#include "util/hex.h"

#include <stdint.h>

static const char hex_digits[16] = {
	'0', '1', '2', '3', '4', '5', '6', '7',
	'8', '9', 'a', 'b', 'c', 'd', 'e', 'f'
};

int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void hex_fmt(char *dst, const void *data, size_t n)
{
	const unsigned char *s = data;
	size_t i;

	for (i = 0; i < n; i++) {
		*dst++ = hex_digits[s[i] >> 4];
		*dst++ = hex_digits[s[i] & 15];
	}
	*dst = '\0';
}

int hex_encode(struct buf *out, const void *data, size_t n)
{
	if (n > (SIZE_MAX - 2) / 2)
		return -2;
	if (buf_reserve(out, 2 * n) != 0)
		return -2;
	hex_fmt(out->p + out->len, data, n);
	out->len += 2 * n;
	return 0;
}

int hex_decode_mem(void *dst, size_t dstlen, const char *s, size_t n)
{
	unsigned char *d = dst;
	size_t i;

	if (n % 2 != 0 || dstlen < n / 2)
		return -1;
	for (i = 0; i < n; i += 2) {
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		d[i / 2] = (unsigned char)((hi << 4) | lo);
	}
	return 0;
}

int hex_decode(struct buf *out, const char *s, size_t n)
{
	if (n % 2 != 0)
		return -1;
	if (buf_reserve(out, n / 2) != 0)
		return -2;
	if (hex_decode_mem(out->p + out->len, n / 2, s, n) != 0) {
		out->p[out->len] = '\0';
		return -1;
	}
	out->len += n / 2;
	out->p[out->len] = '\0';
	return 0;
}
