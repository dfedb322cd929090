/*
 * buf.h: a growable byte buffer, the one place ccr grows memory for text.
 *
 * A struct buf owns `p` (always NUL-terminated once anything was added, so
 * it can be used as a C string when it holds text) and `len` bytes of data.
 * Every function that can allocate returns 0 on success and -1 when memory
 * runs out; the buffer is then left as it was, so callers can report the
 * error and free it.  A zeroed struct buf is a valid empty buffer.
 */
#ifndef CCR_BUF_H
#define CCR_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *p;
	size_t len;
	size_t cap;
};

#define BUF_INIT { 0, 0, 0 }

int buf_reserve(struct buf *b, size_t extra);
int buf_add(struct buf *b, const void *data, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
/* v in decimal, at least `width` digits (zero-padded; 0 for none). */
int buf_addu(struct buf *b, unsigned long long v, int width);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_reset(struct buf *b);          /* len = 0, keeps memory */
void buf_free(struct buf *b);           /* frees and zeroes */
char *buf_detach(struct buf *b);        /* hands p to the caller; b becomes empty */

#endif
