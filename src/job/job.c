/*
 * job.c: `ccr job`, the task runner: the Cloud Run Job entrypoint, and in
 * local mode the child process that `ccr serve` starts.
 *
 * It reads TASK_ID and ENCRYPTED_PAYLOAD_PATH, opens the same backends as
 * serve (config.h), and runs the task (task.h).  SIGTERM or SIGINT (a
 * Cloud Run cancel, or serve's local cancel) ends the task as "cancelled",
 * with its logs flushed, terminal metadata written and the webhook sent.
 * Exit status: 0 when the task reached a stored terminal state, 1 when
 * not, 2 on a usage error.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "backend/config.h"
#include "ccr.h"
#include "gcp/run.h"
#include "job/task.h"
#include "net/netinit.h"

static void on_term(int sig)
{
	(void)sig;
	task_cancel();
}

/* Cloud Run sets CLOUD_RUN_EXECUTION to the execution's short id; serve
 * reports (and cancels by) the full resource name, so the job stores that
 * too, resolved as serve resolves it (crun_new: project, REGION). */
static const char *execution_name(char *out, size_t n)
{
	const char *ex = getenv("CLOUD_RUN_EXECUTION"), *job = getenv("CLOUD_RUN_JOB");
	struct err e = ERR_INIT;
	struct crun *c;

	if (!ex || !*ex || strchr(ex, '/') || !job || !*job || strchr(job, '/') ||
	    !(c = crun_new(NULL, NULL, &e)))
		return ex;
	snprintf(out, n, "projects/%s/locations/%s/jobs/%s/executions/%s", crun_project(c), crun_region(c), job, ex);
	crun_free(c);
	return out;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: TASK_ID=<id> ENCRYPTED_PAYLOAD_PATH=<path> ccr job\n"
		   "Runs one task: reads its sealed payload, runs the Claude Code CLI, stores the logs.\n"
		   "Backends as for `ccr serve`: cloud mode when GCS_LOGS_BUCKET is set, else CCR_DATA_DIR.\n"
		   "Settings: CLAUDE_BIN, CLAUDE_CONFIG_DIR (default: one per task, in the workspace),\n"
		   "CCR_WORKSPACE_ROOT, CCR_ANTHROPIC_UPSTREAM, CCR_IDLE_TIMEOUT_S, CCR_RESULT_GRACE_S,\n"
		   "CCR_KILL_GRACE_MS, CLOUDRUN_CALLBACK_SECRET; README.md lists them all.\n");
}

int job_main(int argc, char **argv)
{
	const char *id = getenv("TASK_ID"), *path = getenv("ENCRYPTED_PAYLOAD_PATH");
	struct sigaction sa;
	struct task_env env;
	struct backends be;
	struct err e = ERR_INIT;
	char self[4096], exec_name[512];
	int rc;

	if (argc > 1) {
		usage(strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	if (!id || !*id || !path || !*path) {
		fprintf(stderr, "ccr job: missing required environment variables: TASK_ID%s, ENCRYPTED_PAYLOAD_PATH%s\n",
			id && *id ? " (set)" : " (missing)", path && *path ? " (set)" : " (missing)");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Descendants that leave the CLI's process group come back to us when
	 * their parent dies, so the runner can stop them too. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (net_global_init(e.msg, sizeof(e.msg)) != 0) {
		fprintf(stderr, "ccr job: %s\n", e.msg);
		return 1;
	}
	snprintf(self, sizeof(self), "%s", argv[0]);
	if (backends_open(&be, 0, self, &e) != 0) {
		fprintf(stderr, "ccr job: %s\n", e.msg);
		return 1;
	}
	memset(&env, 0, sizeof(env));
	env.task_id = id;
	env.payload_path = path;
	env.execution_name = be.mode == CFG_CLOUD ? execution_name(exec_name, sizeof(exec_name))
						  : getenv("CLOUD_RUN_EXECUTION");
	env.be = &be;
	rc = task_run(&env);
	backends_close(&be);
	return rc == 0 ? 0 : 1;
}
