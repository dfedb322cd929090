/*
 * settings_test.c: the table is consistent (unique names, defaults
 * inside their bounds, every field filled), a malformed number is an
 * error naming it only for the commands that read it, and a secret is
 * never in the snapshot.
 */
#include <stdlib.h>
#include <string.h>

#include "selftest/selftest.h"
#include "settings/settings.h"
#include "util/secenv.h"

static int t_table(char *why, size_t n)
{
	size_t i, j;

	for (i = 0; i < SET_COUNT; i++) {
		const struct settings_def *d = &settings_table[i];
		int num = d->type == SETT_INT || d->type == SETT_DURATION;

		if (!d->name[0] || !d->meaning[0] || !d->shown[0])
			return st_fail(why, n, "%s: a field is empty", d->name);
		if (num && (d->lo > d->hi || ((d->def < d->lo || d->def > d->hi) && d->def != 0)))
			return st_fail(why, n, "%s: default %ld outside %ld..%ld", d->name, d->def, d->lo, d->hi);
		if (strchr(d->meaning, '|') || strchr(d->shown, '|'))
			return st_fail(why, n, "%s: '|' would break the README's table", d->name);
		for (j = 0; j < i; j++)
			if (strcmp(settings_table[j].name, d->name) == 0)
				return st_fail(why, n, "%s is listed twice", d->name);
	}
	return 0;
}

/* Load with NAME=value for mask; the error text, or "" when it loaded. */
static const char *load_with(const char *name, const char *value, unsigned mask, struct err *e)
{
	*e = (struct err)ERR_INIT;
	setenv(name, value, 1);
	if (settings_load(mask, e) == 0)
		e->msg[0] = 0;
	unsetenv(name);
	settings_reload();
	return e->msg;
}

static int t_checks(char *why, size_t n)
{
	struct err e;
	const char *m;

	if (getenv("CCR_KILL_GRACE_MS"))
		return 0;     /* the operator's own value: nothing to check here */
	m = load_with("CCR_KILL_GRACE_MS", "5s", SC_JOB, &e);
	if (!strstr(m, "CCR_KILL_GRACE_MS=5s") || !strstr(m, "from 1 to 600000"))
		return st_fail(why, n, "job, CCR_KILL_GRACE_MS=5s: \"%s\"", m);
	if (*load_with("CCR_KILL_GRACE_MS", "5s", SC_GIT, &e))
		return st_fail(why, n, "git does not read CCR_KILL_GRACE_MS, yet: %s", e.msg);
	setenv("CCR_KILL_GRACE_MS", "5s", 1);
	settings_reload();
	if (settings_int(SET_CCR_KILL_GRACE_MS) != 5000 || settings_int_or(SET_CCR_KILL_GRACE_MS, 7) != 7)
		return st_fail(why, n, "a malformed value does not read as the default");
	setenv("CCR_KILL_GRACE_MS", "250", 1);
	settings_reload();
	unsetenv("CCR_KILL_GRACE_MS");
	if (settings_int(SET_CCR_KILL_GRACE_MS) != 250 || strcmp(settings_env("CCR_KILL_GRACE_MS"), "250") != 0)
		return st_fail(why, n, "CCR_KILL_GRACE_MS=250 reads as %ld", settings_int(SET_CCR_KILL_GRACE_MS));
	settings_reload();
	return settings_env("NOT_A_SETTING") ? st_fail(why, n, "a name outside the table has a value") : 0;
}

static int t_secret(char *why, size_t n)
{
	if (getenv("CCR_TESTS_TOKEN"))
		return 0;
	setenv("CCR_TESTS_TOKEN", "canary-secret-9f", 1);
	settings_reload();
	if (settings_str(SET_CCR_TESTS_TOKEN) || settings_env("CCR_TESTS_TOKEN")) {
		unsetenv("CCR_TESTS_TOKEN");
		return st_fail(why, n, "a secret was copied into the snapshot");
	}
	if (!settings_secret(SET_CCR_TESTS_TOKEN) || strcmp(settings_secret(SET_CCR_TESTS_TOKEN), "canary-secret-9f")) {
		unsetenv("CCR_TESTS_TOKEN");
		return st_fail(why, n, "settings_secret does not find the secret");
	}
	unsetenv("CCR_TESTS_TOKEN");
	settings_reload();
	return 0;
}

const struct st_case settings_tests[] = {
	{ "table", t_table },
	{ "checks", t_checks },
	{ "secret", t_secret },
	{ NULL, NULL },
};
