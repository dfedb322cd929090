/*
 * main.c: dispatch for the multicall binary.
 *
 * `ccr CMD ARGS...` runs CMD.  When the binary is reached through a link
 * named `ccr-CMD` (or just `CMD`), argv[0] picks the command and every
 * argument is passed on.  The table below is the whole list; each entry's
 * main lives in its own file.  An unknown command prints usage to stderr
 * and exits 2.
 */
#include <stdio.h>
#include <string.h>

#include "ccr.h"
#include "settings/settings.h"

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "serve", serve_main, "run the HTTP API (Cloud Run service, or local mode)" },
	{ "job", job_main, "run one task (Cloud Run Job entrypoint, or a local child)" },
	{ "selftest", selftest_main, "run the built-in tests where the binary is deployed" },
	{ "gcp", gcp_main, "operator tools for Google Cloud: token, gcs, kms, run, secret" },
	{ "git", git_main, "operator tools for the job's git operations: clone, commit, push, tests repo" },
	{ "sandbox-init", sbx_init_main, "(internal) pid 1 of the agent's sandbox: reaps until the agent exits" },
	{ "connect", connect_main, "a TCP connection through the job's egress proxy (an ssh ProxyCommand)" },
	{ "deploy", deploy_main, "create or update the Google Cloud resources of a deployment" },
	{ "version", version_main, "print ccr's version and each library's version" },
	{ "help", help_main, "print this list (`ccr help settings`: every setting)" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find(const char *name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

void usage_print(void *stream)
{
	FILE *f = stream;
	size_t i;

	fprintf(f, "ccr %s: Claude Code as a service (one static binary)\n\n", CCR_VERSION);
	fprintf(f, "usage: ccr COMMAND [ARGS...]   (or a link named ccr-COMMAND)\n\ncommands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`ccr COMMAND --help` describes one command; `ccr help settings` lists every setting.\n");
}

/* `ccr help`, or `ccr help settings [--markdown]`: the settings table. */
int help_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "settings") == 0) {
		if (argc == 3 && strcmp(argv[2], "--markdown") == 0)
			settings_markdown(stdout);
		else
			settings_help(stdout, ~0u);
		return 0;
	}
	usage_print(stdout);
	return 0;
}

/* The environment, read once for cmd (settings.h); exit 2 on a bad value. */
static int run(const struct command *cmd, int argc, char **argv)
{
	struct err e = ERR_INIT;

	if (settings_load(settings_cmd_mask(cmd->name), &e) != 0) {
		fprintf(stderr, "ccr %s: %s\n", cmd->name, e.msg);
		return 2;
	}
	return cmd->main(argc, argv);
}

/* The command named by argv[0]: "ccr-serve" or "serve" (any directory). */
static const struct command *from_argv0(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base ? base + 1 : argv0;
	if (strncmp(base, "ccr-", 4) == 0)
		base += 4;
	return find(base);
}

int main(int argc, char **argv)
{
	const struct command *cmd;

	if (argc < 1)
		return 2;
	cmd = from_argv0(argv[0]);
	if (cmd)
		return run(cmd, argc, argv);
	if (argc < 2) {
		usage_print(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return help_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0)
		return version_main(argc - 1, argv + 1);
	cmd = find(argv[1]);
	if (!cmd) {
		fprintf(stderr, "ccr: unknown command '%s'\n", argv[1]);
		usage_print(stderr);
		return 2;
	}
	return run(cmd, argc - 1, argv + 1);
}
