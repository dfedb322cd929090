/*
 * settings.c: the table of settings, its snapshot and its checks (see
 * settings.h).
 *
 * Design: the table is the X-macro list of settings_table.h, expanded
 * once here.  The snapshot is an array of copies, one per setting, taken
 * by settings_load() before any thread exists and only read afterwards
 * (settings_reload() swaps in new copies and keeps the old ones, so a
 * pointer handed out earlier stays valid).  INT and DURATION values are
 * parsed into numbers at the same time; a malformed one reads as the
 * table default (as every reader did before this module), and is an
 * error only for the commands that read it.  This file and util/secenv.c
 * are the only readers of the process environment.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "settings/settings.h"
#include "util/secenv.h"

extern char **environ;

const struct settings_def settings_table[SET_COUNT] = {
#define SETTING(name, type, shown, def, lo, hi, cmds, meaning) \
	{ #name, SETT_##type, shown, def, lo, hi, cmds, meaning },
#include "settings/settings_table.h"
#undef SETTING
};

/* The snapshot: written by settings_load() (and settings_reload()) only. */
static struct {
	const char *str[SET_COUNT];      /* copies; NULL when unset or SECRET */
	long num[SET_COUNT];             /* INT and DURATION: the value */
	unsigned char good[SET_COUNT];   /* set and well-formed */
	int loaded;
	const char **kept;               /* earlier snapshots' copies, still reachable */
	size_t nkept;
} snap;

static const struct {
	const char *name;
	unsigned mask;
} commands[] = {
	{ "serve", SC_SERVE | SC_JOB }, /* local jobs inherit serve's environment */
	{ "job", SC_JOB },
	{ "deploy", SC_DEPLOY },
	{ "gcp", SC_GCP },
	{ "git", SC_GIT },
	{ "connect", SC_CONNECT },
};

unsigned settings_cmd_mask(const char *command)
{
	size_t i;

	for (i = 0; command && i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, command) == 0)
			return commands[i].mask;
	return 0;
}

const char *settings_environ_value(const char *name)
{
	size_t n = strlen(name);
	char **p;

	for (p = environ; p && *p; p++)
		if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

static int is_number_type(enum settings_type t)
{
	return t == SETT_INT || t == SETT_DURATION;
}

/* An integer as the readers always took it: base 10, all of it, in range. */
static int parse_int(const char *v, long lo, long hi, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi)
		return -1;
	*out = n;
	return 0;
}

/* Keep the current values (pointers handed out stay valid) before a new
 * snapshot replaces them: only selftests take more than one. */
static void retire(void)
{
	const char **k;

	if (!snap.loaded || !(k = realloc(snap.kept, (snap.nkept + SET_COUNT) * sizeof(*k))))
		return;
	memcpy(k + snap.nkept, snap.str, sizeof(snap.str));
	snap.kept = k;
	snap.nkept += SET_COUNT;
}

static void take(void)
{
	size_t i;

	retire();
	for (i = 0; i < SET_COUNT; i++) {
		const struct settings_def *d = &settings_table[i];
		const char *v = d->type == SETT_SECRET ? NULL : settings_environ_value(d->name);

		snap.str[i] = v ? strdup(v) : NULL;  /* out of memory: reads as unset */
		snap.num[i] = d->def;
		snap.good[i] = 0;
		if (v && *v && is_number_type(d->type))
			snap.good[i] = parse_int(v, d->lo, d->hi, &snap.num[i]) == 0;
		if (!snap.good[i])
			snap.num[i] = d->def;
	}
	snap.loaded = 1;
}

static const char *unit_of(const char *name)
{
	size_t n = strlen(name);

	if (n > 3 && strcmp(name + n - 3, "_MS") == 0)
		return "a number of milliseconds";
	if (n > 2 && strcmp(name + n - 2, "_S") == 0)
		return "a number of seconds";
	return "an integer";
}

int settings_load(unsigned mask, struct err *e)
{
	size_t i;

	take();
	for (i = 0; i < SET_COUNT; i++) {
		const struct settings_def *d = &settings_table[i];

		if (!(d->cmds & mask) || !is_number_type(d->type) || !snap.str[i] || !*snap.str[i] || snap.good[i])
			continue;
		return err_set(e, "%s=%.40s: expected %s from %ld to %ld", d->name, snap.str[i],
			       d->type == SETT_DURATION ? unit_of(d->name) : "an integer", d->lo, d->hi);
	}
	return 0;
}

void settings_reload(void)
{
	take();
}

static void ensure(void)
{
	if (!snap.loaded)
		take();
}

const char *settings_str(enum settings_id id)
{
	ensure();
	return id < SET_COUNT ? snap.str[id] : NULL;
}

long settings_int(enum settings_id id)
{
	ensure();
	return id < SET_COUNT ? snap.num[id] : 0;
}

long settings_int_or(enum settings_id id, long dflt)
{
	ensure();
	return id < SET_COUNT && snap.good[id] ? snap.num[id] : dflt;
}

const char *settings_env(const char *name)
{
	size_t i;

	for (i = 0; name && i < SET_COUNT; i++)
		if (strcmp(settings_table[i].name, name) == 0)
			return settings_str((enum settings_id)i);
	return NULL;
}

const char *settings_secret(enum settings_id id)
{
	const char *v;

	if (id >= SET_COUNT || settings_table[id].type != SETT_SECRET)
		return NULL;
	v = secenv_get(settings_table[id].name);
	return v ? v : settings_environ_value(settings_table[id].name);
}
