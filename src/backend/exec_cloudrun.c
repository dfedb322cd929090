/*
 * exec_cloudrun.c: the execution seam over Cloud Run Jobs.
 *
 * start() is jobs.run of the configured job with TASK_ID,
 * ENCRYPTED_PAYLOAD_PATH and the caller's extra variables as container
 * environment overrides, and returns the *execution* resource name (not
 * the operation's).  status() maps executions.get: pending, running,
 * succeeded, failed, cancelled; the exit code is 0 for success and
 * unknown (-1) otherwise, since Cloud Run reports no exit codes.
 * cancel() is executions.cancel; an execution that already finished
 * (HTTP 400 FAILED_PRECONDITION) counts as stopped.  Cloud Run sends the
 * container SIGTERM and, after its grace period, SIGKILL.
 */
#include <stdlib.h>
#include <string.h>

#include "backend/exec.h"
#include "gcp/run.h"

struct exec_cloudrun {
	struct executor base;
	struct crun *c;
	char *job;
};

static int r_start(struct executor *x, const char *task_id, const char *payload_path,
	const char *const *extra_env, struct buf *name_out, struct err *e)
{
	struct exec_cloudrun *xc = (struct exec_cloudrun *)x;

	return crun_run_job(xc->c, xc->job, task_id, payload_path, extra_env, name_out, e);
}

static int r_status(struct executor *x, const char *exec_name, struct exec_status *out, struct err *e)
{
	struct exec_cloudrun *xc = (struct exec_cloudrun *)x;
	struct crun_status st;

	if (crun_get_execution(xc->c, exec_name, &st, e) != 0)
		return -1;
	out->exit_code = -1;
	switch (st.state) {
	case CRUN_PENDING: out->state = EXEC_PENDING; break;
	case CRUN_RUNNING: out->state = EXEC_RUNNING; break;
	case CRUN_SUCCEEDED: out->state = EXEC_SUCCEEDED; out->exit_code = 0; break;
	case CRUN_FAILED: out->state = EXEC_FAILED; break;
	case CRUN_CANCELLED: out->state = EXEC_CANCELLED; break;
	default: out->state = EXEC_UNKNOWN; break;
	}
	return 0;
}

static int r_cancel(struct executor *x, const char *exec_name, struct err *e)
{
	struct exec_cloudrun *xc = (struct exec_cloudrun *)x;
	struct err e2 = ERR_INIT;

	if (crun_cancel_execution(xc->c, exec_name, &e2) == 0 ||
			(e2.http == 400 && strstr(e2.msg, "FAILED_PRECONDITION")))
		return 0;
	*e = e2;
	return -1;
}

static void r_free(struct executor *x)
{
	struct exec_cloudrun *xc = (struct exec_cloudrun *)x;

	if (!xc)
		return;
	crun_free(xc->c);
	free(xc->job);
	free(xc);
}

static const struct exec_ops cloudrun_ops = {
	.name = "cloudrun",
	.start = r_start,
	.status = r_status,
	.cancel = r_cancel,
	.free = r_free,
};

struct executor *exec_cloudrun_new(const char *project, const char *region, const char *job, struct err *e)
{
	struct exec_cloudrun *xc;

	if (!job || !*job) {
		err_set(e, "Cloud Run executor: no job name (CLOUDRUN_JOB_NAME)");
		return NULL;
	}
	xc = calloc(1, sizeof *xc);
	if (!xc || !(xc->job = strdup(job))) {
		free(xc);
		err_set(e, "Cloud Run executor: out of memory");
		return NULL;
	}
	xc->c = crun_new(project, region, e);
	if (!xc->c) {
		free(xc->job);
		free(xc);
		return NULL;
	}
	xc->base.ops = &cloudrun_ops;
	return &xc->base;
}
