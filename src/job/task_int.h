/*
 * task_int.h: the state shared by task.c (the run), tasksetup.c (the
 * steps before the agent), postexec.c and billing.c (after it), agentbox.c
 * (the sandbox) -- private to ccr job.  task.c calls the others; none of
 * them calls task.c (the job writes its log through util/log.h).
 */
#ifndef CCR_TASK_INT_H
#define CCR_TASK_INT_H

#include <signal.h>

#include "job/agentenv.h"
#include "sandbox/sandbox.h"
#include "job/claudecfg.h"
#include "egress/egress.h"
#include "job/convo.h"
#include "git/git.h"
#include "task/logsink.h"
#include "task/payload.h"
#include "job/precmd.h"
#include "proxy/proxy.h"
#include "task/report.h"
#include "job/task.h"
#include "job/workspace.h"
#include "util/log.h"

struct task {
	const struct task_env *env;
	struct storage *st;
	struct payload p;
	int have_payload;
	struct report rep;
	struct logsink *log;
	struct tp_proxy proxy;
	int proxy_on;
	/* The egress proxy: the agent's only way out of the sandbox.  Its
	 * port (eg_port(&t->egress)) and the token proxy's (tp_port) are the
	 * loopback ports the sandbox relays. */
	struct eg_proxy egress;
	int egress_on;
	struct cv_ctx cv;            /* follow-up messages (idleAfterResultSeconds) */
	int cv_on;
	struct ws ws;
	int ws_on;
	struct gop_ctx git;          /* the SSH policy, and the clone's git operations */
	int gctx_on;                 /* git initialised (every task) */
	int git_on;                  /* a repository was cloned (gitRepo) */
	struct cc_files files;
	struct pc_leftovers left;
	char claude_cwd[4096];
	char mcp_path[4200];
	char ssh_cmd[4600];          /* the agent's GIT_SSH_COMMAND */
	char confdir[4096];          /* the CLI's CLAUDE_CONFIG_DIR */
	char base_url[64];           /* the token proxy */
	char egress_url[64];         /* the egress proxy, http://127.0.0.1:PORT */
	char self_exe[4096];         /* this ccr executable (`ccr connect` for the agent's ssh), "" if unknown */
	struct ae_ctx agent;         /* what the CLI's and pre-exec environments are built from */
	struct sbx_config box;       /* the agent's sandbox (agentbox.c) */
	char box_home[4200], box_tmp[4200];
	char box_ro[SBX_MAX_MORE][1024];  /* the operator's $HOME/.claude directories the CLI's config links to */
	char payload_key[600];
	char cli_cache[4096];        /* the CLI's cache dir (its MCP logs), "" before it ran */
	struct buf mcp_failed;       /* MCP servers the init line reported not connected, '\n'-separated */
	struct buf logs_url;
	char prior_status[16];       /* the stored status when the job began */
	int64_t t0;
};

extern volatile sig_atomic_t task_cancelled, task_storage_failed;

/* tasksetup.c.  task_error_line: append {"type":"error","error":msg,
 * "timestamp":...} to the task's log (redacted) and count it;
 * task_setup: every step before the agent runs. */
void task_error_line(struct task *t, const char *msg);
/* task_tests_repo: the payload's externalTestRepo as the git layer takes it
 * (strings point into the payload). */
void task_tests_repo(const struct task *t, struct gop_tests_repo *tr);
int task_setup(struct task *t, struct err *e);

/* task_sess_ctx: what job/session.c needs of the task (tasksetup.c). */
struct sess_ctx;
void task_sess_ctx(const struct task *t, struct sess_ctx *c);

/* agentbox_setup: the agent's sandbox for this task (agentbox.c);
 * agentbox: the config to run agent programs in, or NULL for none. */
int agentbox_setup(struct task *t, struct err *e);
const struct sbx_config *agentbox(const struct task *t);

/* postexec_run: uploads, external test repo, git (seed-spec §11). */
void postexec_run(struct task *t);

/* billing_collect: the seed's billing summary (§10.5) into t->rep. */
void billing_collect(struct task *t);

#endif
