/*
 * auth.h: Google credentials for ccr (Application Default Credentials),
 * access and identity tokens, and authenticated calls.
 *
 * Where credentials come from, in ADC order (gcp-api.md §3.1):
 *   1. GOOGLE_APPLICATION_CREDENTIALS: a JSON key file.  When the variable
 *      is set, a file that cannot be read or used is an error (no falling
 *      through to the next source).
 *   2. gcloud's ADC file: $CLOUDSDK_CONFIG/application_default_credentials.json,
 *      else ~/.config/gcloud/application_default_credentials.json.
 *   3. The metadata server (GCE, Cloud Run): http://$GCE_METADATA_HOST, or
 *      http://169.254.169.254 when that is unset, always with
 *      "Metadata-Flavor: Google".
 * A key file is either "service_account" (an RS256 JWT with iss, scope,
 * aud = the file's token_uri, iat backdated 30 s, exp = iat + 3600, signed
 * with the file's private_key and exchanged at token_uri) or
 * "authorized_user" (the refresh-token grant at token_uri, default
 * https://oauth2.googleapis.com/token).  token_uri may be http:// (a test
 * fake): the key file is that endpoint's override.  Discovery reads files
 * only; the network is first used when a token is needed.
 *
 * Tokens: one cached access token per struct gauth (scope cloud-platform),
 * shared by all threads under a mutex.  A token is refreshed when less
 * than 225 s of its life remain; one refresh runs at a time and the other
 * threads wait for its result.  gauth_call() adds "Authorization: Bearer"
 * to a request and, when the answer is HTTP 401, drops the token, gets a
 * new one and repeats the call once.
 *
 * Errors always name the credential source tried (e.g.
 * "GOOGLE_APPLICATION_CREDENTIALS=/k.json (service account a@p.iam...)")
 * and never contain a token, an assertion, a private key or a client
 * secret.  Secrets held in memory are wiped when replaced or freed.
 *
 * Prefix gauth_.
 */
#ifndef CCR_GCP_AUTH_H
#define CCR_GCP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "http/client.h"
#include "util/buf.h"
#include "util/err.h"

#define GAUTH_REFRESH_MARGIN_S 225
#define GAUTH_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define GAUTH_DEFAULT_METADATA_HOST "169.254.169.254"

enum gauth_source { GAUTH_SRC_ENV_FILE, GAUTH_SRC_GCLOUD_FILE, GAUTH_SRC_METADATA };
enum gauth_kind { GAUTH_SERVICE_ACCOUNT, GAUTH_AUTHORIZED_USER, GAUTH_METADATA_SERVER };

struct gauth;

/* Discover credentials (ADC order; files only, no network).  NULL with a
 * message on failure. */
struct gauth *gauth_new(struct err *e);
void gauth_free(struct gauth *g);

/* The process-wide instance every module uses: made on first use (under
 * a lock), kept for the life of the process.  A failed discovery is not
 * remembered, so a later call tries again. */
struct gauth *gauth_default(struct err *e);

/* gauth_describe() of the process-wide instance if it exists yet, else
 * NULL (never creates it). */
const char *gauth_default_describe(void);

enum gauth_source gauth_source(const struct gauth *g);
enum gauth_kind gauth_kind(const struct gauth *g);
/* "GOOGLE_APPLICATION_CREDENTIALS=PATH (service account EMAIL)" and the
 * like: what error messages name. */
const char *gauth_describe(const struct gauth *g);

/* A valid access token (refreshed if needed) into out (replacing its
 * content).  The caller should cr_wipe() it after use. */
int gauth_token(struct gauth *g, struct buf *out, struct err *e);

/* Forget the cached token if it is still `token` (after an HTTP 401). */
void gauth_invalidate(struct gauth *g, const char *token);

/*
 * Run an HTTP request with "Authorization: Bearer <token>" added (and
 * "x-goog-user-project" for user credentials with a quota project); on
 * HTTP 401 refresh once and repeat once.  g NULL: no authorization (an
 * anonymous emulator).  Returns like hc_do().
 */
int gauth_call(struct gauth *g, const struct hc_request *rq, struct hc_response *rs, struct err *e);

/* An OpenID Connect identity token for audience (metadata server:
 * instance/service-accounts/default/identity; service account: a JWT with
 * target_audience exchanged at token_uri).  Not cached. */
int gauth_id_token(struct gauth *g, const char *audience, struct buf *out, struct err *e);

/* ---- project, region, metadata server ---------------------------------- */

/* The project id: PROJECT_ID, GCS_PROJECT_ID, GOOGLE_CLOUD_PROJECT,
 * GCLOUD_PROJECT, then the key file's project_id (or quota_project_id),
 * then the metadata server's project/project-id. */
int gauth_project_id(struct buf *out, struct err *e);

/* The region: REGION, then the metadata server's instance/region (last
 * path segment) when the metadata server is the credential source or
 * GCE_METADATA_HOST is set. */
int gauth_region(struct buf *out, struct err *e);

/* GET http://<metadata host>/computeMetadata/v1/<path> into out (text,
 * surrounding whitespace trimmed). */
int gauth_metadata_get(const char *path, struct buf *out, struct err *e);

/* An access-token answer (token endpoint or metadata server): *token
 * points at its access_token (inside j), *ttl_s is expires_in (3600 when
 * absent), at most GAUTH_MAX_TTL_S so that the expiry time cannot
 * overflow.  0, or -1 with e set.  Exposed for the fuzz target. */
#define GAUTH_MAX_TTL_S 86400
int gauth_token_from_json(const cJSON *j, const char **token, int64_t *ttl_s, struct err *e);

/* ---- the service-account JWT (exposed for the selftests) --------------- */

struct gauth_jwt {
	const char *email;               /* iss */
	const char *kid;                 /* private_key_id, NULL: no "kid" */
	const char *scope;               /* access-token flow */
	const char *target_audience;     /* identity-token flow (instead of scope) */
	const char *aud;                 /* the token URI */
	int64_t iat, exp;
};

/* iat = now - 30 (clock skew), exp = iat + 3600 (Google's maximum). */
void gauth_jwt_times(struct gauth_jwt *j, int64_t now);

/* Append the signed JWT (header.claims.signature, base64url without
 * padding): header {"alg":"RS256","typ":"JWT"[,"kid"]}, claims
 * {"iss","scope"|"target_audience","aud","iat","exp"} in that order. */
int gauth_jwt_sign(const struct gauth_jwt *j, const char *pem, struct buf *out, struct err *e);

/* The two JSON texts the JWT encodes (for tests). */
int gauth_jwt_json(const struct gauth_jwt *j, struct buf *header, struct buf *claims);

#endif
