/*
 * secrets.c: Secret Manager access with a refresh-interval cache (see
 * secrets.h).
 *
 * Design: the cache is a short linked list keyed by the full version
 * name (a process reads a handful of secrets), under one mutex that is
 * released during the network call, so a slow refresh of one secret
 * never blocks readers of another; two threads refreshing the same entry
 * at once both fetch and the later result wins, which is harmless.
 * Stale values are served on refresh failure, within a bound, because a
 * hot-reloaded prompt should survive a Secret Manager blip.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "crypto/crypto.h"
#include "gcp/auth.h"
#include "gcp/common.h"
#include "gcp/secrets.h"
#include "util/b64.h"
#include "util/crc32c.h"
#include "util/clock.h"

#define STALE_FACTOR 10

struct entry {
	struct entry *next;
	char *name;
	struct buf data;
	uint64_t fetched_ms;
};

struct gsm {
	struct gcp_endpoint ep;
	char *project;
	unsigned refresh_s;
	pthread_mutex_t lock;
	struct entry *cache;
};

static void wipe_buf(struct buf *b)
{
	if (b->p)
		cr_wipe(b->p, b->cap);
	buf_free(b);
}

static int valid_id(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
				s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return 1;
}

struct gsm *gsm_new(const char *project, unsigned refresh_s, struct err *e)
{
	struct gsm *s = calloc(1, sizeof *s);

	if (!s) {
		err_set(e, "Secret Manager: out of memory");
		return NULL;
	}
	if (gcp_endpoint_get(&s->ep, "CCR_SECRETMANAGER_ENDPOINT", GSM_DEFAULT_ENDPOINT, 0, e) != 0) {
		free(s);
		return NULL;
	}
	if (project && !(s->project = strdup(project))) {
		free(s);
		err_set(e, "Secret Manager: out of memory");
		return NULL;
	}
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s->project);
		free(s);
		err_set(e, "Secret Manager: cannot make a mutex");
		return NULL;
	}
	s->refresh_s = refresh_s;
	return s;
}

void gsm_free(struct gsm *s)
{
	struct entry *en, *nx;

	if (!s)
		return;
	for (en = s->cache; en; en = nx) {
		nx = en->next;
		wipe_buf(&en->data);
		free(en->name);
		free(en);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->project);
	free(s);
}

int gsm_version_name(struct buf *out, const char *project, const char *secret, const char *version,
	struct err *e)
{
	const char *p, *v;

	if (!secret || !*secret)
		return err_set(e, "Secret Manager: no secret named");
	if (strncmp(secret, "projects/", 9) == 0) {
		/* projects/P/secrets/S[/versions/V] */
		const char *pp = secret + 9, *sl = strchr(pp, '/');
		const char *sn, *sl2;

		if (!sl || !valid_id(pp, (size_t)(sl - pp)) || strncmp(sl, "/secrets/", 9) != 0)
			goto bad;
		sn = sl + 9;
		sl2 = strchr(sn, '/');
		if (!sl2) {
			if (!valid_id(sn, strlen(sn)))
				goto bad;
			v = version ? version : "latest";
			if (!valid_id(v, strlen(v)))
				goto bad;
			return buf_printf(out, "%s/versions/%s", secret, v) == 0 ? 0 : err_set(e, "out of memory");
		}
		if (!valid_id(sn, (size_t)(sl2 - sn)) || strncmp(sl2, "/versions/", 10) != 0 ||
				!valid_id(sl2 + 10, strlen(sl2 + 10)))
			goto bad;
		if (version && strcmp(version, sl2 + 10) != 0)
			return err_set(e, "Secret Manager: \"%.200s\" already names a version other than %.40s",
				secret, version);
		return buf_adds(out, secret) == 0 ? 0 : err_set(e, "out of memory");
	}
	p = project;
	v = version ? version : "latest";
	if (!p || !valid_id(p, strlen(p)) || !valid_id(secret, strlen(secret)) || !valid_id(v, strlen(v)))
		goto bad;
	return buf_printf(out, "projects/%s/secrets/%s/versions/%s", p, secret, v) == 0 ? 0 :
		err_set(e, "out of memory");
bad:
	return err_set(e, "Secret Manager: \"%.200s\"%s%.40s is not a secret name (an id, "
		"projects/P/secrets/S or projects/P/secrets/S/versions/V)", secret,
		version ? " version " : "", version ? version : "");
}

int gsm_payload_from_json(const char *json, size_t len, struct buf *out, struct err *e)
{
	cJSON *j = cJSON_ParseWithLength(json ? json : "", len);
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(j, "payload");
	const char *data;
	size_t start = out->len;
	uint32_t want;
	int rc = -1;

	if (!cJSON_IsObject(j)) {
		err_set(e, "the answer is not JSON");
		goto out;
	}
	data = gcp_json_str(payload, "data");
	if (data && b64_decode(out, data, strlen(data)) != 0) {
		err_set(e, "payload.data is not base64");
		goto out;
	}
	if (gcp_json_crc32c(payload, "dataCrc32c", &want) == 0 && crc32c(out->p + start, out->len - start) != want) {
		cr_wipe(out->p + start, out->len - start);
		out->len = start;
		if (out->p)
			out->p[start] = 0;
		err_set(e, "the payload does not match its dataCrc32c");
		goto out;
	}
	rc = 0;
out:
	if (j) {
		cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "payload"), "data");

		if (cJSON_IsString(d))
			cr_wipe(d->valuestring, strlen(d->valuestring));
		cJSON_Delete(j);
	}
	return rc;
}

/* versions.access: the payload into out. */
static int fetch(struct gsm *s, const char *name, struct buf *out, struct err *e)
{
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT;
	struct gauth *a = gauth_default(e);
	int rc = -1;

	if (!a)
		return err_prefix(e, "Secret Manager %.200s", name);
	if (buf_printf(&url, "%s/v1/%s:access", s->ep.base, name) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	rq.method = "GET";
	rq.url = url.p;
	rq.retry = HC_RETRY_IDEMPOTENT;
	rq.allow_http = s->ep.allow_http;
	rq.timeout_ms = 30000;
	rq.max_response = 1 << 20;
	if (gauth_call(a, &rq, &rs, e) != 0) {
		err_prefix(e, "Secret Manager %.200s", name);
		goto out;
	}
	if (rs.status != 200) {
		gcp_http_error(e, &rs, gauth_default_describe(), "Secret Manager %.200s", name);
		goto out;
	}
	buf_reset(out);
	if (gsm_payload_from_json(rs.body.p, rs.body.len, out, e) != 0) {
		err_prefix(e, "Secret Manager %.200s", name);
		goto out;
	}
	rc = 0;
out:
	if (rs.body.p)
		cr_wipe(rs.body.p, rs.body.cap);
	hc_response_free(&rs);
	buf_free(&url);
	return rc;
}

/* The project of relative secret names: the credentials' project, looked
 * up once. */
static int ensure_project(struct gsm *s, struct err *e)
{
	struct buf project = BUF_INIT;
	int rc = 0;

	if (gauth_project_id(&project, e) != 0)
		return err_prefix(e, "Secret Manager");
	pthread_mutex_lock(&s->lock);
	if (!s->project)
		s->project = strdup(project.p);
	pthread_mutex_unlock(&s->lock);
	if (!s->project)
		rc = err_set(e, "out of memory");
	buf_free(&project);
	return rc;
}

/* The cache entry for name (s->lock held), or NULL. */
static struct entry *find(struct gsm *s, const char *name)
{
	struct entry *en;

	for (en = s->cache; en; en = en->next)
		if (strcmp(en->name, name) == 0)
			break;
	return en;
}

/* The cached value of name when fetched less than max_age ms ago, into
 * out: 0, -1 out of memory, or 1 when there is none. */
static int cached(struct gsm *s, const char *name, uint64_t now, uint64_t max_age, struct buf *out,
		  struct err *e)
{
	struct entry *en;
	int rc = 1;

	pthread_mutex_lock(&s->lock);
	en = find(s, name);
	if (en && now - en->fetched_ms < max_age)
		rc = buf_add(out, en->data.p ? en->data.p : "", en->data.len) == 0 ? 0 : err_set(e, "out of memory");
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Keep a fetched value (taken from fresh) for the next callers. */
static void remember(struct gsm *s, const char *name, struct buf *fresh, uint64_t now)
{
	struct entry *en;

	pthread_mutex_lock(&s->lock);
	en = find(s, name);
	if (!en && (en = calloc(1, sizeof *en)) != NULL) {
		if (!(en->name = strdup(name))) {
			free(en);
			en = NULL;
		} else {
			en->next = s->cache;
			s->cache = en;
		}
	}
	if (en) {
		wipe_buf(&en->data);
		en->data = *fresh;
		memset(fresh, 0, sizeof *fresh);
		en->fetched_ms = now;
	}
	pthread_mutex_unlock(&s->lock);
}

int gsm_access(struct gsm *s, const char *secret, const char *version, struct buf *out, struct err *e)
{
	struct buf name = BUF_INIT, fresh = BUF_INIT;
	uint64_t now = (uint64_t)clock_mono_ms(), life = (uint64_t)s->refresh_s * 1000u;
	int rc = -1, r;

	if (!s->project && strncmp(secret ? secret : "", "projects/", 9) != 0 && ensure_project(s, e) != 0)
		goto out;
	if (gsm_version_name(&name, s->project, secret, version, e) != 0)
		goto out;
	if (life && (r = cached(s, name.p, now, life, out, e)) != 1) {
		rc = r;
		goto out;
	}
	if (fetch(s, name.p, &fresh, e) != 0) {
		/* Serve a stale value for a while rather than fail. */
		if (life && (r = cached(s, name.p, now, life * STALE_FACTOR, out, e)) != 1)
			rc = r;
		goto out;
	}
	if (buf_add(out, fresh.p ? fresh.p : "", fresh.len) != 0) {
		err_set(e, "out of memory");
		goto out;
	}
	rc = 0;
	if (life)
		remember(s, name.p, &fresh, now);
out:
	wipe_buf(&fresh);
	buf_free(&name);
	return rc;
}
