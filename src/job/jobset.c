/*
 * jobset.c: struct job_settings from the settings table, once (see
 * jobset.h).  The only file under job/ that reads the snapshot.
 */
#include "job/jobset.h"
#include <string.h>

#include "settings/settings.h"

/* The two flags are on only when they are the word "true". */
static int is_true(const char *v)
{
	return v && strcmp(v, "true") == 0;
}

static void read_job(struct job_settings *s)
{
	s->task_id = settings_str(SET_TASK_ID);
	s->payload_path = settings_str(SET_ENCRYPTED_PAYLOAD_PATH);
	s->log_level = settings_str(SET_LOG_LEVEL);
	s->run_execution = settings_str(SET_CLOUD_RUN_EXECUTION);
	s->run_job = settings_str(SET_CLOUD_RUN_JOB);
	s->run_attempt = settings_str(SET_CLOUD_RUN_TASK_ATTEMPT);
	s->stop_budget_ms = settings_int(SET_CCR_STOP_BUDGET_MS);
	s->be.bucket = settings_str(SET_GCS_LOGS_BUCKET);
	s->be.data_dir = settings_str(SET_CCR_DATA_DIR);
	s->be.local_key = settings_str(SET_CCR_LOCAL_KEY_FILE);
	s->be.job_name = settings_str(SET_CLOUDRUN_JOB_NAME);
	s->be.kms_location = settings_str(SET_KMS_LOCATION);
}

static void read_task(struct job_settings *s)
{
	s->inbox_poll_ms_local = settings_int_or(SET_CCR_INBOX_POLL_MS, 100);
	s->inbox_poll_ms_cloud = settings_int_or(SET_CCR_INBOX_POLL_MS, 1000);
	s->log_flush_ms_local = settings_int_or(SET_CCR_LOG_FLUSH_MS, 20);
	s->log_flush_ms_cloud = settings_int_or(SET_CCR_LOG_FLUSH_MS, 250);
	s->idle_timeout_s = settings_int(SET_CCR_IDLE_TIMEOUT_S);
	s->result_grace_s = settings_int(SET_CCR_RESULT_GRACE_S);
	s->kill_grace_ms = settings_int(SET_CCR_KILL_GRACE_MS);
	s->max_line_bytes = settings_int(SET_CCR_MAX_LINE_BYTES);
	s->webhook_deadline_s = settings_int(SET_CCR_WEBHOOK_DEADLINE_S);
	s->callbacks.allow_private = settings_str(SET_CCR_ALLOW_PRIVATE_CALLBACKS);
	s->callbacks.allow_hosts = settings_str(SET_CCR_CALLBACK_ALLOW_HOSTS);
	s->log_flush_deadline_ms = settings_int(SET_CCR_LOG_FLUSH_DEADLINE_MS);
	s->storage_give_up_s = settings_int(SET_CCR_STORAGE_GIVE_UP_S);
}

static void read_setup(struct job_settings *s)
{
	const char *home = settings_str(SET_HOME);

	s->max_budget_usd = settings_str(SET_CCR_MAX_BUDGET_USD);
	s->anthropic_upstream = settings_str(SET_CCR_ANTHROPIC_UPSTREAM);
	s->egress_allow = settings_str(SET_CCR_EGRESS_ALLOW);
	s->egress_allow_private = settings_str(SET_CCR_EGRESS_ALLOW_PRIVATE);
	s->egress_idle_s = settings_int(SET_CCR_EGRESS_IDLE_S);
	s->claude_config_dir = settings_str(SET_CLAUDE_CONFIG_DIR);
	s->sandbox = settings_str(SET_CCR_SANDBOX);
	s->sandbox_ro = settings_str(SET_CCR_SANDBOX_RO_PATHS);
	s->sandbox_rw = settings_str(SET_CCR_SANDBOX_RW_PATHS);
	s->precmd_timeout_s = settings_str(SET_CCR_PRECMD_TIMEOUT_S);
	s->workspace_root = settings_str(SET_CCR_WORKSPACE_ROOT);
	s->home = home && *home ? home : "/root";
	s->path = settings_str(SET_PATH);
	s->browsers = settings_str(SET_PLAYWRIGHT_BROWSERS_PATH);
	s->claude_bin = settings_str(SET_CLAUDE_BIN);
	s->skip_permissions = is_true(settings_str(SET_DANGEROUSLY_SKIP_PERMISSIONS));
	s->claude_debug = is_true(settings_str(SET_CLAUDE_DEBUG));
}

/* The git layer's (git/git.h); tools/git_cmd.c reads the same for `ccr git`. */
static void read_git(struct gop_settings *g)
{
	g->timeout_s = settings_str(SET_CCR_GIT_TIMEOUT_SECONDS);
	g->known_hosts = settings_str(SET_CCR_SSH_KNOWN_HOSTS);
	g->ssh_insecure = settings_str(SET_CCR_SSH_INSECURE);
	g->github_url = settings_str(SET_CCR_GITHUB_URL);
	g->github_api = settings_str(SET_CCR_GITHUB_API);
	g->git_ssh = settings_str(SET_GIT_SSH);
}

void jobset_read(struct job_settings *s)
{
	read_git(&s->git);
	read_job(s);
	read_task(s);
	read_setup(s);
}
