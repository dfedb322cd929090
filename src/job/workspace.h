/*
 * workspace.h: the task's private workspace directory (seed-spec §8.4
 * steps 7, 8 and 12; fixes B8, B9 and the cwdRelative part of S9).
 *
 * A workspace is a fresh directory `<parent>/ws-<16 lower-case hex>`, mode
 * 0700, where <parent> is CCR_WORKSPACE_ROOT (default /tmp/workspaces,
 * created 0700 when missing).  It holds the SSH key (`.ssh/deploy_key`,
 * 0600) and either the task's files directly or, after a clone, the clone
 * in `repo/`: `dir` is the workspace itself, `root` the seed's
 * "workspaceRoot" (dir, or dir/repo after ws_use_subdir()).
 *
 * Paths the request names (cwdRelative, config file names) are resolved
 * with ws_join()/ws_resolve(), which refuse absolute paths, ".." segments
 * and existing symbolic links that lead outside the root; files are
 * written with ws_write_file(), which never writes through a symbolic link
 * (a cloned repository may hold `.mcp.json -> /somewhere`).
 *
 * ws_wipe() removes the whole workspace, key included, never following a
 * symbolic link out of it, even when the agent left read-only files or
 * directories without write or search permission behind.
 *
 * Every function returns 0 on success and -1 with `e` set; messages name
 * the path and the reason, with secrets redacted.
 */
#ifndef CCR_WORKSPACE_H
#define CCR_WORKSPACE_H

#include <limits.h>
#include <stddef.h>

#include "task/record.h"
#include "util/buf.h"
#include "util/err.h"

#define WS_DEFAULT_PARENT TR_WORKSPACE_ROOT_DEFAULT

struct ws {
	char dir[PATH_MAX];        /* absolute, symlink-free: <parent>/ws-<hex> */
	char root[PATH_MAX];       /* workspaceRoot: dir, or dir/<sub> */
	char key_path[PATH_MAX];   /* <dir>/.ssh/deploy_key, or "" when none */
};

/* ws_create_for: a new workspace under parent (the job's
 * CCR_WORKSPACE_ROOT; NULL or "": WS_DEFAULT_PARENT), named
 * ws-<task_id>-<hex> (task ids are [A-Za-z0-9_-]), so tr_remove_workspaces
 * (task/record.h) can find it if the job dies.  The parent is created 0700
 * when missing; an existing parent must be a directory owned by us (or
 * root) and not writable by others unless sticky.  Sets dir = root,
 * key_path = "". */
int ws_create_for(struct ws *ws, const char *parent, const char *task_id, struct err *e);

/* ws_create_in: the same under an explicit parent directory. */
int ws_create_in(struct ws *ws, const char *parent, struct err *e);

/* ws_write_ssh_key: the seed's checks and normalisation (§8.4 step 8):
 * trim; must contain "BEGIN" and "PRIVATE KEY" (else "Invalid SSH key
 * format: Missing BEGIN/PRIVATE KEY markers"); CRLF and CR become LF; a
 * trailing LF is ensured.  Written to <dir>/.ssh/deploy_key (dir 0700,
 * file 0600, created exclusively); sets key_path. */
int ws_write_ssh_key(struct ws *ws, const char *key, struct err *e);

/* ws_use_subdir: make <dir>/<sub> the workspaceRoot (after a clone into
 * it); sub is resolved like ws_join() and must be an existing directory. */
int ws_use_subdir(struct ws *ws, const char *sub, struct err *e);

/* ws_resolve flags. */
#define WS_MKDIR 1                /* create every missing directory (mkdir -p, 0755) */

/* ws_resolve: the absolute path of `rel` inside `root` into out (reset
 * first).  Refused: an absolute rel, any ".." segment, an existing symbolic
 * link (at any depth) whose target is outside root or does not exist, and a
 * non-directory in the middle of the path.  "", "." and empty segments
 * name root itself.  Symbolic links that stay inside root are resolved, so
 * the result has none left in its existing part.  With WS_MKDIR the whole
 * path is created as directories and the result is one. */
int ws_resolve(const char *root, const char *rel, int flags, struct buf *out, struct err *e);

/* ws_join: ws_resolve(ws->root, rel, 0, out, e). */
int ws_join(const struct ws *ws, const char *rel, struct buf *out, struct err *e);

/* ws_mkdir: ws_resolve(ws->root, rel, WS_MKDIR, out, e): for cwdRelative,
 * the directory Claude then runs in. */
int ws_mkdir(const struct ws *ws, const char *rel, struct buf *out, struct err *e);

/* ws_write_file: write n bytes to `rel` inside root with the given mode
 * (applied even when the file existed), creating its parent directories.
 * An existing symbolic link in its place is replaced, never followed; an
 * existing directory is an error.  The file name itself must not be "",
 * "." or "..". */
int ws_write_file(const char *root, const char *rel, const void *data, size_t n, unsigned mode,
		  struct err *e);

/* ws_wipe: remove ws->dir and everything in it; clears the struct's
 * paths.  Safe to call on a zeroed struct (does nothing). */
int ws_wipe(struct ws *ws, struct err *e);

/* ws_remove_tree: util/rmtree.h's rmtree, with the message redacted. */
int ws_remove_tree(const char *path, struct err *e);

/* The selftest table, jobfiles_tests (jobfiles_test.c), is declared
 * in selftest/suites.h. */

#endif
