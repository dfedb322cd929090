/*
 * fuzz.h: what every libFuzzer target in tests/fuzz/ shares.
 *
 * Each target is one C file defining LLVMFuzzerTestOneInput over ccr's
 * own functions (linked from build/asan/lib/libccr-fuzz.a, see
 * scripts/build-asan).  Besides "no crash, no leak, no undefined
 * behaviour" (ASan and UBSan abort on any report), targets check
 * properties with FUZZ_CHECK, which prints what failed and aborts, so a
 * wrong answer is a finding just like a crash.
 */
#ifndef CCR_FUZZ_H
#define CCR_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                              \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* A NUL-terminated heap copy of the input (free it). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = 0;
	return s;
}

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, at
 * most U+10FFFF): the reference for the writers' round-trip properties. */
static inline int fuzz_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], len, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, cp = c & 0x07;
		else
			return 0;
		if (i + len > n)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* Append code point cp as UTF-8 (surrogates as WTF-8) to dst; returns
 * the number of bytes (dst needs 4). */
static inline size_t fuzz_put_utf8(unsigned char *dst, uint32_t cp)
{
	if (cp < 0x80) {
		dst[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		dst[0] = (unsigned char)(0xc0 | cp >> 6);
		dst[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		dst[0] = (unsigned char)(0xe0 | cp >> 12);
		dst[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		dst[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	dst[0] = (unsigned char)(0xf0 | cp >> 18);
	dst[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	dst[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	dst[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

#endif
