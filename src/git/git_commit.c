/*
 * git_commit.c: identity, staging and commits (see git.h).
 *
 * Staging is libgit2's `git add -A`: git_index_add_all (new and changed
 * files, ignored ones skipped) plus git_index_update_all (deletions), with
 * a match callback that skips excluded paths.  Excluded paths that are
 * already staged (the agent may have run `git add -A` itself) are put back
 * to HEAD's version in the index, so an exclusion always holds.  A
 * .gitmodules that carries a credential is treated as excluded in every
 * mode, explicit pathspecs included (fixes S3).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <git2.h>
#include <git2/sys/errors.h>

#include "git/git.h"
#include "git/git_int.h"
#include "util/buf.h"

const char *const gop_default_excludes[] = {
	".env", "prompt.txt", ".mcp.json", ".claude/commands/*", ".claude/agents/*", NULL,
};

/* ---- identity (spec §11.1) ------------------------------------------------ */

static int word_char(int ch)
{
	return isalnum(ch) || ch == '_';
}

/*
 * The seed's regex \[user\][\s\S]*?\bKEY\s*=\s*(.+) on the text after the
 * first "[user]": the first KEY at a word start followed by optional
 * white space (newlines too), '=', optional white space and at least one
 * character up to the end of the line; the value trimmed.
 */
static int find_key(const char *text, const char *key, char *out, size_t outlen)
{
	const char *sec = strstr(text, "[user]"), *p;
	size_t kl = strlen(key);

	if (!sec)
		return 0;
	for (p = sec + 6; (p = strstr(p, key)) != NULL; p++) {
		const char *q = p + kl, *v, *end;
		if (p > text && word_char((unsigned char)p[-1]))
			continue;
		while (isspace((unsigned char)*q))
			q++;
		if (*q != '=')
			continue;
		q++;
		while (isspace((unsigned char)*q))
			q++;
		if (!*q)
			continue;
		v = q;
		end = v + strcspn(v, "\r\n");
		while (end > v && isspace((unsigned char)end[-1]))
			end--;
		if (end == v)
			continue;
		snprintf(out, outlen, "%.*s", (int)(end - v), v);
		return 1;
	}
	return 0;
}

int gop_signature(git_signature **out, const char *dir)
{
	char path[4096], name[256] = "Claude Code", email[256] = "noreply@anthropic.com";
	struct buf text = BUF_INIT;
	FILE *f;

	snprintf(path, sizeof(path), "%s/.gitconfig", dir);
	f = fopen(path, "re");
	if (f) {
		for (;;) {
			char tmp[4096];
			size_t n = fread(tmp, 1, sizeof(tmp), f);
			if (n == 0 || text.len > (1u << 20) || buf_add(&text, tmp, n) != 0)
				break;
		}
		fclose(f);
		if (text.p) {
			find_key(text.p, "name", name, sizeof(name));
			find_key(text.p, "email", email, sizeof(email));
		}
		buf_free(&text);
	}
	return git_signature_now(out, name, email);
}

/* ---- staging ---------------------------------------------------------------- */

struct stage_ctx {
	const char *const *exclude;
	int gitmodules_secret;
};

static int excluded(const char *path, const char *const *exclude)
{
	size_t i;

	for (i = 0; exclude && exclude[i]; i++) {
		const char *x = exclude[i];
		size_t n = strlen(x);
		if (n >= 2 && strcmp(x + n - 2, "/*") == 0) {
			if (strncmp(path, x, n - 1) == 0)
				return 1;
		} else if (n >= 1 && x[n - 1] == '/') {
			if (strncmp(path, x, n) == 0)
				return 1;
		} else if (strcmp(path, x) == 0) {
			return 1;
		}
	}
	return 0;
}

static int skip_path(const struct stage_ctx *s, const char *path)
{
	if (s->gitmodules_secret && strcmp(path, ".gitmodules") == 0)
		return 1;
	return excluded(path, s->exclude);
}

static int match_cb(const char *path, const char *matched_pathspec, void *payload)
{
	(void)matched_pathspec;
	return skip_path(payload, path) ? 1 : 0;
}

/* Does the working tree's .gitmodules hold a credential? */
static int gitmodules_has_secret(git_repository *repo)
{
	const char *wd = git_repository_workdir(repo);
	char path[4096];
	struct buf b = BUF_INIT;
	int secret = 0;

	if (!wd)
		return 0;
	snprintf(path, sizeof(path), "%s.gitmodules", wd);
	if (gop_read_file(path, &b, 4u << 20) == 0 && b.p)
		secret = gop_has_credential(b.p);
	buf_free(&b);
	return secret;
}

/* Put path back to HEAD's version in the index (or drop it when HEAD has
 * none). */
static int restore_from_head(git_index *idx, git_tree *head, const char *path)
{
	git_tree_entry *te = NULL;

	if (head && git_tree_entry_bypath(&te, head, path) == 0) {
		git_index_entry ie;
		int rc;
		memset(&ie, 0, sizeof(ie));
		ie.mode = git_tree_entry_filemode(te);
		git_oid_cpy(&ie.id, git_tree_entry_id(te));
		ie.path = path;
		rc = git_index_add(idx, &ie);
		git_tree_entry_free(te);
		return rc;
	}
	git_error_clear();
	if (git_index_get_bypath(idx, path, 0) == NULL)
		return 0;
	return git_index_remove(idx, path, 0);
}

/* A blob in the index whose content holds a credential? */
static int index_blob_secret(git_repository *repo, const git_index_entry *ie)
{
	git_blob *blob = NULL;
	struct buf b = BUF_INIT;
	int secret = 0;

	if (git_blob_lookup(&blob, repo, &ie->id) < 0) {
		git_error_clear();
		return 0;
	}
	if (buf_add(&b, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob)) == 0 && b.p)
		secret = gop_has_credential(b.p);
	buf_free(&b);
	git_blob_free(blob);
	return secret;
}

int gop_stage(struct gop_ctx *c, git_repository *repo, const char *const *files,
	      const char *const *exclude, struct err *e)
{
	struct stage_ctx s;
	git_index *idx = NULL;
	git_tree *head = NULL;
	git_object *obj = NULL;
	git_strarray ps = { NULL, 0 };
	const git_index_entry *gm;
	char **undo = NULL;
	size_t i, n, nundo = 0;
	int rc, explicit_files = files && files[0];

	memset(&s, 0, sizeof(s));
	s.exclude = explicit_files ? NULL : exclude;
	s.gitmodules_secret = gitmodules_has_secret(repo);
	if ((rc = git_repository_index(&idx, repo)) < 0)
		return gop_giterr(c, e, "cannot read the git index", rc);
	if (explicit_files) {
		for (n = 0; files[n]; n++)
			;
		ps.strings = (char **)files;
		ps.count = n;
	}
	rc = git_index_add_all(idx, explicit_files ? &ps : NULL, GIT_INDEX_ADD_DEFAULT, match_cb, &s);
	if (rc < 0) {
		gop_giterr(c, e, "cannot stage the changes", rc);
		goto out;
	}
	rc = git_index_update_all(idx, explicit_files ? &ps : NULL, match_cb, &s);
	if (rc < 0) {
		gop_giterr(c, e, "cannot stage the deletions", rc);
		goto out;
	}

	/* Exclusions hold even for what was staged before. */
	if (git_revparse_single(&obj, repo, "HEAD^{tree}") == 0)
		head = (git_tree *)obj;
	else
		git_error_clear();
	n = git_index_entrycount(idx);
	undo = calloc(n + 1, sizeof(*undo));
	if (!undo) {
		rc = err_set(e, "git: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const git_index_entry *ie = git_index_get_byindex(idx, i);
		if (ie && skip_path(&s, ie->path) && (undo[nundo] = strdup(ie->path)) != NULL)
			nundo++;
	}
	for (i = 0; i < nundo; i++) {
		if ((rc = restore_from_head(idx, head, undo[i])) < 0) {
			gop_giterr(c, e, "cannot unstage an excluded file", rc);
			goto out;
		}
	}
	/* Whatever staged it, a .gitmodules with a token is never committed. */
	gm = git_index_get_bypath(idx, ".gitmodules", 0);
	if (gm && index_blob_secret(repo, gm) && (rc = restore_from_head(idx, head, ".gitmodules")) < 0) {
		gop_giterr(c, e, "cannot unstage .gitmodules", rc);
		goto out;
	}
	if ((rc = git_index_write(idx)) < 0) {
		gop_giterr(c, e, "cannot write the git index", rc);
		goto out;
	}
	rc = 0;
out:
	for (i = 0; undo && i < nundo; i++)
		free(undo[i]);
	free(undo);
	git_tree_free(head);
	git_index_free(idx);
	return rc < 0 ? -1 : 0;
}

/* ---- commit -------------------------------------------------------------------- */

int gop_commit_index(struct gop_ctx *c, git_repository *repo, const char *dir,
		     const char *message, git_oid *out, struct err *e)
{
	git_index *idx = NULL;
	git_tree *tree = NULL;
	git_commit *parent = NULL;
	git_signature *sig = NULL;
	git_object *obj = NULL;
	git_buf msg = { NULL, 0, 0 };
	git_oid tree_id;
	const git_commit *parents[1];
	int rc, np = 0;

	if ((rc = git_repository_index(&idx, repo)) < 0)
		return gop_giterr(c, e, "cannot read the git index", rc);
	if (git_index_has_conflicts(idx)) {
		git_index_free(idx);
		return err_set(e, "cannot commit: the index has unresolved merge conflicts");
	}
	rc = git_index_write_tree(&tree_id, idx);
	git_index_free(idx);
	if (rc < 0)
		return gop_giterr(c, e, "cannot write the tree", rc);
	rc = git_revparse_single(&obj, repo, "HEAD^{commit}");
	if (rc == 0) {
		parent = (git_commit *)obj;
		parents[0] = parent;
		np = 1;
		if (git_oid_equal(git_commit_tree_id(parent), &tree_id)) {
			git_commit_free(parent);
			err_set(e, "nothing to commit");
			return GOP_NOTHING;
		}
	} else if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH) {
		git_error_clear();
	} else {
		return gop_giterr(c, e, "cannot read HEAD", rc);
	}
	if ((rc = git_tree_lookup(&tree, repo, &tree_id)) < 0) {
		git_commit_free(parent);
		return gop_giterr(c, e, "cannot read the new tree", rc);
	}
	if (!parent && git_tree_entrycount(tree) == 0) {
		git_tree_free(tree);
		err_set(e, "nothing to commit");
		return GOP_NOTHING;
	}
	if ((rc = gop_signature(&sig, dir)) < 0) {
		git_tree_free(tree);
		git_commit_free(parent);
		return gop_giterr(c, e, "invalid git identity in .gitconfig", rc);
	}
	/* `git commit -m` cleans the message up the same way (whitespace mode). */
	rc = git_message_prettify(&msg, message, 0, '#');
	if (rc == 0)
		rc = git_commit_create(out, repo, "HEAD", sig, sig, NULL, msg.ptr, tree, (size_t)np, parents);
	git_buf_dispose(&msg);
	git_signature_free(sig);
	git_tree_free(tree);
	git_commit_free(parent);
	if (rc < 0)
		return gop_giterr(c, e, "git commit failed", rc);
	return 0;
}

int gop_commit(struct gop_ctx *c, const char *repo_dir, const char *message,
	       const char *const *files, const char *const *exclude,
	       char sha_out[41], struct err *e)
{
	git_repository *repo = NULL;
	git_oid id;
	int rc;

	sha_out[0] = 0;
	c->detail[0] = 0;
	if (!message || !*message)
		return err_set(e, "git commit: empty commit message");
	if (gop_repo_open(c, &repo, repo_dir, e) != 0)
		return -1;
	if (gop_stage(c, repo, files, exclude ? exclude : gop_default_excludes, e) != 0) {
		git_repository_free(repo);
		return -1;
	}
	rc = gop_commit_index(c, repo, git_repository_workdir(repo) ? git_repository_workdir(repo) : repo_dir,
			      message, &id, e);
	git_repository_free(repo);
	if (rc != 0)
		return rc;
	git_oid_tostr(sha_out, 41, &id);
	return 0;
}

/* ---- branch checkout ----------------------------------------------------------- */

int gop_checkout_branch(struct gop_ctx *c, git_repository *repo, const char *branch,
			const git_oid *oid, struct err *e)
{
	git_checkout_options co;
	git_commit *commit = NULL;
	git_reference *ref = NULL;
	struct buf name = BUF_INIT;
	int rc;

	(void)git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	if (buf_printf(&name, "refs/heads/%s", branch) != 0)
		return err_set(e, "git: out of memory");
	if ((rc = git_commit_lookup(&commit, repo, oid)) < 0) {
		gop_giterr(c, e, "cannot find the commit to check out", rc);
		goto out;
	}
	co.checkout_strategy = GIT_CHECKOUT_FORCE;
	if ((rc = git_checkout_tree(repo, (const git_object *)commit, &co)) < 0) {
		gop_giterr(c, e, "checkout failed", rc);
		goto out;
	}
	if ((rc = git_reference_create(&ref, repo, name.p, oid, 1, "ccr: checkout")) < 0) {
		gop_giterr(c, e, "cannot create the branch", rc);
		goto out;
	}
	if ((rc = git_repository_set_head(repo, name.p)) < 0) {
		gop_giterr(c, e, "cannot switch to the branch", rc);
		goto out;
	}
	rc = 0;
out:
	git_reference_free(ref);
	git_commit_free(commit);
	buf_free(&name);
	return rc < 0 ? -1 : 0;
}
