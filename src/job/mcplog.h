/*
 * mcplog.h: the Claude Code CLI's own logs of its MCP servers (seed-spec
 * §14.2), read to explain a server that did not connect, then removed.
 *
 * The CLI logs every MCP server it starts, per working directory, under
 *   <cache>/claude-cli-nodejs/<cwd, every byte but [A-Za-z0-9] as '-'>/
 *       mcp-logs-<server>/<timestamp>.jsonl      one {"error"|"debug": ...} per line
 * where <cache> is $XDG_CACHE_HOME or $HOME/.cache of the CLI's environment.
 * Older CLIs (the seed's) wrote <timestamp>.txt holding one JSON array, in
 * a directory whose name only had '/' replaced, under any cache entry whose
 * name starts with "claude"; all of these are searched.
 *
 * The reader picks the newest log file (the greatest name) and joins the
 * messages of its "error" entries; a log that is not JSON is quoted as is.
 * A server's stderr can hold anything (a token it printed), so callers
 * redact the text before logging it, and ml_forget() removes this working
 * directory's logs once the task is over: they must not outlive the
 * workspace they describe.
 *
 * Prefix ml_.  No allocation beyond the caller's buffers.
 */
#ifndef CCR_JOB_MCPLOG_H
#define CCR_JOB_MCPLOG_H

#include <stddef.h>

#include "util/buf.h"

/* Most bytes of explanation ml_explain() produces. */
#define ML_MAX_TEXT 1500

/* ml_cache_dir: the CLI's cache directory for its environment's values
 * of XDG_CACHE_HOME and HOME (either may be NULL) into out; -1 when
 * neither is usable. */
int ml_cache_dir(const char *xdg_cache_home, const char *home, char *out, size_t size);

/*
 * ml_explain: why MCP server `server` of a CLI that ran in `cwd` did not
 * connect, from its newest log under cache, appended to out.  Returns 1
 * with the log's error messages ("; "-separated, at most ML_MAX_TEXT
 * bytes), or 0 with the reason nothing was found (no log directory, no
 * log file, no error entry, an unreadable file).  -1 only when out of
 * memory.
 */
int ml_explain(const char *cache, const char *cwd, const char *server, struct buf *out);

/* ml_forget: remove the CLI's log directories of `cwd` from cache (every
 * naming scheme above).  Returns how many were removed, or -1 when one
 * could not be (nothing is reported: the caller logs a warning). */
int ml_forget(const char *cache, const char *cwd);

/* ml_init_line: the CLI's stream-json init line lists its MCP servers.
 * For such a line (it holds "subtype":"init" and is JSON) count them
 * (*total) and the connected ones (*ok), append "name: status" pairs
 * joined by ", " to summary and the name of each server not connected
 * (names holding '\n' left out) to failed, one per line; return 1.
 * Any other line: 0, nothing appended.  -1 when memory ran out. */
int ml_init_line(const char *line, size_t n, int *ok, int *total, struct buf *summary, struct buf *failed);

#endif
