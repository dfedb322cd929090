/*
 * auth_int.h: what auth.c (credentials, JWT) and auth_token.c (tokens,
 * gauth_call, metadata) share; not part of the API (see auth.h).
 */
#ifndef CCR_GCP_AUTH_INT_H
#define CCR_GCP_AUTH_INT_H

#include <pthread.h>
#include <stdint.h>

#include "gcp/auth.h"
#include "util/buf.h"

struct gauth {
	pthread_mutex_t lock;
	enum gauth_source source;
	enum gauth_kind kind;
	char describe[700];
	/* service account */
	char *email, *kid, *pem, *token_uri, *project_id;
	/* authorized user */
	char *client_id, *client_secret, *refresh_token, *quota_project;
	int token_uri_http;
	/* metadata server */
	char md_host[256];
	int md_explicit;
	/* the cached access token */
	char *token;
	uint64_t expiry_ms;          /* hc_now_ms() clock */
};

/* Wipe and free a secret string (set to NULL) / a buffer's whole capacity. */
void gauth_wipe_str(char **s);
void gauth_wipe_buf(struct buf *b);

/* GCE_METADATA_HOST, else the default host; *explicit_host says which. */
const char *gauth_metadata_host(int *explicit_host);

#endif
