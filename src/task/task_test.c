/*
 * task_test.c: selftests for the task record: the storage layout
 * (seed-spec §5) byte for byte, the status words, chunk names, the
 * submitted metadata document, and finding a killed job's workspaces.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "selftest/selftest.h"
#include "task/record.h"
#include "task/report.h"
#include "util/rmtree.h"

static int t_keys(char *why, size_t n)
{
	char k[TR_KEY_MAX];
	static const struct {
		tr_key_fn fn;
		const char *want;
	} cases[] = {
		{ tr_key_metadata, "sessions/t-1/metadata.json" }, { tr_key_logs, "sessions/t-1/" },
		{ tr_key_owner, "sessions/t-1/owner.json" },       { tr_key_reconciled, "sessions/t-1/reconciled.json" },
		{ tr_key_transcript, "sessions/t-1/transcript.enc" }, { tr_key_payload, "tasks/t-1/payload.enc" },
		{ tr_key_active, "active/t-1" },                   { tr_key_inbox, "inbox/t-1/" },
		{ tr_key_files, "files/t-1" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strcmp(cases[i].fn(k, "t-1"), cases[i].want) != 0)
			return st_fail(why, n, "key %s, want %s", k, cases[i].want);
	if (strcmp(tr_key_chunk(k, "t-1", 7, "20260101000000"), "sessions/t-1/000007-20260101000000.jsonl") != 0)
		return st_fail(why, n, "chunk key %s", k);
	if (strcmp(tr_key_inbox_message(k, "t-1", "m1"), "inbox/t-1/m1.enc") != 0 ||
	    strcmp(tr_key_idempotency(k, "ab12"), "idempotency/ab12") != 0 ||
	    strcmp(TR_SERVERKEY_KEY, "keys/serve-hmac.enc") != 0)
		return st_fail(why, n, "inbox, idempotency or server key: %s", k);
	if (!tr_active_task("active/x") || strcmp(tr_active_task("active/x"), "x") != 0 || tr_active_task("active/") ||
	    tr_active_task("sessions/x"))
		return st_fail(why, n, "tr_active_task");
	return 0;
}

static int t_status(char *why, size_t n)
{
	static const char *const words[] = { "pending", "running", "completed", "failed", "cancelled" };
	cJSON *meta = cJSON_Parse("{\"status\":\"cancelled\"}");
	size_t i;
	int bad;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(tr_status_name(tr_status_parse(words[i])), words[i]) != 0)
			return cJSON_Delete(meta), st_fail(why, n, "%s does not round-trip", words[i]);
	bad = tr_status_parse("queued") != TR_UNKNOWN || tr_status_parse("Completed") != TR_UNKNOWN ||
	      tr_status_parse(NULL) != TR_UNKNOWN || tr_status_terminal(TR_PENDING) || tr_status_terminal(TR_RUNNING) ||
	      tr_status_terminal(TR_UNKNOWN) || !tr_status_terminal(TR_COMPLETED) || !tr_status_terminal(TR_FAILED) ||
	      !tr_meta_terminal(meta) || tr_meta_terminal(NULL) || strcmp(tr_status_name((enum tr_status)99), "unknown");
	cJSON_Delete(meta);
	return bad ? st_fail(why, n, "status parse or terminal predicate") : 0;
}

static int t_chunks(char *why, size_t n)
{
	static const struct {
		const char *key;
		long index;
		int width;
	} cases[] = {
		{ "sessions/t/000012-20260101000000.jsonl", 12, 6 },
		{ "sessions/t/001-20260101000000.jsonl", 1, 3 },
		{ "sessions/t/metadata.json", -1, 0 },
		{ "sessions/t/x/001-1.jsonl", -1, 0 },
		{ "sessions/t/-1.jsonl", -1, 0 },
		{ "sessions/t/0000000000000000001-1.jsonl", -1, 0 },
		{ "sessions/u/001-1.jsonl", -1, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int w = 0;
		long got = tr_chunk_index("sessions/t/", cases[i].key, &w);
		if (got != cases[i].index || (got >= 0 && w != cases[i].width))
			return st_fail(why, n, "%s: index %ld width %d", cases[i].key, got, w);
	}
	return 0;
}

/* The document serve stores at submission (the seed's keys and order). */
static int t_submitted_doc(char *why, size_t n)
{
	static const char want_async[] = "{\n  \"taskId\": \"t1\",\n  \"status\": \"pending\",\n  \"callbackUrl\": "
					 "\"https://h/cb\",\n  \"createdAt\": \"2026-01-01T00:00:00.000Z\",\n  "
					 "\"encryptedPayloadPath\": \"gs://b/tasks/t1/payload.enc\",\n  \"metadata\": {}\n}";
	static const char want_sync[] = "{\n  \"taskId\": \"t1\",\n  \"status\": \"pending\",\n  \"createdAt\": "
					"\"2026-01-01T00:00:00.000Z\",\n  \"encryptedPayloadPath\": \"p\",\n  "
					"\"acceptsMessages\": true,\n  \"executionMode\": \"sync\"\n}";
	struct report r;
	struct buf a = BUF_INIT, s = BUF_INIT;
	int fail;

	report_init(&r, "t1");
	snprintf(r.created_at, sizeof(r.created_at), "2026-01-01T00:00:00.000Z");
	r.callback_url = "https://h/cb";
	r.payload_path = "gs://b/tasks/t1/payload.enc";
	fail = report_metadata(&r, &a) != 0 || !a.p || strcmp(a.p, want_async) != 0;
	r.callback_url = NULL;
	r.payload_path = "p";
	r.sync = 1;
	r.accepts_messages = 1;
	fail = fail || report_metadata(&r, &s) != 0 || !s.p || strcmp(s.p, want_sync) != 0;
	if (fail)
		st_fail(why, n, "got %s / %s", a.p ? a.p : "(none)", s.p ? s.p : "(none)");
	report_free(&r);
	buf_free(&a);
	buf_free(&s);
	return fail;
}

static int make_ws(const char *root, const char *name)
{
	char p[600];

	snprintf(p, sizeof(p), "%s/%s", root, name);
	if (mkdir(p, 0700) != 0)
		return -1;
	snprintf(p, sizeof(p), "%s/%s/sub", root, name);
	return mkdir(p, 0500);        /* not writable: removal must grant itself rights */
}

static int t_workspaces(char *why, size_t n)
{
	const char *tmp = getenv("TMPDIR");
	static const char *names[] = { "ws-t1-0123456789abcdef", "ws-t1-0123", "ws-t10-0123456789abcdef" };
	char root[300], p[600];
	struct err e = ERR_INIT;
	struct stat st;
	int got, fail = 1;
	size_t i;

	snprintf(root, sizeof(root), "%s/ccr-selftest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		return st_fail(why, n, "cannot create a directory under TMPDIR: %s", strerror(errno));
	for (i = 0; i < 3; i++)
		if (make_ws(root, names[i]) != 0) {
			st_fail(why, n, "cannot create %s: %s", names[i], strerror(errno));
			goto out;
		}
	if ((got = tr_remove_workspaces(root, "t1", &e)) != 1) {
		st_fail(why, n, "removed %d workspaces, want 1 (%s)", got, e.msg);
		goto out;
	}
	snprintf(p, sizeof(p), "%s/%s", root, names[0]);
	fail = stat(p, &st) == 0;
	for (i = 1; i < 3 && !fail; i++) {
		snprintf(p, sizeof(p), "%s/%s", root, names[i]);
		fail = stat(p, &st) != 0;
	}
	if (fail)
		st_fail(why, n, "the wrong workspaces were removed (%s)", p);
out:
	if (rmtree(root, &e) != 0 && !fail)
		fail = st_fail(why, n, "cannot clean up %s: %s", root, e.msg);
	return fail;
}

const struct st_case task_tests[] = {
	{ "keys", t_keys },
	{ "status", t_status },
	{ "chunk_names", t_chunks },
	{ "submitted_metadata", t_submitted_doc },
	{ "remove_workspaces", t_workspaces },
	{ NULL, NULL },
};
