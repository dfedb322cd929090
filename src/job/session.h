/*
 * session.h: a conversation that continues in a later task (prefix sess_).
 *
 * The Claude Code CLI keeps each conversation as a JSONL transcript,
 * CLAUDE_CONFIG_DIR/projects/<project>/<session id>.jsonl, where <project>
 * is the CLI's working directory with every character other than an ASCII
 * letter or digit replaced by '-' ("/tmp/ws/x" -> "-tmp-ws-x"; checked
 * against the pinned CLI).  The config directory is wiped with the
 * workspace, so without this module no conversation outlives its task.
 *
 * sess_save (after the CLI ran): the transcript of the session the CLI
 * reported (its init or result line's session_id) is sealed with the
 * payload envelope (it holds the whole conversation and every tool's
 * output) and stored as sessions/<task>/transcript.enc, next to the task's
 * log, so it expires with the task's other objects; the metadata records
 * sessionId.  sess_restore (a setup step, when the request has
 * resumeTaskId): the earlier task's transcript is opened and written into
 * this task's fresh config directory under the project of this task's
 * working directory, and the CLI is run with --resume <session id>.
 * Whether the caller may resume that task (the same credential) is
 * decided by serve before the task is stored (serve/tasks.c).
 */
#ifndef CCR_JOB_SESSION_H
#define CCR_JOB_SESSION_H

#include <stddef.h>

#include "util/err.h"

struct report;
struct sealer;
struct storage;

/* What both directions need: where transcripts are stored and how they are
 * sealed, and this task's CLI directories. */
struct sess_ctx {
	struct storage *st;
	struct sealer *sealer;      /* the payload envelope */
	const char *task_id;        /* this task */
	const char *cwd;            /* the CLI's working directory */
	const char *confdir;        /* the CLI's CLAUDE_CONFIG_DIR, "" before it exists */
};

#define SESS_ID_MAX 64

/* sess_project_dir: the CLI's project directory name for cwd. */
void sess_project_dir(const char *cwd, char *out, size_t size);

/* sess_id_valid: 1..SESS_ID_MAX of [A-Za-z0-9_-] (a UUID, in practice). */
int sess_id_valid(const char *id);

/* sess_restore: when from (resumeTaskId) is set, restore that task's
 * transcript into c->confdir and set sid to its session id; 0 when from is
 * NULL. */
int sess_restore(const struct sess_ctx *c, const char *from, char sid[SESS_ID_MAX + 1], struct err *e);

/* sess_save: store the transcript of the session the CLI ran (rep's
 * result), sealed, and record it in rep; failures are logged (the task's
 * outcome does not change). */
void sess_save(const struct sess_ctx *c, struct report *rep);

#endif
