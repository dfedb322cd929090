/*
 * precmd.h: the `.env` file and the task's preExecutionCommands
 * (seed-spec §8.4 step 14, §8.7; fixes S4's list entry and S5).
 *
 * `.env` is the seed's format: `KEY=value` lines joined by "\n", no
 * trailing newline, no quoting; keys must be environment variable names
 * ([A-Za-z_][A-Za-z0-9_]*), and the file is 0600.
 *
 * Each command runs through `/bin/sh -c` with cwd = the workspace root, one
 * after the other.  Each has its own timeout (default 300 s, or
 * CCR_PRECMD_TIMEOUT_S) and leads its own process group; on timeout, or
 * when its output passes the cap (1 MiB of stdout and stderr together,
 * which fails the command as in the seed), the whole group gets SIGTERM
 * and, after a grace, SIGKILL.  stdin is an empty pipe (no /dev needed).
 * The command counts as finished when the shell has exited and the output
 * pipe is closed (as Node's execSync did): a background process that keeps
 * the output open keeps the command running until its timeout, while a
 * daemon that redirected its output may outlive the command; its process
 * group is then recorded in struct pc_leftovers so the job can kill it at
 * the end.
 *
 * The environment is the caller's (agentenv.h builds it: the job's own
 * environment minus its secrets, plus what the CLI gets, plus CI=true).
 *
 * Functions return 0, or -1 with `e` set; messages are redacted.  Captured
 * output in struct pc_result is raw (callers redact before logging).
 */
#ifndef CCR_PRECMD_H
#define CCR_PRECMD_H

#include <stddef.h>

#include <cJSON.h>

#include "sandbox/sandbox.h"
#include "util/buf.h"
#include "util/err.h"

#define PC_DEFAULT_TIMEOUT_S 300
#define PC_OUTPUT_CAP ((size_t)1 << 20)
#define PC_KILL_GRACE_MS 2000
#define PC_MAX_LEFTOVERS 32

struct pc_opts {
	long timeout_ms;        /* per command; 0: PC_DEFAULT_TIMEOUT_S (the job passes pc_timeout_ms) */
	size_t output_cap;      /* 0: PC_OUTPUT_CAP */
	long kill_grace_ms;     /* SIGTERM to SIGKILL; 0: PC_KILL_GRACE_MS */
	/* Progress lines ("[1/2] Running: <command>", "✓ Completed in <n>ms"),
	 * already redacted; NULL: silent. */
	void (*log)(void *arg, const char *line);
	void *arg;
	/* The box each command runs in (NULL: none).  A command's background
	 * processes end with it then: the box goes when its shell exits. */
	const struct sbx_config *sandbox;
};

struct pc_result {
	int status;             /* exit status, 128 + signal, or -1 when unknown */
	int term_signal;        /* the signal that ended the shell, or 0 */
	int timed_out, overflow;
	int pgid;               /* the command's process group (= the shell's pid) */
	int left_running;       /* processes of the group outlived the shell */
	long duration_ms;
	struct buf output;      /* stdout and stderr interleaved, at most the cap */
};

/* Process groups that outlived their command (daemons started in the
 * background); pc_leftovers_kill() ends them. */
struct pc_leftovers {
	int pgid[PC_MAX_LEFTOVERS];
	size_t n;
};

/* pc_timeout_ms: CCR_PRECMD_TIMEOUT_S (s, the job's setting, may be NULL)
 * in ms: seconds above 0, at most 7 days; else PC_DEFAULT_TIMEOUT_S. */
long pc_timeout_ms(const char *s);

/* pc_env_name_valid: 1 when name matches [A-Za-z_][A-Za-z0-9_]*. */
int pc_env_name_valid(const char *name);

/* pc_write_env: write <root>/.env when secrets (an object of strings, may
 * be NULL) has at least one member; *written (may be NULL) says whether. */
int pc_write_env(const char *root, const cJSON *secrets, int *written, struct err *e);

/* pc_run: run one command to its end (see above).  -1 only when it could
 * not be started (no /bin/sh, no cwd, no processes); every way it can end
 * is described in r (free with pc_result_free). */
int pc_run(const char *cwd, const char *command, char *const *envp, const struct pc_opts *o,
	   struct pc_result *r, struct err *e);
void pc_result_free(struct pc_result *r);

/* pc_run_all: run the array of command strings (NULL or empty: nothing)
 * in cwd with the environment envp (NULL: an empty one).  The first
 * failure (not started, non-zero exit, signal, timeout, output over the
 * cap) stops the run with the seed's message "Pre-execution command
 * failed: <command>\n<reason>\n<output tail>", redacted.  left (may be
 * NULL) collects groups that outlived their command. */
int pc_run_all(const char *cwd, const cJSON *commands, char *const *envp, const struct pc_opts *o,
	       struct pc_leftovers *left, struct err *e);

/* pc_leftovers_kill: child_kill_group() on each recorded group; empties l. */
void pc_leftovers_kill(struct pc_leftovers *l, long grace_ms);

#endif
