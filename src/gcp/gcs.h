/*
 * gcs.h: Google Cloud Storage over the JSON API (gcp-api.md §4).
 *
 * A struct gcs is a client: the endpoint and how to authenticate.  It is
 * immutable once made, so one client serves any number of threads.
 *
 * Endpoint: https://storage.googleapis.com, or STORAGE_EMULATOR_HOST
 * (Google's convention: "host:port" means http://host:port; a scheme may
 * be given).  Every GCS call (metadata, uploads, downloads) goes to that
 * base.  With an emulator ccr sends no Authorization header, as Google's
 * clients do, unless GOOGLE_APPLICATION_CREDENTIALS is set: explicitly
 * given credentials are used even against an emulator.
 *
 * Object names are percent-encoded as one path segment (everything but
 * A-Z a-z 0-9 - . _ ~, so '/' is %2F) and query values the same way.
 *
 * Retries (through the HTTP client's backoff): reads, lists and
 * status queries always; writes and deletes only when made safe by
 * ifGenerationMatch or marked `idempotent` by the caller (who knows that
 * repeating the write is harmless, e.g. one writer per object).  A
 * resumable upload resumes after any transient failure by asking the
 * session how much it holds (an empty PUT whose Content-Range is "bytes",
 * a star and "/N") and sending the rest from there, so nothing is
 * appended twice.
 *
 * Integrity: uploads send the data's CRC32C (multipart metadata
 * "crc32c", resumable final chunk "x-goog-hash") and every upload checks
 * the crc32c of the stored object against the data sent.  Whole-object
 * downloads check x-goog-hash crc32c when the server gives one.
 *
 * Errors: -1 with a message naming gs://bucket/name; e->http carries the
 * status, so 404 (no such object) and 412 (a precondition such as
 * ifGenerationMatch=0 failed) can be told apart.
 *
 * Prefix gcs_.
 */
#ifndef CCR_GCP_GCS_H
#define CCR_GCP_GCS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define GCS_DEFAULT_ENDPOINT "https://storage.googleapis.com"
#define GCS_RESUMABLE_UNIT ((size_t)262144)          /* 256 KiB */
#define GCS_DEFAULT_CHUNK ((size_t)8 << 20)           /* 8 MiB */
#define GCS_RESUMABLE_THRESHOLD ((size_t)8 << 20)     /* gcs_put goes resumable above this */

struct gcs;

/* The client for this process's environment.  NULL with a message when
 * STORAGE_EMULATOR_HOST is malformed or the credentials cannot be found
 * (the token itself is fetched on first use). */
struct gcs *gcs_new(struct err *e);
void gcs_free(struct gcs *g);
/* The base URL in use (for messages). */
const char *gcs_endpoint(const struct gcs *g);

/* An object's resource, as far as ccr uses it. */
struct gcs_object {
	char *bucket;
	char *name;
	char *content_type;
	char *crc32c;                  /* base64 of the big-endian CRC32C */
	char *md5;                     /* base64, absent for composite objects */
	char *updated;                 /* RFC 3339 */
	char **metadata;               /* "k1","v1",...,NULL, or NULL */
	uint64_t size;
	int64_t generation;
	int64_t metageneration;
	int component_count;
};

void gcs_object_free(struct gcs_object *o);

struct gcs_put_opts {
	const char *content_type;          /* NULL: application/octet-stream */
	const char *const *metadata;       /* NULL or "k1","v1",...,NULL: custom metadata */
	int use_generation_match;          /* send ifGenerationMatch=if_generation_match */
	int64_t if_generation_match;       /* 0: only if the object does not exist */
	int idempotent;                    /* retry even without a precondition */
	int resumable;                     /* gcs_put: use the resumable protocol */
	size_t chunk_size;                 /* resumable chunks; 0: 8 MiB; rounded up
	                                    * to a multiple of 256 KiB */
};

/* Upload n bytes: resumable when o->resumable or n > 8 MiB, multipart when
 * there is custom metadata, else a simple media upload.  out (NULL: not
 * wanted) receives the stored object.  A create (ifGenerationMatch=0)
 * that had to be sent again and was then refused with 412 succeeded when
 * the object now holds exactly these bytes: its first answer was lost. */
int gcs_put(struct gcs *g, const char *bucket, const char *name, const void *data, size_t n,
	const struct gcs_put_opts *o, struct gcs_object *out, struct err *e);

/* The three upload protocols, for callers that want one explicitly. */
int gcs_put_media(struct gcs *g, const char *bucket, const char *name, const void *data, size_t n,
	const struct gcs_put_opts *o, struct gcs_object *out, struct err *e);
int gcs_put_multipart(struct gcs *g, const char *bucket, const char *name, const void *data,
	size_t n, const struct gcs_put_opts *o, struct gcs_object *out, struct err *e);

/* A data source for resumable uploads: read up to n bytes into dst, set
 * *got (0 = end of data); return 0, or -1 on a read error (with errno). */
typedef int (*gcs_read_fn)(void *arg, void *dst, size_t n, size_t *got);

/* Resumable upload of `total` bytes (-1: unknown until the source ends)
 * read from rd.  Each byte is read once; at most one chunk is held. */
int gcs_put_resumable(struct gcs *g, const char *bucket, const char *name, gcs_read_fn rd,
	void *arg, int64_t total, const struct gcs_put_opts *o, struct gcs_object *out, struct err *e);

/* Download from byte `offset` to the end into out (appended).  An offset
 * at or past the end gives no bytes, not an error. */
int gcs_get(struct gcs *g, const char *bucket, const char *name, uint64_t offset,
	struct buf *out, struct err *e);

/* objects.get: the object's metadata. */
int gcs_stat(struct gcs *g, const char *bucket, const char *name, struct gcs_object *out,
	struct err *e);

struct gcs_list_opts {
	const char *prefix;                /* NULL: all */
	const char *delimiter;             /* NULL: none; "/" gives directory-like prefixes */
	const char *start_offset;          /* NULL: from the start; names >= this */
	unsigned page_size;                /* 0: the server's default (1000) */
	size_t limit;                      /* 0: all; stop after this many items */
};

struct gcs_listing {
	struct gcs_object *items;
	size_t n;
	char **prefixes;
	size_t nprefixes;
	unsigned pages;
	size_t cap_items, cap_prefixes;    /* allocated lengths */
};

/* objects.list, following nextPageToken until the end. */
int gcs_list(struct gcs *g, const char *bucket, const struct gcs_list_opts *o,
	struct gcs_listing *out, struct err *e);
void gcs_listing_free(struct gcs_listing *l);

/* Add one objects.list answer page to out (zeroed before the first page):
 * its items (at most limit in all, 0: no limit) and prefixes; *next_token
 * receives a copy of its nextPageToken, or NULL when it is the last page
 * (or the limit is reached).  0, or -1 with e set (out keeps what it had,
 * and must still be freed).  Exposed for the fuzz target of Google's
 * answers. */
int gcs_list_page(struct gcs_listing *out, const char *json, size_t n, size_t limit, char **next_token,
	struct err *e);

struct gcs_del_opts {
	int use_generation_match;
	int64_t if_generation_match;
	int idempotent;                    /* retry without a precondition */
};

/* objects.delete.  A missing object fails with e->http = 404. */
int gcs_delete(struct gcs *g, const char *bucket, const char *name, const struct gcs_del_opts *o,
	struct err *e);

/* objects.compose: concatenate 1..32 source objects of the bucket into
 * dest (content_type and the generation precondition from o). */
int gcs_compose(struct gcs *g, const char *bucket, const char *dest, const char *const *sources,
	size_t nsources, const struct gcs_put_opts *o, struct gcs_object *out, struct err *e);

/* Helpers (exposed for the selftests). */
/* The path of an object: /storage/v1/b/<bucket>/o/<name>, encoded. */
int gcs_object_path(struct buf *out, const char *bucket, const char *name);
/* Parse a "Range: bytes=0-N" header of a 308 answer: the next offset
 * (N + 1), 0 when absent; -1 when malformed. */
int64_t gcs_range_next(const char *range);
/* The base64 crc32c field of n bytes. */
void gcs_crc32c_b64(const void *data, size_t n, char dst[9]);
/* Parse an object resource. */
int gcs_object_from_json(const void *json, size_t n, struct gcs_object *out);

#endif
