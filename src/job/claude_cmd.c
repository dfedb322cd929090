/*
 * claude_cmd.c: see claude_cmd.h.  The argument vector is a NULL-terminated
 * array of malloc'd strings built through one small growable list; the
 * environment comes from agentenv.c.
 */
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

static void free_vec(char **v)
{
	char **p;

	for (p = v; p && *p; p++)
		free(*p);
	free(v);
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

static void build_argv(struct vec *v, const struct payload *p, const struct job_settings *set, const char *mcp_config,
		       const struct prompt_arg *sys, const struct prompt_arg *append)
{
	char turns[32], budget[48];

	push(v, "claude");
	push(v, "-p");
	push(v, "--verbose");
	push(v, "--output-format");
	push(v, "stream-json");
	if (p->idle_after_result_s > 0) {
		/* follow-up messages and interrupts on stdin (job/convo.h) */
		push(v, "--input-format");
		push(v, "stream-json");
		push(v, "--replay-user-messages");
	}
	if (set->skip_permissions) {
		push(v, "--dangerously-skip-permissions");
	} else {
		push_joined(v, "--allowedTools", p->allowed_tools);
		push_joined(v, "--disallowedTools", p->disallowed_tools);
	}
	if (set->claude_debug)
		push(v, "--debug");
	if (p->max_turns > 0) {
		snprintf(turns, sizeof(turns), "%d", p->max_turns);
		push_opt(v, "--max-turns", turns);
	}
	if (p->max_budget_usd > 0) {
		snprintf(budget, sizeof(budget), "%.10g", p->max_budget_usd);
		push_opt(v, "--max-budget-usd", budget);
	}
	push_opt(v, sys->flag, sys->value);
	push_opt(v, append->flag, append->value);
	push_opt(v, "--fallback-model", p->fallback_model);
	push_opt(v, "--model", p->model);
	push_opt(v, "--permission-mode", p->permission_mode);
	push_opt(v, "--mcp-config", mcp_config);
	push_opt(v, "--resume", p->resume_session_id);
}

int claude_cmd_build(struct claude_cmd *c, const struct payload *p, const struct ae_ctx *env,
		     const char *mcp_config, const char *file_dir, struct err *e)
{
	struct vec argv = { 0 };
	const char *bin = env->set->claude_bin;
	struct prompt_arg sys, append;

	memset(c, 0, sizeof(*c));
	c->path = bin && *bin ? bin : "claude";
	if (prompt_arg(&sys, "--system-prompt", "systemPrompt", p->system_prompt, file_dir, e) != 0 ||
	    prompt_arg(&append, "--append-system-prompt", "appendSystemPrompt", p->append_system_prompt, file_dir,
		       e) != 0)
		return -1;
	build_argv(&argv, p, env->set, mcp_config, &sys, &append);
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
