/*
 * precmd.c: see precmd.h.
 *
 * Design.  One child per command, started by child_spawn (util/child.h):
 * its own process group, the sandbox's hooks around the fork, every
 * descriptor of ccr's closed and the signals reset in the child, and
 * errno carried back when chdir or execve fails, so "no /bin/sh" is a
 * start-up error rather than a mysterious exit status 127.
 *
 * The parent polls the single output pipe (stdout and stderr share it, so
 * the captured text is interleaved as a terminal would show it) until end
 * of file, the deadline, or the cap; then waits for the shell, still under
 * the deadline.  Killing targets the group: child_kill_group (SIGTERM, a
 * grace period, then SIGKILL, reaping our children in the group, since
 * when ccr runs as PID 1 orphaned grandchildren are ours).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "job/precmd.h"
#include "job/workspace.h"
#include "util/child.h"
#include "util/clock.h"
#include "util/redact.h"

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
		return redact_err(e);
	if (written)
		*written = 1;
	return 0;
}

/* ---- running ------------------------------------------------------------ */

void pc_leftovers_kill(struct pc_leftovers *l, long grace_ms)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		child_kill_group(l->pgid[i], grace_ms);
	l->n = 0;
}

void pc_result_free(struct pc_result *r)
{
	buf_free(&r->output);
}

long pc_timeout_ms(const char *s)
{
	char *end;
	double v;

	if (!s || !*s)
		return PC_DEFAULT_TIMEOUT_S * 1000L;
	v = strtod(s, &end);
	if (*end || !(v > 0) || v > 86400.0 * 7)
		return PC_DEFAULT_TIMEOUT_S * 1000L;
	return (long)(v * 1000);
}

static int box_child(void *arg)
{
	return sbx_child(arg);
}

static int box_started(void *arg, struct err *e)
{
	return sbx_started(arg, e);
}

/* Read the output until end of file, the deadline or the cap. */
static void read_output(int fd, int64_t deadline, size_t cap, struct pc_result *r)
{
	char chunk[16384];

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int64_t left = deadline - clock_mono_ms();
		size_t want = cap + 1 - r->output.len;
		ssize_t n;
		int pr;

		if (left <= 0) {
			r->timed_out = 1;
			return;
		}
		pr = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
		if (pr < 0 && errno != EINTR)
			return;
		if (pr <= 0)
			continue;
		n = read(fd, chunk, want < sizeof(chunk) ? want : sizeof(chunk));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return;
		if (r->output.len + (size_t)n > cap) {
			buf_add(&r->output, chunk, cap - r->output.len);
			r->overflow = 1;
			return;
		}
		if (buf_add(&r->output, chunk, (size_t)n) != 0) {
			r->overflow = 1;
			return;
		}
	}
}

int pc_run(const char *cwd, const char *command, char *const *envp, const struct pc_opts *o,
	   struct pc_result *r, struct err *e)
{
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	int out[2] = { -1, -1 }, status = 0, exited = 0;
	long timeout = o && o->timeout_ms > 0 ? o->timeout_ms : PC_DEFAULT_TIMEOUT_S * 1000L;
	long grace = o && o->kill_grace_ms > 0 ? o->kill_grace_ms : PC_KILL_GRACE_MS;
	size_t cap = o && o->output_cap ? o->output_cap : PC_OUTPUT_CAP;
	int64_t t0 = clock_mono_ms(), deadline = t0 + timeout;
	struct child_spec s = { 0 };
	struct sbx_spawn box;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	memset(&box, 0, sizeof(box));
	box.chan[0] = box.chan[1] = -1;
	r->status = -1;
	if (!command)
		return err_set(e, "no command");
	if (pipe2(out, O_CLOEXEC) != 0)
		return err_set(e, "cannot create pipes for a pre-execution command: %s", strerror(errno));
	if (o && o->sandbox && sbx_prepare(&box, o->sandbox, "/bin/sh", e) != 0) {
		close(out[0]), close(out[1]);
		sbx_finish(&box);
		return -1;
	}
	s.exe = "/bin/sh";
	s.argv = argv;
	s.envp = envp;
	s.cwd = cwd;
	s.fd_in = -1;
	s.fd_out = s.fd_err = out[1];
	s.in_child = box_child;
	s.after_fork = box_started;
	s.arg = &box;
	if (child_spawn(&s, &pid, e) != 0) {
		close(out[0]), close(out[1]);
		sbx_finish(&box);
		return err_prefix(e, "cannot run /bin/sh -c in %s", cwd), redact_err(e);
	}
	close(out[1]);
	r->pgid = pid;
	read_output(out[0], deadline, cap, r);
	/* Then wait for the shell itself, still under the deadline. */
	if (!r->timed_out && !r->overflow) {
		exited = child_wait(pid, deadline, &status) == 1;
		r->timed_out = !exited && clock_mono_ms() >= deadline;
	}
	if (r->timed_out || r->overflow || !exited) {
		child_kill_group(pid, grace);
		if (!exited && waitpid(pid, &status, WNOHANG) == pid)
			exited = 1;
	} else {
		r->left_running = !child_group_gone(pid);
	}
	close(out[0]);
	if (exited)
		r->status = child_exit_code(status);
	if (exited && WIFSIGNALED(status))
		r->term_signal = WTERMSIG(status);
	r->duration_ms = (long)(clock_mono_ms() - t0);
	sbx_finish(&box);
	return 0;
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
				 o && o->timeout_ms > 0 ? o->timeout_ms : PC_DEFAULT_TIMEOUT_S * 1000L);
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
