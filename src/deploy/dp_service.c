/*
 * dp_service.c: the Cloud Run Service that runs `ccr serve`, the HTTP API
 * (see deploy.h).
 *
 * Owned fields: ingress, the revision's service account, scaling (min
 * and max instances), request concurrency, request timeout (1 h by
 * default: /run streams a task's output for as long as it runs), and the
 * container (image, env, secret env, CPU and memory).  The create and
 * patch steps are dp_run_apply's (dp_job.c).
 *
 * Access: by default only callers with roles/run.invoker reach it (plus
 * ccr's own API keys).  --allow-unauthenticated adds allUsers as invoker,
 * for a public API guarded by CCR_API_KEYS alone; without the flag an
 * existing allUsers binding is reported but never removed.
 */
#include <stdio.h>
#include <string.h>

#include "deploy/deploy.h"
#include "gcp/common.h"

static const char *ingress_enum(const char *flag)
{
	if (strcmp(flag, "internal") == 0)
		return "INGRESS_TRAFFIC_INTERNAL_ONLY";
	if (strcmp(flag, "internal-and-cloud-load-balancing") == 0)
		return "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER";
	return "INGRESS_TRAFFIC_ALL";
}

static cJSON *desired_service(const struct dp_ctx *c)
{
	const struct dp_config *cf = c->cf;
	cJSON *s = cJSON_CreateObject(), *t, *sc, *cs, *k = dp_container(c, 1);

	if (!s || !k || !cJSON_AddStringToObject(s, "ingress", ingress_enum(cf->ingress)) ||
			!(t = cJSON_AddObjectToObject(s, "template")) ||
			!cJSON_AddStringToObject(t, "serviceAccount", c->serve_email) ||
			!(sc = cJSON_AddObjectToObject(t, "scaling")) ||
			!cJSON_AddNumberToObject(sc, "minInstanceCount", cf->min_instances) ||
			!cJSON_AddNumberToObject(sc, "maxInstanceCount", cf->max_instances) ||
			!cJSON_AddNumberToObject(t, "maxInstanceRequestConcurrency", cf->concurrency) ||
			!cJSON_AddStringToObject(t, "timeout", cf->serve_timeout) ||
			!(cs = cJSON_AddArrayToObject(t, "containers"))) {
		cJSON_Delete(s);
		cJSON_Delete(k);
		return NULL;
	}
	if (!cJSON_AddItemToArray(cs, k)) {
		cJSON_Delete(s);
		cJSON_Delete(k);
		return NULL;
	}
	return s;
}

static int public_access(struct dp_ctx *c, int exists, struct err *e)
{
	struct dp_binding b[1] = {
		{ "roles/run.invoker", "allUsers", "--allow-unauthenticated: anyone may call the API; "
			"task endpoints still need one of the CCR_API_KEYS" },
	};
	char get[500], set[500], what[300];

	snprintf(get, sizeof get, "/v2/projects/%s/locations/%s/services/%s:getIamPolicy", c->cf->project,
		c->cf->region, c->cf->service);
	snprintf(set, sizeof set, "/v2/projects/%s/locations/%s/services/%s:setIamPolicy", c->cf->project,
		c->cf->region, c->cf->service);
	snprintf(what, sizeof what, "service %s", c->cf->service);
	return dp_iam_ensure(c, GREST_RUN, what, "GET", get, "POST", set, 0, b, 1, exists, e);
}

int dp_service(struct dp_ctx *c, struct err *e)
{
	cJSON *want = desired_service(c);
	char uri[512];
	int exists = 0, rc;

	if (!want)
		return err_set(e, "out of memory");
	rc = dp_run_apply(c, "services", c->cf->service, want, &exists, uri, sizeof uri, e);
	cJSON_Delete(want);
	if (rc != 0)
		return -1;
	if (uri[0])
		fprintf(c->out, "    url: %s\n", uri);
	if (c->cf->allow_unauthenticated)
		return public_access(c, exists, e);
	fprintf(c->out, "    (no public access: callers need roles/run.invoker; --allow-unauthenticated "
		"opens it)\n");
	return 0;
}
