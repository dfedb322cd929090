/*
 * cliconf.c: see cliconf.h.
 *
 * Design.  Three fixed lists (links, copies, the one JSON member) walked
 * in order; each entry is looked at with stat() (an operator's symbolic
 * link in $HOME/.claude is followed: it names what the operator meant),
 * and each new file is created exclusively in the fresh per-task
 * directory, so nothing already there is overwritten or followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "job/cliconf.h"
#include "util/buf.h"
#include "util/fdio.h"
#include "util/jsjson.h"

static const char *const linked_dirs[] = {
	"commands", "agents", "skills", "output-styles", "plugins", "rules", "hooks",
};

static const char *const copied_files[] = {
	"settings.json", "CLAUDE.md", "keybindings.json",
};

/* The whole of path (a regular file up to CF_MAX_FILE) into out. */
static int slurp(const char *path, struct buf *out, struct err *e)
{
	char chunk[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_set(e, "cannot read %s: %s", path, strerror(errno));
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || out->len + (size_t)n > CF_MAX_FILE || buf_add(out, chunk, (size_t)n) != 0) {
			int why = n < 0 ? errno : 0;
			close(fd);
			if (why)
				return err_set(e, "cannot read %s: %s", path, strerror(why));
			return err_set(e, "%s is larger than %u bytes: the CLI's configuration cannot hold it", path,
				       CF_MAX_FILE);
		}
	}
	close(fd);
	return 0;
}

static int write_new(const char *path, const char *data, size_t n, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return err_set(e, "cannot create %s: %s", path, strerror(errno));
	if (fd_write_all(fd, data, n) != 0) {
		int why = errno;
		close(fd);
		return err_set(e, "cannot write %s: %s", path, strerror(why));
	}
	if (close(fd) != 0)
		return err_set(e, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

const char *cf_linked_dir(size_t i)
{
	return i < sizeof(linked_dirs) / sizeof(linked_dirs[0]) ? linked_dirs[i] : NULL;
}

static int link_dirs(const char *src, const char *dir, struct err *e)
{
	char from[4096], to[4096];
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(linked_dirs) / sizeof(linked_dirs[0]); i++) {
		if (snprintf(from, sizeof(from), "%s/%s", src, linked_dirs[i]) >= (int)sizeof(from) ||
		    snprintf(to, sizeof(to), "%s/%s", dir, linked_dirs[i]) >= (int)sizeof(to))
			return err_set(e, "the path %s is too long", src);
		if (stat(from, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		if (symlink(from, to) != 0)
			return err_set(e, "cannot link %s to %s: %s", to, from, strerror(errno));
	}
	return 0;
}

static int copy_files(const char *src, const char *dir, struct err *e)
{
	char from[4096], to[4096];
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(copied_files) / sizeof(copied_files[0]); i++) {
		struct buf text = BUF_INIT;
		int rc;

		if (snprintf(from, sizeof(from), "%s/%s", src, copied_files[i]) >= (int)sizeof(from) ||
		    snprintf(to, sizeof(to), "%s/%s", dir, copied_files[i]) >= (int)sizeof(to))
			return err_set(e, "the path %s is too long", src);
		if (stat(from, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		rc = slurp(from, &text, e);
		if (rc == 0)
			rc = write_new(to, text.p ? text.p : "", text.len, e);
		buf_free(&text);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* {"mcpServers": <$HOME/.claude.json's>} into <dir>/.claude.json. */
static int user_mcp(const char *home, const char *dir, void (*warn)(const char *msg), struct err *e)
{
	char from[4096], to[4096], msg[4400];
	struct buf text = BUF_INIT, out = BUF_INIT;
	struct err ignored = ERR_INIT;
	cJSON *j = NULL, *doc = NULL, *servers;
	struct stat st;
	int rc = 0;

	if (snprintf(from, sizeof(from), "%s/.claude.json", home) >= (int)sizeof(from) ||
	    snprintf(to, sizeof(to), "%s/.claude.json", dir) >= (int)sizeof(to))
		return err_set(e, "the path %s is too long", home);
	if (stat(from, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	if (slurp(from, &text, &ignored) != 0 || !(j = cJSON_ParseWithLength(text.p ? text.p : "", text.len))) {
		snprintf(msg, sizeof(msg), "%s is unreadable or not JSON: its user-scope MCP servers are not used",
			 from);
		if (warn)
			warn(msg);
		goto out;
	}
	servers = cJSON_GetObjectItemCaseSensitive(j, "mcpServers");
	if (!cJSON_IsObject(servers))
		goto out;
	if (!(doc = cJSON_CreateObject()) || !cJSON_AddItemReferenceToObject(doc, "mcpServers", servers) ||
	    jsj_print(&out, doc, 2) != 0) {
		rc = err_set(e, "out of memory copying the user-scope MCP servers");
		goto out;
	}
	rc = write_new(to, out.p, out.len, e);
out:
	cJSON_Delete(doc);
	cJSON_Delete(j);
	buf_free(&text);
	buf_free(&out);
	return rc;
}

int cf_populate(const char *home, const char *dir, void (*warn)(const char *msg), struct err *e)
{
	char src[4096];
	struct stat st;

	if (!home || !*home)
		return 0;
	if (snprintf(src, sizeof(src), "%s/.claude", home) >= (int)sizeof(src))
		return err_set(e, "HOME is too long");
	if (stat(src, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (link_dirs(src, dir, e) != 0 || copy_files(src, dir, e) != 0))
		return -1;
	return user_mcp(home, dir, warn, e);
}
