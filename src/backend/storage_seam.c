/*
 * storage_seam.c: the storage seam's calls (storage.h).  Each forwards to
 * the backend's operation table, as curl's vtls.c forwards to the TLS
 * backend: callers name the operation, never the table, so a new
 * operation or a check common to every backend has one place to go.
 */
#include <stdlib.h>

#include "backend/storage.h"

int storage_put(struct storage *s, const char *key, const void *data, size_t len,
		const struct storage_put_opts *opts, struct err *e)
{
	return s->ops->put(s, key, data, len, opts, e);
}

int storage_get(struct storage *s, const char *key, uint64_t offset, struct buf *out, struct err *e)
{
	return s->ops->get(s, key, offset, out, e);
}

int storage_list(struct storage *s, const char *prefix, const char *start_after, struct storage_list *out,
		 struct err *e)
{
	return s->ops->list(s, prefix, start_after, out, e);
}

int storage_delete(struct storage *s, const char *key, struct err *e)
{
	return s->ops->del(s, key, e);
}

int storage_can_watch(const struct storage *s)
{
	return s->ops->watch != NULL;
}

int storage_watch(struct storage *s, const char *prefix)
{
	return storage_can_watch(s) ? s->ops->watch(s, prefix) : -1;
}

int storage_watch_keys(struct storage *s, int fd, char ***keys, size_t *n)
{
	*keys = NULL;
	*n = 0;
	if (fd < 0)
		return -1;
	return s->ops->watch_keys ? s->ops->watch_keys(s, fd, keys, n) : 1;
}

void storage_keys_free(char **keys, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

void storage_unwatch(struct storage *s, int fd)
{
	if (fd >= 0 && s->ops->unwatch)
		s->ops->unwatch(s, fd);
}

int storage_url(struct storage *s, const char *key, struct buf *out)
{
	return s->ops->url(s, key, out);
}

void storage_free(struct storage *s)
{
	if (s)
		s->ops->free(s);
}
