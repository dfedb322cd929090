/*
 * git.c: the context, shared helpers, URLs, clone, fetch and status.  The
 * SSH policy (known hosts, ssh command) lives in git_ssh.c, network
 * operations (deadline, watchdog, ssh children, callbacks, error mapping)
 * in git_op.c, commit in git_commit.c, push in git_push.c, the external
 * test repo in git_tests.c (see git.h for the API, git_int.h for what
 * these files share).
 *
 * HTTPS cannot be interrupted from another thread; there the deadline is
 * enforced by the progress callbacks (a transfer that keeps sending) and
 * libgit2's socket timeouts, set per operation (one that stops sending).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <git2/sys/errors.h>

#include "git/git.h"
#include "git/git_int.h"
#include "net/netinit.h"
#include "util/fdio.h"
#include "util/hex.h"
#include "util/redact.h"
#include "util/clock.h"

/* ---- small helpers ------------------------------------------------------ */

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

const char *gop_git_msg(void)
{
	const git_error *ge = git_error_last();

	return ge && ge->message && ge->message[0] ? ge->message : "unknown libgit2 error";
}

int gop_giterr(struct gop_ctx *c, struct err *e, const char *what, int rc)
{
	struct buf d = BUF_INIT;

	(void)rc;
	if (buf_adds(&d, gop_git_msg()) == 0 && redact_apply(&d) == 0 && d.p && c)
		snprintf(c->detail, sizeof(c->detail), "%s", d.p);
	gop_errf(e, "%s: %s", what, gop_git_msg());
	buf_free(&d);
	return -1;
}

/* Append s to b quoted for /bin/sh: '...' with ' as '\''. */
int gop_sh_quote(struct buf *b, const char *s)
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

int gop_write_file(const char *path, const char *data, size_t n, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return err_set(e, "cannot write %s: %s", path, strerror(errno));
	if (fd_write_all(fd, data, n) != 0) {
		err_set(e, "cannot write %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) != 0)
		return err_set(e, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

/* Read up to cap bytes of a file into b (missing file: empty). */
int gop_read_file(const char *path, struct buf *b, size_t cap)
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

void gop_path(char *out, size_t n, const struct gop_ctx *c, const char *name)
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
void gop_url_host(const char *url, char *out, size_t n)
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
static char *decode(const char *s, size_t n)
{
	char *o = malloc(n + 1);
	size_t i, j = 0;

	if (!o)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hex_digit(s[i + 1]) >= 0 &&
		    hex_digit(s[i + 2]) >= 0) {
			o[j++] = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
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

int gop_ctx_init(struct gop_ctx *c, const char *workspace, const struct gop_settings *set, struct err *e)
{
	static const struct gop_settings none;
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
	if (!set)
		set = &none;
	v = set->timeout_s;
	if (v && *v) {
		char *end;
		long s = strtol(v, &end, 10);
		if (*end || s <= 0 || s > 86400)
			return err_set(e, "CCR_GIT_TIMEOUT_SECONDS must be a number of seconds (1..86400), not '%s'", v);
		c->timeout_ms = s * 1000;
	}
	v = set->known_hosts;
	c->known_hosts_file = v && *v ? v : NULL;
	v = set->ssh_insecure;
	c->ssh_insecure = v && strcmp(v, "1") == 0;
	v = set->github_url;
	c->github_url = v && *v ? v : "https://github.com";
	v = set->github_api;
	c->github_api = v && *v ? v : "https://api.github.com";
	/* libgit2 prefers GIT_SSH over core.sshCommand; gop's command must win. */
	if (set->git_ssh)
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

/* Credentials written into the clone URL (user:pass@, or a lone token as
 * the user) become the context's for later pushes, redacted; user and pass
 * (malloc'd) are taken over or wiped. */
static void keep_url_creds(struct gop_ctx *c, char *user, char *pass)
{
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
	keep_url_creds(c, user, pass);
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
		op_clone_error(&op, rc, ssh, branch, e);
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
		op_fetch_error(&op, rc, what, e);
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

