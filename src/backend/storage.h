/*
 * storage.h: the object-store seam.  Two backends: a local directory
 * (storage_local.c, the laptop default under CCR_DATA_DIR) and a Google
 * Cloud Storage bucket (storage_gcs.c, when GCS_LOGS_BUCKET is set).
 *
 * Code above this seam (serve, job) sees only keys such as
 * "sessions/<id>/metadata.json" and never knows which backend it has.
 * Both backends hold the same object layout, so a local data directory
 * and a bucket can be compared byte for byte.  Every call is safe to use
 * from several threads at once.  Failures return -1 and fill `e`; a
 * missing object sets e->http = 404 so callers can tell it apart.
 */
#ifndef CCR_STORAGE_H
#define CCR_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct storage;

/* Optional attributes of a stored object. */
struct storage_put_opts {
	const char *content_type;          /* NULL: application/octet-stream */
	const char *const *metadata;       /* NULL or "k1","v1","k2","v2",...,NULL */
	int if_absent;                     /* create only; exists -> e->http = 412 */
};

struct storage_entry {
	char *key;
	uint64_t size;
};

struct storage_list {
	struct storage_entry *items;
	size_t n;
};

struct storage_ops {
	const char *name;                  /* "local" or "gcs" */
	int (*put)(struct storage *s, const char *key, const void *data, size_t len,
		   const struct storage_put_opts *opts, struct err *e);
	/* get from byte `offset` to the end (0 = whole object) into out. */
	int (*get)(struct storage *s, const char *key, uint64_t offset, struct buf *out, struct err *e);
	/* Keys under prefix that sort after start_after (NULL: all), sorted. */
	int (*list)(struct storage *s, const char *prefix, const char *start_after,
		    struct storage_list *out, struct err *e);
	/* Delete; a missing object is not an error. */
	int (*del)(struct storage *s, const char *key, struct err *e);
	/* Watch a directory-like prefix (ending in '/') for new objects: a
	 * file descriptor that becomes readable on a change (read it to drain;
	 * give it back with unwatch), or -1 when the backend cannot watch (or
	 * the system's limit is reached); callers then poll.  NULL: never. */
	int (*watch)(struct storage *s, const char *prefix);
	/* The keys of the objects that appeared under a watched prefix since
	 * the last call (oldest first), re-arming fd: 0 with *keys (*n may be
	 * 0; free with storage_keys_free), 1 when they are not known (too
	 * many, or the watch lost events: list the prefix instead), -1 on a
	 * bad fd.  NULL: the backend cannot say (list). */
	int (*watch_keys)(struct storage *s, int fd, char ***keys, size_t *n);
	/* Release a descriptor watch() returned (it is closed). */
	void (*unwatch)(struct storage *s, int fd);
	/* The user-facing location of key: gs://bucket/key, or a file path. */
	int (*url)(struct storage *s, const char *key, struct buf *out);
	void (*free)(struct storage *s);
};

struct storage {
	const struct storage_ops *ops;
};

void storage_list_free(struct storage_list *l);

/* The calls code above the seam makes (storage_seam.c): each forwards to
 * the backend's operation, so no caller reaches through `ops`.  The
 * optional watch is asked with storage_can_watch(); storage_watch()
 * answers -1 (poll instead) when the backend cannot watch. */
int storage_put(struct storage *s, const char *key, const void *data, size_t len,
		const struct storage_put_opts *opts, struct err *e);
int storage_get(struct storage *s, const char *key, uint64_t offset, struct buf *out, struct err *e);
int storage_list(struct storage *s, const char *prefix, const char *start_after, struct storage_list *out,
		 struct err *e);
int storage_delete(struct storage *s, const char *key, struct err *e);
int storage_can_watch(const struct storage *s);
int storage_watch(struct storage *s, const char *prefix);
/* storage_watch_keys: watch_keys above; 1 (list) when the backend has
 * none.  storage_keys_free releases what it returned. */
int storage_watch_keys(struct storage *s, int fd, char ***keys, size_t *n);
void storage_keys_free(char **keys, size_t n);
void storage_unwatch(struct storage *s, int fd);
int storage_url(struct storage *s, const char *key, struct buf *out);
/* storage_free: release the backend (NULL is ignored). */
void storage_free(struct storage *s);

/* storage_key_valid: 1 when key is a safe object name (relative, no "."
 * or ".." or empty segments, no ".tmp-" names, at most 1024 bytes). */
int storage_key_valid(const char *key);

/* The two backends' constructors. */
struct storage *storage_local_new(const char *root, struct err *e);
struct storage *storage_gcs_new(const char *bucket, struct err *e);

#endif
