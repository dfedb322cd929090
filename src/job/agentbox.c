/*
 * agentbox.c: the sandbox a task's agent runs in (sandbox.h), as the job
 * sets it up for one task.
 *
 * Once per task, after the proxies are up and before anything of the
 * agent runs: the mode (CCR_SANDBOX) gives the level this machine allows;
 * a level below the full one is a WARNING on the task's log (and "off" an
 * explicit, logged opt-out); "required" fails the task when namespaces
 * cannot be built.  The level goes into the task's metadata.  Inside the
 * box the agent's HOME and TMPDIR are in its workspace (<ws>/home and
 * <ws>/tmp), so nothing it writes lands in the operator's HOME or a /tmp
 * that other tasks share.  The ports the box can reach are the token
 * proxy's (and the egress proxy's): see agentbox_setup().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job/cliconf.h"
#include "job/task_int.h"

static int make_dir(char *out, size_t size, const char *ws, const char *name, struct err *e)
{
	if (snprintf(out, size, "%s/%s", ws, name) >= (int)size)
		return err_set(e, "the workspace path is too long");
	if (mkdir(out, 0700) != 0 && errno != EEXIST)
		return err_set(e, "cannot create %s: %s", out, strerror(errno));
	return 0;
}

static void say_level(enum sbx_mode mode, enum sbx_level level)
{
	const struct sbx_probe *p = sbx_probe();

	if (mode == SBX_MODE_OFF)
		slog(SLOG_WARNING, "CCR_SANDBOX=off: the agent runs without a sandbox and can read what ccr job can");
	else if (level == SBX_NAMESPACES)
		slog(SLOG_WARNING, "sandbox: namespaces only; this kernel has no Landlock for the second layer");
	else if (level == SBX_LANDLOCK)
		slog(SLOG_WARNING, "sandbox: Landlock only (no user namespaces here: %s); the agent shares the host's "
				    "network and process view", p->why[0] ? p->why : "unavailable");
	else if (level == SBX_NONE)
		slog(SLOG_WARNING, "sandbox: none could be built here (no user namespaces: %s; no Landlock); set "
				    "CCR_SANDBOX=off to run like this on purpose", p->why[0] ? p->why : "unavailable");
}

/* The operator's $HOME/.claude directories that the per-task config
 * links to (cliconf.h): shown read-only in the box, so the links resolve. */
static void operator_claude_dirs(struct task *t)
{
	const char *name;
	struct stat st;
	size_t i, k = 0;

	for (i = 0; (name = cf_linked_dir(i)) != NULL && k < SBX_MAX_MORE; i++) {
		char *p = t->box_ro[k];
		int len = snprintf(p, sizeof(t->box_ro[k]), "%s/.claude/%s", t->env->set->home, name);
		if (len < (int)sizeof(t->box_ro[k]) && stat(p, &st) == 0 && S_ISDIR(st.st_mode))
			t->box.ro_more[k++] = p;
	}
}

int agentbox_setup(struct task *t, struct err *e)
{
	enum sbx_mode mode;
	enum sbx_level level;

	if (sbx_mode_parse(t->env->set->sandbox, &mode, e) != 0 || sbx_level_for(mode, &level, e) != 0)
		return -1;
	say_level(mode, level);
	memset(&t->box, 0, sizeof(t->box));
	t->box.level = level;
	t->rep.sandbox = sbx_level_name(level);
	if (level == SBX_NONE)
		return 0;
	if (make_dir(t->box_home, sizeof(t->box_home), t->ws.dir, "home", e) != 0 ||
	    make_dir(t->box_tmp, sizeof(t->box_tmp), t->ws.dir, "tmp", e) != 0)
		return -1;
	t->box.workspace = t->ws.dir;
	t->box.tmpdir = t->box_tmp;
	t->box.ro_extra = t->env->set->sandbox_ro;
	t->box.rw_extra = t->env->set->sandbox_rw;
	t->box.self_exe = t->self_exe[0] ? t->self_exe : NULL;
	t->box.ports[t->box.nports++] = tp_port(&t->proxy);
	if (t->egress_on)
		t->box.ports[t->box.nports++] = eg_port(&t->egress);
	operator_claude_dirs(t);
	t->agent.home = t->box_home;
	t->agent.tmpdir = t->box_tmp;
	return 0;
}

const struct sbx_config *agentbox(const struct task *t)
{
	return t->box.level == SBX_NONE ? NULL : &t->box;
}
