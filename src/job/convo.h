/*
 * convo.h: a task that takes follow-up messages (prefix cv_).
 *
 * With idleAfterResultSeconds the CLI runs with --input-format stream-json
 * (and --replay-user-messages, so each message it takes appears in its
 * output, and so in the task's log and every SSE stream of it).  Its stdin
 * stays open after the prompt: one thread of the job reads the task's
 * inbox, inbox/<task id>/<time>-<random>.enc, objects that serve stores
 * sealed with the payload envelope (serve/inbox.c), in name order, and
 * acts on each, then deletes it:
 *   {"type":"message","text":T}  -> {"type":"user","message":{"role":"user",
 *                                    "content":[{"type":"text","text":T}]}}
 *   {"type":"interrupt"}         -> {"type":"control_request","request_id":
 *                                    "ccr-interrupt-<n>","request":{"subtype":
 *                                    "interrupt"}}  (the CLI ends the current
 *                                    turn with a result and waits)
 *   {"type":"end"}               -> stdin is closed: the CLI exits
 * (formats checked against the pinned CLI, 2.1.332).  The inbox is polled
 * every CCR_INBOX_POLL_MS (default 100 in local mode, 1000 in cloud mode).
 *
 * In local mode the same sealed records also come directly: the job
 * listens on its task's unix socket (task/msgsock.h) and serve tries that
 * first.  A record taken there is queued in memory (never written to
 * disk) and the inbox is then only the fallback, polled at most once a
 * second (CV_POLL_LISTENING_MS).  One thread acts on both: each pass
 * lists the inbox and merges its objects with the queued direct records
 * by message id (serve makes ids in acceptance order), so order holds
 * whichever way each message came, and nothing is acted on before the
 * CLI's stdin is there.  The ids of direct records are remembered, so an
 * inbox copy of one (serve gave up waiting for the job's answer and
 * stored it) is deleted unread instead of sent twice.
 * After a result line, when no message follows within idleAfterResultSeconds,
 * stdin is closed too, so a conversation nobody continues ends by itself.
 * Messages left when the run ends are deleted unread.  The CLI exits 1
 * when its input ends right after an interrupted turn; a conversation
 * ccr ended that way counts as completed (cv_ended_on_interrupt).
 */
#ifndef CCR_JOB_CONVO_H
#define CCR_JOB_CONVO_H

#include <pthread.h>
#include <stdint.h>

#include "backend/seal.h"
#include "backend/storage.h"
#include "task/msgsock.h"
#include "task/record.h"
#include "util/buf.h"
#include "util/err.h"

#define CV_SEEN 64
#define CV_ID_MAX 40

struct cv_direct;                      /* a record taken on the socket, not yet acted on */

struct cv_ctx {
	struct storage *st;
	struct sealer *sealer;
	char task_id[200];
	char prefix[TR_KEY_MAX];           /* inbox/<task id>/ */
	long idle_after_ms;
	pthread_t th;
	int th_on;
	struct msk_server ms;              /* the direct channel (local mode) */
	int ms_on;
	pthread_mutex_t lock;              /* everything below */
	long poll_ms;
	struct cv_direct *queue;           /* by id */
	char seen[CV_SEEN][CV_ID_MAX];     /* ids of the last records taken on the socket */
	unsigned nseen;
	int fd;                            /* the CLI's stdin; -1 before it ran and once closed */
	int ended;                         /* stdin was closed (end, idle, or the CLI went) */
	int waiting;                       /* a result line came and no turn since */
	int64_t result_at;                 /* when (monotonic ms) */
	int stop;
	int wake[2];
	unsigned messages, interrupts;
	int interrupt_sent;                /* an interrupt went out, its turn's result not yet in */
	int last_interrupted;              /* the last result ended an interrupted turn */
	int closed_by_ccr;                 /* stdin was closed on /end or idleAfterResultSeconds */
};

/* cv_user_line: one stream-json user message line for text (with '\n'). */
int cv_user_line(struct buf *out, const char *text);

/* cv_start: start the inbox thread of task_id; with data_dir (local
 * mode) also listen on the task's socket (a failure there is logged and
 * leaves the inbox alone). */
int cv_start(struct cv_ctx *c, struct storage *st, struct sealer *s, const char *task_id, long idle_after_ms,
	     long poll_ms, const char *data_dir, struct err *e);

/* cv_stdin: the CLI's stdin (runner's on_stdin); c owns fd from now on. */
void cv_stdin(struct cv_ctx *c, int fd);

/* cv_line: one line of the CLI's output (turns start and end). */
void cv_line(struct cv_ctx *c, const char *line, size_t n);

/* cv_stop: stop listening and the thread, close stdin, drop what is left
 * in the queue and the inbox. */
void cv_stop(struct cv_ctx *c);

/* cv_ended_on_interrupt: 1 when the conversation was ended by ccr (/end or
 * idleAfterResultSeconds) right after an interrupted turn: the CLI then
 * exits 1 for that turn, but the task ended as asked. */
int cv_ended_on_interrupt(struct cv_ctx *c);

#endif
