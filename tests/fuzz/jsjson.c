/*
 * jsjson.c: the JavaScript-compatible JSON writer (src/util/jsjson.c).
 *
 * Properties:
 *  - printing is a fixed point: parse(print(v)) prints the same bytes,
 *    compact and indented (whenever cJSON can read the output back: it
 *    refuses the \udxxx escapes of lone surrogates, which JavaScript
 *    accepts);
 *  - the output of print(v) is valid JSON for any v cJSON parsed;
 *  - jsj_string(s) reads back as s for valid UTF-8 s without NUL;
 *  - jsj_number(d) reads back (strtod) as d for finite d (-0 as 0), and
 *    non-finite d prints null; jsj_dtoa agrees with jsj_number.
 */
#include <math.h>

#include "cJSON.h"
#include "fuzz.h"
#include "util/jsjson.h"

static int has_surrogate_escape(const struct buf *b)
{
	return b->p && (strstr(b->p, "\\ud8") || strstr(b->p, "\\ud9") || strstr(b->p, "\\uda") ||
			strstr(b->p, "\\udb") || strstr(b->p, "\\udc") || strstr(b->p, "\\udd") ||
			strstr(b->p, "\\ude") || strstr(b->p, "\\udf"));
}

static void fixed_point(const cJSON *v, unsigned indent)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	cJSON *w;

	FUZZ_CHECK(jsj_print(&a, v, indent) == 0, "jsj_print");
	w = cJSON_ParseWithLength(a.p, a.len);
	if (!w) {
		FUZZ_CHECK(has_surrogate_escape(&a), "jsj_print wrote JSON cJSON cannot read: %.300s", a.p);
		buf_free(&a);
		return;
	}
	FUZZ_CHECK(jsj_print(&b, w, indent) == 0, "jsj_print again");
	FUZZ_CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0, "not a fixed point:\n%s\n%s", a.p, b.p);
	cJSON_Delete(w);
	buf_free(&a);
	buf_free(&b);
}

static void string_round_trip(const uint8_t *data, size_t size)
{
	struct buf a = BUF_INIT;
	cJSON *w;

	FUZZ_CHECK(jsj_string(&a, (const char *)data, size) == 0, "jsj_string");
	if (!fuzz_utf8_valid(data, size) || memchr(data, 0, size)) {
		buf_free(&a);
		return;
	}
	w = cJSON_ParseWithLength(a.p, a.len);
	FUZZ_CHECK(cJSON_IsString(w), "jsj_string output is not a JSON string: %s", a.p);
	FUZZ_CHECK(strlen(w->valuestring) == size && memcmp(w->valuestring, data, size) == 0,
		   "jsj_string round trip: %s", a.p);
	cJSON_Delete(w);
	buf_free(&a);
}

static void number(const uint8_t *data, size_t size)
{
	double d;
	struct buf a = BUF_INIT;
	char t[JSJ_DTOA_MAX];
	size_t tl;

	if (size < sizeof(d))
		return;
	memcpy(&d, data, sizeof(d));
	FUZZ_CHECK(jsj_number(&a, d) == 0, "jsj_number");
	tl = jsj_dtoa(d, t);
	FUZZ_CHECK(tl == strlen(t) && tl < JSJ_DTOA_MAX, "jsj_dtoa length");
	if (!isfinite(d)) {
		FUZZ_CHECK(strcmp(a.p, "null") == 0, "non-finite prints %s", a.p);
	} else {
		double back = strtod(a.p, NULL);

		FUZZ_CHECK(back == d, "%.17g prints %s", d, a.p);
		FUZZ_CHECK(d == 0 || strcmp(a.p, t) == 0, "jsj_dtoa %s vs jsj_number %s", t, a.p);
	}
	buf_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *v = cJSON_ParseWithLength((const char *)data, size);

	if (v) {
		fixed_point(v, 0);
		fixed_point(v, 2);
		fixed_point(v, size ? data[0] % 12 : 0);
		cJSON_Delete(v);
	}
	string_round_trip(data, size);
	number(data, size);
	return 0;
}
