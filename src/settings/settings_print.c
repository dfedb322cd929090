/*
 * settings_print.c: the table as text (see settings.h): the settings
 * part of `--help`, and README.md's configuration table in markdown.
 * Only the table's own text is printed, never a value, so a secret
 * cannot appear here.
 */
#include <string.h>

#include "settings/settings.h"

#define HELP_COL 30
#define HELP_WIDTH 80

static const char *type_name(enum settings_type t)
{
	static const char *const names[] = { "string", "integer", "duration", "bool", "secret", "path", "list",
					     "number" };

	return (size_t)t < sizeof(names) / sizeof(names[0]) ? names[t] : "string";
}

/* text wrapped at spaces to HELP_WIDTH, each line after the first indented. */
static void wrap(FILE *f, const char *p, int col)
{
	for (;;) {
		int room = HELP_WIDTH - col, cut;

		if ((int)strlen(p) <= room) {
			fprintf(f, "%s\n", p);
			return;
		}
		for (cut = room; cut > 0 && p[cut] != ' '; cut--)
			;
		if (cut == 0)     /* one word longer than the line */
			for (cut = room; p[cut] && p[cut] != ' '; cut++)
				;
		fprintf(f, "%.*s\n", cut, p);
		for (p += cut; *p == ' '; p++)
			;
		if (!*p)
			return;
		fprintf(f, "%*s", HELP_COL, "");
		col = HELP_COL;
	}
}

static void help_one(FILE *f, const struct settings_def *d)
{
	char text[600];
	int col;

	if (d->type == SETT_INT || d->type == SETT_DURATION)
		snprintf(text, sizeof text, "%s (default %s; %ld..%ld)", d->meaning, d->shown, d->lo, d->hi);
	else
		snprintf(text, sizeof text, "%s (default %s)", d->meaning, d->shown);
	col = fprintf(f, "  %s", d->name);
	if (col >= HELP_COL - 1)
		fprintf(f, "\n%*s", HELP_COL, "");
	else
		fprintf(f, "%*s", HELP_COL - col, "");
	wrap(f, text, HELP_COL);
}

void settings_help(FILE *f, unsigned mask)
{
	size_t i;

	for (i = 0; i < SET_COUNT; i++)
		if (settings_table[i].cmds & mask)
			help_one(f, &settings_table[i]);
}

static void readers(FILE *f, unsigned cmds)
{
	static const struct {
		unsigned bit;
		const char *name;
	} bits[] = { { SC_SERVE, "serve" }, { SC_JOB, "job" }, { SC_DEPLOY, "deploy" }, { SC_GCP, "gcp" },
		     { SC_GIT, "git" }, { SC_CONNECT, "connect" } };
	const char *sep = "";
	size_t i;

	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (cmds & bits[i].bit) {
			fprintf(f, "%s%s", sep, bits[i].name);
			sep = ", ";
		}
}

/* s with the characters markdown would take as markup escaped. */
static void md_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (strchr("<>*|", *s))
			fputc('\\', f);
		fputc(*s, f);
	}
}

void settings_markdown(FILE *f)
{
	size_t i;

	fprintf(f, "| variable | type | default | read by | meaning |\n|---|---|---|---|---|\n");
	for (i = 0; i < SET_COUNT; i++) {
		const struct settings_def *d = &settings_table[i];

		if (!d->cmds)     /* internal */
			continue;
		fprintf(f, "| `%s` | %s", d->name, type_name(d->type));
		if (d->type == SETT_INT || d->type == SETT_DURATION)
			fprintf(f, " %ld..%ld", d->lo, d->hi);
		fprintf(f, " | ");
		md_text(f, d->shown);
		fprintf(f, " | ");
		readers(f, d->cmds);
		fprintf(f, " | ");
		md_text(f, d->meaning);
		fprintf(f, " |\n");
	}
}
