/*
 * auth.c: Application Default Credentials and tokens (see auth.h).
 *
 * Design:
 *  - gauth_new() only reads files: which source applies is decided
 *    without the network, and what the source needs (email, key, token
 *    URI, or refresh token) is copied out of the JSON, whose copies of
 *    secrets are wiped before the tree is freed.
 *  - This file: discovery of the credentials, the default client, the
 *    JWT.  Tokens, gauth_call and the metadata server are in
 *    auth_token.c; auth_int.h holds what the two share.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cJSON.h"
#include "crypto/crypto.h"
#include "gcp/auth.h"
#include "gcp/auth_int.h"
#include "gcp/common.h"
#include "util/b64.h"
#include "util/jsjson.h"
#include "util/clock.h"

#define KEY_FILE_MAX (1u << 20)

/* ---- small helpers ----------------------------------------------------- */

void gauth_wipe_str(char **s)
{
	if (*s) {
		cr_wipe(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void gauth_wipe_buf(struct buf *b)
{
	if (b->p)
		cr_wipe(b->p, b->cap);
	buf_free(b);
}

static int read_file(const char *path, struct buf *out, int *err_no)
{
	char tmp[8192];
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		*err_no = errno;
		return -1;
	}
	for (;;) {
		r = read(fd, tmp, sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*err_no = errno;
			break;
		}
		if (r == 0) {
			close(fd);
			cr_wipe(tmp, sizeof tmp);
			return 0;
		}
		if (out->len + (size_t)r > KEY_FILE_MAX) {
			*err_no = EFBIG;
			break;
		}
		if (buf_add(out, tmp, (size_t)r) != 0) {
			*err_no = ENOMEM;
			break;
		}
	}
	close(fd);
	cr_wipe(tmp, sizeof tmp);
	return -1;
}

/* Copy a string member (wiping the JSON's copy when secret). */
static int take(cJSON *obj, const char *key, char **dst, int secret)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!cJSON_IsString(v) || !v->valuestring[0])
		return 0;
	*dst = strdup(v->valuestring);
	if (secret)
		cr_wipe(v->valuestring, strlen(v->valuestring));
	return *dst ? 1 : -1;
}

static void wipe_json_secrets(cJSON *j)
{
	static const char *const keys[] = { "private_key", "client_secret", "refresh_token", NULL };
	const char *const *k;

	for (k = keys; *k; k++) {
		cJSON *v = cJSON_GetObjectItemCaseSensitive(j, *k);

		if (cJSON_IsString(v))
			cr_wipe(v->valuestring, strlen(v->valuestring));
	}
}

const char *gauth_metadata_host(int *explicit_host)
{
	const char *h = gcp_setting("GCE_METADATA_HOST");

	*explicit_host = h != NULL;
	return h ? h : GAUTH_DEFAULT_METADATA_HOST;
}

/* ---- discovery --------------------------------------------------------- */

static int load_key_file(struct gauth *g, const char *label, const char *path, struct err *e)
{
	struct buf raw = BUF_INIT;
	cJSON *j = NULL;
	const char *type;
	int en = 0, rc = -1;

	if (read_file(path, &raw, &en) != 0) {
		err_set(e, "%s: cannot read the credentials file: %s", label,
			en == EFBIG ? "larger than 1 MiB" : strerror(en));
		goto out;
	}
	j = cJSON_ParseWithLength(raw.p ? raw.p : "", raw.len);
	if (!cJSON_IsObject(j)) {
		err_set(e, "%s: not a JSON credentials file", label);
		goto out;
	}
	type = gcp_json_str(j, "type");
	if (!type) {
		err_set(e, "%s: the credentials file has no \"type\"", label);
		goto out;
	}
	if (strcmp(type, "service_account") == 0) {
		g->kind = GAUTH_SERVICE_ACCOUNT;
		if (take(j, "client_email", &g->email, 0) <= 0 || take(j, "private_key", &g->pem, 1) <= 0) {
			err_set(e, "%s: a service_account key needs \"client_email\" and \"private_key\"", label);
			goto out;
		}
		if (take(j, "private_key_id", &g->kid, 0) < 0 || take(j, "token_uri", &g->token_uri, 0) < 0 ||
				take(j, "project_id", &g->project_id, 0) < 0)
			goto oom;
		snprintf(g->describe, sizeof g->describe, "%s (service account %s)", label, g->email);
	} else if (strcmp(type, "authorized_user") == 0) {
		g->kind = GAUTH_AUTHORIZED_USER;
		if (take(j, "client_id", &g->client_id, 0) <= 0 || take(j, "client_secret", &g->client_secret, 1) <= 0 ||
				take(j, "refresh_token", &g->refresh_token, 1) <= 0) {
			err_set(e, "%s: an authorized_user file needs \"client_id\", \"client_secret\" and "
				"\"refresh_token\"", label);
			goto out;
		}
		if (take(j, "token_uri", &g->token_uri, 0) < 0 || take(j, "quota_project_id", &g->quota_project, 0) < 0)
			goto oom;
		snprintf(g->describe, sizeof g->describe, "%s (authorized user)", label);
	} else {
		err_set(e, "%s: credential type \"%.40s\" is not supported (ccr supports service_account and "
			"authorized_user, or the metadata server)", label, type);
		goto out;
	}
	if (!g->token_uri && !(g->token_uri = strdup(GAUTH_DEFAULT_TOKEN_URI)))
		goto oom;
	if (strncmp(g->token_uri, "https://", 8) == 0) {
		g->token_uri_http = 0;
	} else if (strncmp(g->token_uri, "http://", 7) == 0) {
		g->token_uri_http = 1;
	} else {
		err_set(e, "%s: token_uri must be an http:// or https:// URL", label);
		goto out;
	}
	rc = 0;
	goto out;
oom:
	err_set(e, "%s: out of memory", label);
out:
	if (j) {
		wipe_json_secrets(j);
		cJSON_Delete(j);
	}
	gauth_wipe_buf(&raw);
	return rc;
}

static int gcloud_file(char *dst, size_t dstlen)
{
	const char *cfg = gcp_setting("CLOUDSDK_CONFIG");
	const char *home = gcp_setting("HOME");
	int n;

	if (cfg)
		n = snprintf(dst, dstlen, "%s/application_default_credentials.json", cfg);
	else if (home)
		n = snprintf(dst, dstlen, "%s/.config/gcloud/application_default_credentials.json", home);
	else
		return -1;
	return n > 0 && (size_t)n < dstlen ? 0 : -1;
}

struct gauth *gauth_new(struct err *e)
{
	struct gauth *g = calloc(1, sizeof *g);
	const char *env = gcp_setting("GOOGLE_APPLICATION_CREDENTIALS");
	char label[600], gpath[512];
	int have_gpath;

	if (!g) {
		err_set(e, "Google credentials: out of memory");
		return NULL;
	}
	if (pthread_mutex_init(&g->lock, NULL) != 0) {
		free(g);
		err_set(e, "Google credentials: cannot make a mutex");
		return NULL;
	}
	have_gpath = gcloud_file(gpath, sizeof gpath) == 0;
	if (env) {
		g->source = GAUTH_SRC_ENV_FILE;
		snprintf(label, sizeof label, "GOOGLE_APPLICATION_CREDENTIALS=%s", env);
		if (load_key_file(g, label, env, e) != 0)
			goto fail;
		return g;
	}
	if (have_gpath && access(gpath, F_OK) == 0) {
		g->source = GAUTH_SRC_GCLOUD_FILE;
		snprintf(label, sizeof label, "gcloud ADC file %s", gpath);
		if (load_key_file(g, label, gpath, e) != 0)
			goto fail;
		return g;
	}
	g->source = GAUTH_SRC_METADATA;
	g->kind = GAUTH_METADATA_SERVER;
	snprintf(g->md_host, sizeof g->md_host, "%s", gauth_metadata_host(&g->md_explicit));
	if (g->md_explicit)
		snprintf(g->describe, sizeof g->describe, "the metadata server at http://%s (GCE_METADATA_HOST)",
			g->md_host);
	else
		snprintf(g->describe, sizeof g->describe, "the metadata server at http://%s (no "
			"GOOGLE_APPLICATION_CREDENTIALS, no gcloud ADC file at %s)", g->md_host,
			have_gpath ? gpath : "~/.config/gcloud/application_default_credentials.json");
	return g;
fail:
	gauth_free(g);
	return NULL;
}

void gauth_free(struct gauth *g)
{
	if (!g)
		return;
	gauth_wipe_str(&g->pem);
	gauth_wipe_str(&g->client_secret);
	gauth_wipe_str(&g->refresh_token);
	gauth_wipe_str(&g->token);
	free(g->email);
	free(g->kid);
	free(g->token_uri);
	free(g->project_id);
	free(g->client_id);
	free(g->quota_project);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* Static: the process's Application Default Credentials, found once and
 * shared by every Google client it makes (one cached token per process). */
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gauth *default_g;

struct gauth *gauth_default(struct err *e)
{
	struct gauth *g;

	pthread_mutex_lock(&default_lock);
	if (!default_g)
		default_g = gauth_new(e);
	g = default_g;
	pthread_mutex_unlock(&default_lock);
	return g;
}

const char *gauth_default_describe(void)
{
	struct gauth *g;

	pthread_mutex_lock(&default_lock);
	g = default_g;
	pthread_mutex_unlock(&default_lock);
	return g ? g->describe : NULL;
}

enum gauth_source gauth_source(const struct gauth *g)
{
	return g->source;
}

enum gauth_kind gauth_kind(const struct gauth *g)
{
	return g->kind;
}

const char *gauth_describe(const struct gauth *g)
{
	return g->describe;
}

/* ---- the JWT ----------------------------------------------------------- */

void gauth_jwt_times(struct gauth_jwt *j, int64_t now)
{
	j->iat = now - 30;
	j->exp = j->iat + 3600;
}

int gauth_jwt_json(const struct gauth_jwt *j, struct buf *header, struct buf *claims)
{
	if (buf_adds(header, "{\"alg\":\"RS256\",\"typ\":\"JWT\"") != 0)
		return -1;
	if (j->kid && (buf_adds(header, ",\"kid\":") != 0 || jsj_string(header, j->kid, strlen(j->kid)) != 0))
		return -1;
	if (buf_addc(header, '}') != 0)
		return -1;
	if (buf_adds(claims, "{\"iss\":") != 0 || jsj_string(claims, j->email, strlen(j->email)) != 0)
		return -1;
	if (j->target_audience) {
		if (buf_adds(claims, ",\"target_audience\":") != 0 ||
				jsj_string(claims, j->target_audience, strlen(j->target_audience)) != 0)
			return -1;
	} else if (buf_adds(claims, ",\"scope\":") != 0 ||
			jsj_string(claims, j->scope ? j->scope : GCP_SCOPE, strlen(j->scope ? j->scope : GCP_SCOPE)) != 0) {
		return -1;
	}
	if (buf_adds(claims, ",\"aud\":") != 0 || jsj_string(claims, j->aud, strlen(j->aud)) != 0)
		return -1;
	return buf_printf(claims, ",\"iat\":%lld,\"exp\":%lld}", (long long)j->iat, (long long)j->exp);
}

int gauth_jwt_sign(const struct gauth_jwt *j, const char *pem, struct buf *out, struct err *e)
{
	struct buf hdr = BUF_INIT, cl = BUF_INIT, sig = BUF_INIT;
	size_t start = out->len;
	char why[200];
	int rc = -1;

	if (!j->email || !j->aud)
		return err_set(e, "JWT: issuer and audience are required");
	if (gauth_jwt_json(j, &hdr, &cl) != 0 ||
			b64_url_encode(out, hdr.p, hdr.len) != 0 || buf_addc(out, '.') != 0 ||
			b64_url_encode(out, cl.p, cl.len) != 0) {
		err_set(e, "JWT: out of memory");
		goto out;
	}
	if (cr_rs256_sign(pem, out->p + start, out->len - start, &sig, why, sizeof why) != 0) {
		err_set(e, "the private key cannot sign: %s", why);
		goto out;
	}
	if (buf_addc(out, '.') != 0 || b64_url_encode(out, sig.p, sig.len) != 0) {
		err_set(e, "JWT: out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0 && out->p) {
		cr_wipe(out->p + start, out->len - start);
		out->len = start;
		out->p[start] = 0;
	}
	buf_free(&hdr);
	buf_free(&cl);
	buf_free(&sig);
	return rc;
}
