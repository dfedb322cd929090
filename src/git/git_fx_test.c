/*
 * git_selftest_fx.c: the fixtures of the git selftests (git_selftest.h):
 * temporary directories, bare repositories built with libgit2 alone, and
 * a tiny in-process upload-pack for shallow clones.
 *
 * libgit2's local transport cannot fetch shallow, so the shallow clone
 * goes through "ccrst://<bare repo>", a stateful smart subtransport that
 * speaks protocol v0 with the `shallow` capability: advertisement, wants +
 * deepen, shallow lines, NAK, and a pack of the wanted commit and its tree
 * (depth 1 only).  Everything else uses plain paths to bare repositories
 * (the local transport).
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
#include "settings/settings.h"

/* ---- temp dirs and files ----------------------------------------------------- */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

void gst_rm_rf(const char *dir)
{
	if (dir && dir[0])
		nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int gst_mktmp(char *out, size_t n)
{
	const char *t = settings_str(SET_TMPDIR);

	snprintf(out, n, "%s/ccr-git-st-XXXXXX", t && *t ? t : "/tmp");
	return mkdtemp(out) ? 0 : -1;
}

int gst_put(const char *dir, const char *rel, const char *text)
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
int gst_blob_at(const char *repo_dir, const char *rev, const char *path, char *out, size_t n)
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

int gst_ref_hex(const char *repo_dir, const char *ref, char out[41])
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

int gst_parent_hex(const char *repo_dir, const char *sha, char out[41])
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
int gst_bare_init(const char *dir)
{
	git_repository *r = NULL;
	int rc = git_repository_init(&r, dir, 1);

	if (rc == 0)
		rc = git_repository_set_head(r, "refs/heads/main");
	git_repository_free(r);
	return rc;
}

int gst_bare_commit(const char *dir, const char *branch, const char *const *files, const char *msg)
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

int gst_fake_transport(git_transport **out, git_remote *owner, void *param)
{
	(void)param;
	return git_transport_smart(out, owner, &fake_def);
}

/* ---- fixtures ------------------------------------------------------------------- */


int gst_fx_open(struct fx *f, char *why, size_t whylen)
{
	static const char *const files[] = { "README.md", "hello\n", "app.txt", "line one\nline two\nline three\n", NULL };

	memset(f, 0, sizeof(*f));
	if (gst_mktmp(f->tmp, sizeof(f->tmp)) != 0)
		return st_fail(why, whylen, "mkdtemp: %s", strerror(errno));
	snprintf(f->bare, sizeof(f->bare), "%s/origin.git", f->tmp);
	snprintf(f->ws, sizeof(f->ws), "%s/ws", f->tmp);
	mkdir(f->ws, 0700);
	if (gop_ctx_init(&f->c, f->ws, NULL, &f->e) != 0)
		return st_fail(why, whylen, "gop_ctx_init: %s", f->e.msg);
	f->c.allow_local = 1;
	f->c.timeout_ms = 20000;
	if (gst_bare_init(f->bare) != 0 || gst_bare_commit(f->bare, "main", files, "initial\n") != 0)
		return st_fail(why, whylen, "cannot create the origin repository: %s",
			       git_error_last() ? git_error_last()->message : "?");
	return 0;
}

void gst_fx_close(struct fx *f)
{
	gop_ctx_free(&f->c);
	gst_rm_rf(f->tmp);
}

/* Clone origin into <ws>/<name>. */
int gst_fx_clone(struct fx *f, const char *name, char *dest, size_t n, char *why, size_t whylen)
{
	snprintf(dest, n, "%s/%s", f->ws, name);
	if (gop_clone(&f->c, f->bare, "main", 0, dest, &f->e) != 0)
		return st_fail(why, whylen, "clone: %s", f->e.msg);
	return 0;
}
