/*
 * git.h: the git operations of `ccr job` (clone, commit, push, the
 * external test repo and its pull request), over libgit2.
 *
 * Everything goes through one explicit context, struct gop_ctx, which holds
 * the workspace, the credentials, the SSH host-key policy and the timeouts.
 * Every function returns 0 on success (gop_commit and gop_tests_publish
 * may also return GOP_NOTHING) or -1 with one actionable line in `e`.
 * Messages are passed through the redactor (util/redact.h) and gop
 * registers every secret it is handed (HTTPS token, URL credentials), so
 * neither a token nor a key can appear in an error.  The raw detail behind
 * the last failure (libgit2's message, ssh's stderr, the remote's
 * messages), redacted too, is kept in ctx->detail for the log.
 *
 * Transports.
 *   HTTPS: anonymous, or a token given to libgit2 through the credentials
 *   callback (user ctx->https_user, default "x-access-token"), never in a
 *   URL.  Credentials written in a URL (https://user:token@host/...) are
 *   moved out of it the same way, so the clone's origin URL holds none.
 *   The token is only offered to the host of the URL the operation
 *   started with.  TLS roots: net_global_init (SSL_CERT_FILE, SSL_CERT_DIR
 *   or the compiled-in bundle).
 *   SSH (git_ssh.c): libgit2 runs the system `ssh` (GIT_SSH_EXEC).  gop
 *   gives each repository it opens an in-memory core.sshCommand:
 *       ssh -o BatchMode=yes [-o IdentitiesOnly=yes -i KEY]
 *           -o StrictHostKeyChecking=yes -o UserKnownHostsFile=FILE ...
 *   FILE is <workspace>/.ssh/known_hosts, written by gop_ssh_prepare from,
 *   in order: ctx->known_hosts (payload field `sshKnownHosts`, text in
 *   known_hosts format), the file ctx->known_hosts_file (env
 *   CCR_SSH_KNOWN_HOSTS), and the published host keys of github.com,
 *   gitlab.com and bitbucket.org (gop_builtin_known_hosts, pinned in
 *   git_hostkeys.c), so those work with no configuration and any other
 *   host must be listed.  ctx->ssh_insecure (payload
 *   `sshStrictHostKeyChecking: false`, or env CCR_SSH_INSECURE=1) is the
 *   explicit opt-out: StrictHostKeyChecking=no with /dev/null as known
 *   hosts.  The agent's own git gets the same policy through
 *   gop_agent_ssh_command() (its GIT_SSH_COMMAND).  ~/.ssh/config still
 *   applies.  GIT_SSH in the environment would override the command, so
 *   gop_ctx_init removes it (call it before starting threads).
 *
 * Timeouts.  Every network operation (a clone, a fetch, a push attempt)
 * has ctx->timeout_ms (default env CCR_GIT_TIMEOUT_SECONDS, else 300 s).
 * Past the deadline the progress callbacks fail the operation; a watchdog
 * thread kills the ssh child (SIGTERM, then SIGKILL), which ends a stalled
 * SSH transfer at once; for HTTPS a socket that stays silent for
 * ctx->idle_ms (default min(timeout, 60 s)) fails the read.  After every
 * operation gop reaps each ssh child it started (waiting briefly, then
 * killing what is left), so none outlives the call.  Do not reap children
 * with waitpid(-1) in another thread while a gop call runs.
 *
 * Error texts follow the seed (spec §8.4 step 9, §8.5, §11.2, §11.3):
 * "Failed to clone repository: <mapped>", "Failed to push: <mapped>",
 * "Push rejected. ...", "Failed to initialize submodule: ...",
 * "Failed to create pull request: ...".  One deliberate change: a host
 * key failure says how to fix it (sshKnownHosts / CCR_SSH_KNOWN_HOSTS or
 * the opt-out) instead of the seed's advice to disable checking.
 *
 * Not thread-safe: one context, one thread, one operation at a time
 * (libgit2's socket timeouts are process-wide options set per operation).
 * The process must ignore SIGPIPE (libgit2 writes to sockets without
 * MSG_NOSIGNAL); `ccr job` and `ccr git` do.  HTTP proxies are not used.
 */
#ifndef CCR_GIT_GIT_H
#define CCR_GIT_GIT_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

#define GOP_NOTHING 1               /* gop_commit / gop_tests_publish: no change */
#define GOP_DEFAULT_TIMEOUT_MS 300000L
#define GOP_MAX_IDLE_MS 60000L

struct gop_op;

struct gop_ctx {
	/* ---- set by the caller after gop_ctx_init (defaults shown) ---- */
	const char *ssh_key_path;     /* private key file (0600), or NULL */
	const char *known_hosts;      /* known_hosts lines (payload sshKnownHosts), or NULL */
	const char *known_hosts_file; /* env CCR_SSH_KNOWN_HOSTS, or NULL */
	int ssh_insecure;             /* env CCR_SSH_INSECURE=1 */
	const char *https_user;       /* "x-access-token" */
	const char *https_token;      /* NULL: anonymous */
	long timeout_ms;              /* env CCR_GIT_TIMEOUT_SECONDS * 1000, or 300 s */
	long idle_ms;                 /* 0: min(timeout_ms, 60 s) */
	const char *github_url;       /* env CCR_GITHUB_URL, or "https://github.com" */
	const char *github_api;       /* env CCR_GITHUB_API, or "https://api.github.com" */
	int allow_local;              /* accept local paths and file:// URLs (tests) */

	/* ---- after each call (read-only) ---- */
	char detail[1024];            /* redacted raw detail of the last failure */
	int timed_out;                /* the last operation hit its deadline */
	int ssh_started;              /* ssh children started by the last call */
	int ssh_killed;               /* ... of which gop had to kill */

	/* ---- private ---- */
	char workspace[1024];
	char dir[1100];               /* <workspace>/.ssh */
	char *url_user, *url_pass;    /* credentials moved out of a URL */
	int prepared;
	struct gop_op *op;
};

/* The settings gop_ctx_init takes from its caller (the command reads them
 * once, settings.h; NULL when unset). */
struct gop_settings {
	const char *timeout_s;      /* CCR_GIT_TIMEOUT_SECONDS: 1..86400, checked by gop_ctx_init */
	const char *known_hosts;    /* CCR_SSH_KNOWN_HOSTS */
	const char *ssh_insecure;   /* CCR_SSH_INSECURE: "1" skips host key checks */
	const char *github_url;     /* CCR_GITHUB_URL, else https://github.com */
	const char *github_api;     /* CCR_GITHUB_API, else https://api.github.com */
	const char *git_ssh;        /* GIT_SSH: when set, removed from the environment */
};

/* gop_ctx_init: defaults from set (NULL: none set), libraries started
 * (net_global_init), GIT_SSH removed from the environment.  workspace is
 * the task's directory; gop keeps known_hosts and ssh's bookkeeping
 * (ssh.pids, ssh.err) in <workspace>/.ssh (created 0700).  Then set the
 * fields above, before the first operation: known_hosts is written once. */
int gop_ctx_init(struct gop_ctx *c, const char *workspace, const struct gop_settings *set, struct err *e);

/* gop_ctx_free: forget credentials (wiped); files stay for the caller's
 * workspace cleanup. */
void gop_ctx_free(struct gop_ctx *c);

/* gop_builtin_known_hosts: the published host keys of github.com,
 * gitlab.com and bitbucket.org, known_hosts lines (git_hostkeys.c). */
extern const char gop_builtin_known_hosts[];

/* gop_ssh_prepare: write <workspace>/.ssh/known_hosts (see SSH above),
 * once; every operation calls it, callers may call it earlier. */
int gop_ssh_prepare(struct gop_ctx *c, struct err *e);

/* gop_agent_ssh_command: the GIT_SSH_COMMAND that gives the agent's own
 * git the same key and host-key policy as gop's operations:
 *     ssh [-o IdentitiesOnly=yes -i KEY] -o StrictHostKeyChecking=yes
 *         -o 'UserKnownHostsFile="<workspace>/.ssh/known_hosts"'
 * (words quoted for /bin/sh), appended to out; prepares known_hosts. */
int gop_agent_ssh_command(struct gop_ctx *c, struct buf *out, struct err *e);

/* gop_ssh_url: when a key is used, the seed's conversion of
 * https://github.com/<owner>/<repo>(.git) to git@github.com:<owner>/<repo>.git.
 * Writes the URL to use (unchanged when it does not apply). */
void gop_ssh_url(const char *url, int have_key, char *out, size_t outlen);

/* gop_clone: clone url into dest (must not exist or be empty): branch
 * (NULL: "main") only (--single-branch), depth > 0 makes it shallow.
 * URLs: git@host:path, ssh://, http://, https://. */
int gop_clone(struct gop_ctx *c, const char *url, const char *branch, int depth,
	      const char *dest, struct err *e);

/* gop_changes: how many paths `git status` lists (untracked individually). */
int gop_changes(struct gop_ctx *c, const char *repo, size_t *count, struct err *e);

/* gop_default_excludes: what post-execution commits leave out when the
 * caller passes no list: .env, prompt.txt, .mcp.json and everything under
 * .claude/commands/ and .claude/agents/.  NULL-terminated. */
extern const char *const gop_default_excludes[];

/*
 * gop_commit: stage and commit in the repository at `repo`.
 * files: NULL or empty: every change (adds, edits, deletions, untracked
 *   files not ignored) except the paths in `exclude` (NULL: the default
 *   list; entries are exact repo-relative paths, or "dir/" followed by a
 *   star for anything under dir).  Otherwise exactly these pathspecs.
 * Either way, .gitmodules is never staged while it holds a credential.
 * Identity: [user] name/email of <repo>/.gitconfig, else "Claude Code" /
 * "noreply@anthropic.com" (spec §11.1).
 * Returns 0 with the new commit's 40-hex SHA in sha_out, GOP_NOTHING when
 * the staged tree equals HEAD's ("nothing to commit"), or -1.
 */
int gop_commit(struct gop_ctx *c, const char *repo, const char *message,
	       const char *const *files, const char *const *exclude,
	       char sha_out[41], struct err *e);

enum gop_strategy { GOP_STRATEGY_AUTO = 0, GOP_STRATEGY_FAIL };
enum gop_recovery { GOP_RECOVERY_NONE = 0, GOP_RECOVERY_REBASE, GOP_RECOVERY_FORCE_WITH_LEASE };

struct gop_push_result {
	int pushed;
	char branch[256];             /* the remote branch */
	char sha[41];                 /* what refs/heads/<branch> on origin holds now */
	enum gop_recovery recovery;
	char remote_sha[41];          /* the remote head the recovery started from */
	/* rebase: files both sides changed, resolved with the agent's side;
	 * force-with-lease: the conflicts the rebase could not resolve. */
	char **conflict_files;
	size_t n_conflicts;
};

/*
 * gop_push: push the current local branch (HEAD) to refs/heads/<branch>
 * on origin.  When the remote has commits the local branch lacks:
 *   GOP_STRATEGY_FAIL: -1 with the seed's "Push rejected. ..." text;
 *   GOP_STRATEGY_AUTO: fetch the branch, replay the local commits on it
 *     with conflicting hunks resolved in favour of the local (agent's)
 *     side, push (recovery REBASE); if the replay cannot complete
 *     (modify/delete and other tree conflicts), push the original commits
 *     with force, but only while the remote still holds the SHA that was
 *     fetched (the check runs on the push connection's own advertisement,
 *     and receive-pack verifies the old value again): FORCE_WITH_LEASE.
 * The local branch is moved to the rebased commits.  Free r with
 * gop_push_result_free whatever this returns.
 */
int gop_push(struct gop_ctx *c, const char *repo, const char *branch,
	     enum gop_strategy strategy, struct gop_push_result *r, struct err *e);
void gop_push_result_free(struct gop_push_result *r);

/* ---- external test repo (spec §8.5, §11.2) ---------------------------- */

struct gop_tests_repo {
	const char *url;              /* https://github.com/<owner>/<repo>(.git) */
	const char *branch;           /* base branch; NULL: "main" (PR base omitted) */
	const char *token;            /* installationAccessToken, or NULL */
	const char *existing_pr_branch;
	int depth;                    /* gitDepth; 0: full */
};

/* gop_github_parse: owner and repo of a GitHub URL (seed regex
 * github\.com/([^/]+)/([^/]+?)(\.git)?$).  0 or -1 with the seed's text. */
int gop_github_parse(const char *url, char *owner, size_t olen, char *repo, size_t rlen,
		     struct err *e);

/*
 * gop_tests_setup: the submodule `tests` of the repository at repo_dir,
 * recorded with the plain URL <github_url>/<owner>/<repo>.git (never a
 * token: authentication goes through the credentials callback), checked
 * out at existing_pr_branch, or else at the tip of branch, fetched with
 * depth.  Adds it when .gitmodules has no [submodule "tests"], else
 * initialises it.  Errors: the seed's "Cannot add submodule at 'tests' ..."
 * or "Failed to initialize submodule: ...".
 */
int gop_tests_setup(struct gop_ctx *c, const char *repo_dir, const struct gop_tests_repo *t,
		    struct err *e);

struct gop_pr {
	int created;
	char url[512];                /* html_url */
	long number;
	char repo[256];               /* owner/repo */
	char branch[256];
};

/*
 * gop_tests_publish: when <repo_dir>/tests has changes, commit them there
 * on existing_pr_branch or "bugzy/<taskSlug|task>-<taskId[0:8]>", push
 * that branch, open the pull request (unless existing_pr_branch) with the
 * seed's title and body (POST <github_api>/repos/<owner>/<repo>/pulls),
 * and put the submodule back on the commit the parent records.  Returns 0
 * (pr filled when created), GOP_NOTHING (no change), or -1.
 */
int gop_tests_publish(struct gop_ctx *c, const char *repo_dir, const struct gop_tests_repo *t,
		      const char *task_id, const char *task_slug, const char *task_name,
		      struct gop_pr *pr, struct err *e);

#endif
