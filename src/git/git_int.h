/*
 * git_int.h: what the gop_ files share (not part of the API; see git.h).
 *
 * One network operation = one struct gop_op between op_begin and op_end:
 * the deadline, the watchdog thread that kills ssh children past it, the
 * HTTPS credentials for that operation, the remote's sideband messages and
 * the push bookkeeping the callbacks fill in.
 */
#ifndef CCR_GIT_GIT_INT_H
#define CCR_GIT_GIT_INT_H

#include <pthread.h>
#include <stdint.h>

#include <git2.h>

#include "git/git.h"
#include "util/buf.h"

struct gop_op {
	struct gop_ctx *c;
	uint64_t deadline;            /* monotonic ms */
	const char *user, *token;     /* HTTPS credentials for this operation */
	char host[256];               /* the only host they are offered to */
	int cred_tries;
	struct buf remote;            /* the remote's messages (sideband), capped */

	pthread_t th;
	int th_on;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int timed_out;                /* atomic */
	int killed;                   /* atomic */

	/* push bookkeeping (git_push.c) */
	const char *push_dst;         /* refs/heads/<branch> */
	int push_rejected;
	char push_status[256];
	int lease_on;                 /* force only while the remote holds lease */
	git_oid lease;
	int lease_broken;
	git_oid pushed;               /* the local oid sent for push_dst */
	int pushed_set;
};

/* Monotonic milliseconds. */
uint64_t gop_now_ms(void);

/* Start an operation: deadline, libgit2 socket timeouts, watchdog, empty
 * ssh bookkeeping files.  url picks the host credentials may go to; user
 * and token may be NULL (anonymous).  0 or -1 (with e). */
int op_begin(struct gop_ctx *c, struct gop_op *op, const char *url, const char *user,
	     const char *token, struct err *e);
/* End it: stop the watchdog, reap (or kill) every ssh child it started. */
void op_end(struct gop_op *op);

/* Remote callbacks wired to op (deadline, credentials, messages, push). */
void op_callbacks(struct gop_op *op, git_remote_callbacks *cb);

/* The raw text of the last failure: libgit2's message, ssh's stderr and
 * the remote's messages, redacted, into c->detail; returns c->detail. */
const char *op_detail(struct gop_op *op, int gitrc);

/* One libgit2 failure outside a network operation: "<what>: <message>"
 * (redacted) into e; returns -1. */
int gop_giterr(struct gop_ctx *c, struct err *e, const char *what, int rc);

/* Set e to a redacted formatted message; returns -1. */
int gop_errf(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Open the repository at path (no searching upward) with gop's
 * in-memory core.sshCommand attached. */
int gop_repo_open(struct gop_ctx *c, git_repository **out, const char *path, struct err *e);
/* Attach gop's core.sshCommand to a repository object. */
int gop_repo_attach(struct gop_ctx *c, git_repository *repo);

/* Fetch refs/heads/<branch> of `remote` (a name or a URL) into
 * refs/remotes/origin/<branch>, with depth (0: as needed; also
 * GIT_FETCH_DEPTH_UNSHALLOW).  oid_out (may be NULL) gets the fetched tip.
 * msg_prefix is put before failures ("Failed to fetch"). */
int gop_fetch_branch(struct gop_ctx *c, git_repository *repo, const char *remote,
		     const char *branch, int depth, const char *user, const char *token,
		     git_oid *oid_out, struct err *e);

/* Fetch one refspec (e.g. "<sha>" or "+refs/heads/x:refs/remotes/origin/x");
 * what names it in errors. */
int gop_fetch_refspec(struct gop_ctx *c, git_repository *repo, const char *remote, const char *refspec,
		      const char *what, int depth, const char *user, const char *token, struct err *e);

/* Identity (spec §11.1) for the working tree at dir. */
int gop_signature(git_signature **out, const char *dir);

/* Stage all changes (add -A) in repo except `exclude` (NULL: none) and a
 * credential-bearing .gitmodules; or exactly `files` when non-empty. */
int gop_stage(struct gop_ctx *c, git_repository *repo, const char *const *files,
	      const char *const *exclude, struct err *e);

/* Commit the index on HEAD; GOP_NOTHING when the tree is unchanged. */
int gop_commit_index(struct gop_ctx *c, git_repository *repo, const char *dir,
		     const char *message, git_oid *out, struct err *e);

/* Point HEAD at refs/heads/<branch> = oid (created or moved) and check it
 * out with force. */
int gop_checkout_branch(struct gop_ctx *c, git_repository *repo, const char *branch,
			const git_oid *oid, struct err *e);

/* Low-level push of `src` (a revspec, e.g. "HEAD") to refs/heads/<branch>
 * of origin.  force: "+" refspec; lease (may be NULL): only while the
 * remote ref equals it.  Returns 0, 1 when the remote rejected it as
 * not a fast-forward (e untouched), or -1 (e set, already "Failed to
 * push: ..."). */
int gop_push_once(struct gop_ctx *c, git_repository *repo, const char *src, const char *branch,
		  int force, const git_oid *lease, const char *user, const char *token,
		  git_oid *pushed, struct err *e);

/* 1 when b is a usable branch name (refs/heads/<b> valid, no leading '-'). */
int gop_valid_branch(const char *b);

/* The seed's push error mapping (spec §11.3 step 4) of a failed operation. */
int op_push_error(struct gop_op *op, int rc, struct err *e);

/* Free the remote messages an operation collected. */
void op_free_msgs(struct gop_op *op);

/* 1 when s holds a credential: a URL with a password in its userinfo, or
 * the x-access-token marker. */
int gop_has_credential(const char *s);

/* ---- shared helpers (git.c) ---- */

/* libgit2's last error message, or "unknown libgit2 error". */
const char *gop_git_msg(void);
/* Append s to b quoted for /bin/sh ('...' with ' as '\''); 0 or -1. */
int gop_sh_quote(struct buf *b, const char *s);
/* Write n bytes to path (created 0600, truncated, no symlinks); 0 or -1 with e. */
int gop_write_file(const char *path, const char *data, size_t n, struct err *e);
/* Append up to cap bytes of a file to b (a missing file is empty); 0 or -1. */
int gop_read_file(const char *path, struct buf *b, size_t cap);
/* <workspace>/.ssh/<name> into out. */
void gop_path(char *out, size_t n, const struct gop_ctx *c, const char *name);
/* The authority of a URL without userinfo ("host:port"), or of an
 * scp-like address ("host"); empty when there is none. */
void gop_url_host(const char *url, char *out, size_t n);

/* The seed's clone error mapping (spec §8.4 step 9) of a failed clone
 * (git_op.c); ssh: the URL was an SSH one.  Returns -1. */
int op_clone_error(struct gop_op *op, int rc, int ssh, const char *branch, struct err *e);
/* "Failed to fetch <what>: ..." for a failed fetch (git_op.c).  Returns -1. */
int op_fetch_error(struct gop_op *op, int rc, const char *what, struct err *e);

#endif
