/*
 * git_push.c: push HEAD to refs/heads/<branch> on origin, with the seed's
 * conflict strategies done right (see git.h; fixes B12, B13).
 *
 * Recovery with strategy "auto" uses libgit2's in-memory rebase: each
 * local commit is merged with git_merge_trees(ancestor = its parent,
 * ours = the upstream-based head, theirs = the commit being replayed), so
 * GIT_MERGE_FILE_FAVOR_THEIRS keeps the agent's hunks where both sides
 * changed the same lines (the seed's `rebase -X ours` kept upstream's).
 * Nothing touches the working tree until the replay is complete; then the
 * local branch moves to the result and the tree is checked out (SAFE, so
 * uncommitted files the commit left out survive).  When a commit cannot
 * be replayed (tree conflicts: modify/delete, rename/rename, ...), the
 * original commits are force-pushed with a lease: the push connection's
 * ref advertisement must still show the SHA that was fetched, and
 * receive-pack checks that old value again when it updates the ref.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>
#include <git2/sys/errors.h>

#include "git/git.h"
#include "git/git_int.h"
#include "util/buf.h"

static const char rejected_msg[] =
	"Push rejected. Remote has changes that are not in local branch. "
	"Use conflictStrategy: \"auto\" to enable automatic recovery.";

static int looks_rejected(const char *s)
{
	return strstr(s, "non-fast-forward") || strstr(s, "fetch first") || strstr(s, "rejected") ||
	       strstr(s, "not present locally") || strstr(s, "non-fastforwardable");
}

/* What git_remote_push's rc and the remote's report mean: 0 pushed (the
 * pushed commit in *pushed), 1 rejected as not a fast-forward (the
 * caller may recover), -1 failed (e set). */
static int push_outcome(struct gop_ctx *c, git_repository *repo, struct gop_op *op, int rc, int force,
			const char *dst, git_oid *pushed, struct err *e)
{
	if (rc == GIT_ENONFASTFORWARD && !force) {
		op_detail(op, rc);
		return 1;
	}
	if (rc < 0) {
		if (op->lease_broken)
			gop_errf(e, "Failed to push: %s", op_detail(op, rc));
		else
			op_push_error(op, rc, e);
		return -1;
	}
	if (op->push_rejected) {
		snprintf(c->detail, sizeof(c->detail), "%s", op->push_status);
		if (!force && looks_rejected(op->push_status))
			return 1;
		gop_errf(e, "Failed to push: the remote refused %s: %s", dst, op->push_status);
		return -1;
	}
	if (pushed) {
		if (op->pushed_set)
			git_oid_cpy(pushed, &op->pushed);
		else if ((rc = git_reference_name_to_id(pushed, repo, "HEAD")) < 0)
			return gop_giterr(c, e, "Failed to push: cannot read HEAD", rc);
	}
	return 0;
}

int gop_push_once(struct gop_ctx *c, git_repository *repo, const char *src, const char *branch,
		  int force, const git_oid *lease, const char *user, const char *token,
		  git_oid *pushed, struct err *e)
{
	git_push_options po;
	git_remote *remote = NULL;
	git_strarray specs;
	struct buf spec = BUF_INIT, dst = BUF_INIT;
	const char *url;
	char *spec_p;
	struct gop_op op;
	int rc;

	(void)git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	if ((rc = git_remote_lookup(&remote, repo, "origin")) < 0)
		return gop_giterr(c, e, "Failed to push: no remote 'origin'", rc);
	if (buf_printf(&spec, "%s%s:refs/heads/%s", force ? "+" : "", src, branch) != 0 ||
	    buf_printf(&dst, "refs/heads/%s", branch) != 0) {
		git_remote_free(remote);
		buf_free(&spec);
		buf_free(&dst);
		return err_set(e, "Failed to push: out of memory");
	}
	url = git_remote_pushurl(remote) ? git_remote_pushurl(remote) : git_remote_url(remote);
	if (op_begin(c, &op, url, user, token, e) != 0) {
		git_remote_free(remote);
		buf_free(&spec);
		buf_free(&dst);
		return -1;
	}
	op.push_dst = dst.p;
	if (lease) {
		op.lease_on = 1;
		git_oid_cpy(&op.lease, lease);
	}
	op_callbacks(&op, &po.callbacks);
	spec_p = spec.p;
	specs.strings = &spec_p;
	specs.count = 1;
	git_error_clear();
	rc = git_remote_push(remote, &specs, &po);
	(void)git_remote_disconnect(remote); /* the result is already known */
	git_remote_free(remote);
	op_end(&op);
	rc = push_outcome(c, repo, &op, rc, force, dst.p, pushed, e);
	op_free_msgs(&op);
	buf_free(&spec);
	buf_free(&dst);
	return rc;
}

/* ---- conflict lists -------------------------------------------------------------- */

static int add_conflict(struct gop_push_result *r, const char *path)
{
	char **n;
	size_t i;

	for (i = 0; i < r->n_conflicts; i++)
		if (strcmp(r->conflict_files[i], path) == 0)
			return 0;
	n = realloc(r->conflict_files, (r->n_conflicts + 1) * sizeof(*n));
	if (!n)
		return -1;
	r->conflict_files = n;
	if (!(n[r->n_conflicts] = strdup(path)))
		return -1;
	r->n_conflicts++;
	return 0;
}

static void clear_conflicts(struct gop_push_result *r)
{
	size_t i;

	for (i = 0; i < r->n_conflicts; i++)
		free(r->conflict_files[i]);
	free(r->conflict_files);
	r->conflict_files = NULL;
	r->n_conflicts = 0;
}

static int collect_conflicts(git_index *idx, struct gop_push_result *r)
{
	git_index_conflict_iterator *it = NULL;
	const git_index_entry *anc, *ours, *theirs;
	int rc;

	if ((rc = git_index_conflict_iterator_new(&it, idx)) < 0)
		return rc;
	while ((rc = git_index_conflict_next(&anc, &ours, &theirs, it)) == 0) {
		const git_index_entry *ie = theirs ? theirs : ours ? ours : anc;
		if (ie && add_conflict(r, ie->path) != 0) {
			git_index_conflict_iterator_free(it);
			return -1;
		}
	}
	git_index_conflict_iterator_free(it);
	return rc == GIT_ITEROVER ? 0 : rc;
}

/* The files a plain three-way merge would leave conflicted: what the
 * agent's side wins in the rebase. */
static int preview_conflicts(git_repository *repo, const git_oid *base, const git_oid *up,
			     const git_oid *local, struct gop_push_result *r)
{
	git_commit *cb = NULL, *cu = NULL, *cl = NULL;
	git_tree *tb = NULL, *tu = NULL, *tl = NULL;
	git_index *idx = NULL;
	git_merge_options mo;
	int rc;

	(void)git_merge_options_init(&mo, GIT_MERGE_OPTIONS_VERSION);
	if ((rc = git_commit_lookup(&cb, repo, base)) < 0 || (rc = git_commit_lookup(&cu, repo, up)) < 0 ||
	    (rc = git_commit_lookup(&cl, repo, local)) < 0 || (rc = git_commit_tree(&tb, cb)) < 0 ||
	    (rc = git_commit_tree(&tu, cu)) < 0 || (rc = git_commit_tree(&tl, cl)) < 0 ||
	    (rc = git_merge_trees(&idx, repo, tb, tu, tl, &mo)) < 0)
		goto out;
	rc = collect_conflicts(idx, r);
out:
	git_index_free(idx);
	git_tree_free(tb);
	git_tree_free(tu);
	git_tree_free(tl);
	git_commit_free(cb);
	git_commit_free(cu);
	git_commit_free(cl);
	return rc;
}

/* ---- the rebase ------------------------------------------------------------------- */

/*
 * Replay local..HEAD onto upstream in memory.  Returns 0 with the new head
 * in out, 1 when a commit could not be replayed (r holds its conflicts),
 * or -1 with e set.
 */
static int rebase_inmemory(struct gop_ctx *c, git_repository *repo, const git_oid *local,
			   const git_oid *upstream, git_oid *out, struct gop_push_result *r,
			   struct err *e)
{
	git_rebase_options ro;
	git_annotated_commit *ab = NULL, *au = NULL;
	git_rebase *rb = NULL;
	git_rebase_operation *opn;
	git_signature *sig = NULL;
	const char *wd = git_repository_workdir(repo);
	int rc;

	(void)git_rebase_options_init(&ro, GIT_REBASE_OPTIONS_VERSION);
	ro.inmemory = 1;
	ro.merge_options.file_favor = GIT_MERGE_FILE_FAVOR_THEIRS;
	git_oid_cpy(out, upstream);
	if ((rc = git_annotated_commit_lookup(&ab, repo, local)) < 0 ||
	    (rc = git_annotated_commit_lookup(&au, repo, upstream)) < 0 ||
	    (rc = gop_signature(&sig, wd ? wd : ".")) < 0 ||
	    (rc = git_rebase_init(&rb, repo, ab, au, NULL, &ro)) < 0) {
		gop_giterr(c, e, "Failed to rebase", rc);
		rc = -1;
		goto out;
	}
	while ((rc = git_rebase_next(&opn, rb)) == 0) {
		git_index *idx = NULL;
		git_oid id;
		if ((rc = git_rebase_inmemory_index(&idx, rb)) < 0) {
			gop_giterr(c, e, "Failed to rebase", rc);
			rc = -1;
			goto out;
		}
		if (git_index_has_conflicts(idx)) {
			clear_conflicts(r);
			rc = collect_conflicts(idx, r);
			git_index_free(idx);
			if (rc < 0) {
				gop_giterr(c, e, "Failed to rebase: cannot list the conflicts", rc);
				rc = -1;
				goto out;
			}
			(void)git_rebase_abort(rb);
			rc = 1;
			goto out;
		}
		git_index_free(idx);
		rc = git_rebase_commit(&id, rb, NULL, sig, NULL, NULL);
		if (rc == GIT_EAPPLIED) {
			git_error_clear();
			continue;
		}
		if (rc < 0) {
			gop_giterr(c, e, "Failed to rebase", rc);
			rc = -1;
			goto out;
		}
		git_oid_cpy(out, &id);
	}
	if (rc != GIT_ITEROVER) {
		gop_giterr(c, e, "Failed to rebase", rc);
		rc = -1;
		goto out;
	}
	git_error_clear();
	if ((rc = git_rebase_finish(rb, sig)) < 0) {
		gop_giterr(c, e, "Failed to rebase", rc);
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	git_rebase_free(rb);
	git_signature_free(sig);
	git_annotated_commit_free(ab);
	git_annotated_commit_free(au);
	return rc;
}

/* Move the local branch (or a detached HEAD) to id and bring the working
 * tree along. */
static int move_head(struct gop_ctx *c, git_repository *repo, const git_oid *id, struct err *e)
{
	git_checkout_options co;
	git_reference *head = NULL, *moved = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	int rc;

	(void)git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	if ((rc = git_commit_lookup(&commit, repo, id)) < 0 || (rc = git_commit_tree(&tree, commit)) < 0) {
		gop_giterr(c, e, "Failed to rebase: cannot read the rebased commit", rc);
		goto out;
	}
	co.checkout_strategy = GIT_CHECKOUT_SAFE;
	rc = git_checkout_tree(repo, (const git_object *)commit, &co);
	if (rc < 0) {
		/* Files in the way: keep the working tree, match the index. */
		git_index *idx = NULL;
		git_error_clear();
		if ((rc = git_repository_index(&idx, repo)) == 0 && (rc = git_index_read_tree(idx, tree)) == 0)
			rc = git_index_write(idx);
		git_index_free(idx);
		if (rc < 0) {
			gop_giterr(c, e, "Failed to rebase: cannot update the index", rc);
			goto out;
		}
	}
	if ((rc = git_repository_head(&head, repo)) < 0) {
		gop_giterr(c, e, "Failed to rebase: cannot read HEAD", rc);
		goto out;
	}
	if (git_reference_is_branch(head))
		rc = git_reference_set_target(&moved, head, id, "ccr: rebase onto the remote branch");
	else
		rc = git_repository_set_head_detached(repo, id);
	if (rc < 0)
		gop_giterr(c, e, "Failed to rebase: cannot move the branch", rc);
out:
	git_reference_free(head);
	git_reference_free(moved);
	git_tree_free(tree);
	git_commit_free(commit);
	return rc < 0 ? -1 : 0;
}

/* ---- gop_push ----------------------------------------------------------------------- */

void gop_push_result_free(struct gop_push_result *r)
{
	if (r)
		clear_conflicts(r);
}

/* Fetch origin/<branch> (unshallowing when the histories do not meet in
 * a shallow clone) and find where the local commits left it. */
static int fetch_base(struct gop_ctx *c, git_repository *repo, const char *branch, const char *user,
		      const char *token, const git_oid *local, git_oid *remote, git_oid *base,
		      struct gop_push_result *r, struct err *e)
{
	int rc;

	if (gop_fetch_branch(c, repo, "origin", branch, 0, user, token, remote, e) != 0)
		return -1;
	git_oid_tostr(r->remote_sha, sizeof(r->remote_sha), remote);
	rc = git_merge_base(base, repo, local, remote);
	if (rc == GIT_ENOTFOUND && git_repository_is_shallow(repo)) {
		git_error_clear();
		if (gop_fetch_branch(c, repo, "origin", branch, GIT_FETCH_DEPTH_UNSHALLOW, user, token, remote, e) != 0)
			return -1;
		git_oid_tostr(r->remote_sha, sizeof(r->remote_sha), remote);
		rc = git_merge_base(base, repo, local, remote);
	}
	if (rc == GIT_ENOTFOUND)
		return gop_errf(e, "Failed to rebase: the local branch and origin/%s have no common history", branch);
	if (rc < 0)
		return gop_giterr(c, e, "Failed to rebase: cannot find the merge base", rc);
	return 0;
}

int gop_push(struct gop_ctx *c, const char *repo_dir, const char *branch,
	     enum gop_strategy strategy, struct gop_push_result *r, struct err *e)
{
	git_repository *repo = NULL;
	git_oid local, remote, base, head, pushed;
	const char *user = c->https_token ? c->https_user : (c->url_user ? c->url_user : c->https_user);
	const char *token = c->https_token ? c->https_token : c->url_pass;
	int rc;

	memset(r, 0, sizeof(*r));
	c->ssh_started = c->ssh_killed = 0;
	c->detail[0] = 0;
	if (!branch || !*branch)
		branch = "main";
	if (!gop_valid_branch(branch))
		return gop_errf(e, "Failed to push: '%s' is not a valid branch name", branch);
	snprintf(r->branch, sizeof(r->branch), "%s", branch);
	if (gop_repo_open(c, &repo, repo_dir, e) != 0)
		return -1;
	if ((rc = git_reference_name_to_id(&local, repo, "HEAD")) < 0) {
		gop_giterr(c, e, "Failed to push: the repository has no commit to push", rc);
		goto fail;
	}
	rc = gop_push_once(c, repo, "HEAD", branch, 0, NULL, user, token, &pushed, e);
	if (rc < 0)
		goto fail;
	if (rc == 0) {
		git_oid_tostr(r->sha, sizeof(r->sha), &pushed);
		r->pushed = 1;
		git_repository_free(repo);
		return 0;
	}
	if (strategy == GOP_STRATEGY_FAIL) {
		err_set(e, "%s", rejected_msg);
		goto fail;
	}

	/* auto: fetch, replay, push. */
	if (fetch_base(c, repo, branch, user, token, &local, &remote, &base, r, e) != 0)
		goto fail;
	if (preview_conflicts(repo, &base, &remote, &local, r) < 0) {
		gop_giterr(c, e, "Failed to rebase: cannot compare the branches", -1);
		goto fail;
	}
	rc = rebase_inmemory(c, repo, &local, &remote, &head, r, e);
	if (rc < 0)
		goto fail;
	if (rc == 0) {
		if (move_head(c, repo, &head, e) != 0)
			goto fail;
		rc = gop_push_once(c, repo, "HEAD", branch, 0, NULL, user, token, &pushed, e);
		if (rc < 0)
			goto fail;
		if (rc == 1) {
			gop_errf(e, "Failed to push: origin/%s changed again while the local commits were rebased onto it",
				 branch);
			goto fail;
		}
		r->recovery = GOP_RECOVERY_REBASE;
	} else {
		/* The replay could not complete: force the original commits,
		 * only over the remote head we fetched. */
		rc = gop_push_once(c, repo, "HEAD", branch, 1, &remote, user, token, &pushed, e);
		if (rc != 0)
			goto fail;
		r->recovery = GOP_RECOVERY_FORCE_WITH_LEASE;
	}
	git_oid_tostr(r->sha, sizeof(r->sha), &pushed);
	r->pushed = 1;
	git_repository_free(repo);
	return 0;
fail:
	git_repository_free(repo);
	return -1;
}
