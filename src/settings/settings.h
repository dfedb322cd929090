/*
 * settings.h: ccr's environment, read once (prefix settings_).
 *
 * One table (settings_table.h) names every environment variable ccr
 * reads: its type, its default, its bounds, its meaning and the commands
 * that read it.  main() calls settings_load() for the command it runs,
 * before the command starts any thread: the values are copied into a
 * snapshot, and the INT and DURATION settings that command reads are
 * checked (a malformed one is one line on stderr naming the variable,
 * and exit 2).  Code then reads settings_str(SET_NAME) or
 * settings_int(SET_NAME), never the environment: no getenv() outside
 * this module (and tests).  `ccr serve` and `ccr job` read theirs once,
 * at start-up, into struct serve_settings (serve/serve.h) and struct
 * job_settings (job/jobset.h), and pass the values down as context: the
 * libraries they call (backend/config.h, git/git.h, webhook/webhook.h,
 * proxy/proxy.h) take them in their config structs.  Secrets are not copied: util/secenv.h takes
 * them out of the environment, and settings_secret() finds them.
 *
 * The same table prints `ccr serve --help`, `ccr job --help` and the
 * configuration table of README.md (`ccr help settings --markdown`;
 * tests/test_settings.py checks that the README matches).
 */
#ifndef CCR_SETTINGS_H
#define CCR_SETTINGS_H

#include <stdio.h>

#include "util/err.h"

enum settings_type {
	SETT_STRING,
	SETT_INT,      /* an integer in [min, max], checked at start-up */
	SETT_DURATION, /* the same, in the unit the name ends with (_MS, _S) */
	SETT_BOOL,     /* on when it is the word the meaning names (1 or true) */
	SETT_SECRET,   /* never copied, printed or logged */
	SETT_PATH,
	SETT_LIST,
	SETT_NUMBER    /* a number parsed (and checked) where it is used */
};

/* The commands that read a setting (a mask). */
#define SC_SERVE 0x01u
#define SC_JOB 0x02u
#define SC_DEPLOY 0x04u
#define SC_GCP 0x08u
#define SC_GIT 0x10u
#define SC_CONNECT 0x20u
#define SC_ANY_HTTP (SC_SERVE | SC_JOB | SC_DEPLOY | SC_GCP | SC_GIT)

enum settings_id {
#define SETTING(name, type, shown, def, lo, hi, cmds, meaning) SET_##name,
#include "settings/settings_table.h"
#undef SETTING
	SET_COUNT
};

struct settings_def {
	const char *name;
	enum settings_type type;
	const char *shown;     /* the default as documented */
	long def, lo, hi;      /* INT and DURATION */
	unsigned cmds;         /* SC_* */
	const char *meaning;
};

extern const struct settings_def settings_table[SET_COUNT];

/* settings_cmd_mask: the SC_* bit of a command name ("serve"), 0 if none. */
unsigned settings_cmd_mask(const char *command);

/* settings_load: take the snapshot and check the settings of the commands
 * in mask; -1 with e naming the first malformed variable (never a secret's
 * value).  Call once, before any thread. */
int settings_load(unsigned mask, struct err *e);

/* settings_reload: take the snapshot again, unchecked (selftests call it
 * after changing the environment; old values stay valid). */
void settings_reload(void);

/* settings_str: the value as set (maybe ""), or NULL when unset or SECRET. */
const char *settings_str(enum settings_id id);

/* settings_int: an INT or DURATION value, or its table default when unset
 * (or malformed in a command that does not check it). */
long settings_int(enum settings_id id);

/* settings_int_or: the value when set and well-formed, else dflt (for
 * defaults that depend on the mode). */
long settings_int_or(enum settings_id id, long dflt);

/* settings_env: settings_str by name, NULL for a name not in the table
 * (modules whose tables name their variables: gcp endpoints). */
const char *settings_env(const char *name);

/* settings_secret: a SECRET's value: taken by secenv, else still in the
 * environment; NULL when unset. */
const char *settings_secret(enum settings_id id);

/* settings_help: "  NAME  meaning (default ...)" for each setting that a
 * command in mask reads, wrapped to 80 columns. */
void settings_help(FILE *f, unsigned mask);

/* settings_markdown: the README's table of every setting. */
void settings_markdown(FILE *f);

/* settings_environ_value: NAME's value in the process environment right now
 * (for util/secenv.c, which must see the environment itself). */
const char *settings_environ_value(const char *name);

#endif
