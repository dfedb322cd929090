/*
 * task.c: see task.h.  task_run strings the stages together: the setup
 * steps (tasksetup.c), the CLI's run, the post-execution actions
 * (postexec.c), billing (billing.c), and always ends in finish(), which
 * stores the logs, the terminal metadata and sends the webhook.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/secenv.h"
#include "backend/seal.h"
#include "job/claude_cmd.h"
#include "job/mcplog.h"
#include "job/runner.h"
#include "job/session.h"
#include "job/task_int.h"
#include "task/record.h"
#include "webhook/webhook.h"
#include "util/clock.h"
#include "util/redact.h"

/* Static flags: set by task_cancel() from the SIGTERM handler and by the
 * log sink's thread, which have no task to reach. */
volatile sig_atomic_t task_cancelled, task_storage_failed;

void task_cancel(void)
{
	task_cancelled = 1;
	runner_cancel();
}

/* The operator's secrets that the job's environment may hold are never
 * printed either, whatever the agent does. */
static void register_operator_secrets(void)
{
	static const char *const names[] = { "CLOUDRUN_CALLBACK_SECRET", "CCR_API_KEYS" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *v = secenv_get(names[i]);
		char *copy, *tok, *save = NULL;
		if (!v || !*v || !(copy = strdup(v)))
			continue;
		redact_add_encoded(copy);
		for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			redact_add_encoded(tok);
		memset(copy, 0, strlen(v));
		free(copy);
	}
}

static int put_metadata(struct task *t)
{
	struct storage_put_opts opts = { "application/json", NULL, 0 };
	struct buf doc = BUF_INIT;
	struct err e = ERR_INIT;
	char key[TR_KEY_MAX];
	int rc;

	if (report_metadata(&t->rep, &doc) != 0) {
		buf_free(&doc);
		return -1;
	}
	rc = storage_put(t->st, tr_key_metadata(key, t->env->task_id), doc.p, doc.len, &opts, &e);
	if (rc != 0)
		slog(SLOG_ERROR, "cannot store %s: %s", key, e.msg);
	buf_free(&doc);
	return rc;
}

/* The object key named by ENCRYPTED_PAYLOAD_PATH (gs://bucket/key or a
 * path under the data directory), else the seed's tasks/<id>/payload.enc. */
static void payload_key(struct task *t)
{
	const char *path = t->env->payload_path, *key = NULL;
	const struct backends *be = t->env->be;
	size_t n;

	if (path && be->mode == CFG_CLOUD && strncmp(path, "gs://", 5) == 0 &&
	    strncmp(path + 5, be->bucket, (n = strlen(be->bucket))) == 0 && path[5 + n] == '/')
		key = path + 6 + n;
	else if (path && be->mode == CFG_LOCAL && strncmp(path, be->data_dir, (n = strlen(be->data_dir))) == 0 &&
		 path[n] == '/')
		key = path + n + 1;
	if (key && storage_key_valid(key))
		snprintf(t->payload_key, sizeof(t->payload_key), "%s", key);
	else
		tr_key_payload(t->payload_key, t->env->task_id);
}

/* Carry createdAt and executionName over from the pending document. */
static void read_pending(struct task *t)
{
	struct buf doc = BUF_INIT;
	struct err e = ERR_INIT;
	char key[TR_KEY_MAX];
	cJSON *j, *v;

	if (storage_get(t->st, tr_key_metadata(key, t->env->task_id), 0, &doc, &e) == 0 &&
	    (j = cJSON_ParseWithLength(doc.p, doc.len))) {
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "createdAt")))
			snprintf(t->rep.created_at, sizeof(t->rep.created_at), "%s", v->valuestring);
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "executionName")))
			snprintf(t->rep.execution_name, sizeof(t->rep.execution_name), "%s", v->valuestring);
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(j, "status")))
			snprintf(t->prior_status, sizeof(t->prior_status), "%s", v->valuestring);
		cJSON_Delete(j);
	}
	buf_free(&doc);
}

static int load_payload(struct task *t, struct err *e)
{
	struct buf blob = BUF_INIT, plain = BUF_INIT;
	struct sealer *s = t->env->be->sealer;
	int rc = -1;

	payload_key(t);
	if (storage_get(t->st, t->payload_key, 0, &blob, e) != 0) {
		err_prefix(e, "cannot read the task payload %s", t->payload_key);
		goto out;
	}
	if (envelope_open(s, blob.p, blob.len, &plain, e) != 0)
		goto out;
	if (payload_parse(&t->p, plain.p, plain.len, e) != 0) {
		err_prefix(e, "invalid payload");
		goto out;
	}
	t->have_payload = 1;
	payload_register_secrets(&t->p);
	t->rep.callback_url = t->p.callback_url;
	t->rep.metadata = t->p.metadata;
	t->rep.resumed_from = t->p.resume_task_id;
	t->rep.accepts_messages = t->p.idle_after_result_s > 0;
	rc = 0;
out:
	if (plain.p)
		memset(plain.p, 0, plain.len);
	buf_free(&plain);
	buf_free(&blob);
	return rc;
}

/* The CLI's init line lists its MCP servers: log how many connected
 * (seed-spec §10.2; logging only, it does not change the result), and
 * remember the ones that did not for mcp_explain(). */
static void mcp_health(struct task *t, const char *line, size_t n)
{
	struct buf names = BUF_INIT;
	int total = 0, ok = 0;

	if (ml_init_line(line, n, &ok, &total, &names, &t->mcp_failed) == 1) {
		if (total == 0)
			slog(SLOG_INFO, "No MCP servers configured");
		else
			slog(ok == total ? SLOG_INFO : ok ? SLOG_WARNING : SLOG_ERROR, "MCP servers: %d/%d connected (%s)", ok,
				 total, names.p ? names.p : "");
	}
	buf_free(&names);
}

/* Each line of the CLI's output is redacted before anything keeps it: the
 * agent may print a secret it was given (or found), raw or encoded. */
static void on_line(void *arg, const char *line, size_t n)
{
	struct task *t = arg;
	struct buf clean = BUF_INIT;

	if (buf_add(&clean, line, n) != 0 || redact_apply(&clean) != 0) {
		buf_free(&clean);
		static const char oom[] = "{\"type\":\"error\",\"error\":\"out of memory redacting a line\"}";
		logsink_line(t->log, oom, sizeof(oom) - 1);
		return;
	}
	logsink_line(t->log, clean.p, clean.len);
	report_line(&t->rep, clean.p, clean.len);
	mcp_health(t, clean.p, clean.len);
	if (t->cv_on)
		cv_line(&t->cv, clean.p, clean.len);
	buf_free(&clean);
}

static void on_truncated(void *arg, unsigned long long total)
{
	(void)arg;
	slog(SLOG_WARNING, "the Claude CLI printed a line of %llu bytes; it is stored truncated to "
			    "CCR_MAX_LINE_BYTES, with a marker", total);
}

static void on_stderr(void *arg, const char *data, size_t n)
{
	(void)arg;
	slog(SLOG_WARNING, "claude stderr: %.*s", (int)(n > 2000 ? 2000 : n), data);
}

/* Where the CLI keeps its caches: from the environment it was given. */
static void set_cli_cache(struct task *t)
{
	const cJSON *xdg = cJSON_GetObjectItemCaseSensitive(t->p.env_secrets, "XDG_CACHE_HOME");

	if (ml_cache_dir(cJSON_IsString(xdg) ? xdg->valuestring : NULL, t->agent.home ? t->agent.home : t->env->set->home, t->cli_cache,
			 sizeof(t->cli_cache)) != 0)
		t->cli_cache[0] = 0;
}

/* For each MCP server that did not connect, the errors of the CLI's log
 * of it (seed-spec §14.2), redacted, on the job's log. */
static void mcp_explain(struct task *t)
{
	char *name = t->mcp_failed.p, *nl;
	struct buf why = BUF_INIT;

	for (; name && *name && (nl = strchr(name, '\n')) != NULL; name = nl + 1) {
		*nl = 0;
		buf_reset(&why);
		if (!t->cli_cache[0])
			buf_adds(&why, "the CLI's cache directory is unknown (no HOME)");
		else if (ml_explain(t->cli_cache, t->claude_cwd, name, &why) < 0)
			break;
		slog(SLOG_WARNING, "MCP server '%s' did not connect: %s", name, why.p ? why.p : "");
	}
	buf_free(&why);
	buf_reset(&t->mcp_failed);
}

/* A CLI that printed a success result, then lingered past the grace and
 * had to be stopped, still did its work: the result line is final.  The
 * task counts as completed (post-execution actions run) and the metadata
 * says that the CLI was stopped. */
static void keep_success(struct task *t, struct runner_result *res)
{
	if (res->reason != RUN_HANG_AFTER_RESULT || !t->rep.result_ok)
		return;
	slog(SLOG_WARNING, "the Claude CLI did not exit within the grace after its success result and was stopped "
			    "(exit %d); the task counts as completed", res->exit_code);
	res->reason = RUN_COMPLETED;
	res->exit_code = 0;
	t->rep.stopped_after_result = 1;
}

/* The error text of a run, from what the CLI said or why it was stopped. */
static void describe_end(struct task *t, const struct runner_result *res)
{
	static const char *const why[] = {
		[RUN_TIMEOUT] = "Process timed out",
		[RUN_IDLE_TIMEOUT] = "No output and no CPU activity from the Claude CLI within the idle timeout",
		[RUN_HANG_AFTER_RESULT] = "The Claude CLI did not exit after its result",
		[RUN_CANCELLED] = "Task cancelled by user",
		[RUN_STORAGE_FAILED] = "The task's log could not be stored: storage kept failing, so the task was stopped",
	};

	if (res->stderr_text.len)
		redact_str(&t->rep.error, res->stderr_text.p);
	else if (res->reason == RUN_FAILED && t->rep.result_error[0])
		redact_str(&t->rep.error, t->rep.result_error);
	else if ((size_t)res->reason < sizeof(why) / sizeof(why[0]) && why[res->reason])
		buf_adds(&t->rep.error, why[res->reason]);
}

/* A run the budget stopped: the token proxy refused a request because the
 * metered cost had reached it, or the CLI ended on its own budget flag
 * (result subtype error_max_budget_usd).  The task fails with reason
 * budget_exceeded, whatever else happened after. */
static void budget_outcome(struct task *t)
{
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(t->rep.result, "subtype");
	struct tp_usage u;

	if (!(t->p.max_budget_usd > 0) || strcmp(t->rep.reason, "cancelled") == 0)
		return;
	memset(&u, 0, sizeof(u));
	if (t->proxy_on)
		tp_usage(&t->proxy, &u);
	if (u.budget_refused == 0 && !(cJSON_IsString(sub) && strcmp(sub->valuestring, "error_max_budget_usd") == 0))
		return;
	t->rep.reason = "budget_exceeded";
	if (t->rep.exit_code == 0)
		t->rep.exit_code = 1;
	slog(SLOG_WARNING, "the task's budget of $%.4f is spent (metered cost $%.4f): the run was stopped",
		 t->p.max_budget_usd, u.cost_usd);
}

static void on_stdin(void *arg, int fd)
{
	struct task *t = arg;

	if (t->cv_on)
		cv_stdin(&t->cv, fd);
	else if (fd >= 0)
		close(fd);
}

/* A task that takes follow-up messages: the prompt becomes the first
 * stream-json user message, the inbox thread starts, and the watchdogs
 * that watch for a CLI lingering after its result or staying idle leave
 * it the time it waits for the next message. */
static int convo_setup(struct task *t, struct runner_config *rc, struct buf *first, struct err *e)
{
	long wait_ms = (long)(t->p.idle_after_result_s * 1000.0);
	long poll_ms = t->env->be->mode == CFG_LOCAL ? t->env->set->inbox_poll_ms_local : t->env->set->inbox_poll_ms_cloud;

	if (!(t->p.idle_after_result_s > 0))
		return 0;
	if (cv_user_line(first, t->p.prompt) != 0)
		return err_set(e, "out of memory");
	if (cv_start(&t->cv, t->st, t->env->be->sealer, t->env->task_id, wait_ms, poll_ms,
		     t->env->be->mode == CFG_LOCAL ? t->env->be->data_dir : NULL, e) != 0)
		return -1;
	t->cv_on = 1;
	rc->prompt = first->p;
	rc->prompt_len = first->len;
	rc->on_stdin = on_stdin;
	rc->grace_ms += wait_ms;
	if (rc->idle_ms < wait_ms + 30000)
		rc->idle_ms = wait_ms + 30000;
	return 0;
}

static int run_claude(struct task *t, struct err *e)
{
	struct claude_cmd cmd;
	struct runner_config rc;
	struct runner_result res;
	struct buf first = BUF_INIT;
	int rv;

	if (claude_cmd_build(&cmd, &t->p, &t->agent, t->mcp_path[0] ? t->mcp_path : NULL, t->ws.dir, e) != 0)
		return -1;
	if (t->p.use_named_pipe && ws_write_file(t->ws.root, "prompt.txt", t->p.prompt, strlen(t->p.prompt), 0600, e)) {
		claude_cmd_free(&cmd);
		return -1;
	}
	memset(&rc, 0, sizeof(rc));
	rc.path = cmd.path;
	rc.argv = cmd.argv;
	rc.envp = cmd.envp;
	rc.cwd = t->claude_cwd;
	rc.prompt = t->p.prompt;
	rc.prompt_len = strlen(t->p.prompt);
	rc.fifo_name = t->p.use_named_pipe ? "claude_prompt_pipe" : NULL;
	rc.timeout_ms = (long)(t->p.timeout_minutes * 60000.0);
	rc.idle_ms = t->p.idle_timeout_minutes > 0 ? (long)(t->p.idle_timeout_minutes * 60000.0)
						   : t->env->set->idle_timeout_s * 1000;
	rc.grace_ms = t->env->set->result_grace_s * 1000;
	rc.kill_grace_ms = t->env->set->kill_grace_ms;
	rc.kill_orphans = 1;
	rc.max_line = (size_t)t->env->set->max_line_bytes;
	rc.sandbox = agentbox(t);
	rc.on_line = on_line;
	rc.on_truncated = on_truncated;
	rc.on_stderr = on_stderr;
	rc.arg = t;
	set_cli_cache(t);
	rv = convo_setup(t, &rc, &first, e);
	if (rv == 0)
		rv = runner_run(&rc, &res, e);
	if (t->cv_on) {
		if (rv == 0 && res.reason == RUN_FAILED && cv_ended_on_interrupt(&t->cv)) {
			slog(SLOG_INFO, "the conversation was ended after an interrupted turn (the CLI exits %d for that "
					 "turn); the task counts as completed", res.exit_code);
			res.reason = RUN_COMPLETED;
			res.exit_code = 0;
		}
		cv_stop(&t->cv);
		t->cv_on = 0;
	}
	buf_free(&first);
	claude_cmd_free(&cmd);
	if (rv != 0)
		return -1;
	mcp_explain(t);
	keep_success(t, &res);
	t->rep.reason = run_reason_name(res.reason);
	t->rep.exit_code = res.exit_code;
	budget_outcome(t);
	if (!t->rep.stopped_after_result)
		describe_end(t, &res);
	runner_result_free(&res);
	return 0;
}

static void set_proxy_usage(struct task *t)
{
	struct tp_usage u;
	cJSON *o;

	if (!t->proxy_on)
		return;
	tp_usage(&t->proxy, &u);
	if (!(o = cJSON_CreateObject()))
		return;
	cJSON_AddNumberToObject(o, "requests", (double)u.requests);
	cJSON_AddNumberToObject(o, "input_tokens", (double)u.input_tokens);
	cJSON_AddNumberToObject(o, "output_tokens", (double)u.output_tokens);
	cJSON_AddNumberToObject(o, "cache_creation_input_tokens", (double)u.cache_creation_input_tokens);
	cJSON_AddNumberToObject(o, "cache_read_input_tokens", (double)u.cache_read_input_tokens);
	cJSON_AddNumberToObject(o, "cost_usd", u.cost_usd);
	if (t->p.max_budget_usd > 0) {
		cJSON_AddNumberToObject(o, "budget_usd", t->p.max_budget_usd);
		cJSON_AddNumberToObject(o, "budget_refused", (double)u.budget_refused);
	}
	cJSON_Delete(t->rep.proxy_usage);
	t->rep.proxy_usage = o;
}

/* The transcript, for a later task's resumeTaskId (job/session.h). */
static void save_session(struct task *t)
{
	struct sess_ctx c;

	task_sess_ctx(t, &c);
	sess_save(&c, &t->rep);
}

/* After a SIGTERM the job has a few seconds left (Cloud Run's grace is
 * 10 s): waits that are normally long get a short bound. */
static long bounded(long ms)
{
	return task_cancelled && ms > 2000 ? 2000 : ms;
}

static void send_webhook(struct task *t)
{
	const char *secret = secenv_get("CLOUDRUN_CALLBACK_SECRET");
	struct buf body = BUF_INIT, clean = BUF_INIT;
	struct wh_result wr;
	struct err e = ERR_INIT;
	cJSON *w = NULL;
	int rc;

	if (!t->rep.callback_url)
		return;
	if (!secret || !*secret) {
		w = wh_not_sent("CLOUDRUN_CALLBACK_SECRET is not set: the webhook was not sent");
		slog(SLOG_ERROR, "CLOUDRUN_CALLBACK_SECRET is not set: the webhook for %s was not sent", t->env->task_id);
	} else if (report_webhook(&t->rep, &body) == 0) {
		rc = wh_deliver(t->rep.callback_url, secret, &t->env->set->callbacks, body.p, body.len,
				bounded(t->env->set->webhook_deadline_s * 1000), &wr, &e);
		if (rc != 0) {
			redact_str(&clean, e.msg);
			slog(SLOG_ERROR, "%s", e.msg);
		}
		w = wh_report(&wr, rc, clean.p);
	}
	buf_free(&body);
	buf_free(&clean);
	if (!w)
		return;
	cJSON_Delete(t->rep.webhook);
	t->rep.webhook = w;
	put_metadata(t);
}

/* The log writer gave up: stop whatever runs (setup steps check the flag). */
static void storage_gone(void *arg)
{
	(void)arg;
	task_storage_failed = 1;
	runner_abort();
}

/* Logs first, then terminal metadata, then the webhook (fixes B14/D5). */
static int finish(struct task *t)
{
	struct err e = ERR_INIT;
	int rc;

	clock_iso(t->rep.completed_at);
	t->rep.duration_ms = clock_mono_ms() - t->t0;
	set_proxy_usage(t);
	if (t->log && logsink_close(t->log, (int)bounded(t->env->set->log_flush_deadline_ms), &e) != 0)
		slog(SLOG_ERROR, "%s", e.msg);
	t->log = NULL;
	rc = put_metadata(t);
	send_webhook(t);
	return rc;
}

static void set_failed(struct task *t, const char *reason, const char *msg)
{
	t->rep.status = TR_FAILED;
	t->rep.reason = reason;
	t->rep.exit_code = 1;
	buf_reset(&t->rep.error);
	redact_str(&t->rep.error, msg);
}

static void set_outcome(struct task *t, int setup_failed, const char *msg)
{
	if (task_cancelled || (t->rep.reason && strcmp(t->rep.reason, "cancelled") == 0)) {
		t->rep.status = TR_CANCELLED;
		t->rep.reason = "cancelled";
		t->rep.exit_code = 130;
		buf_reset(&t->rep.error);
		buf_adds(&t->rep.error, "Task cancelled by user");
	} else if (setup_failed) {
		set_failed(t, "failed", msg);
	} else {
		t->rep.status = strcmp(t->rep.reason, "completed") == 0 ? TR_COMPLETED : TR_FAILED;
	}
}

static int status_exit(enum tr_status status)
{
	if (status == TR_COMPLETED)
		return TASK_EXIT_COMPLETED;
	return status == TR_CANCELLED ? TASK_EXIT_CANCELLED : TASK_EXIT_FAILED;
}

static void cleanup(struct task *t)
{
	struct err e = ERR_INIT;

	if (t->proxy_on)
		tp_stop(&t->proxy);
	if (t->egress_on)
		eg_stop(&t->egress);
	pc_leftovers_kill(&t->left, 2000);
	if (t->gctx_on)
		gop_ctx_free(&t->git);
	cc_files_free(&t->files);
	if (t->ws_on && ws_wipe(&t->ws, &e) != 0)
		slog(SLOG_ERROR, "cannot remove the workspace: %s", e.msg);
	/* the CLI's MCP logs of this workspace hold the servers' stderr */
	if (t->cli_cache[0] && t->claude_cwd[0] && ml_forget(t->cli_cache, t->claude_cwd) < 0)
		slog(SLOG_WARNING, "cannot remove the CLI's MCP logs under %s", t->cli_cache);
	buf_free(&t->mcp_failed);
	if (t->payload_key[0] && storage_delete(t->st, t->payload_key, &e) != 0)
		slog(SLOG_ERROR, "cannot delete the payload %s: %s", t->payload_key, e.msg);
	{
		char active[TR_KEY_MAX];
		tr_key_active(active, t->env->task_id);
		if (storage_delete(t->st, active, &e) != 0)
			slog(SLOG_WARNING, "cannot remove %s: %s", active, e.msg);
	}
	if (t->have_payload)
		payload_free(&t->p);
	report_free(&t->rep);
	buf_free(&t->logs_url);
	redact_clear();
}

int task_run(const struct task_env *env)
{
	struct task t;
	char logs[TR_KEY_MAX];
	struct err e = ERR_INIT;
	int failed = 0, retried = 0, rc;

	memset(&t, 0, sizeof(t));
	t.env = env;
	t.st = env->be->storage;
	t.t0 = clock_mono_ms();
	register_operator_secrets();
	report_init(&t.rep, env->task_id);
	if (env->execution_name)
		snprintf(t.rep.execution_name, sizeof(t.rep.execution_name), "%s", env->execution_name);
	read_pending(&t);
	if (storage_url(t.st, tr_key_logs(logs, env->task_id), &t.logs_url) == 0)
		t.rep.logs_path = t.logs_url.p;
	clock_iso(t.rep.started_at);
	if (!t.rep.created_at[0])
		memcpy(t.rep.created_at, t.rep.started_at, sizeof(t.rep.created_at));
	if (env->attempt > 0 && tr_status_terminal(tr_status_parse(t.prior_status))) {
		/* An earlier attempt finished the task and then died: tidy up. */
		slog(SLOG_WARNING, "task %s was already %s before this retried attempt; nothing to run", env->task_id,
			 t.prior_status);
		rc = status_exit(tr_status_parse(t.prior_status));
		payload_key(&t);
		cleanup(&t);
		return rc;
	}
	t.log = logsink_open(t.st, env->task_id,
			     (int)(env->be->mode == CFG_LOCAL ? env->set->log_flush_ms_local : env->set->log_flush_ms_cloud),
			     &e);
	if (t.log)
		logsink_set_give_up(t.log, env->set->storage_give_up_s * 1000L, storage_gone, &t);
	if (!t.log) {
		slog(SLOG_ERROR, "%s", e.msg);
		cleanup(&t);
		return TASK_EXIT_FAILED;
	}
	if (load_payload(&t, &e) != 0) {
		failed = 1;
	} else if (env->attempt > 0) {
		retried = 1;
		err_set(&e, "the job was retried (attempt %d) after an attempt that ended without a terminal state; "
			    "the agent is never run twice", env->attempt);
	} else {
		t.rep.status = TR_RUNNING;
		put_metadata(&t);
		if (task_setup(&t, &e) != 0 || run_claude(&t, &e) != 0)
			failed = 1;
		else if (!task_cancelled)
			save_session(&t);
	}
	if (failed || retried) {
		slog(SLOG_ERROR, "task %s failed: %s", env->task_id, e.msg);
		task_error_line(&t, e.msg);
	}
	if (retried)
		set_failed(&t, "job_retried", e.msg);
	else
		set_outcome(&t, failed, e.msg);
	if (!failed && t.rep.status == TR_COMPLETED && t.p.post_actions)
		postexec_run(&t);
	if (!failed && t.rep.status == TR_COMPLETED)
		billing_collect(&t);
	rc = finish(&t) == 0 ? status_exit(t.rep.status) : TASK_EXIT_FAILED;
	slog(t.rep.status == TR_COMPLETED ? SLOG_INFO : SLOG_WARNING, "task %s %s (%s, exit %d) in %lld ms",
		 env->task_id, tr_status_name(t.rep.status), t.rep.reason, t.rep.exit_code, (long long)t.rep.duration_ms);
	cleanup(&t);
	return rc;
}
