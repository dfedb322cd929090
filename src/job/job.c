/*
 * job.c: `ccr job`, the task runner: the Cloud Run Job entrypoint, and in
 * local mode the child process that `ccr serve` starts.
 *
 * It reads TASK_ID and ENCRYPTED_PAYLOAD_PATH, opens the same backends as
 * serve (config.h), and runs the task (task.h).  SIGTERM or SIGINT (a
 * Cloud Run cancel, or serve's local cancel) ends the task as "cancelled",
 * with its logs flushed, terminal metadata written and the webhook sent.
 * Exit status: 0 when the task completed, 1 when it failed (or its
 * terminal state could not be stored), 130 when it was cancelled, 2 on a
 * usage error, so Cloud Run shows a failed task as a failed execution.
 * A retried attempt (CLOUD_RUN_TASK_ATTEMPT > 0) never runs the agent a
 * second time (task.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "util/secenv.h"
#include "backend/config.h"
#include "ccr.h"
#include "gcp/run.h"
#include "job/jobset.h"
#include "job/task.h"
#include "net/netinit.h"
#include "settings/settings.h"
#include "util/log.h"
#include "util/redact.h"

/* Static: the SIGTERM handler writes to it, and has no context. */
static int stop_pipe[2] = { -1, -1 };

static void on_term(int sig)
{
	char c = 1;

	(void)sig;
	task_cancel();
	if (write(stop_pipe[1], &c, 1) < 0) {
		/* already armed */
	}
}

/* The backstop of a SIGTERM: whatever phase the job is in (a clone, a
 * pre-execution command, a retry), it is gone within CCR_STOP_BUDGET_MS
 * (default 9 s, inside Cloud Run's 10 s).  Every phase also stops early
 * on its own; this thread only ends a job that did not, with exit 130
 * (the orphan guard then kills the CLI, and serve's reconciler records
 * the task as cancelled if the job could not). */
static void *stop_watch(void *arg)
{
	long budget = (long)(intptr_t)arg;
	char c;
	struct timespec ts = { budget / 1000, (budget % 1000) * 1000000L };

	while (read(stop_pipe[0], &c, 1) < 0)
		;
	while (nanosleep(&ts, &ts) != 0)
		;
	slog(SLOG_ERROR, "ccr job: still running %ld ms after SIGTERM; exiting", budget);
	_exit(130);
	return NULL;
}

static int arm_stop_watch(long budget)
{
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	if (pipe2(stop_pipe, O_CLOEXEC) != 0)
		return -1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, stop_watch, (void *)(intptr_t)budget);
	pthread_attr_destroy(&attr);
	return rc == 0 ? 0 : -1;
}

/* Cloud Run sets CLOUD_RUN_EXECUTION to the execution's short id; serve
 * reports (and cancels by) the full resource name, so the job stores that
 * too, resolved as serve resolves it (crun_new: project, REGION). */
static const char *execution_name(const struct job_settings *set, char *out, size_t n)
{
	const char *ex = set->run_execution, *job = set->run_job;
	struct err e = ERR_INIT;
	struct crun *c;

	if (!ex || !*ex || strchr(ex, '/') || !job || !*job || strchr(job, '/') ||
	    !(c = crun_new(NULL, NULL, &e)))
		return ex;
	snprintf(out, n, "projects/%s/locations/%s/jobs/%s/executions/%s", crun_project(c), crun_region(c), job, ex);
	crun_free(c);
	return out;
}

/* CLOUD_RUN_TASK_ATTEMPT: 0 for the first attempt; a value that is not a
 * number counts as a retry, so the agent is never run twice by mistake. */
static int attempt_number(const struct job_settings *set)
{
	const char *a = set->run_attempt;
	char *end;
	long v;

	if (!a || !*a)
		return 0;
	v = strtol(a, &end, 10);
	return *end || v < 0 ? 1 : v > 1000000 ? 1000000 : (int)v;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: TASK_ID=<id> ENCRYPTED_PAYLOAD_PATH=<path> ccr job\n"
		   "Runs one task: reads its sealed payload, runs the Claude Code CLI, stores the logs.\n"
		   "Backends as for `ccr serve`: cloud mode when GCS_LOGS_BUCKET is set, else CCR_DATA_DIR.\n"
		   "The agent's ssh uses `ccr connect HOST PORT`.  Settings (read once at start-up; a\n"
		   "malformed number stops the job with exit 2):\n");
	settings_help(f, SC_JOB);
	fprintf(f, "Exit status: 0 completed, 1 failed, 130 cancelled, 2 usage error.\n");
}

int job_main(int argc, char **argv)
{
	struct job_settings set;           /* read once; the task's context (task_env.set) */
	const char *id, *path;
	struct sigaction sa;
	struct task_env env;
	struct backends be;
	struct err e = ERR_INIT;
	char self[4096], exec_name[512];
	int rc;

	static const char *const secrets[] = { "CLOUDRUN_CALLBACK_SECRET", "CCR_API_KEYS" };

	secenv_take(secrets, 2);
	jobset_read(&set);
	id = set.task_id;
	path = set.payload_path;
	if (argc > 1) {
		usage(strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	if (!id || !*id || !path || !*path) {
		fprintf(stderr, "ccr job: missing required environment variables: TASK_ID%s, ENCRYPTED_PAYLOAD_PATH%s\n",
			id && *id ? " (set)" : " (missing)", path && *path ? " (set)" : " (missing)");
		return 1;
	}
	slog_init(2, redact_apply, set.log_level);    /* the job's log: stderr, redacted (util/log.h) */
	if (arm_stop_watch(set.stop_budget_ms) != 0) {
		fprintf(stderr, "ccr job: cannot start the stop watchdog: %s\n", strerror(errno));
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
	if (backends_open(&be, &set.be, 0, self, &e) != 0) {
		fprintf(stderr, "ccr job: %s\n", e.msg);
		return 1;
	}
	memset(&env, 0, sizeof(env));
	env.task_id = id;
	env.payload_path = path;
	env.execution_name = be.mode == CFG_CLOUD ? execution_name(&set, exec_name, sizeof(exec_name))
						  : set.run_execution;
	env.attempt = attempt_number(&set);
	env.set = &set;
	env.be = &be;
	rc = task_run(&env);
	backends_close(&be);
	return rc;
}
