/*
 * jscheck.c: see jscheck.h.  The JSON check is one iterative scanner (an
 * explicit stack of open brackets, so hostile nesting costs no C stack);
 * numbers are re-read with strtod from a NUL-terminated copy to learn
 * whether they overflow.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jscheck.h"

struct jp {
	const char *s;
	size_t n, i;
	struct err *e;
};

static int bad(struct jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int bad(struct jp *p, const char *fmt, ...)
{
	char what[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return err_set(p->e, "%s at byte %zu", what, p->i);
}

static void skip_ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
		p->i++;
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int scan_string(struct jp *p)
{
	size_t k;

	for (p->i++; p->i < p->n; p->i++) {
		unsigned char c = (unsigned char)p->s[p->i];

		if (c == '"') {
			p->i++;
			return 0;
		}
		if (c < 0x20)
			return bad(p, "a raw control character (0x%02x) inside a string (write it as an escape such as "
				      "\\n or \\u%04x)", c, c);
		if (c != '\\')
			continue;
		if (++p->i >= p->n)
			break;
		c = (unsigned char)p->s[p->i];
		if (c == 'u') {
			for (k = 1; k <= 4; k++)
				if (p->i + k >= p->n || !is_hex(p->s[p->i + k]))
					return bad(p, "a \\u escape without four hex digits");
			p->i += 4;
		} else if (!c || !strchr("\"\\/bfnrt", c)) {
			return bad(p, "an invalid escape sequence");
		}
	}
	return bad(p, "an unterminated string");
}

static size_t digits(struct jp *p)
{
	size_t from = p->i;

	while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
		p->i++;
	return p->i - from;
}

/* 1 when the decimal text s[0..len) overflows a double. */
static int overflows(const char *s, size_t len)
{
	char small[128], *copy = len < sizeof(small) ? small : malloc(len + 1);
	double d;

	if (!copy)
		return -1;
	memcpy(copy, s, len);
	copy[len] = 0;
	d = strtod(copy, NULL);
	if (copy != small)
		free(copy);
	return isinf(d) ? 1 : 0;     /* glibc returns -1 for -Infinity */
}

static int scan_number(struct jp *p)
{
	size_t start = p->i;
	int rc;

	if (p->s[p->i] == '-')
		p->i++;
	if (p->i < p->n && p->s[p->i] == '0')
		p->i++;
	else if (p->i >= p->n || p->s[p->i] < '1' || p->s[p->i] > '9' || !digits(p))
		return bad(p, "a malformed number");
	if (p->i < p->n && p->s[p->i] == '.') {
		p->i++;
		if (!digits(p))
			return bad(p, "a malformed number (digits must follow the decimal point)");
	}
	if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (!digits(p))
			return bad(p, "a malformed number (digits must follow the exponent)");
	}
	rc = overflows(p->s + start, p->i - start);
	if (rc < 0)
		return err_set(p->e, "out of memory");
	if (rc) {
		p->i = start;
		return bad(p, "a number too large for a double (JavaScript would read it as Infinity)");
	}
	return 0;
}

static int scan_literal(struct jp *p)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t k, len;

	for (k = 0; k < 3; k++) {
		len = strlen(words[k]);
		if (p->n - p->i >= len && memcmp(p->s + p->i, words[k], len) == 0) {
			p->i += len;
			return 0;
		}
	}
	return bad(p, "an unexpected character '%c'", p->s[p->i]);
}

/* One scalar at p->i (string, number or literal). */
static int scan_scalar(struct jp *p)
{
	char c = p->s[p->i];

	if (c == '"')
		return scan_string(p);
	if (c == '-' || (c >= '0' && c <= '9'))
		return scan_number(p);
	if (c == 't' || c == 'f' || c == 'n')
		return scan_literal(p);
	if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
		return bad(p, "an unexpected byte 0x%02x", (unsigned char)c);
	return bad(p, "an unexpected character '%c'", c);
}

enum jstate { J_VALUE, J_KEY, J_AFTER };

int jsc_json_check(const char *s, size_t n, struct err *e)
{
	struct jp p = { s, n, 0, e };
	char open[JSC_MAX_DEPTH];
	size_t depth = 0;
	enum jstate st = J_VALUE;

	for (;;) {
		skip_ws(&p);
		if (st != J_AFTER && p.i >= n)
			return bad(&p, "the body ends before the JSON value is complete");
		if (st == J_KEY) {
			if (s[p.i] != '"')
				return bad(&p, "an object key that is not a string");
			if (scan_string(&p))
				return -1;
			skip_ws(&p);
			if (p.i >= n || s[p.i] != ':')
				return bad(&p, "a missing ':' after an object key");
			p.i++;
			st = J_VALUE;
		} else if (st == J_VALUE) {
			if (s[p.i] == '{' || s[p.i] == '[') {
				if (depth == JSC_MAX_DEPTH)
					return bad(&p, "nesting deeper than %d levels", JSC_MAX_DEPTH);
				open[depth++] = s[p.i++];
				skip_ws(&p);
				if (p.i < n && s[p.i] == (open[depth - 1] == '{' ? '}' : ']')) {
					depth--, p.i++;
					st = J_AFTER;
				} else {
					st = open[depth - 1] == '{' ? J_KEY : J_VALUE;
				}
			} else if (scan_scalar(&p)) {
				return -1;
			} else {
				st = J_AFTER;
			}
		} else if (depth == 0) {
			if (p.i < n)
				return bad(&p, "unexpected data after the JSON value (only white space may follow it)");
			return 0;
		} else if (p.i >= n) {
			return bad(&p, "the body ends inside an %s", open[depth - 1] == '{' ? "object" : "array");
		} else if (s[p.i] == ',') {
			p.i++;
			st = open[depth - 1] == '{' ? J_KEY : J_VALUE;
		} else if (s[p.i] == (open[depth - 1] == '{' ? '}' : ']')) {
			depth--, p.i++;
		} else {
			return bad(&p, "a missing ',' or '%c'", open[depth - 1] == '{' ? '}' : ']');
		}
	}
}

/* Length of the JavaScript white space character at s[0..n), or 0. */
static size_t js_space(const unsigned char *s, size_t n)
{
	if (n >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0d) || s[0] == 0x20))
		return 1;
	if (n >= 2 && s[0] == 0xc2 && s[1] == 0xa0)
		return 2;                                             /* U+00A0 */
	if (n < 3)
		return 0;
	if ((s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) ||       /* U+1680 */
	    (s[0] == 0xe2 && s[1] == 0x80 && (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf) &&
	     s[2] >= 0x80) ||                                     /* U+2000..200A, 2028, 2029, 202F */
	    (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) ||       /* U+205F */
	    (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) ||       /* U+3000 */
	    (s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf))         /* U+FEFF */
		return 3;
	return 0;
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

/* 0x.., 0o.., 0b..: the length read (0 when s is not one) and *out. */
static size_t radix_literal(const char *s, size_t n, double *out)
{
	int base, d;
	size_t i;
	double v = 0;

	if (n < 3 || s[0] != '0')
		return 0;
	base = (s[1] == 'x' || s[1] == 'X') ? 16 : (s[1] == 'o' || s[1] == 'O') ? 8 : (s[1] == 'b' || s[1] == 'B') ? 2 : 0;
	if (!base)
		return 0;
	for (i = 2; i < n && (d = digit_value(s[i])) < base; i++)
		v = v * base + d;
	if (i == 2)
		return 0;
	*out = v;
	return i;
}

/* A StrDecimalLiteral without Infinity: the length read, or 0. */
static size_t decimal_literal(const char *s, size_t n)
{
	struct jp p = { s, n, 0, NULL };
	size_t whole, frac = 0;

	if (p.i < n && (s[p.i] == '+' || s[p.i] == '-'))
		p.i++;
	whole = digits(&p);
	if (p.i < n && s[p.i] == '.') {
		p.i++;
		frac = digits(&p);
	}
	if (!whole && !frac)
		return 0;
	if (p.i < n && (s[p.i] == 'e' || s[p.i] == 'E')) {
		size_t mark = p.i++;
		if (p.i < n && (s[p.i] == '+' || s[p.i] == '-'))
			p.i++;
		if (!digits(&p))
			p.i = mark;   /* "1e" is not a number: the caller sees 'e' left over */
	}
	return p.i;
}

int jsc_number(const char *s, double *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k, len;
	double v = 0;

	while ((k = js_space(u + i, n - i)) != 0)
		i += k;
	if (i == n) {
		*out = 0;
		return 0;
	}
	if ((len = radix_literal(s + i, n - i, &v)) == 0) {
		/* strtod reads at least the literal; anything it reads beyond
		 * (a hex float after a sign) is refused as left over below. */
		if ((len = decimal_literal(s + i, n - i)) == 0)
			return -1;
		v = strtod(s + i, NULL);
	}
	for (i += len; (k = js_space(u + i, n - i)) != 0;)
		i += k;
	if (i != n || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}
