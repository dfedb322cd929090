/*
 * b64.c: base64 / base64url encoding and decoding into a struct buf.
 *
 * Design:
 *  - One encoder and one decoder core, parameterised by the two characters
 *    that differ between the alphabets (62 and 63) and by whether the
 *    encoder pads.  Character classification uses ranges, not tables, so
 *    the alphabet lives in one place.
 *  - Space for the whole result is reserved up front, then written
 *    directly into the buffer; on a decoding error the length is rolled
 *    back, so a failing call leaves the buffer as it was.
 *  - Decoding is strict (see b64.h): padding optional but exact when
 *    present, no whitespace, canonical trailing bits.
 */
#include "util/b64.h"

#include <stdint.h>

static const char b64_std_tail[2] = { '+', '/' };
static const char b64_url_tail[2] = { '-', '_' };

static char b64_sym(unsigned v, const char tail[2])
{
	if (v < 26)
		return (char)('A' + v);
	if (v < 52)
		return (char)('a' + (v - 26));
	if (v < 62)
		return (char)('0' + (v - 52));
	return tail[v - 62];
}

/* Value of one symbol, or -1 if c is not in the alphabet. */
static int b64_val(char c, const char tail[2])
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == tail[0])
		return 62;
	if (c == tail[1])
		return 63;
	return -1;
}

size_t b64_encoded_len(size_t n)
{
	size_t groups = n / 3 + (n % 3 != 0);

	if (groups > SIZE_MAX / 4 - 1)
		return 0;
	return groups * 4;
}

size_t b64_url_encoded_len(size_t n)
{
	size_t full = b64_encoded_len(n);

	if (full == 0)
		return 0;
	/* 1 leftover byte -> 2 symbols (2 pads dropped), 2 -> 3 (1 pad). */
	if (n % 3 == 1)
		return full - 2;
	if (n % 3 == 2)
		return full - 1;
	return full;
}

static int b64_enc(struct buf *out, const void *data, size_t n,
	const char tail[2], int pad)
{
	const unsigned char *s = data;
	size_t need = pad ? b64_encoded_len(n) : b64_url_encoded_len(n);
	char *d;
	size_t i;

	if (n == 0)
		return buf_reserve(out, 0) == 0 ? 0 : -2;
	if (need == 0 || buf_reserve(out, need) != 0)
		return -2;
	d = out->p + out->len;
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t w = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
		*d++ = b64_sym((w >> 18) & 63, tail);
		*d++ = b64_sym((w >> 12) & 63, tail);
		*d++ = b64_sym((w >> 6) & 63, tail);
		*d++ = b64_sym(w & 63, tail);
	}
	if (n - i == 1) {
		uint32_t w = (uint32_t)s[i] << 16;
		*d++ = b64_sym((w >> 18) & 63, tail);
		*d++ = b64_sym((w >> 12) & 63, tail);
		if (pad) {
			*d++ = '=';
			*d++ = '=';
		}
	} else if (n - i == 2) {
		uint32_t w = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
		*d++ = b64_sym((w >> 18) & 63, tail);
		*d++ = b64_sym((w >> 12) & 63, tail);
		*d++ = b64_sym((w >> 6) & 63, tail);
		if (pad)
			*d++ = '=';
	}
	out->len = (size_t)(d - out->p);
	out->p[out->len] = '\0';
	return 0;
}

int b64_encode(struct buf *out, const void *data, size_t n)
{
	return b64_enc(out, data, n, b64_std_tail, 1);
}

int b64_url_encode(struct buf *out, const void *data, size_t n)
{
	return b64_enc(out, data, n, b64_url_tail, 0);
}

static int b64_dec(struct buf *out, const char *s, size_t n, const char tail[2])
{
	size_t start = out->len, i, rem;
	unsigned char *d;
	uint32_t acc = 0;
	int v;

	/* Strip the padding: at most two '=', and only when it completes a
	 * quartet. */
	if (n > 0 && s[n - 1] == '=') {
		size_t npad = (n > 1 && s[n - 2] == '=') ? 2 : 1;
		if (n % 4 != 0)
			return -1;
		n -= npad;
	}
	rem = n % 4;
	if (rem == 1)
		return -1;
	if (buf_reserve(out, n / 4 * 3 + 2) != 0)
		return -2;
	d = (unsigned char *)out->p + start;
	for (i = 0; i + 4 <= n; i += 4) {
		int a = b64_val(s[i], tail), b = b64_val(s[i + 1], tail);
		int c = b64_val(s[i + 2], tail), e = b64_val(s[i + 3], tail);
		if (a < 0 || b < 0 || c < 0 || e < 0)
			goto bad;
		acc = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)e;
		*d++ = (unsigned char)(acc >> 16);
		*d++ = (unsigned char)(acc >> 8);
		*d++ = (unsigned char)acc;
	}
	if (rem >= 2) {
		int a = b64_val(s[i], tail), b = b64_val(s[i + 1], tail);
		if (a < 0 || b < 0)
			goto bad;
		acc = ((uint32_t)a << 18) | ((uint32_t)b << 12);
		if (rem == 3) {
			v = b64_val(s[i + 2], tail);
			if (v < 0)
				goto bad;
			acc |= (uint32_t)v << 6;
			if (acc & 0xFF)          /* unused low bits must be 0 */
				goto bad;
			*d++ = (unsigned char)(acc >> 16);
			*d++ = (unsigned char)(acc >> 8);
		} else {
			if (acc & 0xFFFF)
				goto bad;
			*d++ = (unsigned char)(acc >> 16);
		}
	}
	out->len = (size_t)((char *)d - out->p);
	out->p[out->len] = '\0';
	return 0;
bad:
	out->len = start;
	out->p[start] = '\0';
	return -1;
}

int b64_decode(struct buf *out, const char *s, size_t n)
{
	return b64_dec(out, s, n, b64_std_tail);
}

int b64_url_decode(struct buf *out, const char *s, size_t n)
{
	return b64_dec(out, s, n, b64_url_tail);
}
