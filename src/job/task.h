/*
 * task.h: one task, from sealed payload to terminal metadata and webhook
 * (seed-spec §8, with the §16 fixes).  `ccr job` builds a task_env from
 * its environment and calls task_run; everything else is in task.c
 * (setup and the CLI run) and postexec.c (post-execution actions).
 *
 * Order, always: the payload is opened, `running` metadata is written,
 * the workspace is built, Claude runs, post-execution actions run after a
 * successful exit, every log line is stored, then the terminal metadata is
 * written (for every task, sync or async), then the webhook is sent (when
 * the payload has a callbackUrl), then the workspace and the payload are
 * removed, whatever happened before.
 */
#ifndef CCR_TASK_H
#define CCR_TASK_H

#include "backend/config.h"

struct task_env {
	const char *task_id;
	const char *payload_path;        /* ENCRYPTED_PAYLOAD_PATH */
	const char *execution_name;      /* CLOUD_RUN_EXECUTION, or NULL */
	struct backends *be;
};

/* task_run: 0 when the task ran to a terminal state that was stored
 * (completed, failed or cancelled alike); -1 when even that failed. */
int task_run(const struct task_env *env);

/* task_cancel: async-signal-safe; the task ends as "cancelled". */
void task_cancel(void);

#endif
