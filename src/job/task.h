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
#include "job/jobset.h"

struct task_env {
	const char *task_id;
	const char *payload_path;        /* ENCRYPTED_PAYLOAD_PATH */
	const char *execution_name;      /* CLOUD_RUN_EXECUTION, or NULL */
	int attempt;                     /* CLOUD_RUN_TASK_ATTEMPT: 0 first, >0 a retry */
	struct backends *be;
	const struct job_settings *set;  /* the job's settings, read once (job/jobset.h) */
};

/* Exit codes of `ccr job`, from task_run. */
#define TASK_EXIT_COMPLETED 0
#define TASK_EXIT_FAILED 1
#define TASK_EXIT_CANCELLED 130

/* task_run: TASK_EXIT_COMPLETED, _FAILED or _CANCELLED for the stored
 * terminal status; TASK_EXIT_FAILED too when even that could not be
 * stored.  A retried attempt (attempt > 0) never runs the agent again:
 * a task the first attempt left unfinished ends as failed with the
 * terminal reason "job_retried"; a finished one only exits with its code. */
int task_run(const struct task_env *env);

/* task_cancel: async-signal-safe; the task ends as "cancelled". */
void task_cancel(void);

#endif
