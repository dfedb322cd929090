/*
 * dirwatch.c: see dirwatch.h.
 *
 * State: a table of directories (inotify watch descriptor, path) and a
 * table of waiters (eventfd, index of its directory, tag, name queue),
 * both small arrays searched linearly under one mutex: a serve process
 * follows at most a few thousand directories, and a lookup happens once
 * per event.
 *
 * The thread polls the inotify fd and a stop eventfd.  For each event it
 * queues the name with every waiter of the event's directory and bumps
 * their eventfds.  IN_IGNORED (the kernel dropped the watch: the
 * directory was removed) and IN_Q_OVERFLOW (the kernel dropped events)
 * mark the waiters overflowed and wake them; a dropped directory is
 * marked dead, so the next dw_add() of that path watches afresh.
 * dw_take() swaps a waiter's queue out and reads its eventfd under the
 * same mutex, so a name is never taken without its wake or left behind
 * with the wake consumed.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "backend/dirwatch.h"

#define DW_MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF)
#define DW_SKIP_MAX 32

struct dw_dir {
	int wd;                      /* -1: dropped by the kernel */
	int waiters;
	char path[PATH_MAX];
};

struct dw_waiter {
	int fd;
	int dir;                     /* index into dirs */
	int overflowed;              /* names were lost: list once */
	char *tag;                   /* prefix of each queued name */
	char **names;                /* NULL until the first name */
	size_t nnames;
};

struct dirwatch {
	pthread_mutex_t mu;
	int ifd, stopfd, started;
	pthread_t thread;
	char skip[DW_SKIP_MAX];
	struct dw_dir *dirs;
	int ndirs, capdirs;
	struct dw_waiter *waiters;
	int nwaiters, capwaiters;
};

struct dirwatch *dw_new(const char *skip)
{
	struct dirwatch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	snprintf(w->skip, sizeof(w->skip), "%s", skip ? skip : "");
	pthread_mutex_init(&w->mu, NULL);
	w->ifd = w->stopfd = -1;
	return w;
}

static void bump(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already far from zero; it is readable */
	}
}

static void drop_names(struct dw_waiter *wt)
{
	dw_names_free(wt->names, wt->nnames);
	wt->names = NULL;
	wt->nnames = 0;
}

/* Queue tag + name with waiter wt; a full queue or no memory marks it
 * overflowed (the names it held are useless then: it lists). */
static void queue_name(struct dw_waiter *wt, const char *name)
{
	size_t tl = strlen(wt->tag), nl = strlen(name);
	char *s;

	if (wt->overflowed)
		return;
	if (wt->nnames == DW_QUEUE_MAX || (!wt->names && !(wt->names = calloc(DW_QUEUE_MAX, sizeof(char *)))) ||
	    !(s = malloc(tl + nl + 1))) {
		wt->overflowed = 1;
		drop_names(wt);
		return;
	}
	memcpy(s, wt->tag, tl);
	memcpy(s + tl, name, nl + 1);
	wt->names[wt->nnames++] = s;
}

/* Tell every waiter of directory d about ev, and wake it. */
static void fire_dir(struct dirwatch *w, int d, const struct inotify_event *ev)
{
	int i, named = ev->len > 0 && (ev->mask & (IN_CREATE | IN_MOVED_TO));

	for (i = 0; i < w->nwaiters; i++) {
		struct dw_waiter *wt = &w->waiters[i];

		if (wt->dir != d)
			continue;
		if (named) {
			queue_name(wt, ev->name);
		} else {
			wt->overflowed = 1;
			drop_names(wt);
		}
		bump(wt->fd);
	}
}

/* Handle one event (mutex held). */
static void fire(struct dirwatch *w, const struct inotify_event *ev)
{
	int d, i;

	if (ev->mask & IN_Q_OVERFLOW) {          /* wd is -1: everybody lost events */
		for (i = 0; i < w->nwaiters; i++) {
			w->waiters[i].overflowed = 1;
			drop_names(&w->waiters[i]);
			bump(w->waiters[i].fd);
		}
		return;
	}
	if (ev->len > 0 && w->skip[0] && strncmp(ev->name, w->skip, strlen(w->skip)) == 0)
		return;
	for (d = 0; d < w->ndirs; d++) {
		if (w->dirs[d].wd != ev->wd)
			continue;
		fire_dir(w, d, ev);
		if (ev->mask & IN_IGNORED)
			w->dirs[d].wd = -1;
	}
}

static void *dw_thread(void *arg)
{
	struct dirwatch *w = arg;
	char events[8192] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		struct pollfd p[2] = { { w->ifd, POLLIN, 0 }, { w->stopfd, POLLIN, 0 } };
		ssize_t n, off;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		n = read(w->ifd, events, sizeof(events));
		if (n <= 0)
			continue;
		pthread_mutex_lock(&w->mu);
		for (off = 0; off < n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(events + off);

			fire(w, ev);
			off += (ssize_t)(sizeof(*ev) + ev->len);
		}
		pthread_mutex_unlock(&w->mu);
	}
	return NULL;
}

/* The inotify instance and the thread, on first use (mutex held). */
static int start(struct dirwatch *w)
{
	if (w->started)
		return 0;
	w->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->ifd < 0 || w->stopfd < 0 || pthread_create(&w->thread, NULL, dw_thread, w) != 0) {
		if (w->ifd >= 0)
			close(w->ifd);
		if (w->stopfd >= 0)
			close(w->stopfd);
		w->ifd = w->stopfd = -1;
		return -1;
	}
	w->started = 1;
	return 0;
}

/* The index of dir's entry, watching it when new (mutex held); -1. */
static int dir_index(struct dirwatch *w, const char *dir)
{
	int d, wd;

	if (strlen(dir) >= PATH_MAX)
		return -1;
	for (d = 0; d < w->ndirs; d++)
		if (w->dirs[d].wd >= 0 && strcmp(w->dirs[d].path, dir) == 0)
			return d;
	if ((wd = inotify_add_watch(w->ifd, dir, DW_MASK)) < 0)
		return -1;
	for (d = 0; d < w->ndirs; d++)    /* the same directory under another name */
		if (w->dirs[d].wd == wd)
			return d;
	for (d = 0; d < w->ndirs && w->dirs[d].waiters > 0; d++)
		;
	if (d == w->ndirs) {
		if (w->ndirs == w->capdirs) {
			int cap = w->capdirs ? w->capdirs * 2 : 16;
			struct dw_dir *nd = realloc(w->dirs, (size_t)cap * sizeof(*nd));

			if (!nd) {
				inotify_rm_watch(w->ifd, wd);
				return -1;
			}
			w->dirs = nd;
			w->capdirs = cap;
		}
		w->ndirs++;
	}
	w->dirs[d].wd = wd;
	w->dirs[d].waiters = 0;
	strcpy(w->dirs[d].path, dir);
	return d;
}

static int add_waiter(struct dirwatch *w, int fd, int d, const char *tag)
{
	struct dw_waiter *wt;

	if (w->nwaiters == w->capwaiters) {
		int cap = w->capwaiters ? w->capwaiters * 2 : 16;
		struct dw_waiter *nw = realloc(w->waiters, (size_t)cap * sizeof(*nw));

		if (!nw)
			return -1;
		w->waiters = nw;
		w->capwaiters = cap;
	}
	wt = &w->waiters[w->nwaiters];
	memset(wt, 0, sizeof(*wt));
	if (!(wt->tag = strdup(tag ? tag : "")))
		return -1;
	wt->fd = fd;
	wt->dir = d;
	w->nwaiters++;
	w->dirs[d].waiters++;
	return 0;
}

int dw_add(struct dirwatch *w, const char *dir, const char *tag)
{
	int d, fd = -1;

	if (!w)
		return -1;
	pthread_mutex_lock(&w->mu);
	if (start(w) != 0 || (d = dir_index(w, dir)) < 0)
		goto out;
	if ((fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		goto unwatch;
	if (add_waiter(w, fd, d, tag) == 0)
		goto out;
	close(fd);
	fd = -1;
unwatch:
	if (w->dirs[d].waiters == 0 && w->dirs[d].wd >= 0) {
		inotify_rm_watch(w->ifd, w->dirs[d].wd);
		w->dirs[d].wd = -1;
	}
out:
	pthread_mutex_unlock(&w->mu);
	return fd;
}

static struct dw_waiter *waiter_of(struct dirwatch *w, int fd)
{
	int i;

	for (i = 0; i < w->nwaiters; i++)
		if (w->waiters[i].fd == fd)
			return &w->waiters[i];
	return NULL;
}

int dw_take(struct dirwatch *w, int fd, char ***names, size_t *n)
{
	struct dw_waiter *wt;
	uint64_t v;
	int rc = -1;

	*names = NULL;
	*n = 0;
	if (!w)
		return -1;
	pthread_mutex_lock(&w->mu);
	if ((wt = waiter_of(w, fd))) {
		if (read(fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: nothing happened since the last take */
		}
		rc = wt->overflowed;
		if (!rc) {
			*names = wt->names;
			*n = wt->nnames;
			wt->names = NULL;
			wt->nnames = 0;
		}
		wt->overflowed = 0;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

void dw_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void waiter_free(struct dw_waiter *wt)
{
	close(wt->fd);
	drop_names(wt);
	free(wt->tag);
}

void dw_remove(struct dirwatch *w, int fd)
{
	struct dw_waiter *wt;
	struct dw_dir *dd;

	if (!w || fd < 0)
		return;
	pthread_mutex_lock(&w->mu);
	if (!(wt = waiter_of(w, fd))) {
		close(fd);
		pthread_mutex_unlock(&w->mu);
		return;
	}
	dd = &w->dirs[wt->dir];
	waiter_free(wt);
	*wt = w->waiters[--w->nwaiters];
	if (--dd->waiters == 0 && dd->wd >= 0) {
		inotify_rm_watch(w->ifd, dd->wd);
		dd->wd = -1;
	}
	pthread_mutex_unlock(&w->mu);
}

void dw_counts(struct dirwatch *w, int *waiters, int *dirs)
{
	int d, n = 0;

	pthread_mutex_lock(&w->mu);
	for (d = 0; d < w->ndirs; d++)
		n += w->dirs[d].waiters > 0;
	*waiters = w->nwaiters;
	*dirs = n;
	pthread_mutex_unlock(&w->mu);
}

void dw_free(struct dirwatch *w)
{
	int i;

	if (!w)
		return;
	if (w->started) {
		bump(w->stopfd);
		pthread_join(w->thread, NULL);
		close(w->ifd);
		close(w->stopfd);
	}
	for (i = 0; i < w->nwaiters; i++)
		waiter_free(&w->waiters[i]);
	free(w->waiters);
	free(w->dirs);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
