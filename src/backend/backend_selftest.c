/*
 * backend_selftest.c: deployment checks (`ccr selftest`) of the local
 * backends: a sealing round trip through the envelope, a storage round
 * trip, and inotify (dirwatch), which is what a file system or a kernel
 * can break where ccr is deployed, with the names a watch hands out.  The refusal paths of the envelope and
 * of the key file are unit tests (backend_test.c).  They work in a
 * private directory under TMPDIR and remove it afterwards.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "backend/dirwatch.h"
#include "backend/seal.h"
#include "backend/storage.h"
#include "selftest/selftest.h"

static int t_envelope(char *why, size_t n)
{
	static const char payload[] = "{\"prompt\":\"hello\",\"anthropicApiKey\":\"sk-test\"}";
	struct buf sealed = BUF_INIT, opened = BUF_INIT;
	struct err e = ERR_INIT;
	struct sealer *s = NULL;
	char dir[256], key[300];
	cJSON *env = NULL;
	int fail = 1;

	if (st_tmpdir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR: %s", strerror(errno));
	snprintf(key, sizeof(key), "%s/ccr.key", dir);
	if (!(s = seal_local_new(key, &e)))
		st_fail(why, n, "%s", e.msg);
	else if (envelope_seal(s, payload, sizeof(payload) - 1, &sealed, &e) != 0)
		st_fail(why, n, "%s", e.msg);
	else if (!(env = cJSON_Parse(sealed.p)) || !cJSON_IsObject(env))
		st_fail(why, n, "the envelope is not JSON");
	else if (strncmp(sealed.p, "{\"version\":\"v2-envelope\",\"encryptedDek\":\"", 41) != 0 ||
		 !strstr(sealed.p, "\",\"iv\":\"") || !strstr(sealed.p, "\",\"authTag\":\"") ||
		 !strstr(sealed.p, "\",\"encryptedData\":\""))
		st_fail(why, n, "the envelope's keys are not in the seed's order");
	else if (strstr(sealed.p, "sk-test"))
		st_fail(why, n, "the plaintext shows through the envelope");
	else if (envelope_open(s, sealed.p, sealed.len, &opened, &e) != 0)
		st_fail(why, n, "%s", e.msg);
	else if (opened.len != sizeof(payload) - 1 || memcmp(opened.p, payload, opened.len) != 0)
		st_fail(why, n, "the opened payload differs");
	else
		fail = 0;
	cJSON_Delete(env);
	if (s)
		seal_free(s);
	buf_free(&sealed);
	buf_free(&opened);
	st_rmtree(dir);
	return fail;
}

static int t_storage_local(char *why, size_t n)
{
	static const char *keys[] = { "sessions/t1/001-20260101000000.jsonl", "sessions/t1/metadata.json",
				      "sessions/t2/metadata.json", "tasks/t1/payload.enc" };
	struct storage_put_opts once = { NULL, NULL, 1 };
	struct storage_list l = { 0 };
	struct buf got = BUF_INIT;
	struct err e = ERR_INIT;
	struct storage *s;
	char dir[256];
	size_t i;
	int fail = 1;

	if (st_tmpdir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	if (!(s = storage_local_new(dir, &e))) {
		st_rmtree(dir);
		return st_fail(why, n, "%s", e.msg);
	}
	for (i = 0; i < 4; i++)
		if (storage_put(s, keys[i], keys[i], strlen(keys[i]), NULL, &e) != 0)
			break;
	if (i < 4)
		st_fail(why, n, "put: %s", e.msg);
	else if (storage_put(s, keys[0], "x", 1, &once, &e) == 0 || e.http != 412)
		st_fail(why, n, "create-only put over an existing object did not give 412");
	else if (storage_get(s, keys[1], 9, &got, &e) != 0 || strcmp(got.p, keys[1] + 9) != 0)
		st_fail(why, n, "ranged get returned the wrong bytes");
	else if (storage_get(s, "sessions/none", 0, &got, &e) == 0 || e.http != 404)
		st_fail(why, n, "a missing object did not give 404");
	else if (storage_list(s, "sessions/t1/", NULL, &l, &e) != 0 || l.n != 2 || strcmp(l.items[0].key, keys[0]) ||
		 strcmp(l.items[1].key, keys[1]))
		st_fail(why, n, "list of sessions/t1/ is wrong");
	else if ((storage_list_free(&l), storage_list(s, "sessions/", keys[0], &l, &e)) != 0 || l.n != 2)
		st_fail(why, n, "list with start_after is wrong");
	else if (storage_delete(s, keys[3], &e) != 0 || storage_delete(s, keys[3], &e) != 0)
		st_fail(why, n, "delete (twice) failed: %s", e.msg);
	else if (storage_put(s, "../escape", "x", 1, NULL, &e) == 0 || storage_get(s, "a//b", 0, &got, &e) == 0 ||
		 storage_put(s, "/abs", "x", 1, NULL, &e) == 0 ||
		 (storage_list_free(&l), storage_list(s, "../", NULL, &l, &e)) == 0)
		st_fail(why, n, "an escaping key was accepted");
	else
		fail = 0;
	storage_list_free(&l);
	buf_free(&got);
	storage_free(s);
	st_rmtree(dir);
	return fail;
}

/* Create an empty file: 0, or -1. */
static int touch(const char *path)
{
	FILE *f = fopen(path, "w");

	return f && fclose(f) == 0 ? 0 : -1;
}

/* 1 when fd becomes readable within ms (and drains it). */
static int fired(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return 0;
	return read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v);
}

/* dirwatch.c: waiters share one inotify instance; far more of them than
 * the default 128 instances a user may hold. */
static int t_dirwatch(char *why, size_t n)
{
	enum { MANY = 300 };
	static int many[MANY];
	struct dirwatch *w = dw_new(NULL);
	char dir[256], a[300], b[300], f[320];
	int a1 = -1, a2 = -1, b1 = -1, i, waiters, dirs, fail = 1;

	if (!w || st_tmpdir(dir, sizeof(dir)) != 0) {
		dw_free(w);
		return st_fail(why, n, "setup: %s", strerror(errno));
	}
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	if (mkdir(a, 0700) != 0 || mkdir(b, 0700) != 0) {
		st_fail(why, n, "mkdir: %s", strerror(errno));
		goto out;
	}
	a1 = dw_add(w, a, NULL);
	a2 = dw_add(w, a, NULL);
	b1 = dw_add(w, b, NULL);
	dw_counts(w, &waiters, &dirs);
	if (a1 < 0 || a2 < 0 || b1 < 0 || waiters != 3 || dirs != 2) {
		st_fail(why, n, "add: fds %d %d %d, %d waiters on %d dirs", a1, a2, b1, waiters, dirs);
		goto out;
	}
	snprintf(f, sizeof(f), "%s/x", a);
	if (touch(f) != 0) {
		st_fail(why, n, "create %s: %s", f, strerror(errno));
		goto out;
	}
	if (!fired(a1, 2000) || !fired(a2, 2000) || fired(b1, 100)) {
		st_fail(why, n, "a new file in a/ did not wake exactly a/'s waiters");
		goto out;
	}
	dw_remove(w, a1);
	a1 = -1;
	if (rmdir(b) != 0 || !fired(b1, 2000)) {
		st_fail(why, n, "removing b/ did not wake its waiter");
		goto out;
	}
	for (i = 0; i < MANY; i++)
		if ((many[i] = dw_add(w, a, NULL)) < 0) {
			st_fail(why, n, "waiter %d of %d refused: %s", i + 1, MANY, strerror(errno));
			goto out;
		}
	snprintf(f, sizeof(f), "%s/y", a);
	if (touch(f) != 0 || !fired(many[0], 2000) || !fired(many[MANY - 1], 2000)) {
		st_fail(why, n, "the %dth waiter was not woken", MANY);
		goto out;
	}
	for (i = 0; i < MANY; i++)
		dw_remove(w, many[i]);
	dw_remove(w, a2);
	dw_remove(w, b1);
	a2 = b1 = -1;
	dw_counts(w, &waiters, &dirs);
	if (waiters != 0 || dirs != 0) {
		st_fail(why, n, "after removing all: %d waiters on %d dirs", waiters, dirs);
		goto out;
	}
	snprintf(why, n, "%d waiters on one inotify instance", MANY + 3);
	fail = 0;
out:
	dw_free(w);   /* closes what is left */
	st_rmtree(dir);
	return fail;
}

/* Take what the watch fd of s names until `want` keys came (or 2 s
 * passed), into keys[]; the number taken, or -1 when it said "list". */
static int take_keys(struct storage *s, int fd, char keys[][64], int want)
{
	int got = 0, tries;

	for (tries = 0; tries < 20 && got < want; tries++) {
		struct pollfd p = { fd, POLLIN, 0 };
		char **k;
		size_t nk, i;

		if (poll(&p, 1, 100) < 0)
			return got;
		if (storage_watch_keys(s, fd, &k, &nk) != 0)
			return -1;
		for (i = 0; i < nk; i++, got++)
			if (got < want)
				snprintf(keys[got], 64, "%s", k[i]);
		storage_keys_free(k, nk);
	}
	return got;
}

/* Touch DW_QUEUE_MAX + 1 files in <dir>/w/t, then one in <dir>/w/s;
 * when the watch of w/s (fd) wakes, the thread has handled every event
 * before (one inotify queue, read in order).  0, or -1 (why set). */
static int flood(const char *dir, int fd, char *why, size_t n)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char path[400];
	int i;

	for (i = 0; i <= DW_QUEUE_MAX + 1; i++) {
		if (i <= DW_QUEUE_MAX)
			snprintf(path, sizeof(path), "%s/w/t/%06d", dir, i + 3);
		else
			snprintf(path, sizeof(path), "%s/w/s/last", dir);
		if (touch(path) != 0)
			return st_fail(why, n, "create %s: %s", path, strerror(errno));
	}
	if (poll(&p, 1, 5000) != 1)
		return st_fail(why, n, "the watch of w/s/ did not wake");
	return 0;
}

/* The local backend's watch names new objects as keys, in order, never
 * its temporaries; past DW_QUEUE_MAX names untaken it says "list" once. */
static int t_watch_keys(char *why, size_t n)
{
	char dir[256], keys[4][64], **k = NULL;
	struct err e = ERR_INIT;
	struct storage *s;
	int fd = -1, fs = -1, fail = 1, got = 0, rc;
	size_t nk = 0;

	if (st_tmpdir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	if (!(s = storage_local_new(dir, &e))) {
		st_rmtree(dir);
		return st_fail(why, n, "%s", e.msg);
	}
	if (storage_put(s, "w/t/metadata.json", "{}", 2, NULL, &e) != 0 || storage_put(s, "w/s/x", "", 0, NULL, &e) != 0 ||
	    (fd = storage_watch(s, "w/t/")) < 0 || (fs = storage_watch(s, "w/s/")) < 0) {
		st_fail(why, n, "watch: %s", e.msg[0] ? e.msg : "no inotify");
		goto out;
	}
	if (storage_put(s, "w/t/000001-a.jsonl", "1\n", 2, NULL, &e) != 0 ||
	    storage_put(s, "w/t/000002-a.jsonl", "2\n", 2, NULL, &e) != 0) {
		st_fail(why, n, "put: %s", e.msg);
		goto out;
	}
	got = take_keys(s, fd, keys, 2);
	if (got != 2 || strcmp(keys[0], "w/t/000001-a.jsonl") != 0 || strcmp(keys[1], "w/t/000002-a.jsonl") != 0) {
		st_fail(why, n, "two puts were named as %d keys (%s ...), not the two keys in order", got,
			got > 0 ? keys[0] : "none");
		goto out;
	}
	if (flood(dir, fs, why, n) != 0)
		goto out;
	if ((rc = storage_watch_keys(s, fd, &k, &nk)) != 1 || storage_watch_keys(s, fd, &k, &nk) != 0 || nk != 0) {
		storage_keys_free(k, nk);
		st_fail(why, n, "%d untaken names did not give one \"list\" then nothing (%d)", DW_QUEUE_MAX + 1, rc);
		goto out;
	}
	snprintf(why, n, "2 puts named, %d names overflowed", DW_QUEUE_MAX + 1);
	fail = 0;
out:
	storage_unwatch(s, fd);
	storage_unwatch(s, fs);
	storage_free(s);
	st_rmtree(dir);
	return fail;
}

const struct st_case backend_selftests[] = {
	{ "envelope_local", t_envelope },
	{ "storage_local", t_storage_local },
	{ "dirwatch", t_dirwatch },
	{ "watch_keys", t_watch_keys },
	{ NULL, NULL },
};
