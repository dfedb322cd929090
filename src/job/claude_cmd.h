/*
 * claude_cmd.h: the Claude Code CLI's command line and environment for
 * one task, exactly as seed-spec §8.8 and §8.9 describe, with ccr's fixes:
 * environmentSecrets cannot replace ANTHROPIC_BASE_URL or a credential
 * variable, the only credential the CLI sees is the proxy's per-task
 * dummy, and nothing of ccr's own environment is passed on.
 */
#ifndef CCR_CLAUDE_CMD_H
#define CCR_CLAUDE_CMD_H

#include "job/payload.h"
#include "job/proxy.h"

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

/* claude_cmd_build: mcp_config: absolute path of .mcp.json or NULL;
 * git_ssh: the GIT_SSH_COMMAND value or NULL; config_dir: the CLI's
 * CLAUDE_CONFIG_DIR (its settings, session transcripts, todos) or NULL,
 * unless environmentSecrets names one; file_dir: a private directory
 * (the workspace, outside the cloned repository) where long system
 * prompts are written as .ccr-system-prompt.txt and
 * .ccr-append-system-prompt.txt (0600). */
int claude_cmd_build(struct claude_cmd *c, const struct payload *p, const struct tp_proxy *proxy,
		     const char *mcp_config, const char *git_ssh, const char *config_dir, const char *file_dir,
		     struct err *e);

void claude_cmd_free(struct claude_cmd *c);

/* claude_env_protected: 1 for names environmentSecrets may not set. */
int claude_env_protected(const char *name);

#endif
