/*
 * runner.c: see runner.h.
 *
 * One poll(2) loop in the calling thread drives everything: the prompt
 * going in (non-blocking, so a prompt larger than a pipe never deadlocks
 * against a child that writes first), stdout lines and stderr coming out,
 * a self-pipe that runner_cancel() writes to, and the watchdog deadlines,
 * which set the poll timeout.  No threads and no signal handlers of its
 * own, so the caller's SIGTERM handler only has to call runner_cancel().
 * The CLI is started by child_spawn (util/child.h), with the sandbox's
 * sbx_child and sbx_started as its hooks around the fork.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "job/proctree.h"
#include "job/runner.h"
#include "util/child.h"
#include "util/clock.h"

#define STDERR_CAP (1024 * 1024)
#define NEVER (~0ULL >> 1)

/* Static, not in struct run: runner_cancel() is called from the job's
 * SIGTERM handler, which has no context to reach the run through. */
static volatile sig_atomic_t cancel_requested, abort_requested;
static volatile int wake_fd = -1;

void runner_cancel(void)
{
	int fd = wake_fd;
	char c = 1;

	cancel_requested = 1;
	if (fd >= 0 && write(fd, &c, 1) < 0) {
		/* The flag alone still stops the run at the next wake-up. */
	}
}

void runner_abort(void)
{
	int fd = wake_fd;
	char c = 1;

	abort_requested = 1;
	if (fd >= 0 && write(fd, &c, 1) < 0) {
		/* The flag alone still stops the run at the next wake-up. */
	}
}

const char *run_reason_name(enum run_reason r)
{
	static const char *names[] = { "completed",    "failed",	    "cancelled",     "timeout",
				       "idle_timeout", "hang_after_result", "storage_failed" };

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "failed";
}

struct run {
	const struct runner_config *cfg;
	struct runner_result *res;
	pid_t pid, guard;
	int out, err, in, wake;              /* -1 when closed */
	size_t in_off;
	int stdin_handed;               /* on_stdin was called */
	struct buf line;                     /* the current line, at most max_line bytes */
	unsigned long long line_total;       /* its length so far, dropped bytes included */
	unsigned long long start, last_output, last_active, term_at;
	unsigned long long cpu_seen;         /* CPU ticks of the agent's processes at last_active */
	int result_seen, killing, reaped, group_killed, status;
	enum run_reason why;                 /* set when a watchdog or cancel fired */
	struct sbx_spawn box;                /* level SBX_NONE when there is no sandbox */
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void emit_one(struct run *r, const char *line, size_t n)
{
	if (memmem(line, n, "\"type\":\"result\"", 15))
		r->result_seen = 1;
	r->cfg->on_line(r->cfg->arg, line, n);
}

/* The end of a line: emit what was kept of it.  A line longer than
 * max_line keeps its first max_line bytes, then a marker saying how long
 * it was, and the caller is told (on_truncated). */
static void finish_line(struct run *r)
{
	char mark[96];
	int n;

	if (r->line_total == 0)
		return;
	if (r->line_total > r->line.len) {
		n = snprintf(mark, sizeof(mark), " [ccr: line truncated, %llu bytes in all]",
			     (unsigned long long)r->line_total);
		if (buf_add(&r->line, mark, (size_t)n) == 0)
			emit_one(r, r->line.p, r->line.len);
		if (r->cfg->on_truncated)
			r->cfg->on_truncated(r->cfg->arg, r->line_total);
	} else {
		emit_one(r, r->line.p, r->line.len);
	}
	r->line.len = 0;
	r->line_total = 0;
}

/* Take n bytes of stdout.  Each byte is searched for '\n' once, so a
 * long line is assembled in linear time, and at most max_line bytes of a
 * line are kept: the rest is counted and dropped as it arrives (memory
 * that runs out drops bytes the same way, and the line says so). */
static void take_output(struct run *r, const char *p, size_t n)
{
	size_t max = r->cfg->max_line ? r->cfg->max_line : (size_t)-1 / 2;

	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t part = nl ? (size_t)(nl - p) : n;
		size_t room = r->line.len < max ? max - r->line.len : 0;

		(void)buf_add(&r->line, p, part < room ? part : room);
		r->line_total += part;
		if (!nl)
			return;
		finish_line(r);
		p += part + 1;
		n -= part + 1;
	}
}

static void read_out(struct run *r)
{
	char chunk[65536];
	ssize_t n = read(r->out, chunk, sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		finish_line(r);
		close_fd(&r->out);
		return;
	}
	r->last_output = r->last_active = (unsigned long long)clock_mono_ms();
	take_output(r, chunk, (size_t)n);
}

static void read_err(struct run *r)
{
	struct buf *b = &r->res->stderr_text;
	char chunk[16384];
	ssize_t n = read(r->err, chunk, sizeof(chunk));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close_fd(&r->err);
		return;
	}
	r->last_output = r->last_active = (unsigned long long)clock_mono_ms();
	if (r->cfg->on_stderr)
		r->cfg->on_stderr(r->cfg->arg, chunk, (size_t)n);
	if (buf_add(b, chunk, (size_t)n) == 0 && b->len > STDERR_CAP) {
		memmove(b->p, b->p + b->len - STDERR_CAP, STDERR_CAP);
		b->len = STDERR_CAP;
		b->p[b->len] = 0;
	}
}

/* The prompt is in (or stdin is gone): the caller's on_stdin gets its own
 * copy of stdin now, never before, so nothing it writes can come ahead
 * of the prompt; then our copy is closed. */
static void prompt_done(struct run *r)
{
	if (r->cfg->on_stdin && !r->stdin_handed) {
		r->stdin_handed = 1;
		r->cfg->on_stdin(r->cfg->arg, r->in >= 0 ? fcntl(r->in, F_DUPFD_CLOEXEC, 0) : -1);
	}
	close_fd(&r->in);
}

static void write_in(struct run *r)
{
	ssize_t n = write(r->in, r->cfg->prompt + r->in_off, r->cfg->prompt_len - r->in_off);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0) {
		close_fd(&r->in);               /* the child closed stdin: fine */
		prompt_done(r);
		return;
	}
	r->in_off += (size_t)n;
	if (r->in_off >= r->cfg->prompt_len)
		prompt_done(r);
}

static void terminate(struct run *r, enum run_reason why)
{
	if (r->killing)
		return;
	r->why = why;
	r->killing = 1;
	r->term_at = (unsigned long long)clock_mono_ms();
	kill(-r->pid, SIGTERM);
}

/* Silent is not idle: when the idle window has passed without output, the
 * CPU time of every process the agent runs (the CLI and everything below
 * it, orphans that came back to this subreaper included) is read, and at
 * least 1% of one core over the window counts as activity, restarting
 * the window.  A CLI waiting on nothing, with only timer noise, is idle. */
static int busy(struct run *r, unsigned long long now)
{
	unsigned long long ticks = proctree_cpu_ticks(getpid()), used_ms;
	long hz = sysconf(_SC_CLK_TCK);

	used_ms = ticks > r->cpu_seen ? (ticks - r->cpu_seen) * 1000ULL / (unsigned long long)(hz > 0 ? hz : 100) : 0;
	r->cpu_seen = ticks;
	if (used_ms * 100ULL < (unsigned long long)r->cfg->idle_ms)
		return 0;
	r->last_active = now;
	return 1;
}

/* The earliest watchdog deadline, firing those already due. */
static unsigned long long next_deadline(struct run *r)
{
	const struct runner_config *c = r->cfg;
	unsigned long long now = (unsigned long long)clock_mono_ms(), due = NEVER, t;

	if (cancel_requested)
		terminate(r, RUN_CANCELLED);
	else if (abort_requested)
		terminate(r, RUN_STORAGE_FAILED);
	if (r->killing) {
		t = r->term_at + (unsigned long long)c->kill_grace_ms;
		if (now >= t && !r->group_killed) {
			kill(-r->pid, SIGKILL);
			r->group_killed = 1;
		}
		return r->group_killed ? now + 100 : t;
	}
	if (c->timeout_ms > 0 && (t = r->start + (unsigned long long)c->timeout_ms) <= now)
		terminate(r, RUN_TIMEOUT);
	else if (c->timeout_ms > 0 && t < due)
		due = t;
	if (!r->killing && c->idle_ms > 0) {
		if (r->last_active + (unsigned long long)c->idle_ms <= now && !busy(r, now))
			terminate(r, RUN_IDLE_TIMEOUT);
		else if ((t = r->last_active + (unsigned long long)c->idle_ms) < due)
			due = t;
	}
	if (!r->killing && r->result_seen && c->grace_ms > 0 &&
	    (t = r->last_output + (unsigned long long)c->grace_ms) <= now)
		terminate(r, RUN_HANG_AFTER_RESULT);
	else if (r->result_seen && c->grace_ms > 0 && t < due)
		due = t;
	return r->killing ? now : due;
}

/* Processes that left the CLI's group (the Bash tool starts commands in
 * sessions of their own) are re-parented to us when their parent dies,
 * because `ccr job` is a child subreaper: kill and reap every child we
 * have that is not the CLI, until none is left. */
static void kill_orphans(pid_t cli)
{
	int round;

	for (round = 0; round < 20; round++) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		int found = 0;

		if (!d)
			return;
		while ((de = readdir(d))) {
			char path[64], text[512], *p;
			long pid = strtol(de->d_name, &p, 10), ppid;
			ssize_t n;
			int fd;

			if (*p || pid <= 0 || pid == cli)
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
			if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
				continue;
			n = read(fd, text, sizeof(text) - 1);
			close(fd);
			if (n <= 0)
				continue;
			text[n] = 0;
			if (!(p = strrchr(text, ')')) || sscanf(p + 2, "%*c %ld", &ppid) != 1 || ppid != getpid())
				continue;
			kill((pid_t)pid, SIGKILL);
			found++;
		}
		closedir(d);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (!found)
			return;
		usleep(20000);
	}
}

/*
 * The orphan guard: a small child of the job, outside every group that
 * gets signals, that waits for one thing: the death of `ccr job` itself
 * (PR_SET_PDEATHSIG), as from kill -9 or the OOM killer, which leaves no
 * chance to clean up.  It then freezes the CLI and everything below it
 * (SIGSTOP, repeated until no new process appears, so nothing forks or
 * re-parents away meanwhile) and kills them all.  While the job lives, it
 * only sleeps; the job kills it once the CLI has been reaped.
 */
/* The guard holds no descriptor of the job's: none of the CLI's pipes
 * (its stdin would never reach EOF) and none of the job's own outputs. */
static void close_all_fds(void)
{
	int fd, null = open("/dev/null", O_RDWR | O_CLOEXEC);

	for (fd = 0; fd < 3 && null >= 0; fd++)
		dup2(null, fd);
	if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
		for (fd = 3; fd < 65536; fd++)
			close(fd);
}

/* Wait up to ms until pid is in one of the states (or gone). */
static void wait_state(pid_t pid, const char *states, int ms)
{
	char path[64], text[512], *p;
	int i, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; i < ms / 5; i++) {
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return;
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
		if (n <= 0)
			return;
		text[n] = 0;
		if ((p = strrchr(text, ')')) && p[1] && strchr(states, p[2]))
			return;
		usleep(5000);
	}
}

static void guard_main(pid_t job, pid_t cli)
{
	sigset_t all, want;
	int sig, round, seen = -1, n, stable;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGUSR1);
	close_all_fds();
	if (getppid() == job) {
		sigemptyset(&want);
		sigaddset(&want, SIGUSR1);
		while (sigwait(&want, &sig) != 0)
			;
	}
	/* The kernel is still tearing the job down when it sends the death
	 * signal; a process group it orphans while one of its members is
	 * stopped gets SIGHUP, which would kill the CLI before its tree is
	 * found.  So nothing is stopped until the job is a zombie. */
	wait_state(job, "ZX", 1000);
	usleep(20000);                       /* and let the kernel finish its bookkeeping */
	kill(cli, SIGSTOP);
	wait_state(cli, "TtZX", 200);
	/* Freeze the tree until three scans in a row find the same count. */
	for (round = 0, stable = 0; round < 200 && stable < 3; round++) {
		n = proctree_kill(cli, SIGSTOP);
		stable = n == seen ? stable + 1 : 0;
		seen = n;
		usleep(5000);
	}
	proctree_kill(cli, SIGKILL);
	kill(-cli, SIGKILL);
	kill(cli, SIGKILL);
	_exit(0);
}

static void start_guard(struct run *r)
{
	pid_t job = getpid(), g = fork();

	if (g == 0)
		guard_main(job, r->pid);
	r->guard = g > 0 ? g : 0;
}

static void stop_guard(struct run *r)
{
	if (r->guard <= 0)
		return;
	kill(r->guard, SIGKILL);
	waitpid(r->guard, NULL, 0);
	r->guard = 0;
}

static void reap(struct run *r)
{
	if (r->reaped || waitpid(r->pid, &r->status, WNOHANG) != r->pid)
		return;
	r->reaped = 1;
	stop_guard(r);
	/* Anything the CLI left behind in its group goes too. */
	kill(-r->pid, SIGKILL);
	if (r->cfg->kill_orphans)
		kill_orphans(r->pid);
}

static void loop(struct run *r)
{
	while (r->out >= 0 || r->err >= 0 || !r->reaped) {
		struct pollfd p[4];
		nfds_t n = 0;
		unsigned long long due = next_deadline(r), now = (unsigned long long)clock_mono_ms();
		int timeout = due == NEVER ? 1000 : (int)(due > now ? (due - now > 1000 ? 1000 : due - now) : 0);
		char drain[64];

		if (r->out >= 0)
			p[n++] = (struct pollfd){ r->out, POLLIN, 0 };
		if (r->err >= 0)
			p[n++] = (struct pollfd){ r->err, POLLIN, 0 };
		if (r->in >= 0)
			p[n++] = (struct pollfd){ r->in, POLLOUT, 0 };
		p[n++] = (struct pollfd){ r->wake, POLLIN, 0 };
		if (r->out < 0 && r->err < 0 && timeout > 50)
			timeout = 50;                /* only waiting for the exit */
		if (poll(p, n, timeout) < 0 && errno != EINTR)
			break;
		for (nfds_t i = 0; i < n; i++) {
			if (!p[i].revents)
				continue;
			if (p[i].fd == r->out)
				read_out(r);
			else if (p[i].fd == r->err)
				read_err(r);
			else if (p[i].fd == r->in)
				write_in(r);
			else if (read(r->wake, drain, sizeof(drain)) < 0 && errno != EAGAIN)
				break;
		}
		reap(r);
	}
	if (!r->reaped && waitpid(r->pid, &r->status, 0) == r->pid)
		r->reaped = 1;
	stop_guard(r);
}

static void classify(struct run *r)
{
	struct runner_result *res = r->res;
	int st = r->status;

	res->term_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
	res->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + res->term_signal;
	if (r->killing)
		res->reason = r->why;
	else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		res->reason = RUN_COMPLETED;
	else
		res->reason = RUN_FAILED;
	if (res->reason == RUN_TIMEOUT)
		res->exit_code = 124;
	res->duration_ms = (long)((unsigned long long)clock_mono_ms() - r->start);
}

static int box_child(void *arg)
{
	return sbx_child(&((struct run *)arg)->box);
}

static int box_started(void *arg, struct err *e)
{
	return sbx_started(&((struct run *)arg)->box, e);
}

/* The prompt's way in: a pipe, or the FIFO named fifo_name in cwd. */
static int stdin_pipe(const struct runner_config *c, int pin[2], struct err *e)
{
	char fifo[4096];

	if (!c->fifo_name)
		return pipe2(pin, O_CLOEXEC) ? err_set(e, "cannot create pipes for the Claude CLI: %s", strerror(errno)) : 0;
	snprintf(fifo, sizeof(fifo), "%s/%s", c->cwd, c->fifo_name);
	unlink(fifo);
	if (mkfifo(fifo, 0600) != 0)
		return err_set(e, "cannot create the prompt pipe %s: %s", fifo, strerror(errno));
	/* O_RDWR never blocks on a FIFO (Linux), so the child's read-side
	 * open finds a writer at once. */
	pin[1] = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (pin[1] < 0)
		return err_set(e, "cannot open the prompt pipe %s: %s", fifo, strerror(errno));
	return 0;
}

static void close_pair(int p[2])
{
	close_fd(&p[0]);
	close_fd(&p[1]);
}

static int spawn(struct run *r, const char *exe, struct err *e)
{
	const struct runner_config *c = r->cfg;
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 }, rc;
	struct child_spec s = { 0 };

	if (pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC)) {
		close_pair(pout);
		return err_set(e, "cannot create pipes for the Claude CLI: %s", strerror(errno));
	}
	if (stdin_pipe(c, pin, e) != 0 || (c->sandbox && sbx_prepare(&r->box, c->sandbox, exe, e) != 0)) {
		close_pair(pin), close_pair(pout), close_pair(perr);
		return -1;
	}
	s.exe = exe;
	s.argv = c->argv;
	s.envp = c->envp;
	s.cwd = c->cwd;
	s.stdin_path = c->fifo_name;
	s.fd_in = pin[0];
	s.fd_out = pout[1];
	s.fd_err = perr[1];
	s.in_child = box_child;
	s.after_fork = box_started;
	s.arg = r;
	rc = child_spawn(&s, &r->pid, e);
	close_fd(&pout[1]), close_fd(&perr[1]), close_fd(&pin[0]);
	if (rc != 0) {
		close_pair(pin), close_pair(pout), close_pair(perr);
		return err_prefix(e, "Failed to start Claude CLI: %s", exe);
	}
	start_guard(r);
	r->out = pout[0];
	r->err = perr[0];
	r->in = pin[1];
	fcntl(r->in, F_SETFL, fcntl(r->in, F_GETFL) | O_NONBLOCK);
	if (c->prompt_len == 0)
		close_fd(&r->in);
	return 0;
}

int runner_run(const struct runner_config *cfg, struct runner_result *res, struct err *e)
{
	struct run r;
	char exe[4096];
	int wake[2];

	memset(res, 0, sizeof(*res));
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.res = res;
	r.out = r.err = r.in = -1;
	r.box.chan[0] = r.box.chan[1] = -1;
	if (child_which(cfg->path, cfg->envp, exe, sizeof(exe)) != 0)
		return err_set(e, "Failed to start Claude CLI: %s not found or not executable (set CLAUDE_BIN)", cfg->path);
	if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0)
		return err_set(e, "cannot create a pipe: %s", strerror(errno));
	r.wake = wake[0];
	wake_fd = wake[1];
	if (cancel_requested) {
		/* Cancelled before the CLI even started. */
		res->reason = RUN_CANCELLED;
		res->exit_code = 130;
	} else if (spawn(&r, exe, e) != 0) {
		wake_fd = -1;
		sbx_finish(&r.box);
		close(wake[0]), close(wake[1]);
		return -1;
	} else {
		res->pid = r.pid;
		if (r.in < 0)           /* no prompt to write: stdin is handed over at once */
			prompt_done(&r);
		r.start = r.last_output = r.last_active = (unsigned long long)clock_mono_ms();
		loop(&r);
		classify(&r);
	}
	wake_fd = -1;
	sbx_finish(&r.box);
	close(wake[0]);
	close(wake[1]);
	close_fd(&r.out), close_fd(&r.err), close_fd(&r.in);
	if (cfg->fifo_name) {
		snprintf(exe, sizeof(exe), "%s/%s", cfg->cwd, cfg->fifo_name);
		unlink(exe);
	}
	buf_free(&r.line);
	return 0;
}

void runner_result_free(struct runner_result *res)
{
	buf_free(&res->stderr_text);
}
