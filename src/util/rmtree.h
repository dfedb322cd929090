/*
 * rmtree.h: remove a directory tree without following symbolic links.
 */
#ifndef CCR_RMTREE_H
#define CCR_RMTREE_H

#include "util/err.h"

/* rmtree: remove `path` (a directory or any other file) and, for a
 * directory, everything below it, without following symbolic links and
 * granting ourselves the permissions needed on the way.  A missing path
 * is not an error.  A symbolic link as the last component of path is
 * removed, not followed.  Keeps going after an error so as much as
 * possible is removed; 0, or -1 with the first error in e (messages name
 * paths unredacted: callers that may hold secrets in paths redact). */
int rmtree(const char *path, struct err *e);

#endif
