/*
 * git_test.c: `ccr-unit git/...`: the gop_ operations against
 * repositories in a temporary directory, no network, no git binary.  The
 * fixtures (temporary repositories, the in-process upload-pack for the
 * shallow clone) are in git_fx_test.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <git2.h>
#include <git2/sys/errors.h>
#include <git2/sys/transport.h>

#include "git/git_test.h"
#include "selftest/selftest.h"
#include "util/buf.h"

/* ---- cases ------------------------------------------------------------------------ */

static int t_urls(char *why, size_t whylen)
{
	char out[256], owner[64], repo[64];
	struct err e = ERR_INIT;
	struct fx f;
	int rc;

	gop_ssh_url("https://github.com/acme/widgets", 1, out, sizeof(out));
	if (strcmp(out, "git@github.com:acme/widgets.git") != 0)
		return st_fail(why, whylen, "conversion gave %s", out);
	gop_ssh_url("https://github.com/acme/widgets.git", 1, out, sizeof(out));
	if (strcmp(out, "git@github.com:acme/widgets.git") != 0)
		return st_fail(why, whylen, "conversion (.git) gave %s", out);
	gop_ssh_url("https://github.com/acme/widgets/tree/x", 1, out, sizeof(out));
	if (strcmp(out, "https://github.com/acme/widgets/tree/x") != 0)
		return st_fail(why, whylen, "deep path was converted: %s", out);
	gop_ssh_url("https://gitlab.com/acme/widgets", 1, out, sizeof(out));
	if (strcmp(out, "https://gitlab.com/acme/widgets") != 0)
		return st_fail(why, whylen, "non-GitHub URL was converted: %s", out);
	gop_ssh_url("https://github.com/acme/widgets", 0, out, sizeof(out));
	if (strcmp(out, "https://github.com/acme/widgets") != 0)
		return st_fail(why, whylen, "converted without a key");
	if (gop_github_parse("https://github.com/acme/tests.git", owner, sizeof(owner), repo, sizeof(repo), &e) != 0 ||
	    strcmp(owner, "acme") || strcmp(repo, "tests"))
		return st_fail(why, whylen, "github parse: %s/%s %s", owner, repo, e.msg);
	if (gop_github_parse("https://gitlab.com/acme/tests", owner, sizeof(owner), repo, sizeof(repo), &e) == 0 ||
	    strcmp(e.msg, "Cannot parse GitHub owner/repo from URL: https://gitlab.com/acme/tests") != 0)
		return st_fail(why, whylen, "non-GitHub test repo accepted or wrong text: %s", e.msg);
	if (!gop_has_credential("url = https://x-access-token:abc@github.com/a/b.git") ||
	    !gop_has_credential("https://user:pw@host/x") || gop_has_credential("url = https://github.com/a/b.git"))
		return st_fail(why, whylen, "credential detection is wrong");
	if ((rc = gst_fx_open(&f, why, whylen)) != 0) {
		gst_fx_close(&f);
		return rc;
	}
	f.c.allow_local = 0;
	rc = gop_clone(&f.c, "ftp://example.com/x", "main", 1, f.ws, &f.e);
	if (rc == 0 || strcmp(f.e.msg, "Invalid git repository URL format. Use SSH (git@...) or HTTPS format.") != 0)
		rc = st_fail(why, whylen, "bad URL: %s", f.e.msg);
	else
		rc = 0;
	gst_fx_close(&f);
	return rc;
}

static int t_clone_shallow(char *why, size_t whylen)
{
	static const char *const v2[] = { "README.md", "hello\n", "app.txt", "v2\n", NULL };
	static const char *const v3[] = { "README.md", "hello\n", "app.txt", "v3\n", NULL };
	char url[700], dest[700], text[64];
	git_repository *r = NULL;
	git_commit *head = NULL, *p = NULL;
	git_object *o = NULL;
	struct fx f;
	int rc;

	if ((rc = gst_fx_open(&f, why, whylen)) != 0)
		goto out;
	if (gst_bare_commit(f.bare, "main", v2, "two\n") != 0 || gst_bare_commit(f.bare, "main", v3, "three\n") != 0) {
		rc = st_fail(why, whylen, "cannot add commits");
		goto out;
	}
	if (git_transport_register("ccrst", gst_fake_transport, NULL) < 0 && git_error_last() &&
	    !strstr(git_error_last()->message, "exists")) {
		rc = st_fail(why, whylen, "transport: %s", git_error_last()->message);
		goto out;
	}
	snprintf(url, sizeof(url), "ccrst://%s", f.bare);
	snprintf(dest, sizeof(dest), "%s/shallow", f.ws);
	if (gop_clone(&f.c, url, "main", 1, dest, &f.e) != 0) {
		rc = st_fail(why, whylen, "shallow clone: %s (%s)", f.e.msg, f.c.detail);
		goto out;
	}
	if (git_repository_open(&r, dest) < 0 || git_repository_is_shallow(r) != 1) {
		rc = st_fail(why, whylen, "the clone is not shallow");
		goto out;
	}
	if (git_revparse_single(&o, r, "HEAD") < 0 || git_commit_lookup(&head, r, git_object_id(o)) < 0) {
		rc = st_fail(why, whylen, "no HEAD commit in the clone");
		goto out;
	}
	if (git_commit_parentcount(head) != 0 && git_commit_parent(&p, head, 0) == 0) {
		rc = st_fail(why, whylen, "the parent commit was downloaded (not depth 1)");
		goto out;
	}
	gst_blob_at(dest, "HEAD", "app.txt", text, sizeof(text));
	if (strcmp(text, "v3\n") != 0) {
		rc = st_fail(why, whylen, "app.txt is '%s' in the clone", text);
		goto out;
	}
	snprintf(why, whylen, "depth 1 of 3 commits");
	rc = 0;
out:
	git_error_clear();
	git_transport_unregister("ccrst");
	git_commit_free(p);
	git_commit_free(head);
	git_object_free(o);
	git_repository_free(r);
	gst_fx_close(&f);
	return rc;
}

static int t_clone_branch(char *why, size_t whylen)
{
	static const char *const dev[] = { "README.md", "dev branch\n", NULL };
	char dest[700], text[64];
	struct fx f;
	int rc;

	if ((rc = gst_fx_open(&f, why, whylen)) != 0)
		goto out;
	if (gst_bare_commit(f.bare, "dev", dev, "dev\n") != 0) {
		rc = st_fail(why, whylen, "cannot create branch dev");
		goto out;
	}
	snprintf(dest, sizeof(dest), "%s/dev", f.ws);
	if (gop_clone(&f.c, f.bare, "dev", 0, dest, &f.e) != 0) {
		rc = st_fail(why, whylen, "clone -b dev: %s", f.e.msg);
		goto out;
	}
	gst_blob_at(dest, "HEAD", "README.md", text, sizeof(text));
	if (strcmp(text, "dev branch\n") != 0) {
		rc = st_fail(why, whylen, "HEAD is not dev: README '%s'", text);
		goto out;
	}
	snprintf(dest, sizeof(dest), "%s/nobranch", f.ws);
	if (gop_clone(&f.c, f.bare, "nope", 0, dest, &f.e) == 0 || !strstr(f.e.msg, "nope")) {
		rc = st_fail(why, whylen, "missing branch: '%s'", f.e.msg);
		goto out;
	}
	rc = 0;
out:
	gst_fx_close(&f);
	return rc;
}

static int t_commit(char *why, size_t whylen)
{
	char dest[700], sha[41], head[41], text[128];
	git_repository *r = NULL;
	git_commit *c = NULL;
	git_oid id;
	struct fx f;
	int rc;

	if ((rc = gst_fx_open(&f, why, whylen)) != 0 || (rc = gst_fx_clone(&f, "repo", dest, sizeof(dest), why, whylen)) != 0)
		goto out;
	gst_put(dest, "new.txt", "agent work\n");
	gst_put(dest, "app.txt", "changed\n");
	gst_put(dest, ".env", "SECRET=1\n");
	gst_put(dest, "prompt.txt", "the prompt\n");
	gst_put(dest, ".mcp.json", "{}\n");
	gst_put(dest, ".claude/commands/x.md", "cmd\n");
	gst_put(dest, ".gitconfig", "[core]\n\tx = 1\n[user]\n\tname = Agent Smith \n\temail = agent@example.com\n");
	{
		char p[800];
		snprintf(p, sizeof(p), "%s/README.md", dest);
		unlink(p);
	}
	rc = gop_commit(&f.c, dest, "Task execution t1\n", NULL, NULL, sha, &f.e);
	if (rc != 0) {
		rc = st_fail(why, whylen, "commit: %s", f.e.msg);
		goto out;
	}
	if (strlen(sha) != 40 || gst_ref_hex(dest, "HEAD", head) != 0 || strcmp(sha, head) != 0) {
		rc = st_fail(why, whylen, "sha %s is not HEAD %s", sha, head);
		goto out;
	}
	if (gst_blob_at(dest, "HEAD", "new.txt", text, sizeof(text)) != 0 || strcmp(text, "agent work\n") ||
	    gst_blob_at(dest, "HEAD", "app.txt", text, sizeof(text)) != 0 || strcmp(text, "changed\n")) {
		rc = st_fail(why, whylen, "the agent's files were not committed");
		goto out;
	}
	if (gst_blob_at(dest, "HEAD", "README.md", text, sizeof(text)) == 0) {
		rc = st_fail(why, whylen, "the deletion was not committed");
		goto out;
	}
	if (gst_blob_at(dest, "HEAD", ".env", text, sizeof(text)) == 0 ||
	    gst_blob_at(dest, "HEAD", "prompt.txt", text, sizeof(text)) == 0 ||
	    gst_blob_at(dest, "HEAD", ".mcp.json", text, sizeof(text)) == 0 ||
	    gst_blob_at(dest, "HEAD", ".claude/commands/x.md", text, sizeof(text)) == 0) {
		rc = st_fail(why, whylen, "an excluded file was committed");
		goto out;
	}
	git_oid_fromstr(&id, sha);
	if (git_repository_open(&r, dest) < 0 || git_commit_lookup(&c, r, &id) < 0 ||
	    strcmp(git_commit_author(c)->name, "Agent Smith") || strcmp(git_commit_author(c)->email, "agent@example.com")) {
		rc = st_fail(why, whylen, "identity from .gitconfig not used: %s", c ? git_commit_author(c)->name : "?");
		goto out;
	}
	/* Nothing left but excluded files: "nothing to commit". */
	rc = gop_commit(&f.c, dest, "again\n", NULL, NULL, sha, &f.e);
	if (rc != GOP_NOTHING || strcmp(f.e.msg, "nothing to commit") != 0) {
		rc = st_fail(why, whylen, "second commit: rc %d '%s'", rc, f.e.msg);
		goto out;
	}
	/* Explicit pathspecs: exactly those. */
	gst_put(dest, "a.txt", "a\n");
	gst_put(dest, "b.txt", "b\n");
	{
		const char *const files[] = { "a.txt", NULL };
		if (gop_commit(&f.c, dest, "only a\n", files, NULL, sha, &f.e) != 0 ||
		    gst_blob_at(dest, "HEAD", "a.txt", text, sizeof(text)) != 0 ||
		    gst_blob_at(dest, "HEAD", "b.txt", text, sizeof(text)) == 0) {
			rc = st_fail(why, whylen, "explicit files: %s", f.e.msg);
			goto out;
		}
	}
	rc = 0;
out:
	git_commit_free(c);
	git_repository_free(r);
	gst_fx_close(&f);
	return rc;
}

static int t_push_ff(char *why, size_t whylen)
{
	char dest[700], sha[41], remote[41];
	struct gop_push_result pr;
	struct fx f;
	int rc;

	memset(&pr, 0, sizeof(pr));
	if ((rc = gst_fx_open(&f, why, whylen)) != 0 || (rc = gst_fx_clone(&f, "repo", dest, sizeof(dest), why, whylen)) != 0)
		goto out;
	gst_put(dest, "new.txt", "x\n");
	if (gop_commit(&f.c, dest, "work\n", NULL, NULL, sha, &f.e) != 0) {
		rc = st_fail(why, whylen, "commit: %s", f.e.msg);
		goto out;
	}
	if (gop_push(&f.c, dest, "main", GOP_STRATEGY_FAIL, &pr, &f.e) != 0) {
		rc = st_fail(why, whylen, "push: %s", f.e.msg);
		goto out;
	}
	gst_ref_hex(f.bare, "refs/heads/main", remote);
	if (!pr.pushed || strcmp(pr.sha, sha) || strcmp(remote, sha) || pr.recovery != GOP_RECOVERY_NONE) {
		rc = st_fail(why, whylen, "pushed %d sha %s remote %s local %s", pr.pushed, pr.sha, remote, sha);
		goto out;
	}
	/* B13: the clone's branch (main) to another remote branch. */
	gop_push_result_free(&pr);
	if (gop_push(&f.c, dest, "feature/x", GOP_STRATEGY_AUTO, &pr, &f.e) != 0) {
		rc = st_fail(why, whylen, "push to feature/x: %s", f.e.msg);
		goto out;
	}
	gst_ref_hex(f.bare, "refs/heads/feature/x", remote);
	if (strcmp(remote, sha) || strcmp(pr.branch, "feature/x")) {
		rc = st_fail(why, whylen, "feature/x holds %s, want %s", remote, sha);
		goto out;
	}
	rc = 0;
out:
	gop_push_result_free(&pr);
	gst_fx_close(&f);
	return rc;
}

/* Two clones; the other one pushes first. */
static int conflict_setup(struct fx *f, char *mine, char *other, size_t n, const char *other_app,
			  int other_deletes, char *why, size_t whylen)
{
	char sha[41];
	struct gop_push_result pr;
	int rc;

	if ((rc = gst_fx_clone(f, "mine", mine, n, why, whylen)) != 0 || (rc = gst_fx_clone(f, "other", other, n, why, whylen)) != 0)
		return rc;
	if (other_deletes) {
		char p[800];
		snprintf(p, sizeof(p), "%s/app.txt", other);
		unlink(p);
	} else {
		gst_put(other, "app.txt", other_app);
	}
	gst_put(other, "upstream.txt", "from upstream\n");
	memset(&pr, 0, sizeof(pr));
	if (gop_commit(&f->c, other, "upstream change\n", NULL, NULL, sha, &f->e) != 0 ||
	    gop_push(&f->c, other, "main", GOP_STRATEGY_FAIL, &pr, &f->e) != 0) {
		gop_push_result_free(&pr);
		return st_fail(why, whylen, "the other clone: %s", f->e.msg);
	}
	gop_push_result_free(&pr);
	gst_put(mine, "app.txt", "line one\nAGENT LINE\nline three\n");
	if (gop_commit(&f->c, mine, "agent change\n", NULL, NULL, sha, &f->e) != 0)
		return st_fail(why, whylen, "agent commit: %s", f->e.msg);
	return 0;
}

static int t_push_fail(char *why, size_t whylen)
{
	char mine[700], other[700];
	struct gop_push_result pr;
	struct fx f;
	int rc;

	memset(&pr, 0, sizeof(pr));
	if ((rc = gst_fx_open(&f, why, whylen)) != 0 ||
	    (rc = conflict_setup(&f, mine, other, sizeof(mine), "line one\nUPSTREAM LINE\nline three\n", 0, why, whylen)) != 0)
		goto out;
	rc = gop_push(&f.c, mine, "main", GOP_STRATEGY_FAIL, &pr, &f.e);
	if (rc == 0 || pr.pushed ||
	    strcmp(f.e.msg, "Push rejected. Remote has changes that are not in local branch. "
			    "Use conflictStrategy: \"auto\" to enable automatic recovery.") != 0) {
		rc = st_fail(why, whylen, "rc %d: '%s'", rc, f.e.msg);
		goto out;
	}
	rc = 0;
out:
	gop_push_result_free(&pr);
	gst_fx_close(&f);
	return rc;
}

static int t_push_auto(char *why, size_t whylen)
{
	char mine[700], other[700], remote[41], parent[41], upstream_before[41], text[128];
	struct gop_push_result pr;
	struct fx f;
	int rc;

	memset(&pr, 0, sizeof(pr));
	if ((rc = gst_fx_open(&f, why, whylen)) != 0 ||
	    (rc = conflict_setup(&f, mine, other, sizeof(mine), "line one\nUPSTREAM LINE\nline three\n", 0, why, whylen)) != 0)
		goto out;
	gst_ref_hex(f.bare, "refs/heads/main", upstream_before);
	if (gop_push(&f.c, mine, "main", GOP_STRATEGY_AUTO, &pr, &f.e) != 0) {
		rc = st_fail(why, whylen, "auto push: %s (%s)", f.e.msg, f.c.detail);
		goto out;
	}
	gst_ref_hex(f.bare, "refs/heads/main", remote);
	if (!pr.pushed || pr.recovery != GOP_RECOVERY_REBASE || strcmp(pr.sha, remote) ||
	    strcmp(pr.remote_sha, upstream_before)) {
		rc = st_fail(why, whylen, "pushed %d recovery %d sha %s remote %s remoteSha %s", pr.pushed,
			     (int)pr.recovery, pr.sha, remote, pr.remote_sha);
		goto out;
	}
	if (gst_parent_hex(f.bare, remote, parent) != 0 || strcmp(parent, upstream_before) != 0) {
		rc = st_fail(why, whylen, "the pushed commit is not on top of upstream");
		goto out;
	}
	gst_blob_at(f.bare, "refs/heads/main", "app.txt", text, sizeof(text));
	if (strcmp(text, "line one\nAGENT LINE\nline three\n") != 0) {
		rc = st_fail(why, whylen, "the agent's line lost: app.txt = '%s'", text);
		goto out;
	}
	if (gst_blob_at(f.bare, "refs/heads/main", "upstream.txt", text, sizeof(text)) != 0) {
		rc = st_fail(why, whylen, "upstream's other change was dropped");
		goto out;
	}
	if (pr.n_conflicts != 1 || strcmp(pr.conflict_files[0], "app.txt") != 0) {
		rc = st_fail(why, whylen, "conflict list: %zu", pr.n_conflicts);
		goto out;
	}
	if (gst_ref_hex(mine, "HEAD", text) != 0 || strcmp(text, remote) != 0) {
		rc = st_fail(why, whylen, "the local branch was not moved to the pushed commit");
		goto out;
	}
	rc = 0;
out:
	gop_push_result_free(&pr);
	gst_fx_close(&f);
	return rc;
}

static int t_push_lease(char *why, size_t whylen)
{
	char mine[700], other[700], remote[41], upstream_before[41], local[41], text[128];
	struct gop_push_result pr;
	struct fx f;
	int rc;

	memset(&pr, 0, sizeof(pr));
	if ((rc = gst_fx_open(&f, why, whylen)) != 0 ||
	    (rc = conflict_setup(&f, mine, other, sizeof(mine), NULL, 1, why, whylen)) != 0)
		goto out;
	gst_ref_hex(f.bare, "refs/heads/main", upstream_before);
	gst_ref_hex(mine, "HEAD", local);
	if (gop_push(&f.c, mine, "main", GOP_STRATEGY_AUTO, &pr, &f.e) != 0) {
		rc = st_fail(why, whylen, "auto push: %s (%s)", f.e.msg, f.c.detail);
		goto out;
	}
	gst_ref_hex(f.bare, "refs/heads/main", remote);
	if (!pr.pushed || pr.recovery != GOP_RECOVERY_FORCE_WITH_LEASE || strcmp(pr.sha, remote) ||
	    strcmp(remote, local) || strcmp(pr.remote_sha, upstream_before)) {
		rc = st_fail(why, whylen, "recovery %d sha %s remote %s local %s", (int)pr.recovery, pr.sha, remote, local);
		goto out;
	}
	if (pr.n_conflicts < 1 || strcmp(pr.conflict_files[0], "app.txt") != 0) {
		rc = st_fail(why, whylen, "conflict files: %zu", pr.n_conflicts);
		goto out;
	}
	gst_blob_at(f.bare, "refs/heads/main", "app.txt", text, sizeof(text));
	if (strcmp(text, "line one\nAGENT LINE\nline three\n") != 0) {
		rc = st_fail(why, whylen, "the agent's file is not on the remote");
		goto out;
	}
	rc = 0;
out:
	gop_push_result_free(&pr);
	gst_fx_close(&f);
	return rc;
}

/* Does any file under dir contain needle? */
static const char *g_needle;
static int g_found;
static char g_where[512];

static int scan_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	FILE *fp;
	struct buf b = BUF_INIT;

	(void)ftw;
	if (flag != FTW_F || !S_ISREG(sb->st_mode))
		return 0;
	fp = fopen(path, "r");
	if (!fp)
		return 0;
	for (;;) {
		char tmp[4096];
		size_t n = fread(tmp, 1, sizeof(tmp), fp);
		if (n == 0 || buf_add(&b, tmp, n) != 0)
			break;
	}
	fclose(fp);
	if (b.p && memmem(b.p, b.len, g_needle, strlen(g_needle))) {
		g_found = 1;
		snprintf(g_where, sizeof(g_where), "%s", path);
	}
	buf_free(&b);
	return 0;
}

/* gop_tests_setup registered tests/ in .gitmodules with the plain URL (no token). */
static int gitmodules_plain(const char *dest, const char *tbare, char *why, size_t whylen)
{
	char text[512], p[800];
	FILE *fp;
	size_t n;

	snprintf(p, sizeof(p), "%s/.gitmodules", dest);
	fp = fopen(p, "r");
	n = fp ? fread(text, 1, sizeof(text) - 1, fp) : 0;
	text[n] = 0;
	if (fp)
		fclose(fp);
	if (!strstr(text, "[submodule \"tests\"]") || !strstr(text, tbare))
		return st_fail(why, whylen, ".gitmodules lacks the plain URL: %s", text);
	return 0;
}

/* A .gitmodules holding a credential is never committed. */
static int leak_never_committed(struct fx *f, const char *dest, char *why, size_t whylen)
{
	const char *const files[] = { ".gitmodules", "other.txt", NULL };
	char sha[41], text[512];

	gst_put(dest, ".gitmodules", "[submodule \"tests\"]\n\tpath = tests\n\turl = https://x-access-token:ghs_leak0123456789@github.com/acme/e2e-tests.git\n");
	gst_put(dest, "other.txt", "x\n");
	if (gop_commit(&f->c, dest, "with leak\n", NULL, NULL, sha, &f->e) != 0 ||
	    gst_blob_at(dest, "HEAD", ".gitmodules", text, sizeof(text)) != 0 || strstr(text, "ghs_leak"))
		return st_fail(why, whylen, "a credential .gitmodules was committed (%s)", f->e.msg);
	gst_put(dest, "other.txt", "y\n");
	if (gop_commit(&f->c, dest, "explicit\n", files, NULL, sha, &f->e) != 0 ||
	    gst_blob_at(dest, "HEAD", ".gitmodules", text, sizeof(text)) != 0 || strstr(text, "ghs_leak"))
		return st_fail(why, whylen, "an explicit .gitmodules with a credential was committed");
	return 0;
}

static int t_gitmodules(char *why, size_t whylen)
{
	static const char *const tfiles[] = { "spec.txt", "test one\n", NULL };
	static const char token[] = "ghs_selftestINSTALLATIONtoken0123456789";
	char dest[700], gh[700], tbare[800], sha[41], text[512], tests_dir[800];
	struct gop_tests_repo t;
	struct gop_pr pr;
	struct fx f;
	int rc;

	if ((rc = gst_fx_open(&f, why, whylen)) != 0 || (rc = gst_fx_clone(&f, "repo", dest, sizeof(dest), why, whylen)) != 0)
		goto out;
	snprintf(gh, sizeof(gh), "%s/gh", f.tmp);
	snprintf(tbare, sizeof(tbare), "%s/acme/e2e-tests.git", gh);
	mkdir(gh, 0755);
	snprintf(text, sizeof(text), "%s/acme", gh);
	mkdir(text, 0755);
	if (gst_bare_init(tbare) != 0 || gst_bare_commit(tbare, "main", tfiles, "tests\n") != 0) {
		rc = st_fail(why, whylen, "cannot create the test repo");
		goto out;
	}
	f.c.github_url = gh;
	memset(&t, 0, sizeof(t));
	t.url = "https://github.com/acme/e2e-tests";
	t.branch = "main";
	t.token = token;
	if (gop_tests_setup(&f.c, dest, &t, &f.e) != 0) {
		rc = st_fail(why, whylen, "tests setup: %s (%s)", f.e.msg, f.c.detail);
		goto out;
	}
	snprintf(tests_dir, sizeof(tests_dir), "%s/tests/spec.txt", dest);
	if (access(tests_dir, F_OK) != 0) {
		rc = st_fail(why, whylen, "tests/spec.txt was not checked out");
		goto out;
	}
	if ((rc = gitmodules_plain(dest, tbare, why, whylen)) != 0)
		goto out;
	/* The agent writes a test; the parent commits; the submodule publishes. */
	snprintf(tests_dir, sizeof(tests_dir), "%s/tests", dest);
	gst_put(tests_dir, "new_test.txt", "new test\n");
	if (gop_commit(&f.c, dest, "parent\n", NULL, NULL, sha, &f.e) != 0) {
		rc = st_fail(why, whylen, "parent commit: %s", f.e.msg);
		goto out;
	}
	if (gst_blob_at(dest, "HEAD", ".gitmodules", text, sizeof(text)) != 0 || strstr(text, token)) {
		rc = st_fail(why, whylen, ".gitmodules not committed, or with the token");
		goto out;
	}
	t.existing_pr_branch = "ccr-selftest-pr";
	memset(&pr, 0, sizeof(pr));
	rc = gop_tests_publish(&f.c, dest, &t, "0123456789abcdef", "slug", "Name", &pr, &f.e);
	if (rc != 0) {
		rc = st_fail(why, whylen, "publish: %s (%s)", f.e.msg, f.c.detail);
		goto out;
	}
	if (gst_blob_at(tbare, "refs/heads/ccr-selftest-pr", "new_test.txt", text, sizeof(text)) != 0) {
		rc = st_fail(why, whylen, "the test commit did not reach the test repo");
		goto out;
	}
	if ((rc = leak_never_committed(&f, dest, why, whylen)) != 0)
		goto out;
	/* Nowhere on disk (objects are compressed, so also check the trees). */
	g_needle = token;
	g_found = 0;
	nftw(f.tmp, scan_cb, 16, FTW_PHYS);
	if (g_found) {
		rc = st_fail(why, whylen, "the token is in %s", g_where);
		goto out;
	}
	rc = 0;
out:
	gst_fx_close(&f);
	return rc;
}

const struct st_case git_tests[] = {
	{ "urls", t_urls },
	{ "clone-shallow", t_clone_shallow },
	{ "clone-branch", t_clone_branch },
	{ "commit", t_commit },
	{ "push-ff", t_push_ff },
	{ "push-fail", t_push_fail },
	{ "push-auto", t_push_auto },
	{ "push-lease", t_push_lease },
	{ "gitmodules", t_gitmodules },
	{ NULL, NULL },
};
