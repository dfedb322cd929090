/*
 * child.c: see child.h.
 *
 * The child side (run_child) touches no allocator and no lock: every
 * value it needs (the /dev/null descriptor, the descriptor limit for the
 * close loop of old kernels) is computed before the fork.  The errno pipe
 * is moved to descriptor 3 so that one close_range(4, ~0) closes all the
 * rest; it is close-on-exec, so a successful execve closes it and the
 * parent reads end of file.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/child.h"
#include "util/clock.h"

extern char **environ;

struct pre {                          /* computed before the fork */
	int fail, null, maxfd;
};

static void wire(int fd, int to, int null)
{
	int src = fd >= 0 ? fd : null;

	if (src < 0)
		close(to);
	else if (src == to ? fcntl(to, F_SETFD, 0) < 0 : dup2(src, to) < 0)
		_exit(126);
}

static void reset_signals(void)
{
	struct sigaction sa;
	sigset_t none;
	int s;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the child: only async-signal-safe calls.  Never returns. */
static _Noreturn void run_child(const struct child_spec *s, struct pre p)
{
	int in = s->fd_in, fd, err;

	if (s->new_session ? setsid() < 0 : setpgid(0, 0) != 0)
		goto fail;
	if (s->in_child && s->in_child(s->arg) != 0)
		goto fail;
	if (s->cwd && chdir(s->cwd) != 0)
		goto fail;
	if (s->stdin_path && (in = open(s->stdin_path, O_RDONLY)) < 0)
		goto fail;
	if (p.fail < 3) {                 /* keep it clear of stdio */
		if ((fd = fcntl(p.fail, F_DUPFD_CLOEXEC, 3)) < 0)
			goto fail;
		p.fail = fd;
	}
	wire(in, 0, p.null);
	wire(s->fd_out, 1, p.null);
	wire(s->fd_err, 2, p.null);
	/* Nothing else of ccr's (sockets, log files, pipes) reaches the program. */
	if (p.fail != 3) {
		if (dup3(p.fail, 3, O_CLOEXEC) < 0)
			goto fail;
		p.fail = 3;
	}
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 4U, ~0U, 0U) != 0)
#endif
		for (fd = 4; fd < p.maxfd; fd++)
			close(fd);
	reset_signals();
	execve(s->exe, s->argv, s->envp);
fail:
	err = errno;
	(void)!write(p.fail, &err, sizeof(err));
	_exit(127);
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

int child_spawn(const struct child_spec *s, pid_t *pidp, struct err *e)
{
	int pfail[2], ferr = 0;
	long m = sysconf(_SC_OPEN_MAX);
	struct pre p;
	ssize_t n;
	pid_t pid;

	if (pipe2(pfail, O_CLOEXEC) != 0)
		return err_set(e, "cannot create a pipe: %s", strerror(errno));
	p.fail = pfail[1];
	p.null = open("/dev/null", O_RDWR | O_CLOEXEC);
	p.maxfd = m > 0 && m < 65536 ? (int)m : 65536;
	pid = fork();
	if (pid == 0)
		run_child(s, p);
	close(pfail[1]);
	if (p.null >= 0)
		close(p.null);
	if (pid < 0) {
		close(pfail[0]);
		return err_set(e, "fork failed: %s", strerror(errno));
	}
	if (!s->new_session)
		setpgid(pid, pid);            /* also done by the child; whichever runs first */
	if (s->after_fork && s->after_fork(s->arg, e) != 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		reap(pid);
		close(pfail[0]);
		return -1;
	}
	while ((n = read(pfail[0], &ferr, sizeof(ferr))) < 0 && errno == EINTR)
		;
	close(pfail[0]);
	if (n == (ssize_t)sizeof(ferr)) {
		reap(pid);
		return err_set(e, "%s", strerror(ferr));
	}
	*pidp = pid;
	return 0;
}

int child_which(const char *path, char *const *envp, char *out, size_t n)
{
	const char *p = NULL, *seg;
	size_t i;

	if (strchr(path, '/')) {
		snprintf(out, n, "%s", path);
		return access(out, X_OK);
	}
	for (i = 0; (envp ? envp : environ) && (envp ? envp : environ)[i]; i++)
		if (strncmp((envp ? envp : environ)[i], "PATH=", 5) == 0)
			p = (envp ? envp : environ)[i] + 5;
	for (seg = p ? p : "/usr/local/bin:/usr/bin:/bin"; *seg;) {
		const char *end = strchr(seg, ':');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);

		if (len > 0 && (size_t)snprintf(out, n, "%.*s/%s", (int)len, seg, path) < n && access(out, X_OK) == 0)
			return 0;
		if (!end)
			break;
		seg = end + 1;
	}
	return -1;
}

void child_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int child_wait(pid_t pid, int64_t deadline, int *status)
{
	for (;;) {
		pid_t w = waitpid(pid, status, deadline ? WNOHANG : 0);

		if (w == pid)
			return 1;
		if (w < 0 && errno != EINTR)
			return -1;
		if (deadline && clock_mono_ms() >= deadline)
			return 0;
		if (w == 0)
			child_sleep_ms(10);
	}
}

int child_group_gone(pid_t pgid)
{
	int st;

	while (waitpid(-pgid, &st, WNOHANG) > 0)
		;
	return kill(-pgid, 0) != 0 && errno == ESRCH;
}

/* Poll until the group is gone or ms passed. */
static int gone_within(pid_t pgid, long ms)
{
	int64_t t = clock_mono_ms() + ms;

	for (; clock_mono_ms() < t; child_sleep_ms(10))
		if (child_group_gone(pgid))
			return 1;
	return child_group_gone(pgid);
}

int child_kill_group(pid_t pgid, long grace_ms)
{
	if (pgid <= 1)
		return -1;
	if (child_group_gone(pgid))
		return 0;
	kill(-pgid, SIGTERM);
	if (grace_ms > 0 && gone_within(pgid, grace_ms))
		return 0;
	kill(-pgid, SIGKILL);
	return gone_within(pgid, 1000) ? 0 : -1;
}

int child_exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}
