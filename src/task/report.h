/*
 * report.h: what a task reports: the metadata.json documents (seed-spec
 * §5.2) and the webhook payload (§10.4), and the result summary gathered
 * from the CLI's own stream-json lines as they pass by.
 *
 * The seed's keys come first, in the seed's order, so existing readers see
 * what they expect; ccr's additions follow them: terminalReason, exitCode,
 * durationMs, executionName, and `result` (session_id, num_turns, usage,
 * modelUsage and total_cost_usd from the CLI's result line, the cost
 * labelled as the CLI's estimate) plus `proxyUsage` (tokens metered by the
 * token proxy).  Turns are counted from real assistant messages (distinct
 * message ids), not from an event the CLI never sends (fixes B18).
 *
 * report_metadata is the one builder of metadata.json, used by every
 * writer: serve at submission (the pending document: payload_path set,
 * with the seed's encryptedPayloadPath and, for a sync task,
 * executionMode), the job as the task runs and ends, and serve's
 * reconciler when it finalises a task whose job is gone.
 */
#ifndef CCR_REPORT_H
#define CCR_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "task/record.h"
#include "util/buf.h"

struct report {
	const char *task_id;
	const char *callback_url;        /* NULL: sync task */
	const cJSON *metadata;           /* the request's metadata, echoed */
	char created_at[32], started_at[32], completed_at[32];
	char execution_name[512];
	const char *sandbox;             /* the agent's sandbox level (sandbox.h), NULL before it is known */
	const char *logs_path;           /* gs://bucket/sessions/<id>/ or a directory */
	const char *payload_path;        /* submitted (pending): encryptedPayloadPath */
	int sync;                        /* submitted: a sync task (executionMode "sync", no metadata) */
	/* outcome */
	enum tr_status status;           /* TR_PENDING at report_init */
	const char *reason;              /* terminal reason */
	int exit_code;
	int64_t duration_ms;
	struct buf error;                /* redacted */
	/* gathered from the stream */
	unsigned turns, errors;
	char last_msg_id[128];
	char result_error[1024];         /* the result line's text when is_error */
	int result_ok;                   /* a result line with subtype success and no is_error */
	int stopped_after_result;        /* the CLI lingered after a success result and was stopped */
	cJSON *result;                   /* session_id, num_turns, usage, modelUsage, total_cost_usd */
	cJSON *proxy_usage;
	char session_id[72];             /* the CLI's session (init line; sessionId once its transcript is stored) */
	long long transcript_bytes;      /* the stored transcript's size (plain), 0: none */
	const char *resumed_from;        /* the request's resumeTaskId */
	int accepts_messages;            /* idleAfterResultSeconds: POST /tasks/:id/messages */
	/* post-execution */
	cJSON *uploaded_files, *git_commit, *external_pr, *billing, *webhook;
};

void report_init(struct report *r, const char *task_id);
void report_free(struct report *r);

/* report_line: look at one stdout line of the CLI. */
void report_line(struct report *r, const char *line, size_t n);

/* report_metadata: the metadata.json text (pretty, 2 spaces, no final
 * newline) for the report's current status. */
int report_metadata(const struct report *r, struct buf *out);

/* report_webhook: the webhook body (compact JS-JSON). */
int report_webhook(const struct report *r, struct buf *out);

#endif
