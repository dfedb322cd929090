/*
 * child.h: one child process in a process group of its own (prefix child_).
 *
 * Every program ccr starts (the Claude CLI, a pre-execution command,
 * `claude --version` for the health check, `ccr job` for a local task)
 * goes through child_spawn:
 *
 *   - fork; the child leads a new process group (setpgid, done by both
 *     sides so a kill can never miss it) or a new session (setsid);
 *   - in the child, before anything else, the caller's hook runs (the
 *     sandbox's sbx_child: it may fork intermediate processes and returns
 *     only in the one that must exec, inside the box); then chdir, stdin
 *     from a path opened there (a FIFO), stdio wired, every other
 *     descriptor closed (close_range), signal dispositions and the mask
 *     reset, execve.  Only async-signal-safe calls: ccr has threads;
 *   - in the parent, the caller's after-fork hook runs (sbx_started: the
 *     box is built, its port relays start); then a close-on-exec pipe
 *     tells whether the exec worked, so "no such program" is an error with
 *     its errno, not an exit status 127.
 *
 * Then the caller drives the child (its own poll loop or child_wait),
 * kills the group with child_kill_group (SIGTERM, a grace period, SIGKILL)
 * and reads the wait status with child_exit_code.  Times are milliseconds
 * of clock_mono_ms().
 */
#ifndef CCR_CHILD_H
#define CCR_CHILD_H

#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

struct child_spec {
	const char *exe;                  /* the program's path (see child_which) */
	char *const *argv, *const *envp;
	const char *cwd;                  /* NULL: the caller's */
	const char *stdin_path;           /* opened O_RDONLY after chdir (NULL: fd_in) */
	int fd_in, fd_out, fd_err;        /* dup'ed to 0, 1, 2; -1: /dev/null */
	int new_session;                  /* setsid instead of setpgid */
	/* In the child, first thing after the group: 0 to go on in this
	 * process, -1 with errno set to fail the start. */
	int (*in_child)(void *arg);
	/* In the parent, after the fork: 0, or -1 with e set to fail the
	 * start (the child's group is then killed and reaped). */
	int (*after_fork)(void *arg, struct err *e);
	void *arg;
	const char *what;                 /* for messages: "the Claude CLI" */
};

/* child_spawn: start the child; its pid (also its process group) in
 * *pid.  -1 with e set when it could not be started (nothing is left
 * running then).  The caller closes its own copies of fd_in/out/err. */
int child_spawn(const struct child_spec *s, pid_t *pid, struct err *e);

/* child_which: path resolved against the PATH of envp (NULL: environ's),
 * like execvp; 0 when an executable was found into out. */
int child_which(const char *path, char *const *envp, char *out, size_t n);

/* child_wait: wait for pid until deadline (clock_mono_ms; 0: forever).
 * 1 reaped (status set), 0 deadline passed, -1 not our child. */
int child_wait(pid_t pid, int64_t deadline, int *status);

/* child_group_gone: reap our children in group pgid; 1 once the group
 * has no process left at all. */
int child_group_gone(pid_t pgid);

/* child_kill_group: SIGTERM the group, SIGKILL it grace_ms later if it is
 * still there, reaping our children in it; 0 once it is gone. */
int child_kill_group(pid_t pgid, long grace_ms);

/* child_exit_code: a wait status as a shell shows it (128 + signal). */
int child_exit_code(int status);

/* child_sleep_ms: sleep, resumed across signals. */
void child_sleep_ms(long ms);

#endif
