/*
 * run.h: Cloud Run Admin API v2: start a job execution, read its state,
 * cancel it (gcp-api.md §6, seed-spec §7).
 *
 * Endpoint: https://run.googleapis.com, or CCR_RUN_ENDPOINT (which may be
 * http://, for a fake).  Job names are short ids resolved under
 * projects/<project>/locations/<region>; executions are full resource
 * names projects/P/locations/L/jobs/J/executions/E.
 *
 * jobs.run answers a long-running Operation; the execution's name is
 * the Operation's metadata.name (the seed stored the Operation's own name,
 * its bug B4).  For names stored by the seed, crun_get_execution and
 * crun_cancel_execution also accept an operation name
 * (projects/P/locations/L/operations/ID) and look the execution up
 * through operations.get.
 *
 * Retries: executions.get, operations.get and executions.cancel are
 * retried on transient failures.  jobs.run must not start two executions:
 * it is sent again at once only when the request certainly did not reach
 * the service (connection refused, HTTP 429); after an ambiguous failure
 * (5xx, 408, an answer lost after sending) the job's newest executions are
 * listed first, and one whose template.containers[].env holds this
 * TASK_ID is taken as the answer instead of running the job again.
 *
 * Errors of jobs.run keep the seed's texts (seed-spec §7.1):
 *   404: Cloud Run Job "<job>" not found in <region>. Deploy it first with scripts/deploy-job.sh
 *   403: Permission denied to run job "<job>". Grant service account roles/run.developer permission.
 *   other: Job trigger failed (HTTP <status>): <response body>
 * with e->http set to the status.
 *
 * Prefix crun_.
 */
#ifndef CCR_GCP_RUN_H
#define CCR_GCP_RUN_H

#include "cJSON.h"
#include "util/buf.h"
#include "util/err.h"

#define CRUN_DEFAULT_ENDPOINT "https://run.googleapis.com"
#define CRUN_DEFAULT_REGION "europe-west3"
/* After an ambiguous jobs.run failure: executions.list page size, and how
 * many pages are searched for the task's execution before giving up. */
#define CRUN_LIST_PAGE_SIZE 50
#define CRUN_LIST_MAX_PAGES 10

struct crun;

/* A client for project (NULL: PROJECT_ID, GCS_PROJECT_ID, the ADC
 * project) and region (NULL: REGION, else europe-west3). */
struct crun *crun_new(const char *project, const char *region, struct err *e);
void crun_free(struct crun *c);
const char *crun_project(const struct crun *c);
const char *crun_region(const struct crun *c);

/*
 * jobs.run for job (a short id or a full jobs/ resource name) with
 * containerOverrides[0].env = TASK_ID, ENCRYPTED_PAYLOAD_PATH (each left
 * out when NULL) and the NULL-terminated "NAME=value" list extra_env.
 * Appends the execution's resource name to exec_name.
 */
int crun_run_job(struct crun *c, const char *job, const char *task_id, const char *payload_path,
	const char *const *extra_env, struct buf *exec_name, struct err *e);

enum crun_state { CRUN_PENDING, CRUN_RUNNING, CRUN_SUCCEEDED, CRUN_FAILED, CRUN_CANCELLED, CRUN_UNKNOWN };

struct crun_status {
	enum crun_state state;
	int done;                        /* completionTime is set */
	int task_count, running, succeeded, failed, cancelled;
	char completion_time[40];
	char message[256];               /* the Completed condition's message, if any */
};

/* executions.get: the execution's state. */
int crun_get_execution(struct crun *c, const char *name, struct crun_status *out, struct err *e);

/* executions.cancel.  A finished execution fails with e->http = 400
 * (FAILED_PRECONDITION); a missing one with e->http = 404. */
int crun_cancel_execution(struct crun *c, const char *name, struct err *e);

const char *crun_state_name(enum crun_state s);

/* Helpers (exposed for the selftests). */
/* The execution name of a jobs.run Operation (metadata.name, else
 * response.name), appended to out. */
int crun_execution_from_operation(const char *json, size_t len, struct buf *out, struct err *e);
/* The state of an Execution resource. */
void crun_status_from_json(const cJSON *exe, struct crun_status *out);
/* The jobs.run request body. */
int crun_run_body(struct buf *out, const char *task_id, const char *payload_path,
	const char *const *extra_env);

#endif
