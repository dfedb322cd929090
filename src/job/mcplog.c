/*
 * mcplog.c: see mcplog.h.
 *
 * Every search goes through each_dir(), which calls back with every
 * directory the CLI may have used for one working directory: for each
 * cache entry named "claude*", the cwd sanitised both ways.  ml_explain()
 * then looks for mcp-logs-<server> inside; ml_forget() removes the whole
 * directory.
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

#include "cJSON.h"
#include "job/mcplog.h"
#include "job/workspace.h"

#define ML_MAX_FILE (1u << 20)   /* read at most this much of one log */

int ml_cache_dir(const char *xdg_cache_home, const char *home, char *out, size_t size)
{
	int n;

	if (xdg_cache_home && xdg_cache_home[0] == '/')
		n = snprintf(out, size, "%s", xdg_cache_home);
	else if (home && home[0] == '/')
		n = snprintf(out, size, "%s/.cache", home);
	else
		return -1;
	return n > 0 && (size_t)n < size ? 0 : -1;
}

static int is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* The cwd as a directory name: every byte but [A-Za-z0-9] as '-' (all),
 * or only '/' as '-' (the older CLIs). */
static int sanitise(const char *cwd, int all, char *out, size_t size)
{
	size_t i;

	for (i = 0; cwd[i]; i++) {
		unsigned char c = (unsigned char)cwd[i];

		if (i + 1 >= size)
			return -1;
		out[i] = (all ? is_alnum(c) : c != '/') ? (char)c : '-';
	}
	out[i] = 0;
	return 0;
}

typedef int (*ml_dir_fn)(const char *dir, void *arg);

/* Call fn for each existing directory the CLI may have used for cwd;
 * stops at fn's first non-zero answer and returns it. */
static int each_dir(const char *cache, const char *cwd, ml_dir_fn fn, void *arg)
{
	char names[2][NAME_MAX + 1], path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int k, rc = 0;

	if (sanitise(cwd, 1, names[0], sizeof(names[0])) != 0 || sanitise(cwd, 0, names[1], sizeof(names[1])) != 0)
		return 0;
	if (!(d = opendir(cache)))
		return 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "claude", 6) != 0)
			continue;
		for (k = 0; k < 2 && rc == 0; k++) {
			if (k == 1 && strcmp(names[0], names[1]) == 0)
				break;
			if (snprintf(path, sizeof(path), "%s/%s/%s", cache, de->d_name, names[k]) >= (int)sizeof(path))
				continue;
			if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
				rc = fn(path, arg);
		}
	}
	closedir(d);
	return rc;
}

/* ---- the init line -------------------------------------------------------- */

int ml_init_line(const char *line, size_t n, int *ok, int *total, struct buf *summary, struct buf *failed)
{
	static const char init[] = "\"subtype\":\"init\"";
	const cJSON *servers, *it;
	cJSON *j;
	int rc = 1;

	*ok = *total = 0;
	if (!memmem(line, n, init, sizeof(init) - 1) || !(j = cJSON_ParseWithLength(line, n)))
		return 0;
	servers = cJSON_GetObjectItemCaseSensitive(j, "mcp_servers");
	cJSON_ArrayForEach(it, servers) {
		const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "status");
		int up = cJSON_IsString(st) && strcmp(st->valuestring, "connected") == 0;

		(*total)++;
		*ok += up;
		if (!up && cJSON_IsString(nm) && !strchr(nm->valuestring, '\n') && buf_printf(failed, "%s\n", nm->valuestring))
			rc = -1;
		if (buf_printf(summary, "%s%s: %s", summary->len ? ", " : "", cJSON_IsString(nm) ? nm->valuestring : "?",
			       cJSON_IsString(st) ? st->valuestring : "?"))
			rc = -1;
	}
	cJSON_Delete(j);
	return rc;
}

/* ---- explaining --------------------------------------------------------- */

struct explain {
	const char *server;
	struct buf *out;
	int found;               /* 1 explained, 0 not yet, -1 out of memory */
	char why[300];           /* when not found */
	char *text;              /* ML_MAX_FILE + 1 bytes: the log file read */
};

/* Append one message, newlines as spaces, within ML_MAX_TEXT. */
static int add_message(struct buf *out, const char *msg)
{
	size_t n = strlen(msg);

	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
		n--;
	if (!n || out->len >= ML_MAX_TEXT)
		return 0;
	if (out->len && buf_adds(out, "; ") != 0)
		return -1;
	if (n > ML_MAX_TEXT - out->len)
		n = ML_MAX_TEXT - out->len;
	for (size_t i = 0; i < n; i++)
		if (buf_addc(out, msg[i] == '\n' || msg[i] == '\r' ? ' ' : msg[i]) != 0)
			return -1;
	return 0;
}

/* The "error" messages of a parsed entry list or entry, appended. */
static int add_errors(const cJSON *j, struct buf *out, int *count)
{
	const cJSON *it, *err;

	if (cJSON_IsArray(j)) {
		cJSON_ArrayForEach(it, j)
			if (add_errors(it, out, count) != 0)
				return -1;
		return 0;
	}
	err = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (!cJSON_IsString(err))
		return 0;
	(*count)++;
	return add_message(out, err->valuestring);
}

/* Read the log: a JSON array (older CLIs), JSON lines, or raw text. */
static int explain_text(struct explain *x, const char *file, char *text, size_t len)
{
	/* the whole text must be one value, or it is JSON lines */
	cJSON *j = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
	int count = 0, json = j != NULL;
	char *line, *save = NULL;

	if (j && add_errors(j, x->out, &count) != 0) {
		cJSON_Delete(j);
		return -1;
	}
	cJSON_Delete(j);
	if (!json) {
		for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			if (!(j = cJSON_Parse(line)))
				continue;
			json = 1;
			if (add_errors(j, x->out, &count) != 0) {
				cJSON_Delete(j);
				return -1;
			}
			cJSON_Delete(j);
		}
	}
	if (!json) {
		text[len < 500 ? len : 500] = 0;
		return add_message(x->out, text) == 0 ? 1 : -1;
	}
	if (count == 0)
		snprintf(x->why, sizeof(x->why), "its log %s has no error entry", file);
	return count > 0;
}

/* The newest *.jsonl or *.txt file of dir into name; 0, or -1 with why. */
static int newest_log(const char *dir, char *name, size_t size, struct explain *x)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	name[0] = 0;
	if (!d) {
		snprintf(x->why, sizeof(x->why), "cannot read its log directory: %s", strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		int log = (n > 6 && strcmp(de->d_name + n - 6, ".jsonl") == 0) ||
			  (n > 4 && strcmp(de->d_name + n - 4, ".txt") == 0);

		if (log && n < size && strcmp(de->d_name, name) > 0)
			memcpy(name, de->d_name, n + 1);
	}
	closedir(d);
	if (!name[0]) {
		snprintf(x->why, sizeof(x->why), "no MCP log files for it");
		return -1;
	}
	return 0;
}

static int explain_dir(const char *dir, void *arg)
{
	struct explain *x = arg;
	char logdir[PATH_MAX], name[NAME_MAX + 1], file[PATH_MAX + NAME_MAX + 2];
	char *text = x->text;
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd;

	if (snprintf(logdir, sizeof(logdir), "%s/mcp-logs-%s", dir, x->server) >= (int)sizeof(logdir) ||
			lstat(logdir, &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	if (newest_log(logdir, name, sizeof(name), x) != 0)
		return 0;
	snprintf(file, sizeof(file), "%s/%s", logdir, name);
	if ((fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		snprintf(x->why, sizeof(x->why), "cannot read its log %s: %s", name, strerror(errno));
		return 0;
	}
	while (len < ML_MAX_FILE && (n = read(fd, text + len, ML_MAX_FILE - len)) > 0)
		len += (size_t)n;
	close(fd);
	text[len] = 0;
	x->found = explain_text(x, name, text, len);
	return x->found != 0;
}

int ml_explain(const char *cache, const char *cwd, const char *server, struct buf *out)
{
	struct explain x = { server, out, 0, "no MCP log directory for it", NULL };

	if (!server[0] || strchr(server, '/') || strcmp(server, ".") == 0 || strcmp(server, "..") == 0)
		return buf_adds(out, "not a valid server name") == 0 ? 0 : -1;
	if (!(x.text = malloc(ML_MAX_FILE + 1)))
		return -1;
	each_dir(cache, cwd, explain_dir, &x);
	free(x.text);
	if (x.found < 0)
		return -1;
	if (x.found == 0 && buf_adds(out, x.why) != 0)
		return -1;
	return x.found;
}

/* ---- forgetting --------------------------------------------------------- */

struct forget {
	int removed, failed;
};

static int forget_dir(const char *dir, void *arg)
{
	struct forget *f = arg;
	struct err e = ERR_INIT;

	if (ws_remove_tree(dir, &e) == 0)
		f->removed++;
	else
		f->failed++;
	return 0;
}

int ml_forget(const char *cache, const char *cwd)
{
	struct forget f = { 0, 0 };

	each_dir(cache, cwd, forget_dir, &f);
	return f.failed ? -1 : f.removed;
}
