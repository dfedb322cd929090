/*
 * payload.h: the task payload (the request body, seed-spec §2.2), parsed
 * and type-checked once, so later code reads plain C fields.
 *
 * JavaScript semantics are kept where the seed relies on them: a field
 * that is null, "" or 0 counts as absent ("falsy"), and a numeric field
 * (maxTurns, gitDepth, timeoutMinutes) may be a string that Number()
 * reads as a finite number ("10", " 2.5 ", "0x10"; util/jscheck.h).  A
 * field present with the wrong type is an error naming the field and the
 * type it must have, never a crash.  A duration is 0/absent (the default)
 * or at least one second, so rounding can never turn a limit off.  The struct borrows strings from `root`, which it owns.
 */
#ifndef CCR_PAYLOAD_H
#define CCR_PAYLOAD_H

#include <cJSON.h>

#include "util/err.h"

#define PAYLOAD_DEFAULT_TIMEOUT_MIN 55.0
#define PAYLOAD_MAX_TIMEOUT_MIN 1440.0
#define PAYLOAD_MAX_BUDGET_USD 1000000.0
#define PAYLOAD_MAX_IDLE_AFTER_RESULT_S 3600.0

struct payload {
	cJSON *root;
	const char *prompt;                  /* required */
	const char *api_key, *oauth_token;   /* at least one */
	const char *system_prompt, *append_system_prompt;
	const char *permission_mode, *model, *fallback_model;
	const cJSON *allowed_tools, *disallowed_tools;   /* arrays of strings */
	int max_turns;                       /* 0: not given */
	double max_budget_usd;               /* maxBudgetUsd; 0: not given.  The job
	                                      * lowers it to CCR_MAX_BUDGET_USD */
	const char *cwd_relative;            /* default "." */
	int use_named_pipe;                  /* default 1 (anything but false) */
	const char *git_repo, *git_branch;   /* branch default "main" */
	int git_depth;                       /* default 1 */
	double timeout_minutes;              /* default 55, at most 1440 */
	double idle_timeout_minutes;         /* 0: the operator's CCR_IDLE_TIMEOUT_S */
	double idle_after_result_s;          /* idleAfterResultSeconds; > 0: the task takes
	                                      * follow-up messages (stream-json input) and
	                                      * waits this long for one after each result */
	int cancel_on_disconnect;            /* POST /run: cancel when the client goes */
	const cJSON *pre_exec;               /* array of strings */
	const cJSON *post_actions;           /* object */
	const cJSON *env_secrets;            /* object of string values */
	const char *ssh_key;
	const cJSON *metadata;               /* any JSON value, echoed */
	const cJSON *mcp_config, *slash_commands, *subagents, *external_test_repo;
	const char *callback_url;
	const cJSON *allowed_hosts;          /* array of host patterns (egress/egpolicy.h), or NULL */
	const char *resume_task_id;          /* resumeTaskId: continue that task's conversation */
	char resume_session_id[72];          /* set by the job: the session --resume takes */
};

/* payload_parse: parse n bytes of JSON and check every known field. */
int payload_parse(struct payload *p, const char *json, size_t n, struct err *e);

void payload_free(struct payload *p);

/* payload_register_secrets: hand every secret the payload carries to the
 * redactor (keys, tokens, SSH key, environmentSecrets values, URL creds). */
int payload_register_secrets(const struct payload *p);

#endif
