/*
 * exec.h: the execution seam: who runs `ccr job` for a task.  Two
 * backends: a child process of this binary in its own session and process
 * group (exec_local.c), and a Cloud Run Jobs execution (exec_cloudrun.c).
 * ccr does not schedule work itself: locally the kernel runs the children,
 * in the cloud Cloud Run Jobs does.
 *
 * An execution is named by a string the backend returns from start(): the
 * Cloud Run execution resource name, or "local/<pid>/<starttime>".  The
 * name is stored in the task's metadata, so any serve instance can cancel
 * or inspect it later.
 */
#ifndef CCR_EXEC_H
#define CCR_EXEC_H

#include "util/buf.h"
#include "util/err.h"

struct executor;

enum exec_state { EXEC_PENDING, EXEC_RUNNING, EXEC_SUCCEEDED, EXEC_FAILED, EXEC_CANCELLED, EXEC_UNKNOWN };

struct exec_status {
	enum exec_state state;
	int exit_code;                     /* when known, else -1 */
};

struct exec_ops {
	const char *name;                  /* "local" or "cloudrun" */
	/* Start `ccr job` with TASK_ID and ENCRYPTED_PAYLOAD_PATH (plus the
	 * NULL-terminated "NAME=value" list extra_env); append the execution
	 * name to name_out.  Returns 0 when started, 1 when the task waits in
	 * the backend's queue (it starts by itself later), -1 on failure. */
	int (*start)(struct executor *x, const char *task_id, const char *payload_path,
		     const char *const *extra_env, struct buf *name_out, struct err *e);
	int (*status)(struct executor *x, const char *exec_name, struct exec_status *out, struct err *e);
	/* Ask the execution to stop (SIGTERM, then SIGKILL after a grace). */
	int (*cancel)(struct executor *x, const char *exec_name, struct err *e);
	void (*free)(struct executor *x);
	/* Optional (NULL when the backend has no such notion): */
	/* How many more executions start() would begin now, not queue. */
	int (*free_slots)(struct executor *x);
	/* Remove the backend's leftovers of executions that ended. */
	void (*tidy)(struct executor *x);
	/* Call fn(arg) each time an execution this process watches ends (from
	 * the backend's own thread), so that it can be looked at at once. */
	void (*notify)(struct executor *x, void (*fn)(void *arg), void *arg);
};

struct executor {
	const struct exec_ops *ops;
};

/* The calls code above the seam makes (exec_seam.c).  Optional
 * operations are asked with a predicate; exec_tidy() and exec_notify()
 * do nothing, and exec_free_slots() answers 0, when the backend has no
 * such notion. */
int exec_start(struct executor *x, const char *task_id, const char *payload_path, const char *const *extra_env,
	       struct buf *name_out, struct err *e);
int exec_status(struct executor *x, const char *exec_name, struct exec_status *out, struct err *e);
int exec_cancel(struct executor *x, const char *exec_name, struct err *e);
int exec_can_count_slots(const struct executor *x);
int exec_free_slots(struct executor *x);
int exec_can_tidy(const struct executor *x);
void exec_tidy(struct executor *x);
int exec_can_notify(const struct executor *x);
void exec_notify(struct executor *x, void (*fn)(void *arg), void *arg);
/* exec_free: release the backend (NULL is ignored). */
void exec_free(struct executor *x);

/* exec_local_new: run tasks as children `self_exe job`, at most
 * max_running at once: start() answers 1 ("no room") beyond that and
 * remembers nothing, since the queue lives in storage (serve/queue.h).
 * Each start is claimed with a create-only file in run_dir, so a task is
 * started once even by several instances (a second start: -1, e->http
 * 409).  Pid files and job logs live in run_dir; a job's log is removed
 * when the job succeeds (unless keep_logs), and a week later otherwise.
 * Cancel sends SIGTERM to the job's process group, then SIGKILL after
 * grace_ms. */
struct executor *exec_local_new(const char *self_exe, const char *run_dir, int max_running, int grace_ms,
				int keep_logs, struct err *e);

/* exec_cloudrun_new: run tasks as executions of the Cloud Run job `job`
 * (a short id, or projects/P/locations/L/jobs/J) in project (NULL:
 * PROJECT_ID, GCS_PROJECT_ID, the ADC project) and region (NULL: REGION,
 * else europe-west3).  Execution names are Cloud Run execution resource
 * names. */
struct executor *exec_cloudrun_new(const char *project, const char *region, const char *job, struct err *e);

#endif
