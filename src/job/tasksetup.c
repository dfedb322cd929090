/*
 * tasksetup.c: the steps of a task before the agent runs (task_setup:
 * proxies, SSH policy, clone, files, sandbox, the CLI's configuration,
 * resumed session, pre-execution commands), and the error line every
 * stage appends to the task's log (task_error_line).  Each step is one
 * function that returns 0 or -1 with a message; between two steps a
 * cancel or a storage that kept failing stops the task.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job/cliconf.h"
#include "job/session.h"
#include "job/task_int.h"
#include "util/clock.h"
#include "util/jscheck.h"
#include "util/jsjson.h"
#include "util/redact.h"

void task_error_line(struct task *t, const char *msg)
{
	struct buf line = BUF_INIT, clean = BUF_INIT;
	char ts[32];

	clock_iso(ts);
	redact_str(&clean, msg);
	buf_adds(&line, "{\"type\":\"error\",\"error\":");
	jsj_string(&line, clean.p ? clean.p : "", clean.len);
	buf_printf(&line, ",\"timestamp\":\"%s\"}", ts);
	if (t->log && line.p)
		logsink_line(t->log, line.p, line.len);
	t->rep.errors++;
	buf_free(&line);
	buf_free(&clean);
}

static void proxy_log(void *arg, const char *line)
{
	(void)arg;
	slog(SLOG_WARNING, "%s", line);
}

/* The task's budget: the request's maxBudgetUsd, lowered to the
 * operator's CCR_MAX_BUDGET_USD (the smaller wins; 0: none). */
static int task_budget(struct task *t, struct err *e)
{
	const char *v = t->env->set->max_budget_usd;
	double cap;

	if (!v || !*v)
		return 0;
	if (jsc_number(v, &cap) != 0 || !(cap > 0) || cap > PAYLOAD_MAX_BUDGET_USD)
		return err_set(e, "CCR_MAX_BUDGET_USD must be a number of US dollars above 0 (such as 5 or 0.50)");
	if (t->p.max_budget_usd <= 0 || cap < t->p.max_budget_usd)
		t->p.max_budget_usd = cap;
	return 0;
}

static int start_proxy(struct task *t, struct err *e)
{
	struct tp_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.kind = t->p.api_key ? TP_CRED_API_KEY : TP_CRED_OAUTH;
	cfg.credential = t->p.api_key ? t->p.api_key : t->p.oauth_token;
	cfg.upstream_env = t->env->set->anthropic_upstream;
	cfg.log = proxy_log;
	if (task_budget(t, e) != 0)
		return -1;
	cfg.budget_usd = t->p.max_budget_usd;
	if (tp_start(&t->proxy, &cfg, e) != 0)
		return -1;
	t->proxy_on = 1;
	return 0;
}

static void egress_log(void *arg, const char *line)
{
	(void)arg;
	slog(SLOG_WARNING, "%s", line);
}

/* The egress proxy (egress.h), for every task: the operator's lists from
 * the environment, the task's allowedHosts from the payload. */
static int start_egress(struct task *t, struct err *e)
{
	struct eg_config cfg;
	ssize_t n;

	memset(&cfg, 0, sizeof(cfg));
	cfg.allow = t->env->set->egress_allow;
	cfg.allow_private = t->env->set->egress_allow_private;
	cfg.allowed_hosts = t->p.allowed_hosts;
	cfg.idle_ms = t->env->set->egress_idle_s * 1000;
	cfg.log = egress_log;
	if (eg_start(&t->egress, &cfg, e) != 0)
		return -1;
	t->egress_on = 1;
	snprintf(t->egress_url, sizeof(t->egress_url), "http://127.0.0.1:%d", eg_port(&t->egress));
	n = readlink("/proc/self/exe", t->self_exe, sizeof(t->self_exe) - 1);
	t->self_exe[n > 0 ? n : 0] = 0;
	if (n <= 0)
		slog(SLOG_WARNING, "cannot read /proc/self/exe: the agent's ssh gets no ProxyCommand");
	return 0;
}

/* The SSH policy (git.h), for every task: the key, and known_hosts for
 * libgit2's clone and push and for the agent's own git, which gets the
 * same options through its GIT_SSH_COMMAND. */
static int ssh_setup(struct task *t, struct err *e)
{
	const cJSON *kh = cJSON_GetObjectItemCaseSensitive(t->p.root, "sshKnownHosts");
	const cJSON *strict = cJSON_GetObjectItemCaseSensitive(t->p.root, "sshStrictHostKeyChecking");
	struct buf cmd = BUF_INIT;
	int rc;

	if (t->p.ssh_key && ws_write_ssh_key(&t->ws, t->p.ssh_key, e) != 0)
		return -1;
	if (gop_ctx_init(&t->git, t->ws.dir, &t->env->set->git, e) != 0)
		return -1;
	t->gctx_on = 1;
	t->git.ssh_key_path = t->ws.key_path[0] ? t->ws.key_path : NULL;
	t->git.known_hosts = cJSON_IsString(kh) ? kh->valuestring : NULL;
	if (cJSON_IsFalse(strict))
		t->git.ssh_insecure = 1;
	rc = gop_agent_ssh_command(&t->git, &cmd, e);
	if (rc == 0 && snprintf(t->ssh_cmd, sizeof(t->ssh_cmd), "%s", cmd.p) >= (int)sizeof(t->ssh_cmd))
		rc = err_set(e, "the workspace path is too long for GIT_SSH_COMMAND");
	buf_free(&cmd);
	return rc;
}

static int git_setup(struct task *t, struct err *e)
{
	struct buf dest = BUF_INIT;
	int rc;

	if (!t->p.git_repo)
		return 0;
	t->git_on = 1;
	buf_printf(&dest, "%s/repo", t->ws.dir);
	rc = gop_clone(&t->git, t->p.git_repo, t->p.git_branch, t->p.git_depth, dest.p, e);
	buf_free(&dest);
	if (rc != 0)
		return -1;
	return ws_use_subdir(&t->ws, "repo", e);
}

static const char *str_field(const cJSON *x, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

void task_tests_repo(const struct task *t, struct gop_tests_repo *tr)
{
	const cJSON *x = t->p.external_test_repo;

	memset(tr, 0, sizeof(*tr));
	tr->url = str_field(x, "url");
	tr->branch = str_field(x, "branch");
	tr->token = str_field(x, "installationAccessToken");
	tr->existing_pr_branch = str_field(x, "existingPrBranch");
	tr->depth = t->p.git_depth;
}

static int tests_setup(struct task *t, struct err *e)
{
	struct gop_tests_repo tr;

	if (!t->p.external_test_repo || !t->p.git_repo)
		return 0;
	task_tests_repo(t, &tr);
	if (!tr.url)
		return err_set(e, "externalTestRepo.url is required");
	return gop_tests_setup(&t->git, t->ws.root, &tr, e);
}

static void log_lines(enum slog_level level, const struct buf *lines)
{
	const char *p = lines->p, *nl;

	for (; p && *p && (nl = strchr(p, '\n')) != NULL; p = nl + 1)
		slog(level, "%.*s", (int)(nl - p), p);
}

static int files_setup(struct task *t, struct err *e)
{
	struct buf cwd = BUF_INIT;
	int written = 0;

	if (cc_write(t->ws.root, t->p.mcp_config, t->p.slash_commands, t->p.subagents, t->p.env_secrets, &t->files, e))
		return -1;
	log_lines(SLOG_WARNING, &t->files.warnings);
	snprintf(t->mcp_path, sizeof(t->mcp_path), "%s/.mcp.json", t->ws.root);
	if (access(t->mcp_path, R_OK) != 0)
		t->mcp_path[0] = 0;
	if (ws_mkdir(&t->ws, t->p.cwd_relative, &cwd, e) != 0) {
		buf_free(&cwd);
		return -1;
	}
	snprintf(t->claude_cwd, sizeof(t->claude_cwd), "%s", cwd.p);
	buf_free(&cwd);
	return pc_write_env(t->ws.root, t->p.env_secrets, &written, e);
}

static void cliconf_warn(const char *msg)
{
	slog(SLOG_WARNING, "%s", msg);
}

/*
 * The CLI's configuration directory (CLAUDE_CONFIG_DIR).  When the
 * operator set one for ccr, it is shared by every task (a managed
 * settings.json, say).  Otherwise each task gets <workspace>/.claude-config,
 * 0700, so that what the CLI keeps there -- session transcripts with the
 * whole conversation and every tool's output, todos, shell snapshots --
 * is wiped with the workspace instead of piling up under HOME; what the
 * operator installed in $HOME/.claude is made visible in it (cliconf.h).
 */
static int cli_config_dir(struct task *t, char *out, size_t size, struct err *e)
{
	const char *shared = t->env->set->claude_config_dir;

	if (shared && *shared)
		return snprintf(out, size, "%s", shared) < (int)size ? 0
			: err_set(e, "CLAUDE_CONFIG_DIR is too long");
	if (snprintf(out, size, "%s/.claude-config", t->ws.dir) >= (int)size)
		return err_set(e, "the workspace path is too long");
	if (mkdir(out, 0700) != 0)
		return err_set(e, "cannot create %s: %s", out, strerror(errno));
	return cf_populate(t->env->set->home, out, cliconf_warn, e);
}

/* What the CLI's and the pre-execution commands' environments are built
 * from (agentenv.h). */
static int agent_setup(struct task *t, struct err *e)
{
	if (cli_config_dir(t, t->confdir, sizeof(t->confdir), e) != 0)
		return -1;
	snprintf(t->base_url, sizeof(t->base_url), "http://127.0.0.1:%d", tp_port(&t->proxy));
	t->agent.secrets = t->p.env_secrets;
	t->agent.set = t->env->set;
	t->agent.base_url = t->base_url;
	t->agent.cred_name = tp_cred_env(&t->proxy);
	t->agent.cred_value = tp_dummy(&t->proxy);
	t->agent.git_ssh = t->ssh_cmd[0] ? t->ssh_cmd : NULL;
	t->agent.git_ssh_forced = t->ws.key_path[0] != 0;
	t->agent.config_dir = t->confdir;
	t->agent.egress_url = t->egress_on ? t->egress_url : NULL;
	t->agent.connect_exe = t->self_exe[0] ? t->self_exe : NULL;
	return 0;
}

static void precmd_log(void *arg, const char *line)
{
	(void)arg;
	slog(SLOG_INFO, "%s", line);
}

static int precmd_setup(struct task *t, struct err *e)
{
	struct pc_opts o;
	char **envp = NULL;
	int rc;

	if (!t->p.pre_exec)
		return 0;
	memset(&o, 0, sizeof(o));
	o.log = precmd_log;
	o.timeout_ms = pc_timeout_ms(t->env->set->precmd_timeout_s);
	o.sandbox = agentbox(t);
	if (ae_precmd_env(&t->agent, &envp, e) != 0)
		return -1;
	rc = pc_run_all(t->ws.root, t->p.pre_exec, envp, &o, &t->left, e);
	ae_free(envp);
	return rc;
}

void task_sess_ctx(const struct task *t, struct sess_ctx *c)
{
	c->st = t->st;
	c->sealer = t->env->be->sealer;
	c->task_id = t->env->task_id;
	c->cwd = t->claude_cwd;
	c->confdir = t->confdir;
}

/* A conversation continued from an earlier task (resumeTaskId). */
static int session_setup(struct task *t, struct err *e)
{
	struct sess_ctx c;

	task_sess_ctx(t, &c);
	return sess_restore(&c, t->p.resume_task_id, t->p.resume_session_id, e);
}

int task_setup(struct task *t, struct err *e)
{
	static int (*const steps[])(struct task *, struct err *) = {
		start_proxy, start_egress, ssh_setup, git_setup, tests_setup, files_setup, agentbox_setup, agent_setup,
		session_setup, precmd_setup,
	};
	size_t i;

	if (ws_create_for(&t->ws, t->env->set->workspace_root, t->env->task_id, e) != 0)
		return -1;
	t->ws_on = 1;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (task_cancelled)
			return err_set(e, "Task cancelled by user");
		if (task_storage_failed)
			return err_set(e, "storage kept failing: the task's log cannot be stored");
		if (steps[i](t, e) != 0)
			return -1;
	}
	return 0;
}

