/*
 * dirwatch.h: many waiters on a few directories through one inotify
 * instance (the local storage backend's watch()).
 *
 * Linux allows a user only 128 inotify instances by default
 * (fs.inotify.max_user_instances), so one instance per SSE stream stops
 * at 128 streams.  A dirwatch holds a single instance and one watch per
 * directory, shared by everybody waiting on that directory.  Each waiter
 * gets its own eventfd, which becomes readable when a file is created in,
 * renamed into or removed with the directory; the waiter takes what
 * happened with dw_take() (which re-arms the eventfd) and hands the fd
 * back with dw_remove() when done.
 *
 * What happened is a list of names: each waiter has a bounded queue
 * (DW_QUEUE_MAX) of the names that appeared in its directory (created or
 * renamed in), in the order the kernel reported them, each prefixed with
 * the waiter's tag.  So a waiter learns of a new file without listing the
 * directory.  When the names cannot be known (the queue is full, the
 * kernel's own queue overflowed, the directory went away, no memory) the
 * waiter is marked overflowed instead: it must list the directory once.
 * Names starting with the watcher's skip prefix (temporaries written
 * before a rename) neither wake nor queue anything.
 *
 * A thread, started with the first waiter, reads the instance and bumps
 * the waiters' eventfds; dw_free() stops it.  Every function is safe to
 * call from several threads.
 *
 * Prefix dw_.
 */
#ifndef CCR_DIRWATCH_H
#define CCR_DIRWATCH_H

#include <stddef.h>

/* Names queued per waiter before it is marked overflowed. */
#define DW_QUEUE_MAX 512

struct dirwatch;

/* A watcher with no waiters yet (skip: the name prefix to ignore, or
 * NULL); NULL when out of memory. */
struct dirwatch *dw_new(const char *skip);

/* Wait on directory `dir` (which must exist), queueing names prefixed
 * with tag (NULL: none): an eventfd, or -1 (no inotify, the system's
 * watch limit, no memory; callers then poll). */
int dw_add(struct dirwatch *w, const char *dir, const char *tag);

/* What happened since the last call, re-arming fd:
 *   0   *names holds *n strings (tag + name, oldest first; *n may be 0);
 *       free them with dw_names_free
 *   1   overflowed: the names are lost, list the directory (*n is 0)
 *  -1   fd is no waiter of w (*n is 0) */
int dw_take(struct dirwatch *w, int fd, char ***names, size_t *n);
void dw_names_free(char **names, size_t n);

/* Stop waiting: forgets and closes fd; the directory's watch goes when
 * its last waiter does. */
void dw_remove(struct dirwatch *w, int fd);

/* Waiters and directories now (for tests and the bench). */
void dw_counts(struct dirwatch *w, int *waiters, int *dirs);

/* Stop the thread, close everything.  NULL is fine. */
void dw_free(struct dirwatch *w);

#endif
