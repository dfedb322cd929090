/*
 * dp_push.c: pushing an OCI image layout to a registry over the OCI
 * distribution protocol (HTTPS only), and `ccr deploy`'s image step.
 *
 * Protocol (distribution-spec "push"):
 *   - each blob (config, layers): HEAD /v2/<repo>/blobs/<digest>; 200 means
 *     it is there already and it is skipped;
 *   - else POST /v2/<repo>/blobs/uploads/ (202 + Location), then either
 *     one PUT <location>&digest=<digest> with the whole blob (monolithic,
 *     blobs up to the chunk size), or PATCH chunks with Content-Range
 *     (each answer's Location is the next URL) and a closing PUT with the
 *     digest and no body;
 *   - PUT /v2/<repo>/manifests/<tag> with the manifest's bytes verbatim and
 *     its media type; the registry's Docker-Content-Digest must equal the
 *     layout's digest.
 * Auth: a 401 names a scheme in WWW-Authenticate.  Basic: the call is
 * repeated with basic credentials.  Bearer realm=...,service=...: a token
 * is requested from the realm (GET, scope repository:<repo>:pull,push)
 * with the basic credentials, and used as Bearer from then on.  The basic
 * credentials are --registry-user and --registry-password-file, or, for
 * Artifact Registry, "oauth2accesstoken" and ccr's Google access token.
 * Nothing secret is printed; token and password are wiped after use.
 *
 * CCR_PUSH_CHUNK_BYTES (default 16 MiB, at least 1024) sets the chunk
 * size and so where monolithic uploads end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto/crypto.h"
#include "deploy/deploy.h"
#include "deploy/dp_oci.h"
#include "gcp/auth.h"
#include "gcp/common.h"
#include "http/client.h"
#include "util/b64.h"

#define DEFAULT_CHUNK (16L << 20)

static long chunk_bytes(void)
{
	const char *v = gcp_setting("CCR_PUSH_CHUNK_BYTES");
	long n = v ? strtol(v, NULL, 10) : DEFAULT_CHUNK;

	return n >= 1024 ? n : DEFAULT_CHUNK;
}

/* ---- WWW-Authenticate ---------------------------------------------------- */

static void copy_value(const char **p, char *dst, size_t n)
{
	size_t o = 0;
	int quoted = **p == '"';

	if (quoted)
		(*p)++;
	while (**p && (quoted ? **p != '"' : (**p != ',' && **p != ' '))) {
		if (quoted && **p == '\\' && (*p)[1])
			(*p)++;
		if (o + 1 < n)
			dst[o++] = **p;
		(*p)++;
	}
	if (quoted && **p == '"')
		(*p)++;
	dst[o] = 0;
}

int dp_parse_challenge(const char *h, char *scheme, size_t sn, char *realm, size_t rn, char *service,
	size_t svn, char *scope, size_t scn)
{
	const char *p = h;
	size_t i = 0;

	realm[0] = service[0] = scope[0] = 0;
	while (*p == ' ')
		p++;
	while (*p && *p != ' ' && i + 1 < sn)
		scheme[i++] = *p++;
	scheme[i] = 0;
	if (!i)
		return -1;
	while (*p) {
		char key[32], junk[512];
		size_t k = 0;

		while (*p == ' ' || *p == ',')
			p++;
		while (*p && *p != '=' && *p != ' ' && k + 1 < sizeof key)
			key[k++] = *p++;
		key[k] = 0;
		if (*p != '=')
			return *p ? -1 : 0;
		p++;
		if (strcasecmp(key, "realm") == 0)
			copy_value(&p, realm, rn);
		else if (strcasecmp(key, "service") == 0)
			copy_value(&p, service, svn);
		else if (strcasecmp(key, "scope") == 0)
			copy_value(&p, scope, scn);
		else
			copy_value(&p, junk, sizeof junk);
	}
	return 0;
}

/* ---- credentials ------------------------------------------------------------ */

/* "Authorization: Basic <base64 user:password>" into out (wiped by the caller). */
static int basic_header(struct dp_registry *r, struct buf *out, struct err *e)
{
	struct buf up = BUF_INIT, tok = BUF_INIT;
	int rc = -1;

	if (r->user) {
		if (buf_printf(&up, "%s:%s", r->user, r->password ? r->password : "") != 0)
			goto oom;
	} else {
		struct gauth *g = gauth_default(e);

		if (!g || gauth_token(g, &tok, e) != 0) {
			err_prefix(e, "registry %s asks for credentials: none given (--registry-user) and no Google "
				"access token", r->host);
			goto out;
		}
		if (buf_printf(&up, "oauth2accesstoken:%s", tok.p) != 0)
			goto oom;
	}
	if (buf_adds(out, "Authorization: Basic ") != 0 || b64_encode(out, up.p, up.len) != 0)
		goto oom;
	rc = 0;
	goto out;
oom:
	err_set(e, "out of memory");
out:
	if (up.p)
		cr_wipe(up.p, up.cap);
	if (tok.p)
		cr_wipe(tok.p, tok.cap);
	buf_free(&up);
	buf_free(&tok);
	return rc;
}

/* A token from the Bearer realm for repo (pull,push). */
static int fetch_token(struct dp_registry *r, const char *repo, const char *realm, const char *service,
	struct err *e)
{
	struct buf url = BUF_INIT, auth = BUF_INIT;
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	const char *hdrs[2] = { NULL, NULL };
	const char *tok;
	cJSON *j = NULL;
	int rc = -1;

	if (strncmp(realm, "https://", 8) != 0) {
		err_set(e, "registry %s: the token service %.200s is not https://", r->host, realm);
		goto out;
	}
	if (basic_header(r, &auth, e) != 0)
		goto out;
	hdrs[0] = auth.p;
	if (buf_printf(&url, "%s%sservice=", realm, strchr(realm, '?') ? "&" : "?") != 0 ||
			gcp_pct_encodes(&url, service) != 0 || buf_adds(&url, "&scope=") != 0 ||
			gcp_pct_encodes(&url, "repository:") != 0 || gcp_pct_encodes(&url, repo) != 0 ||
			gcp_pct_encodes(&url, ":pull,push") != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	rq.method = "GET";
	rq.url = url.p;
	rq.headers = hdrs;
	rq.retry = HC_RETRY_IDEMPOTENT;
	rq.max_response = 1 << 20;
	if (hc_do(&rq, &rs, e) != 0) {
		err_prefix(e, "registry %s: token request", r->host);
		goto out;
	}
	if (rs.status != 200) {
		gcp_http_error(e, &rs, gauth_default_describe(), "registry %s: token request to %.200s", r->host, realm);
		goto out;
	}
	j = gcp_json_parse(&rs.body);
	tok = gcp_json_str(j, "token");
	if (!tok)
		tok = gcp_json_str(j, "access_token");
	if (!tok || !*tok || strlen(tok) >= sizeof r->bearer || strpbrk(tok, "\r\n")) {
		err_set(e, "registry %s: the token service answered no usable token", r->host);
		goto out;
	}
	snprintf(r->bearer, sizeof r->bearer, "%s", tok);
	rc = 0;
out:
	if (j) {
		cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "token");

		if (cJSON_IsString(t))
			cr_wipe(t->valuestring, strlen(t->valuestring));
		cJSON_Delete(j);
	}
	if (rs.body.p)
		cr_wipe(rs.body.p, rs.body.cap);
	if (auth.p)
		cr_wipe(auth.p, auth.cap);
	hc_response_free(&rs);
	buf_free(&url);
	buf_free(&auth);
	return rc;
}

/* React to a 401: 0 when the call should be repeated with new credentials. */
static int on_401(struct dp_registry *r, const char *repo, const struct hc_response *rs, struct err *e)
{
	const char *h = hc_header(rs, "WWW-Authenticate");
	char scheme[32], realm[1024], service[256], scope[512];

	if (!h || dp_parse_challenge(h, scheme, sizeof scheme, realm, sizeof realm, service, sizeof service,
			scope, sizeof scope) != 0)
		return err_http(e, 401, "registry %s: HTTP 401 without a usable WWW-Authenticate challenge", r->host);
	if (strcasecmp(scheme, "Basic") == 0) {
		if (r->use_basic)
			return err_http(e, 401, "registry %s refused the basic credentials (HTTP 401): check "
				"--registry-user and --registry-password-file", r->host);
		r->use_basic = 1;   /* basic from now on */
		return 0;
	}
	if (strcasecmp(scheme, "Bearer") == 0) {
		/* a token is for one repository: a new one for the next image */
		if (r->bearer[0] && strcmp(r->bearer_repo, repo) == 0)
			return err_http(e, 401, "registry %s refused its own token for %s (HTTP 401): the "
				"credentials may lack push access", r->host, repo);
		cr_wipe(r->bearer, sizeof r->bearer);
		if (fetch_token(r, repo, realm, service, e) != 0)
			return -1;
		snprintf(r->bearer_repo, sizeof r->bearer_repo, "%s", repo);
		return 0;
	}
	return err_http(e, 401, "registry %s: unsupported auth scheme %.30s", r->host, scheme);
}

/* ---- calls ------------------------------------------------------------------ */

/* One registry call with auth; url absolute (https). */
static int reg_do(struct dp_registry *r, const char *repo, const char *method, const char *url,
	const char *ctype, const char *range, const void *body, size_t len, enum hc_retry retry,
	struct hc_response *rs, struct err *e)
{
	int attempt;

	for (attempt = 0; attempt < 3; attempt++) {
		struct hc_request rq = { 0 };
		struct buf auth = BUF_INIT, ct = BUF_INIT, cr = BUF_INIT;
		const char *hdrs[5];
		int n = 0, rc;

		if (r->bearer[0]) {
			if (buf_printf(&auth, "Authorization: Bearer %s", r->bearer) != 0)
				return err_set(e, "out of memory");
		} else if (r->use_basic && basic_header(r, &auth, e) != 0) {
			return -1;
		}
		if (auth.len)
			hdrs[n++] = auth.p;
		if (ctype && buf_printf(&ct, "Content-Type: %s", ctype) == 0)
			hdrs[n++] = ct.p;
		if (range && buf_printf(&cr, "Content-Range: %s", range) == 0)
			hdrs[n++] = cr.p;
		hdrs[n++] = "Accept: application/vnd.oci.image.manifest.v1+json, application/json";
		hdrs[n] = NULL;
		rq.method = method;
		rq.url = url;
		rq.headers = hdrs;
		rq.body = body;
		rq.body_len = len;
		rq.retry = retry;
		rq.timeout_ms = 600000;
		rq.max_response = 4u << 20;
		rc = hc_do(&rq, rs, e);
		if (auth.p)
			cr_wipe(auth.p, auth.cap);
		buf_free(&auth);
		buf_free(&ct);
		buf_free(&cr);
		if (rc != 0)
			return err_prefix(e, "registry %s", r->host);
		if (rs->status != 401)
			return 0;
		if (on_401(r, repo, rs, e) != 0)
			return -1;
	}
	return err_http(e, 401, "registry %s: still HTTP 401 after authenticating", r->host);
}

static int absolute(const struct dp_registry *r, const char *loc, struct buf *out, struct err *e)
{
	buf_reset(out);
	if (!loc || !*loc)
		return err_set(e, "registry %s: an upload answer without a Location", r->host);
	if (strncmp(loc, "https://", 8) == 0)
		return buf_adds(out, loc) == 0 ? 0 : err_set(e, "out of memory");
	if (*loc != '/' || strncmp(loc, "http://", 7) == 0)
		return err_set(e, "registry %s: refusing upload location %.200s (not https)", r->host, loc);
	return buf_printf(out, "https://%s%s", r->host, loc) == 0 ? 0 : err_set(e, "out of memory");
}

static int expect(const struct dp_registry *r, const struct hc_response *rs, long want, const char *what,
	struct err *e)
{
	if (rs->status == want)
		return 0;
	return gcp_http_error(e, rs, gauth_default_describe(), "registry %s: %s", r->host, what);
}

/* Upload one blob; *sent bytes. */
static int upload(struct dp_registry *r, const char *repo, const struct dp_image *img, const struct dp_blob *b,
	struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT, loc = BUF_INIT, data = BUF_INIT;
	char path[1200], range[64];
	long chunk = chunk_bytes();
	FILE *f = NULL;
	int64_t off = 0;
	int rc = -1;

	if (buf_printf(&url, "https://%s/v2/%s/blobs/uploads/", r->host, repo) != 0)
		goto oom;
	if (reg_do(r, repo, "POST", url.p, NULL, NULL, "", 0, HC_RETRY_UNSENT, &rs, e) != 0 ||
			expect(r, &rs, 202, "starting a blob upload", e) != 0 ||
			absolute(r, hc_header(&rs, "Location"), &loc, e) != 0)
		goto out;
	if (dp_oci_blob_path(img, b->digest, path, sizeof path) != 0 || !(f = fopen(path, "rb"))) {
		err_set(e, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	while (b->size > chunk && off < b->size) {   /* chunked: PATCH each piece */
		size_t n = (size_t)(b->size - off < chunk ? b->size - off : chunk);

		buf_reset(&data);
		if (buf_reserve(&data, n) != 0)
			goto oom;
		if (fread(data.p, 1, n, f) != n) {
			err_set(e, "reading %s: short read", path);
			goto out;
		}
		data.len = n;
		snprintf(range, sizeof range, "%lld-%lld", (long long)off, (long long)(off + (int64_t)n - 1));
		if (reg_do(r, repo, "PATCH", loc.p, "application/octet-stream", range, data.p, n, HC_RETRY_NEVER,
				&rs, e) != 0 || expect(r, &rs, 202, "uploading a blob chunk", e) != 0 ||
				absolute(r, hc_header(&rs, "Location"), &loc, e) != 0)
			goto out;
		off += (int64_t)n;
	}
	if (off == 0 && dp_oci_read_file(path, (size_t)b->size + 1, &data, e) != 0)
		goto out;
	if (off == 0 && (int64_t)data.len != b->size) {
		err_set(e, "%s changed while it was read", path);
		goto out;
	}
	buf_reset(&url);
	if (buf_printf(&url, "%s%sdigest=", loc.p, strchr(loc.p, '?') ? "&" : "?") != 0 ||
			gcp_pct_encodes(&url, b->digest) != 0)
		goto oom;
	if (reg_do(r, repo, "PUT", url.p, "application/octet-stream", NULL, off ? "" : data.p,
			off ? 0 : data.len, HC_RETRY_NEVER, &rs, e) != 0 ||
			expect(r, &rs, 201, "completing a blob upload", e) != 0)
		goto out;
	rc = 0;
	goto out;
oom:
	err_set(e, "out of memory");
out:
	if (f)
		fclose(f);
	hc_response_free(&rs);
	buf_free(&url);
	buf_free(&loc);
	buf_free(&data);
	return rc;
}

int dp_tag_digest(struct dp_registry *r, const char *repo, const char *tag, char *digest, size_t n,
	struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	const char *got;
	int rc = -1;

	digest[0] = 0;
	if (buf_printf(&url, "https://%s/v2/%s/manifests/%s", r->host, repo, tag) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	if (reg_do(r, repo, "HEAD", url.p, NULL, NULL, NULL, 0, HC_RETRY_IDEMPOTENT, &rs, e) != 0)
		goto out;
	if (rs.status == 200 && (got = hc_header(&rs, "Docker-Content-Digest")))
		snprintf(digest, n, "%s", got);
	else if (rs.status != 200 && rs.status != 404) {
		gcp_http_error(e, &rs, gauth_default_describe(), "registry %s: checking %s:%s", r->host, repo, tag);
		goto out;
	}
	rc = 0;
out:
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

int dp_push(struct dp_registry *r, const char *repo, const char *tag, const struct dp_image *img, FILE *out,
	struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	const char *got;
	int i, sent = 0, skipped = 0, rc = -1;
	int64_t bytes = 0;

	for (i = 0; i < img->n_blobs; i++) {
		const struct dp_blob *b = &img->blobs[i];

		buf_reset(&url);
		if (buf_printf(&url, "https://%s/v2/%s/blobs/%s", r->host, repo, b->digest) != 0) {
			err_set(e, "out of memory");
			goto out;
		}
		if (reg_do(r, repo, "HEAD", url.p, NULL, NULL, NULL, 0, HC_RETRY_IDEMPOTENT, &rs, e) != 0)
			goto out;
		if (rs.status == 200) {
			skipped++;
			continue;
		}
		if (rs.status != 404) {
			gcp_http_error(e, &rs, gauth_default_describe(), "registry %s: checking blob %s", r->host, b->digest);
			goto out;
		}
		if (upload(r, repo, img, b, e) != 0) {
			err_prefix(e, "pushing %s blob %s", repo, b->digest);
			goto out;
		}
		sent++;
		bytes += b->size;
	}
	buf_reset(&url);
	if (buf_printf(&url, "https://%s/v2/%s/manifests/%s", r->host, repo, tag) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	if (reg_do(r, repo, "PUT", url.p, img->manifest_media, NULL, img->manifest.p, img->manifest.len,
			HC_RETRY_IDEMPOTENT, &rs, e) != 0 || expect(r, &rs, 201, "putting the manifest", e) != 0)
		goto out;
	got = hc_header(&rs, "Docker-Content-Digest");
	if (got && strcmp(got, img->manifest_digest) != 0) {
		err_set(e, "registry %s stored the manifest of %s:%s as %.80s, not %s", r->host, repo, tag, got,
			img->manifest_digest);
		goto out;
	}
	fprintf(out, "    pushed %s/%s:%s %s (%d blobs sent, %lld bytes; %d already there)\n", r->host, repo, tag,
		img->manifest_digest, sent, (long long)bytes, skipped);
	rc = 0;
out:
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

/* ---- ccr deploy's image step ------------------------------------------------ */

static int push_one(struct dp_ctx *c, struct dp_registry *r, const char *dir, const char *name, char *ref,
	size_t reflen, struct err *e)
{
	struct dp_image *img = calloc(1, sizeof *img);
	char repo[600], have[128];
	int rc = -1;

	if (!img)
		return err_set(e, "out of memory");
	snprintf(repo, sizeof repo, "%s/%s/%s", c->cf->project, c->cf->repo, name);
	if (dp_oci_load(dir, img, e) != 0)
		goto out;
	snprintf(ref, reflen, "%s/%s@%s", r->host, repo, img->manifest_digest);
	if (dp_tag_digest(r, repo, c->cf->tag, have, sizeof have, e) != 0)
		goto out;
	if (strcmp(have, img->manifest_digest) == 0) {
		dp_say(c, "image", ref, "exists", "(the tag already names this manifest)");
		rc = 0;
		goto out;
	}
	dp_say(c, "image", ref, "push", "");
	if (c->cf->dry_run) {
		rc = 0;
		goto out;
	}
	c->pushes++;
	rc = dp_push(r, repo, c->cf->tag, img, c->out, e);
out:
	dp_oci_free(img);
	free(img);
	return rc;
}

int dp_push_images(struct dp_ctx *c, struct err *e)
{
	struct dp_registry r;
	struct buf pw = BUF_INIT;
	int rc = -1;

	if (!c->cf->job_image_dir && !c->cf->serve_image_dir)
		return 0;
	memset(&r, 0, sizeof r);
	snprintf(r.host, sizeof r.host, "%s", c->cf->registry);
	r.user = c->cf->registry_user;
	if (c->cf->registry_password_file) {
		if (dp_oci_read_file(c->cf->registry_password_file, 4096, &pw, e) != 0)
			goto out;
		while (pw.len && (pw.p[pw.len - 1] == '\n' || pw.p[pw.len - 1] == '\r'))
			pw.p[--pw.len] = 0;
		r.password = pw.p ? pw.p : "";
	}
	if (c->cf->job_image_dir && push_one(c, &r, c->cf->job_image_dir, "ccr-job", c->job_image,
			sizeof c->job_image, e) != 0)
		goto out;
	if (c->cf->serve_image_dir && push_one(c, &r, c->cf->serve_image_dir, "ccr-serve", c->serve_image,
			sizeof c->serve_image, e) != 0)
		goto out;
	rc = 0;
out:
	if (pw.p)
		cr_wipe(pw.p, pw.cap);
	buf_free(&pw);
	cr_wipe(r.bearer, sizeof r.bearer);
	return rc;
}
