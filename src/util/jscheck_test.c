/*
 * jscheck_test.c: jsc_json_check() against what JSON.parse accepts and
 * refuses, and jsc_number() against JavaScript's Number(string).
 *
 * Design: two tables.  The expectations come from the ECMAScript grammar
 * (JSON.parse: RFC 8259 text; Number(): StringNumericLiteral), not from
 * this code; each refused JSON text also names the byte offset the error
 * must point at, so a check that fails for the wrong reason fails here.
 */
#include <stdio.h>
#include <string.h>

#include "selftest/suites.h"
#include "util/jscheck.h"

static const struct {
	const char *in;
	size_t len;       /* 0: strlen(in) */
	long at;          /* -1: accepted; else the byte offset of the error */
} json_cases[] = {
	{ "{}", 0, -1 },
	{ " \t\r\n{\"a\":[1,-0.5e+3,true,false,null,\"x\\u00e9\\n\"]} \n", 0, -1 },
	{ "[]", 0, -1 },
	{ "\"s\"", 0, -1 },
	{ "1e308", 0, -1 },
	{ "1e-999", 0, -1 },                 /* underflows to 0, as in JavaScript */
	{ "{\"a\":1}x", 0, 7 },              /* trailing data */
	{ "{\"a\":1}{}", 0, 7 },
	{ "{\"a\":\"x\0y\"}", 11, 7 },       /* raw NUL inside a string */
	{ "{\"a\":\"x\ny\"}", 0, 7 },        /* raw LF inside a string */
	{ "{\"a\":1e999}", 0, 5 },           /* Infinity */
	{ "{\"a\":-1e400}", 0, 5 },
	{ "\x01{}", 0, 0 },                  /* cJSON's whitespace, not JSON's */
	{ "{\"a\":01}", 0, 6 },
	{ "{\"a\":+1}", 0, 5 },
	{ "{\"a\":1.}", 0, 7 },
	{ "{\"a\":.5}", 0, 5 },
	{ "{\"a\":1e}", 0, 7 },
	{ "{\"a\":\"\\x\"}", 0, 7 },
	{ "{\"a\":\"\\u12\"}", 0, 7 },
	{ "{\"a\":1,}", 0, 7 },
	{ "[1,]", 0, 3 },
	{ "{a:1}", 0, 1 },
	{ "{\"a\" 1}", 0, 5 },
	{ "{\"a\":tru}", 0, 5 },
	{ "[1 2]", 0, 3 },
	{ "{\"a\":\"x", 0, 7 },
	{ "[", 0, 1 },
	{ "", 0, 0 },
	{ "  ", 0, 2 },
};

static int t_json(char *why, size_t whylen)
{
	size_t i;
	char deep[2 * (JSC_MAX_DEPTH + 1) + 1];

	for (i = 0; i < sizeof(json_cases) / sizeof(json_cases[0]); i++) {
		struct err e = ERR_INIT;
		size_t n = json_cases[i].len ? json_cases[i].len : strlen(json_cases[i].in);
		int rc = jsc_json_check(json_cases[i].in, n, &e);
		char at[40];

		snprintf(at, sizeof(at), "at byte %ld", json_cases[i].at);
		if (json_cases[i].at < 0 ? rc != 0 : rc == 0 || !strstr(e.msg, at) ||
		    strstr(e.msg, at)[strlen(at)] != 0)
			return st_fail(why, whylen, "case %zu: rc %d, \"%s\" (want %s)", i, rc, e.msg,
				       json_cases[i].at < 0 ? "accepted" : at);
	}
	/* JSC_MAX_DEPTH levels pass, one more does not. */
	memset(deep, '[', JSC_MAX_DEPTH);
	memset(deep + JSC_MAX_DEPTH, ']', JSC_MAX_DEPTH);
	{
		struct err e = ERR_INIT;
		if (jsc_json_check(deep, 2 * JSC_MAX_DEPTH, &e) != 0)
			return st_fail(why, whylen, "%d levels refused: %s", JSC_MAX_DEPTH, e.msg);
	}
	memset(deep, '[', JSC_MAX_DEPTH + 1);
	memset(deep + JSC_MAX_DEPTH + 1, ']', JSC_MAX_DEPTH + 1);
	{
		struct err e = ERR_INIT;
		if (jsc_json_check(deep, 2 * (JSC_MAX_DEPTH + 1), &e) == 0 || !strstr(e.msg, "nesting"))
			return st_fail(why, whylen, "%d levels not refused for depth: %s", JSC_MAX_DEPTH + 1, e.msg);
	}
	snprintf(why, whylen, "%zu texts", sizeof(json_cases) / sizeof(json_cases[0]) + 2);
	return 0;
}

static const struct {
	const char *in;
	int ok;
	double want;
} number_cases[] = {
	{ "10", 1, 10 },
	{ " 10 ", 1, 10 },
	{ "\t\n\v\f\r1.5\r\n", 1, 1.5 },
	{ "\xc2\xa0" "10\xe3\x80\x80", 1, 10 },     /* U+00A0, U+3000 */
	{ "\xef\xbb\xbf" "7\xe2\x80\xa8", 1, 7 },   /* U+FEFF, U+2028 */
	{ "1.", 1, 1 },
	{ ".5", 1, 0.5 },
	{ "+5", 1, 5 },
	{ "-5", 1, -5 },
	{ "-0", 1, 0 },
	{ "1e3", 1, 1000 },
	{ "2E-2", 1, 0.02 },
	{ "0010", 1, 10 },                          /* leading zeros are decimal in Number() */
	{ "0x1A", 1, 26 },
	{ "0X1a", 1, 26 },
	{ "0o17", 1, 15 },
	{ "0b101", 1, 5 },
	{ "", 1, 0 },
	{ "   ", 1, 0 },
	{ "abc", 0, 0 },
	{ "10px", 0, 0 },
	{ "1_000", 0, 0 },
	{ "1,5", 0, 0 },
	{ "--1", 0, 0 },
	{ "-0x10", 0, 0 },
	{ "0x", 0, 0 },
	{ "0x1g", 0, 0 },
	{ "0b2", 0, 0 },
	{ ".", 0, 0 },
	{ "e5", 0, 0 },
	{ "1e", 0, 0 },
	{ "1 2", 0, 0 },
	{ "Infinity", 0, 0 },                       /* finite numbers only */
	{ "-Infinity", 0, 0 },
	{ "1e999", 0, 0 },
	{ "NaN", 0, 0 },
	{ "0x1p3", 0, 0 },                          /* C hex floats are not JavaScript */
	{ "+0x1p3", 0, 0 },
	{ "inf", 0, 0 },
};

static int t_number(char *why, size_t whylen)
{
	size_t i;

	for (i = 0; i < sizeof(number_cases) / sizeof(number_cases[0]); i++) {
		double got = -12345;
		int ok = jsc_number(number_cases[i].in, &got) == 0;

		if (ok != number_cases[i].ok || (ok && got != number_cases[i].want))
			return st_fail(why, whylen, "Number(\"%s\"): %s %g, want %s %g", number_cases[i].in,
				       ok ? "accepted" : "refused", got, number_cases[i].ok ? "accepted" : "refused",
				       number_cases[i].want);
	}
	snprintf(why, whylen, "%zu strings", sizeof(number_cases) / sizeof(number_cases[0]));
	return 0;
}

const struct st_case jscheck_tests[] = {
	{ "json_parse_grammar", t_json },       /* JSON.parse accepts / refuses, with the offset */
	{ "number_of_string", t_number },       /* Number(string) */
	{ NULL, NULL },
};
