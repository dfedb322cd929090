/*
 * health.c: the seed's health endpoints (seed-spec §2.7), byte for byte:
 *
 *   GET /                      200 text/html  "Claude Code Agent is running"
 *   GET /health, /healthz      200 text/html  "ok"
 *   ... ?verbose=true          200 JSON {"status":"healthy","server":"running",
 *                                "auth":{"hasApiKey":..,"hasAuthToken":..,"tokenLength":..},
 *                                "claude":{"cliAvailable":..}}
 *
 * Only the exact query value "true" (given once) selects the verbose form;
 * it needs an API key when keys are set, and the CLI check behind it runs
 * at most once at a time and is cached for 30 s.  The seed
 * spawned `claude --version` with no timeout, so a hanging CLI hung the
 * request; here the child runs in its own process group with stdin and
 * stderr on /dev/null (when it exists) and stdout on a pipe that is
 * drained and ignored, and the whole group is killed after the timeout
 * (child_spawn and child_kill_group, util/child.h).
 * tokenLength is JavaScript's String length (UTF-16 code units) of
 * CLAUDE_CODE_OAUTH_TOKEN.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "util/jsjson.h"
#include "util/secenv.h"
#include "serve/log.h"
#include "serve/serve.h"
#include "util/buf.h"
#include "util/child.h"
#include "util/clock.h"

#define TEXT_HTML "text/html; charset=utf-8"

extern char **environ;

int health_root(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	static const char body[] = "Claude Code Agent is running";

	return hs_send(resp, 200, TEXT_HTML, body, sizeof(body) - 1);
}

/* JavaScript's .length of a UTF-8 string: code units of UTF-16. */
static size_t js_length(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	while (*p) {
		if (*p < 0x80) {
			p++;
			n++;
		} else if ((*p & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) {
			p += 2;
			n++;
		} else if ((*p & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) {
			p += 3;
			n++;
		} else if ((*p & 0xF8) == 0xF0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
			   (p[3] & 0xC0) == 0x80) {
			p += 4;
			n += 2;
		} else {
			p++;     /* an invalid byte decodes to one U+FFFD */
			n++;
		}
	}
	return n;
}

/* Drain the pipe (the output is ignored) until the child exits or the
 * deadline passes: 1 when it exited, its status in *status. */
static int drain_until_exit(pid_t pid, int fd, int64_t deadline, int *status)
{
	for (;;) {
		struct pollfd pf = { fd, POLLIN, 0 };
		int w = child_wait(pid, clock_mono_ms(), status);

		if (w != 0 || clock_mono_ms() >= deadline) {
			if (fd >= 0)
				close(fd);
			return w == 1;     /* -1: someone else reaped it: unknown, unavailable */
		}
		if (fd >= 0 && poll(&pf, 1, 20) > 0) {
			char sink[512];
			ssize_t n = read(fd, sink, sizeof(sink));

			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				close(fd);
				fd = -1;
			}
		} else if (fd < 0) {
			child_sleep_ms(20);
		}
	}
}

int health_cli_available(const char *bin, unsigned timeout_ms)
{
	char *argv[3], exe[4096];
	struct child_spec s = { 0 };
	struct err e = ERR_INIT;
	int pfd[2], status = 0, exited;
	pid_t pid;
	int64_t deadline = clock_mono_ms() + timeout_ms;

	if (!bin || !*bin)
		bin = "claude";
	argv[0] = (char *)bin;
	argv[1] = "--version";
	argv[2] = NULL;
	if (child_which(bin, NULL, exe, sizeof(exe)) != 0) {
		slog(SLOG_DEBUG, "cli check: cannot run %s: not found or not executable", bin);
		return 0;
	}
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		slog(SLOG_WARNING, "cli check: pipe: %s", strerror(errno));
		return 0;
	}
	s.exe = exe;
	s.argv = argv;
	s.envp = environ;
	s.fd_in = s.fd_err = -1;
	s.fd_out = pfd[1];
	if (child_spawn(&s, &pid, &e) != 0) {
		close(pfd[0]);
		close(pfd[1]);
		slog(SLOG_DEBUG, "cli check: cannot run %s: %s", bin, e.msg);
		return 0;
	}
	close(pfd[1]);
	exited = drain_until_exit(pid, pfd[0], deadline, &status);
	if (!exited) {
		child_kill_group(pid, 0);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		slog(SLOG_WARNING, "cli check: %s --version did not finish within %u ms", bin, timeout_ms);
		return 0;
	}
	return child_exit_code(status) == 0;
}

/* One `claude --version` at a time, and its answer kept for CLI_CHECK_TTL_MS:
 * a burst of verbose health checks never becomes a burst of processes. */
#define CLI_CHECK_TTL_MS 30000

static int cli_check_cached(struct health_cli *c, const char *bin, unsigned timeout_ms)
{
	int ok;

	pthread_mutex_lock(&c->mu);
	if (c->checked_at == 0 || clock_mono_ms() - c->checked_at >= CLI_CHECK_TTL_MS) {
		c->ok = health_cli_available(bin, timeout_ms);
		c->checked_at = clock_mono_ms();
	}
	ok = c->ok;
	pthread_mutex_unlock(&c->mu);
	return ok;
}

/* "sandbox":{...}}: what this machine allows the agent's sandbox
 * (sandbox.h).  In cloud mode each job reports its own level in its
 * task's metadata. */
static int sandbox_json(struct buf *b, const char *setting)
{
	const struct sbx_probe *p = sbx_probe();
	enum sbx_mode mode;
	enum sbx_level level = SBX_NONE;
	struct err e = ERR_INIT;
	int ok = sbx_mode_parse(setting, &mode, &e) == 0 && sbx_level_for(mode, &level, &e) == 0;

	if (buf_printf(b, "\"sandbox\":{\"mode\":\"%s\",\"level\":\"%s\",\"userNamespaces\":%s,\"landlockAbi\":%d",
		       ok ? sbx_mode_name(mode) : "invalid", ok ? sbx_level_name(level) : "none",
		       p->userns ? "true" : "false", p->landlock_abi) != 0)
		return -1;
	if (!ok || p->why[0]) {
		if (buf_adds(b, ",\"reason\":") != 0 || jsj_string(b, ok ? p->why : e.msg, strlen(ok ? p->why : e.msg)) != 0)
			return -1;
	}
	return buf_adds(b, "}}");
}

int health_check(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m)
{
	const char *verbose = hs_req_query(req, "verbose");
	const char *key = secenv_get("ANTHROPIC_API_KEY");
	const char *tok = secenv_get("CLAUDE_CODE_OAUTH_TOKEN");
	struct buf b = BUF_INIT;
	int cli, rc;

	/* Express: req.query.verbose === 'true'; a repeated parameter is an
	 * array there, so it never matches. */
	if (!verbose || strcmp(verbose, "true") != 0 || hs_req_query_count(req, "verbose") != 1)
		return hs_send(resp, 200, TEXT_HTML, "ok", 2);
	/* The verbose form says how the service is set up: it needs a key
	 * when keys are on, like the task endpoints. */
	if (!serve_authorized(sc, req, resp))
		return 0;
	cli = cli_check_cached(&sc->cli, sc->set->claude_bin, (unsigned)sc->set->cli_check_ms);
	if (buf_printf(&b,
		       "{\"status\":\"healthy\",\"server\":\"running\",\"auth\":{\"hasApiKey\":%s,"
		       "\"hasAuthToken\":%s,\"tokenLength\":%zu},\"claude\":{\"cliAvailable\":%s},",
		       key && *key ? "true" : "false", tok && *tok ? "true" : "false",
		       tok ? js_length(tok) : 0, cli ? "true" : "false") != 0 || sandbox_json(&b, sc->set->sandbox) != 0) {
		buf_free(&b);
		return hs_send_json_error(resp, 500, "out of memory");
	}
	rc = hs_send(resp, 200, HS_JSON, b.p, b.len);
	buf_free(&b);
	return rc;
}
