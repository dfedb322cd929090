/*
 * git_op.c: one network operation of gop (struct gop_op, git_int.h):
 * op_begin sets the deadline and libgit2's socket timeouts and starts a
 * watchdog thread; the remote callbacks enforce the deadline, offer the
 * HTTPS credentials to the operation's own host only, and collect the
 * remote's messages and the push results; op_end stops the watchdog and
 * reaps every ssh child the operation started (git_ssh.c records their
 * pids).  Failures are mapped to the seed's texts (op_clone_error,
 * op_push_error) with the raw detail, redacted, in ctx->detail.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <git2/sys/errors.h>

#include "git/git.h"
#include "git/git_int.h"
#include "util/redact.h"

#define MAX_SSH_PIDS 32
#define REMOTE_MSG_CAP 4096

/* ---- operations: deadline, watchdog, ssh children -------------------------- */

static int read_pids(struct gop_ctx *c, pid_t *pids, int max)
{
	struct buf b = BUF_INIT;
	char path[1200];
	const char *p;
	int n = 0;

	gop_path(path, sizeof(path), c, "ssh.pids");
	if (gop_read_file(path, &b, 65536) != 0 || !b.p) {
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
		gop_url_host(url, op->host, sizeof(op->host));
	c->detail[0] = 0;
	c->timed_out = 0;
	if (gop_ssh_prepare(c, e) != 0)
		return -1;
	gop_path(path, sizeof(path), c, "ssh.pids");
	if (gop_write_file(path, "", 0, e) != 0)
		return -1;
	gop_path(path, sizeof(path), c, "ssh.err");
	if (gop_write_file(path, "", 0, e) != 0)
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
	gop_url_host(url ? url : "", host, sizeof(host));
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
	buf_adds(&d, gop_git_msg());
	gop_path(path, sizeof(path), c, "ssh.err");
	if (gop_read_file(path, &ssh, 8192) == 0 && ssh.len)
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
int op_clone_error(struct gop_op *op, int rc, int ssh, const char *branch, struct err *e)
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

int op_fetch_error(struct gop_op *op, int rc, const char *what, struct err *e)
{
	const char *d = op_detail(op, rc);

	if (op->c->timed_out)
		return gop_errf(e, "Failed to fetch %s: the operation timed out", what);
	if (has(d, "Host key verification failed"))
		return gop_errf(e, "Failed to fetch %s: %s", what, host_key_msg);
	return gop_errf(e, "Failed to fetch %s: %s", what, d);
}
