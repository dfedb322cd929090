/*
 * secenv.c: see secenv.h.  A small fixed table: ccr has a handful of
 * operator secrets, each taken once at start-up and kept until exit.
 * Part of the settings code: the SECRET settings of settings_table.h are
 * found here (settings_secret), never in the settings snapshot.
 */
#include <stdlib.h>
#include <string.h>

#include "util/secenv.h"

#define SECENV_MAX 8

extern char **environ;

/* Static: the secrets taken out of the process's own environ, which is
 * itself process-wide. */
static struct {
	const char *name;
	char *value;
} taken[SECENV_MAX];
static int ntaken;

/* The first entry of environ from p on that sets NAME, or NULL. */
static char **next_entry(char **p, const char *name, size_t nl)
{
	for (; p && *p; p++)
		if (strncmp(*p, name, nl) == 0 && (*p)[nl] == '=')
			return p;
	return NULL;
}

/* Overwrite NAME's value bytes wherever environ still points at them. */
static void scrub(const char *name, size_t nl)
{
	char **p;

	for (p = environ; (p = next_entry(p, name, nl)) != NULL; p++) {
		volatile char *v = *p + nl + 1;
		while (*v)
			*v++ = 0;
	}
}

void secenv_take(const char *const *names, int n)
{
	int i;

	for (i = 0; i < n && ntaken < SECENV_MAX; i++) {
		char **at = next_entry(environ, names[i], strlen(names[i]));
		const char *v = at ? *at + strlen(names[i]) + 1 : NULL;
		char *copy;

		if (!v || secenv_get(names[i]))
			continue;
		if (!(copy = strdup(v)))
			continue;
		scrub(names[i], strlen(names[i]));
		unsetenv(names[i]);
		taken[ntaken].name = names[i];
		taken[ntaken++].value = copy;
	}
}

const char *secenv_get(const char *name)
{
	int i;

	for (i = 0; i < ntaken; i++)
		if (strcmp(taken[i].name, name) == 0)
			return taken[i].value;
	return NULL;
}
