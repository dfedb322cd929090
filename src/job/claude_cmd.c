/*
 * claude_cmd.c: see claude_cmd.h.  The argument vector is a NULL-terminated
 * array of malloc'd strings built through one small growable list; the
 * environment comes from agentenv.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/claude_cmd.h"
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

static void build_argv(struct vec *v, const struct payload *p, const char *mcp_config)
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
	push_opt(v, "--system-prompt", p->system_prompt);
	push_opt(v, "--append-system-prompt", p->append_system_prompt);
	push_opt(v, "--fallback-model", p->fallback_model);
	push_opt(v, "--model", p->model);
	push_opt(v, "--permission-mode", p->permission_mode);
	push_opt(v, "--mcp-config", mcp_config);
}

int claude_cmd_build(struct claude_cmd *c, const struct payload *p, const struct ae_ctx *env,
		     const char *mcp_config, struct err *e)
{
	struct vec argv = { 0 };
	const char *bin = getenv("CLAUDE_BIN");

	memset(c, 0, sizeof(*c));
	c->path = bin && *bin ? bin : "claude";
	build_argv(&argv, p, mcp_config);
	if (argv.oom) {
		free_vec(argv.v);
		return err_set(e, "out of memory building the Claude command");
	}
	if (ae_claude_env(env, &c->envp, e) != 0) {
		free_vec(argv.v);
		return -1;
	}
	c->argv = argv.v;
	return 0;
}

void claude_cmd_free(struct claude_cmd *c)
{
	free_vec(c->argv);
	ae_free(c->envp);
	memset(c, 0, sizeof(*c));
}
