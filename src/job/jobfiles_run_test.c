/*
 * jobfiles_run_test.c: the `jobfiles` selftests of what runs around
 * the agent: `.env` and the pre-execution commands (precmd.c), the
 * agent's environment (agentenv.c), the upload globbing (upload.c), the
 * MCP log (mcplog.c), prices and session paths.  The table is in
 * jobfiles_test.c.
 *
 * Every case works in a private directory under TMPDIR (default /tmp) and
 * removes it.  The pre-execution cases need /bin/sh; where there is none
 * (an empty chroot or a FROM scratch image) they pass with the note
 * "skipped: no /bin/sh", since those images never run pre-commands.  Their
 * commands use only shell built-ins.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "backend/storage.h"
#include "job/agentenv.h"
#include "job/claudecfg.h"
#include "job/mcplog.h"
#include "proxy/prices.h"
#include "job/session.h"
#include "job/precmd.h"
#include "job/upload.h"
#include "job/workspace.h"
#include "job/jobfiles_test.h"
#include "selftest/selftest.h"
#include "util/buf.h"
#include "util/jsjson.h"
#include "settings/settings.h"


/* ---- .env and pre-execution commands ------------------------------------ */

int jft_env_file(char *why, size_t n)
{
	cJSON *s = cJSON_Parse("{\"API_URL\":\"https://x.example/a=b\",\"TOKEN\":\"t 1\",\"API_URL\":\"last\",\"_E\":\"\"}");
	cJSON *bad = cJSON_Parse("{\"NOT-A-NAME\":\"x\"}"), *none = cJSON_Parse("{}");
	struct err e = ERR_INIT;
	struct buf got = BUF_INIT;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	int written = 0, fail = 1;

	if (!s || !bad || !none || jft_tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(s), cJSON_Delete(bad), cJSON_Delete(none);
		return st_fail(why, n, "setup failed");
	}
	snprintf(path, sizeof(path), "%s/.env", dir);
	if (pc_write_env(dir, none, &written, &e) != 0 || written || jft_exists(dir, ".env")) {
		st_fail(why, n, "an empty environmentSecrets wrote .env");
		goto out;
	}
	if (pc_write_env(dir, s, &written, &e) != 0 || !written) {
		st_fail(why, n, "pc_write_env: %s", e.msg);
		goto out;
	}
	if (jft_slurp(dir, ".env", &got) != 0 || strcmp(got.p, "API_URL=last\nTOKEN=t 1\n_E=") != 0 ||
	    jft_mode_of(path) != 0600) {
		st_fail(why, n, ".env is [%s] mode %o", got.p ? got.p : "", jft_mode_of(path));
		goto out;
	}
	if (pc_write_env(dir, bad, &written, &e) == 0 || !strstr(e.msg, "NOT-A-NAME")) {
		st_fail(why, n, "a bad variable name was accepted: %s", e.msg);
		goto out;
	}
	fail = 0;
out:
	cJSON_Delete(s);
	cJSON_Delete(bad);
	cJSON_Delete(none);
	buf_free(&got);
	jft_rm_dir(dir);
	return fail;
}

int jft_pre_ok(char *why, size_t n)
{
	cJSON *cmds = cJSON_Parse("[\"echo hello > made.txt\", \"[ -f made.txt ] && echo \\\"$CI\\\" >> made.txt\"]");
	struct err e = ERR_INIT;
	struct buf got = BUF_INIT;
	struct pc_leftovers left = { { 0 }, 0 };
	char dir[PATH_MAX], *const envp[] = { "CI=true", "PATH=/usr/bin:/bin", NULL };
	int fail = 1;

	if (!jft_have_sh()) {
		cJSON_Delete(cmds);
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	}
	if (!cmds || jft_tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(cmds);
		return st_fail(why, n, "setup failed");
	}
	if (pc_run_all(dir, cmds, envp, NULL, &left, &e) != 0) {
		st_fail(why, n, "pc_run_all: %s", e.msg);
		goto out;
	}
	if (jft_slurp(dir, "made.txt", &got) != 0 || strcmp(got.p, "hello\ntrue\n") != 0) {
		st_fail(why, n, "the commands did not run in the workspace root: [%s]", got.p ? got.p : "");
		goto out;
	}
	if (left.n != 0) {
		st_fail(why, n, "a finished command was recorded as left running");
		goto out;
	}
	fail = 0;
out:
	cJSON_Delete(cmds);
	buf_free(&got);
	jft_rm_dir(dir);
	return fail;
}

int jft_pre_fail(char *why, size_t n)
{
	cJSON *cmds = cJSON_Parse("[\"true\", \"echo out; echo boom >&2; exit 3\", \"echo never > never.txt\"]");
	struct err e = ERR_INIT;
	char dir[PATH_MAX];
	int fail = 1;

	if (!jft_have_sh()) {
		cJSON_Delete(cmds);
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	}
	if (!cmds || jft_tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(cmds);
		return st_fail(why, n, "setup failed");
	}
	if (pc_run_all(dir, cmds, NULL, NULL, NULL, &e) == 0) {
		st_fail(why, n, "a failing command was not reported");
		goto out;
	}
	if (strcmp(e.msg, "Pre-execution command failed: echo out; echo boom >&2; exit 3\nexit status 3\nout\nboom") != 0) {
		st_fail(why, n, "unexpected message: %s", e.msg);
		goto out;
	}
	if (jft_exists(dir, "never.txt")) {
		st_fail(why, n, "a command after the failure ran");
		goto out;
	}
	fail = 0;
out:
	cJSON_Delete(cmds);
	jft_rm_dir(dir);
	return fail;
}

int jft_pre_timeout(char *why, size_t n)
{
	static const char cmd[] = "(while :; do :; done) & while :; do :; done";
	struct pc_opts o = { 300, 0, 500, NULL, NULL, NULL };
	struct pc_result r;
	struct err e = ERR_INIT;
	char dir[PATH_MAX], *const envp[] = { "PATH=/usr/bin:/bin", NULL };
	int fail = 1, i;

	if (!jft_have_sh())
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	if (pc_run(dir, cmd, envp, &o, &r, &e) != 0) {
		st_fail(why, n, "pc_run: %s", e.msg);
		goto out;
	}
	if (!r.timed_out || r.pgid <= 1) {
		st_fail(why, n, "not reported as timed out (status %d)", r.status);
		goto done;
	}
	/* The whole group is gone (allow init a moment to reap the orphan). */
	for (i = 0; i < 100 && !(kill(-r.pgid, 0) != 0 && errno == ESRCH); i++)
		usleep(10000);
	if (i == 100) {
		kill(-r.pgid, SIGKILL);
		st_fail(why, n, "process group %d survived the timeout", r.pgid);
		goto done;
	}
	if (r.duration_ms > 5000) {
		st_fail(why, n, "the timeout took %ld ms", r.duration_ms);
		goto done;
	}
	fail = 0;
done:
	pc_result_free(&r);
out:
	jft_rm_dir(dir);
	return fail;
}

int jft_pre_cap(char *why, size_t n)
{
	cJSON *cmds = cJSON_Parse(
		"[\"i=0; while [ $i -lt 20000 ]; do echo 0123456789012345678901234567890123456789012345678901234567890123456789; "
		"i=$((i+1)); done; echo finished > done.txt\"]");
	struct err e = ERR_INIT;
	char dir[PATH_MAX];
	int fail = 1;

	if (!jft_have_sh()) {
		cJSON_Delete(cmds);
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	}
	if (!cmds || jft_tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(cmds);
		return st_fail(why, n, "setup failed");
	}
	if (pc_run_all(dir, cmds, NULL, NULL, NULL, &e) == 0) {
		st_fail(why, n, "1.4 MB of output did not fail the command");
		goto out;
	}
	if (strncmp(e.msg, "Pre-execution command failed: ", 30) != 0 || !strstr(e.msg, "output exceeded 1048576 bytes")) {
		st_fail(why, n, "unexpected message: %.200s", e.msg);
		goto out;
	}
	if (jft_exists(dir, "done.txt")) {
		st_fail(why, n, "the command ran on after the cap");
		goto out;
	}
	fail = 0;
out:
	cJSON_Delete(cmds);
	jft_rm_dir(dir);
	return fail;
}

#define ENV_CANARIES 10

/* Set (or, with a NULL value, remove) each of names[i] to vals[i]; the old
 * values go to saved[i] (restore with env_restore). */
static void env_canaries(const char *const *names, const char *const *vals, char **saved)
{
	int i;

	for (i = 0; i < ENV_CANARIES; i++) {
		const char *v = getenv(names[i]);
		saved[i] = v ? strdup(v) : NULL;
		if (vals[i])
			setenv(names[i], vals[i], 1);
		else
			unsetenv(names[i]);
	}
	settings_reload();
}

static void env_restore(const char *const *names, char **saved)
{
	int i;

	for (i = 0; i < ENV_CANARIES; i++) {
		if (saved[i])
			setenv(names[i], saved[i], 1);
		else
			unsetenv(names[i]);
		free(saved[i]);
	}
	settings_reload();
}

static const char *const canary_names[ENV_CANARIES] = {
	"CLOUDRUN_CALLBACK_SECRET", "GOOGLE_APPLICATION_CREDENTIALS", "CCR_API_KEYS", "ANTHROPIC_API_KEY",
	"MY_DB_PASSWORD", "npm_config_cache", "GIT_SSH", "PLAYWRIGHT_BROWSERS_PATH", "TASK_ID", "HOME",
};
static const char *const canary_vals[ENV_CANARIES] = {
	"ccr-own-canary", "ccr-own-canary", "ccr-own-canary", "ccr-own-canary", "ccr-own-canary",
	"ccr-own-canary", "ccr-own-canary", "/pw-browsers", "t-canary", "/home/agent",
};

static void agent_ctx(struct ae_ctx *c, const cJSON *secrets, int forced)
{
	static struct job_settings set;

	jobset_read(&set);   /* after env_canaries: the job's settings as `ccr job` reads them */
	memset(c, 0, sizeof(*c));
	c->set = &set;
	c->secrets = secrets;
	c->base_url = "http://127.0.0.1:1";
	c->cred_name = "ANTHROPIC_API_KEY";
	c->cred_value = "dummy-x";
	c->git_ssh = "ssh -o X";
	c->git_ssh_forced = forced;
	c->config_dir = "/cfg";
}

/* The CLI's environment: the base only, each name once, ccr's wins. */
int jft_agent_env(char *why, size_t n)
{
	static const char *const absent[] = { "TASK_ID", "PLAYWRIGHT_BROWSERS_PATH", "CI", "CCR_API_KEYS",
					      "CLOUDRUN_CALLBACK_SECRET", "MY_DB_PASSWORD", NULL };
	cJSON *secrets = cJSON_Parse("{\"MY_SECRET\":\"s3cr3t\",\"HOME\":\"/evil\",\"ANTHROPIC_BASE_URL\":\"x\","
				     "\"ANTHROPIC_API_KEY\":\"stolen\",\"GIT_SSH_COMMAND\":\"mine\"}");
	struct err e = ERR_INIT;
	struct ae_ctx c;
	char **envp = NULL, *saved[ENV_CANARIES];
	size_t i, j;
	int fail = 1;

	if (!secrets)
		return st_fail(why, n, "setup failed");
	env_canaries(canary_names, canary_vals, saved);
	agent_ctx(&c, secrets, 0);
	if (ae_claude_env(&c, &envp, &e) != 0) {
		st_fail(why, n, "ae_claude_env: %s", e.msg);
		goto out;
	}
	for (i = 0; absent[i]; i++)
		if (ae_get(envp, absent[i])) {
			st_fail(why, n, "%s reached the CLI", absent[i]);
			goto out;
		}
	for (i = 0; envp[i]; i++)
		for (j = i + 1; envp[j]; j++)
			if (strncmp(envp[i], envp[j], strcspn(envp[i], "=") + 1) == 0) {
				st_fail(why, n, "%.40s is set twice", envp[i]);
				goto out;
			}
	if (strcmp(ae_get(envp, "HOME"), "/home/agent") || strcmp(ae_get(envp, "MY_SECRET"), "s3cr3t") ||
	    strcmp(ae_get(envp, "ANTHROPIC_BASE_URL"), "http://127.0.0.1:1") ||
	    strcmp(ae_get(envp, "ANTHROPIC_API_KEY"), "dummy-x") || strcmp(ae_get(envp, "GIT_SSH_COMMAND"), "mine") ||
	    strcmp(ae_get(envp, "CLAUDE_CONFIG_DIR"), "/cfg")) {
		st_fail(why, n, "wrong values in the CLI's environment");
		goto out;
	}
	ae_free(envp);
	agent_ctx(&c, secrets, 1);
	if (ae_claude_env(&c, &envp, &e) != 0 || strcmp(ae_get(envp, "GIT_SSH_COMMAND"), "ssh -o X") != 0) {
		st_fail(why, n, "with an sshKey, ccr's GIT_SSH_COMMAND must win");
		goto out;
	}
	fail = 0;
out:
	ae_free(envp);
	env_restore(canary_names, saved);
	cJSON_Delete(secrets);
	return fail;
}

/* A pre-execution command: the job's environment minus its secrets, plus
 * the CLI's, plus CI=true and NODE_ENV="". */
int jft_pre_env(char *why, size_t n)
{
	cJSON *secrets = cJSON_Parse("{\"MY_SECRET\":\"s3cr3t-value\",\"PATH\":\"/evil\"}");
	cJSON *cmds = cJSON_Parse(
		"[\"echo \\\"${CLOUDRUN_CALLBACK_SECRET-unset} ${GOOGLE_APPLICATION_CREDENTIALS-unset} "
		"${CCR_API_KEYS-unset} ${MY_DB_PASSWORD-unset} ${npm_config_cache-unset} ${GIT_SSH-unset} "
		"$ANTHROPIC_API_KEY $ANTHROPIC_BASE_URL $MY_SECRET $CI [$NODE_ENV] $PLAYWRIGHT_BROWSERS_PATH $TASK_ID "
		"$GIT_SSH_COMMAND $CLAUDE_CONFIG_DIR $HOME ${PATH#/evil}\\\" > env.txt\","
		"\"( : >&9 ) 2>/dev/null && echo leaked > fd9.txt || true\"]");
	struct err e = ERR_INIT;
	struct buf got = BUF_INIT, want = BUF_INIT;
	struct ae_ctx c;
	char dir[PATH_MAX], *saved[ENV_CANARIES], **envp = NULL;
	const char *path = getenv("PATH");
	int fail = 1, fd9 = -1, rc;

	if (!jft_have_sh()) {
		cJSON_Delete(secrets), cJSON_Delete(cmds);
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	}
	if (!secrets || !cmds || jft_tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(secrets), cJSON_Delete(cmds);
		return st_fail(why, n, "setup failed");
	}
	env_canaries(canary_names, canary_vals, saved);
	agent_ctx(&c, secrets, 1);
	/* A descriptor ccr leaves open without close-on-exec must not reach the command. */
	if (fcntl(9, F_GETFD) < 0 && errno == EBADF)
		fd9 = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd9 >= 0 && fd9 != 9) {
		int moved = dup2(fd9, 9);
		close(fd9);
		fd9 = moved;
	}
	rc = ae_precmd_env(&c, &envp, &e);
	if (rc == 0)
		rc = pc_run_all(dir, cmds, envp, NULL, NULL, &e);
	if (fd9 >= 0)
		close(fd9);
	if (rc != 0) {
		st_fail(why, n, "pc_run_all: %s", e.msg);
		goto out;
	}
	if (fd9 >= 0 && jft_exists(dir, "fd9.txt")) {
		st_fail(why, n, "descriptor 9 of ccr reached the command");
		goto out;
	}
	buf_printf(&want, "unset unset unset unset unset unset dummy-x http://127.0.0.1:1 s3cr3t-value true [] "
		   "/pw-browsers t-canary ssh -o X /cfg /home/agent %s\n",
		   path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	if (jft_slurp(dir, "env.txt", &got) != 0 || strcmp(got.p, want.p) != 0) {
		st_fail(why, n, "the command saw [%s], want [%s]", got.p ? got.p : "", want.p);
		goto out;
	}
	fail = 0;
out:
	ae_free(envp);
	env_restore(canary_names, saved);
	cJSON_Delete(secrets);
	cJSON_Delete(cmds);
	buf_free(&got);
	buf_free(&want);
	jft_rm_dir(dir);
	return fail;
}

/* ---- upload globbing ---------------------------------------------------- */

static void count_warn(void *arg, const char *msg)
{
	struct buf *b = arg;

	buf_adds(b, msg);
	buf_addc(b, '\n');
}

/* The test tree: see the expectations in t_glob. */
static int glob_tree(const char *ws, const char *outside)
{
	char target[PATH_MAX + 16];

	snprintf(target, sizeof(target), "%s/secret.txt", outside);
	return jft_sub_dir(ws, "sub", 0755) || jft_sub_dir(ws, "sub/deep", 0755) || jft_sub_dir(ws, ".dot", 0755) ||
	       jft_sub_dir(ws, "node_modules", 0755) || jft_sub_dir(ws, ".git", 0755) || jft_sub_dir(ws, "sub/node_modules", 0755) ||
	       jft_put_file(ws, "a.txt", "A", 0644) || jft_put_file(ws, "sub/b.txt", "BB", 0644) ||
	       jft_put_file(ws, "sub/deep/c.txt", "CCC", 0644) || jft_put_file(ws, ".hidden.txt", "H", 0644) ||
	       jft_put_file(ws, ".dot/d.txt", "D", 0644) || jft_put_file(ws, "node_modules/x.txt", "X", 0644) ||
	       jft_put_file(ws, ".git/y.txt", "Y", 0644) || jft_put_file(ws, "sub/node_modules/z.txt", "Z", 0644) ||
	       jft_put_file(ws, "img.png", "P", 0644) || jft_put_file(ws, "img.jpg", "J", 0644) ||
	       jft_put_file(ws, "img.gif", "G", 0644) || jft_sub_link(ws, "link_in.txt", "a.txt") ||
	       jft_sub_link(ws, "link_out.txt", target) || jft_sub_link(ws, "sub/dirlink", outside) ||
	       jft_put_file(outside, "secret.txt", "SECRET", 0644);
}

struct glob_case {
	const char *pattern, *want;   /* want: matches joined by ' ', or NULL = refused */
};

int jft_glob(char *why, size_t n)
{
	static const struct glob_case cases[] = {
		{ "**/*.txt", "a.txt link_in.txt sub/b.txt sub/deep/c.txt" },
		{ "*.{png,jpg}", "img.jpg img.png" },
		{ "{sub/*,a}.txt", "a.txt sub/b.txt" },
		{ "*", "a.txt img.gif img.jpg img.png link_in.txt" },
		{ ".*", ".hidden.txt" },
		{ ".*/*.txt", ".dot/d.txt" },
		{ "**", "a.txt img.gif img.jpg img.png link_in.txt sub/b.txt sub/deep/c.txt" },
		{ "./sub//**/c.?xt", "sub/deep/c.txt" },
		{ "node_modules/*.txt", "" },
		{ "**/node_modules/**", "" },
		{ ".git/y.txt", "" },
		{ "sub/dirlink/*.txt", "" },
		{ "link_out.txt", "" },
		{ "../x", NULL },
		{ "sub/../../x", NULL },
		{ "/etc/passwd", NULL },
		{ "{a,../b}.txt", NULL },
	};
	struct buf warns = BUF_INIT, got = BUF_INIT;
	struct err e = ERR_INIT;
	char dir[PATH_MAX], ws[PATH_MAX + 8], outside[PATH_MAX + 16];
	size_t i, j;
	int fail = 1;

	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	if (jft_sub_dir(dir, "ws", 0700) != 0 || jft_sub_dir(dir, "outside", 0700) != 0 || glob_tree(ws, outside) != 0) {
		st_fail(why, n, "setup failed: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct up_matches m = { 0 };
		int rc = up_glob(ws, cases[i].pattern, &m, count_warn, &warns, &e);

		buf_reset(&got);
		buf_adds(&got, "");
		for (j = 0; j < m.n; j++)
			buf_printf(&got, "%s%s", j ? " " : "", m.rel[j]);
		up_matches_free(&m);
		if (!cases[i].want ? rc == 0 : (rc != 0 || strcmp(got.p, cases[i].want) != 0)) {
			st_fail(why, n, "'%s': got [%s]%s%s", cases[i].pattern, got.p, rc ? " error " : "", rc ? e.msg : "");
			goto out;
		}
	}
	if (!warns.p || !strstr(warns.p, "skipped link_out.txt")) {
		st_fail(why, n, "no warning for the link to a file outside: [%s]", warns.p ? warns.p : "");
		goto out;
	}
	fail = 0;
out:
	buf_free(&warns);
	buf_free(&got);
	jft_rm_dir(dir);
	return fail;
}

/* Default prefix files/<taskId>; nothing matched gives []; a gcsPrefix
 * leaving the bucket's tree is refused. */
static int upload_defaults(struct up_config *c, char *why, size_t n)
{
	struct buf got = BUF_INIT, text = BUF_INIT;
	struct err e = ERR_INIT;
	cJSON *req, *res = NULL;
	int fail = 1;

	req = cJSON_Parse("{\"globPatterns\":[\"a.txt\"]}");
	if (!req || up_run(c, req, &res, &e) != 0 || storage_get(c->st, "files/task-1/a.txt", 0, &got, &e) != 0) {
		st_fail(why, n, "default prefix: %s", e.msg);
		goto out;
	}
	cJSON_Delete(req);
	cJSON_Delete(res);
	res = NULL;
	req = cJSON_Parse("{\"globPatterns\":[\"none/*\"]}");
	if (!req || up_run(c, req, &res, &e) != 0 || jsj_print(&text, res, 0) != 0 || strcmp(text.p, "[]") != 0) {
		st_fail(why, n, "nothing matched: %s", text.p ? text.p : e.msg);
		goto out;
	}
	cJSON_Delete(req);
	cJSON_Delete(res);
	res = NULL;
	req = cJSON_Parse("{\"globPatterns\":[\"a.txt\"],\"gcsPrefix\":\"../up\"}");
	if (!req || up_run(c, req, &res, &e) == 0 || !strstr(e.msg, "gcsPrefix")) {
		st_fail(why, n, "a bad gcsPrefix was accepted");
		goto out;
	}
	fail = 0;
out:
	cJSON_Delete(req);
	cJSON_Delete(res);
	buf_free(&got);
	buf_free(&text);
	return fail;
}

int jft_upload(char *why, size_t n)
{
	struct buf warns = BUF_INIT, got = BUF_INIT, want = BUF_INIT, text = BUF_INIT;
	struct err e = ERR_INIT;
	struct storage *st = NULL;
	char dir[PATH_MAX], ws[PATH_MAX + 8], outside[PATH_MAX + 16], store[PATH_MAX + 16];
	cJSON *req = NULL, *res = NULL;
	struct up_config c;
	int fail = 1;

	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	if (jft_sub_dir(dir, "ws", 0700) != 0 || jft_sub_dir(dir, "outside", 0700) != 0 || glob_tree(ws, outside) != 0 ||
	    !(st = storage_local_new(store, &e))) {
		st_fail(why, n, "setup failed: %s", e.msg[0] ? e.msg : strerror(errno));
		goto out;
	}
	memset(&c, 0, sizeof(c));
	c.st = st;
	c.root = ws;
	c.task_id = "task-1";
	c.warn = count_warn;
	c.arg = &warns;
	req = cJSON_Parse("{\"globPatterns\":[\"sub/**/*.txt\",\"/etc/passwd\",\"*.zzz\",\"link_out.txt\"],"
			  "\"gcsPrefix\":\"out/run/\"}");
	if (!req || up_run(&c, req, &res, &e) != 0) {
		st_fail(why, n, "up_run: %s", e.msg);
		goto out;
	}
	if (jsj_print(&text, res, 0) != 0)
		goto out;
	buf_printf(&want, "[{\"originalPath\":\"%s/sub/b.txt\",\"gcsPath\":\"", ws);
	storage_url(st, "out/run/sub/b.txt", &want);
	buf_printf(&want, "\",\"sizeBytes\":2},{\"originalPath\":\"%s/sub/deep/c.txt\",\"gcsPath\":\"", ws);
	storage_url(st, "out/run/sub/deep/c.txt", &want);
	buf_adds(&want, "\",\"sizeBytes\":3}]");
	if (strcmp(text.p, want.p) != 0) {
		st_fail(why, n, "uploadedFiles %s, want %s", text.p, want.p);
		goto out;
	}
	if (storage_get(st, "out/run/sub/deep/c.txt", 0, &got, &e) != 0 || strcmp(got.p, "CCC") != 0) {
		st_fail(why, n, "the stored object differs: %s", e.msg);
		goto out;
	}
	if (!strstr(warns.p, "/etc/passwd") || !strstr(warns.p, "No files matched pattern: *.zzz") ||
	    !strstr(warns.p, "skipped link_out.txt")) {
		st_fail(why, n, "missing warnings: [%s]", warns.p);
		goto out;
	}
	fail = upload_defaults(&c, why, n);
out:
	cJSON_Delete(req);
	cJSON_Delete(res);
	if (st)
		storage_free(st);
	buf_free(&warns);
	buf_free(&got);
	buf_free(&want);
	buf_free(&text);
	jft_rm_dir(dir);
	return fail;
}

/* mcplog.c: the CLI's MCP logs, in both naming schemes and all three
 * formats, explained and then forgotten. */
int jft_mcplog(char *why, size_t n)
{
	char dir[PATH_MAX], cache[PATH_MAX + 16];
	struct buf out = BUF_INIT;
	const char *cwd = "/w/ws_1";
	int rc = 1, k;

	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "mkdtemp: %s", strerror(errno));
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	if (jft_sub_dir(dir, "cache", 0700) || jft_sub_dir(dir, "cache/claude-cli-nodejs", 0700) ||
			jft_sub_dir(dir, "cache/claude-cli-nodejs/-w-ws-1", 0700) ||
			jft_sub_dir(dir, "cache/claude-cli-nodejs/-w-ws-1/mcp-logs-new", 0700) ||
			jft_put_file(dir, "cache/claude-cli-nodejs/-w-ws-1/mcp-logs-new/2026-01-01.jsonl",
				 "{\"error\":\"stale\"}\n", 0600) ||
			jft_put_file(dir, "cache/claude-cli-nodejs/-w-ws-1/mcp-logs-new/2026-02-01.jsonl",
				 "{\"debug\":\"starting\"}\n{\"error\":\"Server stderr: no token\\n\"}\n"
				 "{\"error\":\"Connection closed\"}\n", 0600) ||
			jft_sub_dir(dir, "cache/claude-old", 0700) || jft_sub_dir(dir, "cache/claude-old/-w-ws_1", 0700) ||
			jft_sub_dir(dir, "cache/claude-old/-w-ws_1/mcp-logs-old", 0700) ||
			jft_put_file(dir, "cache/claude-old/-w-ws_1/mcp-logs-old/a.txt",
				 "[{\"error\":\"spawn npx ENOENT\",\"timestamp\":\"t\"}]", 0600) ||
			jft_sub_dir(dir, "cache/claude-old/-w-ws_1/mcp-logs-raw", 0700) ||
			jft_put_file(dir, "cache/claude-old/-w-ws_1/mcp-logs-raw/a.txt", "plain words", 0600)) {
		st_fail(why, n, "cannot build the cache tree: %s", strerror(errno));
		goto out;
	}
	k = ml_explain(cache, cwd, "new", &out);
	if (k != 1 || strcmp(out.p, "Server stderr: no token; Connection closed") != 0) {
		st_fail(why, n, "jsonl: %d '%s'", k, out.p ? out.p : "");
		goto out;
	}
	buf_reset(&out);
	if ((k = ml_explain(cache, cwd, "old", &out)) != 1 || strcmp(out.p, "spawn npx ENOENT") != 0) {
		st_fail(why, n, "json array: %d '%s'", k, out.p ? out.p : "");
		goto out;
	}
	buf_reset(&out);
	if ((k = ml_explain(cache, cwd, "raw", &out)) != 1 || strcmp(out.p, "plain words") != 0) {
		st_fail(why, n, "raw text: %d '%s'", k, out.p ? out.p : "");
		goto out;
	}
	buf_reset(&out);
	if ((k = ml_explain(cache, cwd, "none", &out)) != 0 || !strstr(out.p, "no MCP log directory")) {
		st_fail(why, n, "missing server: %d '%s'", k, out.p ? out.p : "");
		goto out;
	}
	buf_reset(&out);
	if ((k = ml_explain(cache, cwd, "../x", &out)) != 0) {
		st_fail(why, n, "a server name with a slash was looked up");
		goto out;
	}
	if ((k = ml_forget(cache, cwd)) != 2 || jft_exists(cache, "claude-cli-nodejs/-w-ws-1") ||
			jft_exists(cache, "claude-old/-w-ws_1") || !jft_exists(cache, "claude-old")) {
		st_fail(why, n, "forget removed %d directories, or the wrong ones", k);
		goto out;
	}
	rc = 0;
out:
	buf_free(&out);
	jft_rm_dir(dir);
	return rc;
}

/* The price table: longest prefix wins, dated ids find their family, an
 * unknown model pays the most expensive row, 1-hour cache writes 2 x input. */
int jft_prices(char *why, size_t n)
{
	const struct price_row *s45 = price_for("claude-sonnet-4-5-20250929"), *unk = price_for("gpt-9");
	double c = price_cost(price_for("claude-haiku-4-5"), 1e6, 1e6, 1e6, 1e6);

	if (strcmp(s45->prefix, "claude-sonnet-4-5") != 0 || strcmp(price_for("claude-sonnet-4-20250514")->prefix,
								      "claude-sonnet-4") != 0)
		return st_fail(why, n, "prefix match: %s", s45->prefix);
	if (unk->input < 15.0 || unk->output < 75.0 || price_for(NULL) != unk)
		return st_fail(why, n, "an unknown model is not charged the highest rate");
	if (c < 7.349 || c > 7.351)
		return st_fail(why, n, "haiku 4.5, 1M of each: $%f, want $7.35", c);
	if (price_1h_extra(s45, 1e6) < 2.249 || price_1h_extra(s45, 1e6) > 2.251)
		return st_fail(why, n, "1-hour cache write extra: $%f, want $2.25", price_1h_extra(s45, 1e6));
	return 0;
}

/* The CLI's project directory name for a working directory; session ids. */
int jft_session_paths(char *why, size_t n)
{
	char out[64];

	sess_project_dir("/tmp/ws-1/repo_x.y", out, sizeof(out));
	if (strcmp(out, "-tmp-ws-1-repo-x-y") != 0)
		return st_fail(why, n, "project dir: %s", out);
	sess_project_dir("/abcdefgh", out, 5);
	if (strcmp(out, "-abc") != 0)
		return st_fail(why, n, "a short buffer is not cut cleanly: %s", out);
	if (!sess_id_valid("c2747f98-96d1-4049-acd8-007026505aef") || sess_id_valid("../x") || sess_id_valid("") ||
	    sess_id_valid(NULL))
		return st_fail(why, n, "session id check");
	return 0;
}
