/*
 * sandbox_test.c: unit tests of the sandbox's settings: the values
 * CCR_SANDBOX accepts.  Whether a box can be built here is a deployment
 * check (sandbox_selftest.c).
 */
#include "sandbox/sandbox.h"
#include "selftest/suites.h"

static int t_modes(char *why, size_t n)
{
	static const struct { const char *s; int ok; enum sbx_mode m; } cases[] = {
		{ NULL, 1, SBX_MODE_AUTO },	     { "", 1, SBX_MODE_AUTO },		{ "auto", 1, SBX_MODE_AUTO },
		{ "required", 1, SBX_MODE_REQUIRED }, { "landlock", 1, SBX_MODE_LANDLOCK }, { "off", 1, SBX_MODE_OFF },
		{ "OFF", 0, SBX_MODE_AUTO },	     { "none", 0, SBX_MODE_AUTO },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sbx_mode m = SBX_MODE_AUTO;
		struct err e = ERR_INIT;
		int ok = sbx_mode_parse(cases[i].s, &m, &e) == 0;
		if (ok != cases[i].ok || (ok && m != cases[i].m))
			return st_fail(why, n, "CCR_SANDBOX=\"%s\" parsed wrongly", cases[i].s ? cases[i].s : "(unset)");
	}
	return 0;
}

const struct st_case sandbox_tests[] = {
	{ "modes", t_modes },
	{ NULL, NULL },
};
