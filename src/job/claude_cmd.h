/*
 * claude_cmd.h: the Claude Code CLI's command line (seed-spec §8.9) and
 * environment (§8.8, built by agentenv.h: environmentSecrets cannot
 * replace ANTHROPIC_BASE_URL or a credential variable, the only
 * credential the CLI sees is the proxy's per-task dummy, and nothing of
 * ccr's own environment is passed on) for one task.
 */
#ifndef CCR_CLAUDE_CMD_H
#define CCR_CLAUDE_CMD_H

#include "job/agentenv.h"
#include "task/payload.h"

struct claude_cmd {
	const char *path;        /* $CLAUDE_BIN or "claude" */
	char **argv;
	char **envp;
};

/* A systemPrompt or appendSystemPrompt longer than this many bytes goes to
 * the CLI as a file (--system-prompt-file, --append-system-prompt-file):
 * Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN) with
 * E2BIG, and all arguments share ARG_MAX with the environment. */
#define CLAUDE_ARG_INLINE_MAX 16384

/* claude_cmd_build: env: what ae_claude_env() builds the environment
 * from; mcp_config: absolute path of .mcp.json or NULL; file_dir: a
 * private directory (the workspace, outside the cloned repository) where
 * long system prompts are written as .ccr-system-prompt.txt and
 * .ccr-append-system-prompt.txt (0600). */
int claude_cmd_build(struct claude_cmd *c, const struct payload *p, const struct ae_ctx *env,
		     const char *mcp_config, const char *file_dir, struct err *e);

void claude_cmd_free(struct claude_cmd *c);

#endif
