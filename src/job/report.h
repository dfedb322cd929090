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
 */
#ifndef CCR_REPORT_H
#define CCR_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "util/buf.h"

struct report {
	const char *task_id;
	const char *callback_url;        /* NULL: sync task */
	const cJSON *metadata;           /* the request's metadata, echoed */
	char created_at[32], started_at[32], completed_at[32];
	char execution_name[512];
	const char *sandbox;             /* the agent's sandbox level (sandbox.h), NULL before it is known */
	const char *logs_path;           /* gs://bucket/sessions/<id>/ or a directory */
	/* outcome */
	const char *status;              /* pending running completed failed cancelled */
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
