/*
 * reconcile.h: a task's state never lies.  Storage says what a task is
 * doing (active/<id> plus its metadata); the executor knows whether the
 * job that should be doing it still exists.  The reconciler compares the
 * two and finalises a task whose job is gone without having written a
 * terminal state (killed, out of memory, an execution cancelled from the
 * console, a disk that filled up).
 *
 * It runs on one thread per serve instance: every interval it checks
 * every active task; an endpoint that reports or cancels a task asks for
 * that one task at once (reconcile_check).  In local mode the same thread
 * starts queued tasks (queue.h) as soon as there is room.
 *
 * Finalising happens exactly once across instances: the instance that
 * creates sessions/<id>/reconciled.json first (a create-only write, which
 * is ifGenerationMatch=0 in GCS and an exclusive create in local mode)
 * writes the terminal metadata (status failed, terminalReason "lost", or
 * "cancelled" when a cancel had been asked for or the execution was
 * cancelled), appends an error line to the log, deletes the payload and
 * the active mark, and sends the webhook.  SSE streams end on their own
 * once the metadata is terminal.
 */
#ifndef CCR_RECONCILE_H
#define CCR_RECONCILE_H

#include "backend/config.h"

struct wh_policy;

struct reconciler;

struct reconcile_cfg {
	long interval_ms;               /* full sweep period (CCR_RECONCILE_INTERVAL_S) */
	long webhook_deadline_ms;       /* how long a webhook is retried */
	const struct wh_policy *callbacks;  /* the deny-list's exemptions (webhook/webhook.h) */
	const char *callback_secret;    /* CLOUDRUN_CALLBACK_SECRET, or NULL */
	const char *workspace_root;     /* local mode: where jobs build workspaces */
};

/* reconcile_start: the reconciler thread for be.  NULL with e set on failure. */
struct reconciler *reconcile_start(struct backends *be, const struct reconcile_cfg *cfg, struct err *e);

/* reconcile_stop: stop the thread (waits for a sweep in progress), free. */
void reconcile_stop(struct reconciler *r);

/* reconcile_check: check one task now (at most once per second per task). */
void reconcile_check(struct reconciler *r, const char *task_id);

/* reconcile_finalise: end a task that no job will end, once across all
 * instances: status "cancelled" when reason is "cancelled", else
 * "failed"; msg says what was observed.  0 when this call finalised it,
 * 1 when another instance (or the job) already had, -1 on a storage
 * failure (e set). */
int reconcile_finalise(struct reconciler *r, const char *task_id, const char *reason, const char *msg,
		       struct err *e);

/* reconcile_wake: run the next sweep (and queue dispatch) now. */
void reconcile_wake(struct reconciler *r);

#endif
