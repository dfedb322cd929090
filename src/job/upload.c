/*
 * upload.c: see upload.h.
 *
 * Design.  A pattern is first brace-expanded (the first top-level {..,..}
 * group with a comma is expanded, recursively, at most 256 results), then
 * each alternative is split into segments (empty and "." segments dropped,
 * ".." or a leading '/' refused, a trailing "**" made "**" + "*" since only
 * files can match).  Matching walks the tree from the root one segment at
 * a time, on relative paths: a literal segment is looked up directly, a
 * wildcard segment is matched with fnmatch(3) against each directory
 * entry (after the leading-dot rule), and "**" tries "zero directories"
 * and then every real (non-link) subdirectory with the same segment.
 * Entries are lstat()ed; a link is resolved with realpath() and used only
 * when it stays inside the root.  Results are sorted and deduplicated
 * (a pattern with two "**" segments can reach a file twice).
 *
 * Upload reads the whole file (storage.put takes a buffer), after checking
 * realpath() again and opening the resolved path with O_NOFOLLOW, and
 * compares the opened file's device and inode with the checked one.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "job/upload.h"
#include "task/record.h"
#include "util/buf.h"
#include "util/redact.h"

#define MAX_ALTERNATIVES 256
#define MAX_DEPTH 64

static void warnf(up_warn_fn *warn, void *arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warnf(up_warn_fn *warn, void *arg, const char *fmt, ...)
{
	struct buf line = BUF_INIT, red = BUF_INIT;
	va_list ap;

	if (!warn)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(&line, fmt, ap) == 0 && redact_str(&red, line.p) == 0 && red.p)
		warn(arg, red.p);
	va_end(ap);
	buf_free(&line);
	buf_free(&red);
}

/* ---- string lists ------------------------------------------------------- */

static int list_add(struct up_matches *m, const char *s, size_t n)
{
	char *c;

	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 16;
		char **nr = realloc(m->rel, nc * sizeof(*nr));
		if (!nr)
			return -1;
		m->rel = nr;
		m->cap = nc;
	}
	if (!(c = malloc(n + 1)))
		return -1;
	memcpy(c, s, n);
	c[n] = 0;
	m->rel[m->n++] = c;
	return 0;
}

void up_matches_free(struct up_matches *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		free(m->rel[i]);
	free(m->rel);
	memset(m, 0, sizeof(*m));
}

static int by_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- braces ------------------------------------------------------------- */

static int brace_expand(const char *pat, struct up_matches *out, int depth)
{
	size_t i, j, len = strlen(pat);

	if (depth > 32 || out->n >= MAX_ALTERNATIVES)
		return -1;
	for (i = 0; i < len; i++) {
		size_t commas = 0;
		int lvl = 0;

		if (pat[i] == '\\' && pat[i + 1]) {
			i++;
			continue;
		}
		if (pat[i] != '{')
			continue;
		for (j = i + 1; j < len; j++) {
			if (pat[j] == '\\' && pat[j + 1]) {
				j++;
				continue;
			}
			if (pat[j] == '{')
				lvl++;
			else if (pat[j] == '}' && lvl-- == 0)
				break;
			else if (pat[j] == ',' && lvl == 0)
				commas++;
		}
		if (j >= len)
			break;          /* no closing brace: the rest is literal */
		if (commas == 0)
			continue;       /* {a} is literal */
		{
			size_t start = i + 1, k;
			struct buf alt = BUF_INIT;
			int rc = 0;

			lvl = 0;
			for (k = i + 1; rc == 0 && k <= j; k++) {
				if (k < j && pat[k] == '\\' && pat[k + 1]) {
					k++;
					continue;
				}
				if (k < j && pat[k] == '{')
					lvl++;
				else if (k < j && pat[k] == '}')
					lvl--;
				else if (k == j || (pat[k] == ',' && lvl == 0)) {
					buf_reset(&alt);
					if (buf_add(&alt, pat, i) != 0 || buf_add(&alt, pat + start, k - start) != 0 ||
					    buf_adds(&alt, pat + j + 1) != 0)
						rc = -1;
					else
						rc = brace_expand(alt.p, out, depth + 1);
					start = k + 1;
				}
			}
			buf_free(&alt);
			return rc;
		}
	}
	if (out->n >= MAX_ALTERNATIVES)
		return -1;
	return list_add(out, pat, len);
}

/* ---- matching ----------------------------------------------------------- */

struct walker {
	char root[PATH_MAX];         /* realpath of the root */
	char **segs;
	size_t nsegs;
	struct up_matches *m;
	up_warn_fn *warn;
	void *arg;
	int full;                    /* UP_MAX_MATCHES reached */
	int oom;
};

static int is_magic(const char *seg)
{
	const char *p;

	for (p = seg; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == '*' || *p == '?' || *p == '[')
			return 1;
	}
	return 0;
}

static void unescape(char *dst, const char *src)
{
	while (*src) {
		if (*src == '\\' && src[1])
			src++;
		*dst++ = *src++;
	}
	*dst = 0;
}

static int ignored(const char *name)
{
	return strcmp(name, "node_modules") == 0 || strcmp(name, ".git") == 0;
}

static int inside(const char *path, const char *root)
{
	size_t rl = strlen(root);

	if (rl == 1 && root[0] == '/')
		return path[0] == '/';
	return strncmp(path, root, rl) == 0 && (path[rl] == 0 || path[rl] == '/');
}

static void walk(struct walker *w, const char *rel, size_t i, int depth);

/* The entry rel (relative path) matched segment i. */
static void candidate(struct walker *w, const char *rel, size_t i, int depth)
{
	char full[PATH_MAX];
	struct stat st;
	int last = i + 1 == w->nsegs;

	if ((size_t)snprintf(full, sizeof(full), "%s/%s", w->root, rel) >= sizeof(full) || lstat(full, &st) != 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];

		if (!realpath(full, target) || stat(target, &st) != 0)
			return;
		if (!inside(target, w->root)) {
			if (last && S_ISREG(st.st_mode))
				warnf(w->warn, w->arg, "skipped %s: a symbolic link to a file outside the workspace", rel);
			return;
		}
	}
	if (last) {
		if (S_ISREG(st.st_mode)) {
			if (w->m->n >= UP_MAX_MATCHES)
				w->full = 1;
			else if (list_add(w->m, rel, strlen(rel)) != 0)
				w->oom = 1;
		}
		return;
	}
	if (S_ISDIR(st.st_mode))
		walk(w, rel, i + 1, depth + 1);
}

static void join(char *out, size_t n, const char *dir, const char *name)
{
	if (*dir)
		snprintf(out, n, "%s/%s", dir, name);
	else
		snprintf(out, n, "%s", name);
}

/* Match segments i.. against the directory rel ("" = the root). */
static void walk(struct walker *w, const char *rel, size_t i, int depth)
{
	const char *seg = w->segs[i];
	char full[PATH_MAX], sub[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (w->full || w->oom || depth > MAX_DEPTH)
		return;
	if (!is_magic(seg)) {
		char name[PATH_MAX];

		unescape(name, seg);
		if (ignored(name) || strlen(rel) + strlen(name) + 2 > sizeof(sub))
			return;
		join(sub, sizeof(sub), rel, name);
		candidate(w, sub, i, depth);
		return;
	}
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", w->root, rel) >= sizeof(full) || !(d = opendir(full)))
		return;
	if (strcmp(seg, "**") == 0)
		walk(w, rel, i + 1, depth);     /* zero directories */
	while (!w->full && !w->oom && (de = readdir(d))) {
		const char *nm = de->d_name;
		struct stat st;

		if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
			continue;
		if (ignored(nm) || strlen(rel) + strlen(nm) + 2 > sizeof(sub))
			continue;
		join(sub, sizeof(sub), rel, nm);
		if (strcmp(seg, "**") == 0) {
			/* One more directory: real directories only, never dot ones. */
			if (nm[0] == '.')
				continue;
			if ((size_t)snprintf(full, sizeof(full), "%s/%s", w->root, sub) < sizeof(full) &&
			    lstat(full, &st) == 0 && S_ISDIR(st.st_mode))
				walk(w, sub, i, depth + 1);
			continue;
		}
		if (nm[0] == '.' && seg[0] != '.')
			continue;
		if (fnmatch(seg, nm, 0) == 0)
			candidate(w, sub, i, depth);
	}
	closedir(d);
}

/* Split one brace-free pattern into w->segs; -1 with e when refused. */
static int split(struct walker *w, const char *pat, char *store, struct err *e)
{
	char *p, *s;
	size_t cap = 1;

	if (pat[0] == '/')
		return err_set(e, "pattern '%s' is absolute: patterns are relative to the workspace", pat);
	for (p = (char *)pat; *p; p++)
		if (*p == '/')
			cap++;
	if (!(w->segs = calloc(cap + 2, sizeof(*w->segs))))
		return err_set(e, "out of memory");
	w->nsegs = 0;
	strcpy(store, pat);
	for (s = strtok_r(store, "/", &p); s; s = strtok_r(NULL, "/", &p)) {
		if (strcmp(s, ".") == 0)
			continue;
		if (strcmp(s, "..") == 0)
			return err_set(e, "pattern '%s' contains '..': patterns must stay inside the workspace", pat);
		/* "**" twice in a row is one "**". */
		if (strcmp(s, "**") == 0 && w->nsegs && strcmp(w->segs[w->nsegs - 1], "**") == 0)
			continue;
		w->segs[w->nsegs++] = s;
	}
	if (w->nsegs && strcmp(w->segs[w->nsegs - 1], "**") == 0)
		w->segs[w->nsegs++] = "*";
	return 0;
}

int up_glob(const char *root, const char *pattern, struct up_matches *m, up_warn_fn *warn, void *arg,
	    struct err *e)
{
	struct up_matches alts = { 0 };
	struct walker w;
	size_t i, first = m->n, k;
	int rc = 0;

	memset(&w, 0, sizeof(w));
	if (!pattern || !*pattern)
		return err_set(e, "empty pattern");
	if (strlen(pattern) >= PATH_MAX)
		return err_set(e, "pattern too long");
	if (!realpath(root, w.root))
		return err_set(e, "cannot resolve the workspace %s: %s", root, strerror(errno)), redact_err(e);
	if (brace_expand(pattern, &alts, 0) != 0) {
		up_matches_free(&alts);
		return err_set(e, "pattern '%s' expands to more than %d alternatives", pattern, MAX_ALTERNATIVES),
		       redact_err(e);
	}
	/* Refuse the whole pattern if any alternative leaves the workspace. */
	for (i = 0; rc == 0 && i < alts.n; i++) {
		char *store = malloc(strlen(alts.rel[i]) + 1);

		if (!store) {
			rc = err_set(e, "out of memory");
			break;
		}
		rc = split(&w, alts.rel[i], store, e);
		free(store);
		free(w.segs);
		w.segs = NULL;
		if (rc != 0 && alts.n > 1)
			err_prefix(e, "pattern '%s'", pattern);
	}
	for (i = 0; rc == 0 && i < alts.n; i++) {
		char *store = malloc(strlen(alts.rel[i]) + 1);

		if (!store || split(&w, alts.rel[i], store, e) != 0) {
			free(store);
			rc = err_set(e, "out of memory");
			break;
		}
		w.m = m;
		w.warn = warn;
		w.arg = arg;
		if (w.nsegs)
			walk(&w, "", 0, 0);
		free(store);
		free(w.segs);
		w.segs = NULL;
		if (w.oom)
			rc = err_set(e, "out of memory matching '%s'", pattern);
	}
	up_matches_free(&alts);
	if (w.full)
		warnf(warn, arg, "pattern '%s' matched more than %d files; the rest are ignored", pattern,
		      UP_MAX_MATCHES);
	/* Sort this pattern's matches and drop duplicates. */
	if (m->n > first) {
		qsort(m->rel + first, m->n - first, sizeof(*m->rel), by_str);
		for (i = first + 1, k = first + 1; i < m->n; i++) {
			if (strcmp(m->rel[i], m->rel[k - 1]) == 0)
				free(m->rel[i]);
			else
				m->rel[k++] = m->rel[i];
		}
		m->n = k;
	}
	return rc == 0 ? 0 : redact_err(e);
}

/* ---- uploading ---------------------------------------------------------- */

const char *up_content_type(const char *name)
{
	static const char *const types[][2] = {
		{ "txt", "text/plain" }, { "log", "text/plain" }, { "md", "text/markdown" },
		{ "html", "text/html" }, { "htm", "text/html" }, { "css", "text/css" },
		{ "csv", "text/csv" }, { "xml", "application/xml" }, { "yaml", "text/yaml" },
		{ "yml", "text/yaml" }, { "js", "application/javascript" }, { "mjs", "application/javascript" },
		{ "json", "application/json" }, { "pdf", "application/pdf" }, { "zip", "application/zip" },
		{ "gz", "application/gzip" }, { "tar", "application/x-tar" }, { "png", "image/png" },
		{ "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" }, { "gif", "image/gif" },
		{ "svg", "image/svg+xml" }, { "webp", "image/webp" }, { "mp4", "video/mp4" },
		{ "webm", "video/webm" },
	};
	const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
	size_t i;

	if (!dot || (slash && dot < slash) || !dot[1])
		return NULL;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(dot + 1, types[i][0]) == 0)
			return types[i][1];
	return NULL;
}

static void iso_now(char out[32])
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

/* Read the file at rel (checked again: see the design note) into data. */
static int read_checked(const char *root_real, const char *full, size_t max, struct buf *data, const char **why)
{
	char real[PATH_MAX];
	struct stat st, st2;
	int fd;

	if (!realpath(full, real) || stat(real, &st) != 0)
		return *why = strerror(errno), -1;
	if (!inside(real, root_real))
		return *why = "it leads outside the workspace", -1;
	if (!S_ISREG(st.st_mode))
		return *why = "not a regular file", -1;
	if ((uint64_t)st.st_size > max)
		return *why = "larger than the upload limit", -1;
	fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return *why = strerror(errno), -1;
	if (fstat(fd, &st2) != 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino || !S_ISREG(st2.st_mode)) {
		close(fd);
		return *why = "it changed while being read", -1;
	}
	for (;;) {
		char chunk[65536];
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why = strerror(errno);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		if (data->len + (size_t)n > max || buf_add(data, chunk, (size_t)n) != 0) {
			close(fd);
			return *why = data->len + (size_t)n > max ? "larger than the upload limit" : "out of memory", -1;
		}
	}
	close(fd);
	return 0;
}

static int upload_one(const struct up_config *c, const char *root_real, const char *prefix, const char *rel,
		      cJSON *list, struct err *e)
{
	struct buf key = BUF_INIT, full = BUF_INIT, data = BUF_INIT, url = BUF_INIT;
	struct err pe = ERR_INIT;
	char when[32], size[32];
	const char *why = NULL;
	cJSON *item = NULL;
	int rc = 0;

	if (buf_printf(&key, "%s/%s", prefix, rel) != 0 || buf_printf(&full, "%s/%s", c->root, rel) != 0) {
		rc = err_set(e, "out of memory");
		goto out;
	}
	if (!storage_key_valid(key.p)) {
		warnf(c->warn, c->arg, "Failed to upload %s: '%s' is not a valid object name", rel, key.p);
		goto out;
	}
	if (read_checked(root_real, full.p, c->max_file_bytes ? c->max_file_bytes : UP_MAX_FILE, &data, &why) != 0) {
		warnf(c->warn, c->arg, "Failed to upload %s: %s", rel, why);
		goto out;
	}
	iso_now(when);
	snprintf(size, sizeof(size), "%zu", data.len);
	{
		const char *meta[] = { "taskId", c->task_id, "originalPath", full.p, "uploadedAt", when,
				       "sizeBytes", size, NULL };
		struct storage_put_opts po = { up_content_type(rel), meta, 0 };

		if (storage_put(c->st, key.p, data.p ? data.p : "", data.len, &po, &pe) != 0) {
			warnf(c->warn, c->arg, "Failed to upload %s: %s", rel, pe.msg);
			goto out;
		}
	}
	if (storage_url(c->st, key.p, &url) != 0 || !(item = cJSON_CreateObject()) ||
	    !cJSON_AddStringToObject(item, "originalPath", full.p) ||
	    !cJSON_AddStringToObject(item, "gcsPath", url.p ? url.p : "") ||
	    !cJSON_AddNumberToObject(item, "sizeBytes", (double)data.len) || !cJSON_AddItemToArray(list, item)) {
		cJSON_Delete(item);
		rc = err_set(e, "out of memory");
	}
out:
	buf_free(&key);
	buf_free(&full);
	buf_free(&data);
	buf_free(&url);
	return rc;
}

int up_run(const struct up_config *c, const cJSON *upload_files, cJSON **uploaded, struct err *e)
{
	const cJSON *patterns, *gp, *it;
	struct buf prefix = BUF_INIT, probe = BUF_INIT;
	char root_real[PATH_MAX], key[TR_KEY_MAX];
	cJSON *list;
	int rc = 0;

	*uploaded = NULL;
	if (!cJSON_IsObject(upload_files))
		return err_set(e, "uploadFiles must be an object with globPatterns");
	patterns = cJSON_GetObjectItemCaseSensitive(upload_files, "globPatterns");
	gp = cJSON_GetObjectItemCaseSensitive(upload_files, "gcsPrefix");
	if (!cJSON_IsArray(patterns))
		return err_set(e, "uploadFiles.globPatterns must be an array of strings");
	if (gp && !cJSON_IsNull(gp) && !cJSON_IsString(gp))
		return err_set(e, "uploadFiles.gcsPrefix must be a string");
	if (cJSON_IsString(gp) && gp->valuestring && *gp->valuestring)
		rc = buf_adds(&prefix, gp->valuestring);
	else
		rc = buf_adds(&prefix, tr_key_files(key, c->task_id ? c->task_id : ""));
	if (rc != 0)
		return err_set(e, "out of memory");
	while (prefix.len > 1 && prefix.p[prefix.len - 1] == '/')
		prefix.p[--prefix.len] = 0;
	if (buf_printf(&probe, "%s/x", prefix.p) != 0 || !storage_key_valid(probe.p)) {
		err_set(e, "uploadFiles.gcsPrefix '%s' is not a valid object name prefix (relative, no '.', '..' or "
			"empty segments)", prefix.p);
		buf_free(&prefix);
		buf_free(&probe);
		return redact_err(e);
	}
	buf_free(&probe);
	if (!realpath(c->root, root_real)) {
		err_set(e, "cannot resolve the workspace %s: %s", c->root, strerror(errno));
		buf_free(&prefix);
		return redact_err(e);
	}
	if (!(list = cJSON_CreateArray())) {
		buf_free(&prefix);
		return err_set(e, "out of memory");
	}
	cJSON_ArrayForEach(it, patterns) {
		struct up_matches m = { 0 };
		struct err ge = ERR_INIT;
		size_t i;

		if (!cJSON_IsString(it) || !it->valuestring) {
			warnf(c->warn, c->arg, "uploadFiles: skipped a pattern that is not a string");
			continue;
		}
		if (up_glob(c->root, it->valuestring, &m, c->warn, c->arg, &ge) != 0) {
			warnf(c->warn, c->arg, "uploadFiles: %s", ge.msg);
			up_matches_free(&m);
			if (strncmp(ge.msg, "out of memory", 13) == 0) {
				rc = err_set(e, "out of memory");
				break;
			}
			continue;
		}
		if (m.n == 0)
			warnf(c->warn, c->arg, "No files matched pattern: %s", it->valuestring);
		for (i = 0; rc == 0 && i < m.n; i++)
			rc = upload_one(c, root_real, prefix.p, m.rel[i], list, e);
		up_matches_free(&m);
		if (rc != 0)
			break;
	}
	buf_free(&prefix);
	if (rc != 0) {
		cJSON_Delete(list);
		return -1;
	}
	*uploaded = list;
	return 0;
}
