/*
 * gcs_int.h: what gcs.c (client, objects, reads, list, delete, compose)
 * and gcs_upload.c (uploads) share; not part of the API (see gcs.h).
 */
#ifndef CCR_GCP_GCS_INT_H
#define CCR_GCP_GCS_INT_H

#include <stdint.h>

#include "gcp/common.h"
#include "gcp/gcs.h"
#include "http/client.h"

struct gcs {
	struct gcp_endpoint ep;
	int anonymous;
};

#define GCS_NAME_FMT "gs://%.120s/%.200s"
#define GCS_OOM(e) err_set(e, "Cloud Storage: out of memory")

/* One request through gauth_call (anonymous in emulator mode). */
int gcs_call(struct gcs *g, struct hc_request *rq, struct hc_response *rs, struct err *e);

/* The retry class of a write: idempotent with a precondition or when the
 * caller vouches for it, else only what never reached the server. */
enum hc_retry gcs_write_retry(int precondition, int idempotent);

/* "<what>: no bucket given" / "the object name is empty" (name NULL: not
 * checked).  0 or -1. */
int gcs_check_names(const char *what, const char *bucket, const char *name, struct err *e);

/* Parse the answer of an upload into out (if wanted) and check its crc32c
 * against want_crc (may be NULL).  0 or -1. */
int gcs_finish_upload(const struct hc_response *rs, const char *bucket, const char *name,
	const char *want_crc, struct gcs_object *out, struct err *e);

/* A CRC32C as GCS writes it: base64 of the 4 big-endian bytes. */
void gcs_crc_b64(uint32_t c, char dst[9]);

/* The content type of an upload: the option, else application/octet-stream. */
const char *gcs_ctype_of(const struct gcs_put_opts *o);

#endif
