/*
 * workspace.c: see workspace.h.
 *
 * Design.  Containment is checked on real paths: ws_resolve() walks the
 * request's path one segment at a time from realpath(root), lstat()s each
 * existing prefix, and when it meets a symbolic link resolves it with
 * realpath() and insists the result is root or below it; the walk then
 * continues from the resolved path, so the answer never contains a link.
 * Parts that do not exist yet are appended lexically (there is nothing to
 * follow there), or created one by one with WS_MKDIR.  ".." is refused
 * outright rather than normalised: no legitimate cwdRelative or file name
 * needs it, and refusing is easier to reason about.
 *
 * Files are written by opening the (link-free) parent directory and using
 * openat() on the last name with O_CREAT|O_EXCL|O_NOFOLLOW after unlinking
 * whatever non-directory was there, so a link, a hard link or a FIFO left
 * by a cloned repository is replaced instead of written through.
 *
 * Removal is util/rmtree.h's; its messages are redacted here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "job/workspace.h"
#include "util/fdio.h"
#include "util/hex.h"
#include "util/redact.h"
#include "util/rmtree.h"

static int copy_path(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	if (l >= n)
		return -1;
	memcpy(dst, src, l + 1);
	return 0;
}

/* mkdir -p of path, new directories 0700; existing ones are left alone. */
static int make_parents(const char *path, struct err *e)
{
	char tmp[PATH_MAX], *p;

	if (copy_path(tmp, sizeof(tmp), path) != 0)
		return err_set(e, "workspace root path too long: %s", path);
	for (p = tmp + 1; ; p++) {
		if (*p != '/' && *p != 0)
			continue;
		{
			char c = *p;
			*p = 0;
			if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
				return err_set(e, "cannot create the workspace root %s: %s (set CCR_WORKSPACE_ROOT to a writable directory)",
					       tmp, strerror(errno));
			*p = c;
		}
		if (*p == 0)
			break;
	}
	return 0;
}

/* The parent must be a directory nobody else can tamper with. */
static int check_parent(const char *parent, struct err *e)
{
	struct stat st;

	if (stat(parent, &st) != 0)
		return err_set(e, "cannot use the workspace root %s: %s", parent, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(e, "the workspace root %s is not a directory (set CCR_WORKSPACE_ROOT)", parent);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return err_set(e, "the workspace root %s belongs to uid %u, not to this user (uid %u): "
			       "remove it or set CCR_WORKSPACE_ROOT to a private directory",
			       parent, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
		return err_set(e, "the workspace root %s is writable by other users: chmod 700 it "
			       "or set CCR_WORKSPACE_ROOT to a private directory", parent);
	return 0;
}

/* The directory name: ws-<hex>, or ws-<task>-<hex> for a task's
 * workspace, so that one left behind by a job that died can be found. */
static int ws_name(char *out, size_t n, const char *parent, const char *task, const char *hex)
{
	int w = task ? snprintf(out, n, "%s/ws-%s-%s", parent, task, hex) : snprintf(out, n, "%s/ws-%s", parent, hex);

	return w < 0 || (size_t)w >= n ? -1 : 0;
}

static int create_named(struct ws *ws, const char *parent, const char *task, struct err *e);

int ws_create_in(struct ws *ws, const char *parent, struct err *e)
{
	return create_named(ws, parent, NULL, e);
}

static int create_named(struct ws *ws, const char *parent, const char *task, struct err *e)
{
	char real[PATH_MAX];
	int tries;

	memset(ws, 0, sizeof(*ws));
	if (!parent || !*parent)
		parent = WS_DEFAULT_PARENT;
	if (make_parents(parent, e) != 0 || check_parent(parent, e) != 0)
		return redact_err(e);
	if (!realpath(parent, real))
		return err_set(e, "cannot resolve the workspace root %s: %s", parent, strerror(errno)), redact_err(e);
	for (tries = 0; tries < 8; tries++) {
		unsigned char rnd[8];
		char hex[17], path[PATH_MAX];
		int fd;

		if (cr_random(rnd, sizeof(rnd)) != 0)
			return err_set(e, "cannot name the workspace: no randomness: %s", strerror(errno));
		hex_fmt(hex, rnd, sizeof(rnd));
		if (ws_name(path, sizeof(path), real, task, hex) != 0)
			return err_set(e, "workspace root path too long: %s", real), redact_err(e);
		if (mkdir(path, 0700) != 0) {
			if (errno == EEXIST)
				continue;
			return err_set(e, "cannot create the workspace %s: %s", path, strerror(errno)), redact_err(e);
		}
		/* The umask may have taken bits away; make it exactly 0700. */
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fchmod(fd, 0700) != 0) {
			err_set(e, "cannot set the mode of the workspace %s: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
			rmdir(path);
			return redact_err(e);
		}
		close(fd);
		memcpy(ws->dir, path, strlen(path) + 1);
		memcpy(ws->root, path, strlen(path) + 1);
		return 0;
	}
	return err_set(e, "cannot create a workspace under %s: 8 random names were taken", real), redact_err(e);
}

int ws_create_for(struct ws *ws, const char *parent, const char *task_id, struct err *e)
{
	return create_named(ws, parent && *parent ? parent : WS_DEFAULT_PARENT, task_id, e);
}

static int is_js_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int ws_write_ssh_key(struct ws *ws, const char *key, struct err *e)
{
	struct buf norm = BUF_INIT;
	const char *s, *end;
	char sshdir[PATH_MAX], path[PATH_MAX];
	struct stat st;
	int fd = -1, rc = -1;

	if (!ws->dir[0])
		return err_set(e, "no workspace to write the SSH key into");
	if (!key)
		return err_set(e, "Invalid SSH key format: Missing BEGIN/PRIVATE KEY markers");
	for (s = key; *s && is_js_space(*s); s++)
		;
	for (end = s + strlen(s); end > s && is_js_space(end[-1]); end--)
		;
	/* The checks look at the trimmed key only (never quote it). */
	if (!memmem(s, (size_t)(end - s), "BEGIN", 5) || !memmem(s, (size_t)(end - s), "PRIVATE KEY", 11))
		return err_set(e, "Invalid SSH key format: Missing BEGIN/PRIVATE KEY markers");
	for (; s < end; s++) {
		int r;
		if (*s == '\r') {
			r = buf_addc(&norm, '\n');
			if (s + 1 < end && s[1] == '\n')
				s++;
		} else {
			r = buf_addc(&norm, *s);
		}
		if (r != 0)
			goto oom;
	}
	if ((norm.len == 0 || norm.p[norm.len - 1] != '\n') && buf_addc(&norm, '\n') != 0)
		goto oom;
	if ((size_t)snprintf(sshdir, sizeof(sshdir), "%s/.ssh", ws->dir) >= sizeof(sshdir) ||
	    (size_t)snprintf(path, sizeof(path), "%s/deploy_key", sshdir) >= sizeof(path)) {
		err_set(e, "workspace path too long for the SSH key: %s", ws->dir);
		goto out;
	}
	if (mkdir(sshdir, 0700) != 0 && errno != EEXIST) {
		err_set(e, "cannot create %s: %s", sshdir, strerror(errno));
		goto out;
	}
	if (lstat(sshdir, &st) != 0 || !S_ISDIR(st.st_mode) || chmod(sshdir, 0700) != 0) {
		err_set(e, "cannot use %s for the SSH key: %s", sshdir,
			errno ? strerror(errno) : "not a directory");
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		err_set(e, "cannot create the SSH key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) != 0 || fd_write_all(fd, norm.p, norm.len) != 0) {
		err_set(e, "cannot write the SSH key file %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		goto out;
	}
	if (close(fd) != 0) {
		err_set(e, "cannot write the SSH key file %s: %s", path, strerror(errno));
		unlink(path);
		goto out;
	}
	memcpy(ws->key_path, path, strlen(path) + 1);
	rc = 0;
	goto out;
oom:
	err_set(e, "out of memory writing the SSH key");
out:
	if (norm.p)
		cr_wipe(norm.p, norm.cap);
	buf_free(&norm);
	return rc == 0 ? 0 : redact_err(e);
}

/* 1 when path is root or below it (both absolute, link-free). */
static int inside(const char *path, const char *root)
{
	size_t rl = strlen(root);

	if (rl == 1 && root[0] == '/')
		return path[0] == '/';
	return strncmp(path, root, rl) == 0 && (path[rl] == 0 || path[rl] == '/');
}

/* The next segment of *p that is neither empty nor "."; 0 at the end. */
static int next_seg(const char **p, const char **seg, size_t *len)
{
	for (;;) {
		const char *s = *p;
		size_t n;

		while (*s == '/')
			s++;
		if (!*s) {
			*p = s;
			return 0;
		}
		n = strcspn(s, "/");
		*p = s + n;
		if (n == 1 && s[0] == '.')
			continue;
		*seg = s;
		*len = n;
		return 1;
	}
}

int ws_resolve(const char *root, const char *rel, int flags, struct buf *out, struct err *e)
{
	char real_root[PATH_MAX], cur[PATH_MAX];
	const char *p, *seg;
	size_t len, cl;
	int exists = 1;

	buf_reset(out);
	if (!rel)
		rel = "";
	if (rel[0] == '/')
		return err_set(e, "path '%s' is absolute: give a path relative to the workspace", rel), redact_err(e);
	if (strlen(rel) >= PATH_MAX)
		return err_set(e, "path '%.80s...' is too long", rel), redact_err(e);
	for (p = rel; next_seg(&p, &seg, &len);)
		if (len == 2 && seg[0] == '.' && seg[1] == '.')
			return err_set(e, "path '%s' contains '..': it must stay inside the workspace", rel), redact_err(e);
	if (!realpath(root, real_root))
		return err_set(e, "cannot resolve the workspace %s: %s", root, strerror(errno)), redact_err(e);
	memcpy(cur, real_root, strlen(real_root) + 1);
	cl = strlen(cur);
	for (p = rel; next_seg(&p, &seg, &len);) {
		const char *rest = p, *s2;
		size_t l2;
		int last = !next_seg(&rest, &s2, &l2);
		struct stat st;

		if (cl + 1 + len >= sizeof(cur))
			return err_set(e, "path '%s' is too long", rel), redact_err(e);
		if (!(cl == 1 && cur[0] == '/'))
			cur[cl++] = '/';
		memcpy(cur + cl, seg, len);
		cl += len;
		cur[cl] = 0;
		if (!exists)
			continue;
		if (lstat(cur, &st) != 0) {
			if (errno != ENOENT)
				return err_set(e, "cannot use '%s' in the workspace: %s", rel, strerror(errno)), redact_err(e);
			if (!(flags & WS_MKDIR)) {
				exists = 0;
				continue;
			}
			if (mkdir(cur, 0755) != 0 && errno != EEXIST)
				return err_set(e, "cannot create directory '%s' in the workspace: %s", rel,
					       strerror(errno)), redact_err(e);
			if (lstat(cur, &st) != 0)
				return err_set(e, "cannot use '%s' in the workspace: %s", rel, strerror(errno)), redact_err(e);
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];

			if (!realpath(cur, target))
				return err_set(e, "path '%s' goes through a symbolic link that leads nowhere (%s)", rel,
					       strerror(errno)), redact_err(e);
			if (!inside(target, real_root))
				return err_set(e, "path '%s' leaves the workspace through a symbolic link", rel), redact_err(e);
			if (stat(target, &st) != 0)
				return err_set(e, "cannot use '%s' in the workspace: %s", rel, strerror(errno)), redact_err(e);
			memcpy(cur, target, strlen(target) + 1);
			cl = strlen(cur);
		}
		if (!S_ISDIR(st.st_mode) && (!last || (flags & WS_MKDIR)))
			return err_set(e, "path '%s': '%.*s' is not a directory", rel, (int)(seg + len - rel), rel),
			       redact_err(e);
	}
	if (buf_add(out, cur, cl) != 0)
		return err_set(e, "out of memory");
	return 0;
}

int ws_join(const struct ws *ws, const char *rel, struct buf *out, struct err *e)
{
	return ws_resolve(ws->root, rel, 0, out, e);
}

int ws_mkdir(const struct ws *ws, const char *rel, struct buf *out, struct err *e)
{
	return ws_resolve(ws->root, rel, WS_MKDIR, out, e);
}

int ws_use_subdir(struct ws *ws, const char *sub, struct err *e)
{
	struct buf b = BUF_INIT;
	struct stat st;

	if (ws_resolve(ws->dir, sub, 0, &b, e) != 0)
		return -1;
	if (stat(b.p, &st) != 0 || !S_ISDIR(st.st_mode) || b.len >= sizeof(ws->root)) {
		err_set(e, "'%s' is not a directory in the workspace", sub);
		buf_free(&b);
		return redact_err(e);
	}
	memcpy(ws->root, b.p, b.len + 1);
	buf_free(&b);
	return 0;
}

int ws_write_file(const char *root, const char *rel, const void *data, size_t n, unsigned mode,
		  struct err *e)
{
	struct buf dir = BUF_INIT;
	char dpart[PATH_MAX];
	const char *name, *slash;
	struct stat st;
	int dfd = -1, fd = -1, rc = -1;

	if (!rel || strlen(rel) >= sizeof(dpart))
		return err_set(e, "file name missing or too long");
	slash = strrchr(rel, '/');
	name = slash ? slash + 1 : rel;
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return err_set(e, "'%s' is not a file name", rel), redact_err(e);
	memcpy(dpart, rel, (size_t)(name - rel));
	dpart[name - rel] = 0;
	if (ws_resolve(root, dpart, WS_MKDIR, &dir, e) != 0)
		return -1;
	dfd = open(dir.p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		err_set(e, "cannot open the directory of '%s': %s", rel, strerror(errno));
		goto out;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode)) {
			err_set(e, "cannot write '%s': a directory is in the way", rel);
			goto out;
		}
		if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT) {
			err_set(e, "cannot replace '%s': %s", rel, strerror(errno));
			goto out;
		}
	}
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
	if (fd < 0) {
		err_set(e, "cannot create '%s': %s", rel, strerror(errno));
		goto out;
	}
	if (fchmod(fd, mode & 07777) != 0 || fd_write_all(fd, data, n) != 0) {
		err_set(e, "cannot write '%s': %s", rel, strerror(errno));
		close(fd);
		goto out;
	}
	if (close(fd) != 0) {
		err_set(e, "cannot write '%s': %s", rel, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (dfd >= 0)
		close(dfd);
	buf_free(&dir);
	return rc == 0 ? 0 : redact_err(e);
}

int ws_remove_tree(const char *path, struct err *e)
{
	return rmtree(path, e) == 0 ? 0 : redact_err(e);
}

int ws_wipe(struct ws *ws, struct err *e)
{
	int rc;

	if (!ws->dir[0])
		return 0;
	/* Overwrite the key before unlinking it (cheap; helps on simple file systems). */
	if (ws->key_path[0]) {
		int fd = open(ws->key_path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd >= 0) {
			if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size < (1 << 20)) {
				char zero[4096];
				off_t left = st.st_size;

				memset(zero, 0, sizeof(zero));
				while (left > 0) {
					size_t k = left < (off_t)sizeof(zero) ? (size_t)left : sizeof(zero);
					if (fd_write_all(fd, zero, k) != 0)
						break;
					left -= (off_t)k;
				}
				(void)fsync(fd);
			}
			close(fd);
		}
	}
	rc = ws_remove_tree(ws->dir, e);
	if (rc == 0)
		memset(ws, 0, sizeof(*ws));
	return rc;
}
