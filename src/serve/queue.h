/*
 * queue.h: local mode's durable queue.
 *
 * A task submitted while every local execution slot is busy is stored as
 * queued (active/<id> with "queued": true, next to its sealed payload and
 * pending metadata), never held only in memory: it survives a restart of
 * serve, even a kill -9, and any instance sharing the data directory can
 * start it.  queue_dispatch starts queued tasks in FIFO order (by their
 * submission time) while the executor has room; the local executor's
 * create-only claim file makes sure one task is started once, whichever
 * instance gets there first.  A queued task that is cancelled never runs:
 * it is finalised as cancelled at once (tasks_cancel).
 */
#ifndef CCR_QUEUE_H
#define CCR_QUEUE_H

#include "backend/config.h"

/* queue_finalise_fn: end a task that can never start (its payload is
 * gone, say), as reconcile_finalise does (serve/reconcile.h, which calls
 * queue_dispatch: the dependency points from the reconciler to the queue). */
typedef int (*queue_finalise_fn)(void *arg, const char *task_id, const char *reason, const char *msg,
				 struct err *e);

/* queue_dispatch: start queued tasks while there is room; fin(arg, ...)
 * finalises a task that can never start. */
void queue_dispatch(struct backends *be, queue_finalise_fn fin, void *arg);

#endif
