/*
 * agentenv.h: the environment of everything that runs for the agent: the
 * Claude Code CLI (seed-spec §8.8) and the task's preExecutionCommands
 * (§8.7).  One function, ae_base(), builds what both get.
 *
 * The base, in this order, each later entry replacing an earlier one of
 * the same name (the seed built a JavaScript object the same way):
 *   ANTHROPIC_BASE_URL=<the token proxy>;
 *   every environmentSecrets entry, except the names ccr owns
 *     (ae_protected(): the proxy URL, the credential variables, and the
 *     proxy variables below, in any case);
 *   with the egress proxy (egress/egress.h): HTTP_PROXY, HTTPS_PROXY,
 *     ALL_PROXY and their lower-case forms = http://127.0.0.1:<port>, and
 *     NO_PROXY/no_proxy=127.0.0.1,localhost,::1 (the token proxy is
 *     reached directly).  ALL_PROXY too, because in the sandbox nothing
 *     else leads out: a tool that knows only ALL_PROXY still finds it;
 *   the proxy's per-task dummy credential (ANTHROPIC_API_KEY or
 *     CLAUDE_CODE_OAUTH_TOKEN);
 *   GIT_SSH_COMMAND (ccr's SSH host-key policy, see git.h), unless
 *     environmentSecrets sets it and the task has no sshKey; with the
 *     egress proxy it ends in -o 'ProxyCommand=<ccr> connect %h %p', so
 *     the agent's ssh leaves through the proxy too (tools/connect_cmd.c);
 *   CLAUDE_CONFIG_DIR, unless environmentSecrets sets it;
 *   PLAYWRIGHT_MCP_EXECUTABLE_PATH and PLAYWRIGHT_MCP_SANDBOX=false when a
 *     Chromium build is found under $PLAYWRIGHT_BROWSERS_PATH (default
 *     /opt/ms-playwright), as the seed did;
 *   HOME ($HOME, else /root), PATH ($PATH, else /usr/local/bin:/usr/bin:
 *     /bin), CLAUDE_CODE_ACTION=1, CLAUDE_CODE_ENTRYPOINT=cli,
 *     DISABLE_AUTOUPDATER=1, and IS_SANDBOX=1 when running as root with
 *     DANGEROUSLY_SKIP_PERMISSIONS=true (the CLI refuses that flag as root
 *     outside a sandbox).
 *
 * The CLI gets exactly the base (ccr's own environment is not inherited).
 *
 * A pre-execution command gets, as in the seed, the job's own environment
 * overlaid with the base, then CI=true, HOME and NODE_ENV="" -- minus what
 * must never reach the agent: ae_inherited() keeps every variable of the
 * job's environment except npm_*, NODE_PATH and PWD (the seed's list),
 * ccr's configuration (CCR_*, which holds CCR_API_KEYS), Google
 * credentials and configuration (GOOGLE_*, CLOUDSDK_*), Anthropic
 * credentials (ANTHROPIC_*, CLAUDE_CODE_OAUTH_TOKEN), the webhook secret
 * CLOUDRUN_CALLBACK_SECRET, GIT_SSH (it would override GIT_SSH_COMMAND),
 * and any name holding SECRET, TOKEN, PASSWORD, PASSWD, CREDENTIAL,
 * API_KEY, APIKEY, PRIVATE_KEY or ACCESS_KEY (any case).  So a command
 * sees e.g. PLAYWRIGHT_BROWSERS_PATH, LANG, TASK_ID and GIT_SSH_COMMAND.
 *
 * Every environment is a NULL-terminated "NAME=value" array; free it with
 * ae_free(), which wipes it.  Functions return 0, or -1 with `e` set.
 */
#ifndef CCR_AGENTENV_H
#define CCR_AGENTENV_H

#include <stddef.h>

#include <cJSON.h>

#include "job/jobset.h"
#include "util/err.h"

/* NO_PROXY for the agent: loopback is reached directly (the token proxy). */
#define AE_NO_PROXY "127.0.0.1,localhost,::1"

struct ae_ctx {
	const cJSON *secrets;         /* environmentSecrets (object of strings), or NULL */
	const char *base_url;         /* ANTHROPIC_BASE_URL: the token proxy */
	const char *cred_name;        /* "ANTHROPIC_API_KEY" or "CLAUDE_CODE_OAUTH_TOKEN", or NULL */
	const char *cred_value;       /* the proxy's dummy */
	const char *git_ssh;          /* GIT_SSH_COMMAND, or NULL */
	int git_ssh_forced;           /* 1: replaces environmentSecrets' GIT_SSH_COMMAND (an sshKey is used) */
	const char *config_dir;       /* CLAUDE_CONFIG_DIR, or NULL */
	const char *home;             /* HOME inside the sandbox, or NULL: set->home */
	const char *tmpdir;           /* TMPDIR inside the sandbox, or NULL: inherited */
	const char *egress_url;       /* the egress proxy, http://127.0.0.1:PORT, or NULL */
	const char *connect_exe;      /* the ccr executable for `ccr connect` (ProxyCommand), or NULL */
	const struct job_settings *set;  /* the job's HOME, PATH, PLAYWRIGHT_BROWSERS_PATH, CLAUDE_BIN */
};

/* ae_claude_env: the CLI's environment (the base). */
int ae_claude_env(const struct ae_ctx *c, char ***envp, struct err *e);

/* ae_precmd_env: a pre-execution command's environment (see above). */
int ae_precmd_env(const struct ae_ctx *c, char ***envp, struct err *e);

void ae_free(char **envp);

/* ae_get: the value of name in envp, or NULL. */
const char *ae_get(char *const *envp, const char *name);

/* ae_protected: 1 for the names environmentSecrets may not set. */
int ae_protected(const char *name);

/* ae_inherited: 1 when the job's variable `name` (len bytes) may reach a
 * pre-execution command. */
int ae_inherited(const char *name, size_t len);


#endif
