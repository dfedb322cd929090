/*
 * util.c: constant-time comparison and wiping of secrets.
 *
 * Design: cr_const_eq() ORs the XOR of every byte pair and only looks at
 * the accumulated value at the end, so its running time depends on n
 * alone.  cr_wipe() stores through a volatile-qualified function pointer
 * to memset: the compiler must assume the pointer may have changed and
 * cannot drop the "dead" store (the same trick as OpenSSL's
 * OPENSSL_cleanse); an empty asm with a memory clobber would also do but
 * is not standard C.
 */
#include <string.h>

#include "crypto/crypto.h"

int cr_const_eq(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= (unsigned)(x[i] ^ y[i]);
	/* acc in 0..255: (acc - 1) >> 8 has its low bit set only for 0. */
	return (int)(((acc - 1u) >> 8) & 1u);
}

static void *(*const volatile cr_memset)(void *, int, size_t) = memset;

void cr_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		cr_memset(p, 0, n);
}
