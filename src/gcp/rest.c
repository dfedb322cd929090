/*
 * rest.c: JSON calls to Google Cloud REST APIs (see rest.h).
 *
 * Design: a thin layer over gauth_call, so an administrative call gets
 * exactly what the data-plane clients get: the same token cache, 401
 * refresh, retry schedule and error text (gcp_http_error).  The endpoint
 * table is the one place that names each API's override variable.
 */
#include <stdio.h>
#include <string.h>

#include "gcp/auth.h"
#include "gcp/rest.h"

static const struct {
	const char *name, *env, *dflt;
	int bare_host_means_http;
} apis[GREST_N_APIS] = {
	[GREST_STORAGE] = { "Cloud Storage", "STORAGE_EMULATOR_HOST", "https://storage.googleapis.com", 1 },
	[GREST_KMS] = { "Cloud KMS", "CCR_KMS_ENDPOINT", "https://cloudkms.googleapis.com", 0 },
	[GREST_SECRETMANAGER] = { "Secret Manager", "CCR_SECRETMANAGER_ENDPOINT",
		"https://secretmanager.googleapis.com", 0 },
	[GREST_RUN] = { "Cloud Run", "CCR_RUN_ENDPOINT", "https://run.googleapis.com", 0 },
	[GREST_IAM] = { "IAM", "CCR_IAM_ENDPOINT", "https://iam.googleapis.com", 0 },
	[GREST_ARTIFACTREGISTRY] = { "Artifact Registry", "CCR_ARTIFACTREGISTRY_ENDPOINT",
		"https://artifactregistry.googleapis.com", 0 },
};

int grest_endpoint(enum grest_api api, struct gcp_endpoint *ep, struct err *e)
{
	if ((int)api < 0 || api >= GREST_N_APIS)
		return err_set(e, "internal: unknown Google API %d", (int)api);
	return gcp_endpoint_get(ep, apis[api].env, apis[api].dflt, apis[api].bare_host_means_http, e);
}

const char *grest_api_name(enum grest_api api)
{
	return (int)api >= 0 && api < GREST_N_APIS ? apis[api].name : "Google Cloud";
}

int grest_call(const struct gcp_endpoint *ep, const char *method, const char *path, const char *body,
	enum hc_retry retry, struct grest_answer *out, struct err *e)
{
	static const char *const json_hdr[] = { "Content-Type: application/json", NULL };
	struct hc_request rq = { 0 };
	struct buf url = BUF_INIT;
	struct gauth *a;
	int rc;

	grest_answer_free(out);
	if (!(a = gauth_default(e)))
		return -1;
	if (buf_printf(&url, "%s%s", ep->base, path) != 0)
		return err_set(e, "out of memory");
	rq.method = method;
	rq.url = url.p;
	rq.retry = retry;
	rq.allow_http = ep->allow_http;
	rq.timeout_ms = 60000;
	rq.max_response = 16u << 20;
	if (body) {
		rq.body = body;
		rq.body_len = strlen(body);
		rq.headers = json_hdr;
	}
	rc = gauth_call(a, &rq, &out->rs, e);
	buf_free(&url);
	if (rc != 0)
		return -1;
	out->status = out->rs.status;
	out->json = gcp_json_parse(&out->rs.body);
	return 0;
}

void grest_answer_free(struct grest_answer *a)
{
	cJSON_Delete(a->json);
	a->json = NULL;
	a->status = 0;
	hc_response_free(&a->rs);
}

int grest_error(struct err *e, const struct grest_answer *a, const char *what)
{
	return gcp_http_error(e, &a->rs, gauth_default_describe(), "%s", what);
}
