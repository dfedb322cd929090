/*
 * secrets.h: Secret Manager versions.access with a small cache
 * (gcp-api.md §7).
 *
 * Endpoint: https://secretmanager.googleapis.com, or
 * CCR_SECRETMANAGER_ENDPOINT (which may be http://, for a fake).
 *
 * A secret is named by its short id (in the client's project), by
 * projects/P/secrets/S, or by projects/P/secrets/S/versions/V; the
 * version argument (NULL: "latest", or the one in the name) picks the
 * version.  The payload's dataCrc32c, when present, must match the data.
 *
 * Cache: each (secret, version) read is kept for refresh_s seconds, so a
 * value changed in Secret Manager (a new "latest") is seen within that
 * time: the hot-reloadable system prompts of the seed.  When a refresh
 * fails, the previous value keeps being served (and the failure is not
 * reported) until it is older than 10 x refresh_s; refresh_s 0 disables
 * the cache.  All calls are thread-safe; reads are retried on transient
 * failures.  Payloads are wiped from memory when dropped.
 *
 * Prefix gsm_.
 */
#ifndef CCR_GCP_SECRETS_H
#define CCR_GCP_SECRETS_H

#include "util/buf.h"
#include "util/err.h"

#define GSM_DEFAULT_ENDPOINT "https://secretmanager.googleapis.com"

struct gsm;

/* project NULL: the ADC project, looked up on first use. */
struct gsm *gsm_new(const char *project, unsigned refresh_s, struct err *e);
void gsm_free(struct gsm *s);

/* The payload of the secret (see above) appended to out. */
int gsm_access(struct gsm *s, const char *secret, const char *version, struct buf *out, struct err *e);

/* The versions.access path of a secret reference, e.g.
 * "projects/p/secrets/s/versions/latest" (for the selftests). */
int gsm_version_name(struct buf *out, const char *project, const char *secret, const char *version,
	struct err *e);

/* A versions.access answer: payload.data base64-decoded, appended to out,
 * checked against payload.dataCrc32c when present.  0, or -1 with the
 * failed check in e (out as it was).  The answer's copy of the secret is
 * wiped.  Exposed for the fuzz target of Google's answers. */
int gsm_payload_from_json(const char *json, size_t len, struct buf *out, struct err *e);

#endif
