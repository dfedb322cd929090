/*
 * dp_oci.h: an OCI image layout directory read and checked (dp_oci.c),
 * and the OCI distribution push of one (dp_push.c).
 *
 * Prefix dp_ (the deploy module).
 */
#ifndef CCR_DEPLOY_DP_OCI_H
#define CCR_DEPLOY_DP_OCI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cJSON.h"
#include "util/buf.h"
#include "util/err.h"

#define DP_MAX_BLOBS 128

struct dp_blob {
	char digest[80];          /* sha256:<64 hex> */
	char media[128];
	int64_t size;
};

struct dp_image {
	char dir[1024];
	struct buf manifest;      /* the manifest's bytes, verbatim */
	char manifest_digest[80];
	char manifest_media[128];
	struct dp_blob blobs[DP_MAX_BLOBS];   /* [0] the config, then the layers */
	int n_blobs;
};

/* Read dir's index.json (one image manifest), the manifest, and check
 * every blob against its digest and size.  0, or -1 naming the file. */
int dp_oci_load(const char *dir, struct dp_image *img, struct err *e);
void dp_oci_free(struct dp_image *img);
/* dir/blobs/sha256/<hex>; -1 when it does not fit. */
int dp_oci_blob_path(const struct dp_image *img, const char *digest, char *out, size_t n);
/* A whole file (at most max bytes) appended to out. */
int dp_oci_read_file(const char *path, size_t max, struct buf *out, struct err *e);
/* "sha256:<hex>" and the size of a file. */
int dp_oci_sha256_file(const char *path, char digest[80], int64_t *size, struct err *e);

/* Where and how to push (dp_push.c). */
struct dp_registry {
	char host[300];           /* host[:port], HTTPS */
	const char *user;         /* basic credentials; NULL: oauth2accesstoken + access token */
	const char *password;
	char bearer[4096];        /* a token from the registry's token service, once had */
	char bearer_repo[600];    /* the repository it is for */
	int use_basic;            /* the registry asked for basic credentials */
};

/* Push img as repo:tag (repo: "project/repository/name").  Prints what
 * it did to out; counts blobs sent and skipped. */
int dp_push(struct dp_registry *r, const char *repo, const char *tag, const struct dp_image *img,
	FILE *out, struct err *e);

/* The digest the registry's tag names now ("" when the tag is absent). */
int dp_tag_digest(struct dp_registry *r, const char *repo, const char *tag, char *digest, size_t n,
	struct err *e);

/* The parameters of a WWW-Authenticate challenge: scheme into scheme
 * ("Basic"/"Bearer"), realm/service/scope (empty when absent).  0, or -1
 * when it cannot be parsed.  Exposed for the selftests. */
int dp_parse_challenge(const char *h, char *scheme, size_t sn, char *realm, size_t rn, char *service,
	size_t svn, char *scope, size_t scn);

#endif
