/*
 * topic.h: one reader per task in serve, however many streams follow it
 * (prefix topic_).
 *
 * The first stream of a task makes its topic; the topic's reader thread
 * follows the task's log in storage (follow.h: woken by the local
 * backend's watch, or polling, fast while lines flow and backing off to
 * 2 s when idle) and renders each line into an SSE frame once.  Frames
 * are shared, refcounted, and kept in a window of the most recent ones
 * (CCR_SSE_BACKLOG frames and 16 MiB at most); every stream of the task
 * reads them from there, so the storage calls for a task do not grow
 * with its audience, and serve holds one window per task, not one per
 * stream.  A stream either waits in topic_next or subscribes for a
 * wake-up per frame and asks topic_next(ms 0) when woken.  When the task is terminal the reader renders the closing
 * events once and stops.  The last stream to leave ends the topic.
 *
 * A stream that needs lines older than the window (a resume from an old
 * Last-Event-ID, or a topic made after the task had many lines) reads
 * that history from storage itself, once, then joins the window.  A live
 * stream that falls out of the window (its client reads too slowly) is
 * told so: topic_next() returns TOPIC_BEHIND and the stream ends with
 * `event: reconnect` carrying its last id, without slowing the others.
 */
#ifndef CCR_TOPIC_H
#define CCR_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "backend/storage.h"

struct topics;
struct topic;
struct topic_frame;

/* topics_new: the registry of one serve instance (window: frames kept per
 * task; 0 for the default).  NULL when out of memory. */
struct topics *topics_new(struct storage *st, size_t window);
void topics_free(struct topics *r);

/* topic_join: the task's topic, made (and its reader started) on first
 * use; topic_leave gives it back. */
struct topic *topic_join(struct topics *r, const char *task_id);
void topic_leave(struct topics *r, struct topic *t);

enum topic_wait { TOPIC_FRAME, TOPIC_TIMEOUT, TOPIC_ENDED, TOPIC_BEHIND, TOPIC_HISTORY };

/* topic_next: the frame with id `want`, waiting up to ms for it (0: not
 * at all).
 *   TOPIC_FRAME    *out holds it (give it back with topic_frame_put)
 *   TOPIC_TIMEOUT  nothing new yet
 *   TOPIC_ENDED    the task is over and every line was read: *out is the
 *                  closing events (a frame with id 0)
 *   TOPIC_HISTORY  want is older than the window: read it from storage
 *   TOPIC_BEHIND   the same, for a caller already live: it fell behind */
enum topic_wait topic_next(struct topic *t, uint64_t want, int live, int ms, struct topic_frame **out);

/* A subscriber's wake-up: topic_subscribe adds s (the caller's struct, kept
 * until topic_unsubscribe) and the reader calls s->wake(s->arg) after
 * each new frame and once the closing events are there, under the
 * topic's lock: wake must not block or call into the topic (a parked
 * stream's hs_stream_wake).  After topic_unsubscribe returns, wake is not
 * called any more. */
struct topic_sub {
	void (*wake)(void *arg);
	void *arg;
	struct topic_sub *next;
};
void topic_subscribe(struct topic *t, struct topic_sub *s);
void topic_unsubscribe(struct topic *t, struct topic_sub *s);

const char *topic_frame_data(const struct topic_frame *f, size_t *len);
uint64_t topic_frame_id(const struct topic_frame *f);
void topic_frame_put(struct topic_frame *f);

/* topic_first: the oldest id the window holds (the next one when empty). */
uint64_t topic_first(struct topic *t);

#endif
