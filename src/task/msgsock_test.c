/*
 * msgsock_test.c: selftests of the direct message channel
 * (msgsock.c) and of the conversation thread that takes records from it
 * and from the inbox (convo.c).
 *
 * Each case works in a private directory under TMPDIR and removes it.
 * The conversation case runs the real thread with a pipe for the CLI's
 * stdin, a local storage and a local key: records come on the socket and
 * through the inbox, before the CLI's stdin exists, one of them twice,
 * and must come out once each, in id order.  The job's log lines it
 * writes are sent to /dev/null meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/seal.h"
#include "backend/storage.h"
#include "job/convo.h"
#include "task/msgsock.h"
#include "job/workspace.h"
#include "selftest/selftest.h"
#include "util/clock.h"

struct msk_seen {
	char got[64];
	int refuse;
};

static int take_copy(void *arg, const uint8_t *frame, size_t n)
{
	struct msk_seen *s = arg;

	snprintf(s->got, sizeof(s->got), "%.*s", (int)n, (const char *)frame);
	return s->refuse ? -1 : 0;
}

/* A private directory under TMPDIR, with `extra` more bytes of name. */
static int tmp_dir(char *dir, size_t n, size_t extra)
{
	const char *tmp = getenv("TMPDIR");
	char pad[200];

	memset(pad, 'd', sizeof(pad) - 1);
	pad[extra < sizeof(pad) - 1 ? extra : sizeof(pad) - 1] = 0;
	snprintf(dir, n, "%s/ccr-msk-%sXXXXXX", tmp && *tmp ? tmp : "/tmp", pad);
	return mkdtemp(dir) ? 0 : -1;
}

static void rm_dir(const char *dir)
{
	struct err e = ERR_INIT;

	(void)ws_remove_tree(dir, &e);
}

/* One exchange over a listener in a data directory of about `extra`
 * more bytes of name: taken, refused, and nothing left after close. */
static int exchange(char *why, size_t whylen, size_t extra)
{
	struct msk_server s;
	struct msk_seen seen = { "", 0 };
	struct err e = ERR_INIT;
	struct stat st;
	char dir[512], path[4400];
	int rc = 0;

	if (tmp_dir(dir, sizeof(dir), extra) != 0)
		return st_fail(why, whylen, "cannot create a directory under TMPDIR");
	if (msk_listen(&s, dir, "task-1", take_copy, &seen, &e) != 0) {
		rm_dir(dir);
		return st_fail(why, whylen, "msk_listen: %s", e.msg);
	}
	snprintf(path, sizeof(path), "%s/%s", s.dir, s.name);
	if (stat(s.dir, &st) != 0 || (st.st_mode & 0777) != 0700)
		rc = st_fail(why, whylen, "%s is not 0700", s.dir);
	else if (msk_send(dir, "task-1", "frame one", 9, 2000, &e) != 0 || strcmp(seen.got, "frame one") != 0)
		rc = st_fail(why, whylen, "the frame did not arrive: %s (got \"%s\")", e.msg, seen.got);
	else if (msk_send(dir, "task-2", "x", 1, 2000, &e) == 0)
		rc = st_fail(why, whylen, "another task's socket answered");
	seen.refuse = 1;
	if (rc == 0 && (msk_send(dir, "task-1", "frame two", 9, 2000, &e) == 0 || !strstr(e.msg, "refused")))
		rc = st_fail(why, whylen, "a refused frame was not reported as refused: %s", e.msg);
	msk_close(&s);
	if (rc == 0 && access(path, F_OK) == 0)
		rc = st_fail(why, whylen, "the socket file is left after msk_close");
	if (rc == 0 && msk_send(dir, "task-1", "late", 4, 2000, &e) == 0)
		rc = st_fail(why, whylen, "a closed listener took a frame");
	rm_dir(dir);
	if (rc == 0)
		snprintf(why, whylen, "socket path %zu bytes", strlen(path));
	return rc;
}

static int t_exchange(char *why, size_t whylen)
{
	return exchange(why, whylen, 0);
}

static int t_long_dir(char *why, size_t whylen)
{
	if (access("/proc/self/fd", F_OK) != 0)
		return snprintf(why, whylen, "skipped: no /proc"), 0;
	return exchange(why, whylen, 150);
}

/* ---- the conversation thread --------------------------------------------- */

struct cv_world {
	char dir[512];
	struct storage *st;
	struct sealer *sealer;
};

static int record(struct cv_world *w, const char *task, const char *id, const char *type, const char *text,
		  struct buf *sealed)
{
	struct buf plain = BUF_INIT;
	struct err e = ERR_INIT;
	int rc;

	buf_printf(&plain, "{\"type\":\"%s\",\"id\":\"%s\",\"taskId\":\"%s\"%s%s%s}", type, id, task,
		   text ? ",\"text\":\"" : "", text ? text : "", text ? "\"" : "");
	rc = plain.p ? envelope_seal(w->sealer, plain.p, plain.len, sealed, &e) : -1;
	buf_free(&plain);
	return rc;
}

static int direct(struct cv_world *w, const char *task, const char *id, const char *type, const char *text)
{
	struct buf sealed = BUF_INIT;
	struct err e = ERR_INIT;
	int rc = record(w, task, id, type, text, &sealed) == 0 ? msk_send(w->dir, "cv-1", sealed.p, sealed.len, 2000, &e)
							       : -1;

	buf_free(&sealed);
	return rc;
}

static int inbox(struct cv_world *w, const char *id, const char *text)
{
	struct storage_put_opts o = { "application/octet-stream", NULL, 0 };
	struct buf sealed = BUF_INIT;
	struct err e = ERR_INIT;
	char key[200];
	int rc;

	snprintf(key, sizeof(key), "inbox/cv-1/%s.enc", id);
	rc = record(w, "cv-1", id, "message", text, &sealed) == 0
		     ? w->st->ops->put(w->st, key, sealed.p, sealed.len, &o, &e) : -1;
	buf_free(&sealed);
	return rc;
}

/* What the CLI's stdin (the pipe's read end) gets until it closes. */
static void read_all(int fd, struct buf *out)
{
	int64_t deadline = clock_mono_ms() + 10000;
	char b[4096];

	while (clock_mono_ms() < deadline) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		(void)poll(&p, 1, 200);
		n = read(fd, b, sizeof(b));
		if (n == 0)
			return;
		if (n > 0)
			buf_add(out, b, (size_t)n);
	}
}

static int cv_order(struct cv_world *w, char *why, size_t whylen)
{
	static const char *const want[] = { "one", "two", "three", "four" };
	struct cv_ctx c;
	struct buf got = BUF_INIT;
	struct err e = ERR_INIT;
	int p[2], rc = 0;
	size_t i;
	const char *at;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return st_fail(why, whylen, "pipe: %s", strerror(errno));
	if (cv_start(&c, w->st, w->sealer, "cv-1", 60000, 10, w->dir, &e) != 0 || !c.ms_on) {
		close(p[0]), close(p[1]);
		return st_fail(why, whylen, "cv_start: %s", e.msg[0] ? e.msg : "no socket");
	}
	/* before the CLI's stdin exists: queued; 2 comes twice, 1 and 3 by the inbox */
	if (direct(w, "cv-1", "0000000000002-aa", "message", "two") != 0 || inbox(w, "0000000000001-aa", "one") ||
	    inbox(w, "0000000000002-aa", "two") || inbox(w, "0000000000003-aa", "three") ||
	    direct(w, "cv-1", "0000000000002-aa", "message", "two") != 0)
		rc = st_fail(why, whylen, "could not send the records");
	if (rc == 0 && (direct(w, "cv-2", "0000000000009-aa", "message", "not mine") == 0 ||
			msk_send(w->dir, "cv-1", "{\"type\":\"end\"}", 14, 2000, &e) == 0))
		rc = st_fail(why, whylen, "a record of another task or an unsealed one was taken");
	cv_stdin(&c, p[1]);
	if (rc == 0 && (direct(w, "cv-1", "0000000000004-aa", "message", "four") != 0 ||
			direct(w, "cv-1", "0000000000005-aa", "end", NULL) != 0))
		rc = st_fail(why, whylen, "could not send the records after the start");
	read_all(p[0], &got);
	cv_stop(&c);
	close(p[0]);
	buf_addc(&got, 0);
	for (i = 0, at = got.p; rc == 0 && i < 4; i++)
		if (!at || !(at = strstr(at, want[i])))
			rc = st_fail(why, whylen, "\"%s\" is missing or out of order in: %.200s", want[i], got.p);
	if (rc == 0 && strstr(strstr(got.p, "two") + 3, "\"two\""))
		rc = st_fail(why, whylen, "\"two\" reached the CLI twice");
	buf_free(&got);
	return rc;
}

static int t_convo(char *why, size_t whylen)
{
	struct cv_world w;
	struct err e = ERR_INIT;
	struct storage_list l = { NULL, 0 };
	char key[600];
	int rc, saved = dup(2), null = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (tmp_dir(w.dir, sizeof(w.dir), 0) != 0)
		return st_fail(why, whylen, "cannot create a directory under TMPDIR");
	snprintf(key, sizeof(key), "%s/ccr.key", w.dir);
	w.st = storage_local_new(w.dir, &e);
	w.sealer = w.st ? seal_local_new(key, &e) : NULL;
	if (!w.sealer) {
		rc = st_fail(why, whylen, "local storage or key: %s", e.msg);
	} else {
		if (saved >= 0 && null >= 0)
			dup2(null, 2);
		rc = cv_order(&w, why, whylen);
		if (saved >= 0 && null >= 0)
			dup2(saved, 2);
		if (rc == 0 && (w.st->ops->list(w.st, "inbox/", NULL, &l, &e) != 0 || l.n != 0))
			rc = st_fail(why, whylen, "the inbox is not empty after the run");
		storage_list_free(&l);
	}
	if (saved >= 0)
		close(saved);
	if (null >= 0)
		close(null);
	if (w.sealer)
		w.sealer->ops->free(w.sealer);
	if (w.st)
		w.st->ops->free(w.st);
	rm_dir(w.dir);
	return rc;
}

const struct st_case msgsock_tests[] = {
	{ "exchange", t_exchange },
	{ "long_data_dir", t_long_dir },
	{ "socket_and_inbox_in_order", t_convo },
	{ NULL, NULL },
};
