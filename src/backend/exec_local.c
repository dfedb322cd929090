/*
 * exec_local.c: the local execution backend: each task is a child
 * process `ccr job` of this binary.
 *
 * A child starts (child_spawn, util/child.h) in its own session, so it
 * leads a process group that cancel can signal as a whole and survives
 * the serve process that started it.  Its stdout and stderr go to
 * <run_dir>/<task>.log, removed when the job succeeds (kept with
 * CCR_KEEP_JOB_LOGS) and kept for a week when it fails.  At
 * most max_running children run at once; start() answers "no room" (1)
 * beyond that and keeps nothing: queued tasks wait in storage
 * (serve/queue.h).  One small waiter thread per child reaps it.
 *
 * The execution name is "local/<task>".  <run_dir>/<task>.claim is
 * created exclusively before a start, so two instances sharing the data
 * directory never start one task twice.  While a child runs,
 * <run_dir>/<task>.pid holds "<pid> <starttime>" (starttime from
 * /proc/<pid>/stat, so a reused pid is never signalled), which lets any
 * instance inspect or cancel it.  tidy() removes what jobs that ended
 * while no instance watched them (serve was restarted) left behind.
 * Finished executions are remembered, for status(), up to FINISHED_KEPT.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/exec.h"
#include "util/child.h"
#include "util/secenv.h"

extern char **environ;

#define FINISHED_KEPT 256
#define LOG_KEPT_S (7 * 86400)

struct lx_task {
	struct lx_task *next;
	char *id;
	pid_t pid;
	enum exec_state state;
	int exit_code;
};

struct exec_local {
	struct executor base;
	pthread_mutex_t mu;
	char *self;
	char *run_dir;
	int max_running, running, grace_ms;
	int keep_logs;                     /* CCR_KEEP_JOB_LOGS: a succeeded job's log stays too */
	struct lx_task *tasks;             /* running ones, then the newest finished */
	void (*on_end)(void *arg);         /* notify(): an execution ended */
	void *on_end_arg;
	int waiters;                       /* waiter threads still running */
	int closed;                        /* lx_free was called: the last waiter frees */
};

static const char *task_of(const char *name)
{
	return strncmp(name, "local/", 6) == 0 && name[6] ? name + 6 : NULL;
}

static int valid_id(const char *id)
{
	const char *c;

	if (!id || !*id || strlen(id) > 200)
		return 0;
	for (c = id; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '_'))
			return 0;
	return 1;
}

/* Field 22 of /proc/<pid>/stat (start time in ticks), or 0 if unknown. */
static unsigned long long start_time(pid_t pid)
{
	char path[64], text[1024], *p;
	unsigned long long v = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = 0;
	p = strrchr(text, ')');
	for (field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		v = strtoull(p + 1, NULL, 10);
	return v;
}

static void run_path(struct exec_local *x, const char *id, const char *ext, char *out, size_t n)
{
	snprintf(out, n, "%s/%s.%s", x->run_dir, id, ext);
}

/* The pid file of a task: 0 and *pid when present and still the same
 * process, -1 otherwise. */
static int read_pid(struct exec_local *x, const char *id, pid_t *pid)
{
	char path[4096];
	unsigned long long st = 0;
	int p = 0;
	FILE *f;

	run_path(x, id, "pid", path, sizeof(path));
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fscanf(f, "%d %llu", &p, &st) != 2)
		p = 0;
	fclose(f);
	if (p <= 0 || (st && start_time(p) != st))
		return -1;
	*pid = p;
	return 0;
}

static void write_pid(struct exec_local *x, const char *id, pid_t pid)
{
	char path[4096], tmp[4200];
	FILE *f;

	run_path(x, id, "pid", path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	fprintf(f, "%d %llu\n", (int)pid, start_time(pid));
	if (fclose(f) == 0)
		rename(tmp, path);
}

static struct lx_task *find(struct exec_local *x, const char *id)
{
	struct lx_task *t;

	for (t = x->tasks; t; t = t->next)
		if (strcmp(t->id, id) == 0)
			return t;
	return NULL;
}

static void free_env(char **env)
{
	char **p;

	for (p = env; p && *p; p++)
		free(*p);
	free(env);
}

/* environ minus TASK_ID/ENCRYPTED_PAYLOAD_PATH, plus those and extra. */
static char **build_env(const char *id, const char *payload, const char *const *extra)
{
	size_t n = 0, k = 0, i;
	char **env;

	while (environ[n])
		n++;
	for (i = 0; extra && extra[i]; i++)
		n++;
	env = calloc(n + 4, sizeof(*env));
	if (!env)
		return NULL;
	for (i = 0; environ[i]; i++)
		if (strncmp(environ[i], "TASK_ID=", 8) != 0 && strncmp(environ[i], "ENCRYPTED_PAYLOAD_PATH=", 23) != 0 &&
		    !(env[k++] = strdup(environ[i])))
			goto oom;
	if (asprintf(&env[k++], "TASK_ID=%s", id) < 0 || asprintf(&env[k++], "ENCRYPTED_PAYLOAD_PATH=%s", payload) < 0)
		goto oom;
	/* serve took its secrets out of its environment (secenv.h); the job
	 * needs the webhook's, and takes it out of its own at once. */
	if (secenv_get("CLOUDRUN_CALLBACK_SECRET") &&
	    asprintf(&env[k++], "CLOUDRUN_CALLBACK_SECRET=%s", secenv_get("CLOUDRUN_CALLBACK_SECRET")) < 0)
		goto oom;
	for (i = 0; extra && extra[i]; i++)
		if (!(env[k++] = strdup(extra[i])))
			goto oom;
	return env;
oom:
	env[k > 0 ? k - 1 : 0] = NULL;
	free_env(env);
	return NULL;
}

struct wait_arg {
	struct exec_local *x;
	pid_t pid;
};

static void *waiter(void *arg);
static void lx_release(struct exec_local *x);

/* A detached thread that reaps pid (mutex held: it counts as a waiter). */
static int watch_child(struct exec_local *x, pid_t pid, struct err *e)
{
	struct wait_arg *wa = malloc(sizeof(*wa));
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	if (!wa)
		return err_set(e, "out of memory watching a local execution");
	wa->x = x;
	wa->pid = pid;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, waiter, wa);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(wa);
		return err_set(e, "cannot start a thread to watch the local execution");
	}
	x->waiters++;
	return 0;
}

/* Fork and exec one task with env (mutex held). 0 or -1 with e set. */
static int spawn(struct exec_local *x, struct lx_task *t, char **env, struct err *e)
{
	char log[4096], *argv[] = { x->self, "job", NULL };
	struct child_spec s = { 0 };
	pid_t pid;
	int fd;

	run_path(x, t->id, "log", log, sizeof(log));
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, "cannot open the job log %s: %s", log, strerror(errno));
	s.exe = x->self;
	s.argv = argv;
	s.envp = env;
	s.fd_in = -1;
	s.fd_out = s.fd_err = fd;
	s.new_session = 1;
	if (child_spawn(&s, &pid, e) != 0) {
		close(fd);
		return err_prefix(e, "cannot start `ccr job`");
	}
	close(fd);
	t->pid = pid;
	t->state = EXEC_RUNNING;
	x->running++;
	write_pid(x, t->id, pid);
	return watch_child(x, pid, e);
}

/* A finished job's log goes once the job succeeded; the log of a job
 * that failed stays for the operator, until tidy() finds it a week old. */
static void drop_log(struct exec_local *x, const char *id)
{
	char path[4096];

	run_path(x, id, "log", path, sizeof(path));
	unlink(path);
}

/* Forget the oldest finished tasks beyond FINISHED_KEPT (mutex held). */
static void prune(struct exec_local *x)
{
	struct lx_task **pp = &x->tasks, *t;
	int kept = 0;

	while ((t = *pp)) {
		if (t->state != EXEC_RUNNING && ++kept > FINISHED_KEPT) {
			*pp = t->next;
			free(t->id);
			free(t);
			continue;
		}
		pp = &t->next;
	}
}

/* Reap one child of ours and record how it ended.  It waits for its own
 * pid only: other children of serve are not its own. */
static void *waiter(void *arg)
{
	struct exec_local *x = ((struct wait_arg *)arg)->x;
	pid_t pid = ((struct wait_arg *)arg)->pid;
	struct lx_task *t;
	void (*on_end)(void *);
	void *on_end_arg;
	char path[4096];
	int status = 0, last, reaped = 1;

	free(arg);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			reaped = 0;     /* cannot happen for our own child; leave its state */
			break;
		}
	pthread_mutex_lock(&x->mu);
	for (t = x->tasks; reaped && t; t = t->next) {
		if (t->pid != pid || t->state != EXEC_RUNNING)
			continue;
		if (WIFEXITED(status)) {
			t->exit_code = WEXITSTATUS(status);
			t->state = t->exit_code == 0 ? EXEC_SUCCEEDED : t->exit_code == 130 ? EXEC_CANCELLED : EXEC_FAILED;
		} else {
			t->exit_code = 128 + WTERMSIG(status);
			t->state = EXEC_FAILED;
		}
		run_path(x, t->id, "pid", path, sizeof(path));
		unlink(path);
		if (t->state == EXEC_SUCCEEDED && !x->keep_logs)
			drop_log(x, t->id);
		x->running--;
	}
	prune(x);
	on_end = x->closed ? NULL : x->on_end;
	on_end_arg = x->on_end_arg;
	last = --x->waiters == 0 && x->closed;
	pthread_mutex_unlock(&x->mu);
	if (on_end)
		on_end(on_end_arg);
	if (last)
		lx_release(x);
	return NULL;
}

/* The create-only claim of a start: 0, or -1 with e->http 409 when some
 * instance already started the task. */
static int adopted_running(struct exec_local *x);

static int claim(struct exec_local *x, const char *id, struct err *e)
{
	char path[4096];
	int fd;

	run_path(x, id, "claim", path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? err_http(e, 409, "local execution local/%s was already started", id)
				       : err_set(e, "cannot claim %s: %s", path, strerror(errno));
	close(fd);
	return 0;
}

static int lx_start(struct executor *ex, const char *id, const char *payload, const char *const *extra,
		    struct buf *name_out, struct err *e)
{
	struct exec_local *x = (struct exec_local *)ex;
	struct lx_task *t = NULL;
	char **env = NULL;
	int rc = 1;

	if (!valid_id(id))
		return err_set(e, "invalid task id for a local execution");
	if (buf_printf(name_out, "local/%s", id) != 0)
		return err_set(e, "out of memory");
	pthread_mutex_lock(&x->mu);
	if (x->running + adopted_running(x) >= x->max_running)
		goto out;                      /* no room: the caller queues it */
	rc = -1;
	if (claim(x, id, e) != 0)
		goto out;
	if (!(t = calloc(1, sizeof(*t))) || !(t->id = strdup(id)) || !(env = build_env(id, payload, extra))) {
		err_set(e, "out of memory starting a local execution");
		goto out;
	}
	t->state = EXEC_PENDING;
	t->exit_code = -1;
	t->next = x->tasks;
	x->tasks = t;
	if (spawn(x, t, env, e) != 0)
		t->state = EXEC_FAILED;
	else
		rc = 0;
	t = NULL;
out:
	pthread_mutex_unlock(&x->mu);
	free_env(env);
	if (t)
		free(t->id);
	free(t);
	return rc;
}

/* Jobs still running that an earlier serve started (their <id>.pid is
 * live and they are not our children): they hold slots too, so a restart
 * never runs more than max_running tasks at once.  Called with x->mu. */
static int adopted_running(struct exec_local *x)
{
	struct dirent *de;
	DIR *d = opendir(x->run_dir);
	char id[256];
	pid_t pid;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		const char *dot = strrchr(de->d_name, '.');
		if (!dot || strcmp(dot, ".pid") != 0 || (size_t)(dot - de->d_name) >= sizeof(id))
			continue;
		memcpy(id, de->d_name, (size_t)(dot - de->d_name));
		id[dot - de->d_name] = 0;
		if (valid_id(id) && !find(x, id) && read_pid(x, id, &pid) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int lx_free_slots(struct executor *ex)
{
	struct exec_local *x = (struct exec_local *)ex;
	int n;

	pthread_mutex_lock(&x->mu);
	n = x->max_running - x->running - adopted_running(x);
	pthread_mutex_unlock(&x->mu);
	return n;
}

static int lx_status(struct executor *ex, const char *name, struct exec_status *out, struct err *e)
{
	struct exec_local *x = (struct exec_local *)ex;
	const char *id = task_of(name);
	struct lx_task *t;
	pid_t pid;

	if (!id || !valid_id(id))
		return err_http(e, 400, "not a local execution name: %s", name);
	out->exit_code = -1;
	pthread_mutex_lock(&x->mu);
	t = find(x, id);
	if (t) {
		out->state = t->state;
		out->exit_code = t->exit_code;
	}
	pthread_mutex_unlock(&x->mu);
	if (!t)
		out->state = read_pid(x, id, &pid) == 0 ? EXEC_RUNNING : EXEC_UNKNOWN;
	return 0;
}

struct killer {
	pid_t pid;
	unsigned long long start;
	int grace_ms;
};

static void *kill_later(void *arg)
{
	struct killer k = *(struct killer *)arg;
	struct timespec ts = { k.grace_ms / 1000, (long)(k.grace_ms % 1000) * 1000000L };

	free(arg);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	if (start_time(k.pid) == k.start && k.start != 0)
		kill(-k.pid, SIGKILL);
	return NULL;
}

/* SIGTERM the group now, SIGKILL it after the grace period. */
static int terminate(struct exec_local *x, pid_t pid, struct err *e)
{
	struct killer *k = malloc(sizeof(*k));
	pthread_attr_t attr;
	pthread_t th;

	if (kill(-pid, SIGTERM) != 0 && errno != ESRCH) {
		free(k);
		return err_set(e, "cannot signal local execution %d: %s", (int)pid, strerror(errno));
	}
	if (!k)
		return 0;
	k->pid = pid;
	k->start = start_time(pid);
	k->grace_ms = x->grace_ms;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, kill_later, k) != 0)
		free(k);
	pthread_attr_destroy(&attr);
	return 0;
}

static int lx_cancel(struct executor *ex, const char *name, struct err *e)
{
	struct exec_local *x = (struct exec_local *)ex;
	const char *id = task_of(name);
	pid_t pid;

	if (!id || !valid_id(id))
		return err_http(e, 400, "not a local execution name: %s", name);
	if (read_pid(x, id, &pid) == 0)
		return terminate(x, pid, e);
	return err_http(e, 409, "local execution %s is not running", name);
}

/* A run_dir entry "<id>.<ext>" of a task with no live job, older than
 * min_age seconds: its leftovers go (a log is forwarded first). */
static void tidy_entry(struct exec_local *x, const char *name, time_t min_age)
{
	char id[256], path[4096];
	const char *dot = strrchr(name, '.');
	struct stat st;
	pid_t pid;

	if (!dot || (size_t)(dot - name) >= sizeof(id))
		return;
	memcpy(id, name, (size_t)(dot - name));
	id[dot - name] = 0;
	if (!valid_id(id) || read_pid(x, id, &pid) == 0)
		return;
	snprintf(path, sizeof(path), "%s/%s", x->run_dir, name);
	if (stat(path, &st) != 0)
		return;
	if (strcmp(dot, ".log") == 0 ? time(NULL) - st.st_mtime >= LOG_KEPT_S
				     : time(NULL) - st.st_mtime >= min_age && (strcmp(dot, ".pid") == 0 ||
						strcmp(dot, ".claim") == 0 || strcmp(dot, ".tmp") == 0))
		unlink(path);
}

static void lx_notify(struct executor *ex, void (*fn)(void *arg), void *arg)
{
	struct exec_local *x = (struct exec_local *)ex;

	pthread_mutex_lock(&x->mu);
	x->on_end = fn;
	x->on_end_arg = arg;
	pthread_mutex_unlock(&x->mu);
}

static void lx_tidy(struct executor *ex)
{
	struct exec_local *x = (struct exec_local *)ex;
	struct dirent *de;
	DIR *d = opendir(x->run_dir);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			tidy_entry(x, de->d_name, 600);
	closedir(d);
}

/* Free x: no waiter thread uses it any more. */
static void lx_release(struct exec_local *x)
{
	struct lx_task *t, *next;

	for (t = x->tasks; t; t = next) {
		next = t->next;
		free(t->id);
		free(t);
	}
	pthread_mutex_destroy(&x->mu);
	free(x->self);
	free(x->run_dir);
	free(x);
}

/* Waiter threads of children still running own x from here on (they are
 * detached, and a child may outlive serve's shutdown): the last one frees
 * it.  Freeing it here made a child that exited during shutdown wake its
 * waiter on freed memory (ASan: heap-use-after-free in a waiter thread). */
static void lx_free(struct executor *ex)
{
	struct exec_local *x = (struct exec_local *)ex;
	int busy;

	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	x->closed = 1;
	busy = x->waiters > 0;
	pthread_mutex_unlock(&x->mu);
	if (!busy)
		lx_release(x);
}

static const struct exec_ops local_ops = {
	.name = "local",
	.start = lx_start,
	.status = lx_status,
	.cancel = lx_cancel,
	.free = lx_free,
	.free_slots = lx_free_slots,
	.tidy = lx_tidy,
	.notify = lx_notify,
};

struct executor *exec_local_new(const char *self_exe, const char *run_dir, int max_running, int grace_ms,
				int keep_logs, struct err *e)
{
	struct exec_local *x;

	if (mkdir(run_dir, 0700) != 0 && errno != EEXIST) {
		err_set(e, "cannot create %s: %s", run_dir, strerror(errno));
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	if (!x || !(x->self = strdup(self_exe)) || !(x->run_dir = strdup(run_dir))) {
		if (x)
			free(x->self);
		free(x);
		err_set(e, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&x->mu, NULL);
	x->base.ops = &local_ops;
	x->max_running = max_running > 0 ? max_running : 1;
	x->grace_ms = grace_ms > 0 ? grace_ms : 10000;
	x->keep_logs = keep_logs;
	return &x->base;
}
