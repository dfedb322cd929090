/*
 * sandbox.c: the parent's side of the sandbox (see sandbox.h): modes,
 * the probe of what this machine allows, and the preparation of one
 * spawn (the list of paths the box shows, computed before the fork so the
 * child allocates nothing).
 *
 * What the box shows read-only: the system directories, a short list of
 * /etc entries (name resolution, CA roots, users, git and ssh client
 * settings: never the host's ssh keys or shadow file), the program's own
 * directory, ccr itself, and the operator's CCR_SANDBOX_RO_PATHS.
 * Read-write: the task's workspace only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "settings/settings.h"

static const char *const system_paths[] = {
	"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
	"/etc/passwd", "/etc/group", "/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/host.conf",
	"/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/pki",
	"/etc/gitconfig", "/etc/localtime", "/etc/timezone", "/etc/alternatives", "/etc/ld.so.cache",
	"/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/os-release", "/etc/debian_version", "/etc/mime.types",
	"/etc/protocols", "/etc/services", "/etc/ssh/ssh_config", "/etc/ssh/ssh_config.d",
	"/etc/ssh/ssh_known_hosts", "/etc/bash.bashrc", "/etc/profile", "/etc/profile.d", "/etc/inputrc",
	"/etc/terminfo", "/etc/python3", "/etc/python3.11", "/etc/npmrc", "/etc/magic",
};

const char *sbx_level_name(enum sbx_level l)
{
	switch (l) {
	case SBX_FULL: return "namespaces+landlock";
	case SBX_NAMESPACES: return "namespaces";
	case SBX_LANDLOCK: return "landlock";
	default: return "none";
	}
}

const char *sbx_mode_name(enum sbx_mode m)
{
	return m == SBX_MODE_REQUIRED ? "required" : m == SBX_MODE_OFF ? "off" : m == SBX_MODE_LANDLOCK ? "landlock" : "auto";
}

int sbx_mode_parse(const char *s, enum sbx_mode *m, struct err *e)
{
	if (!s || !*s || strcmp(s, "auto") == 0)
		*m = SBX_MODE_AUTO;
	else if (strcmp(s, "required") == 0)
		*m = SBX_MODE_REQUIRED;
	else if (strcmp(s, "off") == 0)
		*m = SBX_MODE_OFF;
	else if (strcmp(s, "landlock") == 0)
		*m = SBX_MODE_LANDLOCK;
	else
		return err_set(e, "CCR_SANDBOX must be auto, required, landlock or off (got \"%.40s\")", s);
	return 0;
}

/* ---- one spawn ---- */

static int add(char (*list)[SBX_PATH], int *n, int max, const char *path)
{
	int i;

	if (!path || path[0] != '/' || *n >= max || strlen(path) >= SBX_PATH)
		return path && path[0] && path[0] != '/' ? -1 : 0;
	for (i = 0; i < *n; i++)
		if (strcmp(list[i], path) == 0)
			return 0;
	snprintf(list[(*n)++], SBX_PATH, "%s", path);
	return 0;
}

/* The directory holding the real file behind `exe`. */
static void add_program_dir(struct sbx_spawn *sp, const char *exe)
{
	char real[PATH_MAX], *slash;

	if (!exe || !realpath(exe, real))
		return;
	if ((slash = strrchr(real, '/')) && slash != real)
		*slash = 0;
	add(sp->ro, &sp->nro, SBX_MAX_PATHS, real);
}

static int add_extra(char (*list_out)[SBX_PATH], int *n_out, int max, const char *list, const char *name, struct err *e)
{
	char one[SBX_PATH];
	const char *p = list, *end;

	while (p && *p) {
		end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n >= sizeof(one))
			return err_set(e, "%s holds a path longer than %d bytes", name, SBX_PATH - 1);
		memcpy(one, p, n);
		one[n] = 0;
		if (n && add(list_out, n_out, max, one) != 0)
			return err_set(e, "%s must hold absolute paths separated by ':' (got \"%.80s\")", name, one);
		p = end ? end + 1 : NULL;
	}
	return 0;
}

int sbx_prepare(struct sbx_spawn *sp, const struct sbx_config *c, const char *exe, struct err *e)
{
	size_t i;

	memset(sp, 0, sizeof(*sp));
	sp->chan[0] = sp->chan[1] = -1;
	sp->level = c->level;
	sp->uid = geteuid();
	sp->gid = getegid();
	sp->ccr_pid = getpid();
	if (c->level == SBX_NONE)
		return 0;
	sp->landlock_abi = c->level == SBX_NAMESPACES ? 0 : sbx_landlock_abi();
	for (i = 0; i < sizeof(system_paths) / sizeof(system_paths[0]); i++)
		add(sp->ro, &sp->nro, SBX_MAX_PATHS, system_paths[i]);
	add_program_dir(sp, exe);
	add(sp->ro, &sp->nro, SBX_MAX_PATHS, c->self_exe);
	for (i = 0; i < SBX_MAX_MORE && c->ro_more[i]; i++)
		add(sp->ro, &sp->nro, SBX_MAX_PATHS, c->ro_more[i]);
	if (c->self_exe && strlen(c->self_exe) < sizeof(sp->init_exe))
		snprintf(sp->init_exe, sizeof(sp->init_exe), "%s", c->self_exe);
	if (add_extra(sp->ro, &sp->nro, SBX_MAX_PATHS, c->ro_extra, "CCR_SANDBOX_RO_PATHS", e) != 0)
		return -1;
	if (add(sp->rw, &sp->nrw, SBX_MAX_RW, c->workspace) != 0 || add(sp->rw, &sp->nrw, SBX_MAX_RW, c->tmpdir) != 0)
		return err_set(e, "the sandbox's workspace must be an absolute path");
	if (add_extra(sp->rw, &sp->nrw, SBX_MAX_RW, c->rw_extra, "CCR_SANDBOX_RW_PATHS", e) != 0)
		return -1;
	for (i = 0; i < (size_t)c->nports && i < SBX_MAX_PORTS; i++)
		sp->ports[sp->nports++] = c->ports[i];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp->chan) != 0)
		return err_set(e, "cannot create a socket pair for the sandbox: %s", strerror(errno));
	/* The view is built on <workspace>/.box: it goes with the workspace,
	 * and the agent sees it empty (the workspace is bound without it). */
	if (c->level >= SBX_NAMESPACES) {
		if (snprintf(sp->root, sizeof(sp->root), "%s/.box", c->workspace) >= (int)sizeof(sp->root) ||
		    (mkdir(sp->root, 0700) != 0 && errno != EEXIST)) {
			sp->root[0] = 0;
			return err_set(e, "cannot create the sandbox's root directory in %s: %s", c->workspace, strerror(errno));
		}
	}
	return 0;
}

/* Read the child's reports until it execs (end of file) or fails. */
static int read_reports(struct sbx_spawn *sp, int *fds, int *nfds, struct err *e)
{
	char msg[640], cbuf[CMSG_SPACE(sizeof(int) * SBX_MAX_PORTS)];
	struct pollfd p = { sp->chan[0], POLLIN, 0 };

	for (;;) {
		struct iovec iov = { msg, sizeof(msg) - 1 };
		struct msghdr m;
		struct cmsghdr *c;
		ssize_t n;

		if (poll(&p, 1, 30000) == 0)
			return err_set(e, "sandbox: the box was not ready within 30 s");
		memset(&m, 0, sizeof(m));
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = cbuf;
		m.msg_controllen = sizeof(cbuf);
		n = recvmsg(sp->chan[0], &m, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		msg[n] = 0;
		if (msg[0] == 'E')
			return err_set(e, "sandbox: %s", msg + 1);
		c = CMSG_FIRSTHDR(&m);              /* one message, one control block */
		if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)(k > SBX_MAX_PORTS ? SBX_MAX_PORTS : k));
				*nfds = k > SBX_MAX_PORTS ? SBX_MAX_PORTS : k;
			}
	}
}

int sbx_started(struct sbx_spawn *sp, struct err *e)
{
	int fds[SBX_MAX_PORTS], nfds = 0, rc, i;

	if (sp->chan[1] >= 0)
		close(sp->chan[1]);
	sp->chan[1] = -1;
	if (sp->level == SBX_NONE || sp->chan[0] < 0)
		return 0;
	rc = read_reports(sp, fds, &nfds, e);
	close(sp->chan[0]);
	sp->chan[0] = -1;
	if (rc == 0 && sp->level >= SBX_NAMESPACES && sp->nports) {
		if (nfds != sp->nports)
			rc = err_set(e, "sandbox: the box did not hand over its proxy ports");
		else
			rc = sbx_relay_start(&sp->relay, fds, sp->ports, nfds, e);
	}
	if (rc != 0)
		for (i = 0; i < nfds; i++)
			close(fds[i]);
	return rc;
}

void sbx_finish(struct sbx_spawn *sp)
{
	int i;

	for (i = 0; i < 2; i++)
		if (sp->chan[i] >= 0) {
			close(sp->chan[i]);
			sp->chan[i] = -1;
		}
	if (sp->relay) {
		sbx_relay_stop(sp->relay);
		sp->relay = NULL;
	}
	sp->root[0] = 0;       /* <workspace>/.box stays for the next spawn */
}

/* ---- what this machine allows ---- */

/* Build a throwaway box around nothing, with the real code. */
static void probe_userns(struct sbx_probe *pr)
{
	struct sbx_config c;
	struct sbx_spawn sp;
	struct err e = ERR_INIT;
	char dir[256], c_box[300];
	const char *tmp = settings_str(SET_TMPDIR);
	int st = 0;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/ccr-probe-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		snprintf(pr->why, sizeof(pr->why), "cannot create a directory under %s: %s", tmp && *tmp ? tmp : "/tmp", strerror(errno));
		return;
	}
	memset(&c, 0, sizeof(c));
	c.level = SBX_NAMESPACES;
	c.workspace = dir;
	if (sbx_prepare(&sp, &c, NULL, &e) != 0) {
		snprintf(pr->why, sizeof(pr->why), "%s", e.msg);
		rmdir(dir);
		return;
	}
	pid = fork();
	if (pid == 0) {
		if (sbx_child(&sp) != 0)
			_exit(127);
		_exit(0);
	}
	if (pid < 0 || sbx_started(&sp, &e) != 0)
		snprintf(pr->why, sizeof(pr->why), "%s", pid < 0 ? "fork failed" : e.msg);
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	if (pid > 0 && !pr->why[0] && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		snprintf(pr->why, sizeof(pr->why), "the probe's box ended with status %d", st);
	pr->userns = pid > 0 && !pr->why[0];
	sbx_finish(&sp);
	snprintf(c_box, sizeof(c_box), "%s/.box", dir);
	rmdir(c_box);
	rmdir(dir);
}

/* Static: what this machine allows, computed once per process. */
static struct sbx_probe probe_result;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe_now(void)
{
	probe_result.landlock_abi = sbx_landlock_abi();
	probe_userns(&probe_result);
}

const struct sbx_probe *sbx_probe(void)
{
	pthread_once(&probe_once, probe_now);
	return &probe_result;
}

int sbx_level_for(enum sbx_mode m, enum sbx_level *out, struct err *e)
{
	const struct sbx_probe *p;

	if (m == SBX_MODE_OFF) {
		*out = SBX_NONE;
		return 0;
	}
	p = sbx_probe();
	if (m == SBX_MODE_LANDLOCK) {
		*out = SBX_LANDLOCK;
		return p->landlock_abi > 0 ? 0 : err_set(e, "CCR_SANDBOX=landlock, but this kernel has no Landlock");
	}
	if (p->userns)
		*out = p->landlock_abi > 0 ? SBX_FULL : SBX_NAMESPACES;
	else if (p->landlock_abi > 0)
		*out = SBX_LANDLOCK;
	else
		*out = SBX_NONE;
	if (m == SBX_MODE_REQUIRED && *out < SBX_NAMESPACES)
		return err_set(e, "CCR_SANDBOX=required, but the sandbox cannot be built here: %s",
			       p->why[0] ? p->why : "user namespaces are not available");
	return 0;
}
