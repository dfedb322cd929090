/*
 * gcs.c: the Cloud Storage JSON API client of gcs.h.
 *
 * Design:
 *  - Every call builds its URL from the client's base (default endpoint
 *    or STORAGE_EMULATOR_HOST), percent-encodes bucket and object names
 *    with gcp_pct_encode (one path segment each), and goes through
 *    gauth_call (anonymous in emulator mode) and so through the HTTP
 *    client's retry loop.  The retry class follows GCS's idempotency
 *    rules: reads always, writes only with a precondition or when the
 *    caller vouches for them, and otherwise only what never reached the
 *    server (HC_RETRY_UNSENT).
 *  - Uploads (simple, multipart, resumable) are in gcs_upload.c; this
 *    file holds the client, object resources, reads, list, delete and
 *    compose.  What the two share is in gcs_int.h.
 *  - Object resources are parsed into struct gcs_object with int64
 *    fields accepted as strings or numbers (proto3 JSON).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cJSON.h"
#include "crypto/crypto.h"
#include "gcp/auth.h"
#include "gcp/common.h"
#include "gcp/gcs.h"
#include "gcp/gcs_int.h"
#include "util/b64.h"
#include "util/crc32c.h"
#include "util/hex.h"
#include "util/jsjson.h"
#include "util/clock.h"

/* ---- client ------------------------------------------------------------ */

struct gcs *gcs_new(struct err *e)
{
	struct gcs *g = calloc(1, sizeof *g);

	if (!g) {
		GCS_OOM(e);
		return NULL;
	}
	if (gcp_endpoint_get(&g->ep, "STORAGE_EMULATOR_HOST", GCS_DEFAULT_ENDPOINT, 1, e) != 0) {
		free(g);
		return NULL;
	}
	g->anonymous = g->ep.overridden && !gcp_setting("GOOGLE_APPLICATION_CREDENTIALS");
	if (!g->anonymous && !gauth_default(e)) {
		free(g);
		return NULL;
	}
	return g;
}

void gcs_free(struct gcs *g)
{
	free(g);
}

const char *gcs_endpoint(const struct gcs *g)
{
	return g->ep.base;
}

int gcs_call(struct gcs *g, struct hc_request *rq, struct hc_response *rs, struct err *e)
{
	struct gauth *a = NULL;

	rq->allow_http = g->ep.allow_http;
	if (!g->anonymous && !(a = gauth_default(e)))
		return -1;
	return gauth_call(a, rq, rs, e);
}

enum hc_retry gcs_write_retry(int precondition, int idempotent)
{
	return precondition || idempotent ? HC_RETRY_IDEMPOTENT : HC_RETRY_UNSENT;
}

/* ---- objects ----------------------------------------------------------- */

void gcs_object_free(struct gcs_object *o)
{
	char **m;

	if (!o)
		return;
	free(o->bucket);
	free(o->name);
	free(o->content_type);
	free(o->crc32c);
	free(o->md5);
	free(o->updated);
	for (m = o->metadata; m && *m; m++)
		free(*m);
	free(o->metadata);
	memset(o, 0, sizeof *o);
}

static int dup_member(const cJSON *j, const char *key, char **dst)
{
	const char *s = gcp_json_str(j, key);

	if (!s)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : -1;
}

static int object_from_cjson(const cJSON *j, struct gcs_object *o)
{
	const cJSON *md, *it;
	int64_t v;
	size_t n = 0;

	memset(o, 0, sizeof *o);
	if (!cJSON_IsObject(j) || !gcp_json_str(j, "name"))
		return -1;
	if (dup_member(j, "bucket", &o->bucket) || dup_member(j, "name", &o->name) ||
			dup_member(j, "contentType", &o->content_type) || dup_member(j, "crc32c", &o->crc32c) ||
			dup_member(j, "md5Hash", &o->md5) || dup_member(j, "updated", &o->updated))
		goto fail;
	if (gcp_json_i64(j, "size", &v) == 0 && v >= 0)
		o->size = (uint64_t)v;
	if (gcp_json_i64(j, "generation", &v) == 0)
		o->generation = v;
	if (gcp_json_i64(j, "metageneration", &v) == 0)
		o->metageneration = v;
	if (gcp_json_i64(j, "componentCount", &v) == 0)
		o->component_count = (int)v;
	md = cJSON_GetObjectItemCaseSensitive(j, "metadata");
	if (cJSON_IsObject(md)) {
		size_t k = 0;

		cJSON_ArrayForEach(it, md)
			n++;
		o->metadata = calloc(2 * n + 1, sizeof *o->metadata);
		if (!o->metadata)
			goto fail;
		cJSON_ArrayForEach(it, md) {
			const char *val = cJSON_IsString(it) ? it->valuestring : "";

			if (!it->string)
				continue;
			if (!(o->metadata[k] = strdup(it->string)))
				goto fail;
			k++;
			if (!(o->metadata[k] = strdup(val)))
				goto fail;
			k++;
		}
	}
	return 0;
fail:
	gcs_object_free(o);
	return -1;
}

int gcs_object_from_json(const void *json, size_t n, struct gcs_object *out)
{
	cJSON *j = cJSON_ParseWithLength(json, n);
	int rc = object_from_cjson(j, out);

	cJSON_Delete(j);
	return rc;
}

void gcs_crc32c_b64(const void *data, size_t n, char dst[9])
{
	gcs_crc_b64(crc32c(data, n), dst);
}

void gcs_crc_b64(uint32_t c, char dst[9])
{
	unsigned char be[4] = { (unsigned char)(c >> 24), (unsigned char)(c >> 16),
		(unsigned char)(c >> 8), (unsigned char)c };
	struct buf b = BUF_INIT;

	dst[0] = 0;
	if (b64_encode(&b, be, 4) == 0 && b.len == 8)
		memcpy(dst, b.p, 9);
	buf_free(&b);
}

int gcs_finish_upload(const struct hc_response *rs, const char *bucket, const char *name,
	const char *want_crc, struct gcs_object *out, struct err *e)
{
	struct gcs_object o;

	if (gcs_object_from_json(rs->body.p ? rs->body.p : "", rs->body.len, &o) != 0)
		return err_set(e, "upload of " GCS_NAME_FMT ": the answer is not an object resource", bucket, name);
	if (want_crc && o.crc32c && strcmp(o.crc32c, want_crc) != 0) {
		err_set(e, "upload of " GCS_NAME_FMT ": the stored object's CRC32C %s differs from the data's %s "
			"(corrupted in transit)", bucket, name, o.crc32c, want_crc);
		gcs_object_free(&o);
		return -1;
	}
	if (out)
		*out = o;
	else
		gcs_object_free(&o);
	return 0;
}

int gcs_object_path(struct buf *out, const char *bucket, const char *name)
{
	if (buf_adds(out, "/storage/v1/b/") != 0 || gcp_pct_encodes(out, bucket) != 0)
		return -1;
	if (name && (buf_adds(out, "/o/") != 0 || gcp_pct_encodes(out, name) != 0))
		return -1;
	return 0;
}

int gcs_check_names(const char *what, const char *bucket, const char *name, struct err *e)
{
	if (!bucket || !*bucket)
		return err_set(e, "%s: no bucket given", what);
	if (name && !*name)
		return err_set(e, "%s: the object name is empty", what);
	return 0;
}

static int object_url(struct buf *u, struct gcs *g, const char *bucket, const char *name)
{
	return buf_adds(u, g->ep.base) != 0 || gcs_object_path(u, bucket, name) != 0 ? -1 : 0;
}

const char *gcs_ctype_of(const struct gcs_put_opts *o)
{
	return o && o->content_type && *o->content_type ? o->content_type : "application/octet-stream";
}

/* ---- reads ------------------------------------------------------------- */

/* The crc32c= value of an x-goog-hash header, or NULL. */
static int hash_crc(const char *h, char dst[16])
{
	const char *p;
	size_t n;

	if (!h || !(p = strstr(h, "crc32c=")))
		return -1;
	p += 7;
	n = strcspn(p, ", ");
	if (n == 0 || n >= 16)
		return -1;
	memcpy(dst, p, n);
	dst[n] = 0;
	return 0;
}

int gcs_get(struct gcs *g, const char *bucket, const char *name, uint64_t offset,
	struct buf *out, struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT, range = BUF_INIT;
	const char *hdrs[2] = { NULL, NULL };
	uint64_t deadline = (uint64_t)clock_mono_ms() + (uint64_t)hc_default_deadline_ms();
	unsigned attempt;
	int rc = -1;

	if (gcs_check_names("download", bucket, name, e) != 0)
		return -1;
	if (object_url(&url, g, bucket, name) != 0 || buf_adds(&url, "?alt=media") != 0 ||
			(offset > 0 && buf_printf(&range, "Range: bytes=%llu-", (unsigned long long)offset) != 0)) {
		GCS_OOM(e);
		goto out;
	}
	hdrs[0] = range.p;
	for (attempt = 0;; attempt++) {
		struct hc_request rq = { 0 };
		const char *enc;
		char want[16], got[9];
		size_t skip = 0;

		rq.method = "GET";
		rq.url = url.p;
		rq.headers = hdrs;
		rq.retry = HC_RETRY_IDEMPOTENT;
		rq.timeout_ms = 600000;
		if (gcs_call(g, &rq, &rs, e) != 0) {
			err_prefix(e, "download of " GCS_NAME_FMT, bucket, name);
			goto out;
		}
		if (rs.status == 416) {
			rc = 0;          /* the offset is at (or past) the end */
			goto out;
		}
		if (rs.status == 404) {
			gcp_http_error(e, &rs, gauth_default_describe(), "download of " GCS_NAME_FMT ": no such object", bucket, name);
			goto out;
		}
		if (rs.status != 200 && rs.status != 206) {
			gcp_http_error(e, &rs, gauth_default_describe(), "download of " GCS_NAME_FMT, bucket, name);
			goto out;
		}
		if (rs.status == 200 && offset > 0)
			skip = offset < rs.body.len ? (size_t)offset : rs.body.len;   /* Range ignored */
		enc = hc_header(&rs, "x-goog-stored-content-encoding");
		if (rs.status == 200 && offset == 0 && hash_crc(hc_header(&rs, "x-goog-hash"), want) == 0 &&
				(!enc || strcmp(enc, "identity") == 0)) {
			gcs_crc32c_b64(rs.body.p, rs.body.len, got);
			if (strcmp(got, want) != 0) {
				if (attempt < 3 && hc_backoff_wait(attempt, -1, deadline) == 0)
					continue;
				err_set(e, "download of " GCS_NAME_FMT ": CRC32C mismatch (got %s, the object has %s)",
					bucket, name, got, want);
				goto out;
			}
		}
		if (out->len == 0 && skip == 0) {
			buf_free(out);
			*out = rs.body;
			memset(&rs.body, 0, sizeof rs.body);
		} else if (buf_add(out, rs.body.p + skip, rs.body.len - skip) != 0) {
			GCS_OOM(e);
			goto out;
		}
		rc = 0;
		goto out;
	}
out:
	hc_response_free(&rs);
	buf_free(&url);
	buf_free(&range);
	return rc;
}

int gcs_stat(struct gcs *g, const char *bucket, const char *name, struct gcs_object *out,
	struct err *e)
{
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	int rc = -1;

	if (gcs_check_names("stat", bucket, name, e) != 0)
		return -1;
	if (object_url(&url, g, bucket, name) != 0) {
		GCS_OOM(e);
		goto out;
	}
	rq.method = "GET";
	rq.url = url.p;
	rq.retry = HC_RETRY_IDEMPOTENT;
	if (gcs_call(g, &rq, &rs, e) != 0) {
		err_prefix(e, "stat of " GCS_NAME_FMT, bucket, name);
		goto out;
	}
	if (rs.status != 200) {
		gcp_http_error(e, &rs, gauth_default_describe(), "stat of " GCS_NAME_FMT "%s", bucket, name,
			rs.status == 404 ? ": no such object" : "");
		goto out;
	}
	if (gcs_object_from_json(rs.body.p, rs.body.len, out) != 0) {
		err_set(e, "stat of " GCS_NAME_FMT ": the answer is not an object resource", bucket, name);
		goto out;
	}
	rc = 0;
out:
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

/* ---- list -------------------------------------------------------------- */

void gcs_listing_free(struct gcs_listing *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		gcs_object_free(&l->items[i]);
	for (i = 0; i < l->nprefixes; i++)
		free(l->prefixes[i]);
	free(l->items);
	free(l->prefixes);
	memset(l, 0, sizeof *l);
}

static int add_query(struct buf *u, const char *key, const char *val)
{
	if (!val || !*val)
		return 0;
	if (buf_printf(u, "%c%s=", strchr(u->p, '?') ? '&' : '?', key) != 0 || gcp_pct_encodes(u, val) != 0)
		return -1;
	return 0;
}

int gcs_list_page(struct gcs_listing *out, const char *json, size_t n, size_t limit, char **next_token,
	struct err *e)
{
	cJSON *j = cJSON_ParseWithLength(json ? json : "", n);
	const cJSON *items, *pre, *it;
	const char *next;
	int rc = -1;

	*next_token = NULL;
	if (!cJSON_IsObject(j)) {
		err_set(e, "the answer is not JSON");
		goto out;
	}
	out->pages++;
	items = cJSON_GetObjectItemCaseSensitive(j, "items");
	cJSON_ArrayForEach(it, items) {
		if (limit && out->n >= limit)
			break;
		if (out->n == out->cap_items) {
			size_t nc = out->cap_items ? out->cap_items * 2 : 64;
			struct gcs_object *ni = realloc(out->items, nc * sizeof *ni);

			if (!ni) {
				GCS_OOM(e);
				goto out;
			}
			out->items = ni;
			out->cap_items = nc;
		}
		if (object_from_cjson(it, &out->items[out->n]) != 0) {
			err_set(e, "an item is not an object resource");
			goto out;
		}
		out->n++;
	}
	pre = cJSON_GetObjectItemCaseSensitive(j, "prefixes");
	cJSON_ArrayForEach(it, pre) {
		if (!cJSON_IsString(it))
			continue;
		if (out->nprefixes == out->cap_prefixes) {
			size_t nc = out->cap_prefixes ? out->cap_prefixes * 2 : 16;
			char **np = realloc(out->prefixes, nc * sizeof *np);

			if (!np) {
				GCS_OOM(e);
				goto out;
			}
			out->prefixes = np;
			out->cap_prefixes = nc;
		}
		if (!(out->prefixes[out->nprefixes] = strdup(it->valuestring))) {
			GCS_OOM(e);
			goto out;
		}
		out->nprefixes++;
	}
	next = gcp_json_str(j, "nextPageToken");
	if (next && *next && !(limit && out->n >= limit) && !(*next_token = strdup(next))) {
		GCS_OOM(e);
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

int gcs_list(struct gcs *g, const char *bucket, const struct gcs_list_opts *o,
	struct gcs_listing *out, struct err *e)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	char *token = NULL;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (gcs_check_names("list", bucket, NULL, e) != 0)
		return -1;
	do {
		struct hc_request rq = { 0 };
		char ps[16];

		buf_reset(&url);
		if (buf_adds(&url, g->ep.base) != 0 || gcs_object_path(&url, bucket, NULL) != 0 ||
				buf_adds(&url, "/o") != 0 || add_query(&url, "prefix", o ? o->prefix : NULL) != 0 ||
				add_query(&url, "delimiter", o ? o->delimiter : NULL) != 0 ||
				add_query(&url, "startOffset", o ? o->start_offset : NULL) != 0) {
			GCS_OOM(e);
			goto out;
		}
		snprintf(ps, sizeof ps, "%u", o ? o->page_size : 0);
		if ((o && o->page_size && add_query(&url, "maxResults", ps) != 0) ||
				add_query(&url, "pageToken", token) != 0) {
			GCS_OOM(e);
			goto out;
		}
		rq.method = "GET";
		rq.url = url.p;
		rq.retry = HC_RETRY_IDEMPOTENT;
		if (gcs_call(g, &rq, &rs, e) != 0) {
			err_prefix(e, "list of gs://%.120s/%.200s", bucket, o && o->prefix ? o->prefix : "");
			goto out;
		}
		if (rs.status != 200) {
			gcp_http_error(e, &rs, gauth_default_describe(), "list of gs://%.120s/%.200s", bucket, o && o->prefix ? o->prefix : "");
			goto out;
		}
		free(token);
		token = NULL;
		if (gcs_list_page(out, rs.body.p, rs.body.len, o ? o->limit : 0, &token, e) != 0) {
			err_prefix(e, "list of gs://%.120s", bucket);
			goto out;
		}
	} while (token);
	rc = 0;
out:
	if (rc != 0)
		gcs_listing_free(out);
	free(token);
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

/* ---- delete, compose --------------------------------------------------- */

int gcs_delete(struct gcs *g, const char *bucket, const char *name, const struct gcs_del_opts *o,
	struct err *e)
{
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	int rc = -1;

	if (gcs_check_names("delete", bucket, name, e) != 0)
		return -1;
	if (object_url(&url, g, bucket, name) != 0 || (o && o->use_generation_match &&
			buf_printf(&url, "?ifGenerationMatch=%lld", (long long)o->if_generation_match) != 0)) {
		GCS_OOM(e);
		goto out;
	}
	rq.method = "DELETE";
	rq.url = url.p;
	rq.retry = gcs_write_retry(o && o->use_generation_match, o && o->idempotent);
	if (gcs_call(g, &rq, &rs, e) != 0) {
		err_prefix(e, "delete of " GCS_NAME_FMT, bucket, name);
		goto out;
	}
	if (rs.status < 200 || rs.status > 299) {
		gcp_http_error(e, &rs, gauth_default_describe(), "delete of " GCS_NAME_FMT "%s", bucket, name,
			rs.status == 404 ? ": no such object" : "");
		goto out;
	}
	rc = 0;
out:
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

int gcs_compose(struct gcs *g, const char *bucket, const char *dest, const char *const *sources,
	size_t nsources, const struct gcs_put_opts *o, struct gcs_object *out, struct err *e)
{
	static const char *const hdrs[] = { "Content-Type: application/json; charset=UTF-8", NULL };
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT, body = BUF_INIT;
	const char *const *m;
	size_t i;
	int rc = -1;

	if (gcs_check_names("compose", bucket, dest, e) != 0)
		return -1;
	if (nsources < 1 || nsources > 32)
		return err_set(e, "compose into " GCS_NAME_FMT ": 1 to 32 sources are needed, not %zu",
			bucket, dest, nsources);
	if (object_url(&url, g, bucket, dest) != 0 || buf_adds(&url, "/compose") != 0 ||
			(o && o->use_generation_match &&
			 buf_printf(&url, "?ifGenerationMatch=%lld", (long long)o->if_generation_match) != 0) ||
			buf_adds(&body, "{\"sourceObjects\":[") != 0)
		goto oom;
	for (i = 0; i < nsources; i++) {
		if (!sources[i] || !*sources[i])
			return err_set(e, "compose into " GCS_NAME_FMT ": source %zu has no name", bucket, dest, i + 1);
		if ((i && buf_addc(&body, ',') != 0) || buf_adds(&body, "{\"name\":") != 0 ||
				jsj_string(&body, sources[i], strlen(sources[i])) != 0 || buf_addc(&body, '}') != 0)
			goto oom;
	}
	if (buf_adds(&body, "],\"destination\":{\"contentType\":") != 0 ||
			jsj_string(&body, gcs_ctype_of(o), strlen(gcs_ctype_of(o))) != 0)
		goto oom;
	if (o && o->metadata && o->metadata[0]) {
		if (buf_adds(&body, ",\"metadata\":{") != 0)
			goto oom;
		for (m = o->metadata; m[0] && m[1]; m += 2)
			if ((m != o->metadata && buf_addc(&body, ',') != 0) || jsj_string(&body, m[0], strlen(m[0])) != 0 ||
					buf_addc(&body, ':') != 0 || jsj_string(&body, m[1], strlen(m[1])) != 0)
				goto oom;
		if (buf_addc(&body, '}') != 0)
			goto oom;
	}
	if (buf_adds(&body, "}}") != 0)
		goto oom;
	rq.method = "POST";
	rq.url = url.p;
	rq.headers = hdrs;
	rq.body = body.p;
	rq.body_len = body.len;
	rq.retry = gcs_write_retry(o && o->use_generation_match, o && o->idempotent);
	if (gcs_call(g, &rq, &rs, e) != 0) {
		err_prefix(e, "compose into " GCS_NAME_FMT, bucket, dest);
		goto out;
	}
	if (rs.status != 200) {
		gcp_http_error(e, &rs, gauth_default_describe(), "compose into " GCS_NAME_FMT, bucket, dest);
		goto out;
	}
	rc = gcs_finish_upload(&rs, bucket, dest, NULL, out, e);
	goto out;
oom:
	GCS_OOM(e);
out:
	hc_response_free(&rs);
	buf_free(&url);
	buf_free(&body);
	return rc;
}
