/*
 * jsjson.c: JSON.stringify-compatible printing of cJSON trees.
 *
 * Design:
 *  - Numbers: the shortest digit string that reads back as the same double
 *    is found by asking printf for 1, 2, ... 17 significant digits
 *    ("%.*e", correctly rounded by glibc and musl) and keeping the first
 *    that strtod() maps back to the value; 17 always suffices.  At
 *    powers of two the gap to the next lower double is half the gap to the
 *    next higher one, so the nearest k-digit decimal can miss the interval
 *    while the next one up is inside; there the next one up is tried too
 *    (ECMAScript asks for the fewest digits, nearest only as a tie-break).
 *    Integers below 2^53 skip the search.  The digits are then laid out
 *    per ECMAScript Number::toString (plain up to 21 integer digits,
 *    "0.000ddd" down to 1e-6, exponent form with an explicit sign
 *    otherwise).
 *  - Strings: bytes that need no escaping are copied in runs; UTF-8 is
 *    validated with the WHATWG decoder's byte ranges so invalid input
 *    turns into U+FFFD exactly where Node's decoder would put it.
 *  - Objects: JavaScript prints own keys in [[OwnPropertyKeys]] order
 *    (array indices ascending, then strings in creation order) and
 *    JSON.parse keeps the first position and last value of a duplicate
 *    key.  Each object's members are collected into an array of entries
 *    in a scratch buffer, sorted by (key, position) to merge duplicates,
 *    then sorted into output order.  The scratch buffer is a stack: each
 *    nesting level appends its entries and truncates them on return, so
 *    one allocation serves the whole tree; entries are addressed by index
 *    because nested levels may move the buffer.
 *  - Failure handling: every append is checked; on failure the output is
 *    truncated back to its length at entry.
 */
#include "util/jsjson.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- numbers ------------------------------------------------------------- */

/*
 * Shortest round-trip decimal digits of d (finite, > 0): digits[0..*k)
 * without leading or trailing zeros, value = 0.d1d2...dk * 10^(*n).
 */
static void jsj_shortest(double d, char digits[20], int *k, int *n)
{
	char tmp[48];
	int p, e = 0, nd = 0, pow2;
	const char *s;

	pow2 = d >= DBL_MIN && frexp(d, &e) == 0.5;
	for (p = 1; p <= 17; p++) {
		(void)snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
		if (pow2 && p < 17) {
			/* Try the next p-digit decimal above the nearest one. */
			char up[20], alt[48];
			int i, ex, carry = 1;

			nd = 0;
			for (s = tmp; *s != 'e' && *s != 'E' && *s != '\0'; s++)
				if (*s >= '0' && *s <= '9')
					up[nd++] = *s;
			ex = (int)strtol(s + 1, NULL, 10);
			for (i = nd - 1; i >= 0 && carry; i--) {
				if (up[i] == '9') {
					up[i] = '0';
				} else {
					up[i]++;
					carry = 0;
				}
			}
			if (carry) {
				/* 99..9 -> 100..0: same digit count, one higher exponent. */
				up[0] = '1';
				ex++;
			}
			up[nd] = '\0';
			(void)snprintf(alt, sizeof alt, "%se%d", up, ex - (nd - 1));
			if (strtod(alt, NULL) == d) {
				memcpy(digits, up, (size_t)nd);
				while (nd > 1 && digits[nd - 1] == '0')
					nd--;
				*k = nd;
				*n = ex + 1;
				return;
			}
		}
	}
	if (p > 17) /* cannot happen with a correct strtod; 17 always round-trips */
		(void)snprintf(tmp, sizeof tmp, "%.16e", d);
	nd = 0;
	for (s = tmp; *s != 'e' && *s != 'E' && *s != '\0'; s++)
		if (*s >= '0' && *s <= '9' && nd < 19)
			digits[nd++] = *s;
	e = *s != '\0' ? (int)strtol(s + 1, NULL, 10) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	*k = nd;
	*n = e + 1;
}

size_t jsj_dtoa(double d, char dst[JSJ_DTOA_MAX])
{
	char digits[20];
	char *o = dst;
	int k, n, i;

	if (isnan(d)) {
		memcpy(dst, "NaN", 4);
		return 3;
	}
	if (isinf(d)) {
		if (d < 0) {
			memcpy(dst, "-Infinity", 10);
			return 9;
		}
		memcpy(dst, "Infinity", 9);
		return 8;
	}
	if (d == 0) { /* +0 and -0 */
		memcpy(dst, "0", 2);
		return 1;
	}
	if (d < 0) {
		*o++ = '-';
		d = -d;
	}
	if (d < 9007199254740992.0 && d == floor(d)) {
		int len = snprintf(o, (size_t)(JSJ_DTOA_MAX - (o - dst)), "%.0f", d);
		return (size_t)(o - dst) + (size_t)(len > 0 ? len : 0);
	}
	jsj_shortest(d, digits, &k, &n);
	if (k <= n && n <= 21) {
		memcpy(o, digits, (size_t)k);
		o += k;
		for (i = k; i < n; i++)
			*o++ = '0';
	} else if (0 < n && n <= 21) {
		memcpy(o, digits, (size_t)n);
		o += n;
		*o++ = '.';
		memcpy(o, digits + n, (size_t)(k - n));
		o += k - n;
	} else if (-6 < n && n <= 0) {
		*o++ = '0';
		*o++ = '.';
		for (i = 0; i < -n; i++)
			*o++ = '0';
		memcpy(o, digits, (size_t)k);
		o += k;
	} else {
		int e = n - 1;
		*o++ = digits[0];
		if (k > 1) {
			*o++ = '.';
			memcpy(o, digits + 1, (size_t)(k - 1));
			o += k - 1;
		}
		*o++ = 'e';
		*o++ = e < 0 ? '-' : '+';
		o += snprintf(o, (size_t)(JSJ_DTOA_MAX - (o - dst)), "%d", e < 0 ? -e : e);
	}
	*o = '\0';
	return (size_t)(o - dst);
}

int jsj_number(struct buf *out, double d)
{
	char tmp[JSJ_DTOA_MAX];
	size_t n;

	if (!isfinite(d))
		return buf_add(out, "null", 4);
	n = jsj_dtoa(d, tmp);
	return buf_add(out, tmp, n);
}

/* ---- strings ------------------------------------------------------------- */

enum { JSJ_U8_OK, JSJ_U8_BAD, JSJ_U8_SURR };

/*
 * Classify the multi-byte sequence at p (p[0] >= 0x80, avail >= 1 bytes).
 * *len receives the bytes consumed: the whole character when OK, the
 * maximal invalid subpart (>= 1) when BAD, 3 for a WTF-8 surrogate whose
 * value goes to *cp.
 */
static int jsj_u8(const unsigned char *p, size_t avail, size_t *len, unsigned *cp)
{
	unsigned c = p[0], lo = 0x80, hi = 0xBF;
	size_t need, j;

	if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0;
		if (c == 0xED) {
			if (avail >= 3 && p[1] >= 0xA0 && p[1] <= 0xBF &&
					p[2] >= 0x80 && p[2] <= 0xBF) {
				*cp = 0xD000u | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
				*len = 3;
				return JSJ_U8_SURR;
			}
			hi = 0x9F;
		}
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
	} else {
		*len = 1;
		return JSJ_U8_BAD;
	}
	for (j = 1; j <= need; j++) {
		unsigned b;
		if (j >= avail) {
			*len = j;
			return JSJ_U8_BAD;
		}
		b = p[j];
		if (b < lo || b > hi) {
			*len = j;
			return JSJ_U8_BAD;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	*len = need + 1;
	return JSJ_U8_OK;
}

static int jsj_u_escape(struct buf *out, unsigned v)
{
	return buf_printf(out, "\\u%04x", v);
}

static int jsj_string_raw(struct buf *out, const char *str, size_t n)
{
	const unsigned char *p = (const unsigned char *)str;
	size_t i = 0, run = 0;

	if (buf_addc(out, '"') != 0)
		return -1;
	while (i < n) {
		unsigned c = p[i], cp;
		size_t len;
		const char *esc = NULL;
		int r;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0x80) {
			r = jsj_u8(p + i, n - i, &len, &cp);
			if (r == JSJ_U8_OK) {
				i += len;
				continue;
			}
		} else {
			r = -1;
			len = 1;
		}
		/* Something to rewrite: flush the pending raw run first. */
		if (i > run && buf_add(out, p + run, i - run) != 0)
			return -1;
		if (r == JSJ_U8_BAD) {
			if (buf_add(out, "\xEF\xBF\xBD", 3) != 0)
				return -1;
		} else if (r == JSJ_U8_SURR) {
			unsigned lo;
			size_t len2;
			if (cp <= 0xDBFF && n - i - len >= 3 &&
					jsj_u8(p + i + 3, n - i - 3, &len2, &lo) == JSJ_U8_SURR &&
					lo >= 0xDC00) {
				unsigned u = 0x10000u + ((cp - 0xD800u) << 10) + (lo - 0xDC00u);
				char u8[4];
				u8[0] = (char)(0xF0 | (u >> 18));
				u8[1] = (char)(0x80 | ((u >> 12) & 0x3F));
				u8[2] = (char)(0x80 | ((u >> 6) & 0x3F));
				u8[3] = (char)(0x80 | (u & 0x3F));
				if (buf_add(out, u8, 4) != 0)
					return -1;
				len = 6;
			} else if (jsj_u_escape(out, cp) != 0) {
				return -1;
			}
		} else {
			switch (c) {
			case '"': esc = "\\\""; break;
			case '\\': esc = "\\\\"; break;
			case '\b': esc = "\\b"; break;
			case '\f': esc = "\\f"; break;
			case '\n': esc = "\\n"; break;
			case '\r': esc = "\\r"; break;
			case '\t': esc = "\\t"; break;
			default: break;
			}
			if (esc != NULL ? buf_add(out, esc, 2) != 0 : jsj_u_escape(out, c) != 0)
				return -1;
		}
		i += len;
		run = i;
	}
	if (i > run && buf_add(out, p + run, i - run) != 0)
		return -1;
	return buf_addc(out, '"');
}

int jsj_string(struct buf *out, const char *s, size_t n)
{
	size_t start = out->len;

	if (jsj_string_raw(out, s != NULL ? s : "", s != NULL ? n : 0) != 0) {
		out->len = start;
		if (out->p != NULL)
			out->p[start] = '\0';
		return -1;
	}
	return 0;
}

/* ---- trees --------------------------------------------------------------- */

struct jsj_printer {
	struct buf *out;
	struct buf scratch;     /* stack of struct jsj_member arrays */
	unsigned indent;
};

struct jsj_member {
	const char *key;        /* key of the first occurrence */
	const cJSON *val;       /* value of the last occurrence */
	size_t pos;             /* position of the first occurrence */
	uint32_t idx;           /* numeric value when is_index */
	int is_index;
};

static const char *jsj_key(const cJSON *item)
{
	return item->string != NULL ? item->string : "";
}

/* JavaScript array index: canonical decimal integer in 0 .. 2^32 - 2. */
static int jsj_array_index(const char *k, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (k[0] == '\0' || (k[0] == '0' && k[1] != '\0'))
		return 0;
	for (i = 0; k[i] != '\0'; i++) {
		if (k[i] < '0' || k[i] > '9' || i >= 10)
			return 0;
		v = v * 10 + (uint64_t)(k[i] - '0');
	}
	if (v > 4294967294u)
		return 0;
	*out = (uint32_t)v;
	return 1;
}

/*
 * Keys compare as the UTF-16 strings JavaScript would hold for their bytes
 * (what JSON.parse merges duplicates by): invalid UTF-8 is U+FFFD, a WTF-8
 * surrogate is that code unit, a 4-byte character is its surrogate pair.
 * So "\xff" and "\xfe", both U+FFFD, are one key, as they are in Node.
 */
struct jsj_units {
	const unsigned char *p, *end;
	unsigned pending;       /* the low surrogate of a 4-byte character */
};

static int jsj_next_unit(struct jsj_units *u, unsigned *out)
{
	size_t len, j;
	unsigned cp;

	if (u->pending) {
		*out = u->pending;
		u->pending = 0;
		return 1;
	}
	if (u->p >= u->end)
		return 0;
	if (*u->p < 0x80) {
		*out = *u->p++;
		return 1;
	}
	switch (jsj_u8(u->p, (size_t)(u->end - u->p), &len, &cp)) {
	case JSJ_U8_OK:
		cp = u->p[0] & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
		for (j = 1; j < len; j++)
			cp = cp << 6 | (u->p[j] & 0x3Fu);
		if (cp >= 0x10000) {
			*out = 0xD800u + ((cp - 0x10000u) >> 10);
			u->pending = 0xDC00u + ((cp - 0x10000u) & 0x3FFu);
		} else {
			*out = cp;
		}
		break;
	case JSJ_U8_SURR:
		*out = cp;
		break;
	default:
		*out = 0xFFFDu;
		break;
	}
	u->p += len;
	return 1;
}

static int jsj_key_cmp(const char *a, const char *b)
{
	struct jsj_units x = { (const unsigned char *)a, (const unsigned char *)a + strlen(a), 0 };
	struct jsj_units y = { (const unsigned char *)b, (const unsigned char *)b + strlen(b), 0 };

	for (;;) {
		unsigned ua = 0, ub = 0;
		int ha = jsj_next_unit(&x, &ua), hb = jsj_next_unit(&y, &ub);

		if (!ha || !hb)
			return ha - hb;
		if (ua != ub)
			return ua < ub ? -1 : 1;
	}
}

static int jsj_cmp_key_pos(const void *a, const void *b)
{
	const struct jsj_member *x = a, *y = b;
	int c = jsj_key_cmp(x->key, y->key);

	if (c != 0)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int jsj_cmp_order(const void *a, const void *b)
{
	const struct jsj_member *x = a, *y = b;

	if (x->is_index != y->is_index)
		return x->is_index ? -1 : 1;
	if (x->is_index)
		return x->idx < y->idx ? -1 : x->idx > y->idx;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int jsj_newline(struct jsj_printer *pr, unsigned depth)
{
	size_t n = (size_t)pr->indent * depth;

	if (buf_reserve(pr->out, n + 1) != 0)
		return -1;
	pr->out->p[pr->out->len++] = '\n';
	memset(pr->out->p + pr->out->len, ' ', n);
	pr->out->len += n;
	pr->out->p[pr->out->len] = '\0';
	return 0;
}

static int jsj_value(struct jsj_printer *pr, const cJSON *v, unsigned depth);

static int jsj_array(struct jsj_printer *pr, const cJSON *a, unsigned depth)
{
	const cJSON *it;
	int first = 1;

	if (buf_addc(pr->out, '[') != 0)
		return -1;
	for (it = a->child; it != NULL; it = it->next) {
		if (!first && buf_addc(pr->out, ',') != 0)
			return -1;
		if (pr->indent > 0 && jsj_newline(pr, depth + 1) != 0)
			return -1;
		if ((it->type & 0xFF) == cJSON_Invalid) {
			if (buf_add(pr->out, "null", 4) != 0)
				return -1;
		} else if (jsj_value(pr, it, depth + 1) != 0) {
			return -1;
		}
		first = 0;
	}
	if (!first && pr->indent > 0 && jsj_newline(pr, depth) != 0)
		return -1;
	return buf_addc(pr->out, ']');
}

static int jsj_object(struct jsj_printer *pr, const cJSON *o, unsigned depth)
{
	const size_t base = pr->scratch.len, esz = sizeof(struct jsj_member);
	struct jsj_member *m;
	const cJSON *it;
	size_t n = 0, i, j, u;
	int first = 1, rc = -1;

	for (it = o->child; it != NULL; it = it->next)
		n++;
	if (n > (SIZE_MAX - base - 1) / esz || buf_reserve(&pr->scratch, n * esz) != 0)
		return -1;
	m = (struct jsj_member *)(void *)(pr->scratch.p + base);
	for (i = 0, it = o->child; it != NULL; it = it->next, i++) {
		m[i].key = jsj_key(it);
		m[i].val = it;
		m[i].pos = i;
		m[i].is_index = jsj_array_index(m[i].key, &m[i].idx);
	}
	pr->scratch.len = base + n * esz;
	/* Merge duplicates: first position, last value. */
	if (n > 1)
		qsort(m, n, esz, jsj_cmp_key_pos);
	for (i = 0, u = 0; i < n; i = j) {
		for (j = i + 1; j < n && jsj_key_cmp(m[j].key, m[i].key) == 0; j++)
			;
		m[u] = m[i];
		m[u].val = m[j - 1].val;
		u++;
	}
	if (u > 1)
		qsort(m, u, esz, jsj_cmp_order);

	if (buf_addc(pr->out, '{') != 0)
		goto out;
	for (i = 0; i < u; i++) {
		/* Re-derive: nested objects may have moved the scratch buffer. */
		const struct jsj_member *e = (const struct jsj_member *)(void *)(pr->scratch.p + base) + i;
		const cJSON *val = e->val;

		if ((val->type & 0xFF) == cJSON_Invalid)
			continue; /* undefined: omitted */
		if (!first && buf_addc(pr->out, ',') != 0)
			goto out;
		if (pr->indent > 0 && jsj_newline(pr, depth + 1) != 0)
			goto out;
		if (jsj_string_raw(pr->out, e->key, strlen(e->key)) != 0)
			goto out;
		if (buf_add(pr->out, ": ", pr->indent > 0 ? 2 : 1) != 0)
			goto out;
		if (jsj_value(pr, val, depth + 1) != 0)
			goto out;
		first = 0;
	}
	if (!first && pr->indent > 0 && jsj_newline(pr, depth) != 0)
		goto out;
	rc = buf_addc(pr->out, '}');
out:
	pr->scratch.len = base;
	return rc;
}

static int jsj_value(struct jsj_printer *pr, const cJSON *v, unsigned depth)
{
	switch (v->type & 0xFF) {
	case cJSON_False:
		return buf_add(pr->out, "false", 5);
	case cJSON_True:
		return buf_add(pr->out, "true", 4);
	case cJSON_NULL:
		return buf_add(pr->out, "null", 4);
	case cJSON_Number:
		return jsj_number(pr->out, v->valuedouble);
	case cJSON_String:
		if (v->valuestring == NULL)
			return buf_add(pr->out, "\"\"", 2);
		return jsj_string_raw(pr->out, v->valuestring, strlen(v->valuestring));
	case cJSON_Array:
		return jsj_array(pr, v, depth);
	case cJSON_Object:
		return jsj_object(pr, v, depth);
	case cJSON_Raw:
		if (v->valuestring == NULL)
			return buf_add(pr->out, "null", 4);
		return buf_adds(pr->out, v->valuestring);
	default:
		return buf_add(pr->out, "null", 4);
	}
}

int jsj_print(struct buf *out, const cJSON *v, unsigned indent)
{
	struct jsj_printer pr;
	size_t start = out->len;
	int rc;

	if (v == NULL || (v->type & 0xFF) == cJSON_Invalid)
		return -1;
	pr.out = out;
	pr.scratch.p = NULL;
	pr.scratch.len = 0;
	pr.scratch.cap = 0;
	pr.indent = indent > 10 ? 10 : indent;
	rc = jsj_value(&pr, v, 0);
	buf_free(&pr.scratch);
	if (rc != 0) {
		out->len = start;
		if (out->p != NULL)
			out->p[start] = '\0';
		return -1;
	}
	return 0;
}

int jsj_stringify(struct buf *out, const cJSON *v)
{
	return jsj_print(out, v, 0);
}

int jsj_stringify_pretty(struct buf *out, const cJSON *v)
{
	return jsj_print(out, v, 2);
}
