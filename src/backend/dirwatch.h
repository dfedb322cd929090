/*
 * dirwatch.h: many waiters on a few directories through one inotify
 * instance (the local storage backend's watch()).
 *
 * Linux allows a user only 128 inotify instances by default
 * (fs.inotify.max_user_instances), so one instance per SSE stream stops
 * at 128 streams.  A dirwatch holds a single instance and one watch per
 * directory, shared by everybody waiting on that directory.  Each waiter
 * gets its own eventfd, which becomes readable when a file is created in,
 * renamed into or removed with the directory; the waiter reads 8 bytes to
 * re-arm it and hands it back with dw_remove() when done.
 *
 * A thread, started with the first waiter, reads the instance and bumps
 * the waiters' eventfds; dw_free() stops it.  Every function is safe to
 * call from several threads.
 *
 * Prefix dw_.
 */
#ifndef CCR_DIRWATCH_H
#define CCR_DIRWATCH_H

struct dirwatch;

/* A watcher with no waiters yet; NULL when out of memory. */
struct dirwatch *dw_new(void);

/* Wait on directory `dir` (which must exist): an eventfd, or -1 (no
 * inotify, the system's watch limit, no memory; callers then poll). */
int dw_add(struct dirwatch *w, const char *dir);

/* Stop waiting: forgets and closes fd; the directory's watch goes when
 * its last waiter does. */
void dw_remove(struct dirwatch *w, int fd);

/* Waiters and directories now (for tests and the bench). */
void dw_counts(struct dirwatch *w, int *waiters, int *dirs);

/* Stop the thread, close everything.  NULL is fine. */
void dw_free(struct dirwatch *w);

#endif
