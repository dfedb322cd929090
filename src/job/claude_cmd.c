/*
 * claude_cmd.c: see claude_cmd.h.  Both vectors are NULL-terminated arrays
 * of malloc'd strings built through one small growable list.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/claude_cmd.h"
#include "job/workspace.h"
#include "util/buf.h"

struct vec {
	char **v;
	size_t n, cap;
	int oom;
};

static void push(struct vec *v, const char *s)
{
	char *copy;

	if (v->oom)
		return;
	if (v->n + 2 > v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 32;
		char **nv = realloc(v->v, nc * sizeof(*nv));
		if (!nv) {
			v->oom = 1;
			return;
		}
		v->v = nv;
		v->cap = nc;
	}
	copy = strdup(s);
	if (!copy) {
		v->oom = 1;
		return;
	}
	v->v[v->n++] = copy;
	v->v[v->n] = NULL;
}

static void pushf(struct vec *v, const char *name, const char *value)
{
	char *s;

	if (asprintf(&s, "%s=%s", name, value) < 0) {
		v->oom = 1;
		return;
	}
	push(v, s);
	free(s);
}

static void free_vec(char **v)
{
	char **p;

	for (p = v; p && *p; p++)
		free(*p);
	free(v);
}

static int env_true(const char *name)
{
	const char *v = getenv(name);

	return v && strcmp(v, "true") == 0;
}

/* "a,b,c" from a string array (already type-checked). */
static void push_joined(struct vec *v, const char *flag, const cJSON *arr)
{
	const cJSON *it;
	struct buf b = BUF_INIT;

	if (!arr || cJSON_GetArraySize(arr) == 0)
		return;
	cJSON_ArrayForEach(it, arr) {
		if (b.len)
			buf_addc(&b, ',');
		buf_adds(&b, it->valuestring);
	}
	push(v, flag);
	push(v, b.p ? b.p : "");
	buf_free(&b);
}

static void push_opt(struct vec *v, const char *flag, const char *value)
{
	if (value && *value) {
		push(v, flag);
		push(v, value);
	}
}

/* The flag and value of one system prompt: inline, or a file. */
struct prompt_arg {
	const char *flag, *value;
	char path[PATH_MAX];
};

/* --<flag> V when V is short; else V written to file_dir/.ccr-<flag>.txt
 * and --<flag>-file PATH (both forms exist in the pinned CLI).  field: the
 * request's name for it, for messages. */
static int prompt_arg(struct prompt_arg *a, const char *flag, const char *field, const char *value,
		      const char *file_dir, struct err *e)
{
	size_t n = value ? strlen(value) : 0;
	char name[64];

	a->flag = flag;
	a->value = value;
	if (n <= CLAUDE_ARG_INLINE_MAX)
		return 0;
	if (!file_dir)
		return err_set(e, "%s is %zu bytes, too long for the command line, and there is no workspace to "
			       "write it to", field, n);
	snprintf(name, sizeof(name), ".ccr-%s.txt", flag + 2);
	if (snprintf(a->path, sizeof(a->path), "%s/%s", file_dir, name) >= (int)sizeof(a->path))
		return err_set(e, "the workspace path is too long");
	if (ws_write_file(file_dir, name, value, n, 0600, e) != 0)
		return err_prefix(e, "cannot pass %s to the CLI as a file", field);
	a->flag = strcmp(flag, "--system-prompt") == 0 ? "--system-prompt-file" : "--append-system-prompt-file";
	a->value = a->path;
	return 0;
}

static void build_argv(struct vec *v, const struct payload *p, const char *mcp_config,
		       const struct prompt_arg *sys, const struct prompt_arg *append)
{
	char turns[32];

	push(v, "claude");
	push(v, "-p");
	push(v, "--verbose");
	push(v, "--output-format");
	push(v, "stream-json");
	if (env_true("DANGEROUSLY_SKIP_PERMISSIONS")) {
		push(v, "--dangerously-skip-permissions");
	} else {
		push_joined(v, "--allowedTools", p->allowed_tools);
		push_joined(v, "--disallowedTools", p->disallowed_tools);
	}
	if (env_true("CLAUDE_DEBUG"))
		push(v, "--debug");
	if (p->max_turns > 0) {
		snprintf(turns, sizeof(turns), "%d", p->max_turns);
		push_opt(v, "--max-turns", turns);
	}
	push_opt(v, sys->flag, sys->value);
	push_opt(v, append->flag, append->value);
	push_opt(v, "--fallback-model", p->fallback_model);
	push_opt(v, "--model", p->model);
	push_opt(v, "--permission-mode", p->permission_mode);
	push_opt(v, "--mcp-config", mcp_config);
}

int claude_env_protected(const char *name)
{
	static const char *names[] = { "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
				       "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS", NULL };
	size_t i;

	for (i = 0; names[i]; i++)
		if (strcmp(name, names[i]) == 0)
			return 1;
	return 0;
}

/* The newest chromium-* build under the Playwright browsers path. */
static int find_chromium(char *out, size_t n)
{
	const char *base = getenv("PLAYWRIGHT_BROWSERS_PATH");
	char best[256] = "";
	struct dirent *de;
	DIR *d;

	if (!base || !*base)
		base = "/opt/ms-playwright";
	if (!(d = opendir(base)))
		return -1;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "chromium-", 9) == 0 && strcmp(de->d_name, best) > 0)
			snprintf(best, sizeof(best), "%s", de->d_name);
	closedir(d);
	if (!best[0])
		return -1;
	snprintf(out, n, "%s/%s/chrome-linux/chrome", base, best);
	if (access(out, X_OK) == 0)
		return 0;
	snprintf(out, n, "%s/%s/chrome-linux64/chrome", base, best);
	return access(out, X_OK);
}

static void build_env(struct vec *v, const struct payload *p, const struct tp_proxy *proxy, const char *git_ssh,
		      const char *config_dir)
{
	const char *home = getenv("HOME"), *path = getenv("PATH");
	const cJSON *it;
	char url[64], chrome[600];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", tp_port(proxy));
	pushf(v, "ANTHROPIC_BASE_URL", url);
	cJSON_ArrayForEach(it, p->env_secrets)
		if (!claude_env_protected(it->string) && it->string[0] && !strchr(it->string, '='))
			pushf(v, it->string, it->valuestring);
	pushf(v, tp_cred_env(proxy), tp_dummy(proxy));
	if (git_ssh)
		pushf(v, "GIT_SSH_COMMAND", git_ssh);
	if (config_dir && !cJSON_GetObjectItemCaseSensitive(p->env_secrets, "CLAUDE_CONFIG_DIR"))
		pushf(v, "CLAUDE_CONFIG_DIR", config_dir);
	if (find_chromium(chrome, sizeof(chrome)) == 0) {
		pushf(v, "PLAYWRIGHT_MCP_EXECUTABLE_PATH", chrome);
		pushf(v, "PLAYWRIGHT_MCP_SANDBOX", "false");
	}
	pushf(v, "HOME", home && *home ? home : "/root");
	pushf(v, "PATH", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	pushf(v, "CLAUDE_CODE_ACTION", "1");
	pushf(v, "CLAUDE_CODE_ENTRYPOINT", "cli");
	pushf(v, "DISABLE_AUTOUPDATER", "1");
	/* The CLI refuses --dangerously-skip-permissions as root unless told
	 * it is in a sandbox, which a task container is. */
	if (env_true("DANGEROUSLY_SKIP_PERMISSIONS") && geteuid() == 0)
		pushf(v, "IS_SANDBOX", "1");
}

int claude_cmd_build(struct claude_cmd *c, const struct payload *p, const struct tp_proxy *proxy,
		     const char *mcp_config, const char *git_ssh, const char *config_dir, const char *file_dir,
		     struct err *e)
{
	struct vec argv = { 0 }, envp = { 0 };
	const char *bin = getenv("CLAUDE_BIN");
	struct prompt_arg sys, append;

	memset(c, 0, sizeof(*c));
	c->path = bin && *bin ? bin : "claude";
	if (prompt_arg(&sys, "--system-prompt", "systemPrompt", p->system_prompt, file_dir, e) != 0 ||
	    prompt_arg(&append, "--append-system-prompt", "appendSystemPrompt", p->append_system_prompt, file_dir,
		       e) != 0)
		return -1;
	build_argv(&argv, p, mcp_config, &sys, &append);
	build_env(&envp, p, proxy, git_ssh, config_dir);
	if (argv.oom || envp.oom) {
		free_vec(argv.v);
		free_vec(envp.v);
		return err_set(e, "out of memory building the Claude command");
	}
	c->argv = argv.v;
	c->envp = envp.v;
	return 0;
}

void claude_cmd_free(struct claude_cmd *c)
{
	free_vec(c->argv);
	free_vec(c->envp);
	memset(c, 0, sizeof(*c));
}
