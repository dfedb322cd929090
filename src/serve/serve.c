/*
 * serve.c: `ccr serve`, the HTTP API.
 *
 * Reads its settings from the environment, starts the HTTP server
 * (http/server.h) with the route table of routes.c as its handler, logs
 * JSON lines to stdout (serve/log.h), and waits for SIGTERM or SIGINT.
 * Either signal starts a graceful drain: accepting stops, idle
 * connections close, streaming handlers are told to send a last event
 * and end, and in-flight requests may finish for up to
 * CCR_DRAIN_TIMEOUT_MS (default 8 s, so that with the 1 s of forced
 * closing the process is gone within Cloud Run's 10 s); then it exits 0.
 *
 * The signal handler only writes a byte into a self-pipe; the main thread
 * sleeps reading that pipe and does the actual work outside signal
 * context.  Server threads keep the default signal mask so that children
 * they spawn inherit a normal one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/secenv.h"
#include "backend/config.h"
#include "ccr.h"
#include "http/server.h"
#include "net/netinit.h"
#include "serve/log.h"
#include "serve/reconcile.h"
#include "serve/serve.h"
#include "serve/topic.h"
#include "serve/sysprompt.h"
#include "util/buf.h"
#include "util/jsjson.h"
#include "settings/settings.h"

/* Static: the SIGTERM handler writes to it, and has no context. */
static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;
	ssize_t w = write(sig_pipe[1], &c, 1);

	(void)w;     /* the pipe is non-blocking; a full pipe already holds a signal */
	errno = saved;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ccr serve [--help]\n"
		   "\n"
		   "Run the HTTP API (seed-compatible endpoints).  Settings come from the environment\n"
		   "(read once at start-up; a malformed number stops serve with exit 2):\n");
	settings_help(f, SC_SERVE);
	fprintf(f,
		"\n"
		"Requests: an Idempotency-Key header on POST /run and /run-async answers a repeat\n"
		"(same key and body within 24 h) with the original task; body fields maxBudgetUsd\n"
		"(a spend cap), resumeTaskId (continue that task's conversation) and\n"
		"idleAfterResultSeconds (talk to the running task: POST /tasks/:id/messages,\n"
		"/interrupt, /end): README.md, \"Sessions, budgets and retries\".\n"
		"Local tasks inherit serve's environment: `ccr job --help` lists their settings,\n"
		"`ccr help settings` every one.\n"
		"Logs are JSON lines on stdout.  SIGTERM or SIGINT drains and exits 0.\n");
}

static void access_hook(const struct hs_access *a, void *app)
{
	slog_access(a, ((struct serve_ctx *)app)->log_project);
}

static void drain_hook(void *app)
{
	struct serve_ctx *sc = app;

	slog(SLOG_INFO, "draining: %u open connection(s)", hs_connections(sc->srv));
}

static int install_signals(void)
{
	struct sigaction sa;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGINT, &sa, NULL) != 0)
		return -1;
	return 0;
}

/* Each connection holds a descriptor: lift the soft limit to the hard
 * one so that the connection cap, not EMFILE, is what refuses clients. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		slog(SLOG_WARNING, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		slog(SLOG_WARNING, "cannot raise the open-file limit: %s", strerror(errno));
}

/* Block until SIGTERM or SIGINT; returns the signal. */
static int wait_signal(void)
{
	for (;;) {
		struct pollfd pf = { sig_pipe[0], POLLIN, 0 };
		char c;
		ssize_t n;

		if (poll(&pf, 1, -1) < 0 && errno != EINTR)
			return 0;
		n = read(sig_pipe[0], &c, 1);
		if (n == 1)
			return (unsigned char)c;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return 0;
	}
}

/* The storage, sealing and execution backends (local or cloud mode). */
static int open_backends(struct backends *be, struct sysprompt *prompt, const struct serve_settings *set,
			 const char *argv0)
{
	char self[4096], err[512];
	struct err e = ERR_INIT;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0)
		self[n] = 0;
	else if (!realpath(argv0, self))
		snprintf(self, sizeof(self), "%s", argv0);
	if (net_global_init(err, sizeof(err)) != 0) {
		slog(SLOG_ERROR, "%s", err);
		return -1;
	}
	if (backends_open(be, &set->be, 1, self, &e) != 0) {
		slog(SLOG_ERROR, "cannot start: %s", e.msg);
		return -1;
	}
	if (sysprompt_init(prompt, set->prompt_secret, (unsigned)set->prompt_refresh_s, &e) != 0) {
		slog(SLOG_ERROR, "cannot start: %s", e.msg);
		backends_close(be);
		return -1;
	}
	if (be->mode == CFG_CLOUD) {
		slog(SLOG_INFO, "cloud mode: bucket %s, %s, Cloud Run Jobs", be->bucket, be->kms_note);
		if (be->kms_warning[0])
			slog(SLOG_WARNING, "%s", be->kms_warning);
	} else
		slog(SLOG_INFO, "local mode: data in %s, local key, tasks run as child processes", be->data_dir);
	return 0;
}

/* The HTTP core's exemption at its connection caps: health.c's plain
 * form is still answered. */
static int health_cap_exempt(const char *head, size_t n, const char **ctype, const char **body, void *app)
{
	static const char *const plain_health[] = { "GET /health ", "GET /healthz ", NULL };

	*ctype = "text/html; charset=utf-8";
	*body = "ok";
	return hs_prefix_match(head, n, plain_health);
}

/* The plain health check is answered on the HTTP loop thread, with no
 * hand-off to a worker (health.c: a fixed "ok"; ?verbose runs a check). */
static int health_inline(const struct hs_req *req, void *app)
{
	const char *m = hs_req_method(req), *p = hs_req_raw_path(req);

	(void)app;
	return (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) &&
	       (strcmp(p, "/health") == 0 || strcmp(p, "/healthz") == 0) && !*hs_req_query_string(req);
}

/* serve_settings_read: every setting serve reads, from the table
 * (settings.h), once at start-up; the integer ones were checked by
 * settings_load().  The bind address's default depends on the mode:
 * serve_settings_bind() sets it once the backends are open. */
/* A BOOL setting: 1, true or on (any case). */
static int is_on(const char *v)
{
	return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "on") == 0);
}

static void serve_settings_read(struct serve_settings *set)
{
	const char *project = settings_str(SET_GOOGLE_CLOUD_PROJECT);

	set->bind = settings_str(SET_CCR_BIND);
	set->port = (unsigned long)settings_int(SET_PORT);
	set->max_conn = (unsigned long)settings_int(SET_CCR_MAX_CONNECTIONS);
	set->per_client = (unsigned long)settings_int(SET_CCR_MAX_CONNECTIONS_PER_CLIENT);
	set->backlog = (unsigned long)settings_int(SET_CCR_SSE_BACKLOG);
	set->read_ms = (unsigned long)settings_int(SET_CCR_HTTP_READ_TIMEOUT_MS);
	set->idle_ms = (unsigned long)settings_int(SET_CCR_HTTP_IDLE_TIMEOUT_MS);
	set->write_ms = (unsigned long)settings_int(SET_CCR_HTTP_WRITE_TIMEOUT_MS);
	set->drain_ms = (unsigned long)settings_int(SET_CCR_DRAIN_TIMEOUT_MS);
	set->cli_check_ms = (unsigned long)settings_int(SET_CCR_CLI_CHECK_TIMEOUT_MS);
	set->reconcile_s = (unsigned long)settings_int(SET_CCR_RECONCILE_INTERVAL_S);
	set->webhook_deadline_s = (unsigned long)settings_int(SET_CCR_WEBHOOK_DEADLINE_S);
	set->workspace_root = settings_str(SET_CCR_WORKSPACE_ROOT);
	set->callbacks.allow_private = settings_str(SET_CCR_ALLOW_PRIVATE_CALLBACKS);
	set->callbacks.allow_hosts = settings_str(SET_CCR_CALLBACK_ALLOW_HOSTS);
	set->be.bucket = settings_str(SET_GCS_LOGS_BUCKET);
	set->be.data_dir = settings_str(SET_CCR_DATA_DIR);
	set->be.local_key = settings_str(SET_CCR_LOCAL_KEY_FILE);
	set->be.job_name = settings_str(SET_CLOUDRUN_JOB_NAME);
	set->be.kms_location = settings_str(SET_KMS_LOCATION);
	set->be.max_tasks = settings_int(SET_CCR_MAX_CONCURRENT_TASKS);
	set->be.cancel_grace_ms = settings_int(SET_CCR_CANCEL_GRACE_MS);
	set->be.keep_job_logs = is_on(settings_str(SET_CCR_KEEP_JOB_LOGS));
	set->log_level = settings_str(SET_LOG_LEVEL);
	set->sandbox = settings_str(SET_CCR_SANDBOX);
	set->claude_bin = settings_str(SET_CLAUDE_BIN);
	set->project = project && *project ? project : settings_str(SET_PROJECT_ID);
	set->prompt_secret = settings_str(SET_CCR_SYSTEM_PROMPT_SECRET);
	set->prompt_refresh_s = (unsigned long)settings_int(SET_CCR_SYSTEM_PROMPT_REFRESH_S);
}

static void serve_settings_bind(struct serve_settings *set, const struct backends *be)
{
	if (!set->bind || !*set->bind)
		set->bind = be->mode == CFG_CLOUD ? "0.0.0.0" : "127.0.0.1";
}

/* --help, or an unknown argument: the exit code, else -1 to go on. */
static int parse_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		fprintf(stderr, "ccr serve: unknown argument '%s'\n", argv[i]);
		usage(stderr);
		return 2;
	}
	return -1;
}

static void http_config(struct hs_config *cfg, const struct serve_settings *set, struct serve_ctx *sc)
{
	hs_config_defaults(cfg);
	cfg->max_connections = (unsigned)set->max_conn;
	cfg->max_per_client = (unsigned)set->per_client;      /* 0: 3/4 of the global cap */
	cfg->cap_exempt = health_cap_exempt;
	cfg->is_inline = health_inline;
	if (set->read_ms)
		cfg->header_timeout_ms = cfg->body_timeout_ms = (unsigned)set->read_ms;
	cfg->idle_timeout_ms = (unsigned)set->idle_ms;
	cfg->write_timeout_ms = (unsigned)set->write_ms;
	cfg->handler = serve_dispatch;
	cfg->app = sc;
	cfg->on_access = access_hook;
	cfg->on_drain = drain_hook;
}

/* The "listening" line, with the address and port as fields. */
static void log_listening(const char *bind_addr, int port)
{
	struct buf extra = BUF_INIT, msg = BUF_INIT;
	int v6 = strchr(bind_addr, ':') != NULL;

	if (buf_adds(&extra, "\"address\":") == 0 && jsj_string(&extra, bind_addr, strlen(bind_addr)) == 0 &&
	    buf_printf(&extra, ",\"port\":%d", port) == 0 &&
	    buf_printf(&msg, "ccr serve %s listening on http://%s%s%s:%d", CCR_VERSION, v6 ? "[" : "",
		       bind_addr, v6 ? "]" : "", port) == 0)
		slog_fields(SLOG_INFO, msg.p, extra.p);
	buf_free(&msg);
	buf_free(&extra);
}

/* The server and the reconciler, listening; 0, or -1 (logged, nothing left running). */
static int start(struct serve_ctx *sc, const struct serve_settings *set)
{
	struct reconcile_cfg rcfg;
	struct hs_config cfg;
	struct err e = ERR_INIT;

	memset(&rcfg, 0, sizeof(rcfg));
	rcfg.interval_ms = (long)set->reconcile_s * 1000;
	rcfg.webhook_deadline_ms = (long)set->webhook_deadline_s * 1000;
	rcfg.callbacks = &set->callbacks;
	rcfg.callback_secret = secenv_get("CLOUDRUN_CALLBACK_SECRET");
	rcfg.workspace_root = set->workspace_root;
	http_config(&cfg, set, sc);
	raise_fd_limit();
	if (install_signals() != 0)
		return slog(SLOG_ERROR, "cannot install signal handlers: %s", strerror(errno)), -1;
	if (!(sc->srv = hs_new(&cfg, &e)))
		return slog(SLOG_ERROR, "%s", e.msg), -1;
	if (!(sc->rec = reconcile_start(sc->be, &rcfg, &e))) {
		slog(SLOG_ERROR, "%s", e.msg);
		hs_free(sc->srv);
		return -1;
	}
	if (hs_listen(sc->srv, set->bind, (int)set->port, &e) != 0 || hs_start(sc->srv, &e) != 0) {
		slog(SLOG_ERROR, "%s", e.msg);
		reconcile_stop(sc->rec);
		hs_free(sc->srv);
		return -1;
	}
	log_listening(set->bind, hs_port(sc->srv));
	return 0;
}

/* Until SIGTERM/SIGINT, then drain: open requests get up to drain_ms. */
static void run_until_signal(struct serve_ctx *sc, unsigned long drain_ms)
{
	int sig = wait_signal(), rc;

	slog(SLOG_INFO, "received %s: draining (up to %lu ms)",
	     sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a stop request", drain_ms);
	rc = hs_shutdown(sc->srv, (unsigned)drain_ms);
	if (rc == 0)
		slog(SLOG_INFO, "stopped: every connection closed");
	else
		slog(SLOG_WARNING, "stopped: connections still open at the deadline were closed");
	if (rc < 2) {      /* else threads still run: the process exits around them */
		reconcile_stop(sc->rec);
		hs_free(sc->srv);
		topics_free(sc->topics);
		serverkey_free(&sc->key);
		backends_close(sc->be);
	}
}

int serve_main(int argc, char **argv)
{
	static const char *const secrets[] = { "CCR_API_KEYS", "CLOUDRUN_CALLBACK_SECRET", "ANTHROPIC_API_KEY",
					       "CLAUDE_CODE_OAUTH_TOKEN" };
	struct serve_settings set;
	struct serve_ctx sc;
	struct backends be;
	struct sysprompt prompt;
	struct err e = ERR_INIT;
	enum sbx_mode box_mode;
	int rc;

	secenv_take(secrets, 4);
	if ((rc = parse_args(argc, argv)) >= 0)
		return rc;
	serve_settings_read(&set);
	slog_init(1, NULL, set.log_level);
	if (sbx_mode_parse(set.sandbox, &box_mode, &e) != 0) {
		fprintf(stderr, "ccr serve: %s\n", e.msg);
		return 2;
	}
	if (open_backends(&be, &prompt, &set, argv[0]) != 0)
		return 1;
	serve_settings_bind(&set, &be);
	memset(&sc, 0, sizeof(sc));
	sc.set = &set;
	if (serve_auth_init(&sc.auth, &be, set.bind) != 0) {
		backends_close(&be);
		return 1;
	}
	sc.prompt = &prompt;
	slog_project(set.project, sc.log_project, sizeof(sc.log_project));
	pthread_mutex_init(&sc.cli.mu, NULL);
	pthread_mutex_init(&sc.msg_ids.mu, NULL);
	sc.be = &be;
	if (serverkey_init(&sc.key, &be) != 0 || !(sc.topics = topics_new(be.storage, (size_t)set.backlog))) {
		slog(SLOG_ERROR, "out of memory");
		backends_close(&be);
		return 1;
	}
	if (slog_queue_start() != 0)
		slog(SLOG_WARNING, "no thread for the access log's writer: access lines are written inline");
	if (start(&sc, &set) != 0) {
		slog_queue_stop();
		topics_free(sc.topics);
		backends_close(&be);
		return 1;
	}
	run_until_signal(&sc, set.drain_ms);
	slog_queue_stop();                 /* every access line is out before exit */
	return 0;
}
