/*
 * sandbox.h: the box every program of the agent runs in (prefix sbx_).
 *
 * The agent (the Claude CLI, the pre-execution commands, the MCP stdio
 * servers the CLI starts, and everything they start) is untrusted code: a
 * prompt injected through a cloned repository can make it do anything a
 * shell can.  ccr builds the box itself, with no external tool, from two
 * independent layers, so that a hole in one is not a hole in the box.
 *
 * Layer 1, namespaces (where the kernel allows unprivileged user
 * namespaces).  The child of ccr that is about to exec the program
 * (process A) enters new user, mount, pid, network, ipc and uts
 * namespaces.  The user namespace maps only ccr's own uid and gid (no
 * other identity exists inside); every capability it grants is dropped
 * before the exec, with the securebits locked, so uid 0 inside gets none
 * back, and no_new_privs is set.  A's child B is pid 1 of the new pid
 * namespace: it builds the view and stays as the reaper; its child C
 * execs the program.  What each namespace stops:
 *   - pid: the agent sees no ccr process, so it cannot read
 *     /proc/<ccr>/mem or /environ, or signal ccr, serve or another task.
 *     When B dies (A dies with ccr job, through PDEATHSIG, and B with A),
 *     the kernel kills every process left in the box: nothing outlives
 *     the task.
 *   - mount: a view built on an empty tmpfs, then pivot_root'ed into:
 *     the system directories and the program's own directory read-only
 *     (nosuid, nodev), a chosen list of /etc entries (no host keys, no
 *     shadow file), the task's workspace read-write, a private /tmp, a
 *     minimal /dev, and a fresh /proc of the new pid namespace.  ccr's
 *     data directory, its sealing key, the operator's HOME and the other
 *     tasks' workspaces are not in it.  The root itself is read-only.
 *   - network: only loopback exists.  Each port of sbx_config.ports (the
 *     token proxy, the egress proxy) is listened on at 127.0.0.1:<port>
 *     inside, by A, and the listening sockets are handed to ccr over a
 *     socket pair; ccr relays every connection to the same port on the
 *     host's loopback (relay.c).  So the agent reaches the network only
 *     through ccr's proxies, and never the host's loopback services or
 *     the metadata server.
 *   - ipc, uts: no shared memory or message queues with the host; a
 *     hostname of its own.
 *
 * Layer 2, Landlock (where the kernel has it; landlock.c), applied by C
 * just before the exec, also when namespaces are available:
 *   - files: read and execute beneath the read-only paths, read-write
 *     beneath the workspace, the private tmp and the devices; nothing
 *     else, whatever the mounts say;
 *   - TCP connect limited to sbx_config.ports (Landlock ABI >= 4), applied
 *     only when there is no network namespace: inside one, loopback is the
 *     agent's own, and a test server the agent starts there must work;
 *   - signals and abstract unix sockets scoped to the box (ABI >= 6);
 *   - ptrace, and so /proc/<pid>/mem and /environ, of processes outside
 *     the box is refused by Landlock itself (every ABI).
 * Where user namespaces are unavailable (some container runtimes, or
 * sysctls that forbid them), Landlock alone applies, with the host paths.
 *
 * Levels and modes.  sbx_probe() finds what this machine allows, once per
 * process (it forks a child that builds a throwaway box).  The level in
 * force is SBX_FULL (namespaces and Landlock), SBX_NAMESPACES (namespaces,
 * the kernel has no Landlock), SBX_LANDLOCK or SBX_NONE.  The operator
 * picks the mode with CCR_SANDBOX: "auto" (default: the best level the
 * machine allows), "required" (a task fails unless namespaces work),
 * "landlock" (Landlock alone, as on a host without user namespaces: for
 * hosts where namespaces misbehave, and to test that layer on its own),
 * or "off" (an explicit opt-out).
 *
 * Use, around every fork of an agent program:
 *     struct sbx_spawn sp;
 *     if (sbx_prepare(&sp, &cfg, exe, e) != 0) ...     // parent, before fork
 *     pid = fork();
 *     child:  setpgid, wire stdio; if (sbx_child(&sp) != 0) report errno;
 *             chdir, execve                           // only C returns
 *     parent: if (sbx_started(&sp, e) != 0) ...        // fds in, relays on
 *             ... wait for pid ...
 *             sbx_finish(&sp);                         // relays off, cleanup
 * sbx_child() uses no allocation and only async-signal-safe calls, since
 * ccr job has threads.  Paths keep their host names inside the box, so a
 * cwd, an argv or a config file written by ccr means the same inside.
 */
#ifndef CCR_SANDBOX_H
#define CCR_SANDBOX_H

#include <sys/types.h>

#include "util/err.h"

#define SBX_MAX_PORTS 4
#define SBX_MAX_PATHS 64
#define SBX_MAX_RW 8
#define SBX_MAX_MORE 8
#define SBX_PATH 1024

enum sbx_mode { SBX_MODE_AUTO, SBX_MODE_REQUIRED, SBX_MODE_OFF, SBX_MODE_LANDLOCK };
enum sbx_level { SBX_NONE, SBX_LANDLOCK, SBX_NAMESPACES, SBX_FULL };

/* "namespaces+landlock", "namespaces", "landlock", "none". */
const char *sbx_level_name(enum sbx_level l);
const char *sbx_mode_name(enum sbx_mode m);

/* sbx_mode_parse: CCR_SANDBOX's value (NULL or "" is auto); -1 with e set
 * for anything else. */
int sbx_mode_parse(const char *s, enum sbx_mode *m, struct err *e);

struct sbx_probe {
	int userns;                       /* the namespaces and the view can be built */
	int landlock_abi;                 /* 0: no Landlock */
	char why[256];                    /* why userns is 0 (or "") */
};

/* sbx_probe: what this machine allows (computed once, then cached). */
const struct sbx_probe *sbx_probe(void);

/* sbx_level_for: the level a mode gives on this machine; -1 with e set
 * when the mode is "required" and namespaces cannot be built. */
int sbx_level_for(enum sbx_mode m, enum sbx_level *out, struct err *e);

struct sbx_config {
	enum sbx_level level;
	const char *workspace;            /* read-write: the task's workspace root */
	const char *tmpdir;               /* read-write private tmp (Landlock-only level) */
	const char *ro_extra;             /* ':'-separated read-only paths (CCR_SANDBOX_RO_PATHS) */
	const char *rw_extra;             /* ':'-separated read-write paths (CCR_SANDBOX_RW_PATHS) */
	const char *self_exe;             /* ccr itself, visible read-only (for `ccr connect`) */
	const char *ro_more[SBX_MAX_MORE];  /* more read-only paths (NULL-padded) */
	int ports[SBX_MAX_PORTS];         /* loopback ports reachable inside */
	int nports;
};

struct sbx_spawn {
	enum sbx_level level;
	int nro, nrw;
	char ro[SBX_MAX_PATHS][SBX_PATH];   /* read-only, host paths (files or directories) */
	char rw[SBX_MAX_RW][SBX_PATH];      /* read-write */
	char root[SBX_PATH];                /* the empty directory the view is built on */
	int ports[SBX_MAX_PORTS], nports;
	int landlock_abi;
	uid_t uid;
	gid_t gid;
	pid_t ccr_pid;                      /* the process that forks the child */
	char init_exe[SBX_PATH];            /* ccr itself: pid 1 of the box execs it (init.c) */
	int chan[2];                        /* socket pair: listening fds and errors to ccr */
	struct sbx_relay *relay;
};

/* sbx_prepare: everything the child needs, computed before the fork (the
 * program `exe` and its directory are made visible read-only). */
int sbx_prepare(struct sbx_spawn *sp, const struct sbx_config *c, const char *exe, struct err *e);

/* sbx_child: in the forked child.  Returns 0 in the process that must
 * exec (inside the box), or -1 with errno set (and a message sent to the
 * parent); the intermediate processes never return. */
int sbx_child(struct sbx_spawn *sp);

/* sbx_started: in the parent after the fork: waits until the child has
 * built the box (or failed: -1 with e set) and starts the port relays. */
int sbx_started(struct sbx_spawn *sp, struct err *e);

/* sbx_finish: after the child was reaped: stops the relays, removes the
 * view's directory.  Safe to call after a failed prepare or start. */
void sbx_finish(struct sbx_spawn *sp);

/* The port relays (relay.c): each listening fd (inside the box) is
 * accepted by a thread of ccr and joined to 127.0.0.1:<port> outside. */
struct sbx_relay;
int sbx_relay_start(struct sbx_relay **out, const int *listen_fds, const int *ports, int n, struct err *e);
void sbx_relay_stop(struct sbx_relay *r);

/* pid 1 of the box (init.c): reap every process until `agent` exits,
 * write its wait status to status_fd, exit.  `ccr sandbox-init AGENT FD`
 * is the same as a command of the binary. */
_Noreturn void sbx_reap(pid_t agent, int status_fd);
int sbx_init_main(int argc, char **argv);

/* Landlock (landlock.c).  sbx_landlock_abi: 0 when unavailable. */
int sbx_landlock_abi(void);
/* In the child: restrict this process to the spawn's paths (and ports
 * when `net` is set).  -1 with errno on failure. */
int sbx_landlock_apply(const struct sbx_spawn *sp, int net);

#endif
