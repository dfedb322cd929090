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

/* claude_cmd_build: mcp_config: absolute path of .mcp.json or NULL;
 * git_ssh: the GIT_SSH_COMMAND value or NULL; config_dir: the CLI's
 * CLAUDE_CONFIG_DIR (its settings, session transcripts, todos) or NULL,
 * unless environmentSecrets names one. */
int claude_cmd_build(struct claude_cmd *c, const struct payload *p, const struct tp_proxy *proxy,
		     const char *mcp_config, const char *git_ssh, const char *config_dir, struct err *e);

void claude_cmd_free(struct claude_cmd *c);

/* claude_env_protected: 1 for names environmentSecrets may not set. */
int claude_env_protected(const char *name);

#endif
