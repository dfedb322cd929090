/*
 * record.h: the task record -- what a task is in storage, in one place
 * (seed-spec §5: the GCS layout and the metadata document).
 *
 * Keys.  Every storage key of a task is built by one function here; no
 * other code writes "sessions/%s/..." by hand:
 *
 *   sessions/<id>/metadata.json                 the metadata document
 *   sessions/<id>/<NNNNNN>-<YYYYMMDDhhmmss>.jsonl  log chunks (task/logsink.h)
 *   sessions/<id>/owner.json                    the credential's HMAC (resume)
 *   sessions/<id>/reconciled.json               what the reconciler observed
 *   sessions/<id>/transcript.enc                the CLI's session, sealed
 *   tasks/<id>/payload.enc                      the sealed request
 *   active/<id>                                 the running (or queued) mark
 *   inbox/<id>/<msgid>.enc                      messages for a running task
 *   idempotency/<hmac>                          an Idempotency-Key's record
 *   files/<id>/...                              uploadFiles' default prefix
 *   keys/serve-hmac.enc                         serve's HMAC key, sealed
 *
 * Each builder writes into a TR_KEY_MAX buffer and returns it; task ids
 * are checked by the callers (td_id_valid, serve/taskdoc.h), so every key fits.
 *
 * Status.  One enum with one terminal predicate, and the wire words
 * ("pending", ...) converted in one place.  "queued" is not stored in
 * metadata: GET /tasks/:id shows it for a pending task whose active mark
 * says it waits in the local queue.
 *
 * Chunks.  A chunk name is "<index>-<stamp>.jsonl" under the task's log
 * prefix; ccr writes six-digit indexes, the seed wrote three (which sort
 * wrongly past 999), so readers order by the parsed index.
 *
 * Workspaces.  A job works in <root>/ws-<task id>-<16 hex digits>
 * (job/workspace.h makes it); tr_remove_workspaces finds them by that name.
 *
 * Cancel.  tr_cancel_result is what cancelling a task came to; serve's
 * API turns it into the seed's HTTP answer.
 */
#ifndef CCR_TASK_RECORD_H
#define CCR_TASK_RECORD_H

#include <cJSON.h>

#include "util/err.h"

#define TR_KEY_MAX 400

#define TR_ACTIVE_PREFIX "active/"
#define TR_SERVERKEY_KEY "keys/serve-hmac.enc"
#define TR_OWNER_NAME "owner.json"
#define TR_TRANSCRIPT_NAME "transcript.enc"

const char *tr_key_metadata(char out[TR_KEY_MAX], const char *task_id);
const char *tr_key_logs(char out[TR_KEY_MAX], const char *task_id);          /* sessions/<id>/ */
const char *tr_key_chunk(char out[TR_KEY_MAX], const char *task_id, unsigned index, const char *stamp);
const char *tr_key_owner(char out[TR_KEY_MAX], const char *task_id);
const char *tr_key_reconciled(char out[TR_KEY_MAX], const char *task_id);
const char *tr_key_transcript(char out[TR_KEY_MAX], const char *task_id);
const char *tr_key_payload(char out[TR_KEY_MAX], const char *task_id);
const char *tr_key_active(char out[TR_KEY_MAX], const char *task_id);
const char *tr_key_inbox(char out[TR_KEY_MAX], const char *task_id);         /* inbox/<id>/ */
const char *tr_key_inbox_message(char out[TR_KEY_MAX], const char *task_id, const char *msg_id);
const char *tr_key_files(char out[TR_KEY_MAX], const char *task_id);         /* files/<id> */
const char *tr_key_idempotency(char out[TR_KEY_MAX], const char *mac_hex);

/* The shape of the one-id builders above, for code that takes a key kind. */
typedef const char *(*tr_key_fn)(char out[TR_KEY_MAX], const char *task_id);

/* tr_active_task: the task id of an active/<id> key, or NULL. */
const char *tr_active_task(const char *key);

enum tr_status { TR_UNKNOWN, TR_PENDING, TR_RUNNING, TR_COMPLETED, TR_FAILED, TR_CANCELLED };

/* tr_status_name: the wire word ("pending", ...); "unknown" for TR_UNKNOWN. */
const char *tr_status_name(enum tr_status s);
/* tr_status_parse: the status of a wire word; TR_UNKNOWN for any other. */
enum tr_status tr_status_parse(const char *word);
/* tr_status_terminal: 1 for completed, failed and cancelled. */
int tr_status_terminal(enum tr_status s);
/* tr_meta_status: the "status" of a metadata document (NULL: TR_UNKNOWN). */
enum tr_status tr_meta_status(const cJSON *meta);
/* tr_meta_terminal: 1 when a metadata document's status is terminal. */
int tr_meta_terminal(const cJSON *meta);

/* tr_chunk_index: the index of a log chunk key "<prefix><digits>-<stamp>.jsonl"
 * (width: its number of digits), or -1 when key is no chunk under prefix:
 * another object, a '/' after the prefix, no digits, or more than
 * TR_CHUNK_DIGITS_MAX of them. */
#define TR_CHUNK_DIGITS_MAX 18
long tr_chunk_index(const char *prefix, const char *key, int *width);

#define TR_WORKSPACE_ROOT_DEFAULT "/tmp/workspaces"

/* tr_remove_workspaces: remove every workspace of task_id under root
 * (NULL or "": TR_WORKSPACE_ROOT_DEFAULT), as left by a job that was
 * killed.  The count, or -1 with e set. */
int tr_remove_workspaces(const char *root, const char *task_id, struct err *e);

/* What POST /cancel/:id came to; serve/api.c words the HTTP answer. */
enum tr_cancel {
	TR_CANCEL_BAD_ID,        /* 400: the id is malformed */
	TR_CANCEL_NOT_RUNNING,   /* 404: no active mark, or already terminal */
	TR_CANCEL_DONE,          /* 200: the execution was asked to stop, or a queued task ended */
	TR_CANCEL_ALREADY,       /* 200: a cancel was asked for before */
	TR_CANCEL_FAILED,        /* 500: the backend refused; msg says why */
};

struct tr_cancel_result {
	enum tr_cancel outcome;
	char msg[512];           /* TR_CANCEL_FAILED: what went wrong */
};

#endif
