/*
 * yaml.c: the YAML writer of the subagents' front matter
 * (src/util/yaml.c yaml_dump, src/job/claudecfg.c cc_front_matter) and its neighbours
 * (cc_check_refs, cc_name_valid).
 *
 * Round trip: for a string s (the input, when it is valid UTF-8 without
 * NUL), yaml_dump({"k": s}) must be "k: " and one scalar that a YAML reader
 * reads back as exactly s.  The checking reader below handles the scalar
 * forms the writer uses: plain, single-quoted, double-quoted (YAML's
 * escapes) and literal blocks (`|`, indentation indicator, `-`/`+`
 * chomping) with YAML's rules for indentation and trailing line breaks.
 * A plain scalar must also not be something a YAML reader resolves to a
 * non-string: the reference is what both YAML 1.2's core schema and
 * js-yaml 3 read as null, a boolean or a number.
 * Otherwise the input is read as JSON and yaml_dump / cc_front_matter /
 * cc_check_refs only have to survive it.
 */
#include "cJSON.h"
#include "fuzz.h"
#include "job/claudecfg.h"
#include "util/yaml.h"

static int match_words(const char *s)
{
	static const char *const w[] = { "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False",
					 "FALSE", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf",
					 "+.INF", "-.inf", "-.Inf", "-.INF" };
	size_t i;

	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (strcmp(s, w[i]) == 0)
			return 1;
	return 0;
}

static const char *digits(const char *p)
{
	while (*p >= '0' && *p <= '9')
		p++;
	return p;
}

static const char *exponent(const char *p)
{
	const char *q;

	if (*p != 'e' && *p != 'E')
		return p;
	q = p + 1;
	if (*q == '+' || *q == '-')
		q++;
	return digits(q) > q ? digits(q) : NULL;
}

/* Read as a null, boolean or number by YAML 1.2 core and js-yaml 3 alike. */
static int non_string(const char *s)
{
	const char *p = s;

	if (match_words(s))
		return 1;
	if (p[0] == '0' && p[1] == 'x' && p[2]) {
		for (p += 2; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'); p++)
			;
		return *p == 0;
	}
	if (*p == '.') {
		const char *q = digits(p + 1);

		return q > p + 1 && (q = exponent(q)) && *q == 0;
	}
	if (*p == '-' || *p == '+')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		p = digits(p);
	else
		return 0;
	if (*p == '.')
		p = digits(p + 1);
	p = exponent(p);
	return p && *p == 0;
}

static void plain_ok(const char *t)
{
	size_t n = strlen(t);

	FUZZ_CHECK(n > 0 && !strchr("-?:,[]{}#&*!|>'\"%@` \t", t[0]), "plain scalar starts with '%c'", t[0]);
	FUZZ_CHECK(t[n - 1] != ' ' && t[n - 1] != '\t' && t[n - 1] != ':', "plain scalar ends badly: %s", t);
	FUZZ_CHECK(!strstr(t, ": ") && !strstr(t, " #") && !strchr(t, '\n') && !strchr(t, '\r'),
		   "plain scalar with an indicator: %s", t);
	FUZZ_CHECK(!non_string(t), "plain scalar \"%s\" reads as a non-string", t);
}

static int hexval(const char *p, int n, uint32_t *out)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < n; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

/* Decode one double-quoted scalar t (quotes included) into out. */
static void read_double(const char *t, struct buf *out)
{
	size_t n = strlen(t), i;

	FUZZ_CHECK(n >= 2 && t[n - 1] == '"', "double-quoted scalar not closed: %s", t);
	for (i = 1; i < n - 1; i++) {
		unsigned char u8[4];
		uint32_t cp;
		int len = 0;

		FUZZ_CHECK(t[i] != '"' && t[i] != '\n', "raw '\"' or newline inside a double-quoted scalar: %s", t);
		if (t[i] != '\\') {
			buf_addc(out, t[i]);
			continue;
		}
		i++;
		switch (t[i]) {
		case '0': cp = 0; break;
		case 'a': cp = 7; break;
		case 'b': cp = 8; break;
		case 't': cp = 9; break;
		case 'n': cp = 10; break;
		case 'v': cp = 11; break;
		case 'f': cp = 12; break;
		case 'r': cp = 13; break;
		case 'e': cp = 0x1b; break;
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case ' ': cp = ' '; break;
		case 'N': cp = 0x85; break;
		case '_': cp = 0xa0; break;
		case 'L': cp = 0x2028; break;
		case 'P': cp = 0x2029; break;
		case 'x': len = 2; break;
		case 'u': len = 4; break;
		case 'U': len = 8; break;
		default: FUZZ_CHECK(0, "unknown escape \\%c in %s", t[i], t);
		}
		if (len) {
			FUZZ_CHECK(i + (size_t)len < n && hexval(t + i + 1, len, &cp) == 0, "bad \\%c escape in %s", t[i], t);
			i += (size_t)len;
		}
		buf_add(out, u8, fuzz_put_utf8(u8, cp));
	}
}

/* Decode a literal block t ("|[2][-+]\n" and lines) into out. */
static void read_literal(const char *t, struct buf *out)
{
	const char *p = t + 1, *line;
	int indent = -1, chomp = 0;
	struct buf body = BUF_INIT;
	size_t end;

	if (*p >= '1' && *p <= '9')
		indent = *p++ - '0';
	if (*p == '-' || *p == '+')
		chomp = *p++;
	FUZZ_CHECK(*p == '\n', "literal block header: %.10s", t);
	FUZZ_CHECK(indent == -1 || indent == 2, "indentation indicator %d", indent);
	/* the writer leaves the document's final newline out: put it back */
	buf_adds(&body, p + 1);
	buf_addc(&body, '\n');
	for (line = body.p; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = (size_t)(nl - line), sp = 0;

		while (sp < len && line[sp] == ' ')
			sp++;
		if (sp == len && sp <= 2) {
			buf_addc(out, '\n');               /* an empty line */
		} else {
			FUZZ_CHECK(sp >= 2, "literal line indented %zu: %.*s", sp, (int)len, line);
			if (indent == -1) {
				/* auto-detected from the first non-empty line */
				FUZZ_CHECK(sp == 2, "first literal line indented %zu without an indicator", sp);
				indent = 2;
			}
			buf_add(out, line + 2, len - 2);
			buf_addc(out, '\n');
		}
		line = nl + 1;
	}
	/* chomping: strip all final line breaks, clip to one, or keep */
	end = out->len;
	while (end > 0 && out->p[end - 1] == '\n')
		end--;
	if (chomp == '-')
		out->len = end;
	else if (chomp == 0 && end < out->len)
		out->len = end + 1;
	if (out->p)
		out->p[out->len] = 0;
	buf_free(&body);
}

static void round_trip(const char *s)
{
	cJSON *o = cJSON_CreateObject();
	struct buf y = BUF_INIT, back = BUF_INIT;
	const char *t;

	if (!o || !cJSON_AddStringToObject(o, "k", s))
		abort();
	FUZZ_CHECK(yaml_dump(&y, o) == 0, "yaml_dump");
	FUZZ_CHECK(y.len >= 4 && memcmp(y.p, "k: ", 3) == 0, "not \"k: <scalar>\": %s", y.p);
	t = y.p + 3;
	if (strcmp(t, "''") == 0) {
		buf_adds(&back, "");
	} else if (t[0] == '\'') {
		size_t i, n = strlen(t);

		FUZZ_CHECK(n >= 2 && t[n - 1] == '\'', "single-quoted scalar not closed: %s", t);
		for (i = 1; i < n - 1; i++) {
			FUZZ_CHECK(t[i] != '\n', "newline in a single-quoted scalar");
			if (t[i] == '\'') {
				FUZZ_CHECK(t[i + 1] == '\'' && i + 1 < n - 1, "lone quote in %s", t);
				i++;
			}
			buf_addc(&back, t[i]);
		}
	} else if (t[0] == '"') {
		read_double(t, &back);
	} else if (t[0] == '|') {
		read_literal(t, &back);
	} else {
		plain_ok(t);
		buf_adds(&back, t);
	}
	FUZZ_CHECK(back.len == strlen(s) && memcmp(back.p ? back.p : "", s, back.len) == 0,
		   "YAML %s reads back as \"%s\", not \"%s\"", y.p, back.p ? back.p : "", s);
	buf_free(&y);
	buf_free(&back);
	cJSON_Delete(o);
}

static void any_json(const uint8_t *data, size_t size)
{
	cJSON *v = cJSON_ParseWithLength((const char *)data, size), *sec;
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;

	if (!v)
		return;
	FUZZ_CHECK(yaml_dump(&out, v) == 0, "yaml_dump");
	buf_reset(&out);
	if (cc_front_matter(&out, v, "body", &e) == 0)
		FUZZ_CHECK(out.len && out.p[out.len - 1] == '\n', "front matter without a final newline");
	sec = cJSON_GetObjectItemCaseSensitive(v, "secrets");
	buf_reset(&out);
	FUZZ_CHECK(cc_check_refs(v, cJSON_IsObject(sec) ? sec : NULL, "fuzz", &out) == 0, "cc_check_refs");
	FUZZ_CHECK(out.len == 0 || out.p[out.len - 1] == '\n', "a warning without its final newline");
	if (cJSON_IsObject(v)) {
		const cJSON *it;

		cJSON_ArrayForEach(it, v)
			if (it->string)
				(void)cc_name_valid(it->string, NULL);
	}
	buf_free(&out);
	cJSON_Delete(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_utf8_valid(data, size) && !memchr(data, 0, size)) {
		char *s = fuzz_str(data, size);

		round_trip(s);
		free(s);
	}
	any_json(data, size);
	return 0;
}
