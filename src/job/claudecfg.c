/*
 * claudecfg.c: see claudecfg.h.
 *
 * Design.  Three independent pieces:
 *
 *  - The ${NAME} check walks mcpConfig with the JavaScript-style path of
 *    each value in a buffer ("mcpConfig", ".key", "[i]"), so a warning
 *    says exactly where an undefined variable is used.  The file itself
 *    is mcpConfig as given: the references stay for the CLI to expand
 *    from its environment, so no secret value is ever written to it.
 *
 *  - The YAML writer is a port of js-yaml 3's dumper restricted to what
 *    JSON can hold (writeNode / writeBlockMapping / writeBlockSequence /
 *    writeScalar / chooseScalarStyle), with its UTF-16 view of strings:
 *    a character outside the Basic Multilingual Plane is two surrogate
 *    units, which js-yaml 3 counts as non-printable, so such strings are
 *    double-quoted with \U escapes exactly as js-yaml 3 did.  Each node is
 *    dumped into its own buffer because the parent's separator (": " or
 *    ":" before a value that starts on a new line) depends on the dump.
 *    Folding of long lines (`>`) is not implemented; plain or quoted single
 *    lines carry the same value.  The "would this plain scalar be read as
 *    something else" test covers js-yaml's default safe schema: null,
 *    bool, int, float, timestamp (date form; the others need ':' and are
 *    never plain) and merge ("<<").
 *
 *  - Objects are visited in JavaScript property order (array-index keys
 *    first, ascending; duplicate keys at their first position with their
 *    last value), because the seed's objects came from JSON.parse.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/claudecfg.h"
#include "job/workspace.h"
#include "util/jsjson.h"
#include "util/redact.h"

static int fail(struct err *e)
{
	struct buf b = BUF_INIT;

	if (e && redact_str(&b, e->msg) == 0 && b.p)
		snprintf(e->msg, sizeof(e->msg), "%s", b.p);
	buf_free(&b);
	return -1;
}

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

struct member {
	const cJSON *item;     /* the last occurrence (its value counts) */
	uint64_t idx;
	int is_idx;
	size_t pos;
};

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;

	if (x->is_idx != y->is_idx)
		return x->is_idx ? -1 : 1;
	if (x->is_idx && x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The members of obj in JavaScript order; *out is malloc'd (NULL when empty). */
static int js_members(const cJSON *obj, struct member **out, size_t *n)
{
	const cJSON *it;
	size_t cnt = 0, i;
	struct member *m;

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
static const cJSON *js_get(const cJSON *obj, const char *key)
{
	const cJSON *it, *found = NULL;

	cJSON_ArrayForEach(it, obj)
		if (it->string && strcmp(it->string, key) == 0)
			found = it;
	return found;
}

/* ---- the file list ------------------------------------------------------ */

int cc_files_has(const struct cc_files *f, const char *path)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->paths[i], path) == 0)
			return 1;
	return 0;
}

int cc_files_add(struct cc_files *f, const char *path)
{
	char *copy;

	if (cc_files_has(f, path))
		return 0;
	if (f->n == f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 8;
		char **np = realloc(f->paths, nc * sizeof(*np));
		if (!np)
			return -1;
		f->paths = np;
		f->cap = nc;
	}
	if (!(copy = strdup(path)))
		return -1;
	f->paths[f->n++] = copy;
	return 0;
}

void cc_files_free(struct cc_files *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		free(f->paths[i]);
	free(f->paths);
	buf_free(&f->warnings);
	memset(f, 0, sizeof(*f));
}

/* ---- ${NAME} references ------------------------------------------------- */

static int name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* Variables the job itself puts in the CLI's environment (agentenv.h). */
static int set_by_job(const char *name)
{
	static const char *const names[] = {
		"HOME", "PATH", "ANTHROPIC_BASE_URL", "CLAUDE_CONFIG_DIR", "GIT_SSH_COMMAND",
		"PLAYWRIGHT_MCP_EXECUTABLE_PATH", "PLAYWRIGHT_MCP_SANDBOX", "CLAUDE_CODE_ACTION",
		"CLAUDE_CODE_ENTRYPOINT", "DISABLE_AUTOUPDATER",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return 1;
	return 0;
}

/* One warning line per ${NAME} in s (without a :-default) that neither
 * secrets nor the job defines. */
static int refs_in(const char *s, const cJSON *secrets, const char *path, struct buf *warnings)
{
	const char *p;

	for (p = strstr(s, "${"); p; p = strstr(p + 2, "${")) {
		const char *nm = p + 2, *q = nm;
		char name[256];
		size_t nl;

		if (!name_start(*q))
			continue;
		while (name_char(*q))
			q++;
		nl = (size_t)(q - nm);
		if (*q != '}' || nl >= sizeof(name))
			continue;
		memcpy(name, nm, nl);
		name[nl] = 0;
		if ((secrets && js_get(secrets, name)) || set_by_job(name))
			continue;
		if (buf_printf(warnings, "Environment variable \"%s\" referenced in %s but not defined in "
			       "environmentSecrets\n", name, path) != 0)
			return -1;
	}
	return 0;
}

static int refs_walk(const cJSON *v, const cJSON *secrets, struct buf *path, struct buf *warnings)
{
	const cJSON *c;
	size_t keep = path->len, i = 0;

	if (cJSON_IsString(v) && v->valuestring)
		return refs_in(v->valuestring, secrets, path->p, warnings);
	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return 0;
	for (c = v->child; c; c = c->next, i++) {
		int rc = cJSON_IsArray(v) ? buf_printf(path, "[%zu]", i)
					  : buf_printf(path, ".%s", c->string ? c->string : "");
		if (rc != 0 || refs_walk(c, secrets, path, warnings) != 0)
			return -1;
		path->len = keep;
		path->p[keep] = 0;
	}
	return 0;
}

int cc_check_refs(const cJSON *v, const cJSON *secrets, const char *path, struct buf *warnings)
{
	struct buf p = BUF_INIT;
	int rc = buf_adds(&p, path);

	if (rc == 0)
		rc = refs_walk(v, secrets, &p, warnings);
	buf_free(&p);
	return rc;
}

/* ---- names -------------------------------------------------------------- */

int cc_name_valid(const char *name, const char **why)
{
	const char *dummy, *p;
	size_t n;

	if (!why)
		why = &dummy;
	if (!name || !*name)
		return *why = "the name is empty", 0;
	n = strlen(name);
	if (n > CC_NAME_MAX)
		return *why = "the name is longer than 128 bytes", 0;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return *why = "'.' and '..' are not names", 0;
	if (name[0] == '-')
		return *why = "the name starts with '-'", 0;
	for (p = name; *p; p++) {
		if (*p == '/' || *p == '\\')
			return *why = "the name contains a path separator", 0;
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return *why = "the name contains a control character", 0;
	}
	return 1;
}

/* ---- YAML (js-yaml 3 safeDump) ------------------------------------------ */

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
		rc = buf_addc(b, '\'');
		for (i = 0; rc == 0 && i < n; i++) {
			if (u[i] == '\'')
				rc = buf_add(b, "''", 2);
			else
				rc = put_units(b, u, i, i + 1);
		}
		if (rc == 0)
			rc = buf_addc(b, '\'');
		break;
	case DOUBLE:
		rc = write_double(b, u, n);
		break;
	case LITERAL: {
		/* header: indentation indicator when the text starts with
		 * (newlines and) a space; chomping from the trailing newlines. */
		size_t j = 0, start;
		int clip = u[n - 1] == '\n', keep = clip && (n == 1 || u[n - 2] == '\n');

		while (j < n && u[j] == '\n')
			j++;
		rc = buf_addc(b, '|');
		if (rc == 0 && j < n && u[j] == ' ')
			rc = buf_addc(b, '2');
		if (rc == 0)
			rc = buf_adds(b, keep ? "+\n" : clip ? "\n" : "-\n");
		/* indentString (empty lines stay empty), then drop the final newline. */
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
		break;
	}
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
	struct member *m;
	size_t n, i, written = 0;
	int rc = 0;

	if (js_members(obj, &m, &n) != 0)
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

int cc_yaml(struct buf *out, const cJSON *v)
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

int cc_front_matter(struct buf *out, const cJSON *fm, const char *content, struct err *e)
{
	struct buf yaml = BUF_INIT;
	size_t start = out->len, count = 0;
	int rc = 0;

	if (!content)
		content = "";
	if (cJSON_IsObject(fm) && fm->child)
		rc = y_mapping(&yaml, fm, 0, 1, 1, &count);
	if (rc == 0 && count > 0)
		rc = buf_adds(out, "---\n") || buf_add(out, yaml.p, yaml.len) || buf_adds(out, "\n---\n") ? -1 : 0;
	buf_free(&yaml);
	if (rc == 0)
		rc = buf_adds(out, content);
	/* The seed looks at the content, not at what precedes it. */
	if (rc == 0 && (!*content || content[strlen(content) - 1] != '\n'))
		rc = buf_addc(out, '\n');
	if (rc != 0) {
		out->len = start;
		if (out->p)
			out->p[start] = 0;
		return err_set(e, "out of memory formatting front matter");
	}
	return 0;
}

/* ---- writing the files -------------------------------------------------- */

static int write_mcp(const char *root, const cJSON *mcp, const cJSON *secrets, struct cc_files *out,
		     struct err *e)
{
	struct buf text = BUF_INIT;
	int rc;

	if (cc_check_refs(mcp, secrets, "mcpConfig", &out->warnings) != 0 || jsj_print(&text, mcp, 2) != 0)
		rc = err_set(e, "out of memory printing .mcp.json");
	else
		rc = ws_write_file(root, ".mcp.json", text.p, text.len, 0600, e);
	buf_free(&text);
	if (rc != 0)
		return -1;
	out->mcp = 1;
	return cc_files_add(out, ".mcp.json") == 0 ? 0 : err_set(e, "out of memory");
}

/* slashCommands (agents = 0) or subagents (agents = 1). */
static int write_md(const char *root, const cJSON *set, int agents, struct cc_files *out, struct err *e)
{
	const char *what = agents ? "subagents" : "slashCommands";
	const char *dir = agents ? ".claude/agents" : ".claude/commands";
	struct member *m;
	size_t n, i;
	int rc = 0;

	if (!cJSON_IsObject(set))
		return err_set(e, "%s must be an object of name -> {frontmatter, content}", what);
	if (js_members(set, &m, &n) != 0)
		return err_set(e, "out of memory");
	for (i = 0; rc == 0 && i < n; i++) {
		const cJSON *entry = m[i].item, *fm, *content;
		const char *name = entry->string ? entry->string : "", *why;
		struct buf text = BUF_INIT, rel = BUF_INIT;

		if (!cc_name_valid(name, &why)) {
			rc = err_set(e, "%s: invalid name '%.*s': %s", what, CC_NAME_MAX, name, why);
			break;
		}
		if (!cJSON_IsObject(entry)) {
			rc = err_set(e, "%s.%s must be an object with a content string", what, name);
			break;
		}
		fm = js_get(entry, "frontmatter");
		content = js_get(entry, "content");
		if (!cJSON_IsString(content) || !content->valuestring) {
			rc = err_set(e, "%s.%s.content must be a string", what, name);
			break;
		}
		if (fm && cJSON_IsNull(fm))
			fm = NULL;
		if (agents && !fm) {
			rc = err_set(e, "subagents.%s.frontmatter is required (an object, e.g. {\"description\": ...})",
				     name);
			break;
		}
		if (fm && !cJSON_IsObject(fm)) {
			rc = err_set(e, "%s.%s.frontmatter must be an object", what, name);
			break;
		}
		/* Commands go through the formatter only when frontmatter has a
		 * key; agents always (the result is the same either way). */
		rc = cc_front_matter(&text, fm && fm->child ? fm : NULL, content->valuestring, e);
		if (rc == 0 && buf_printf(&rel, "%s/%s.md", dir, name) != 0)
			rc = err_set(e, "out of memory");
		if (rc == 0)
			rc = ws_write_file(root, rel.p, text.p ? text.p : "", text.len, 0644, e);
		if (rc == 0 && cc_files_add(out, rel.p) != 0)
			rc = err_set(e, "out of memory");
		if (rc == 0) {
			if (agents)
				out->agents++;
			else
				out->commands++;
		}
		buf_free(&text);
		buf_free(&rel);
	}
	free(m);
	return rc == 0 ? 0 : fail(e);
}

int cc_write(const char *root, const cJSON *mcp_config, const cJSON *slash_commands, const cJSON *subagents,
	     const cJSON *env_secrets, struct cc_files *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (mcp_config && !cJSON_IsNull(mcp_config)) {
		if (!cJSON_IsObject(mcp_config))
			return err_set(e, "mcpConfig must be an object");
		if (mcp_config->child && write_mcp(root, mcp_config, env_secrets, out, e) != 0)
			return -1;
	}
	if (slash_commands && !cJSON_IsNull(slash_commands) && write_md(root, slash_commands, 0, out, e) != 0)
		return -1;
	if (subagents && !cJSON_IsNull(subagents) && write_md(root, subagents, 1, out, e) != 0)
		return -1;
	if (cc_files_add(out, "prompt.txt") != 0 || cc_files_add(out, ".env") != 0)
		return err_set(e, "out of memory");
	return 0;
}
