/*
 * git_selftest.c: `ccr selftest git/...`: the gop_ operations against
 * repositories in a temporary directory, no network, no git binary.
 *
 * libgit2's local transport cannot fetch shallow, so the shallow clone
 * goes through a tiny in-process upload-pack ("ccrst://<bare repo>"), a
 * stateful smart subtransport that speaks protocol v0 with the `shallow`
 * capability: advertisement, wants + deepen, shallow lines, NAK, and a
 * pack of the wanted commit and its tree (depth 1 only).  Everything else
 * uses plain paths to bare repositories (the local transport).
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

#include "job/git.h"
#include "job/git_int.h"
#include "selftest/selftest.h"
#include "util/buf.h"

/* ---- temp dirs and files ----------------------------------------------------- */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int mktmp(char *out, size_t n)
{
	const char *t = getenv("TMPDIR");

	snprintf(out, n, "%s/ccr-git-st-XXXXXX", t && *t ? t : "/tmp");
	return mkdtemp(out) ? 0 : -1;
}

static int put(const char *dir, const char *rel, const char *text)
{
	char path[2048];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	{
		char *slash = strrchr(path, '/');
		char *p;
		for (p = path + strlen(dir) + 1; slash && (p = strchr(p, '/')) != NULL && p < slash; p++) {
			*p = 0;
			mkdir(path, 0755);
			*p = '/';
		}
		if (slash) {
			*slash = 0;
			mkdir(path, 0755);
			*slash = '/';
		}
	}
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* The content of path in the tree of rev (in repo at dir) into out. */
static int blob_at(const char *repo_dir, const char *rev, const char *path, char *out, size_t n)
{
	git_repository *r = NULL;
	git_object *o = NULL;
	struct buf spec = BUF_INIT;
	int rc = -1;

	out[0] = 0;
	if (git_repository_open_bare(&r, repo_dir) < 0 && git_repository_open(&r, repo_dir) < 0)
		return -1;
	if (buf_printf(&spec, "%s:%s", rev, path) == 0 && git_revparse_single(&o, r, spec.p) == 0 &&
	    git_object_type(o) == GIT_OBJECT_BLOB) {
		const git_blob *b = (const git_blob *)o;
		size_t len = (size_t)git_blob_rawsize(b);
		if (len >= n)
			len = n - 1;
		memcpy(out, git_blob_rawcontent(b), len);
		out[len] = 0;
		rc = 0;
	}
	git_error_clear();
	git_object_free(o);
	git_repository_free(r);
	buf_free(&spec);
	return rc;
}

static int ref_hex(const char *repo_dir, const char *ref, char out[41])
{
	git_repository *r = NULL;
	git_oid id;
	int rc = -1;

	out[0] = 0;
	if (git_repository_open_ext(&r, repo_dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return -1;
	if (git_reference_name_to_id(&id, r, ref) == 0) {
		git_oid_tostr(out, 41, &id);
		rc = 0;
	}
	git_error_clear();
	git_repository_free(r);
	return rc;
}

static int parent_hex(const char *repo_dir, const char *sha, char out[41])
{
	git_repository *r = NULL;
	git_commit *c = NULL;
	git_oid id;
	int rc = -1;

	out[0] = 0;
	if (git_repository_open_ext(&r, repo_dir, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return -1;
	if (git_oid_fromstr(&id, sha) == 0 && git_commit_lookup(&c, r, &id) == 0 && git_commit_parentcount(c) == 1) {
		git_oid_tostr(out, 41, git_commit_parent_id(c, 0));
		rc = 0;
	}
	git_error_clear();
	git_commit_free(c);
	git_repository_free(r);
	return rc;
}

/* A bare repo at dir; commit(files) on refs/heads/main, top-level files
 * only: pairs of name, content, NULL-terminated. */
static int bare_init(const char *dir)
{
	git_repository *r = NULL;
	int rc = git_repository_init(&r, dir, 1);

	if (rc == 0)
		rc = git_repository_set_head(r, "refs/heads/main");
	git_repository_free(r);
	return rc;
}

static int bare_commit(const char *dir, const char *branch, const char *const *files, const char *msg)
{
	git_repository *r = NULL;
	git_treebuilder *tb = NULL;
	git_tree *tree = NULL;
	git_commit *parent = NULL;
	git_signature *sig = NULL;
	const git_commit *parents[1];
	git_oid id, tid;
	struct buf ref = BUF_INIT;
	int rc, np = 0;
	size_t i;

	if ((rc = git_repository_open_bare(&r, dir)) < 0)
		return rc;
	buf_printf(&ref, "refs/heads/%s", branch);
	if (git_reference_name_to_id(&id, r, ref.p) == 0 && git_commit_lookup(&parent, r, &id) == 0) {
		parents[0] = parent;
		np = 1;
	}
	git_error_clear();
	rc = git_treebuilder_new(&tb, r, NULL);
	for (i = 0; rc == 0 && files[i]; i += 2) {
		git_oid bid;
		rc = git_blob_create_from_buffer(&bid, r, files[i + 1], strlen(files[i + 1]));
		if (rc == 0)
			rc = git_treebuilder_insert(NULL, tb, files[i], &bid, GIT_FILEMODE_BLOB);
	}
	if (rc == 0)
		rc = git_treebuilder_write(&tid, tb);
	if (rc == 0)
		rc = git_tree_lookup(&tree, r, &tid);
	if (rc == 0)
		rc = git_signature_now(&sig, "Upstream", "upstream@example.com");
	if (rc == 0)
		rc = git_commit_create(&id, r, ref.p, sig, sig, NULL, msg, tree, (size_t)np, parents);
	git_signature_free(sig);
	git_tree_free(tree);
	git_treebuilder_free(tb);
	git_commit_free(parent);
	git_repository_free(r);
	buf_free(&ref);
	return rc;
}

/* ---- a minimal in-process upload-pack for shallow clones ------------------------- */

struct fake_stream {
	git_smart_subtransport_stream parent;
	struct buf in, out;
	size_t out_off;
	int state;
	git_oid want;
	int have_want, deepen;
	char path[1024];
};

struct fake_sub {
	git_smart_subtransport parent;
	struct fake_stream *stream;
};

static int pkt(struct buf *b, const char *s, size_t n)
{
	return buf_printf(b, "%04x", (unsigned)(n + 4)) || buf_add(b, s, n);
}

static int pkts(struct buf *b, const char *s)
{
	return pkt(b, s, strlen(s));
}

/* Next pkt-line of in from *off: 1 with payload (flush: len 0), 0 when
 * incomplete. */
static int next_pkt(struct fake_stream *s, size_t *off, const char **p, size_t *len)
{
	char hex[5];
	unsigned long l;

	if (s->in.len - *off < 4)
		return 0;
	memcpy(hex, s->in.p + *off, 4);
	hex[4] = 0;
	l = strtoul(hex, NULL, 16);
	if (l == 0) {
		*p = NULL;
		*len = 0;
		*off += 4;
		return 1;
	}
	if (l < 4 || s->in.len - *off < l)
		return 0;
	*p = s->in.p + *off + 4;
	*len = l - 4;
	*off += l;
	return 1;
}

static int advertise(struct fake_stream *s)
{
	git_repository *r = NULL;
	git_oid head;
	char hex[41];
	struct buf line = BUF_INIT;
	int rc;

	if ((rc = git_repository_open_bare(&r, s->path)) < 0)
		return rc;
	rc = git_reference_name_to_id(&head, r, "refs/heads/main");
	if (rc == 0) {
		git_oid_tostr(hex, sizeof(hex), &head);
		buf_printf(&line, "%s HEAD", hex);
		buf_addc(&line, 0);
		buf_adds(&line, "shallow ofs-delta symref=HEAD:refs/heads/main agent=ccr-selftest\n");
		pkt(&s->out, line.p, line.len);
		buf_reset(&line);
		buf_printf(&line, "%s refs/heads/main\n", hex);
		pkts(&s->out, line.p);
		buf_adds(&s->out, "0000");
	}
	buf_free(&line);
	git_repository_free(r);
	return rc;
}

static int send_pack(struct fake_stream *s)
{
	git_repository *r = NULL;
	git_packbuilder *pb = NULL;
	git_buf pack = { 0 };
	int rc;

	if ((rc = git_repository_open_bare(&r, s->path)) < 0)
		return rc;
	if ((rc = git_packbuilder_new(&pb, r)) == 0 && (rc = git_packbuilder_insert_commit(pb, &s->want)) == 0 &&
	    (rc = git_packbuilder_write_buf(&pack, pb)) == 0) {
		pkts(&s->out, "NAK\n");
		buf_add(&s->out, pack.ptr, pack.size);
	}
	git_buf_dispose(&pack);
	git_packbuilder_free(pb);
	git_repository_free(r);
	return rc;
}

/* Advance the server with what the client wrote so far. */
static int fake_step(struct fake_stream *s)
{
	size_t off = 0;
	const char *p;
	size_t len;

	if (s->state == 0)
		return advertise(s) == 0 ? (s->state = 1, 0) : -1;
	if (s->state == 1) {
		while (next_pkt(s, &off, &p, &len)) {
			if (!p) {
				/* end of wants */
				memmove(s->in.p, s->in.p + off, s->in.len - off);
				s->in.len -= off;
				if (!s->have_want)
					return -1;
				if (s->deepen > 0) {
					char hex[41], line[64];
					git_oid_tostr(hex, sizeof(hex), &s->want);
					snprintf(line, sizeof(line), "shallow %s", hex);
					pkts(&s->out, line);
					buf_adds(&s->out, "0000");
				}
				s->state = 2;
				return 0;
			}
			if (len >= 45 && memcmp(p, "want ", 5) == 0 && !s->have_want) {
				char hex[41];
				memcpy(hex, p + 5, 40);
				hex[40] = 0;
				if (git_oid_fromstr(&s->want, hex) < 0)
					return -1;
				s->have_want = 1;
			} else if (len > 7 && memcmp(p, "deepen ", 7) == 0) {
				s->deepen = atoi(p + 7);
			}
		}
		return 1; /* need more */
	}
	if (s->state == 2) {
		while (next_pkt(s, &off, &p, &len)) {
			if (p && len >= 4 && memcmp(p, "done", 4) == 0) {
				s->in.len = 0;
				s->state = 3;
				return send_pack(s);
			}
		}
		return 1;
	}
	return 1;
}

static int fake_read(git_smart_subtransport_stream *st, char *buffer, size_t size, size_t *nread)
{
	struct fake_stream *s = (struct fake_stream *)st;

	*nread = 0;
	while (s->out_off == s->out.len) {
		int rc;
		if (s->state == 3)
			return 0; /* EOF */
		s->out.len = s->out_off = 0;
		rc = fake_step(s);
		if (rc < 0) {
			git_error_set_str(GIT_ERROR_NET, "selftest upload-pack failed");
			return -1;
		}
		if (rc == 1 && s->out_off == s->out.len) {
			git_error_set_str(GIT_ERROR_NET, "selftest upload-pack: client waits without asking");
			return -1;
		}
	}
	*nread = s->out.len - s->out_off < size ? s->out.len - s->out_off : size;
	memcpy(buffer, s->out.p + s->out_off, *nread);
	s->out_off += *nread;
	return 0;
}

static int fake_write(git_smart_subtransport_stream *st, const char *buffer, size_t len)
{
	struct fake_stream *s = (struct fake_stream *)st;

	return buf_add(&s->in, buffer, len);
}

static void fake_stream_free(git_smart_subtransport_stream *st)
{
	struct fake_stream *s = (struct fake_stream *)st;
	struct fake_sub *fs = (struct fake_sub *)st->subtransport;

	if (fs && fs->stream == s)
		fs->stream = NULL;
	buf_free(&s->in);
	buf_free(&s->out);
	free(s);
}

static int fake_action(git_smart_subtransport_stream **out, git_smart_subtransport *t, const char *url,
		       git_smart_service_t action)
{
	struct fake_sub *fs = (struct fake_sub *)t;

	if (action != GIT_SERVICE_UPLOADPACK_LS && action != GIT_SERVICE_UPLOADPACK) {
		git_error_set_str(GIT_ERROR_NET, "selftest transport: fetch only");
		return -1;
	}
	if (!fs->stream) {
		fs->stream = calloc(1, sizeof(*fs->stream));
		if (!fs->stream)
			return -1;
		fs->stream->parent.subtransport = t;
		fs->stream->parent.read = fake_read;
		fs->stream->parent.write = fake_write;
		fs->stream->parent.free = fake_stream_free;
		snprintf(fs->stream->path, sizeof(fs->stream->path), "%s", url + strlen("ccrst://"));
	}
	*out = &fs->stream->parent;
	return 0;
}

/* libgit2 frees the stream itself (stream->free) before closing. */
static int fake_close(git_smart_subtransport *t)
{
	(void)t;
	return 0;
}

static void fake_free(git_smart_subtransport *t)
{
	struct fake_sub *fs = (struct fake_sub *)t;

	if (fs->stream)
		fake_stream_free(&fs->stream->parent);
	free(t);
}

static int fake_sub_new(git_smart_subtransport **out, git_transport *owner, void *param)
{
	struct fake_sub *fs = calloc(1, sizeof(*fs));

	(void)owner, (void)param;
	if (!fs)
		return -1;
	fs->parent.action = fake_action;
	fs->parent.close = fake_close;
	fs->parent.free = fake_free;
	*out = &fs->parent;
	return 0;
}

static git_smart_subtransport_definition fake_def = { fake_sub_new, 0, NULL };

static int fake_transport(git_transport **out, git_remote *owner, void *param)
{
	(void)param;
	return git_transport_smart(out, owner, &fake_def);
}

/* ---- fixtures ------------------------------------------------------------------- */

struct fx {
	char tmp[512];
	char bare[600];
	char ws[600];
	struct gop_ctx c;
	struct err e;
};

static int fx_open(struct fx *f, char *why, size_t whylen)
{
	static const char *const files[] = { "README.md", "hello\n", "app.txt", "line one\nline two\nline three\n", NULL };

	memset(f, 0, sizeof(*f));
	if (mktmp(f->tmp, sizeof(f->tmp)) != 0)
		return st_fail(why, whylen, "mkdtemp: %s", strerror(errno));
	snprintf(f->bare, sizeof(f->bare), "%s/origin.git", f->tmp);
	snprintf(f->ws, sizeof(f->ws), "%s/ws", f->tmp);
	mkdir(f->ws, 0700);
	if (gop_ctx_init(&f->c, f->ws, &f->e) != 0)
		return st_fail(why, whylen, "gop_ctx_init: %s", f->e.msg);
	f->c.allow_local = 1;
	f->c.timeout_ms = 20000;
	if (bare_init(f->bare) != 0 || bare_commit(f->bare, "main", files, "initial\n") != 0)
		return st_fail(why, whylen, "cannot create the origin repository: %s",
			       git_error_last() ? git_error_last()->message : "?");
	return 0;
}

static void fx_close(struct fx *f)
{
	gop_ctx_free(&f->c);
	rm_rf(f->tmp);
}

/* Clone origin into <ws>/<name>. */
static int fx_clone(struct fx *f, const char *name, char *dest, size_t n, char *why, size_t whylen)
{
	snprintf(dest, n, "%s/%s", f->ws, name);
	if (gop_clone(&f->c, f->bare, "main", 0, dest, &f->e) != 0)
		return st_fail(why, whylen, "clone: %s", f->e.msg);
	return 0;
}

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
	if ((rc = fx_open(&f, why, whylen)) != 0) {
		fx_close(&f);
		return rc;
	}
	f.c.allow_local = 0;
	rc = gop_clone(&f.c, "ftp://example.com/x", "main", 1, f.ws, &f.e);
	if (rc == 0 || strcmp(f.e.msg, "Invalid git repository URL format. Use SSH (git@...) or HTTPS format.") != 0)
		rc = st_fail(why, whylen, "bad URL: %s", f.e.msg);
	else
		rc = 0;
	fx_close(&f);
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

	if ((rc = fx_open(&f, why, whylen)) != 0)
		goto out;
	if (bare_commit(f.bare, "main", v2, "two\n") != 0 || bare_commit(f.bare, "main", v3, "three\n") != 0) {
		rc = st_fail(why, whylen, "cannot add commits");
		goto out;
	}
	if (git_transport_register("ccrst", fake_transport, NULL) < 0 && git_error_last() &&
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
	blob_at(dest, "HEAD", "app.txt", text, sizeof(text));
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
	fx_close(&f);
	return rc;
}

static int t_clone_branch(char *why, size_t whylen)
{
	static const char *const dev[] = { "README.md", "dev branch\n", NULL };
	char dest[700], text[64];
	struct fx f;
	int rc;

	if ((rc = fx_open(&f, why, whylen)) != 0)
		goto out;
	if (bare_commit(f.bare, "dev", dev, "dev\n") != 0) {
		rc = st_fail(why, whylen, "cannot create branch dev");
		goto out;
	}
	snprintf(dest, sizeof(dest), "%s/dev", f.ws);
	if (gop_clone(&f.c, f.bare, "dev", 0, dest, &f.e) != 0) {
		rc = st_fail(why, whylen, "clone -b dev: %s", f.e.msg);
		goto out;
	}
	blob_at(dest, "HEAD", "README.md", text, sizeof(text));
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
	fx_close(&f);
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

	if ((rc = fx_open(&f, why, whylen)) != 0 || (rc = fx_clone(&f, "repo", dest, sizeof(dest), why, whylen)) != 0)
		goto out;
	put(dest, "new.txt", "agent work\n");
	put(dest, "app.txt", "changed\n");
	put(dest, ".env", "SECRET=1\n");
	put(dest, "prompt.txt", "the prompt\n");
	put(dest, ".mcp.json", "{}\n");
	put(dest, ".claude/commands/x.md", "cmd\n");
	put(dest, ".gitconfig", "[core]\n\tx = 1\n[user]\n\tname = Agent Smith \n\temail = agent@example.com\n");
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
	if (strlen(sha) != 40 || ref_hex(dest, "HEAD", head) != 0 || strcmp(sha, head) != 0) {
		rc = st_fail(why, whylen, "sha %s is not HEAD %s", sha, head);
		goto out;
	}
	if (blob_at(dest, "HEAD", "new.txt", text, sizeof(text)) != 0 || strcmp(text, "agent work\n") ||
	    blob_at(dest, "HEAD", "app.txt", text, sizeof(text)) != 0 || strcmp(text, "changed\n")) {
		rc = st_fail(why, whylen, "the agent's files were not committed");
		goto out;
	}
	if (blob_at(dest, "HEAD", "README.md", text, sizeof(text)) == 0) {
		rc = st_fail(why, whylen, "the deletion was not committed");
		goto out;
	}
	if (blob_at(dest, "HEAD", ".env", text, sizeof(text)) == 0 ||
	    blob_at(dest, "HEAD", "prompt.txt", text, sizeof(text)) == 0 ||
	    blob_at(dest, "HEAD", ".mcp.json", text, sizeof(text)) == 0 ||
	    blob_at(dest, "HEAD", ".claude/commands/x.md", text, sizeof(text)) == 0) {
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
	put(dest, "a.txt", "a\n");
	put(dest, "b.txt", "b\n");
	{
		const char *const files[] = { "a.txt", NULL };
		if (gop_commit(&f.c, dest, "only a\n", files, NULL, sha, &f.e) != 0 ||
		    blob_at(dest, "HEAD", "a.txt", text, sizeof(text)) != 0 ||
		    blob_at(dest, "HEAD", "b.txt", text, sizeof(text)) == 0) {
			rc = st_fail(why, whylen, "explicit files: %s", f.e.msg);
			goto out;
		}
	}
	rc = 0;
out:
	git_commit_free(c);
	git_repository_free(r);
	fx_close(&f);
	return rc;
}

static int t_push_ff(char *why, size_t whylen)
{
	char dest[700], sha[41], remote[41];
	struct gop_push_result pr;
	struct fx f;
	int rc;

	memset(&pr, 0, sizeof(pr));
	if ((rc = fx_open(&f, why, whylen)) != 0 || (rc = fx_clone(&f, "repo", dest, sizeof(dest), why, whylen)) != 0)
		goto out;
	put(dest, "new.txt", "x\n");
	if (gop_commit(&f.c, dest, "work\n", NULL, NULL, sha, &f.e) != 0) {
		rc = st_fail(why, whylen, "commit: %s", f.e.msg);
		goto out;
	}
	if (gop_push(&f.c, dest, "main", GOP_STRATEGY_FAIL, &pr, &f.e) != 0) {
		rc = st_fail(why, whylen, "push: %s", f.e.msg);
		goto out;
	}
	ref_hex(f.bare, "refs/heads/main", remote);
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
	ref_hex(f.bare, "refs/heads/feature/x", remote);
	if (strcmp(remote, sha) || strcmp(pr.branch, "feature/x")) {
		rc = st_fail(why, whylen, "feature/x holds %s, want %s", remote, sha);
		goto out;
	}
	rc = 0;
out:
	gop_push_result_free(&pr);
	fx_close(&f);
	return rc;
}

/* Two clones; the other one pushes first. */
static int conflict_setup(struct fx *f, char *mine, char *other, size_t n, const char *other_app,
			  int other_deletes, char *why, size_t whylen)
{
	char sha[41];
	struct gop_push_result pr;
	int rc;

	if ((rc = fx_clone(f, "mine", mine, n, why, whylen)) != 0 || (rc = fx_clone(f, "other", other, n, why, whylen)) != 0)
		return rc;
	if (other_deletes) {
		char p[800];
		snprintf(p, sizeof(p), "%s/app.txt", other);
		unlink(p);
	} else {
		put(other, "app.txt", other_app);
	}
	put(other, "upstream.txt", "from upstream\n");
	memset(&pr, 0, sizeof(pr));
	if (gop_commit(&f->c, other, "upstream change\n", NULL, NULL, sha, &f->e) != 0 ||
	    gop_push(&f->c, other, "main", GOP_STRATEGY_FAIL, &pr, &f->e) != 0) {
		gop_push_result_free(&pr);
		return st_fail(why, whylen, "the other clone: %s", f->e.msg);
	}
	gop_push_result_free(&pr);
	put(mine, "app.txt", "line one\nAGENT LINE\nline three\n");
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
	if ((rc = fx_open(&f, why, whylen)) != 0 ||
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
	fx_close(&f);
	return rc;
}

static int t_push_auto(char *why, size_t whylen)
{
	char mine[700], other[700], remote[41], parent[41], upstream_before[41], text[128];
	struct gop_push_result pr;
	struct fx f;
	int rc;

	memset(&pr, 0, sizeof(pr));
	if ((rc = fx_open(&f, why, whylen)) != 0 ||
	    (rc = conflict_setup(&f, mine, other, sizeof(mine), "line one\nUPSTREAM LINE\nline three\n", 0, why, whylen)) != 0)
		goto out;
	ref_hex(f.bare, "refs/heads/main", upstream_before);
	if (gop_push(&f.c, mine, "main", GOP_STRATEGY_AUTO, &pr, &f.e) != 0) {
		rc = st_fail(why, whylen, "auto push: %s (%s)", f.e.msg, f.c.detail);
		goto out;
	}
	ref_hex(f.bare, "refs/heads/main", remote);
	if (!pr.pushed || pr.recovery != GOP_RECOVERY_REBASE || strcmp(pr.sha, remote) ||
	    strcmp(pr.remote_sha, upstream_before)) {
		rc = st_fail(why, whylen, "pushed %d recovery %d sha %s remote %s remoteSha %s", pr.pushed,
			     (int)pr.recovery, pr.sha, remote, pr.remote_sha);
		goto out;
	}
	if (parent_hex(f.bare, remote, parent) != 0 || strcmp(parent, upstream_before) != 0) {
		rc = st_fail(why, whylen, "the pushed commit is not on top of upstream");
		goto out;
	}
	blob_at(f.bare, "refs/heads/main", "app.txt", text, sizeof(text));
	if (strcmp(text, "line one\nAGENT LINE\nline three\n") != 0) {
		rc = st_fail(why, whylen, "the agent's line lost: app.txt = '%s'", text);
		goto out;
	}
	if (blob_at(f.bare, "refs/heads/main", "upstream.txt", text, sizeof(text)) != 0) {
		rc = st_fail(why, whylen, "upstream's other change was dropped");
		goto out;
	}
	if (pr.n_conflicts != 1 || strcmp(pr.conflict_files[0], "app.txt") != 0) {
		rc = st_fail(why, whylen, "conflict list: %zu", pr.n_conflicts);
		goto out;
	}
	if (ref_hex(mine, "HEAD", text) != 0 || strcmp(text, remote) != 0) {
		rc = st_fail(why, whylen, "the local branch was not moved to the pushed commit");
		goto out;
	}
	rc = 0;
out:
	gop_push_result_free(&pr);
	fx_close(&f);
	return rc;
}

static int t_push_lease(char *why, size_t whylen)
{
	char mine[700], other[700], remote[41], upstream_before[41], local[41], text[128];
	struct gop_push_result pr;
	struct fx f;
	int rc;

	memset(&pr, 0, sizeof(pr));
	if ((rc = fx_open(&f, why, whylen)) != 0 ||
	    (rc = conflict_setup(&f, mine, other, sizeof(mine), NULL, 1, why, whylen)) != 0)
		goto out;
	ref_hex(f.bare, "refs/heads/main", upstream_before);
	ref_hex(mine, "HEAD", local);
	if (gop_push(&f.c, mine, "main", GOP_STRATEGY_AUTO, &pr, &f.e) != 0) {
		rc = st_fail(why, whylen, "auto push: %s (%s)", f.e.msg, f.c.detail);
		goto out;
	}
	ref_hex(f.bare, "refs/heads/main", remote);
	if (!pr.pushed || pr.recovery != GOP_RECOVERY_FORCE_WITH_LEASE || strcmp(pr.sha, remote) ||
	    strcmp(remote, local) || strcmp(pr.remote_sha, upstream_before)) {
		rc = st_fail(why, whylen, "recovery %d sha %s remote %s local %s", (int)pr.recovery, pr.sha, remote, local);
		goto out;
	}
	if (pr.n_conflicts < 1 || strcmp(pr.conflict_files[0], "app.txt") != 0) {
		rc = st_fail(why, whylen, "conflict files: %zu", pr.n_conflicts);
		goto out;
	}
	blob_at(f.bare, "refs/heads/main", "app.txt", text, sizeof(text));
	if (strcmp(text, "line one\nAGENT LINE\nline three\n") != 0) {
		rc = st_fail(why, whylen, "the agent's file is not on the remote");
		goto out;
	}
	rc = 0;
out:
	gop_push_result_free(&pr);
	fx_close(&f);
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

static int t_gitmodules(char *why, size_t whylen)
{
	static const char *const tfiles[] = { "spec.txt", "test one\n", NULL };
	static const char token[] = "ghs_selftestINSTALLATIONtoken0123456789";
	char dest[700], gh[700], tbare[800], sha[41], text[512], tests_dir[800];
	struct gop_tests_repo t;
	struct gop_pr pr;
	struct fx f;
	int rc;

	if ((rc = fx_open(&f, why, whylen)) != 0 || (rc = fx_clone(&f, "repo", dest, sizeof(dest), why, whylen)) != 0)
		goto out;
	snprintf(gh, sizeof(gh), "%s/gh", f.tmp);
	snprintf(tbare, sizeof(tbare), "%s/acme/e2e-tests.git", gh);
	mkdir(gh, 0755);
	snprintf(text, sizeof(text), "%s/acme", gh);
	mkdir(text, 0755);
	if (bare_init(tbare) != 0 || bare_commit(tbare, "main", tfiles, "tests\n") != 0) {
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
	{
		char p[800];
		FILE *fp;
		size_t n;
		snprintf(p, sizeof(p), "%s/.gitmodules", dest);
		fp = fopen(p, "r");
		n = fp ? fread(text, 1, sizeof(text) - 1, fp) : 0;
		text[n] = 0;
		if (fp)
			fclose(fp);
		if (!strstr(text, "[submodule \"tests\"]") || !strstr(text, tbare)) {
			rc = st_fail(why, whylen, ".gitmodules lacks the plain URL: %s", text);
			goto out;
		}
	}
	/* The agent writes a test; the parent commits; the submodule publishes. */
	snprintf(tests_dir, sizeof(tests_dir), "%s/tests", dest);
	put(tests_dir, "new_test.txt", "new test\n");
	if (gop_commit(&f.c, dest, "parent\n", NULL, NULL, sha, &f.e) != 0) {
		rc = st_fail(why, whylen, "parent commit: %s", f.e.msg);
		goto out;
	}
	if (blob_at(dest, "HEAD", ".gitmodules", text, sizeof(text)) != 0 || strstr(text, token)) {
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
	if (blob_at(tbare, "refs/heads/ccr-selftest-pr", "new_test.txt", text, sizeof(text)) != 0) {
		rc = st_fail(why, whylen, "the test commit did not reach the test repo");
		goto out;
	}
	/* A .gitmodules holding a credential is never committed. */
	put(dest, ".gitmodules", "[submodule \"tests\"]\n\tpath = tests\n\turl = https://x-access-token:ghs_leak0123456789@github.com/acme/e2e-tests.git\n");
	put(dest, "other.txt", "x\n");
	if (gop_commit(&f.c, dest, "with leak\n", NULL, NULL, sha, &f.e) != 0 ||
	    blob_at(dest, "HEAD", ".gitmodules", text, sizeof(text)) != 0 || strstr(text, "ghs_leak")) {
		rc = st_fail(why, whylen, "a credential .gitmodules was committed (%s)", f.e.msg);
		goto out;
	}
	{
		const char *const files[] = { ".gitmodules", "other.txt", NULL };
		put(dest, "other.txt", "y\n");
		if (gop_commit(&f.c, dest, "explicit\n", files, NULL, sha, &f.e) != 0 ||
		    blob_at(dest, "HEAD", ".gitmodules", text, sizeof(text)) != 0 || strstr(text, "ghs_leak")) {
			rc = st_fail(why, whylen, "an explicit .gitmodules with a credential was committed");
			goto out;
		}
	}
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
	fx_close(&f);
	return rc;
}

const struct st_case git_selftests[] = {
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
