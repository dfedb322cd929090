/*
 * git.c: the context, network operations (deadline, watchdog, ssh
 * children, credentials), error mapping, clone and status.  Commit lives
 * in git_commit.c, push in git_push.c, the external test repo in
 * git_tests.c (see git.h for the API).
 *
 * Design.  libgit2 runs ssh as `/bin/sh -c "<core.sshCommand> -p PORT
 * 'user@host' 'git-upload-pack' 'path'"` and never reaps it.  gop's
 * command is a small shell function: it records the shell's pid, then
 * `exec ssh ... 2>>ERR` becomes ssh (same pid), whose stderr goes to a
 * file gop reads for error messages.  With the pids known, the
 * watchdog can kill a stalled ssh at the deadline (libgit2's read then
 * fails at once) and op_end can reap every child, so none is left behind.
 * The command is attached to each repository object as an in-memory
 * config backend at the APP level, so it is never written to .git/config.
 *
 * HTTPS cannot be interrupted from another thread; there the deadline is
 * enforced by the progress callbacks (a transfer that keeps sending) and
 * libgit2's socket timeouts, set per operation (one that stops sending).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <git2/sys/errors.h>
#include <git2/sys/config.h>

#include "job/git.h"
#include "job/git_int.h"
#include "net/netinit.h"
#include "util/redact.h"
#include "settings/settings.h"

#define MAX_SSH_PIDS 32
#define REMOTE_MSG_CAP 4096

/* ---- small helpers ------------------------------------------------------ */

uint64_t gop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int gop_errf(struct err *e, const char *fmt, ...)
{
	struct buf raw = BUF_INIT, out = BUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(&raw, fmt, ap);
	va_end(ap);
	if (rc == 0 && raw.p && redact_str(&out, raw.p) == 0 && out.p)
		err_set(e, "%s", out.p);
	else
		err_set(e, "git operation failed (out of memory while formatting the error)");
	buf_free(&raw);
	buf_free(&out);
	return -1;
}

static const char *git_msg(void)
{
	const git_error *ge = git_error_last();

	return ge && ge->message && ge->message[0] ? ge->message : "unknown libgit2 error";
}

int gop_giterr(struct gop_ctx *c, struct err *e, const char *what, int rc)
{
	struct buf d = BUF_INIT;

	(void)rc;
	if (buf_adds(&d, git_msg()) == 0 && redact_apply(&d) == 0 && d.p && c)
		snprintf(c->detail, sizeof(c->detail), "%s", d.p);
	gop_errf(e, "%s: %s", what, git_msg());
	buf_free(&d);
	return -1;
}

/* Append s to b quoted for /bin/sh: '...' with ' as '\''. */
static int sh_quote(struct buf *b, const char *s)
{
	if (buf_addc(b, '\'') != 0)
		return -1;
	for (; *s; s++) {
		if (*s == '\'') {
			if (buf_adds(b, "'\\''") != 0)
				return -1;
		} else if (buf_addc(b, *s) != 0) {
			return -1;
		}
	}
	return buf_addc(b, '\'');
}

static int write_file(const char *path, const char *data, size_t n, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t off = 0;

	if (fd < 0)
		return err_set(e, "cannot write %s: %s", path, strerror(errno));
	while (off < n) {
		ssize_t w = write(fd, data + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err_set(e, "cannot write %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	if (close(fd) != 0)
		return err_set(e, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

/* Read up to cap bytes of a file into b (missing file: empty). */
static int read_file(const char *path, struct buf *b, size_t cap)
{
	char tmp[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	while (b->len < cap) {
		size_t want = cap - b->len < sizeof(tmp) ? cap - b->len : sizeof(tmp);
		ssize_t n = read(fd, tmp, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (buf_add(b, tmp, (size_t)n) != 0) {
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

static void path_in_dir(char *out, size_t n, const struct gop_ctx *c, const char *name)
{
	snprintf(out, n, "%s/%s", c->dir, name);
}

/* ---- URLs ----------------------------------------------------------------- */

static int starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int is_ssh_url(const char *url)
{
	return starts(url, "git@") || starts(url, "ssh://") ||
	       (!strstr(url, "://") && strchr(url, '@') && strchr(url, ':'));
}

void gop_ssh_url(const char *url, int have_key, char *out, size_t outlen)
{
	const char *p, *slash, *end;
	size_t olen, rlen;

	snprintf(out, outlen, "%s", url);
	if (!have_key)
		return;
	if (starts(url, "https://github.com/"))
		p = url + strlen("https://github.com/");
	else if (starts(url, "http://github.com/"))
		p = url + strlen("http://github.com/");
	else
		return;
	slash = strchr(p, '/');
	if (!slash || slash == p)
		return;
	olen = (size_t)(slash - p);
	end = slash + 1 + strlen(slash + 1);
	if (end - (slash + 1) > 4 && strcmp(end - 4, ".git") == 0)
		end -= 4;
	rlen = (size_t)(end - (slash + 1));
	if (rlen == 0 || memchr(slash + 1, '/', rlen))
		return;
	snprintf(out, outlen, "git@github.com:%.*s/%.*s.git", (int)olen, p, (int)rlen, slash + 1);
}

/* The authority of a URL without userinfo ("host:port"), or of an scp-like
 * address ("host"). */
static void url_host(const char *url, char *out, size_t n)
{
	const char *p = strstr(url, "://"), *end, *at;

	out[0] = 0;
	if (p) {
		p += 3;
		end = p + strcspn(p, "/?#");
	} else {
		p = url;
		end = strchr(p, ':');
		if (!end)
			return;
	}
	at = memchr(p, '@', (size_t)(end - p));
	while (at) {
		const char *next;
		p = at + 1;
		next = memchr(p, '@', (size_t)(end - p));
		at = next;
	}
	snprintf(out, n, "%.*s", (int)(end - p), p);
}

/*
 * Split credentials out of an http(s) URL: clean gets the URL without
 * userinfo; user/pass (malloc'd, NULL when absent) are percent-decoded.
 */
static int pct(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static char *decode(const char *s, size_t n)
{
	char *o = malloc(n + 1);
	size_t i, j = 0;

	if (!o)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && pct((unsigned char)s[i + 1]) >= 0 &&
		    pct((unsigned char)s[i + 2]) >= 0) {
			o[j++] = (char)(pct((unsigned char)s[i + 1]) * 16 + pct((unsigned char)s[i + 2]));
			i += 2;
		} else {
			o[j++] = s[i];
		}
	}
	o[j] = 0;
	return o;
}

static int split_url_creds(const char *url, struct buf *clean, char **user, char **pass)
{
	const char *p = strstr(url, "://"), *auth_end, *at = NULL, *q, *colon;

	*user = *pass = NULL;
	if (!p || !(starts(url, "http://") || starts(url, "https://")))
		return buf_adds(clean, url);
	p += 3;
	auth_end = p + strcspn(p, "/?#");
	for (q = p; q < auth_end; q++)
		if (*q == '@')
			at = q;
	if (!at)
		return buf_adds(clean, url);
	colon = memchr(p, ':', (size_t)(at - p));
	if (colon) {
		*user = decode(p, (size_t)(colon - p));
		*pass = decode(colon + 1, (size_t)(at - colon - 1));
	} else {
		*user = decode(p, (size_t)(at - p));
	}
	if (buf_add(clean, url, (size_t)(p - url)) != 0 || buf_adds(clean, at + 1) != 0)
		return -1;
	return 0;
}

int gop_has_credential(const char *s)
{
	const char *p;

	if (!s)
		return 0;
	if (strstr(s, "x-access-token") || strstr(s, "x-oauth-basic"))
		return 1;
	for (p = strstr(s, "://"); p; p = strstr(p + 3, "://")) {
		const char *a = p + 3, *end = a + strcspn(a, "/?# \t\r\n\"'"), *at = NULL, *q;
		for (q = a; q < end; q++)
			if (*q == '@')
				at = q;
		if (at && memchr(a, ':', (size_t)(at - a)))
			return 1;
		/* A bare token as user name (https://<token>@host) counts too. */
		if (at && at - a >= 20)
			return 1;
	}
	return 0;
}

/* ---- the context ---------------------------------------------------------- */

int gop_ctx_init(struct gop_ctx *c, const char *workspace, struct err *e)
{
	char ebuf[256];
	const char *v;
	struct stat st;

	memset(c, 0, sizeof(*c));
	if (!workspace || !*workspace)
		return err_set(e, "git: no workspace directory given");
	if (snprintf(c->workspace, sizeof(c->workspace), "%s", workspace) >= (int)sizeof(c->workspace))
		return err_set(e, "git: workspace path too long");
	snprintf(c->dir, sizeof(c->dir), "%s/.ssh", c->workspace);
	if (mkdir(c->dir, 0700) != 0 && errno != EEXIST)
		return err_set(e, "git: cannot create %s: %s", c->dir, strerror(errno));
	if (lstat(c->dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return err_set(e, "git: %s is not a directory", c->dir);
	if (chmod(c->dir, 0700) != 0)
		return err_set(e, "git: cannot chmod %s: %s", c->dir, strerror(errno));
	if (net_global_init(ebuf, sizeof(ebuf)) != 0)
		return err_set(e, "git: %s", ebuf);

	c->https_user = "x-access-token";
	c->timeout_ms = GOP_DEFAULT_TIMEOUT_MS;
	v = settings_str(SET_CCR_GIT_TIMEOUT_SECONDS);
	if (v && *v) {
		char *end;
		long s = strtol(v, &end, 10);
		if (*end || s <= 0 || s > 86400)
			return err_set(e, "CCR_GIT_TIMEOUT_SECONDS must be a number of seconds (1..86400), not '%s'", v);
		c->timeout_ms = s * 1000;
	}
	v = settings_str(SET_CCR_SSH_KNOWN_HOSTS);
	c->known_hosts_file = v && *v ? v : NULL;
	v = settings_str(SET_CCR_SSH_INSECURE);
	c->ssh_insecure = v && strcmp(v, "1") == 0;
	v = settings_str(SET_CCR_GITHUB_URL);
	c->github_url = v && *v ? v : "https://github.com";
	v = settings_str(SET_CCR_GITHUB_API);
	c->github_api = v && *v ? v : "https://api.github.com";
	/* libgit2 prefers GIT_SSH over core.sshCommand; gop's command must win. */
	if (settings_str(SET_GIT_SSH))
		unsetenv("GIT_SSH");
	return 0;
}

static void wipe_free(char **p)
{
	if (*p) {
		volatile char *v = *p;
		size_t n = strlen(*p);
		while (n--)
			*v++ = 0;
		free(*p);
		*p = NULL;
	}
}

void gop_ctx_free(struct gop_ctx *c)
{
	if (!c)
		return;
	wipe_free(&c->url_user);
	wipe_free(&c->url_pass);
}

/* Write <dir>/known_hosts once (also when the policy is insecure: cheap). */
int gop_ssh_prepare(struct gop_ctx *c, struct err *e)
{
	struct buf kh = BUF_INIT;
	char path[1200];
	int rc = 0;

	if (c->prepared)
		return 0;
	if (c->known_hosts && *c->known_hosts) {
		rc |= buf_adds(&kh, c->known_hosts);
		if (kh.len && kh.p[kh.len - 1] != '\n')
			rc |= buf_addc(&kh, '\n');
	}
	if (c->known_hosts_file) {
		size_t before = kh.len;
		if (read_file(c->known_hosts_file, &kh, 4u << 20) != 0) {
			buf_free(&kh);
			return err_set(e, "cannot read the SSH known hosts file %s (CCR_SSH_KNOWN_HOSTS): %s",
				       c->known_hosts_file, strerror(errno));
		}
		if (kh.len > before && kh.p[kh.len - 1] != '\n')
			rc |= buf_addc(&kh, '\n');
	}
	rc |= buf_adds(&kh, gop_builtin_known_hosts);
	if (rc != 0) {
		buf_free(&kh);
		return err_set(e, "git: out of memory");
	}
	path_in_dir(path, sizeof(path), c, "known_hosts");
	rc = write_file(path, kh.p, kh.len, e);
	buf_free(&kh);
	if (rc == 0)
		c->prepared = 1;
	return rc;
}

/*
 * The core.sshCommand value (see the design note at the top).  libgit2
 * appends [-p PORT] "user@host" "git-upload-pack" "path"; the shell
 * function records its pid, then becomes ssh with the remote command as
 * git itself sends it, one string with the path single-quoted
 * (git-upload-pack '/path'), which git-shell and other restricted shells
 * require.
 */
static const char ssh_fn_head[] =
	"ccr_ssh() { echo $$ >>";
static const char ssh_fn_args[] =
	"; if [ \"$1\" = -p ]; then P=$2; shift 2; else P=; fi; R=$3; Q=; "
	"while :; do case $R in *\\'*) H=${R%%\\'*}; R=${R#*\\'}; Q=$Q$H\\'\\\\\\'\\';; "
	"*) Q=$Q$R; break;; esac; done; exec ssh";
static const char ssh_fn_tail[] =
	" ${P:+-p \"$P\"} \"$1\" \"$2 '$Q'\" 2>>";

/* The host-key options, one policy for libgit2's ssh and the agent's. */
static int hostkey_opts(struct gop_ctx *c, struct buf *b)
{
	struct buf opt = BUF_INIT;
	char path[1200];
	int rc = 0;

	if (c->ssh_insecure)
		return buf_adds(b, " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
				   " -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR");
	path_in_dir(path, sizeof(path), c, "known_hosts");
	rc |= buf_adds(b, " -o StrictHostKeyChecking=yes -o ");
	rc |= buf_printf(&opt, "UserKnownHostsFile=\"%s\"", path);
	rc |= opt.p ? sh_quote(b, opt.p) : -1;
	buf_free(&opt);
	return rc ? -1 : 0;
}

static int key_opts(struct gop_ctx *c, struct buf *b)
{
	if (!c->ssh_key_path)
		return 0;
	return buf_adds(b, " -o IdentitiesOnly=yes -i ") != 0 || sh_quote(b, c->ssh_key_path) != 0 ? -1 : 0;
}

static int ssh_command(struct gop_ctx *c, struct buf *b)
{
	char path[1200];
	long cto = c->timeout_ms / 1000;
	int rc = 0;

	if (cto > 30)
		cto = 30;
	if (cto < 1)
		cto = 1;
	path_in_dir(path, sizeof(path), c, "ssh.pids");
	rc |= buf_adds(b, ssh_fn_head);
	rc |= sh_quote(b, path);
	rc |= buf_adds(b, ssh_fn_args);
	rc |= buf_adds(b, " -o BatchMode=yes");
	rc |= key_opts(c, b);
	rc |= hostkey_opts(c, b);
	rc |= buf_printf(b, " -o ConnectTimeout=%ld -o ServerAliveInterval=15 -o ServerAliveCountMax=4", cto);
	rc |= buf_adds(b, ssh_fn_tail);
	path_in_dir(path, sizeof(path), c, "ssh.err");
	rc |= sh_quote(b, path);
	rc |= buf_adds(b, "; }; ccr_ssh");
	return rc ? -1 : 0;
}

int gop_agent_ssh_command(struct gop_ctx *c, struct buf *out, struct err *e)
{
	if (gop_ssh_prepare(c, e) != 0)
		return -1;
	if (buf_adds(out, "ssh") != 0 || key_opts(c, out) != 0 || hostkey_opts(c, out) != 0)
		return err_set(e, "git: out of memory");
	return 0;
}

int gop_repo_attach(struct gop_ctx *c, git_repository *repo)
{
	git_config_backend_memory_options mo;
	git_config_backend *be = NULL;
	git_config *cfg = NULL;
	struct buf cmd = BUF_INIT, kv = BUF_INIT;
	const char *values[1];
	int rc;

	if (ssh_command(c, &cmd) != 0 || buf_adds(&kv, "core.sshcommand=") != 0 || buf_adds(&kv, cmd.p) != 0) {
		buf_free(&cmd);
		buf_free(&kv);
		git_error_set_str(GIT_ERROR_NOMEMORY, "out of memory");
		return -1;
	}
	memset(&mo, 0, sizeof(mo));
	mo.version = GIT_CONFIG_BACKEND_MEMORY_OPTIONS_VERSION;
	values[0] = kv.p;
	mo.backend_type = "ccr";
	rc = git_config_backend_from_values(&be, values, 1, &mo);
	if (rc == 0)
		rc = git_repository_config(&cfg, repo);
	if (rc == 0) {
		rc = git_config_add_backend(cfg, be, GIT_CONFIG_LEVEL_APP, repo, 1);
		if (rc == 0)
			be = NULL; /* owned by cfg now */
	}
	if (be)
		be->free(be);
	git_config_free(cfg);
	buf_free(&cmd);
	buf_free(&kv);
	return rc;
}

int gop_repo_open(struct gop_ctx *c, git_repository **out, const char *path, struct err *e)
{
	int rc;

	*out = NULL;
	if (gop_ssh_prepare(c, e) != 0)
		return -1;
	rc = git_repository_open_ext(out, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (rc < 0)
		return gop_giterr(c, e, "cannot open the git repository", rc);
	rc = gop_repo_attach(c, *out);
	if (rc < 0) {
		gop_giterr(c, e, "cannot configure ssh for the repository", rc);
		git_repository_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* ---- operations: deadline, watchdog, ssh children -------------------------- */

static int read_pids(struct gop_ctx *c, pid_t *pids, int max)
{
	struct buf b = BUF_INIT;
	char path[1200];
	const char *p;
	int n = 0;

	path_in_dir(path, sizeof(path), c, "ssh.pids");
	if (read_file(path, &b, 65536) != 0 || !b.p) {
		buf_free(&b);
		return 0;
	}
	for (p = b.p; *p && n < max;) {
		char *end;
		long v = strtol(p, &end, 10);
		int i, dup = 0;
		if (end == p) {
			p++;
			continue;
		}
		for (i = 0; i < n; i++)
			dup |= pids[i] == (pid_t)v;
		if (v > 1 && !dup)
			pids[n++] = (pid_t)v;
		p = end;
	}
	buf_free(&b);
	return n;
}

static void kill_all(struct gop_op *op, int sig)
{
	pid_t pids[MAX_SSH_PIDS];
	int i, n = read_pids(op->c, pids, MAX_SSH_PIDS);

	for (i = 0; i < n; i++)
		if (kill(pids[i], sig) == 0 && sig == SIGTERM)
			__atomic_add_fetch(&op->killed, 1, __ATOMIC_SEQ_CST);
}

static void add_ms(struct timespec *ts, uint64_t at_ms)
{
	ts->tv_sec = (time_t)(at_ms / 1000);
	ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

static void *watchdog(void *arg)
{
	struct gop_op *op = arg;
	struct timespec ts;
	int phase = 0;

	pthread_mutex_lock(&op->mu);
	while (!op->done) {
		uint64_t at = phase == 0 ? op->deadline : op->deadline + 2000;
		add_ms(&ts, at);
		if (pthread_cond_timedwait(&op->cv, &op->mu, &ts) == ETIMEDOUT && !op->done) {
			if (phase == 0) {
				__atomic_store_n(&op->timed_out, 1, __ATOMIC_SEQ_CST);
				kill_all(op, SIGTERM);
				phase = 1;
			} else if (phase == 1) {
				kill_all(op, SIGKILL);
				phase = 2;
			} else {
				/* Nothing more to do but wait for op_end. */
				pthread_cond_wait(&op->cv, &op->mu);
			}
		}
	}
	pthread_mutex_unlock(&op->mu);
	return NULL;
}

int op_begin(struct gop_ctx *c, struct gop_op *op, const char *url, const char *user,
	     const char *token, struct err *e)
{
	pthread_condattr_t ca;
	char path[1200];
	long idle;

	memset(op, 0, sizeof(*op));
	op->c = c;
	op->user = user;
	op->token = token;
	if (url)
		url_host(url, op->host, sizeof(op->host));
	c->detail[0] = 0;
	c->timed_out = 0;
	if (gop_ssh_prepare(c, e) != 0)
		return -1;
	path_in_dir(path, sizeof(path), c, "ssh.pids");
	if (write_file(path, "", 0, e) != 0)
		return -1;
	path_in_dir(path, sizeof(path), c, "ssh.err");
	if (write_file(path, "", 0, e) != 0)
		return -1;
	idle = c->idle_ms > 0 ? c->idle_ms : c->timeout_ms;
	if (idle > GOP_MAX_IDLE_MS && c->idle_ms <= 0)
		idle = GOP_MAX_IDLE_MS;
	if (idle > c->timeout_ms)
		idle = c->timeout_ms;
	if (git_libgit2_opts(GIT_OPT_SET_SERVER_TIMEOUT, (int)idle) < 0 ||
	    git_libgit2_opts(GIT_OPT_SET_SERVER_CONNECT_TIMEOUT, (int)(idle < 30000 ? idle : 30000)) < 0)
		return gop_giterr(c, e, "cannot set the git network timeouts", -1);
	op->deadline = gop_now_ms() + (uint64_t)c->timeout_ms;
	if (pthread_mutex_init(&op->mu, NULL) != 0)
		return err_set(e, "git: cannot create a mutex");
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&op->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		pthread_mutex_destroy(&op->mu);
		return err_set(e, "git: cannot create a condition variable");
	}
	pthread_condattr_destroy(&ca);
	if (pthread_create(&op->th, NULL, watchdog, op) != 0) {
		pthread_cond_destroy(&op->cv);
		pthread_mutex_destroy(&op->mu);
		return err_set(e, "git: cannot start the timeout watchdog: %s", strerror(errno));
	}
	op->th_on = 1;
	c->op = op;
	return 0;
}

/* Reap each ssh child: give it a second to exit after libgit2 closed its
 * pipes, then SIGTERM, then SIGKILL. */
static void reap(struct gop_op *op)
{
	pid_t pids[MAX_SSH_PIDS];
	int i, n = read_pids(op->c, pids, MAX_SSH_PIDS);

	op->c->ssh_started += n;
	for (i = 0; i < n; i++) {
		int st, waited = 0;
		for (;;) {
			pid_t r = waitpid(pids[i], &st, WNOHANG);
			struct timespec ts = { 0, 10 * 1000000L };
			if (r == pids[i] || (r < 0 && errno == ECHILD))
				break;
			if (r < 0 && errno == EINTR)
				continue;
			if (waited == 1000) {
				kill(pids[i], SIGTERM);
				op->c->ssh_killed++;
			}
			if (waited >= 2000) {
				kill(pids[i], SIGKILL);
				while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
					;
				break;
			}
			nanosleep(&ts, NULL);
			waited += 10;
		}
	}
}

void op_end(struct gop_op *op)
{
	if (!op || !op->c)
		return;
	if (op->th_on) {
		pthread_mutex_lock(&op->mu);
		op->done = 1;
		pthread_cond_broadcast(&op->cv);
		pthread_mutex_unlock(&op->mu);
		pthread_join(op->th, NULL);
		pthread_cond_destroy(&op->cv);
		pthread_mutex_destroy(&op->mu);
		op->th_on = 0;
	}
	op->c->ssh_killed += __atomic_load_n(&op->killed, __ATOMIC_SEQ_CST);
	reap(op);
	if (__atomic_load_n(&op->timed_out, __ATOMIC_SEQ_CST))
		op->c->timed_out = 1;
	if (op->c->op == op)
		op->c->op = NULL;
}

void op_free_msgs(struct gop_op *op)
{
	buf_free(&op->remote);
}

/* ---- callbacks ------------------------------------------------------------ */

static int past_deadline(struct gop_op *op)
{
	if (__atomic_load_n(&op->timed_out, __ATOMIC_SEQ_CST) || gop_now_ms() > op->deadline) {
		__atomic_store_n(&op->timed_out, 1, __ATOMIC_SEQ_CST);
		git_error_set_str(GIT_ERROR_NET, "operation timed out");
		return 1;
	}
	return 0;
}

static int cb_sideband(const char *str, int len, void *payload)
{
	struct gop_op *op = payload;

	if (len > 0 && op->remote.len < REMOTE_MSG_CAP)
		buf_add(&op->remote, str, (size_t)len);
	return past_deadline(op) ? -1 : 0;
}

static int cb_transfer(const git_indexer_progress *stats, void *payload)
{
	(void)stats;
	return past_deadline(payload) ? -1 : 0;
}

static int cb_pack(int stage, uint32_t current, uint32_t total, void *payload)
{
	(void)stage, (void)current, (void)total;
	return past_deadline(payload) ? -1 : 0;
}

static int cb_push_transfer(unsigned int current, unsigned int total, size_t bytes, void *payload)
{
	(void)current, (void)total, (void)bytes;
	return past_deadline(payload) ? -1 : 0;
}

static int cb_credentials(git_credential **out, const char *url, const char *username_from_url,
			  unsigned int allowed, void *payload)
{
	struct gop_op *op = payload;
	char host[256];

	(void)username_from_url;
	if (past_deadline(op))
		return -1;
	if (!(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) || !op->token)
		return GIT_PASSTHROUGH;
	url_host(url ? url : "", host, sizeof(host));
	if (strcmp(host, op->host) != 0) {
		git_error_set(GIT_ERROR_NET, "authentication requested by %s, not by %s where the token belongs;"
			      " not sending it", host, op->host);
		return -1;
	}
	if (++op->cred_tries > 1) {
		git_error_set_str(GIT_ERROR_NET, "authentication failed: the server rejected the token");
		return GIT_EAUTH;
	}
	return git_credential_userpass_plaintext_new(out, op->user ? op->user : "x-access-token", op->token);
}

static int cb_push_update(const char *refname, const char *status, void *payload)
{
	struct gop_op *op = payload;

	if (status && op->push_dst && strcmp(refname, op->push_dst) == 0) {
		op->push_rejected = 1;
		snprintf(op->push_status, sizeof(op->push_status), "%s", status);
	} else if (status && !op->push_status[0]) {
		op->push_rejected = 1;
		snprintf(op->push_status, sizeof(op->push_status), "%s: %s", refname, status);
	}
	return 0;
}

static int cb_push_negotiation(const git_push_update **updates, size_t len, void *payload)
{
	struct gop_op *op = payload;
	size_t i;

	if (past_deadline(op))
		return -1;
	for (i = 0; i < len; i++) {
		const git_push_update *u = updates[i];
		if (!op->push_dst || strcmp(u->dst_refname, op->push_dst) != 0)
			continue;
		/* src: what the remote holds now; dst: what it is to hold. */
		git_oid_cpy(&op->pushed, &u->dst);
		op->pushed_set = 1;
		if (op->lease_on && !git_oid_equal(&u->src, &op->lease)) {
			char want[GIT_OID_MAX_HEXSIZE + 1], got[GIT_OID_MAX_HEXSIZE + 1];
			git_oid_tostr(want, sizeof(want), &op->lease);
			git_oid_tostr(got, sizeof(got), &u->src);
			op->lease_broken = 1;
			git_error_set(GIT_ERROR_NET, "not forcing: %s moved on the remote (now %s, expected %s)",
				      u->dst_refname, got, want);
			return -1;
		}
	}
	return 0;
}

void op_callbacks(struct gop_op *op, git_remote_callbacks *cb)
{
	(void)git_remote_init_callbacks(cb, GIT_REMOTE_CALLBACKS_VERSION);
	cb->sideband_progress = cb_sideband;
	cb->transfer_progress = cb_transfer;
	cb->pack_progress = cb_pack;
	cb->push_transfer_progress = cb_push_transfer;
	cb->credentials = cb_credentials;
	cb->push_update_reference = cb_push_update;
	cb->push_negotiation = cb_push_negotiation;
	cb->payload = op;
}

/* ---- error detail and mapping ----------------------------------------------- */

/* Append the meaningful lines of text (progress lines dropped) to b. */
static void add_lines(struct buf *b, const char *label, const char *text, size_t n)
{
	size_t i = 0, start;
	int first = 1;

	while (i < n) {
		start = i;
		while (i < n && text[i] != '\n' && text[i] != '\r')
			i++;
		if (i > start) {
			const char *l = text + start;
			size_t ll = i - start;
			int progress = memchr(l, '%', ll) != NULL || (ll >= 5 && memcmp(l, "Total", 5) == 0);
			if (!progress) {
				if (first) {
					if (b->len)
						buf_adds(b, "; ");
					buf_adds(b, label);
					first = 0;
				} else {
					buf_adds(b, " / ");
				}
				buf_add(b, l, ll);
			}
		}
		while (i < n && (text[i] == '\n' || text[i] == '\r'))
			i++;
	}
}

const char *op_detail(struct gop_op *op, int gitrc)
{
	struct gop_ctx *c = op->c;
	struct buf d = BUF_INIT, ssh = BUF_INIT;
	char path[1200];

	(void)gitrc;
	buf_adds(&d, git_msg());
	path_in_dir(path, sizeof(path), c, "ssh.err");
	if (read_file(path, &ssh, 8192) == 0 && ssh.len)
		add_lines(&d, "ssh: ", ssh.p, ssh.len);
	if (op->remote.len)
		add_lines(&d, "remote: ", op->remote.p, op->remote.len);
	if (d.p && redact_apply(&d) == 0)
		snprintf(c->detail, sizeof(c->detail), "%s", d.p);
	else
		snprintf(c->detail, sizeof(c->detail), "%s", "(out of memory)");
	buf_free(&d);
	buf_free(&ssh);
	return c->detail;
}

static int has(const char *s, const char *needle)
{
	return strcasestr(s, needle) != NULL;
}

static const char host_key_msg[] =
	"SSH host key verification failed: the server's host key is not trusted. "
	"Add it to sshKnownHosts (or the file named by CCR_SSH_KNOWN_HOSTS), "
	"or set sshStrictHostKeyChecking: false to skip the check.";

static const char no_ssh_msg[] =
	"the ssh client is not installed (SSH URLs need `ssh` in PATH and /bin/sh; "
	"Debian: apt-get install openssh-client).";

/* The seed's clone mapping (spec §8.4 step 9), ssh's and libgit2's texts. */
static int clone_error(struct gop_op *op, int rc, int ssh, const char *branch, struct err *e)
{
	const char *d = op_detail(op, rc);
	char ref[300];

	snprintf(ref, sizeof(ref), "refs/remotes/origin/%s", branch);
	if (op->c->timed_out || __atomic_load_n(&op->timed_out, __ATOMIC_SEQ_CST) || has(d, "timed out"))
		return err_set(e, "Failed to clone repository: Git clone operation timed out. Repository may be too large or network is slow.");
	if (has(d, "Host key verification failed") || has(d, "REMOTE HOST IDENTIFICATION HAS CHANGED"))
		return err_set(e, "Failed to clone repository: %s", host_key_msg);
	if (has(d, "ssh: not found") || has(d, "ssh: No such file"))
		return err_set(e, "Failed to clone repository: %s", no_ssh_msg);
	if (has(d, "Could not read from remote repository"))
		return err_set(e, "Failed to clone repository: Authentication failed or repository not accessible. Ensure SSH key is properly configured.");
	if (has(d, "Repository not found") || has(d, "status code: 404") || has(d, "does not appear to be a git repository"))
		return err_set(e, "Failed to clone repository: Repository not found. Check the repository URL and access permissions.");
	if (has(d, "Permission denied"))
		return err_set(e, "Failed to clone repository: SSH key authentication failed. Check SSH key permissions and GitHub access.");
	if (has(d, "authentication") || has(d, "status code: 401") || has(d, "status code: 403"))
		return err_set(e, "Failed to clone repository: Authentication failed or repository not accessible. %s",
			       ssh ? "Ensure SSH key is properly configured." : "Check the access token and the repository URL.");
	if (strstr(d, ref) && has(d, "not found"))
		return gop_errf(e, "Failed to clone repository: Remote branch %s not found in upstream origin", branch);
	return gop_errf(e, "Failed to clone repository: %s", d);
}

int op_push_error(struct gop_op *op, int rc, struct err *e)
{
	const char *d = op_detail(op, rc);

	if (op->c->timed_out || __atomic_load_n(&op->timed_out, __ATOMIC_SEQ_CST))
		return err_set(e, "Failed to push: Git push operation timed out.");
	if (has(d, "Host key verification failed") || has(d, "REMOTE HOST IDENTIFICATION HAS CHANGED"))
		return err_set(e, "Failed to push: %s", host_key_msg);
	if (has(d, "ssh: not found") || has(d, "ssh: No such file"))
		return err_set(e, "Failed to push: %s", no_ssh_msg);
	if (has(d, "Could not read from remote repository"))
		return err_set(e, "Failed to push: Authentication failed. Ensure SSH key has write access to the repository.");
	if (has(d, "Permission denied"))
		return err_set(e, "Failed to push: SSH key authentication failed or insufficient permissions.");
	if (has(d, "authentication") || has(d, "status code: 401") || has(d, "status code: 403"))
		return err_set(e, "Failed to push: Authentication failed. Check that the token may write to the repository.");
	return gop_errf(e, "Failed to push: %s", d);
}

/* ---- clone ---------------------------------------------------------------- */

struct clone_cb {
	struct gop_ctx *c;
	const char *branch;
};

static int clone_repo_cb(git_repository **out, const char *path, int bare, void *payload)
{
	struct clone_cb *cc = payload;
	int rc = git_repository_init(out, path, (unsigned)bare);

	if (rc < 0)
		return rc;
	rc = gop_repo_attach(cc->c, *out);
	if (rc < 0) {
		git_repository_free(*out);
		*out = NULL;
	}
	return rc;
}

static int clone_remote_cb(git_remote **out, git_repository *repo, const char *name, const char *url,
			   void *payload)
{
	struct clone_cb *cc = payload;
	struct buf spec = BUF_INIT;
	int rc;

	if (buf_printf(&spec, "+refs/heads/%s:refs/remotes/%s/%s", cc->branch, name, cc->branch) != 0) {
		git_error_set_str(GIT_ERROR_NOMEMORY, "out of memory");
		return -1;
	}
	rc = git_remote_create_with_fetchspec(out, repo, name, url, spec.p);
	buf_free(&spec);
	return rc;
}

int gop_valid_branch(const char *b)
{
	char full[512];
	int valid = 0;

	if (!b || !*b || b[0] == '-' || snprintf(full, sizeof(full), "refs/heads/%s", b) >= (int)sizeof(full))
		return 0;
	if (git_reference_name_is_valid(&valid, full) < 0)
		return 0;
	return valid;
}

int gop_clone(struct gop_ctx *c, const char *url, const char *branch, int depth,
	      const char *dest, struct err *e)
{
	git_clone_options opts;
	git_repository *repo = NULL;
	struct clone_cb cc;
	struct gop_op op;
	struct buf clean = BUF_INIT;
	char conv[2048];
	char *user = NULL, *pass = NULL;
	int rc, ssh;

	(void)git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
	c->ssh_started = c->ssh_killed = 0;
	c->detail[0] = 0;
	if (!url || !*url)
		return err_set(e, "Failed to clone repository: no repository URL given");
	if (!branch || !*branch)
		branch = "main";
	if (!gop_valid_branch(branch))
		return gop_errf(e, "Failed to clone repository: '%s' is not a valid branch name", branch);
	if (depth < 0)
		return err_set(e, "Failed to clone repository: gitDepth must not be negative");
	redact_add_url(url);
	gop_ssh_url(url, c->ssh_key_path != NULL, conv, sizeof(conv));
	if (!(starts(conv, "git@") || starts(conv, "ssh://") || starts(conv, "http://") ||
	      starts(conv, "https://")) &&
	    !(c->allow_local && (conv[0] == '/' || starts(conv, "file://") || strstr(conv, "://"))))
		return err_set(e, "Invalid git repository URL format. Use SSH (git@...) or HTTPS format.");
	if (split_url_creds(conv, &clean, &user, &pass) != 0) {
		buf_free(&clean);
		return err_set(e, "Failed to clone repository: out of memory");
	}
	if (pass) {
		redact_add(pass);
		wipe_free(&c->url_user);
		wipe_free(&c->url_pass);
		c->url_user = user;
		c->url_pass = pass;
		user = pass = NULL;
	} else if (user && strlen(user) >= 20 && !c->https_token) {
		/* https://<token>@host: GitHub's token-as-user form. */
		redact_add(user);
		wipe_free(&c->url_pass);
		c->url_pass = user;
		user = NULL;
	}
	wipe_free(&user);
	wipe_free(&pass);
	ssh = is_ssh_url(clean.p);

	if (op_begin(c, &op, clean.p,
		     c->https_token ? c->https_user : (c->url_user ? c->url_user : c->https_user),
		     c->https_token ? c->https_token : c->url_pass, e) != 0) {
		buf_free(&clean);
		return -1;
	}
	cc.c = c;
	cc.branch = branch;
	op_callbacks(&op, &opts.fetch_opts.callbacks);
	opts.fetch_opts.depth = depth;
	opts.fetch_opts.download_tags = depth ? GIT_REMOTE_DOWNLOAD_TAGS_NONE : GIT_REMOTE_DOWNLOAD_TAGS_AUTO;
	opts.checkout_branch = branch;
	opts.repository_cb = clone_repo_cb;
	opts.repository_cb_payload = &cc;
	opts.remote_cb = clone_remote_cb;
	opts.remote_cb_payload = &cc;
	git_error_clear();
	rc = git_clone(&repo, clean.p, dest, &opts);
	op_end(&op);
	if (rc < 0) {
		clone_error(&op, rc, ssh, branch, e);
		op_free_msgs(&op);
		buf_free(&clean);
		return -1;
	}
	op_free_msgs(&op);
	git_repository_free(repo);
	buf_free(&clean);
	return 0;
}

/* ---- fetch one branch --------------------------------------------------------- */

int gop_fetch_refspec(struct gop_ctx *c, git_repository *repo, const char *remote_name, const char *refspec,
		      const char *what, int depth, const char *user, const char *token, struct err *e)
{
	git_fetch_options fo;
	git_remote *remote = NULL;
	git_strarray specs;
	char *spec_p = (char *)refspec;
	struct gop_op op;
	int rc;

	(void)git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	rc = git_remote_lookup(&remote, repo, remote_name);
	if (rc < 0)
		return gop_giterr(c, e, "Failed to fetch: no remote 'origin'", rc);
	specs.strings = &spec_p;
	specs.count = 1;
	if (op_begin(c, &op, git_remote_url(remote), user, token, e) != 0) {
		git_remote_free(remote);
		return -1;
	}
	op_callbacks(&op, &fo.callbacks);
	fo.depth = depth;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.update_fetchhead = 0;
	git_error_clear();
	rc = git_remote_fetch(remote, &specs, &fo, NULL);
	(void)git_remote_disconnect(remote); /* the result is already known */
	git_remote_free(remote);
	op_end(&op);
	if (rc < 0) {
		const char *d = op_detail(&op, rc);
		if (c->timed_out)
			gop_errf(e, "Failed to fetch %s: the operation timed out", what);
		else if (has(d, "Host key verification failed"))
			gop_errf(e, "Failed to fetch %s: %s", what, host_key_msg);
		else
			gop_errf(e, "Failed to fetch %s: %s", what, d);
		op_free_msgs(&op);
		return -1;
	}
	op_free_msgs(&op);
	return 0;
}

int gop_fetch_branch(struct gop_ctx *c, git_repository *repo, const char *remote_name,
		     const char *branch, int depth, const char *user, const char *token,
		     git_oid *oid_out, struct err *e)
{
	struct buf spec = BUF_INIT, tracking = BUF_INIT;
	int rc;

	if (buf_printf(&spec, "+refs/heads/%s:refs/remotes/origin/%s", branch, branch) != 0 ||
	    buf_printf(&tracking, "refs/remotes/origin/%s", branch) != 0) {
		buf_free(&spec);
		buf_free(&tracking);
		return err_set(e, "Failed to fetch: out of memory");
	}
	rc = gop_fetch_refspec(c, repo, remote_name, spec.p, branch, depth, user, token, e);
	if (rc == 0 && oid_out && git_reference_name_to_id(oid_out, repo, tracking.p) < 0)
		rc = gop_errf(e, "Failed to fetch: the remote has no branch %s", branch);
	buf_free(&spec);
	buf_free(&tracking);
	return rc;
}

/* ---- status ------------------------------------------------------------------- */

int gop_changes(struct gop_ctx *c, const char *repo_dir, size_t *count, struct err *e)
{
	git_status_options so;
	git_status_list *sl = NULL;
	git_repository *repo = NULL;
	int rc;

	(void)git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
	*count = 0;
	if (gop_repo_open(c, &repo, repo_dir, e) != 0)
		return -1;
	so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS |
		   GIT_STATUS_OPT_RENAMES_HEAD_TO_INDEX;
	rc = git_status_list_new(&sl, repo, &so);
	if (rc < 0) {
		gop_giterr(c, e, "cannot read the repository status", rc);
		git_repository_free(repo);
		return -1;
	}
	*count = git_status_list_entrycount(sl);
	git_status_list_free(sl);
	git_repository_free(repo);
	return 0;
}
