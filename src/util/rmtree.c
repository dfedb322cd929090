/*
 * rmtree.c: see rmtree.h.
 *
 * Removal works on directory descriptors: fstatat(AT_SYMLINK_NOFOLLOW)
 * tells links and files (unlinked in place) from directories, which are
 * opened with O_NOFOLLOW|O_DIRECTORY, given mode 0700 through the
 * descriptor (so read-only and non-searchable directories can be emptied),
 * emptied recursively and removed.  A directory we cannot even open gets
 * fchmodat() on its name first; that is the only path-based step, and it
 * runs after the processes that used the tree are gone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/rmtree.h"

#define MAX_DEPTH 256

static int copy(char *dst, size_t n, const char *src)
{
	return snprintf(dst, n, "%s", src) >= (int)n ? -1 : 0;
}

/* Remove `name` in directory dfd (see the note above); `shown` holds the
 * path of dfd for messages and is extended in place while descending.
 * Keeps going after an error so as much as possible is removed, and
 * reports the first error. */
static int rm_at(int dfd, const char *name, char *shown, size_t shown_cap, int depth, struct err *e)
{
	struct stat st, st2;
	size_t sl = strlen(shown);
	int fd, pass, rc = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : err_set(e, "cannot remove %s/%s: %s", shown, name, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dfd, name, 0) != 0 && errno != ENOENT)
			return err_set(e, "cannot remove %s/%s: %s", shown, name, strerror(errno));
		return 0;
	}
	if (depth >= MAX_DEPTH)
		return err_set(e, "cannot remove %s/%s: directories nested deeper than %d levels", shown, name,
			       MAX_DEPTH);
	for (pass = 0; pass < 3; pass++) {
		DIR *d;
		struct dirent *de;

		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && (errno == EACCES || errno == EPERM)) {
			/* No read/search permission: grant it by name (see the note above). */
			if (fchmodat(dfd, name, 0700, 0) == 0)
				fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0)
			return errno == ENOENT ? 0 : err_set(e, "cannot open %s/%s to remove it: %s", shown, name,
							      strerror(errno));
		if (fstat(fd, &st2) != 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
			close(fd);
			return err_set(e, "cannot remove %s/%s: it changed while being removed", shown, name);
		}
		if ((st2.st_mode & 0700) != 0700 && fchmod(fd, (st2.st_mode & 07777) | 0700) != 0) {
			int saved = errno;
			close(fd);
			return err_set(e, "cannot make %s/%s writable to remove it: %s", shown, name, strerror(saved));
		}
		d = fdopendir(fd);
		if (!d) {
			int saved = errno;
			close(fd);
			return err_set(e, "cannot list %s/%s to remove it: %s", shown, name, strerror(saved));
		}
		/* Extend the shown path for the children (truncated if it does not fit). */
		snprintf(shown + sl, shown_cap - sl, "/%s", name);
		while ((de = readdir(d))) {
			struct err scratch = ERR_INIT;

			if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
				continue;
			if (rm_at(dirfd(d), de->d_name, shown, shown_cap, depth + 1, rc == 0 ? e : &scratch) != 0)
				rc = -1;
		}
		shown[sl] = 0;
		closedir(d);
		if (rc != 0)
			return rc;
		if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		if (errno != ENOTEMPTY && errno != EEXIST)
			return err_set(e, "cannot remove %s/%s: %s", shown, name, strerror(errno));
		/* Something appeared meanwhile: go round again. */
	}
	return err_set(e, "cannot remove %s/%s: it keeps getting new entries", shown, name);
}

int rmtree(const char *path, struct err *e)
{
	char parent[PATH_MAX], shown[PATH_MAX], name[NAME_MAX + 1];
	const char *slash;
	size_t len;
	int dfd, rc;

	if (!path || !*path || copy(parent, sizeof(parent), path) != 0)
		return err_set(e, "cannot remove '%s': bad path", path ? path : "(null)");
	len = strlen(parent);
	while (len > 1 && parent[len - 1] == '/')
		parent[--len] = 0;
	slash = strrchr(parent, '/');
	if (copy(name, sizeof(name), slash ? slash + 1 : parent) != 0)
		return err_set(e, "cannot remove '%s': name too long", path);
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return err_set(e, "refusing to remove '%s'", path);
	if (!slash)
		strcpy(parent, ".");
	else if (slash == parent)
		strcpy(parent, "/");
	else
		parent[slash - parent] = 0;
	dfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : err_set(e, "cannot remove %s: %s", path, strerror(errno));
	memcpy(shown, parent, strlen(parent) + 1);
	if (strcmp(shown, "/") == 0)
		shown[0] = 0;
	rc = rm_at(dfd, name, shown, sizeof(shown), 0, e);
	close(dfd);
	return rc;
}

