/*
 * cliconf.h: the Claude Code CLI's per-task configuration directory
 * (CLAUDE_CONFIG_DIR = <workspace>/.claude-config, see task.c).
 *
 * With CLAUDE_CONFIG_DIR set, the CLI no longer reads $HOME/.claude, where
 * an operator installs what every task should have (skills, slash
 * commands, subagents, settings; the seed's image ran `playwright-cli
 * install --skills` there), nor $HOME/.claude.json, where user-scope MCP
 * servers are kept.  cf_populate() makes those visible in the per-task
 * directory again, while what the CLI writes about a session (transcripts
 * under projects/, todos, shell snapshots, its own .claude.json state)
 * stays there and is wiped with the workspace:
 *
 *   $HOME/.claude/{commands,agents,skills,output-styles,plugins,rules,hooks}
 *       directories: symbolic links (shared by every task, as HOME was);
 *   $HOME/.claude/{settings.json,CLAUDE.md,keybindings.json}
 *       files: copies, 0600 (the CLI may rewrite its settings; the
 *       operator's stay as they are);
 *   $HOME/.claude.json
 *       only its "mcpServers" member, into <dir>/.claude.json.
 *
 * Nothing else of $HOME/.claude is used (not projects/, todos/,
 * statsig/, shell-snapshots/, history.jsonl, .credentials.json, ...).
 * Missing entries are skipped.  Returns 0, or -1 with `e` set (a file over
 * CF_MAX_FILE, an I/O error); an unreadable or invalid $HOME/.claude.json
 * is skipped with a message to warn() (may be NULL).
 */
#ifndef CCR_CLICONF_H
#define CCR_CLICONF_H

#include "util/err.h"

#define CF_MAX_FILE (4u << 20)

int cf_populate(const char *home, const char *dir, void (*warn)(const char *msg), struct err *e);

/* cf_linked_dir: the i-th directory name of $HOME/.claude that
 * cf_populate() links (not copies) into the per-task directory, or NULL
 * past the end: a sandbox must show those read-only. */
const char *cf_linked_dir(size_t i);

#endif
