/*
 * precmd.c: see precmd.h.
 *
 * Design.  One fork/execve per command, nothing else in the child but
 * async-signal-safe calls (ccr has threads: the log sink, the proxy): the
 * argv, the environment and the cwd are all prepared before fork.  The
 * child makes itself a process-group leader (the parent does the same
 * setpgid, so there is no window where a timeout could miss it), resets
 * the signal mask and ignored signals, closes every descriptor above
 * stderr (close_range, or a loop where the kernel lacks it) so no socket or
 * file of ccr's leaks into the command, and execs /bin/sh.  A close-on-exec
 * pipe carries errno back when chdir or execve fails, so "no /bin/sh" is a
 * start-up error rather than a mysterious exit status 127.
 *
 * The parent polls the single output pipe (stdout and stderr share it, so
 * the captured text is interleaved as a terminal would show it) until end
 * of file, the deadline, or the cap; then waits for the shell, still under
 * the deadline.  Killing targets the group (-pgid): SIGTERM, a grace
 * period checked with kill(-pgid, 0), then SIGKILL.  While waiting, any of
 * our children in the group is reaped (when ccr runs as PID 1, orphaned
 * grandchildren are ours), so zombies do not keep the group alive.
 *
 * Time is CLOCK_MONOTONIC throughout.  Secrets: the .env text is wiped
 * when freed (the environment is the caller's: agentenv.c builds and
 * wipes it); error messages are built from
 * the fully redacted output before the tail is cut, so a secret cannot
 * survive redaction by being cut in half.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "job/precmd.h"
#include "job/workspace.h"
#include "util/redact.h"
#include "settings/settings.h"

static int fail(struct err *e)
{
	struct buf b = BUF_INIT;

	if (e && redact_str(&b, e->msg) == 0 && b.p)
		snprintf(e->msg, sizeof(e->msg), "%s", b.p);
	buf_free(&b);
	return -1;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int pc_env_name_valid(const char *name)
{
	const char *p;

	if (!name || !((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z') || *name == '_'))
		return 0;
	for (p = name + 1; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return 0;
	return 1;
}

/* The members of secrets as JavaScript's Object.entries sees them: first
 * position, last value.  Calls fn for each; stops at the first non-zero. */
static int each_secret(const cJSON *secrets, int (*fn)(void *arg, const char *k, const char *v), void *arg)
{
	const cJSON *it, *jt;

	cJSON_ArrayForEach(it, secrets) {
		const cJSON *last = it;
		int dup = 0;

		if (!it->string)
			continue;
		for (jt = secrets->child; jt != it; jt = jt->next)
			if (jt->string && strcmp(jt->string, it->string) == 0)
				dup = 1;
		if (dup)
			continue;
		for (jt = it->next; jt; jt = jt->next)
			if (jt->string && strcmp(jt->string, it->string) == 0)
				last = jt;
		if (fn(arg, it->string, cJSON_IsString(last) && last->valuestring ? last->valuestring : "") != 0)
			return -1;
	}
	return 0;
}

struct envfile {
	struct buf text;
	struct err *e;
};

static int envfile_line(void *arg, const char *k, const char *v)
{
	struct envfile *f = arg;

	if (!pc_env_name_valid(k))
		return err_set(f->e, "environmentSecrets: '%.100s' is not a valid environment variable name "
			       "(letters, digits and '_', not starting with a digit)", k);
	if ((f->text.len && buf_addc(&f->text, '\n') != 0) || buf_printf(&f->text, "%s=%s", k, v) != 0)
		return err_set(f->e, "out of memory writing .env");
	return 0;
}

int pc_write_env(const char *root, const cJSON *secrets, int *written, struct err *e)
{
	struct envfile f = { BUF_INIT, e };
	int rc;

	if (written)
		*written = 0;
	if (!secrets || !secrets->child)
		return 0;
	if (!cJSON_IsObject(secrets))
		return err_set(e, "environmentSecrets must be an object of strings");
	rc = each_secret(secrets, envfile_line, &f);
	if (rc == 0)
		rc = ws_write_file(root, ".env", f.text.p ? f.text.p : "", f.text.len, 0600, e);
	if (f.text.p)
		cr_wipe(f.text.p, f.text.cap);
	buf_free(&f.text);
	if (rc != 0)
		return fail(e);
	if (written)
		*written = 1;
	return 0;
}

/* ---- running ------------------------------------------------------------ */

/* Reap whichever of our children belong to the group; 1 once the group
 * has no process left at all. */
static int group_gone(int pgid)
{
	int st;

	while (waitpid(-pgid, &st, WNOHANG) > 0)
		;
	return kill(-pgid, 0) != 0 && errno == ESRCH;
}

int pc_kill_group(int pgid, long grace_ms)
{
	long t;

	if (pgid <= 1)
		return -1;
	if (group_gone(pgid))
		return 0;
	kill(-pgid, SIGTERM);
	for (t = now_ms() + grace_ms; now_ms() < t; sleep_ms(10))
		if (group_gone(pgid))
			return 0;
	kill(-pgid, SIGKILL);
	for (t = now_ms() + 1000; now_ms() < t; sleep_ms(10))
		if (group_gone(pgid))
			return 0;
	return group_gone(pgid) ? 0 : -1;
}

void pc_leftovers_kill(struct pc_leftovers *l, long grace_ms)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		pc_kill_group(l->pgid[i], grace_ms);
	l->n = 0;
}

void pc_result_free(struct pc_result *r)
{
	buf_free(&r->output);
}

static long default_timeout_ms(void)
{
	const char *s = settings_str(SET_CCR_PRECMD_TIMEOUT_S);
	char *end;
	double v;

	if (!s || !*s)
		return PC_DEFAULT_TIMEOUT_S * 1000L;
	v = strtod(s, &end);
	if (*end || !(v > 0) || v > 86400.0 * 7)
		return PC_DEFAULT_TIMEOUT_S * 1000L;
	return (long)(v * 1000);
}

/* In the child, after fork: only async-signal-safe calls. */
static void child(struct sbx_spawn *box, const char *cwd, char *const *argv, char *const *envp, int in, int out, int errfd,
		  int maxfd)
{
	struct sigaction sa;
	sigset_t none;
	int s, err, fd;

	setpgid(0, 0);
	if (sbx_child(box) != 0)
		goto bad;
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		goto bad;
	/* Nothing else of ccr's (sockets, log files, pipes) reaches the command. */
	if (errfd != 3) {
		if (dup3(errfd, 3, O_CLOEXEC) < 0)
			goto bad;
		errfd = 3;
	}
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 4U, ~0U, 0U) != 0)
#endif
		for (fd = 4; fd < maxfd; fd++)
			close(fd);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (chdir(cwd) != 0)
		goto bad;
	execve("/bin/sh", argv, envp);
bad:
	err = errno;
	(void)!write(errfd, &err, sizeof(err));
	_exit(127);
}

int pc_run(const char *cwd, const char *command, char *const *envp, const struct pc_opts *o,
	   struct pc_result *r, struct err *e)
{
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, ex[2] = { -1, -1 };
	long timeout = o && o->timeout_ms > 0 ? o->timeout_ms : default_timeout_ms();
	long grace = o && o->kill_grace_ms > 0 ? o->kill_grace_ms : PC_KILL_GRACE_MS;
	size_t cap = o && o->output_cap ? o->output_cap : PC_OUTPUT_CAP;
	long t0 = now_ms(), deadline = t0 + timeout;
	int child_err = 0, status = 0, exited = 0, open_out = 1, maxfd;
	ssize_t n;
	pid_t pid;
	struct sbx_spawn box;

	memset(r, 0, sizeof(*r));
	memset(&box, 0, sizeof(box));
	box.chan[0] = box.chan[1] = -1;
	r->status = -1;
	if (!command)
		return err_set(e, "no command");
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(ex, O_CLOEXEC) != 0) {
		err_set(e, "cannot create pipes for a pre-execution command: %s", strerror(errno));
		goto close_all;
	}
	{
		long m = sysconf(_SC_OPEN_MAX);
		maxfd = m > 0 && m < 65536 ? (int)m : 65536;
	}
	if (o && o->sandbox && sbx_prepare(&box, o->sandbox, "/bin/sh", e) != 0)
		goto close_all;
	pid = fork();
	if (pid < 0) {
		err_set(e, "cannot start a pre-execution command: %s", strerror(errno));
		goto close_all;
	}
	if (pid == 0)
		child(&box, cwd, argv, envp, in[0], out[1], ex[1], maxfd);
	setpgid(pid, pid);      /* also done by the child; whichever runs first */
	r->pgid = pid;
	close(in[0]), close(in[1]), close(out[1]), close(ex[1]);
	in[0] = in[1] = out[1] = ex[1] = -1;
	if (sbx_started(&box, e) != 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		close(ex[0]), close(out[0]);
		sbx_finish(&box);
		return err_prefix(e, "cannot run /bin/sh -c in %s", cwd), fail(e);
	}
	while ((n = read(ex[0], &child_err, sizeof(child_err))) < 0 && errno == EINTR)
		;
	close(ex[0]);
	ex[0] = -1;
	if (n == (ssize_t)sizeof(child_err)) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		close(out[0]);
		sbx_finish(&box);
		return err_set(e, "cannot run /bin/sh -c in %s: %s", cwd, strerror(child_err)), fail(e);
	}

	/* Read until end of file, the deadline or the cap. */
	while (open_out) {
		struct pollfd pfd = { out[0], POLLIN, 0 };
		long left = deadline - now_ms();
		int pr;

		if (left <= 0) {
			r->timed_out = 1;
			break;
		}
		pr = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (pr < 0 && errno != EINTR)
			break;
		if (pr <= 0)
			continue;
		{
			char chunk[16384];
			size_t want = cap + 1 - r->output.len;

			n = read(out[0], chunk, want < sizeof(chunk) ? want : sizeof(chunk));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				open_out = 0;
				break;
			}
			if (r->output.len + (size_t)n > cap) {
				buf_add(&r->output, chunk, cap - r->output.len);
				r->overflow = 1;
				break;
			}
			if (buf_add(&r->output, chunk, (size_t)n) != 0) {
				r->overflow = 1;
				break;
			}
		}
	}
	/* Then wait for the shell itself, still under the deadline. */
	while (!r->timed_out && !r->overflow) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid) {
			exited = 1;
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
		if (now_ms() >= deadline) {
			r->timed_out = 1;
			break;
		}
		sleep_ms(10);
	}
	if (r->timed_out || r->overflow || !exited) {
		pc_kill_group(pid, grace);
		if (!exited && waitpid(pid, &status, WNOHANG) == pid)
			exited = 1;
	} else {
		r->left_running = !group_gone(pid);
	}
	close(out[0]);
	if (exited)
		r->status = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
	if (exited && WIFSIGNALED(status))
		r->term_signal = WTERMSIG(status);
	r->duration_ms = now_ms() - t0;
	sbx_finish(&box);
	return 0;

close_all:
	sbx_finish(&box);
	{
		int *fds[] = { in, out, ex }, i, j;
		for (i = 0; i < 3; i++)
			for (j = 0; j < 2; j++)
				if (fds[i][j] >= 0)
					close(fds[i][j]);
	}
	return -1;
}

/* The failure message: command, reason, then as much of the (redacted)
 * output's end as fits. */
static int run_failed(struct err *e, const char *command, const char *reason, const struct buf *output)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	const char *tail = "";
	size_t head, room, tl;

	redact_str(&cmd, command);
	if (output->len) {
		struct buf raw = BUF_INIT;
		if (buf_add(&raw, output->p, output->len) == 0 && redact_apply(&raw) == 0)
			buf_add(&out, raw.p, raw.len);
		if (raw.p)
			cr_wipe(raw.p, raw.cap);
		buf_free(&raw);
	}
	while (out.len && (out.p[out.len - 1] == '\n' || out.p[out.len - 1] == ' ' || out.p[out.len - 1] == '\r'))
		out.p[--out.len] = 0;
	snprintf(e->msg, sizeof(e->msg), "Pre-execution command failed: %.200s%s\n%s", cmd.p ? cmd.p : "",
		 cmd.len > 200 ? "..." : "", reason);
	e->http = 0;
	head = strlen(e->msg);
	room = sizeof(e->msg) - 1 - head;
	if (out.len && room > 8) {
		room -= 1;
		tl = out.len < room ? out.len : room;
		tail = out.p + out.len - tl;
		/* Start on a character boundary. */
		while (tl > 0 && ((unsigned char)*tail & 0xc0) == 0x80)
			tail++, tl--;
		snprintf(e->msg + head, sizeof(e->msg) - head, "\n%.*s", (int)tl, tail);
	}
	if (out.p)
		cr_wipe(out.p, out.cap);
	buf_free(&out);
	buf_free(&cmd);
	return -1;
}

static void logf_(const struct pc_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const struct pc_opts *o, const char *fmt, ...)
{
	struct buf line = BUF_INIT, red = BUF_INIT;
	va_list ap;

	if (!o || !o->log)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(&line, fmt, ap) == 0 && redact_str(&red, line.p) == 0 && red.p)
		o->log(o->arg, red.p);
	va_end(ap);
	buf_free(&line);
	buf_free(&red);
}

int pc_run_all(const char *cwd, const cJSON *commands, char *const *envp, const struct pc_opts *o,
	       struct pc_leftovers *left, struct err *e)
{
	static char *const empty[] = { NULL };
	const cJSON *it;
	size_t n = 0, i = 0;
	int rc = 0;

	if (!commands || cJSON_IsNull(commands))
		return 0;
	if (!cJSON_IsArray(commands))
		return err_set(e, "preExecutionCommands must be an array of strings");
	cJSON_ArrayForEach(it, commands) {
		if (!cJSON_IsString(it) || !it->valuestring)
			return err_set(e, "preExecutionCommands must be an array of strings");
		n++;
	}
	if (n == 0)
		return 0;
	if (!envp)
		envp = empty;
	cJSON_ArrayForEach(it, commands) {
		struct pc_result r;
		char reason[128];

		i++;
		logf_(o, "[%zu/%zu] Running: %s", i, n, it->valuestring);
		if (pc_run(cwd, it->valuestring, envp, o, &r, e) != 0) {
			char why[sizeof(e->msg)];
			snprintf(why, sizeof(why), "%s", e->msg);
			run_failed(e, it->valuestring, why, &r.output);
			pc_result_free(&r);
			rc = -1;
			break;
		}
		if (r.timed_out)
			snprintf(reason, sizeof(reason), "timed out after %ld ms (the whole process group was killed)",
				 o && o->timeout_ms > 0 ? o->timeout_ms : default_timeout_ms());
		else if (r.overflow)
			snprintf(reason, sizeof(reason), "output exceeded %zu bytes (maxBuffer); the command was killed",
				 o && o->output_cap ? o->output_cap : PC_OUTPUT_CAP);
		else if (r.term_signal)
			snprintf(reason, sizeof(reason), "killed by signal %d", r.term_signal);
		else if (r.status < 0)
			snprintf(reason, sizeof(reason), "its exit status could not be read");
		else if (r.status != 0)
			snprintf(reason, sizeof(reason), "exit status %d", r.status);
		else
			reason[0] = 0;
		if (reason[0]) {
			run_failed(e, it->valuestring, reason, &r.output);
			pc_result_free(&r);
			rc = -1;
			break;
		}
		if (r.left_running && left && left->n < PC_MAX_LEFTOVERS)
			left->pgid[left->n++] = r.pgid;
		logf_(o, "\xe2\x9c\x93 Completed in %ldms", r.duration_ms);
		if (r.output.p)
			cr_wipe(r.output.p, r.output.cap);
		pc_result_free(&r);
	}
	return rc;
}
