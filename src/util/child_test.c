/*
 * child_test.c: the child-process helper (util/child.h) and the one
 * log (util/log.h): output through a pipe, exec errors as errors, the
 * hooks around the fork, the deadline and the group kill, descriptors
 * closed in the child; JSON lines, the level filter, the redaction hook.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cJSON.h"
#include "selftest/selftest.h"
#include "util/child.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/redact.h"

/* Run sh -c script; its stdout into out (NUL-terminated), exit code into *code. */
static int run_sh(const char *script, char *out, size_t n, int *code, char *why, size_t wn)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL }, *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct child_spec s = { 0 };
	struct err e = ERR_INIT;
	int p[2], status = 0;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return st_fail(why, wn, "pipe: %s", strerror(errno));
	s.exe = "/bin/sh";
	s.argv = argv;
	s.envp = envp;
	s.fd_in = s.fd_err = -1;
	s.fd_out = p[1];
	if (child_spawn(&s, &pid, &e) != 0) {
		close(p[0]), close(p[1]);
		return st_fail(why, wn, "spawn: %s", e.msg);
	}
	close(p[1]);
	while (len + 1 < n && (r = read(p[0], out + len, n - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = 0;
	close(p[0]);
	if (child_wait(pid, 0, &status) != 1)
		return st_fail(why, wn, "the child was not reaped");
	*code = child_exit_code(status);
	return 0;
}

static int t_output_and_status(char *why, size_t n)
{
	char out[256];
	int code = -1;

	if (run_sh("echo hi; exit 3", out, sizeof(out), &code, why, n))
		return 1;
	if (strcmp(out, "hi\n") != 0 || code != 3)
		return st_fail(why, n, "got '%s' and exit %d, want 'hi' and 3", out, code);
	if (run_sh("kill -TERM $$", out, sizeof(out), &code, why, n))
		return 1;
	return code == 128 + SIGTERM ? 0 : st_fail(why, n, "a shell killed by SIGTERM gave %d", code);
}

static int t_fds_closed(char *why, size_t n)
{
	char out[256];
	int code, fd = dup2(0, 57), fail;

	if (fd != 57)
		return st_fail(why, n, "dup2: %s", strerror(errno));
	fail = run_sh("if [ -e /proc/self/fd/57 ]; then echo open; else echo closed; fi", out, sizeof(out), &code, why, n);
	close(57);
	if (fail)
		return 1;
	return strcmp(out, "closed\n") == 0 ? 0 : st_fail(why, n, "a descriptor of the parent reached the child: %s", out);
}

static int fail_in_child(void *arg)
{
	errno = EPERM;
	return -1;
}

static int fail_after_fork(void *arg, struct err *e)
{
	*(int *)arg = 1;
	return err_set(e, "the box could not be built");
}

static int t_start_errors(char *why, size_t n)
{
	char *argv[] = { "x", NULL }, *envp[] = { NULL };
	struct child_spec s = { 0 };
	struct err e = ERR_INIT;
	int called = 0;
	pid_t pid;

	s.exe = "/nonexistent/program";
	s.argv = argv;
	s.envp = envp;
	s.fd_in = s.fd_out = s.fd_err = -1;
	if (child_spawn(&s, &pid, &e) == 0 || !strstr(e.msg, strerror(ENOENT)))
		return st_fail(why, n, "a missing program: '%s'", e.msg);
	s.exe = "/bin/sh";
	s.in_child = fail_in_child;
	if (child_spawn(&s, &pid, &e) == 0 || !strstr(e.msg, strerror(EPERM)))
		return st_fail(why, n, "a failing child hook: '%s'", e.msg);
	s.in_child = NULL;
	s.after_fork = fail_after_fork;
	s.arg = &called;
	if (child_spawn(&s, &pid, &e) == 0 || !called || strcmp(e.msg, "the box could not be built") != 0)
		return st_fail(why, n, "a failing parent hook: '%s'", e.msg);
	return 0;
}

/* In a process of its own that is a child subreaper, as `ccr job` is, so
 * the group's orphans come back to it to be reaped: 0 when the group ran
 * past its deadline and child_kill_group ended all of it. */
static int deadline_and_kill(void)
{
	char *argv[] = { "sh", "-c", "sleep 30 & sleep 30; wait", NULL }, *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct child_spec s = { 0 };
	struct err e = ERR_INIT;
	int status;
	pid_t pid;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		return 1;
	s.exe = "/bin/sh";
	s.argv = argv;
	s.envp = envp;
	s.fd_in = s.fd_out = s.fd_err = -1;
	if (child_spawn(&s, &pid, &e) != 0)
		return 2;
	if (child_wait(pid, clock_mono_ms() + 100, &status) != 0) {
		child_kill_group(pid, 0);
		return 3;
	}
	if (child_kill_group(pid, 200) != 0)
		return 4;
	return kill(-pid, 0) != 0 && errno == ESRCH ? 0 : 5;
}

static int t_deadline_and_group_kill(char *why, size_t n)
{
	static const char *const what[] = { "", "cannot become a subreaper", "cannot spawn sh",
					    "a sleeping shell ended before its deadline", "the group outlived child_kill_group",
					    "a process of the group is still there" };
	int status = 0, code;
	pid_t pid = fork();

	if (pid < 0)
		return st_fail(why, n, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(deadline_and_kill());
	if (child_wait(pid, 0, &status) != 1)
		return st_fail(why, n, "the test process was not reaped");
	code = child_exit_code(status);
	if (code == 0)
		return 0;
	return st_fail(why, n, "%s", code > 0 && code < 6 ? what[code] : "the test process died");
}

static const char *member(const cJSON *j, const char *name)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, name));

	return v ? v : "";
}

/* Reads a pipe to its end into a buffer (t_log_queue's reader). */
struct drain {
	int fd;
	struct buf *out;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	char b[65536];
	ssize_t r;

	while ((r = read(d->fd, b, sizeof(b))) > 0 || (r < 0 && errno == EINTR))
		if (r > 0 && buf_add(d->out, b, (size_t)r) != 0)
			break;
	return NULL;
}

/* One line of the log through a pipe, with the redaction hook. */
static int t_log_line(char *why, size_t n)
{
	const char *old = getenv("LOG_LEVEL");
	char *saved = old ? strdup(old) : NULL, text[1024];
	int p[2], fail = 0;
	ssize_t r;
	cJSON *j = NULL;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return st_fail(why, n, "pipe: %s", strerror(errno));
	setenv("LOG_LEVEL", "info", 1);
	redact_clear();
	redact_add("sk-ant-selftest-secret-99");
	slog_init(p[1], redact_apply, getenv("LOG_LEVEL"));
	slog(SLOG_DEBUG, "dropped below info");
	slog(SLOG_WARNING, "key sk-ant-selftest-secret-99 in \"quotes\"");
	slog_fields(SLOG_ERROR, "with fields", "\"port\":8080");
	r = read(p[0], text, sizeof(text) - 1);
	text[r > 0 ? r : 0] = 0;
	slog_init(1, NULL, getenv("LOG_LEVEL"));
	if (saved)
		setenv("LOG_LEVEL", saved, 1);
	else
		unsetenv("LOG_LEVEL");
	free(saved);
	redact_clear();
	close(p[0]), close(p[1]);
	if (strstr(text, "dropped") || strstr(text, "sk-ant-selftest"))
		fail = st_fail(why, n, "a debug line or a secret reached the log: %s", text);
	else if (!strchr(text, '\n') || !(j = cJSON_Parse(text)) ||
		 strcmp(member(j, "severity"), "WARNING") != 0 ||
		 strcmp(member(j, "message"), "key [REDACTED] in \"quotes\"") != 0 || !member(j, "time")[0])
		fail = st_fail(why, n, "not the JSON line expected: %s", text);
	else if (!strstr(text, "\"message\":\"with fields\",\"time\":") || !strstr(text, ",\"port\":8080}\n"))
		fail = st_fail(why, n, "the fields line is not as expected: %s", text);
	cJSON_Delete(j);
	return fail;
}

/* The queue: queued lines come out whole, in order, all of them by
 * slog_queue_stop, and more than one batch's worth waits, never drops. */
static int t_log_queue(char *why, size_t n)
{
	enum { LINES = 20000 };
	int p[2], fail = 0, i, count = 0, next = 0;
	struct buf got = BUF_INIT;
	char msg[64], *line, *save = NULL;
	pthread_t th;
	struct drain d;

	if (pipe2(p, O_CLOEXEC) != 0)
		return st_fail(why, n, "pipe: %s", strerror(errno));
	d.fd = p[0], d.out = &got;
	if (pthread_create(&th, NULL, drain_main, &d) != 0) {
		close(p[0]), close(p[1]);
		return st_fail(why, n, "no thread");
	}
	slog_init(p[1], NULL, "info");
	if (slog_queue_start() != 0)
		fail = st_fail(why, n, "slog_queue_start failed");
	for (i = 0; i < LINES && !fail; i++) {
		snprintf(msg, sizeof(msg), "queued %d", i);
		slog_fields_queued(SLOG_INFO, msg, "\"n\":1");
	}
	slog_queue_stop();
	slog_init(1, NULL, "info");
	close(p[1]);
	pthread_join(th, NULL);
	close(p[0]);
	for (line = got.p ? strtok_r(got.p, "\n", &save) : NULL; line && !fail; line = strtok_r(NULL, "\n", &save)) {
		char want[64];

		snprintf(want, sizeof(want), "\"message\":\"queued %d\"", next++);
		if (!strstr(line, want) || !strstr(line, ",\"n\":1}"))
			fail = st_fail(why, n, "line %d is not whole or not in order: %.200s", next - 1, line);
		count++;
	}
	if (!fail && count != LINES)
		fail = st_fail(why, n, "%d of %d queued lines came out", count, LINES);
	buf_free(&got);
	return fail;
}

const struct st_case child_tests[] = {
	{ "output_and_status", t_output_and_status },
	{ "fds_closed", t_fds_closed },
	{ "start_errors", t_start_errors },
	{ "deadline_and_group_kill", t_deadline_and_group_kill },
	{ "log_line", t_log_line },
	{ "log_queue", t_log_queue },
	{ NULL, NULL },
};
