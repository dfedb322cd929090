/*
 * git_tests.c: the external test repo (`externalTestRepo`, spec §8.5 and
 * §11.2): the `tests` submodule and its pull request (see git.h).
 *
 * The seed recorded https://x-access-token:<token>@github.com/... as the
 * submodule URL, so the token landed in .gitmodules and, through the
 * parent's commit, on the remote (S3).  Here the recorded URL, the
 * parent's submodule.tests.url and the submodule's origin are all the
 * plain https URL, and the token only ever reaches libgit2's credentials
 * callback (and the Authorization header of the pull-request call).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>
#include <git2.h>
#include <git2/sys/errors.h>

#include "http/client.h"
#include "git/git.h"
#include "git/git_int.h"
#include "util/buf.h"
#include "util/redact.h"

#define TESTS_PATH "tests"
#define TOKEN_USER "x-access-token"

static const char dir_exists_msg[] =
	"Cannot add submodule at 'tests' \xe2\x80\x94 a regular directory already exists there. "
	"The external test repo requires that 'tests/' does not already exist as a regular directory.";

int gop_github_parse(const char *url, char *owner, size_t olen, char *repo, size_t rlen, struct err *e)
{
	const char *p = url ? strstr(url, "github.com/") : NULL;

	/* github\.com/([^/]+)/([^/]+?)(\.git)?$: the last "github.com/" whose
	 * rest is exactly two segments. */
	while (p) {
		const char *o = p + strlen("github.com/"), *slash = strchr(o, '/'), *r, *end;
		if (slash && slash > o && !strchr(slash + 1, '/') && slash[1]) {
			r = slash + 1;
			end = r + strlen(r);
			if (end - r > 4 && strcmp(end - 4, ".git") == 0)
				end -= 4;
			if ((size_t)(slash - o) < olen && (size_t)(end - r) < rlen && end > r) {
				snprintf(owner, olen, "%.*s", (int)(slash - o), o);
				snprintf(repo, rlen, "%.*s", (int)(end - r), r);
				return 0;
			}
		}
		p = strstr(p + 1, "github.com/");
	}
	return gop_errf(e, "Cannot parse GitHub owner/repo from URL: %s", url ? url : "(none)");
}

static int plain_url(struct gop_ctx *c, const struct gop_tests_repo *t, struct buf *out, char *owner,
		     size_t olen, char *repo, size_t rlen, struct err *e)
{
	const char *base = c->github_url ? c->github_url : "https://github.com";
	size_t bl = strlen(base);

	if (gop_github_parse(t->url, owner, olen, repo, rlen, e) != 0)
		return -1;
	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	if (buf_printf(out, "%.*s/%s/%s.git", (int)bl, base, owner, repo) != 0)
		return err_set(e, "git: out of memory");
	return 0;
}

static int gitmodules_registered(const char *repo_dir)
{
	char path[4096];
	struct buf b = BUF_INIT;
	int found = 0;

	snprintf(path, sizeof(path), "%s/.gitmodules", repo_dir);
	if (gop_read_file(path, &b, 4u << 20) == 0 && b.p)
		found = strstr(b.p, "[submodule \"tests\"]") != NULL;
	buf_free(&b);
	return found;
}

/* submodule.tests.url in the parent's .git/config := url. */
static int set_local_url(struct gop_ctx *c, git_repository *repo, const char *url, struct err *e)
{
	git_config *cfg = NULL, *local = NULL;
	int rc;

	if ((rc = git_repository_config(&cfg, repo)) < 0 ||
	    (rc = git_config_open_level(&local, cfg, GIT_CONFIG_LEVEL_LOCAL)) < 0 ||
	    (rc = git_config_set_string(local, "submodule.tests.url", url)) < 0)
		gop_giterr(c, e, "cannot set submodule.tests.url", rc);
	git_config_free(local);
	git_config_free(cfg);
	return rc < 0 ? -1 : 0;
}

/* origin of the submodule repository := url (created when missing). */
static int set_origin(struct gop_ctx *c, git_repository *sub, const char *url, struct err *e)
{
	git_remote *r = NULL;
	int rc = git_remote_lookup(&r, sub, "origin");

	if (rc == 0) {
		git_remote_free(r);
		rc = git_remote_set_url(sub, "origin", url);
	} else if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		rc = git_remote_create(&r, sub, "origin", url);
		git_remote_free(r);
	}
	if (rc < 0)
		return gop_giterr(c, e, "cannot set the submodule's origin", rc);
	return 0;
}

static int fetch_checkout(struct gop_ctx *c, git_repository *sub, const char *branch, int depth,
			  const char *token, struct err *e)
{
	git_oid oid;

	if (gop_fetch_branch(c, sub, "origin", branch, depth, TOKEN_USER, token, &oid, e) != 0)
		return -1;
	return gop_checkout_branch(c, sub, branch, &oid, e);
}

/* gop_tests_setup's two cases return 0, -1 on a failure the caller words
 * as "Failed to initialize submodule", or -2 when e is already final. */

/* No submodule registered yet: git submodule add -b <branch>. */
static int add_tests(struct gop_ctx *c, git_repository *repo, const char *path, const char *url,
		     const char *branch, const struct gop_tests_repo *t, git_submodule **sm,
		     git_repository **sub, struct err *e)
{
	struct stat st;
	int r;

	if (lstat(path, &st) == 0)
		return err_set(e, "%s", dir_exists_msg), -2;
	r = git_submodule_add_setup(sm, repo, url, TESTS_PATH, 1);
	if (r == GIT_EEXISTS)
		return err_set(e, "%s", dir_exists_msg), -2;
	if (r < 0)
		return gop_giterr(c, e, "cannot add the submodule", r);
	if ((r = git_submodule_open(sub, *sm)) < 0 || (r = gop_repo_attach(c, *sub)) < 0)
		return gop_giterr(c, e, "cannot open the submodule", r);
	if (fetch_checkout(c, *sub, branch, t->depth, t->token, e) != 0)
		return -1;
	if ((r = git_submodule_set_branch(repo, TESTS_PATH, branch)) < 0 ||
	    (r = git_submodule_add_finalize(*sm)) < 0)
		return gop_giterr(c, e, "cannot record the submodule", r);
	if (t->existing_pr_branch && fetch_checkout(c, *sub, t->existing_pr_branch, t->depth, t->token, e) != 0)
		return -1;
	return 0;
}

/* A submodule registered in .gitmodules: init, open (or create) it and
 * check out the branch. */
static int reuse_tests(struct gop_ctx *c, git_repository *repo, const char *url, const char *branch,
		       const struct gop_tests_repo *t, git_submodule **sm, git_repository **sub, struct err *e)
{
	int r;

	if ((r = git_submodule_lookup(sm, repo, TESTS_PATH)) < 0 || (r = git_submodule_init(*sm, 1)) < 0)
		return gop_giterr(c, e, "cannot find the registered submodule", r);
	/* Whatever .gitmodules says, fetch from the plain URL. */
	if (set_local_url(c, repo, url, e) != 0)
		return -1;
	git_submodule_free(*sm);
	*sm = NULL;
	if ((r = git_submodule_lookup(sm, repo, TESTS_PATH)) < 0)
		return gop_giterr(c, e, "cannot find the registered submodule", r);
	r = git_submodule_open(sub, *sm);
	if (r < 0) {
		git_error_clear();
		r = git_submodule_repo_init(sub, *sm, 1);
	}
	if (r < 0 || (r = gop_repo_attach(c, *sub)) < 0)
		return gop_giterr(c, e, "cannot open the submodule", r);
	if (set_origin(c, *sub, url, e) != 0)
		return -1;
	return fetch_checkout(c, *sub, t->existing_pr_branch ? t->existing_pr_branch : branch, t->depth, t->token,
			      e) != 0 ? -1 : 0;
}

int gop_tests_setup(struct gop_ctx *c, const char *repo_dir, const struct gop_tests_repo *t,
		    struct err *e)
{
	git_repository *repo = NULL, *sub = NULL;
	git_submodule *sm = NULL;
	struct buf url = BUF_INIT, path = BUF_INIT;
	char owner[256], name[256];
	const char *branch = t->branch && *t->branch ? t->branch : "main";
	int rc = -1, r;

	c->ssh_started = c->ssh_killed = 0;
	c->detail[0] = 0;
	if (t->token)
		redact_add(t->token);
	if (plain_url(c, t, &url, owner, sizeof(owner), name, sizeof(name), e) != 0)
		return -1;
	if (!gop_valid_branch(branch) || (t->existing_pr_branch && !gop_valid_branch(t->existing_pr_branch))) {
		gop_errf(e, "Failed to initialize submodule: invalid branch name");
		goto out;
	}
	if (gop_repo_open(c, &repo, repo_dir, e) != 0)
		goto fail;
	if (buf_printf(&path, "%s/%s", repo_dir, TESTS_PATH) != 0) {
		err_set(e, "git: out of memory");
		goto out;
	}

	if (!gitmodules_registered(repo_dir))
		r = add_tests(c, repo, path.p, url.p, branch, t, &sm, &sub, e);
	else
		r = reuse_tests(c, repo, url.p, branch, t, &sm, &sub, e);
	if (r == -2)
		goto out;
	if (r != 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	if (strstr(e->msg, "already exists") && !strstr(e->msg, "submodule"))
		err_set(e, "%s", dir_exists_msg);
	else
		err_prefix(e, "Failed to initialize submodule");
out:
	git_repository_free(sub);
	git_submodule_free(sm);
	git_repository_free(repo);
	buf_free(&url);
	buf_free(&path);
	return rc;
}

/* ---- publish: commit, push, pull request ----------------------------------------- */

/* The pull request's JSON body (malloc'd), or NULL when out of memory. */
static char *pr_request_json(const struct gop_tests_repo *t, const char *head_branch, const char *task_id,
			     const char *label)
{
	struct buf title = BUF_INIT, body = BUF_INIT;
	cJSON *req = cJSON_CreateObject();
	char *json = NULL;

	if (req && buf_printf(&title, "[Bugzy] %s - %.8s", label, task_id) == 0 &&
	    buf_printf(&body,
		       "## Summary\n\nAuto-generated by Bugzy AI task execution.\n\n**Task:** %s\n"
		       "**Execution ID:** %s\n\n---\n\xf0\x9f\xa4\x96 Generated with [Bugzy](https://bugzy.dev)",
		       label, task_id) == 0 &&
	    cJSON_AddStringToObject(req, "title", title.p) && cJSON_AddStringToObject(req, "body", body.p) &&
	    cJSON_AddStringToObject(req, "head", head_branch) &&
	    (!t->branch || !*t->branch || cJSON_AddStringToObject(req, "base", t->branch)))
		json = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	buf_free(&title);
	buf_free(&body);
	return json;
}

/* GitHub's answer to a created pull request: its html_url and number. */
static int pr_answer(const struct hc_response *rs, struct gop_pr *pr, struct err *e)
{
	cJSON *resp = cJSON_ParseWithLength(rs->body.p ? rs->body.p : "", rs->body.len);
	const cJSON *hu = cJSON_GetObjectItemCaseSensitive(resp, "html_url");
	const cJSON *num = cJSON_GetObjectItemCaseSensitive(resp, "number");
	int rc = -1;

	if (!cJSON_IsString(hu) || !cJSON_IsNumber(num)) {
		err_set(e, "Failed to create pull request: GitHub's answer has no html_url/number");
	} else {
		pr->created = 1;
		snprintf(pr->url, sizeof(pr->url), "%s", hu->valuestring);
		pr->number = (long)num->valuedouble;
		rc = 0;
	}
	cJSON_Delete(resp);
	return rc;
}

static int create_pr(struct gop_ctx *c, const struct gop_tests_repo *t, const char *owner, const char *name,
		     const char *head_branch, const char *task_id, const char *label, struct gop_pr *pr,
		     struct err *e)
{
	struct hc_request rq;
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT, auth = BUF_INIT;
	const char *api = c->github_api ? c->github_api : "https://api.github.com";
	const char *headers[6];
	char *json = NULL;
	size_t al = strlen(api);
	int rc = -1;

	while (al > 0 && api[al - 1] == '/')
		al--;
	if (buf_printf(&url, "%.*s/repos/%s/%s/pulls", (int)al, api, owner, name) != 0 ||
	    buf_printf(&auth, "Authorization: Bearer %s", t->token ? t->token : "") != 0 ||
	    !(json = pr_request_json(t, head_branch, task_id, label))) {
		err_set(e, "Failed to create pull request: out of memory");
		goto out;
	}
	headers[0] = auth.p;
	headers[1] = "Accept: application/vnd.github+json";
	headers[2] = "Content-Type: application/json";
	headers[3] = "X-GitHub-Api-Version: 2022-11-28";
	headers[4] = "User-Agent: bugzy-cloudrun-claude-code";
	headers[5] = NULL;
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.url = url.p;
	rq.headers = headers;
	rq.body = json;
	rq.body_len = strlen(json);
	rq.retry = HC_RETRY_UNSENT;
	rq.allow_http = strncmp(api, "http://", 7) == 0; /* an explicit CCR_GITHUB_API override */
	rq.timeout_ms = c->timeout_ms;
	if (hc_do(&rq, &rs, e) != 0) {
		err_prefix(e, "Failed to create pull request");
		goto out;
	}
	if (rs.status < 200 || rs.status > 299) {
		gop_errf(e, "Failed to create pull request: GitHub API returned %ld: %.300s", rs.status,
			 rs.body.p ? rs.body.p : "");
		e->http = (int)rs.status;
		goto out;
	}
	rc = pr_answer(&rs, pr, e);
out:
	free(json);
	hc_response_free(&rs);
	buf_free(&url);
	/* the header held the token */
	if (auth.p)
		memset(auth.p, 0, auth.len);
	buf_free(&auth);
	return rc;
}

/* Put the submodule back on the commit the parent records (`git submodule
 * update --init tests`), so the parent's commit keeps the old gitlink. */
static int have_commit(git_repository *r, const git_oid *id)
{
	git_commit *cm = NULL;
	int ok = git_commit_lookup(&cm, r, id) == 0;

	git_commit_free(cm);
	git_error_clear();
	return ok;
}

/* The recorded commit may not be in a shallow submodule that was fetched
 * at another branch: fetch the base branch, then the commit itself. */
static int fetch_gitlink(struct gop_ctx *c, git_repository *sub, const git_oid *id,
			 const struct gop_tests_repo *t, struct err *e)
{
	const char *branch = t->branch && *t->branch ? t->branch : "main";
	char hex[GIT_OID_MAX_HEXSIZE + 1];

	if (have_commit(sub, id))
		return 0;
	if (gop_fetch_branch(c, sub, "origin", branch, t->depth, TOKEN_USER, t->token, NULL, e) == 0 &&
	    have_commit(sub, id))
		return 0;
	git_oid_tostr(hex, sizeof(hex), id);
	if (gop_fetch_refspec(c, sub, "origin", hex, hex, t->depth, TOKEN_USER, t->token, e) == 0 &&
	    have_commit(sub, id))
		return 0;
	return gop_errf(e, "cannot reset the submodule: the recorded commit %s cannot be fetched (%s)", hex, e->msg);
}

static int reset_to_gitlink(struct gop_ctx *c, const char *repo_dir, const struct gop_tests_repo *t,
			    struct err *e)
{
	git_repository *repo = NULL, *sub = NULL;
	git_submodule *sm = NULL;
	git_commit *commit = NULL;
	git_checkout_options co;
	const git_oid *id;
	int rc;

	(void)git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	if (gop_repo_open(c, &repo, repo_dir, e) != 0)
		return -1;
	if ((rc = git_submodule_lookup(&sm, repo, TESTS_PATH)) < 0 || (rc = git_submodule_open(&sub, sm)) < 0) {
		gop_giterr(c, e, "cannot open the submodule", rc);
		goto out;
	}
	id = git_submodule_index_id(sm);
	if (!id)
		id = git_submodule_head_id(sm);
	if (!id) {
		rc = err_set(e, "the parent repository records no commit for the submodule");
		goto out;
	}
	if (fetch_gitlink(c, sub, id, t, e) != 0) {
		rc = -1;
		goto out;
	}
	if ((rc = git_commit_lookup(&commit, sub, id)) < 0 ||
	    (rc = git_checkout_tree(sub, (const git_object *)commit, &co)) < 0 ||
	    (rc = git_repository_set_head_detached(sub, id)) < 0)
		gop_giterr(c, e, "cannot reset the submodule to the recorded commit", rc);
out:
	git_commit_free(commit);
	git_repository_free(sub);
	git_submodule_free(sm);
	git_repository_free(repo);
	return rc < 0 ? -1 : 0;
}

/* The tests/ directory: GOP_NOTHING when absent or unchanged, 0 when it
 * has changes to publish, -1 on an error. */
static int tests_changed(struct gop_ctx *c, const char *dir, struct err *e)
{
	size_t changes = 0;
	struct stat st;

	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return GOP_NOTHING;
	if (gop_changes(c, dir, &changes, e) != 0)
		return -1;
	return changes == 0 ? GOP_NOTHING : 0;
}

/* The branch the tests go to (existingPrBranch, else bugzy/<slug>-<id>)
 * and the commit message. */
static int name_branch(const struct gop_tests_repo *t, const char *task_id, const char *task_slug,
		       const char *task_name, struct buf *branch, struct buf *msg, struct err *e)
{
	int r;

	if (t->existing_pr_branch)
		r = buf_adds(branch, t->existing_pr_branch);
	else
		r = buf_printf(branch, "bugzy/%s-%.8s", task_slug && *task_slug ? task_slug : "task", task_id);
	if (r != 0 || buf_printf(msg, "%s\n\n\xf0\x9f\xa4\x96 Generated by Bugzy AI\nExecution: %s",
				 task_name && *task_name ? task_name : "Task execution", task_id) != 0)
		return err_set(e, "git: out of memory");
	if (!gop_valid_branch(branch->p))
		return gop_errf(e, "'%s' is not a valid branch name", branch->p);
	return 0;
}

/* git checkout -B <branch>: the branch at HEAD, the tree untouched
 * (with existingPrBranch, HEAD is normally that branch already). */
static int checkout_b(struct gop_ctx *c, git_repository *sub, const char *branch, struct err *e)
{
	git_reference *ref = NULL;
	struct buf full = BUF_INIT;
	git_oid head;
	int r = 0, rc = 0;

	if ((r = git_reference_name_to_id(&head, sub, "HEAD")) < 0 ||
	    buf_printf(&full, "refs/heads/%s", branch) != 0 ||
	    (r = git_reference_create(&ref, sub, full.p, &head, 1, "ccr: checkout -b")) < 0 ||
	    (r = git_repository_set_head(sub, full.p)) < 0)
		rc = gop_giterr(c, e, "cannot create the branch in tests/", r);
	git_reference_free(ref);
	buf_free(&full);
	return rc;
}

/* push -u: the local branch tracks origin/<branch>. */
static int set_upstream(struct gop_ctx *c, git_repository *sub, const char *branch, struct err *e)
{
	git_reference *lb = NULL;
	struct buf up = BUF_INIT;
	int r = 0, rc = 0;

	if ((r = git_branch_lookup(&lb, sub, branch, GIT_BRANCH_LOCAL)) < 0 ||
	    buf_printf(&up, "origin/%s", branch) != 0 ||
	    (r = git_branch_set_upstream(lb, up.p)) < 0)
		rc = gop_giterr(c, e, "pushed, but cannot set the upstream branch", r);
	git_reference_free(lb);
	buf_free(&up);
	return rc;
}

int gop_tests_publish(struct gop_ctx *c, const char *repo_dir, const struct gop_tests_repo *t,
		      const char *task_id, const char *task_slug, const char *task_name,
		      struct gop_pr *pr, struct err *e)
{
	git_repository *sub = NULL;
	struct buf url = BUF_INIT, dir = BUF_INIT, branch = BUF_INIT, msg = BUF_INIT;
	char owner[256], name[256];
	const char *label = task_name && *task_name ? task_name : task_slug && *task_slug ? task_slug : "task";
	git_oid head, pushed;
	int rc = -1, r;

	memset(pr, 0, sizeof(*pr));
	c->ssh_started = c->ssh_killed = 0;
	c->detail[0] = 0;
	if (!task_id)
		task_id = "";
	if (t->token)
		redact_add(t->token);
	if (plain_url(c, t, &url, owner, sizeof(owner), name, sizeof(name), e) != 0)
		return -1;
	if (buf_printf(&dir, "%s/%s", repo_dir, TESTS_PATH) != 0) {
		err_set(e, "git: out of memory");
		goto out;
	}
	if ((r = tests_changed(c, dir.p, e)) != 0) {
		rc = r;
		goto out;
	}
	if (name_branch(t, task_id, task_slug, task_name, &branch, &msg, e) != 0)
		goto out;
	if (gop_repo_open(c, &sub, dir.p, e) != 0 || set_origin(c, sub, url.p, e) != 0)
		goto out;
	if (checkout_b(c, sub, branch.p, e) != 0 || gop_stage(c, sub, NULL, NULL, e) != 0)
		goto out;
	r = gop_commit_index(c, sub, dir.p, msg.p, &head, e);
	if (r == GOP_NOTHING) {
		rc = GOP_NOTHING;
		goto out;
	}
	if (r != 0)
		goto out;
	r = gop_push_once(c, sub, "HEAD", branch.p, 0, NULL, TOKEN_USER, t->token, &pushed, e);
	if (r == 1) {
		gop_errf(e, "Failed to push: the remote rejected %s (%s)", branch.p, c->detail);
		goto out;
	}
	if (r != 0)
		goto out;
	if (set_upstream(c, sub, branch.p, e) != 0)
		goto out;
	snprintf(pr->branch, sizeof(pr->branch), "%s", branch.p);
	snprintf(pr->repo, sizeof(pr->repo), "%s/%s", owner, name);
	git_repository_free(sub);
	sub = NULL;
	if (!t->existing_pr_branch &&
	    create_pr(c, t, owner, name, branch.p, task_id, label, pr, e) != 0)
		goto out;
	if (reset_to_gitlink(c, repo_dir, t, e) != 0)
		goto out;
	rc = 0;
out:
	git_repository_free(sub);
	buf_free(&url);
	buf_free(&dir);
	buf_free(&branch);
	buf_free(&msg);
	return rc;
}
