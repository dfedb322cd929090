/*
 * rest.h: one JSON call to any Google Cloud REST API, with ccr's
 * credentials, retries and error messages (for the administrative APIs
 * `ccr deploy` uses: IAM, Artifact Registry, and the admin methods of
 * Storage, KMS, Secret Manager and Cloud Run).
 *
 * Endpoints: each API has its default https:// base and one environment
 * variable that replaces it (gcp_endpoint_get rules; an override may be
 * http:// for a fake).  The table in rest.c names them:
 *   storage           STORAGE_EMULATOR_HOST        https://storage.googleapis.com
 *   kms               CCR_KMS_ENDPOINT             https://cloudkms.googleapis.com
 *   secretmanager     CCR_SECRETMANAGER_ENDPOINT   https://secretmanager.googleapis.com
 *   run               CCR_RUN_ENDPOINT             https://run.googleapis.com
 *   iam               CCR_IAM_ENDPOINT             https://iam.googleapis.com
 *   artifactregistry  CCR_ARTIFACTREGISTRY_ENDPOINT https://artifactregistry.googleapis.com
 *
 * A call sends the body (JSON text or NULL) with the access token of
 * gauth_default(), retried as the caller says (HC_RETRY_IDEMPOTENT for
 * reads and whole-resource writes, HC_RETRY_UNSENT for creates), and
 * answers the status and the parsed JSON body.  Any status is an answer
 * (0 returned); only a call that got no answer returns -1.
 *
 * Prefix grest_.
 */
#ifndef CCR_GCP_REST_H
#define CCR_GCP_REST_H

#include "cJSON.h"
#include "gcp/common.h"
#include "http/client.h"
#include "util/err.h"

enum grest_api {
	GREST_STORAGE,
	GREST_KMS,
	GREST_SECRETMANAGER,
	GREST_RUN,
	GREST_IAM,
	GREST_ARTIFACTREGISTRY,
	GREST_N_APIS
};

struct grest_answer {
	long status;
	cJSON *json;          /* the body parsed, or NULL */
	struct hc_response rs;
};

#define GREST_ANSWER_INIT { 0, NULL, HC_RESPONSE_INIT }

/* Resolve an API's endpoint (the environment is read once per call of
 * this function).  0, or -1 naming the variable at fault. */
int grest_endpoint(enum grest_api api, struct gcp_endpoint *ep, struct err *e);
/* "IAM", "Cloud Run", ... for messages. */
const char *grest_api_name(enum grest_api api);

/* method on ep->base + path (path starts with '/'). */
int grest_call(const struct gcp_endpoint *ep, const char *method, const char *path, const char *body,
	enum hc_retry retry, struct grest_answer *out, struct err *e);
void grest_answer_free(struct grest_answer *a);

/* Fill e from a non-2xx answer: "<what>: HTTP <status> <STATUS>: <message>". -1. */
int grest_error(struct err *e, const struct grest_answer *a, const char *what);

#endif
