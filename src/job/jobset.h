/*
 * jobset.h: the settings `ccr job` reads, read once (prefix jobset_).
 *
 * job_main() calls jobset_read() once, before the task starts, and
 * carries the result down as explicit context (task_env.set, ae_ctx.set):
 * no code under job/ reads the settings snapshot itself.  Each field
 * keeps its setting's default and quirks: strings are NULL when unset
 * (the user of each applies its own default, as before); the two
 * settings whose default depends on the backends' mode are read once per
 * mode (task.c picks); CCR_PRECMD_TIMEOUT_S and CCR_MAX_BUDGET_USD stay
 * strings, parsed (and reported) where they are used.
 */
#ifndef CCR_JOBSET_H
#define CCR_JOBSET_H

#include "backend/config.h"
#include "git/git.h"
#include "webhook/webhook.h"

struct job_settings {
	/* job.c */
	const char *task_id, *payload_path;   /* TASK_ID, ENCRYPTED_PAYLOAD_PATH */
	const char *log_level;                /* LOG_LEVEL */
	const char *run_execution, *run_job;  /* CLOUD_RUN_EXECUTION, CLOUD_RUN_JOB */
	const char *run_attempt;              /* CLOUD_RUN_TASK_ATTEMPT */
	long stop_budget_ms;                  /* CCR_STOP_BUDGET_MS */
	/* task.c */
	long inbox_poll_ms_local, inbox_poll_ms_cloud;  /* CCR_INBOX_POLL_MS */
	long log_flush_ms_local, log_flush_ms_cloud;    /* CCR_LOG_FLUSH_MS */
	long idle_timeout_s, result_grace_s;  /* CCR_IDLE_TIMEOUT_S, CCR_RESULT_GRACE_S */
	long kill_grace_ms, max_line_bytes;   /* CCR_KILL_GRACE_MS, CCR_MAX_LINE_BYTES */
	long webhook_deadline_s;              /* CCR_WEBHOOK_DEADLINE_S */
	struct wh_policy callbacks;           /* CCR_ALLOW_PRIVATE_CALLBACKS, CCR_CALLBACK_ALLOW_HOSTS */
	long log_flush_deadline_ms;           /* CCR_LOG_FLUSH_DEADLINE_MS */
	long storage_give_up_s;               /* CCR_STORAGE_GIVE_UP_S */
	/* tasksetup.c, agentbox.c, precmd.c */
	struct backends_settings be;          /* GCS_LOGS_BUCKET, CCR_DATA_DIR, ... (no executor) */
	struct gop_settings git;              /* CCR_GIT_TIMEOUT_SECONDS, CCR_SSH_*, CCR_GITHUB_*, GIT_SSH */
	const char *max_budget_usd;           /* CCR_MAX_BUDGET_USD */
	const char *anthropic_upstream;       /* CCR_ANTHROPIC_UPSTREAM (proxy/proxy.h) */
	const char *egress_allow, *egress_allow_private;  /* CCR_EGRESS_ALLOW, _ALLOW_PRIVATE */
	long egress_idle_s;                   /* CCR_EGRESS_IDLE_S */
	const char *claude_config_dir;        /* CLAUDE_CONFIG_DIR */
	const char *sandbox;                  /* CCR_SANDBOX */
	const char *sandbox_ro, *sandbox_rw;  /* CCR_SANDBOX_RO_PATHS, _RW_PATHS */
	const char *precmd_timeout_s;         /* CCR_PRECMD_TIMEOUT_S */
	const char *workspace_root;           /* CCR_WORKSPACE_ROOT */
	/* agentenv.c, claude_cmd.c */
	const char *home;                     /* HOME, else "/root" */
	const char *path;                     /* PATH */
	const char *browsers;                 /* PLAYWRIGHT_BROWSERS_PATH */
	const char *claude_bin;               /* CLAUDE_BIN */
	int skip_permissions;                 /* DANGEROUSLY_SKIP_PERMISSIONS is "true" */
	int claude_debug;                     /* CLAUDE_DEBUG is "true" */
};

/* jobset_read: fill s from the settings snapshot (call once). */
void jobset_read(struct job_settings *s);

#endif
