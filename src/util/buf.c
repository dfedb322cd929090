/*
 * buf.c: the growable byte buffer declared in buf.h.
 *
 * Design:
 *  - The only allocator calls are realloc() in buf_grow() and free() in
 *    buf_free(); every other function goes through buf_reserve().
 *  - Capacity always includes one byte for the terminating NUL, so once p
 *    is non-NULL, p[len] == '\0' holds after every successful call.
 *  - Growth doubles the capacity (starting at 64 bytes) so that appending
 *    byte by byte is amortised O(1).  All size arithmetic is checked for
 *    overflow; an impossible size is treated like an allocation failure.
 *  - A failing call leaves the buffer exactly as it was (realloc() keeps
 *    the old block when it fails, and len/cap are only updated after it
 *    succeeded).
 *  - buf_add() accepts data that points into the buffer itself (e.g. to
 *    duplicate its content): the offset is taken before the buffer may
 *    move.
 */
#include "util/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP 64

/* Make cap >= need (need counts the NUL byte). */
static int buf_grow(struct buf *b, size_t need)
{
	size_t ncap;
	char *np;

	if (need <= b->cap)
		return 0;
	ncap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	np = realloc(b->p, ncap);
	if (np == NULL)
		return -1;
	b->p = np;
	b->cap = ncap;
	return 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
	size_t need;

	if (extra > SIZE_MAX - 1 - b->len)
		return -1;
	need = b->len + extra + 1;
	if (buf_grow(b, need) != 0)
		return -1;
	b->p[b->len] = '\0';
	return 0;
}

int buf_add(struct buf *b, const void *data, size_t n)
{
	const char *src = data;
	int inside = 0;
	size_t off = 0;

	/* Pointer comparison across objects is unspecified, so compare as
	 * integers; this is only used to detect self-appends. */
	if (b->p != NULL && src != NULL) {
		uintptr_t s = (uintptr_t)src, lo = (uintptr_t)b->p;
		if (s >= lo && s < lo + b->cap) {
			inside = 1;
			off = (size_t)(s - lo);
		}
	}
	if (buf_reserve(b, n) != 0)
		return -1;
	if (inside)
		src = b->p + off;
	if (n > 0)
		memmove(b->p + b->len, src, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addu(struct buf *b, unsigned long long v, int width)
{
	char d[24];
	int n = 0;

	do {
		d[sizeof(d) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(d));
	while (n < width && n < (int)sizeof(d))
		d[sizeof(d) - 1 - n++] = '0';
	return buf_add(b, d + sizeof(d) - n, (size_t)n);
}

int buf_addc(struct buf *b, char c)
{
	if (buf_reserve(b, 1) != 0)
		return -1;
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
	return 0;
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	size_t room;
	int n;

	/* Make sure p exists so the first attempt can write into it. */
	if (buf_reserve(b, 0) != 0)
		return -1;
	room = b->cap - b->len;
	va_copy(cp, ap);
	n = vsnprintf(b->p + b->len, room, fmt, cp);
	va_end(cp);
	if (n < 0) {
		b->p[b->len] = '\0';
		return -1;
	}
	if ((size_t)n >= room) {
		if (buf_reserve(b, (size_t)n) != 0) {
			b->p[b->len] = '\0';
			return -1;
		}
		va_copy(cp, ap);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, cp);
		va_end(cp);
		if (n < 0 || (size_t)n >= b->cap - b->len) {
			b->p[b->len] = '\0';
			return -1;
		}
	}
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}

/*
 * Returns the malloc()ed string (free() it); an empty buffer that never
 * allocated yields a freshly allocated "", so NULL means out of memory
 * (and then b is left unchanged).
 */
char *buf_detach(struct buf *b)
{
	char *p;

	if (b->p == NULL && buf_reserve(b, 0) != 0)
		return NULL;
	p = b->p;
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
