/*
 * git_ssh.c: ccr's one SSH host-key policy, used by libgit2's ssh (the
 * in-memory core.sshCommand of every repository gop opens) and by the
 * agent's own git (the GIT_SSH_COMMAND gop_agent_ssh_command builds).
 *
 * Policy.  Known hosts are, in order: the payload's `sshKnownHosts`
 * (ctx->known_hosts), the operator's file (ctx->known_hosts_file, env
 * CCR_SSH_KNOWN_HOSTS) and the built-in keys of github.com, gitlab.com and
 * bitbucket.org (git_hostkeys.c).  gop_ssh_prepare writes them once to
 * <workspace>/.ssh/known_hosts, and both commands point ssh at that file
 * with StrictHostKeyChecking=yes; so the agent's ssh trusts exactly the
 * hosts ccr's own clone trusts.  The explicit opt-out (ctx->ssh_insecure)
 * gives both StrictHostKeyChecking=no with /dev/null as known hosts.
 *
 * libgit2 runs ssh as `/bin/sh -c "<core.sshCommand> -p PORT 'user@host'
 * 'git-upload-pack' 'path'"` and never reaps it.  gop's command is a small
 * shell function: it records the shell's pid, then `exec ssh ... 2>>ERR`
 * becomes ssh (same pid), whose stderr goes to a file gop reads for error
 * messages.  With the pids known, the watchdog (git_op.c) can kill a
 * stalled ssh at the deadline and op_end can reap every child.  The
 * command is attached to each repository object as an in-memory config
 * backend at the APP level, so it is never written to .git/config.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <git2.h>
#include <git2/sys/errors.h>
#include <git2/sys/config.h>

#include "git/git.h"
#include "git/git_int.h"

/* Write <dir>/known_hosts once (also when the policy is insecure: cheap). */
int gop_ssh_prepare(struct gop_ctx *c, struct err *e)
{
	struct buf kh = BUF_INIT;
	char path[1200];
	int rc = 0;

	if (c->prepared)
		return 0;
	if (c->known_hosts && *c->known_hosts) {
		rc |= buf_adds(&kh, c->known_hosts);
		if (kh.len && kh.p[kh.len - 1] != '\n')
			rc |= buf_addc(&kh, '\n');
	}
	if (c->known_hosts_file) {
		size_t before = kh.len;
		if (gop_read_file(c->known_hosts_file, &kh, 4u << 20) != 0) {
			buf_free(&kh);
			return err_set(e, "cannot read the SSH known hosts file %s (CCR_SSH_KNOWN_HOSTS): %s",
				       c->known_hosts_file, strerror(errno));
		}
		if (kh.len > before && kh.p[kh.len - 1] != '\n')
			rc |= buf_addc(&kh, '\n');
	}
	rc |= buf_adds(&kh, gop_builtin_known_hosts);
	if (rc != 0) {
		buf_free(&kh);
		return err_set(e, "git: out of memory");
	}
	gop_path(path, sizeof(path), c, "known_hosts");
	rc = gop_write_file(path, kh.p, kh.len, e);
	buf_free(&kh);
	if (rc == 0)
		c->prepared = 1;
	return rc;
}

/*
 * The core.sshCommand value (see the design note at the top).  libgit2
 * appends [-p PORT] "user@host" "git-upload-pack" "path"; the shell
 * function records its pid, then becomes ssh with the remote command as
 * git itself sends it, one string with the path single-quoted
 * (git-upload-pack '/path'), which git-shell and other restricted shells
 * require.
 */
static const char ssh_fn_head[] =
	"ccr_ssh() { echo $$ >>";
static const char ssh_fn_args[] =
	"; if [ \"$1\" = -p ]; then P=$2; shift 2; else P=; fi; R=$3; Q=; "
	"while :; do case $R in *\\'*) H=${R%%\\'*}; R=${R#*\\'}; Q=$Q$H\\'\\\\\\'\\';; "
	"*) Q=$Q$R; break;; esac; done; exec ssh";
static const char ssh_fn_tail[] =
	" ${P:+-p \"$P\"} \"$1\" \"$2 '$Q'\" 2>>";

/* The host-key options, one policy for libgit2's ssh and the agent's. */
static int hostkey_opts(struct gop_ctx *c, struct buf *b)
{
	struct buf opt = BUF_INIT;
	char path[1200];
	int rc = 0;

	if (c->ssh_insecure)
		return buf_adds(b, " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
				   " -o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR");
	gop_path(path, sizeof(path), c, "known_hosts");
	rc |= buf_adds(b, " -o StrictHostKeyChecking=yes -o ");
	rc |= buf_printf(&opt, "UserKnownHostsFile=\"%s\"", path);
	rc |= opt.p ? gop_sh_quote(b, opt.p) : -1;
	buf_free(&opt);
	return rc ? -1 : 0;
}

static int key_opts(struct gop_ctx *c, struct buf *b)
{
	if (!c->ssh_key_path)
		return 0;
	return buf_adds(b, " -o IdentitiesOnly=yes -i ") != 0 || gop_sh_quote(b, c->ssh_key_path) != 0 ? -1 : 0;
}

static int ssh_command(struct gop_ctx *c, struct buf *b)
{
	char path[1200];
	long cto = c->timeout_ms / 1000;
	int rc = 0;

	if (cto > 30)
		cto = 30;
	if (cto < 1)
		cto = 1;
	gop_path(path, sizeof(path), c, "ssh.pids");
	rc |= buf_adds(b, ssh_fn_head);
	rc |= gop_sh_quote(b, path);
	rc |= buf_adds(b, ssh_fn_args);
	rc |= buf_adds(b, " -o BatchMode=yes");
	rc |= key_opts(c, b);
	rc |= hostkey_opts(c, b);
	rc |= buf_printf(b, " -o ConnectTimeout=%ld -o ServerAliveInterval=15 -o ServerAliveCountMax=4", cto);
	rc |= buf_adds(b, ssh_fn_tail);
	gop_path(path, sizeof(path), c, "ssh.err");
	rc |= gop_sh_quote(b, path);
	rc |= buf_adds(b, "; }; ccr_ssh");
	return rc ? -1 : 0;
}

int gop_agent_ssh_command(struct gop_ctx *c, struct buf *out, struct err *e)
{
	if (gop_ssh_prepare(c, e) != 0)
		return -1;
	if (buf_adds(out, "ssh") != 0 || key_opts(c, out) != 0 || hostkey_opts(c, out) != 0)
		return err_set(e, "git: out of memory");
	return 0;
}

int gop_repo_attach(struct gop_ctx *c, git_repository *repo)
{
	git_config_backend_memory_options mo;
	git_config_backend *be = NULL;
	git_config *cfg = NULL;
	struct buf cmd = BUF_INIT, kv = BUF_INIT;
	const char *values[1];
	int rc;

	if (ssh_command(c, &cmd) != 0 || buf_adds(&kv, "core.sshcommand=") != 0 || buf_adds(&kv, cmd.p) != 0) {
		buf_free(&cmd);
		buf_free(&kv);
		git_error_set_str(GIT_ERROR_NOMEMORY, "out of memory");
		return -1;
	}
	memset(&mo, 0, sizeof(mo));
	mo.version = GIT_CONFIG_BACKEND_MEMORY_OPTIONS_VERSION;
	values[0] = kv.p;
	mo.backend_type = "ccr";
	rc = git_config_backend_from_values(&be, values, 1, &mo);
	if (rc == 0)
		rc = git_repository_config(&cfg, repo);
	if (rc == 0) {
		rc = git_config_add_backend(cfg, be, GIT_CONFIG_LEVEL_APP, repo, 1);
		if (rc == 0)
			be = NULL; /* owned by cfg now */
	}
	if (be)
		be->free(be);
	git_config_free(cfg);
	buf_free(&cmd);
	buf_free(&kv);
	return rc;
}

int gop_repo_open(struct gop_ctx *c, git_repository **out, const char *path, struct err *e)
{
	int rc;

	*out = NULL;
	if (gop_ssh_prepare(c, e) != 0)
		return -1;
	rc = git_repository_open_ext(out, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
	if (rc < 0)
		return gop_giterr(c, e, "cannot open the git repository", rc);
	rc = gop_repo_attach(c, *out);
	if (rc < 0) {
		gop_giterr(c, e, "cannot configure ssh for the repository", rc);
		git_repository_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

