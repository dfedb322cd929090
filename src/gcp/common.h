/*
 * common.h: what every Google Cloud module of ccr shares: endpoints and
 * their overrides, percent-encoding, error bodies and proto3-JSON fields.
 *
 * Endpoints.  Each service has a default https:// base URL and one
 * environment variable that replaces it (STORAGE_EMULATOR_HOST,
 * CCR_KMS_ENDPOINT, CCR_RUN_ENDPOINT, CCR_SECRETMANAGER_ENDPOINT).  Only
 * an override may be http:// (an emulator or a test fake); the defaults
 * are always https.  An override holds a scheme and a host, optionally a
 * port and a path prefix; a trailing '/' is dropped.  A value without a
 * scheme is accepted only where Google's convention allows it
 * (STORAGE_EMULATOR_HOST=host:port means http://host:port).
 *
 * Errors.  gcp_http_error() turns a non-2xx answer into one line: what
 * was attempted, the HTTP status, and the service's own message from
 * either error shape (AIP {"error":{"code","status","message"}}, GCS
 * {"error":{"errors":[{"reason"}],"message"}}, OAuth {"error",
 * "error_description"}) or the first line of a text body, with control
 * characters removed and the length bounded.  e->http gets the status.
 * A 401 or 403 also names the credentials in use, which the caller
 * passes (gauth_default_describe(), gcp/auth.h): common.c knows nothing
 * of auth.c, which builds on it.
 *
 * Prefix gcp_.
 */
#ifndef CCR_GCP_COMMON_H
#define CCR_GCP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "cJSON.h"
#include "http/client.h"
#include "util/buf.h"
#include "util/err.h"

#define GCP_SCOPE "https://www.googleapis.com/auth/cloud-platform"

struct gcp_endpoint {
	char base[512];        /* scheme://host[:port][/prefix], no trailing '/' */
	int allow_http;        /* the base came from an override and is http:// */
	int overridden;        /* the base came from the environment */
};

/*
 * Resolve a service's base URL: the value of env when set and non-empty,
 * else dflt (which must be https://).  bare_host_means_http accepts a
 * value without a scheme as http://value.  Returns 0, or -1 with a message
 * naming the variable.
 */
int gcp_endpoint_get(struct gcp_endpoint *ep, const char *env, const char *dflt,
	int bare_host_means_http, struct err *e);

/* The setting name (settings.h, read at start-up) when set and non-empty, else NULL. */
const char *gcp_setting(const char *name);

/*
 * Append n bytes of s percent-encoded: every byte except the RFC 3986
 * unreserved set (A-Z a-z 0-9 - . _ ~) becomes %XX (upper-case hex).
 * Right for a GCS object name as one path segment ('/' -> %2F) and for
 * any query-string value.  0, or -1 when memory runs out.
 */
int gcp_pct_encode(struct buf *out, const char *s, size_t n);
int gcp_pct_encodes(struct buf *out, const char *s);

/* Fill e from a failed answer: "<what>: HTTP <status> [<STATUS>|<reason>]:
 * <message>" with e->http = status; a 401 or 403 adds " (credentials:
 * <creds>)" unless creds is NULL.  Returns -1. */
int gcp_http_error(struct err *e, const struct hc_response *rs, const char *creds, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The service's message from an error body, sanitised, into dst. */
void gcp_error_text(const struct hc_response *rs, char *dst, size_t dstlen);

/* Parse a response body as JSON (NULL when it is not JSON). */
cJSON *gcp_json_parse(const struct buf *b);

/* A string member, or NULL. */
const char *gcp_json_str(const cJSON *obj, const char *key);

/* An int64 member in either proto3 form (a JSON string of decimal digits,
 * or a number).  0 when present and valid, -1 otherwise. */
int gcp_json_i64(const cJSON *obj, const char *key, int64_t *out);

/* A CRC32C member (int64 form, 0 .. 2^32-1).  0, or -1 when absent or
 * out of range. */
int gcp_json_crc32c(const cJSON *obj, const char *key, uint32_t *out);

/* Append a CRC32C the way proto3 JSON carries int64: "\"<decimal>\"". */
int gcp_crc32c_field(struct buf *out, uint32_t crc);

/* strdup that records failure: returns NULL only when s is non-NULL and
 * memory ran out. */
char *gcp_strdup(const char *s);

#endif
