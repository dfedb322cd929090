/*
 * storage_gcs.c: the object-store seam over a Cloud Storage bucket.
 *
 * Key "a/b" is the object gs://<bucket>/a/b.  Puts are simple media
 * uploads, multipart when there is custom metadata, resumable above
 * 8 MiB (gcs_put decides).  Every put is marked idempotent, and so
 * retried on transient failures: ccr's layout has one writer per key
 * (a task's job, or the API for the task's first documents), so writing
 * the same bytes twice leaves the same object.  if_absent becomes
 * ifGenerationMatch=0, so the store refuses with HTTP 412 when the
 * object exists (gcs_put tells a retried create whose first answer was
 * lost from a real conflict).  list() uses startOffset (inclusive) and drops the key
 * equal to start_after itself; GCS returns names in byte order, which is
 * the order the seam promises.  del() treats 404 as done.  The client
 * (struct gcs) is immutable, so every call is thread-safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/storage.h"
#include "gcp/gcs.h"

struct storage_gcs {
	struct storage base;
	struct gcs *g;
	char bucket[256];
};

static int key_ok(const char *key, struct err *e)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > 1024 || strpbrk(key, "\r\n"))
		return err_set(e, "storage: invalid key \"%.100s\"", key ? key : "");
	return 0;
}

static int g_put(struct storage *s, const char *key, const void *data, size_t len,
	const struct storage_put_opts *opts, struct err *e)
{
	struct storage_gcs *sg = (struct storage_gcs *)s;
	struct gcs_put_opts o;

	if (key_ok(key, e) != 0)
		return -1;
	memset(&o, 0, sizeof o);
	o.content_type = opts ? opts->content_type : NULL;
	o.metadata = opts ? opts->metadata : NULL;
	o.idempotent = 1;
	if (opts && opts->if_absent) {
		o.use_generation_match = 1;
		o.if_generation_match = 0;
	}
	return gcs_put(sg->g, sg->bucket, key, data, len, &o, NULL, e);
}

static int g_get(struct storage *s, const char *key, uint64_t offset, struct buf *out, struct err *e)
{
	struct storage_gcs *sg = (struct storage_gcs *)s;

	if (key_ok(key, e) != 0)
		return -1;
	return gcs_get(sg->g, sg->bucket, key, offset, out, e);
}

static int g_list(struct storage *s, const char *prefix, const char *start_after,
	struct storage_list *out, struct err *e)
{
	struct storage_gcs *sg = (struct storage_gcs *)s;
	struct gcs_list_opts lo;
	struct gcs_listing l;
	size_t i, k = 0;

	memset(out, 0, sizeof *out);
	memset(&lo, 0, sizeof lo);
	lo.prefix = prefix;
	lo.start_offset = start_after;
	if (gcs_list(sg->g, sg->bucket, &lo, &l, e) != 0)
		return -1;
	out->items = calloc(l.n ? l.n : 1, sizeof *out->items);
	if (!out->items) {
		gcs_listing_free(&l);
		return err_set(e, "storage: out of memory");
	}
	for (i = 0; i < l.n; i++) {
		if (start_after && strcmp(l.items[i].name, start_after) <= 0)
			continue;
		out->items[k].key = l.items[i].name;    /* taken over */
		out->items[k].size = l.items[i].size;
		l.items[i].name = NULL;
		k++;
	}
	out->n = k;
	gcs_listing_free(&l);
	return 0;
}

static int g_del(struct storage *s, const char *key, struct err *e)
{
	struct storage_gcs *sg = (struct storage_gcs *)s;
	struct gcs_del_opts o = { 0, 0, 1 };
	struct err e2 = ERR_INIT;

	if (key_ok(key, e) != 0)
		return -1;
	if (gcs_delete(sg->g, sg->bucket, key, &o, &e2) == 0 || e2.http == 404)
		return 0;
	*e = e2;
	return -1;
}

static int g_url(struct storage *s, const char *key, struct buf *out)
{
	struct storage_gcs *sg = (struct storage_gcs *)s;

	return buf_printf(out, "gs://%s/%s", sg->bucket, key);
}

static void g_free(struct storage *s)
{
	struct storage_gcs *sg = (struct storage_gcs *)s;

	if (!sg)
		return;
	gcs_free(sg->g);
	free(sg);
}

static const struct storage_ops gcs_ops = {
	.name = "gcs", .put = g_put, .get = g_get, .list = g_list, .del = g_del,
	.watch = NULL, .unwatch = NULL, .url = g_url, .free = g_free,
};

struct storage *storage_gcs_new(const char *bucket, struct err *e)
{
	struct storage_gcs *sg;

	if (!bucket || !*bucket || strlen(bucket) >= sizeof sg->bucket || strchr(bucket, '/')) {
		err_set(e, "storage: \"%.100s\" is not a bucket name", bucket ? bucket : "");
		return NULL;
	}
	sg = calloc(1, sizeof *sg);
	if (!sg) {
		err_set(e, "storage: out of memory");
		return NULL;
	}
	sg->g = gcs_new(e);
	if (!sg->g) {
		free(sg);
		return NULL;
	}
	snprintf(sg->bucket, sizeof sg->bucket, "%s", bucket);
	sg->base.ops = &gcs_ops;
	return &sg->base;
}
