/*
 * upload.h: postExecutionActions.uploadFiles (seed-spec §11.4; fixes the
 * upload part of S9).
 *
 * Each pattern of globPatterns is matched relative to the workspace root:
 * `*` and `?` within a path segment, `[...]` classes, `**` for any number
 * of directories, `{a,b}` braces (nested allowed; no `{1..3}` ranges),
 * backslash escapes.  Names starting with '.' are matched only by a
 * pattern segment that starts with '.' (`**` never enters dot
 * directories).  Only regular files match; `node_modules` and `.git` are
 * never entered or matched.  Matches of one pattern are sorted and unique;
 * a file matched by two patterns is uploaded twice, as in the seed.
 *
 * Nothing outside the workspace is read: an absolute pattern or one with a
 * ".." segment is refused with a warning (the seed honoured them, S9);
 * `**` does not follow symbolic links; a link met by name is followed only
 * when its target is inside the root, and a link to a file outside is
 * skipped with a warning.  Each file is re-checked with realpath() and
 * opened with O_NOFOLLOW just before it is read.
 *
 * Object names are `(gcsPrefix || "files/" + taskId) + "/" + relpath`; a
 * trailing '/' of gcsPrefix is dropped and the prefix must be a valid
 * storage key prefix.  Objects carry the custom metadata taskId,
 * originalPath, uploadedAt (ISO 8601 with milliseconds) and sizeBytes, and
 * a content type guessed from the extension (like the GCS client did).
 * The result is the seed's `uploadedFiles` array:
 * [{"originalPath": <absolute path>, "gcsPath": <storage URL>,
 *   "sizeBytes": n}, ...], [] when nothing matched.
 *
 * Per-pattern and per-file problems are warnings (through the callback,
 * redacted) and skipped; -1 with `e` only for a malformed uploadFiles
 * object, an invalid prefix, or running out of memory.
 */
#ifndef CCR_UPLOAD_H
#define CCR_UPLOAD_H

#include <stddef.h>

#include <cJSON.h>

#include "backend/storage.h"
#include "util/err.h"

#define UP_MAX_FILE ((size_t)512 << 20)
#define UP_MAX_MATCHES 10000

typedef void up_warn_fn(void *arg, const char *msg);

struct up_config {
	struct storage *st;
	const char *root;            /* workspaceRoot, absolute */
	const char *task_id;
	size_t max_file_bytes;       /* 0: UP_MAX_FILE; larger files are skipped */
	up_warn_fn *warn;            /* may be NULL */
	void *arg;
};

/* up_run: upload what uploadFiles ({globPatterns: [..], gcsPrefix?})
 * asks for; *uploaded is the uploadedFiles array (cJSON_Delete it). */
int up_run(const struct up_config *c, const cJSON *upload_files, cJSON **uploaded, struct err *e);

struct up_matches {
	char **rel;                  /* paths relative to root, sorted, unique */
	size_t n, cap;
};

/* up_glob: the files pattern matches under root, appended to m (free with
 * up_matches_free).  A refused pattern (absolute, "..", too many brace
 * alternatives) is -1 with e set; skipped links are warnings. */
int up_glob(const char *root, const char *pattern, struct up_matches *m, up_warn_fn *warn, void *arg,
	    struct err *e);
void up_matches_free(struct up_matches *m);

/* up_content_type: the MIME type for a file name's extension, or NULL. */
const char *up_content_type(const char *name);

#endif
