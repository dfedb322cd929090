/*
 * git_cmd.c: `ccr git`, an operator/debug shell over the job's git
 * operations (src/git/git.h), so they can be tried by hand and driven by
 * the integration tests with exactly the code `ccr job` runs.
 *
 *   ccr git clone URL DEST [--branch B] [--depth N]
 *   ccr git commit REPO [--message M] [--file PATH]... [--exclude PATH]...
 *   ccr git push REPO [--branch B] [--strategy auto|fail]
 *   ccr git tests-setup REPO --tests-url URL [--tests-branch B]
 *                       [--existing-pr-branch B] [--depth N]
 *   ccr git tests-publish REPO --tests-url URL --task-id ID [--tests-branch B]
 *                         [--existing-pr-branch B] [--task-slug S] [--task-name N]
 *   ccr git ssh-command --workspace DIR
 *       the GIT_SSH_COMMAND `ccr job` gives the agent for the same options
 *       ({"command": ...}); it names DIR/.ssh/known_hosts, so DIR is kept.
 *
 * Options for all: --key FILE (SSH private key), --known-hosts FILE (trusted
 * host keys; default $CCR_SSH_KNOWN_HOSTS), --insecure (no host key check,
 * like CCR_SSH_INSECURE=1), --timeout SECONDS (per network operation;
 * default $CCR_GIT_TIMEOUT_SECONDS or 300), --workspace DIR (where
 * known_hosts and ssh's bookkeeping go; default a temporary directory,
 * removed at exit), --allow-local (accept local paths as URLs).
 *
 * Secrets never go on the command line: the HTTPS token comes from
 * $CCR_GIT_TOKEN, the external test repo's installation token from
 * $CCR_TESTS_TOKEN.  CCR_GITHUB_URL and CCR_GITHUB_API point the test
 * repo flow somewhere other than GitHub.
 *
 * Output: one JSON object on stdout.  Exit status 0 success, 1 failure
 * (one line on stderr: the message, then the redacted detail in
 * brackets), 2 usage error (one line on stderr).
 */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>
#include <git2.h>

#include "ccr.h"
#include "git/git.h"
#include "util/redact.h"
#include "settings/settings.h"

#define MAX_LIST 64

struct args {
	const char *cmd;
	const char *pos[2];
	int npos;
	const char *branch, *strategy, *message, *key, *known_hosts, *workspace;
	const char *tests_url, *tests_branch, *existing_pr, *task_id, *task_slug, *task_name;
	const char *files[MAX_LIST + 1], *excludes[MAX_LIST + 1];
	int nfiles, nexcludes;
	int depth, insecure, allow_local;
	long timeout_s;
};

static int usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "ccr git: ");
	fprintf(stderr, fmt, arg ? arg : "");
	fprintf(stderr, " (usage: ccr git clone|commit|push|tests-setup|tests-publish|ssh-command ...; see src/tools/git_cmd.c)\n");
	return 2;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse(int argc, char **argv, struct args *a)
{
	int i;
	long v;

	memset(a, 0, sizeof(*a));
	if (argc < 2)
		return usage("missing subcommand%s", NULL);
	a->cmd = argv[1];
	for (i = 2; i < argc; i++) {
		const char *o = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(field)                                                \
	do {                                                       \
		if (!val)                                          \
			return usage("option %s needs a value", o); \
		a->field = val;                                    \
		i++;                                               \
	} while (0)
		if (strcmp(o, "--branch") == 0)
			TAKE(branch);
		else if (strcmp(o, "--strategy") == 0)
			TAKE(strategy);
		else if (strcmp(o, "--message") == 0)
			TAKE(message);
		else if (strcmp(o, "--key") == 0)
			TAKE(key);
		else if (strcmp(o, "--known-hosts") == 0)
			TAKE(known_hosts);
		else if (strcmp(o, "--workspace") == 0)
			TAKE(workspace);
		else if (strcmp(o, "--tests-url") == 0)
			TAKE(tests_url);
		else if (strcmp(o, "--tests-branch") == 0)
			TAKE(tests_branch);
		else if (strcmp(o, "--existing-pr-branch") == 0)
			TAKE(existing_pr);
		else if (strcmp(o, "--task-id") == 0)
			TAKE(task_id);
		else if (strcmp(o, "--task-slug") == 0)
			TAKE(task_slug);
		else if (strcmp(o, "--task-name") == 0)
			TAKE(task_name);
		else if (strcmp(o, "--file") == 0 || strcmp(o, "--exclude") == 0) {
			int f = o[2] == 'f';
			if (!val)
				return usage("option %s needs a value", o);
			if ((f ? a->nfiles : a->nexcludes) >= MAX_LIST)
				return usage("too many %s options", o);
			if (f)
				a->files[a->nfiles++] = val;
			else
				a->excludes[a->nexcludes++] = val;
			i++;
		} else if (strcmp(o, "--depth") == 0) {
			if (!val || parse_int(val, 0, 1000000, &v) != 0)
				return usage("--depth needs a number >= 0%s", NULL);
			a->depth = (int)v;
			i++;
		} else if (strcmp(o, "--timeout") == 0) {
			if (!val || parse_int(val, 1, 86400, &v) != 0)
				return usage("--timeout needs seconds (1..86400)%s", NULL);
			a->timeout_s = v;
			i++;
		} else if (strcmp(o, "--insecure") == 0) {
			a->insecure = 1;
		} else if (strcmp(o, "--allow-local") == 0) {
			a->allow_local = 1;
		} else if (o[0] == '-' && o[1]) {
			return usage("unknown option %s", o);
		} else if (a->npos < 2) {
			a->pos[a->npos++] = o;
		} else {
			return usage("unexpected argument %s", o);
		}
#undef TAKE
	}
	return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void print_json(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	if (s) {
		printf("%s\n", s);
		free(s);
	}
}

static int fail(const char *cmd, const struct gop_ctx *c, const struct err *e)
{
	if (c && c->detail[0] && !strstr(e->msg, c->detail))
		fprintf(stderr, "ccr git %s: %s [%s]\n", cmd, e->msg, c->detail);
	else
		fprintf(stderr, "ccr git %s: %s\n", cmd, e->msg);
	return 1;
}

static void add_ssh_counts(cJSON *o, const struct gop_ctx *c)
{
	cJSON_AddNumberToObject(o, "sshStarted", c->ssh_started);
	cJSON_AddNumberToObject(o, "sshKilled", c->ssh_killed);
}

static int do_clone(struct gop_ctx *c, const struct args *a, struct err *e)
{
	git_repository *r = NULL;
	git_oid head;
	char hex[41] = "";
	cJSON *o;

	if (a->npos != 2)
		return usage("clone needs URL and DEST%s", NULL);
	if (gop_clone(c, a->pos[0], a->branch, a->depth, a->pos[1], e) != 0)
		return fail("clone", c, e);
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "ok", 1);
	cJSON_AddStringToObject(o, "dest", a->pos[1]);
	if (git_repository_open(&r, a->pos[1]) == 0) {
		cJSON_AddBoolToObject(o, "shallow", git_repository_is_shallow(r) == 1);
		if (git_reference_name_to_id(&head, r, "HEAD") == 0)
			git_oid_tostr(hex, sizeof(hex), &head);
		git_repository_free(r);
	}
	cJSON_AddStringToObject(o, "head", hex);
	add_ssh_counts(o, c);
	print_json(o);
	cJSON_Delete(o);
	return 0;
}

/* The agent's GIT_SSH_COMMAND under the same policy as the operations. */
static int do_ssh_command(struct gop_ctx *c, const struct args *a, struct err *e)
{
	struct buf cmd = BUF_INIT;
	cJSON *o;

	if (a->npos != 0 || !a->workspace)
		return usage("ssh-command takes no arguments and needs --workspace DIR%s", NULL);
	if (gop_agent_ssh_command(c, &cmd, e) != 0) {
		buf_free(&cmd);
		return fail("ssh-command", c, e);
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "command", cmd.p);
	print_json(o);
	cJSON_Delete(o);
	buf_free(&cmd);
	return 0;
}

static int do_commit(struct gop_ctx *c, const struct args *a, struct err *e)
{
	char sha[41];
	cJSON *o;
	int rc;

	if (a->npos != 1)
		return usage("commit needs REPO%s", NULL);
	rc = gop_commit(c, a->pos[0], a->message ? a->message : "ccr git commit\n", a->nfiles ? a->files : NULL,
			a->nexcludes ? a->excludes : NULL, sha, e);
	if (rc < 0)
		return fail("commit", c, e);
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "committed", rc == 0);
	if (rc == 0)
		cJSON_AddStringToObject(o, "sha", sha);
	else
		cJSON_AddStringToObject(o, "reason", "nothing to commit");
	print_json(o);
	cJSON_Delete(o);
	return 0;
}

static int do_push(struct gop_ctx *c, const struct args *a, struct err *e)
{
	struct gop_push_result r;
	enum gop_strategy st = GOP_STRATEGY_AUTO;
	cJSON *o, *rec, *files;
	size_t i;

	if (a->npos != 1)
		return usage("push needs REPO%s", NULL);
	if (a->strategy && strcmp(a->strategy, "fail") == 0)
		st = GOP_STRATEGY_FAIL;
	else if (a->strategy && strcmp(a->strategy, "auto") != 0)
		return usage("--strategy must be auto or fail, not %s", a->strategy);
	if (gop_push(c, a->pos[0], a->branch, st, &r, e) != 0) {
		gop_push_result_free(&r);
		return fail("push", c, e);
	}
	o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "pushed", r.pushed);
	cJSON_AddStringToObject(o, "branch", r.branch);
	cJSON_AddStringToObject(o, "sha", r.sha);
	if (r.recovery != GOP_RECOVERY_NONE) {
		rec = cJSON_AddObjectToObject(o, "recovery");
		cJSON_AddStringToObject(rec, "method", r.recovery == GOP_RECOVERY_REBASE ? "rebase" : "force-with-lease");
		cJSON_AddStringToObject(rec, "remoteSha", r.remote_sha);
		files = cJSON_AddArrayToObject(rec, "conflictFiles");
		for (i = 0; i < r.n_conflicts; i++)
			cJSON_AddItemToArray(files, cJSON_CreateString(r.conflict_files[i]));
	}
	add_ssh_counts(o, c);
	print_json(o);
	cJSON_Delete(o);
	gop_push_result_free(&r);
	return 0;
}

static void tests_repo(const struct args *a, struct gop_tests_repo *t)
{
	const char *tok = settings_secret(SET_CCR_TESTS_TOKEN);

	memset(t, 0, sizeof(*t));
	t->url = a->tests_url;
	t->branch = a->tests_branch;
	t->token = tok && *tok ? tok : NULL;
	t->existing_pr_branch = a->existing_pr;
	t->depth = a->depth;
}

static int do_tests(struct gop_ctx *c, const struct args *a, int publish, struct err *e)
{
	struct gop_tests_repo t;
	struct gop_pr pr;
	cJSON *o;
	int rc;

	if (a->npos != 1 || !a->tests_url)
		return usage("%s needs REPO and --tests-url", publish ? "tests-publish" : "tests-setup");
	tests_repo(a, &t);
	o = cJSON_CreateObject();
	if (!publish) {
		if (gop_tests_setup(c, a->pos[0], &t, e) != 0) {
			cJSON_Delete(o);
			return fail("tests-setup", c, e);
		}
		cJSON_AddBoolToObject(o, "ok", 1);
	} else {
		if (!a->task_id) {
			cJSON_Delete(o);
			return usage("tests-publish needs --task-id%s", NULL);
		}
		rc = gop_tests_publish(c, a->pos[0], &t, a->task_id, a->task_slug, a->task_name, &pr, e);
		if (rc < 0) {
			cJSON_Delete(o);
			return fail("tests-publish", c, e);
		}
		cJSON_AddBoolToObject(o, "published", rc == 0);
		if (rc == 0) {
			cJSON_AddStringToObject(o, "branch", pr.branch);
			cJSON_AddStringToObject(o, "repo", pr.repo);
			if (pr.created) {
				cJSON *p = cJSON_AddObjectToObject(o, "externalRepoPR");
				cJSON_AddStringToObject(p, "url", pr.url);
				cJSON_AddNumberToObject(p, "number", (double)pr.number);
				cJSON_AddStringToObject(p, "repo", pr.repo);
				cJSON_AddStringToObject(p, "branch", pr.branch);
			}
		}
	}
	print_json(o);
	cJSON_Delete(o);
	return 0;
}

/* The git layer's context, with this command's settings (read once, here:
 * job/jobset.c reads the same for `ccr job`). */
static int ctx_init(struct gop_ctx *c, const char *ws, struct err *e)
{
	struct gop_settings set;

	set.timeout_s = settings_str(SET_CCR_GIT_TIMEOUT_SECONDS);
	set.known_hosts = settings_str(SET_CCR_SSH_KNOWN_HOSTS);
	set.ssh_insecure = settings_str(SET_CCR_SSH_INSECURE);
	set.github_url = settings_str(SET_CCR_GITHUB_URL);
	set.github_api = settings_str(SET_CCR_GITHUB_API);
	set.git_ssh = settings_str(SET_GIT_SSH);
	return gop_ctx_init(c, ws, &set, e);
}

int git_main(int argc, char **argv)
{
	struct args a;
	struct gop_ctx c;
	struct err e = ERR_INIT;
	char tmp[512] = "";
	const char *ws, *tok;
	int rc;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: ccr git clone URL DEST | commit REPO | push REPO | tests-setup REPO | tests-publish REPO"
		       " | ssh-command --workspace DIR [options]; see src/tools/git_cmd.c\n");
		return 0;
	}
	if ((rc = parse(argc, argv, &a)) != 0)
		return rc;
	/* A server closing a TLS socket must be an error, not a kill (as in ccr job). */
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(a.cmd, "clone") && strcmp(a.cmd, "commit") && strcmp(a.cmd, "push") &&
	    strcmp(a.cmd, "tests-setup") && strcmp(a.cmd, "tests-publish") && strcmp(a.cmd, "ssh-command"))
		return usage("unknown subcommand %s", a.cmd);
	ws = a.workspace;
	if (!ws) {
		const char *t = settings_str(SET_TMPDIR);
		snprintf(tmp, sizeof(tmp), "%s/ccr-git-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(tmp)) {
			fprintf(stderr, "ccr git: cannot create a temporary directory in %s: %s\n", t && *t ? t : "/tmp",
				strerror(errno));
			return 1;
		}
		ws = tmp;
	}
	if (ctx_init(&c, ws, &e) != 0) {
		rc = fail(a.cmd, NULL, &e);
		goto out;
	}
	tok = settings_secret(SET_CCR_GIT_TOKEN);
	if (tok && *tok) {
		redact_add(tok);
		c.https_token = tok;
	}
	tok = settings_secret(SET_CCR_TESTS_TOKEN);
	if (tok && *tok)
		redact_add(tok);
	c.ssh_key_path = a.key;
	if (a.known_hosts)
		c.known_hosts_file = a.known_hosts;
	if (a.insecure)
		c.ssh_insecure = 1;
	if (a.timeout_s)
		c.timeout_ms = a.timeout_s * 1000;
	c.allow_local = a.allow_local;
	if (strcmp(a.cmd, "clone") == 0)
		rc = do_clone(&c, &a, &e);
	else if (strcmp(a.cmd, "commit") == 0)
		rc = do_commit(&c, &a, &e);
	else if (strcmp(a.cmd, "push") == 0)
		rc = do_push(&c, &a, &e);
	else if (strcmp(a.cmd, "ssh-command") == 0)
		rc = do_ssh_command(&c, &a, &e);
	else
		rc = do_tests(&c, &a, strcmp(a.cmd, "tests-publish") == 0, &e);
	gop_ctx_free(&c);
out:
	if (tmp[0])
		nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
