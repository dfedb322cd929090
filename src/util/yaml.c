/*
 * yaml.c: see yaml.h.
 *
 * Design.  A port of js-yaml 3's dumper restricted to what JSON can hold
 * (writeNode / writeBlockMapping / writeBlockSequence / writeScalar /
 * chooseScalarStyle), with its UTF-16 view of strings: a character outside
 * the Basic Multilingual Plane is two surrogate units, which js-yaml 3
 * counts as non-printable, so such strings are double-quoted with \U
 * escapes exactly as js-yaml 3 did.  Each node is dumped into its own
 * buffer because the parent's separator (": " or ":" before a value that
 * starts on a new line) depends on the dump.  Folding of long lines (`>`)
 * is not implemented; plain or quoted single lines carry the same value.
 * The "would this plain scalar be read as something else" test covers
 * js-yaml's default safe schema: null, bool, int, float, timestamp (date
 * form; the others need ':' and are never plain) and merge ("<<").
 *
 * Objects are visited in JavaScript property order (array-index keys
 * first, ascending; duplicate keys at their first position with their
 * last value), because the seed's objects came from JSON.parse.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsjson.h"
#include "util/yaml.h"

/* ---- JavaScript property order ------------------------------------------ */

/* 1 and the value when key is a canonical array index (0 .. 2^32-2). */
static int array_index(const char *k, uint64_t *v)
{
	uint64_t n = 0;
	const char *p;

	if (!k || !*k || (k[0] == '0' && k[1]) || strlen(k) > 10)
		return 0;
	for (p = k; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (n > 4294967294ULL)
		return 0;
	*v = n;
	return 1;
}

static int member_cmp(const void *a, const void *b)
{
	const struct yaml_member *x = a, *y = b;

	if (x->is_idx != y->is_idx)
		return x->is_idx ? -1 : 1;
	if (x->is_idx && x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The members of obj in JavaScript order; *out is malloc'd (NULL when empty). */
int yaml_members(const cJSON *obj, struct yaml_member **out, size_t *n)
{
	const cJSON *it;
	size_t cnt = 0, i;
	struct yaml_member *m;

	*out = NULL;
	*n = 0;
	cJSON_ArrayForEach(it, obj)
		cnt++;
	if (cnt == 0)
		return 0;
	m = calloc(cnt, sizeof(*m));
	if (!m)
		return -1;
	cnt = 0;
	cJSON_ArrayForEach(it, obj) {
		const char *k = it->string ? it->string : "";
		for (i = 0; i < cnt; i++)
			if (strcmp(m[i].item->string ? m[i].item->string : "", k) == 0)
				break;
		if (i < cnt) {
			m[i].item = it;
			continue;
		}
		m[cnt].item = it;
		m[cnt].pos = cnt;
		m[cnt].is_idx = array_index(k, &m[cnt].idx);
		cnt++;
	}
	qsort(m, cnt, sizeof(*m), member_cmp);
	*out = m;
	*n = cnt;
	return 0;
}

/* obj[key] as JavaScript reads it: the last duplicate wins. */

/* ---- js-yaml 3 safeDump ------------------------------------------------- */

static int is_printable(uint32_t c)
{
	return (c >= 0x20 && c <= 0x7e) || (c >= 0xa1 && c <= 0xd7ff && c != 0x2028 && c != 0x2029) ||
	       (c >= 0xe000 && c <= 0xfffd && c != 0xfeff) || (c >= 0x10000 && c <= 0x10ffff);
}

static int is_white(uint32_t c)
{
	return c == ' ' || c == '\t';
}

static int is_ns_char(uint32_t c)
{
	return is_printable(c) && !is_white(c) && c != 0xfeff && c != '\r' && c != '\n';
}

static int plain_safe_first(uint32_t c)
{
	return is_printable(c) && c != 0xfeff && !is_white(c) && !(c < 0x80 && strchr("-?:,[]{}#&*!|=>'\"%@`", (int)c));
}

static int plain_safe(uint32_t c, uint32_t prev, int has_prev)
{
	return is_printable(c) && c != 0xfeff && c != ',' && c != '[' && c != ']' && c != '{' && c != '}' &&
	       c != ':' && (c != '#' || (has_prev && prev && is_ns_char(prev)));
}

/* UTF-8 to UTF-16 code units (what JavaScript's string holds); invalid
 * bytes become U+FFFD.  *out is malloc'd. */
static int to_utf16(const char *s, uint32_t **out, size_t *n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, k = 0;
	uint32_t *u = malloc((len + 1) * 2 * sizeof(*u));

	if (!u)
		return -1;
	while (i < len) {
		uint32_t c = p[i], min;
		size_t extra, j;

		if (c < 0x80) {
			u[k++] = c;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			extra = 1, c &= 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			extra = 2, c &= 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			extra = 3, c &= 0x07, min = 0x10000;
		else {
			u[k++] = 0xfffd;
			i++;
			continue;
		}
		for (j = 1; j <= extra; j++) {
			if (i + j >= len || (p[i + j] & 0xc0) != 0x80)
				break;
			c = (c << 6) | (p[i + j] & 0x3f);
		}
		if (j <= extra || c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
			u[k++] = 0xfffd;
			i += j > 1 ? j : 1;
			continue;
		}
		i += extra + 1;
		if (c >= 0x10000) {
			c -= 0x10000;
			u[k++] = 0xd800 + (c >> 10);
			u[k++] = 0xdc00 + (c & 0x3ff);
		} else {
			u[k++] = c;
		}
	}
	*out = u;
	*n = k;
	return 0;
}

static int put_utf8(struct buf *b, uint32_t c)
{
	char t[4];

	if (c < 0x80)
		return buf_addc(b, (char)c);
	if (c < 0x800) {
		t[0] = (char)(0xc0 | (c >> 6));
		t[1] = (char)(0x80 | (c & 0x3f));
		return buf_add(b, t, 2);
	}
	if (c < 0x10000) {
		t[0] = (char)(0xe0 | (c >> 12));
		t[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		t[2] = (char)(0x80 | (c & 0x3f));
		return buf_add(b, t, 3);
	}
	t[0] = (char)(0xf0 | (c >> 18));
	t[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	t[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	t[3] = (char)(0x80 | (c & 0x3f));
	return buf_add(b, t, 4);
}

/* Units u[i..] as UTF-8 (a surrogate pair becomes one character). */
static int put_units(struct buf *b, const uint32_t *u, size_t i, size_t end)
{
	for (; i < end; i++) {
		uint32_t c = u[i];
		if (c >= 0xd800 && c <= 0xdbff && i + 1 < end && u[i + 1] >= 0xdc00 && u[i + 1] <= 0xdfff) {
			c = 0x10000 + ((c - 0xd800) << 10) + (u[i + 1] - 0xdc00);
			i++;
		}
		if (put_utf8(b, c) != 0)
			return -1;
	}
	return 0;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* js-yaml's resolveYamlInteger. */
static int yaml_int(const char *s)
{
	size_t max = strlen(s), i = 0;
	int has = 0;
	char ch;

	if (!max)
		return 0;
	ch = s[i];
	if (ch == '-' || ch == '+')
		ch = s[++i];
	if (ch == '0') {
		if (i + 1 == max)
			return 1;
		ch = s[++i];
		if (ch == 'b' || ch == 'x') {
			int hex = ch == 'x';
			for (i++; i < max; i++) {
				ch = s[i];
				if (ch == '_')
					continue;
				if (hex ? !is_hex(ch) : (ch != '0' && ch != '1'))
					return 0;
				has = 1;
			}
			return has && ch != '_';
		}
		for (; i < max; i++) {
			ch = s[i];
			if (ch == '_')
				continue;
			if (ch < '0' || ch > '7')
				return 0;
			has = 1;
		}
		return has && ch != '_';
	}
	if (ch == '_')
		return 0;
	for (; i < max; i++) {
		ch = s[i];
		if (ch == '_')
			continue;
		if (ch == ':')
			break;
		if (!is_digit(ch))
			return 0;
		has = 1;
	}
	if (!has || ch == '_')
		return 0;
	if (ch != ':')
		return 1;
	/* base 60: (:[0-5]?[0-9])+ to the end */
	while (s[i] == ':') {
		i++;
		if (is_digit(s[i]) && s[i] <= '5' && is_digit(s[i + 1]))
			i += 2;
		else if (is_digit(s[i]))
			i++;
		else
			return 0;
	}
	return s[i] == 0;
}

/* [eE][-+]?[0-9]+ at *p (optional); 0 when malformed. */
static int skip_exp(const char **pp)
{
	const char *p = *pp;

	if (*p != 'e' && *p != 'E')
		return 1;
	p++;
	if (*p == '-' || *p == '+')
		p++;
	if (!is_digit(*p))
		return 0;
	while (is_digit(*p))
		p++;
	*pp = p;
	return 1;
}

/* js-yaml's YAML_FLOAT_PATTERN (the forms without ':'). */
static int yaml_float(const char *s)
{
	const char *p = s;
	size_t n = strlen(s);

	if (!n || s[n - 1] == '_')
		return 0;
	if (*p == '.') {
		const char *q = p + 1;
		if (!strcmp(q, "nan") || !strcmp(q, "NaN") || !strcmp(q, "NAN") || !strcmp(q, "inf") ||
		    !strcmp(q, "Inf") || !strcmp(q, "INF"))
			return 1;
		if (!is_digit(*q) && *q != '_')
			return 0;
		while (is_digit(*q) || *q == '_')
			q++;
		return skip_exp(&q) && *q == 0;
	}
	if (*p == '-' || *p == '+')
		p++;
	if (*p == '.' && (!strcmp(p + 1, "inf") || !strcmp(p + 1, "Inf") || !strcmp(p + 1, "INF")))
		return 1;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (is_digit(*p) || *p == '_')
			p++;
	else
		return 0;
	if (*p == '.')
		for (p++; is_digit(*p) || *p == '_'; p++)
			;
	return skip_exp(&p) && *p == 0;
}

/* Would a plain scalar s be read back as something other than a string? */
static int ambiguous(const char *s)
{
	static const char *const words[] = {
		"~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "<<",
	};
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(s, words[i]) == 0)
			return 1;
	if (yaml_int(s) || yaml_float(s))
		return 1;
	/* timestamp, date form: YYYY-MM-DD */
	if (strlen(s) == 10 && is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) &&
	    s[4] == '-' && is_digit(s[5]) && is_digit(s[6]) && s[7] == '-' && is_digit(s[8]) && is_digit(s[9]))
		return 1;
	return 0;
}

static int deprecated_bool(const char *s)
{
	static const char *const words[] = {
		"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off", "OFF",
	};
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(s, words[i]) == 0)
			return 1;
	return 0;
}

static int add_spaces(struct buf *b, int n)
{
	while (n-- > 0)
		if (buf_addc(b, ' ') != 0)
			return -1;
	return 0;
}

static int hex_escape(struct buf *b, uint32_t c)
{
	if (c <= 0xff)
		return buf_printf(b, "\\x%02X", (unsigned)c);
	if (c <= 0xffff)
		return buf_printf(b, "\\u%04X", (unsigned)c);
	return buf_printf(b, "\\U%08X", (unsigned)c);
}

static int write_double(struct buf *b, const uint32_t *u, size_t n)
{
	size_t i;

	if (buf_addc(b, '"') != 0)
		return -1;
	for (i = 0; i < n; i++) {
		uint32_t c = u[i];
		const char *esc = NULL;
		int rc;

		if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && u[i + 1] >= 0xdc00 && u[i + 1] <= 0xdfff) {
			rc = hex_escape(b, (c - 0xd800) * 0x400 + u[i + 1] - 0xdc00 + 0x10000);
			i++;
			if (rc != 0)
				return -1;
			continue;
		}
		switch (c) {
		case 0x00: esc = "\\0"; break;
		case 0x07: esc = "\\a"; break;
		case 0x08: esc = "\\b"; break;
		case 0x09: esc = "\\t"; break;
		case 0x0a: esc = "\\n"; break;
		case 0x0b: esc = "\\v"; break;
		case 0x0c: esc = "\\f"; break;
		case 0x0d: esc = "\\r"; break;
		case 0x1b: esc = "\\e"; break;
		case 0x22: esc = "\\\""; break;
		case 0x5c: esc = "\\\\"; break;
		case 0x85: esc = "\\N"; break;
		case 0xa0: esc = "\\_"; break;
		case 0x2028: esc = "\\L"; break;
		case 0x2029: esc = "\\P"; break;
		}
		if (esc)
			rc = buf_adds(b, esc);
		else if (is_printable(c))
			rc = put_utf8(b, c);
		else
			rc = hex_escape(b, c);
		if (rc != 0)
			return -1;
	}
	return buf_addc(b, '"');
}

/* A single-quoted scalar: '' for each quote. */
static int write_single(struct buf *b, const uint32_t *u, size_t n)
{
	size_t i;
	int rc = buf_addc(b, '\'');

	for (i = 0; rc == 0 && i < n; i++) {
		if (u[i] == '\'')
			rc = buf_add(b, "''", 2);
		else
			rc = put_units(b, u, i, i + 1);
	}
	return rc == 0 ? buf_addc(b, '\'') : rc;
}

/* A literal block scalar (|): the header has an indentation indicator
 * when the text starts with (newlines and) a space, and chomping from the
 * trailing newlines; then indentString (empty lines stay empty), without
 * the final newline. */
static int write_literal(struct buf *b, const uint32_t *u, size_t n, int indent)
{
	size_t j = 0, start;
	int clip = u[n - 1] == '\n', keep = clip && (n == 1 || u[n - 2] == '\n');
	int rc;

	while (j < n && u[j] == '\n')
		j++;
	rc = buf_addc(b, '|');
	if (rc == 0 && j < n && u[j] == ' ')
		rc = buf_addc(b, '2');
	if (rc == 0)
		rc = buf_adds(b, keep ? "+\n" : clip ? "\n" : "-\n");
	for (start = 0; rc == 0 && start < n;) {
		size_t nl = start, stop;

		while (nl < n && u[nl] != '\n')
			nl++;
		stop = nl < n ? nl + 1 : n;
		if (nl > start)
			rc = add_spaces(b, indent);
		if (rc == 0)
			rc = put_units(b, u, start, stop);
		start = stop;
	}
	if (rc == 0 && clip) {
		b->len--;
		b->p[b->len] = 0;
	}
	return rc;
}

/* writeScalar for a string at `level` (iskey: single line only). */
static int y_scalar(struct buf *b, const char *s, int level, int iskey)
{
	enum { PLAIN, SINGLE, LITERAL, DOUBLE } style;
	uint32_t *u = NULL;
	size_t n, i;
	int plain, line_break = 0, rc = 0, indent;

	if (!*s)
		return buf_adds(b, "''");
	if (deprecated_bool(s))
		return buf_printf(b, "'%s'", s);
	if (to_utf16(s, &u, &n) != 0)
		return -1;
	indent = 2 * (level > 1 ? level : 1);
	plain = plain_safe_first(u[0]) && !is_white(u[n - 1]);
	style = PLAIN;
	for (i = 0; i < n; i++) {
		if (!iskey && u[i] == '\n') {
			line_break = 1;
		} else if (!is_printable(u[i])) {
			style = DOUBLE;
			break;
		}
		plain = plain && plain_safe(u[i], i ? u[i - 1] : 0, i > 0);
	}
	if (style != DOUBLE) {
		if (!line_break)
			style = plain && !ambiguous(s) ? PLAIN : SINGLE;
		else
			style = LITERAL;
	}
	switch (style) {
	case PLAIN:
		rc = put_units(b, u, 0, n);
		break;
	case SINGLE:
		rc = write_single(b, u, n);
		break;
	case DOUBLE:
		rc = write_double(b, u, n);
		break;
	case LITERAL:
		rc = write_literal(b, u, n, indent);
		break;
	}
	free(u);
	return rc;
}

static int y_number(struct buf *b, double d)
{
	char t[JSJ_DTOA_MAX];

	if (isnan(d))
		return buf_adds(b, ".nan");
	if (isinf(d))
		return buf_adds(b, d > 0 ? ".inf" : "-.inf");
	if (d == 0 && signbit(d))
		return buf_adds(b, "-0.0");
	jsj_dtoa(d, t);
	if (d != floor(d)) {
		/* float: "1e-7" -> "1.e-7" (SCALAR_SCIENTIFIC_PATTERN) */
		char *ep = strchr(t, 'e');
		if (ep && !memchr(t, '.', (size_t)(ep - t)))
			return buf_printf(b, "%.*s.%s", (int)(ep - t), t, ep);
	}
	return buf_adds(b, t);
}

static int y_node(struct buf *b, const cJSON *v, int level, int compact);

static int nl_indent(struct buf *b, int level)
{
	return buf_addc(b, '\n') != 0 || add_spaces(b, 2 * level) != 0 ? -1 : 0;
}

/* writeBlockMapping; drop_null skips members whose value is null. */
static int y_mapping(struct buf *b, const cJSON *obj, int level, int compact, int drop_null, size_t *count)
{
	struct yaml_member *m;
	size_t n, i, written = 0;
	int rc = 0;

	if (yaml_members(obj, &m, &n) != 0)
		return -1;
	for (i = 0; rc == 0 && i < n; i++) {
		struct buf key = BUF_INIT, val = BUF_INIT;
		int explicit_pair;

		if (drop_null && cJSON_IsNull(m[i].item))
			continue;
		if (!compact || written != 0)
			rc = nl_indent(b, level);
		if (rc == 0)
			rc = y_scalar(&key, m[i].item->string ? m[i].item->string : "", level + 1, 1);
		explicit_pair = key.len > 1024;
		if (rc == 0 && explicit_pair)
			rc = buf_adds(b, "? ");
		if (rc == 0)
			rc = buf_add(b, key.p, key.len);
		if (rc == 0 && explicit_pair)
			rc = nl_indent(b, level);
		if (rc == 0)
			rc = y_node(&val, m[i].item, level + 1, explicit_pair);
		if (rc == 0)
			rc = buf_adds(b, val.len && val.p[0] == '\n' ? ":" : ": ");
		if (rc == 0)
			rc = buf_add(b, val.p, val.len);
		buf_free(&key);
		buf_free(&val);
		written++;
	}
	free(m);
	if (count)
		*count = written;
	if (rc == 0 && written == 0)
		rc = buf_adds(b, "{}");
	return rc;
}

static int y_sequence(struct buf *b, const cJSON *arr, int level, int compact)
{
	const cJSON *it;
	size_t i = 0;
	int rc = 0;

	cJSON_ArrayForEach(it, arr) {
		struct buf val = BUF_INIT;

		rc = y_node(&val, it, level + 1, 1);
		if (rc == 0 && (!compact || i != 0))
			rc = nl_indent(b, level);
		if (rc == 0)
			rc = buf_adds(b, val.len && val.p[0] == '\n' ? "-" : "- ");
		if (rc == 0)
			rc = buf_add(b, val.p, val.len);
		buf_free(&val);
		if (rc != 0)
			return -1;
		i++;
	}
	return i == 0 ? buf_adds(b, "[]") : 0;
}

static int y_node(struct buf *b, const cJSON *v, int level, int compact)
{
	if (cJSON_IsObject(v))
		return v->child ? y_mapping(b, v, level, compact, 0, NULL) : buf_adds(b, "{}");
	if (cJSON_IsArray(v))
		return v->child ? y_sequence(b, v, level, compact) : buf_adds(b, "[]");
	if (cJSON_IsString(v))
		return y_scalar(b, v->valuestring ? v->valuestring : "", level, 0);
	if (cJSON_IsNumber(v))
		return y_number(b, v->valuedouble);
	if (cJSON_IsTrue(v))
		return buf_adds(b, "true");
	if (cJSON_IsFalse(v))
		return buf_adds(b, "false");
	if (cJSON_IsRaw(v) && v->valuestring)
		return buf_adds(b, v->valuestring);
	return buf_adds(b, "null");
}

int yaml_dump(struct buf *out, const cJSON *v)
{
	size_t start = out->len;

	if (y_node(out, v, 0, 1) != 0) {
		out->len = start;
		if (out->p)
			out->p[start] = 0;
		return -1;
	}
	return 0;
}

int yaml_dump_mapping(struct buf *out, const cJSON *obj, int drop_null, size_t *count)
{
	size_t start = out->len;

	if (y_mapping(out, obj, 0, 1, drop_null, count) != 0) {
		out->len = start;
		if (out->p)
			out->p[start] = 0;
		return -1;
	}
	return 0;
}
