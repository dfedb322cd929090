/*
 * msgsock.h: the direct channel from `ccr serve` to a local job that takes
 * follow-up messages (prefix msk_).
 *
 * In local mode serve and its jobs share one machine, so a message, an
 * interrupt or an end need not go through storage: the job of a task that
 * takes messages listens on a unix-domain socket whose path both sides
 * derive from the data directory and the task id,
 *     <data dir>/.run/msg/<first 32 hex of sha256("ccr-msg:" task id)>.sock
 * (a hash, so any task id fits in sun_path; when the directory itself is
 * too long, /proc/self/fd/<dir fd>/<name> is used).  serve connects, sends
 * one frame and waits for a one-byte answer; the connection then closes:
 *     "CCM1" <4-byte big-endian length> <frame>   ->   'k' taken | 'x' refused
 * The frame is the very record serve would store in the task's inbox,
 * sealed with the payload envelope (serve/inbox.c), so nothing is sent or
 * written in plaintext and only a holder of the sealing key can make a
 * frame the job takes.
 *
 * Why the agent cannot use it: the directory is 0700 under ccr's data
 * directory, which the sandbox does not show (sandbox.h: the mount
 * namespace holds the workspace, CCR_SANDBOX_RW/RO_PATHS and system
 * directories only).  Landlock (the landlock-only level) does not govern
 * connect() to a pathname socket on kernels up to ABI 7, so there the
 * agent could connect, but without the key it cannot seal a frame and
 * the job refuses it (tests/test_sandbox.py probes exactly that).  The
 * job also refuses a peer of another uid, reads a frame with a 2 s limit
 * and takes one connection at a time, so a peer that stalls only delays
 * serve until it gives up and uses the storage inbox instead.
 *
 * Since the path depends only on the data directory and the task id, any
 * serve instance sharing that directory reaches the job, also one started
 * after the serve that started the job.
 *
 * The listener is optional everywhere: when msk_send fails (no job is
 * listening, an older job, a stall, cloud mode never tries), serve stores
 * the record in the inbox, which the job also reads (job/convo.h).
 */
#ifndef CCR_JOB_MSGSOCK_H
#define CCR_JOB_MSGSOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define MSK_FRAME_MAX (16u << 20)
#define MSK_IO_TIMEOUT_MS 2000

/* msk_take_fn: called (on the listener's thread) with each frame; 0 when
 * it was taken, -1 to refuse it. */
typedef int (*msk_take_fn)(void *arg, const uint8_t *frame, size_t n);

struct msk_server {
	int fd;                            /* listening; -1 when closed */
	int stop[2];                       /* a pipe: wakes the thread to stop */
	pthread_t th;
	int th_on;
	char dir[4200], name[48];
	msk_take_fn take;
	void *arg;
};

/* msk_locate: the socket's directory and file name for a task. */
void msk_locate(const char *data_dir, const char *task_id, char *dir, size_t dn, char *name, size_t nn);

/* msk_listen: create the directory (0700), bind and listen, and start the
 * thread that hands each frame to take.  -1 with e set on failure (the
 * caller then relies on the inbox). */
int msk_listen(struct msk_server *s, const char *data_dir, const char *task_id, msk_take_fn take, void *arg,
	       struct err *e);

/* msk_close: stop the thread, close the socket and remove its file. */
void msk_close(struct msk_server *s);

/* msk_send: deliver one frame to the task's job within timeout_ms: 0 when
 * the job took it, -1 with e set otherwise (nothing listening, refused,
 * timed out). */
int msk_send(const char *data_dir, const char *task_id, const void *frame, size_t n, int timeout_ms,
	     struct err *e);

/* msk_remove: remove the socket file a dead job left (the reconciler). */
void msk_remove(const char *data_dir, const char *task_id);

#endif
