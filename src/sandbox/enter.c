/*
 * enter.c: the child's side of the sandbox (see sandbox.h).
 *
 * Three processes, because a pid namespace only applies to the children
 * of the process that creates it:
 *   A  the forked child of ccr: unshares every namespace, maps its uid,
 *      brings loopback up, listens on the relayed ports and hands the
 *      sockets to ccr; then waits for B and exits the way B's child did.
 *      It ignores the signals the task's process group gets (ccr stops a
 *      run with SIGTERM to the group), so it stays until the end.
 *   B  pid 1 of the box: builds the view, pivots into it, forks C, and
 *      reaps every orphan until C is gone.  When B exits, the kernel
 *      kills whatever is left in the box.
 *   C  drops every capability, applies Landlock, and returns to the
 *      caller, which execs the program.
 * Everything runs after fork in a threaded process, so only async-signal-
 * safe calls are made: no malloc, no stdio, buffers on the stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#define NS_FLAGS (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

/* The signals a run's process group gets from ccr: A and B outlast them. */
static const int group_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

/* Send "E<what>: <errno text>" to ccr; keeps errno. */
static void tell_error(const struct sbx_spawn *sp, const char *what)
{
	char msg[600];
	int saved = errno, n;

	n = snprintf(msg, sizeof(msg), "E%s: %s", what, strerror(saved));
	if (n > 0)
		(void)!send(sp->chan[1], msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1, MSG_NOSIGNAL);
	errno = saved;
}

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int map_ids(const struct sbx_spawn *sp)
{
	char line[64];

	snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)sp->uid, (unsigned)sp->uid);
	if (write_text("/proc/self/uid_map", line) != 0)
		return tell_error(sp, "cannot map the user id into the sandbox"), -1;
	if (write_text("/proc/self/setgroups", "deny") != 0 && errno != ENOENT)
		return tell_error(sp, "cannot disable setgroups in the sandbox"), -1;
	snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)sp->gid, (unsigned)sp->gid);
	if (write_text("/proc/self/gid_map", line) != 0)
		return tell_error(sp, "cannot map the group id into the sandbox"), -1;
	return 0;
}

static int loopback_up(const struct sbx_spawn *sp)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

	if (s < 0)
		return tell_error(sp, "cannot open a socket in the sandbox"), -1;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	if (rc != 0)
		tell_error(sp, "cannot bring up loopback in the sandbox");
	close(s);
	return rc;
}

static int listen_on(int port)
{
	struct sockaddr_in a;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (s < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 128) != 0) {
		close(s);
		return -1;
	}
	return s;
}

/* Listen on every relayed port inside and pass the sockets to ccr: "F" +
 * SCM_RIGHTS.  A keeps none of them (the agent must never accept). */
static int hand_over_ports(const struct sbx_spawn *sp)
{
	int fds[SBX_MAX_PORTS], i, rc = 0;
	char cbuf[CMSG_SPACE(sizeof(fds))], tag = 'F';
	struct iovec iov = { &tag, 1 };
	struct msghdr m;
	struct cmsghdr *c;

	if (sp->nports == 0)
		return 0;
	for (i = 0; i < sp->nports; i++)
		if ((fds[i] = listen_on(sp->ports[i])) < 0) {
			tell_error(sp, "cannot listen on a proxy port in the sandbox");
			while (i-- > 0)
				close(fds[i]);
			return -1;
		}
	memset(&m, 0, sizeof(m));
	memset(cbuf, 0, sizeof(cbuf));
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = cbuf;
	m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)sp->nports);
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)sp->nports);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)sp->nports);
	if (sp->nports && sendmsg(sp->chan[1], &m, MSG_NOSIGNAL) != 1)
		rc = (tell_error(sp, "cannot hand the proxy ports to ccr"), -1);
	for (i = 0; i < sp->nports; i++)
		close(fds[i]);
	return rc;
}

/* ---- the view (process B) ---- */

static int join(char *out, const char *root, const char *path)
{
	int n = snprintf(out, SBX_PATH * 2, "%s%s", root, path);

	return n > 0 && n < SBX_PATH * 2 ? 0 : (errno = ENAMETOOLONG, -1);
}

/* mkdir -p of `path`, which lies in the view's own tmpfs. */
static int mkdirs(const char *path, mode_t mode)
{
	char p[SBX_PATH * 2];
	size_t i, n = strlen(path);

	if (n >= sizeof(p))
		return errno = ENAMETOOLONG, -1;
	memcpy(p, path, n + 1);
	for (i = 1; i <= n; i++)
		if (p[i] == '/' || p[i] == 0) {
			char c = p[i];
			p[i] = 0;
			if (mkdir(p, mode) != 0 && errno != EEXIST)
				return -1;
			p[i] = c;
		}
	return 0;
}

/* An empty mount point of the same kind as `src` at `dst`. */
static int mount_point(const char *dst, int is_dir)
{
	char parent[SBX_PATH * 2];
	char *slash;
	int fd;

	snprintf(parent, sizeof(parent), "%s", dst);
	if ((slash = strrchr(parent, '/')) && slash != parent)
		*slash = 0;
	if (mkdirs(parent, 0755) != 0)
		return -1;
	if (is_dir)
		return mkdir(dst, 0755) == 0 || errno == EEXIST ? 0 : -1;
	/* A file an earlier bind shows already (ccr under /usr in the job image)
	 * is its own mount point: opening it for writing would be refused. */
	if ((fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
		return errno == EEXIST ? 0 : -1;
	close(fd);
	return 0;
}

/* The flags a bind of `path` must keep when remounted inside a user
 * namespace (the kernel locks them), plus the ones asked for. */
static unsigned long locked_flags(const char *path)
{
	struct statvfs v;
	unsigned long f = 0;

	if (statvfs(path, &v) != 0)
		return 0;
	if (v.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (v.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (v.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (v.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	if (v.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (v.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	if (v.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	return f;
}

static int bind_path(const struct sbx_spawn *sp, const char *path, int writable)
{
	char dst[SBX_PATH * 2], link[SBX_PATH];
	struct stat st;
	ssize_t n;

	if (lstat(path, &st) != 0)
		return 0;                                /* absent here: nothing to show */
	if (join(dst, sp->root, path) != 0)
		return tell_error(sp, "a sandbox path is too long"), -1;
	/* A top-level symbolic link (/bin -> usr/bin) stays a link. */
	if (S_ISLNK(st.st_mode) && !strchr(path + 1, '/')) {
		if ((n = readlink(path, link, sizeof(link) - 1)) < 0)
			return 0;
		link[n] = 0;
		return symlink(link, dst) == 0 || errno == EEXIST ? 0 : (tell_error(sp, path), -1);
	}
	if (stat(path, &st) != 0)
		return 0;
	/* Read-only trees come with their submounts; the workspace without
	 * (the view's own root is mounted inside it). */
	if (mount_point(dst, S_ISDIR(st.st_mode)) != 0 || mount(path, dst, NULL, MS_BIND | (writable ? 0 : MS_REC), NULL) != 0)
		return tell_error(sp, path), -1;
	if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | locked_flags(path) | (writable ? 0 : MS_RDONLY),
		  NULL) != 0)
		return tell_error(sp, path), -1;
	return 0;
}

static int mount_tmpfs(const struct sbx_spawn *sp, const char *where, const char *opts, unsigned long flags)
{
	char dst[SBX_PATH * 2];

	if (join(dst, sp->root, where) != 0 || mkdirs(dst, 0755) != 0 ||
	    mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | flags, opts) != 0)
		return tell_error(sp, where), -1;
	return 0;
}

static int make_dev(const struct sbx_spawn *sp)
{
	static const char *const nodes[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty" };
	static const char *const links[][2] = { { "/proc/self/fd", "/dev/fd" },     { "/proc/self/fd/0", "/dev/stdin" },
						{ "/proc/self/fd/1", "/dev/stdout" }, { "/proc/self/fd/2", "/dev/stderr" },
						{ "pts/ptmx", "/dev/ptmx" } };
	char dst[SBX_PATH * 2];
	size_t i;

	if (mount_tmpfs(sp, "/dev", "mode=0755", MS_NOEXEC) != 0)
		return -1;
	for (i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
		if (join(dst, sp->root, nodes[i]) != 0 || mount_point(dst, 0) != 0)
			return tell_error(sp, nodes[i]), -1;
		if (mount(nodes[i], dst, NULL, MS_BIND, NULL) != 0 && strcmp(nodes[i], "/dev/tty") != 0)
			return tell_error(sp, nodes[i]), -1;
	}
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (join(dst, sp->root, links[i][1]) != 0 || symlink(links[i][0], dst) != 0)
			return tell_error(sp, links[i][1]), -1;
	if (mount_tmpfs(sp, "/dev/shm", "mode=1777", MS_NOEXEC) != 0)
		return -1;
	/* A terminal of its own, where the kernel allows it (optional). */
	if (join(dst, sp->root, "/dev/pts") == 0 && mkdirs(dst, 0755) == 0)
		(void)mount("devpts", dst, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	return 0;
}

static int build_view(const struct sbx_spawn *sp)
{
	char dst[SBX_PATH * 2];
	int i;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return tell_error(sp, "cannot make the sandbox's mounts private"), -1;
	if (mount("tmpfs", sp->root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
		return tell_error(sp, "cannot mount the sandbox's root"), -1;
	if (mount_tmpfs(sp, "/tmp", "mode=1777", 0) != 0)
		return -1;
	for (i = 0; i < sp->nro; i++)
		if (bind_path(sp, sp->ro[i], 0) != 0)
			return -1;
	for (i = 0; i < sp->nrw; i++)
		if (bind_path(sp, sp->rw[i], 1) != 0)
			return -1;
	if (make_dev(sp) != 0)
		return -1;
	/* proc can only be mounted while the host's one is still visible. */
	if (join(dst, sp->root, "/proc") != 0 || mkdirs(dst, 0555) != 0 ||
	    mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
		return tell_error(sp, "cannot mount /proc in the sandbox"), -1;
	if (chdir(sp->root) != 0 || syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
		return tell_error(sp, "cannot enter the sandbox's root"), -1;
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0)
		return tell_error(sp, "cannot make the sandbox's root read-only"), -1;
	return 0;
}

/* ---- capabilities (process C) ---- */

#define SECBITS_ALL_LOCKED 0xffU  /* noroot, no_setuid_fixup, keep_caps(off), no_ambient: all locked */

static int drop_privileges(const struct sbx_spawn *sp)
{
	struct { unsigned version; int pid; } hdr = { 0x20080522, 0 };   /* _LINUX_CAPABILITY_VERSION_3 */
	struct { unsigned eff, perm, inh; } data[2];
	int cap;

	/* Bits 0-7 except keep_caps (bit 4): uid 0 never regains capabilities. */
	if (prctl(PR_SET_SECUREBITS, SECBITS_ALL_LOCKED & ~0x10U, 0, 0, 0) != 0)
		return tell_error(sp, "cannot lock the securebits"), -1;
	for (cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
			return tell_error(sp, "cannot drop the capability bounding set"), -1;
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) != 0)
		return tell_error(sp, "cannot drop capabilities"), -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return tell_error(sp, "cannot set no_new_privs"), -1;
	return 0;
}

static void default_signals(void)
{
	struct sigaction sa;
	sigset_t none;
	int s;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (s = 1; s < 65; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void ignore_group_signals(void)
{
	size_t i;

	for (i = 0; i < sizeof(group_signals) / sizeof(group_signals[0]); i++)
		signal(group_signals[i], SIG_IGN);
}

/* Close every descriptor but `keep`. */
static void close_all_but(int keep)
{
	if (keep > 0)
		syscall(SYS_close_range, 0U, (unsigned)keep - 1, 0U);
	syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0U);
}

/* Exit the way a child with wait status `st` ended. */
static void mirror(int st)
{
	if (WIFSIGNALED(st)) {
		signal(WTERMSIG(st), SIG_DFL);
		kill(getpid(), WTERMSIG(st));
		_exit(128 + WTERMSIG(st));
	}
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

/* B after forking C: become a fresh `ccr sandbox-init` (init.c), so that
 * pid 1 of the box holds no copy of ccr job's memory (the real key, the
 * payload); if that exec fails, reap here. */
static void become_init(const struct sbx_spawn *sp, pid_t c, int status_fd)
{
	char cs[16], fs[16];
	char *argv[] = { "ccr-sandbox-init", cs, fs, NULL }, *envp[] = { NULL };

	close_all_but(status_fd);
	snprintf(cs, sizeof(cs), "%d", (int)c);
	snprintf(fs, sizeof(fs), "%d", status_fd);
	if (sp->init_exe[0] && fcntl(status_fd, F_SETFD, 0) == 0)
		execve(sp->init_exe, argv, envp);
	sbx_reap(c, status_fd);
}

static void process_b(struct sbx_spawn *sp, pid_t a, int status_fd)
{
	pid_t c;

	(void)a;                /* outside this pid namespace: getppid() says 0 */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	(void)sethostname("ccr-sandbox", 11);
	if (build_view(sp) != 0)
		_exit(127);
	c = fork();
	if (c < 0) {
		tell_error(sp, "cannot fork in the sandbox");
		_exit(127);
	}
	if (c > 0)
		become_init(sp, c, status_fd);
	close(status_fd);
	default_signals();
	if (drop_privileges(sp) != 0)
		_exit(127);
	if (sp->landlock_abi > 0 && sbx_landlock_apply(sp, 0) != 0) {
		tell_error(sp, "cannot apply Landlock in the sandbox");
		_exit(127);
	}
}

/* A: never returns. */
static void process_a(struct sbx_spawn *sp)
{
	int status[2], st = 0, bst = 0;
	pid_t a = getpid(), b;

	if (unshare(NS_FLAGS) != 0) {
		tell_error(sp, "cannot create the sandbox's namespaces");
		_exit(127);
	}
	if (map_ids(sp) != 0 || loopback_up(sp) != 0 || hand_over_ports(sp) != 0)
		_exit(127);
	if (pipe2(status, O_CLOEXEC) != 0) {
		tell_error(sp, "cannot create a pipe");
		_exit(127);
	}
	b = fork();
	if (b < 0) {
		tell_error(sp, "cannot fork the sandbox's first process");
		_exit(127);
	}
	if (b == 0) {
		close(status[0]);
		process_b(sp, a, status[1]);
		return;                                  /* only C gets here */
	}
	close_all_but(status[0]);
	while (waitpid(b, &bst, 0) < 0 && errno == EINTR)
		;
	if (read(status[0], &st, sizeof(st)) == (ssize_t)sizeof(st))
		mirror(st);
	mirror(bst);
}

int sbx_child(struct sbx_spawn *sp)
{
	if (sp->chan[0] >= 0)
		close(sp->chan[0]);
	if (sp->level == SBX_NONE)
		return 0;
	if (sp->level == SBX_LANDLOCK) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || sbx_landlock_apply(sp, 1) != 0)
			return tell_error(sp, "cannot apply Landlock"), -1;
		return 0;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != sp->ccr_pid)
		_exit(1);                                /* ccr is already gone */
	ignore_group_signals();
	process_a(sp);
	return 0;                                        /* C: exec now */
}
