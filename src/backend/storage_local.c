/*
 * storage_local.c: the local object-store backend: a directory tree.
 *
 * Key "a/b/c" is the file <root>/a/b/c.  Writes go to a temporary file
 * in the same directory, are fsync'd, then renamed into place, so a reader
 * sees the old object or the new one, never half of one, and a crash loses
 * nothing that was acknowledged.  if_absent uses link(2), which fails when
 * the name exists: create-only is atomic too.  Keys are checked before use:
 * no absolute paths, no "." or ".." segments, no empty segments, no NUL,
 * no names starting with ".tmp-" (the temporaries), so nothing escapes the
 * root.  Custom metadata and content types are not kept locally.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/dirwatch.h"
#include "backend/storage.h"
#include "util/fdio.h"

struct storage_local {
	struct storage base;
	char root[PATH_MAX];
	struct dirwatch *dw;         /* the waits of watch(), created with it */
};

#define TMP_PREFIX ".tmp-"

int storage_key_valid(const char *key)
{
	const char *seg = key;

	if (!key || !*key || *key == '/' || strlen(key) > 1024)
		return 0;
	for (;;) {
		const char *end = strchr(seg, '/');
		size_t n = end ? (size_t)(end - seg) : strlen(seg);

		if (n == 0 && end)
			return 0;
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return 0;
		if (n >= sizeof(TMP_PREFIX) - 1 && strncmp(seg, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0)
			return 0;
		if (!end)
			return 1;
		seg = end + 1;
	}
}

static int path_of(struct storage_local *l, const char *key, char *out, size_t n, struct err *e)
{
	if (!storage_key_valid(key))
		return err_http(e, 400, "invalid object name '%s'", key ? key : "(null)");
	if ((size_t)snprintf(out, n, "%s/%s", l->root, key) >= n)
		return err_http(e, 400, "object name too long: %s", key);
	return 0;
}

/* mkdir -p of the directory part of path. */
static int make_parents(char *path, struct err *e)
{
	char *p;

	for (p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = 0;
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			err_set(e, "cannot create directory %s: %s", path, strerror(errno));
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	return 0;
}

static int write_file(int fd, const void *data, size_t len)
{
	return fd_write_all(fd, data, len) != 0 ? -1 : fsync(fd);
}

static int local_put(struct storage *s, const char *key, const void *data, size_t len,
		     const struct storage_put_opts *opts, struct err *e)
{
	struct storage_local *l = (struct storage_local *)s;
	char path[PATH_MAX + 64], tmp[PATH_MAX + 96];
	char *slash;
	int fd, rc;

	if (path_of(l, key, path, sizeof(path), e) != 0 || make_parents(path, e) != 0)
		return -1;
	slash = strrchr(path, '/');
	snprintf(tmp, sizeof(tmp), "%.*s/" TMP_PREFIX "XXXXXX", (int)(slash - path), path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return err_set(e, "cannot write %s: %s", key, strerror(errno));
	if (write_file(fd, data, len) != 0) {
		err_set(e, "cannot write %s: %s", key, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) != 0) {
		unlink(tmp);
		return err_set(e, "cannot write %s: %s", key, strerror(errno));
	}
	if (opts && opts->if_absent) {
		rc = link(tmp, path);
		unlink(tmp);
		if (rc != 0 && errno == EEXIST)
			return err_http(e, 412, "object %s already exists", key);
	} else {
		rc = rename(tmp, path);
		if (rc != 0)
			unlink(tmp);
	}
	return rc == 0 ? 0 : err_set(e, "cannot store %s: %s", key, strerror(errno));
}

static int local_get(struct storage *s, const char *key, uint64_t offset, struct buf *out, struct err *e)
{
	struct storage_local *l = (struct storage_local *)s;
	char path[PATH_MAX + 64], chunk[65536];
	size_t start = out->len;
	ssize_t n;
	int fd;

	if (path_of(l, key, path, sizeof(path), e) != 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? err_http(e, 404, "no object %s", key)
							   : err_set(e, "cannot read %s: %s", key, strerror(errno));
	if (offset && lseek(fd, (off_t)offset, SEEK_SET) < 0) {
		close(fd);
		return err_set(e, "cannot read %s from byte %llu: %s", key, (unsigned long long)offset, strerror(errno));
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || buf_add(out, chunk, (size_t)n) != 0) {
			err_set(e, "cannot read %s: %s", key, n < 0 ? strerror(errno) : "out of memory");
			out->len = start;
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

static int add_entry(struct storage_list *out, size_t *cap, const char *key, uint64_t size)
{
	if (out->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct storage_entry *ni = realloc(out->items, ncap * sizeof(*ni));
		if (!ni)
			return -1;
		out->items = ni;
		*cap = ncap;
	}
	out->items[out->n].key = strdup(key);
	if (!out->items[out->n].key)
		return -1;
	out->items[out->n].size = size;
	out->n++;
	return 0;
}

/* Walk dir (key prefix rel, "" or ending in '/') collecting matching keys. */
static int walk(const char *dir, const char *rel, const char *prefix, const char *after, struct storage_list *out,
		size_t *cap, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int rc = 0;

	if (!d)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	while (rc == 0 && (de = readdir(d))) {
		char path[PATH_MAX], key[PATH_MAX];
		struct stat st;

		if (de->d_name[0] == '.' && (!de->d_name[1] || de->d_name[1] == '.' ||
					     strncmp(de->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path) ||
		    (size_t)snprintf(key, sizeof(key), "%s%s", rel, de->d_name) >= sizeof(key) ||
		    lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 32) {
			size_t kl = strlen(key);
			if (kl + 1 < sizeof(key) && (strncmp(key, prefix, kl) == 0 || strncmp(prefix, key, strlen(prefix)) == 0)) {
				key[kl] = '/', key[kl + 1] = 0;
				rc = walk(path, key, prefix, after, out, cap, depth + 1);
			}
		} else if (S_ISREG(st.st_mode) && strncmp(key, prefix, strlen(prefix)) == 0 &&
			   (!after || strcmp(key, after) > 0)) {
			rc = add_entry(out, cap, key, (uint64_t)st.st_size);
		}
	}
	closedir(d);
	return rc;
}

static int by_key(const void *a, const void *b)
{
	return strcmp(((const struct storage_entry *)a)->key, ((const struct storage_entry *)b)->key);
}

static int local_list(struct storage *s, const char *prefix, const char *after, struct storage_list *out,
		      struct err *e)
{
	struct storage_local *l = (struct storage_local *)s;
	char dir[PATH_MAX + 64], rel[PATH_MAX];
	const char *slash = strrchr(prefix, '/');
	size_t cap = 0, rl = slash ? (size_t)(slash - prefix) + 1 : 0;

	memset(out, 0, sizeof(*out));
	if (rl >= sizeof(rel) - 1)
		return err_http(e, 400, "prefix too long");
	/* A prefix is valid when a key could start with it. */
	snprintf(rel, sizeof(rel), "%sx", prefix);
	if (*prefix && !storage_key_valid(rel))
		return err_http(e, 400, "invalid prefix '%s'", prefix);
	memcpy(rel, prefix, rl);
	rel[rl] = 0;
	snprintf(dir, sizeof(dir), "%s/%s", l->root, rel);
	if (walk(dir, rel, prefix, after, out, &cap, 0) != 0) {
		storage_list_free(out);
		return err_set(e, "cannot list %s: %s", prefix, strerror(errno ? errno : ENOMEM));
	}
	if (out->n)
		qsort(out->items, out->n, sizeof(*out->items), by_key);     /* items is NULL when empty */
	return 0;
}

static int local_del(struct storage *s, const char *key, struct err *e)
{
	struct storage_local *l = (struct storage_local *)s;
	char path[PATH_MAX + 64];

	if (path_of(l, key, path, sizeof(path), e) != 0)
		return -1;
	if (unlink(path) != 0 && errno != ENOENT)
		return err_set(e, "cannot delete %s: %s", key, strerror(errno));
	return 0;
}

/* A wait on the prefix's directory (dirwatch.c: one inotify instance
 * for all of them): new objects arrive by rename (or link, for create-only
 * puts), and the name of each comes with the wake, tagged with the prefix
 * so it is the object's key; the temporaries (TMP_PREFIX) are ignored.
 * A wait lives as long as its caller follows the prefix, so no rename can
 * fall between two waits. */
static int local_watch(struct storage *s, const char *prefix)
{
	struct storage_local *l = (struct storage_local *)s;
	char dir[PATH_MAX + 64], probe[PATH_MAX];
	size_t n;

	snprintf(probe, sizeof(probe), "%sx", prefix);
	if (!storage_key_valid(probe))
		return -1;
	snprintf(dir, sizeof(dir), "%s/%s", l->root, prefix);
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = 0;
	return dw_add(l->dw, dir, prefix);
}

static int local_watch_keys(struct storage *s, int fd, char ***keys, size_t *n)
{
	return dw_take(((struct storage_local *)s)->dw, fd, keys, n);
}

static void local_unwatch(struct storage *s, int fd)
{
	dw_remove(((struct storage_local *)s)->dw, fd);
}

static int local_url(struct storage *s, const char *key, struct buf *out)
{
	struct storage_local *l = (struct storage_local *)s;

	return buf_printf(out, "%s/%s", l->root, key);
}

static void local_free(struct storage *s)
{
	dw_free(((struct storage_local *)s)->dw);
	free(s);
}

static const struct storage_ops local_ops = {
	.name = "local",
	.put = local_put,
	.get = local_get,
	.list = local_list,
	.del = local_del,
	.watch = local_watch,
	.watch_keys = local_watch_keys,
	.unwatch = local_unwatch,
	.url = local_url,
	.free = local_free,
};

struct storage *storage_local_new(const char *root, struct err *e)
{
	struct storage_local *l;

	if (mkdir(root, 0700) != 0 && errno != EEXIST) {
		err_set(e, "cannot create the data directory %s: %s", root, strerror(errno));
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		err_set(e, "out of memory");
		return NULL;
	}
	if (!realpath(root, l->root)) {
		err_set(e, "cannot resolve the data directory %s: %s", root, strerror(errno));
		free(l);
		return NULL;
	}
	if (!(l->dw = dw_new(TMP_PREFIX))) {
		err_set(e, "out of memory");
		free(l);
		return NULL;
	}
	l->base.ops = &local_ops;
	return &l->base;
}

void storage_list_free(struct storage_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->items[i].key);
	free(l->items);
	memset(l, 0, sizeof(*l));
}
