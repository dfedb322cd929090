/*
 * sandbox_selftest.c: the `ccr selftest` case for the agent's sandbox:
 * where this machine allows namespaces, that a real box hides the host's
 * files and processes, keeps the workspace writable and reaches a relayed
 * port and nothing else.  Where namespaces are not
 * available the case says so and which level applies instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"
#include "selftest/selftest.h"

static int listen_loopback(int *port)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 4) != 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) != 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return s;
}

static int connect_port(int port)
{
	struct sockaddr_in a;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

/* Inside the box (process C): each failed check exits with its number. */
static _Noreturn void inside(const char *secret, const char *ws, pid_t ccr, int relayed, int other)
{
	char path[600], got[3] = { 0 };
	int fd;

	if (getpid() != 2)
		_exit(10);                            /* pid 1 is the box's init, the agent is 2 */
	if (open(secret, O_RDONLY) >= 0 || kill(ccr, 0) == 0)
		_exit(11);                            /* the host's files and processes are out of sight */
	snprintf(path, sizeof(path), "%s/written", ws);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
		_exit(12);
	close(fd);
	if ((fd = connect_port(relayed)) < 0 || read(fd, got, 2) != 2 || strcmp(got, "ok") != 0)
		_exit(13);                            /* the relayed port works */
	close(fd);
	if ((fd = connect_port(other)) >= 0)
		_exit(14);                            /* the host's other loopback ports do not */
	_exit(0);
}

static int run_box(const char *base, char *why, size_t n)
{
	char ws[300], secret[300];
	struct sbx_config c;
	struct sbx_spawn sp;
	struct err e = ERR_INIT;
	int relayed, other, lr, lo, st = 0, rc = 1, fd;
	pid_t pid;

	snprintf(ws, sizeof(ws), "%s/ws", base);
	snprintf(secret, sizeof(secret), "%s/secret", base);
	if (mkdir(ws, 0700) != 0 || (fd = open(secret, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return st_fail(why, n, "cannot prepare %s: %s", base, strerror(errno));
	close(fd);
	if ((lr = listen_loopback(&relayed)) < 0 || (lo = listen_loopback(&other)) < 0)
		return st_fail(why, n, "cannot listen on loopback: %s", strerror(errno));
	memset(&c, 0, sizeof(c));
	c.level = sbx_probe()->landlock_abi > 0 ? SBX_FULL : SBX_NAMESPACES;
	c.workspace = ws;
	c.ports[c.nports++] = relayed;
	if (sbx_prepare(&sp, &c, NULL, &e) != 0) {
		close(lr), close(lo);
		return st_fail(why, n, "%s", e.msg);
	}
	pid = fork();
	if (pid == 0) {
		if (sbx_child(&sp) != 0)
			_exit(9);
		close(sp.chan[1]);                    /* as an exec would: the box is ready */
		inside(secret, ws, sp.ccr_pid, relayed, other);
	}
	if (pid > 0 && sbx_started(&sp, &e) == 0) {
		struct pollfd p = { lr, POLLIN, 0 };
		if (poll(&p, 1, 10000) == 1 && (fd = accept(lr, NULL, NULL)) >= 0) {
			(void)!write(fd, "ok", 2);
			close(fd);
		}
	}
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	sbx_finish(&sp);
	close(lr), close(lo);
	if (pid < 0 || e.msg[0])
		st_fail(why, n, "%s", pid < 0 ? "fork failed" : e.msg);
	else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		st_fail(why, n, "check %d failed inside the box", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	else if (access(ws, F_OK) != 0 || (snprintf(secret, sizeof(secret), "%s/written", ws), access(secret, F_OK)) != 0)
		st_fail(why, n, "the workspace was not writable from the box");
	else
		rc = 0;
	return rc;
}

static void remove_tree(const char *base)
{
	static const char *const names[] = { "ws/written", "ws/.box", "ws", "secret" };
	char p[400];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", base, names[i]);
		if (unlink(p) != 0)
			rmdir(p);
	}
	rmdir(base);
}

static int t_box(char *why, size_t n)
{
	const struct sbx_probe *p = sbx_probe();
	const char *tmp = getenv("TMPDIR");
	char base[256];
	int rc;

	if (!p->userns) {
		snprintf(why, n, "no namespaces here (%s): tasks get %s", p->why[0] ? p->why : "unavailable",
			 p->landlock_abi > 0 ? "Landlock only" : "no sandbox");
		return 0;
	}
	snprintf(base, sizeof(base), "%s/ccr-box-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base))
		return st_fail(why, n, "cannot create a directory under TMPDIR: %s", strerror(errno));
	rc = run_box(base, why, n);
	remove_tree(base);
	if (rc == 0)
		snprintf(why, n, "namespaces%s (Landlock ABI %d)", p->landlock_abi > 0 ? " + Landlock" : "", p->landlock_abi);
	return rc;
}

const struct st_case sandbox_selftests[] = {
	{ "box", t_box },
	{ NULL, NULL },
};
