/*
 * selftest.h: the built-in test registry behind `ccr selftest`.
 *
 * A module that wants its code checked where ccr is deployed exports one
 * table of cases, `const struct st_case xxx_selftests[]`, ended by an entry
 * whose name is NULL, and selftest.c lists that table once.  A case returns
 * 0 when it passes; otherwise it writes a one-line reason into `why` (at
 * most `whylen` bytes, NUL included) and returns non-zero.  A passing case
 * may leave a short note in `why` (a count, a version); it is printed too.  Cases must not
 * need anything outside the binary except a writable /tmp (TMPDIR), so that
 * they pass in an empty chroot or a FROM scratch image.
 */
#ifndef CCR_SELFTEST_H
#define CCR_SELFTEST_H

#include <stddef.h>

struct st_case {
	const char *name;
	int (*run)(char *why, size_t whylen);
};

/* st_fail: format a reason into why and return 1 (for `return st_fail(...)`). */
int st_fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* st_hexeq: 0 when the n bytes at got equal the hex string want. */
int st_hexeq(const void *got, size_t n, const char *want);

#endif
