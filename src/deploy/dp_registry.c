/*
 * dp_registry.c: the Artifact Registry repository the images are pushed
 * to, REGION-docker.pkg.dev/PROJECT/REPO (see deploy.h).
 *
 * Owned field: the format, DOCKER (OCI images).  A repository of another
 * format with the same name is an error, not something to change.
 * repositories.create answers a long-running operation, which is waited
 * for.  Cloud Run pulls from a repository of its own project with its
 * service agent, so no IAM binding is needed here.
 */
#include <stdio.h>
#include <string.h>

#include "deploy/deploy.h"
#include "gcp/common.h"

int dp_registry(struct dp_ctx *c, struct err *e)
{
	char path[500], name[400];
	cJSON *cur = NULL, *body = NULL, *op = NULL;
	const char *fmt;
	int rc = -1;

	snprintf(name, sizeof name, "projects/%s/locations/%s/repositories/%s", c->cf->project, c->cf->region,
		c->cf->repo);
	snprintf(path, sizeof path, "/v1/%s", name);
	if (dp_read(c, GREST_ARTIFACTREGISTRY, path, "the Artifact Registry repository", &cur, e) != 0)
		return -1;
	if (cur) {
		fmt = gcp_json_str(cur, "format");
		if (fmt && strcmp(fmt, "DOCKER") != 0) {
			err_set(e, "Artifact Registry repository %s holds %.40s packages, not DOCKER images "
				"(pass --repository with another name)", name, fmt);
			goto out;
		}
		dp_say(c, "artifact repository", name, "exists", "");
		rc = 0;
		goto out;
	}
	dp_say(c, "artifact repository", name, "create", "(DOCKER)");
	if (c->cf->dry_run) {
		rc = 0;
		goto out;
	}
	snprintf(path, sizeof path, "/v1/projects/%s/locations/%s/repositories?repositoryId=%s", c->cf->project,
		c->cf->region, c->cf->repo);
	if (!(body = cJSON_CreateObject()) || !cJSON_AddStringToObject(body, "format", "DOCKER") ||
			!cJSON_AddStringToObject(body, "description", "ccr images (serve and job)")) {
		err_set(e, "out of memory");
		goto out;
	}
	if (dp_write(c, GREST_ARTIFACTREGISTRY, "POST", path, body, "creating the repository", &op, e) != 0)
		goto out;
	rc = dp_wait_op(c, GREST_ARTIFACTREGISTRY, "v1", op, "creating the repository", NULL, e);
out:
	cJSON_Delete(cur);
	cJSON_Delete(body);
	cJSON_Delete(op);
	return rc;
}
