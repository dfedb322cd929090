/*
 * claudecfg.h: the Claude Code configuration files a task asks for
 * (seed-spec §8.4 step 11, §8.6; fixes S4 and S9).
 *
 *   mcpConfig      -> <root>/.mcp.json (mode 0600), printed like
 *                     JSON.stringify(v, null, 2) with no trailing newline;
 *   slashCommands  -> <root>/.claude/commands/<name>.md
 *   subagents      -> <root>/.claude/agents/<name>.md
 *
 * As in the seed, `${NAME}` references in mcpConfig are written as they
 * are: the CLI expands them from its environment, which holds the task's
 * environmentSecrets (agentenv.h), so a secret value never lands in
 * .mcp.json, where a post-execution commit could push it.  A reference to
 * a name that environmentSecrets does not define (and the job does not
 * set, e.g. PLAYWRIGHT_MCP_EXECUTABLE_PATH) gets the seed's warning, e.g.
 * `Environment variable "GITHUB_TOKEN" referenced in
 * mcpConfig.mcpServers.github.env.GITHUB_TOKEN but not defined in
 * environmentSecrets`, in cc_files.warnings; it is not an error.
 * Command and agent names are checked (cc_name_valid), so no file lands
 * outside .claude/commands or .claude/agents, and files are written with
 * ws_write_file(), which never follows a link a cloned repository planted.
 *
 * The list of created relative paths is the commit-exclusion list of
 * seed-spec §11.3; it always ends with "prompt.txt" and ".env" (the seed
 * left .env out, S4).  Every function returns 0, or -1 with `e` set
 * (messages are redacted).
 */
#ifndef CCR_CLAUDECFG_H
#define CCR_CLAUDECFG_H

#include <stddef.h>

#include <cJSON.h>

#include "util/buf.h"
#include "util/err.h"

#define CC_NAME_MAX 128

struct cc_files {
	char **paths;          /* relative to the workspace root, in creation order */
	size_t n, cap;
	int mcp;               /* 1 when .mcp.json was written */
	size_t commands, agents;
	struct buf warnings;   /* '\n'-terminated lines for the job's log */
};

/* cc_write: write every file the three (possibly NULL) objects ask for
 * into root, and fill out (zeroed first; free with cc_files_free, also
 * after a failure).  Empty objects write nothing.  A wrong shape (an entry
 * that is not an object, content that is not a string, a subagent without
 * frontmatter) is an error naming the entry. */
int cc_write(const char *root, const cJSON *mcp_config, const cJSON *slash_commands, const cJSON *subagents,
	     const cJSON *env_secrets, struct cc_files *out, struct err *e);

/* cc_files_add: append a copy of path.  cc_files_has: 1 when path is listed. */
int cc_files_add(struct cc_files *f, const char *path);
int cc_files_has(const struct cc_files *f, const char *path);
void cc_files_free(struct cc_files *f);

/* cc_check_refs: the warning line (see above) for each ${NAME} in the
 * string values of v (not in keys) that the string members of secrets
 * (NULL: none) do not define, appended to warnings.  `path` names v
 * ("mcpConfig").  -1 only when memory runs out. */
int cc_check_refs(const cJSON *v, const cJSON *secrets, const char *path, struct buf *warnings);

/* cc_name_valid: 1 when name is usable as <name>.md: 1..CC_NAME_MAX bytes,
 * no '/', '\\' or control characters, not "." or "..", no leading '-'.
 * When not, *why (if given) says why. */
int cc_name_valid(const char *name, const char **why);

/* cc_front_matter: the seed's front-matter formatter: drop members of fm
 * whose value is null; if none remain (or fm is NULL) the result is just
 * content, else "---\n<YAML>\n---\n<content>" (YAML: util/yaml.h); a
 * "\n" is appended unless the result already ends with one.  Appends to
 * out. */
int cc_front_matter(struct buf *out, const cJSON *fm, const char *content, struct err *e);

#endif
