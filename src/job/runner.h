/*
 * runner.h: runs the Claude Code CLI for one task, with permanent
 * watchdogs, and hands each stdout line to a callback as it arrives.
 *
 * The child gets exactly the argv and environment it is given (never
 * ccr's own environment), runs in `cwd`, and leads its own process group,
 * so every signal reaches all of its descendants (MCP servers, shells).
 * The prompt goes in on stdin, or through a named pipe in `cwd` when
 * fifo_name is set; stdin then reaches EOF.
 *
 * Watchdogs: the overall timeout, an idle timeout (no output at all), and
 * a grace period after a `"type":"result"` line (re-armed by any later
 * output: background subagents may still be writing).  When one fires, or
 * runner_cancel() is called (from a SIGTERM handler: it is async-signal-
 * safe), the whole group gets SIGTERM and, kill_grace_ms later, SIGKILL.
 * After the child exits, any process left in its group is killed too.
 * The terminal reason says why it ended; a run ended by a signal or a
 * watchdog is never "completed".
 */
#ifndef CCR_RUNNER_H
#define CCR_RUNNER_H

#include <stddef.h>

#include "sandbox/sandbox.h"
#include "util/buf.h"
#include "util/err.h"

enum run_reason {
	RUN_COMPLETED,
	RUN_FAILED,
	RUN_CANCELLED,
	RUN_TIMEOUT,
	RUN_IDLE_TIMEOUT,
	RUN_HANG_AFTER_RESULT,
	RUN_STORAGE_FAILED,
};

/* "completed", "failed", "cancelled", "timeout", "idle_timeout",
 * "hang_after_result", "storage_failed". */
const char *run_reason_name(enum run_reason r);

struct runner_config {
	const char *path;                 /* executable (absolute, or looked up in env PATH) */
	char *const *argv;
	char *const *envp;
	const char *cwd;
	const char *prompt;
	size_t prompt_len;
	const char *fifo_name;            /* NULL: prompt straight to stdin */
	long timeout_ms, idle_ms, grace_ms, kill_grace_ms;
	/* After the CLI exits, SIGKILL every other child of this process:
	 * set when the caller is a child subreaper (see job.c), so processes
	 * that escaped the CLI's group are re-parented here and go too. */
	int kill_orphans;
	size_t max_line;                  /* longer lines are truncated (0: no limit) */
	const struct sbx_config *sandbox; /* the box the CLI runs in (NULL: none) */
	void (*on_line)(void *arg, const char *line, size_t n);
	/* A line of `total` bytes was cut to max_line (on_line got it with a marker). */
	void (*on_truncated)(void *arg, unsigned long long total);
	void (*on_stderr)(void *arg, const char *data, size_t n);
	/* Optional: called once, when the whole prompt is in the CLI's stdin
	 * (never before, so nothing the callee writes comes ahead of it), with
	 * a duplicate (close-on-exec, non-blocking) of the write end, which
	 * the callee then owns: stdin reaches EOF only when the callee has
	 * closed it too (stream-json input: job/convo.h).  -1 if none. */
	void (*on_stdin)(void *arg, int fd);
	void *arg;
};

struct runner_result {
	enum run_reason reason;
	int exit_code;                    /* exit status, 124 timeout, 128+signal */
	int term_signal;                  /* 0 unless ended by a signal */
	int pid;
	long duration_ms;
	struct buf stderr_text;           /* at most 1 MiB, the tail kept */
};

/* runner_run: run to the end.  -1 with e set only when the CLI could not
 * be started at all (e.g. not found); every other ending is a result. */
int runner_run(const struct runner_config *cfg, struct runner_result *res, struct err *e);

/* runner_cancel: ask the running run to stop (reason "cancelled"). */
void runner_cancel(void);

/* runner_abort: stop the run because its output can no longer be stored
 * (reason "storage_failed").  Async-signal-safe, like runner_cancel. */
void runner_abort(void);

void runner_result_free(struct runner_result *res);

#endif
