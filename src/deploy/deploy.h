/*
 * deploy.h: `ccr deploy`, the Google Cloud resources of a ccr deployment,
 * created or brought up to date idempotently.
 *
 * Every resource kind has its own file (dp_bucket.c, dp_kms.c, ...) with
 * one entry point `int dp_<kind>(struct dp_ctx *, struct err *)` that
 * follows the same three steps:
 *   1. read the resource (GET; a 404 means absent);
 *   2. compare the fields ccr owns (the desired JSON) with what was read,
 *      ignoring every field the service sets itself (dp_diff);
 *   3. print one plan line (exists / create / update: changed fields) and,
 *      unless --dry-run, create or update it.
 * So a second run with no change reads everything and writes nothing.
 * IAM bindings are only ever added (dp_iam_ensure), never removed, so
 * taking over an existing deployment keeps its other grants; each binding
 * is printed with the reason it is needed.
 *
 * Every call goes through dp_call, which counts calls and writes (the
 * summary line prints both) and uses ccr's Google Cloud client
 * (src/gcp/rest.h: credentials, retries, error messages, endpoint
 * overrides).
 *
 * Prefix dp_.
 */
#ifndef CCR_DEPLOY_H
#define CCR_DEPLOY_H

#include <stdio.h>

#include "cJSON.h"
#include "gcp/rest.h"
#include "util/buf.h"
#include "util/err.h"

#define DP_MAX_ENV 32

/* What the operator asked for (flags, or the config file). */
struct dp_config {
	const char *project, *region;
	const char *bucket;
	const char *key_ring, *key;
	const char *repo;
	const char *job, *service;
	const char *serve_sa, *job_sa;                     /* account ids */
	const char *callback_secret, *api_keys_secret;     /* secret ids */
	const char *callback_secret_file, *api_keys_file;  /* values; NULL: generated once */
	const char *job_image, *serve_image;               /* references; NULL: in the repository */
	const char *job_image_dir, *serve_image_dir;       /* OCI layouts to push first */
	const char *tag;
	const char *registry;                              /* host[:port]; NULL: REGION-docker.pkg.dev */
	const char *registry_user, *registry_password_file;
	const char *job_cpu, *job_memory, *job_timeout;
	int job_max_retries;
	const char *serve_cpu, *serve_memory, *serve_timeout;
	const char *ingress;                               /* all | internal | internal-and-cloud-load-balancing */
	int min_instances, max_instances, concurrency;
	int allow_unauthenticated;
	const char *env[DP_MAX_ENV];                       /* extra NAME=VALUE for both */
	int n_env;
	int dry_run;
	int skip_push;
};

struct dp_ctx {
	const struct dp_config *cf;
	FILE *out;
	struct gcp_endpoint ep[GREST_N_APIS];
	unsigned calls, writes, pushes;
	/* resolved along the way */
	char serve_email[256], job_email[256];
	char job_image[1024], serve_image[1024];
	int pushed_job, pushed_serve;
};

/* ---- calls (dp_api.c) ---------------------------------------------------- */

/* One call; counts it (and a write when the method is not GET). */
int dp_call(struct dp_ctx *c, enum grest_api api, const char *method, const char *path,
	const cJSON *body, enum hc_retry retry, struct grest_answer *a, struct err *e);
/* GET path: 0 with *cur the resource, or with *cur NULL on 404; -1 on any
 * other failure (message names what). */
int dp_read(struct dp_ctx *c, enum grest_api api, const char *path, const char *what, cJSON **cur,
	struct err *e);
/* A write that must answer 2xx; *answer (may be NULL) gets the JSON. */
int dp_write(struct dp_ctx *c, enum grest_api api, const char *method, const char *path,
	const cJSON *body, const char *what, cJSON **answer, struct err *e);
/* Wait for a long-running Operation (GET /<version>/<name> until done);
 * an operation error is a failure naming what.  response (may be NULL)
 * gets the done operation's response (NULL when it has none). */
int dp_wait_op(struct dp_ctx *c, enum grest_api api, const char *version, cJSON *op, const char *what,
	cJSON **response, struct err *e);

/* Append to `changed` (comma-separated) the paths where desired differs
 * from current.  Only the fields in desired count; an absent current field
 * equals a default desired value (0, false, "", empty), as proto3 JSON
 * omits those.  Arrays compare element by element and must have the same
 * length. */
int dp_diff(const cJSON *desired, const cJSON *current, const char *path, struct buf *changed);

/* The plan/result line: "<kind> <name>: <state>[ (<detail>)]". */
void dp_say(struct dp_ctx *c, const char *kind, const char *name, const char *state, const char *detail);

/* ---- IAM (dp_iam.c) ------------------------------------------------------ */

struct dp_binding {
	const char *role;
	char member[300];
	const char *why;
};

/* Add the bindings to a resource's IAM policy (read with get_method/get_path,
 * written with set_method/set_path; storage_style: the policy is the body
 * itself, else {"policy": ...}).  exists 0: the resource is not there yet
 * (dry run): every binding is planned, nothing read. */
int dp_iam_ensure(struct dp_ctx *c, enum grest_api api, const char *what, const char *get_method,
	const char *get_path, const char *set_method, const char *set_path, int storage_style,
	const struct dp_binding *want, int n, int exists, struct err *e);

/* ---- resources (one file each) ------------------------------------------- */

int dp_service_accounts(struct dp_ctx *c, struct err *e);   /* dp_iam.c */
int dp_registry(struct dp_ctx *c, struct err *e);           /* dp_registry.c */
int dp_bucket(struct dp_ctx *c, struct err *e);             /* dp_bucket.c */
int dp_kms(struct dp_ctx *c, struct err *e);                /* dp_kms.c */
int dp_secrets(struct dp_ctx *c, struct err *e);            /* dp_secrets.c */
int dp_job(struct dp_ctx *c, struct err *e);                /* dp_job.c */
int dp_service(struct dp_ctx *c, struct err *e);            /* dp_service.c */
int dp_push_images(struct dp_ctx *c, struct err *e);        /* dp_push.c */

/* The create-or-patch step of a Cloud Run job or service (kind "jobs" or
 * "services"), with its plan line; *exists afterwards (dp_job.c). */
int dp_run_apply(struct dp_ctx *c, const char *kind, const char *id, cJSON *want, int *exists,
	char *uri, size_t urilen, struct err *e);
/* The container of the job (for_service 0) or the service (dp_job.c). */
cJSON *dp_container(const struct dp_ctx *c, int for_service);

/* The env both Cloud Run resources get (dp_job.c): GCS_LOGS_BUCKET,
 * PROJECT_ID, REGION, KMS_KEY_RING, KMS_KEY_NAME, the extra --env, and the
 * callback secret as a secretKeyRef.  api_keys adds CCR_API_KEYS. */
cJSON *dp_env(const struct dp_ctx *c, int for_service);

#endif
