/*
 * auth_token.c: access and ID tokens, gauth_call, project and region
 * (see auth.h); the credentials themselves are found by auth.c.
 *
 * Design:
 *  - The token cache is one string plus a monotonic expiry, under one
 *    mutex that is also held while refreshing, so exactly one refresh is
 *    in flight and everyone else waits for it (single flight without a
 *    condition variable).  A refresh failure is not cached: the next
 *    caller tries again, through the HTTP client's own retries.
 *  - Every request body that carries a secret (the signed assertion, the
 *    refresh token and client secret) and every answer that carries a
 *    token is wiped before its memory is released.
 *  - gauth_call() is the single place an Authorization header is made.
 *    It builds a private copy of the header list with the bearer line in
 *    front, so callers never see the token.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "cJSON.h"
#include "crypto/crypto.h"
#include "gcp/auth.h"
#include "gcp/auth_int.h"
#include "gcp/common.h"
#include "util/b64.h"
#include "util/jsjson.h"

#define JWT_GRANT "urn:ietf:params:oauth:grant-type:jwt-bearer"

/* ---- token endpoints --------------------------------------------------- */

/* POST a form to the token URI; on success the parsed JSON answer. */
static cJSON *token_post(struct gauth *g, const struct buf *form, struct err *e)
{
	static const char *const hdrs[] = {
		"Content-Type: application/x-www-form-urlencoded", "Accept: application/json", NULL
	};
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	char shown[300];
	cJSON *j = NULL;

	rq.method = "POST";
	rq.url = g->token_uri;
	rq.headers = hdrs;
	rq.body = form->p;
	rq.body_len = form->len;
	rq.retry = HC_RETRY_IDEMPOTENT;
	rq.allow_http = g->token_uri_http;
	rq.timeout_ms = 30000;
	rq.max_response = 1 << 20;
	hc_url_for_message(g->token_uri, shown, sizeof shown);
	if (hc_do(&rq, &rs, e) != 0) {
		err_prefix(e, "Google credentials from %s: token endpoint unreachable", g->describe);
		goto out;
	}
	if (rs.status != 200) {
		char text[300];

		gcp_error_text(&rs, text, sizeof text);
		err_http(e, (int)rs.status, "Google credentials from %s: the token endpoint %s refused %s: "
			"HTTP %ld%s%s", g->describe, shown,
			g->kind == GAUTH_SERVICE_ACCOUNT ? "the signed JWT" : "the refresh token",
			rs.status, text[0] ? ": " : "", text);
		goto out;
	}
	j = gcp_json_parse(&rs.body);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		j = NULL;
		err_set(e, "Google credentials from %s: the token endpoint %s answered something that is "
			"not JSON", g->describe, shown);
	}
out:
	gauth_wipe_buf(&rs.body);
	hc_response_free(&rs);
	return j;
}

static void wipe_json_tokens(cJSON *j)
{
	static const char *const keys[] = { "access_token", "id_token", "refresh_token", NULL };
	const char *const *k;

	for (k = keys; *k; k++) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(j, *k);

		if (cJSON_IsString(v))
			cr_wipe(v->valuestring, strlen(v->valuestring));
	}
}

/* Build the form for the access-token (or ID-token) request. */
static int token_form(struct gauth *g, const char *audience, struct buf *form, struct err *e)
{
	if (g->kind == GAUTH_SERVICE_ACCOUNT) {
		struct gauth_jwt j = { 0 };
		struct buf jwt = BUF_INIT;
		int rc;

		j.email = g->email;
		j.kid = g->kid;
		j.scope = GCP_SCOPE;
		j.target_audience = audience;
		j.aud = g->token_uri;
		gauth_jwt_times(&j, (int64_t)time(NULL));
		if (gauth_jwt_sign(&j, g->pem, &jwt, e) != 0) {
			err_prefix(e, "Google credentials from %s", g->describe);
			return -1;
		}
		rc = buf_adds(form, "grant_type=") != 0 || gcp_pct_encodes(form, JWT_GRANT) != 0 ||
			buf_adds(form, "&assertion=") != 0 || gcp_pct_encode(form, jwt.p, jwt.len) != 0;
		gauth_wipe_buf(&jwt);
		if (rc)
			return err_set(e, "Google credentials from %s: out of memory", g->describe);
		return 0;
	}
	if (audience)
		return err_set(e, "Google credentials from %s: identity tokens need a service account or the "
			"metadata server", g->describe);
	if (buf_adds(form, "grant_type=refresh_token&client_id=") != 0 ||
			gcp_pct_encodes(form, g->client_id) != 0 ||
			buf_adds(form, "&client_secret=") != 0 || gcp_pct_encodes(form, g->client_secret) != 0 ||
			buf_adds(form, "&refresh_token=") != 0 || gcp_pct_encodes(form, g->refresh_token) != 0)
		return err_set(e, "Google credentials from %s: out of memory", g->describe);
	return 0;
}

/* GET from the metadata server (host of g, or of the environment). */
static int md_get(const char *host, int explicit_host, const char *path, struct buf *out,
	const char *describe, struct err *e)
{
	static const char *const hdrs[] = { "Metadata-Flavor: Google", NULL };
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	int rc = -1;

	if (buf_printf(&url, "http://%s/computeMetadata/v1/%s", host, path) != 0) {
		err_set(e, "metadata server: out of memory");
		goto out;
	}
	rq.method = "GET";
	rq.url = url.p;
	rq.headers = hdrs;
	rq.retry = HC_RETRY_IDEMPOTENT;
	rq.allow_http = 1;
	rq.max_response = 1 << 20;
	if (!explicit_host) {
		/* Not on Google Cloud, 169.254.169.254 just does not answer:
		 * fail within seconds, not minutes. */
		rq.connect_timeout_ms = 2000;
		rq.timeout_ms = 5000;
		rq.deadline_ms = 8000;
	} else {
		rq.timeout_ms = 30000;
	}
	if (hc_do(&rq, &rs, e) != 0) {
		err_prefix(e, "%s", describe);
		goto out;
	}
	if (rs.status != 200) {
		char text[300];

		gcp_error_text(&rs, text, sizeof text);
		err_http(e, (int)rs.status, "%s: GET %.*s: HTTP %ld%s%s", describe, (int)strcspn(path, "?"), path,
			rs.status, text[0] ? ": " : "", text);
		goto out;
	}
	{
		size_t a = 0, b = rs.body.len;

		while (a < b && (rs.body.p[a] == ' ' || rs.body.p[a] == '\n' || rs.body.p[a] == '\r' || rs.body.p[a] == '\t'))
			a++;
		while (b > a && (rs.body.p[b - 1] == ' ' || rs.body.p[b - 1] == '\n' || rs.body.p[b - 1] == '\r' ||
				rs.body.p[b - 1] == '\t'))
			b--;
		buf_reset(out);
		if (buf_add(out, rs.body.p ? rs.body.p + a : "", b - a) != 0) {
			err_set(e, "metadata server: out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	gauth_wipe_buf(&rs.body);
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

int gauth_token_from_json(const cJSON *j, const char **token, int64_t *ttl_s, struct err *e)
{
	const char *tok = gcp_json_str(j, "access_token");
	int64_t ttl;

	if (!tok || !*tok)
		return err_set(e, "the token answer has no access_token");
	if (gcp_json_i64(j, "expires_in", &ttl) != 0)
		ttl = 3600;
	if (ttl <= 0)
		return err_set(e, "the token answer has expires_in <= 0");
	*token = tok;
	*ttl_s = ttl > GAUTH_MAX_TTL_S ? GAUTH_MAX_TTL_S : ttl;
	return 0;
}

/* Fetch a new access token into g->token (lock held). */
static int refresh_locked(struct gauth *g, struct err *e)
{
	uint64_t t0 = (uint64_t)clock_mono_ms();
	const char *tok;
	int64_t ttl = 3600;
	cJSON *j = NULL;
	int rc = -1;

	if (g->kind == GAUTH_METADATA_SERVER) {
		struct buf path = BUF_INIT, body = BUF_INIT;

		if (buf_adds(&path, "instance/service-accounts/default/token?scopes=") != 0 ||
				gcp_pct_encodes(&path, GCP_SCOPE) != 0) {
			buf_free(&path);
			return err_set(e, "%s: out of memory", g->describe);
		}
		rc = md_get(g->md_host, g->md_explicit, path.p, &body, g->describe, e);
		buf_free(&path);
		if (rc == 0) {
			j = gcp_json_parse(&body);
			if (!cJSON_IsObject(j))
				rc = err_set(e, "%s: the token answer is not JSON", g->describe);
		}
		gauth_wipe_buf(&body);
		if (rc != 0)
			goto out;
		rc = -1;
	} else {
		struct buf form = BUF_INIT;

		if (token_form(g, NULL, &form, e) == 0)
			j = token_post(g, &form, e);
		gauth_wipe_buf(&form);
		if (!j)
			goto out;
	}
	if (gauth_token_from_json(j, &tok, &ttl, e) != 0) {
		err_prefix(e, "Google credentials from %s", g->describe);
		goto out;
	}
	gauth_wipe_str(&g->token);
	g->token = strdup(tok);
	if (!g->token) {
		err_set(e, "Google credentials: out of memory");
		goto out;
	}
	g->expiry_ms = t0 + (uint64_t)ttl * 1000u;
	rc = 0;
out:
	if (j) {
		wipe_json_tokens(j);
		cJSON_Delete(j);
	}
	return rc;
}

int gauth_token(struct gauth *g, struct buf *out, struct err *e)
{
	int rc = 0;

	pthread_mutex_lock(&g->lock);
	if (!g->token || (uint64_t)clock_mono_ms() + (uint64_t)GAUTH_REFRESH_MARGIN_S * 1000u >= g->expiry_ms)
		rc = refresh_locked(g, e);
	if (rc == 0) {
		buf_reset(out);
		if (buf_adds(out, g->token) != 0)
			rc = err_set(e, "Google credentials: out of memory");
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}

void gauth_invalidate(struct gauth *g, const char *token)
{
	pthread_mutex_lock(&g->lock);
	if (g->token && token && strcmp(g->token, token) == 0)
		gauth_wipe_str(&g->token);
	pthread_mutex_unlock(&g->lock);
}

int gauth_call(struct gauth *g, const struct hc_request *rq, struct hc_response *rs, struct err *e)
{
	struct buf tok = BUF_INIT, auth = BUF_INIT, quota = BUF_INIT;
	const char **hl = NULL;
	const char *qp = NULL;
	size_t n = 0, i;
	int round, rc = -1;

	if (!g)
		return hc_do(rq, rs, e);
	if (g->kind == GAUTH_AUTHORIZED_USER)
		qp = gcp_setting("GOOGLE_CLOUD_QUOTA_PROJECT") ? gcp_setting("GOOGLE_CLOUD_QUOTA_PROJECT") : g->quota_project;
	if (qp && buf_printf(&quota, "x-goog-user-project: %s", qp) != 0)
		return err_set(e, "out of memory");
	while (rq->headers && rq->headers[n])
		n++;
	hl = calloc(n + 3, sizeof *hl);
	if (!hl) {
		buf_free(&quota);
		return err_set(e, "out of memory");
	}
	for (round = 0; round < 2; round++) {
		struct hc_request r2 = *rq;
		size_t k = 0;

		if (gauth_token(g, &tok, e) != 0)
			goto out;
		buf_reset(&auth);
		if (buf_adds(&auth, "Authorization: Bearer ") != 0 || buf_add(&auth, tok.p, tok.len) != 0) {
			err_set(e, "out of memory");
			goto out;
		}
		hl[k++] = auth.p;
		if (quota.p)
			hl[k++] = quota.p;
		for (i = 0; i < n; i++)
			hl[k++] = rq->headers[i];
		hl[k] = NULL;
		r2.headers = hl;
		rc = hc_do(&r2, rs, e);
		if (rc != 0 || rs->status != 401 || round == 1)
			break;
		gauth_invalidate(g, tok.p);
		if (rq->read && !(rq->rewind && rq->rewind(rq->read_arg) == 0))
			break;
		hc_note_retry();
	}
out:
	free(hl);
	gauth_wipe_buf(&tok);
	gauth_wipe_buf(&auth);
	buf_free(&quota);
	return rc;
}

int gauth_id_token(struct gauth *g, const char *audience, struct buf *out, struct err *e)
{
	struct buf form = BUF_INIT;
	const char *tok;
	cJSON *j;
	int rc = -1;

	if (!audience || !*audience)
		return err_set(e, "an identity token needs an audience");
	if (g->kind == GAUTH_METADATA_SERVER) {
		struct buf path = BUF_INIT;

		if (buf_adds(&path, "instance/service-accounts/default/identity?format=full&audience=") != 0 ||
				gcp_pct_encodes(&path, audience) != 0) {
			buf_free(&path);
			return err_set(e, "out of memory");
		}
		rc = md_get(g->md_host, g->md_explicit, path.p, out, g->describe, e);
		buf_free(&path);
		return rc;
	}
	if (token_form(g, audience, &form, e) != 0) {
		gauth_wipe_buf(&form);
		return -1;
	}
	j = token_post(g, &form, e);
	gauth_wipe_buf(&form);
	if (!j)
		return -1;
	tok = gcp_json_str(j, "id_token");
	if (!tok || !*tok) {
		err_set(e, "Google credentials from %s: the token answer has no id_token", g->describe);
	} else {
		buf_reset(out);
		rc = buf_adds(out, tok) == 0 ? 0 : err_set(e, "out of memory");
	}
	wipe_json_tokens(j);
	cJSON_Delete(j);
	return rc;
}

/* ---- project, region, metadata ----------------------------------------- */

int gauth_metadata_get(const char *path, struct buf *out, struct err *e)
{
	char describe[320];
	int explicit_host;
	const char *host = gauth_metadata_host(&explicit_host);

	snprintf(describe, sizeof describe, "the metadata server at http://%s%s", host,
		explicit_host ? " (GCE_METADATA_HOST)" : "");
	return md_get(host, explicit_host, path, out, describe, e);
}

int gauth_project_id(struct buf *out, struct err *e)
{
	static const char *const envs[] = { "PROJECT_ID", "GCS_PROJECT_ID", "GOOGLE_CLOUD_PROJECT",
		"GCLOUD_PROJECT", NULL };
	const char *const *v;
	const char *p = NULL;
	struct gauth *g;
	struct err e2 = ERR_INIT;

	for (v = envs; *v; v++) {
		if (gcp_setting(*v)) {
			buf_reset(out);
			return buf_adds(out, gcp_setting(*v)) == 0 ? 0 : err_set(e, "out of memory");
		}
	}
	g = gauth_default(&e2);
	if (!g)
		return err_set(e, "no Google Cloud project: set PROJECT_ID (credentials: %s)", e2.msg);
	if (g->kind == GAUTH_SERVICE_ACCOUNT)
		p = g->project_id;
	else if (g->kind == GAUTH_AUTHORIZED_USER)
		p = g->quota_project;
	if (p) {
		buf_reset(out);
		return buf_adds(out, p) == 0 ? 0 : err_set(e, "out of memory");
	}
	if (g->kind == GAUTH_METADATA_SERVER) {
		if (md_get(g->md_host, g->md_explicit, "project/project-id", out, g->describe, e) != 0)
			return err_prefix(e, "no Google Cloud project (set PROJECT_ID)");
		if (out->len == 0)
			return err_set(e, "no Google Cloud project: the metadata server gave an empty project id");
		return 0;
	}
	return err_set(e, "no Google Cloud project: set PROJECT_ID (the credentials in %s name none)",
		g->describe);
}

int gauth_region(struct buf *out, struct err *e)
{
	const char *r = gcp_setting("REGION");
	struct gauth *g;
	struct err e2 = ERR_INIT;
	char *slash;
	int explicit_host;

	if (r) {
		buf_reset(out);
		return buf_adds(out, r) == 0 ? 0 : err_set(e, "out of memory");
	}
	(void)gauth_metadata_host(&explicit_host);
	g = explicit_host ? NULL : gauth_default(&e2);
	if (!explicit_host && (!g || g->kind != GAUTH_METADATA_SERVER))
		return err_set(e, "no region: set REGION");
	if (gauth_metadata_get("instance/region", out, e) != 0)
		return err_prefix(e, "no region (set REGION)");
	slash = out->p ? strrchr(out->p, '/') : NULL;
	if (slash) {
		size_t n = strlen(slash + 1);

		memmove(out->p, slash + 1, n + 1);
		out->len = n;
	}
	if (out->len == 0)
		return err_set(e, "no region: the metadata server gave an empty region (set REGION)");
	return 0;
}
