/*
 * claudecfg.c: see claudecfg.h.
 *
 * Design.  Two independent pieces (the YAML of the front matter is
 * util/yaml.c's js-yaml 3 port):
 *
 *  - The ${NAME} check walks mcpConfig with the JavaScript-style path of
 *    each value in a buffer ("mcpConfig", ".key", "[i]"), so a warning
 *    says exactly where an undefined variable is used.  The file itself
 *    is mcpConfig as given: the references stay for the CLI to expand
 *    from its environment, so no secret value is ever written to it.
 *
 *  - slashCommands and subagents are visited in JavaScript property
 *    order (yaml_members), because the seed's objects came from
 *    JSON.parse.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job/claudecfg.h"
#include "job/workspace.h"
#include "util/jsjson.h"
#include "util/yaml.h"
#include "util/redact.h"

static const cJSON *js_get(const cJSON *obj, const char *key)
{
	const cJSON *it, *found = NULL;

	cJSON_ArrayForEach(it, obj)
		if (it->string && strcmp(it->string, key) == 0)
			found = it;
	return found;
}

/* ---- the file list ------------------------------------------------------ */

int cc_files_has(const struct cc_files *f, const char *path)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->paths[i], path) == 0)
			return 1;
	return 0;
}

int cc_files_add(struct cc_files *f, const char *path)
{
	char *copy;

	if (cc_files_has(f, path))
		return 0;
	if (f->n == f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 8;
		char **np = realloc(f->paths, nc * sizeof(*np));
		if (!np)
			return -1;
		f->paths = np;
		f->cap = nc;
	}
	if (!(copy = strdup(path)))
		return -1;
	f->paths[f->n++] = copy;
	return 0;
}

void cc_files_free(struct cc_files *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		free(f->paths[i]);
	free(f->paths);
	buf_free(&f->warnings);
	memset(f, 0, sizeof(*f));
}

/* ---- ${NAME} references ------------------------------------------------- */

static int name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int name_char(char c)
{
	return name_start(c) || (c >= '0' && c <= '9');
}

/* Variables the job itself puts in the CLI's environment (agentenv.h). */
static int set_by_job(const char *name)
{
	static const char *const names[] = {
		"HOME", "PATH", "ANTHROPIC_BASE_URL", "CLAUDE_CONFIG_DIR", "GIT_SSH_COMMAND",
		"PLAYWRIGHT_MCP_EXECUTABLE_PATH", "PLAYWRIGHT_MCP_SANDBOX", "CLAUDE_CODE_ACTION",
		"CLAUDE_CODE_ENTRYPOINT", "DISABLE_AUTOUPDATER",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return 1;
	return 0;
}

/* One warning line per ${NAME} in s (without a :-default) that neither
 * secrets nor the job defines. */
static int refs_in(const char *s, const cJSON *secrets, const char *path, struct buf *warnings)
{
	const char *p;

	for (p = strstr(s, "${"); p; p = strstr(p + 2, "${")) {
		const char *nm = p + 2, *q = nm;
		char name[256];
		size_t nl;

		if (!name_start(*q))
			continue;
		while (name_char(*q))
			q++;
		nl = (size_t)(q - nm);
		if (*q != '}' || nl >= sizeof(name))
			continue;
		memcpy(name, nm, nl);
		name[nl] = 0;
		if ((secrets && js_get(secrets, name)) || set_by_job(name))
			continue;
		if (buf_printf(warnings, "Environment variable \"%s\" referenced in %s but not defined in "
			       "environmentSecrets\n", name, path) != 0)
			return -1;
	}
	return 0;
}

static int refs_walk(const cJSON *v, const cJSON *secrets, struct buf *path, struct buf *warnings)
{
	const cJSON *c;
	size_t keep = path->len, i = 0;

	if (cJSON_IsString(v) && v->valuestring)
		return refs_in(v->valuestring, secrets, path->p, warnings);
	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return 0;
	for (c = v->child; c; c = c->next, i++) {
		int rc = cJSON_IsArray(v) ? buf_printf(path, "[%zu]", i)
					  : buf_printf(path, ".%s", c->string ? c->string : "");
		if (rc != 0 || refs_walk(c, secrets, path, warnings) != 0)
			return -1;
		path->len = keep;
		path->p[keep] = 0;
	}
	return 0;
}

int cc_check_refs(const cJSON *v, const cJSON *secrets, const char *path, struct buf *warnings)
{
	struct buf p = BUF_INIT;
	int rc = buf_adds(&p, path);

	if (rc == 0)
		rc = refs_walk(v, secrets, &p, warnings);
	buf_free(&p);
	return rc;
}

/* ---- names -------------------------------------------------------------- */

int cc_name_valid(const char *name, const char **why)
{
	const char *dummy, *p;
	size_t n;

	if (!why)
		why = &dummy;
	if (!name || !*name)
		return *why = "the name is empty", 0;
	n = strlen(name);
	if (n > CC_NAME_MAX)
		return *why = "the name is longer than 128 bytes", 0;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return *why = "'.' and '..' are not names", 0;
	if (name[0] == '-')
		return *why = "the name starts with '-'", 0;
	for (p = name; *p; p++) {
		if (*p == '/' || *p == '\\')
			return *why = "the name contains a path separator", 0;
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return *why = "the name contains a control character", 0;
	}
	return 1;
}

int cc_front_matter(struct buf *out, const cJSON *fm, const char *content, struct err *e)
{
	struct buf yaml = BUF_INIT;
	size_t start = out->len, count = 0;
	int rc = 0;

	if (!content)
		content = "";
	if (cJSON_IsObject(fm) && fm->child)
		rc = yaml_dump_mapping(&yaml, fm, 1, &count);
	if (rc == 0 && count > 0)
		rc = buf_adds(out, "---\n") || buf_add(out, yaml.p, yaml.len) || buf_adds(out, "\n---\n") ? -1 : 0;
	buf_free(&yaml);
	if (rc == 0)
		rc = buf_adds(out, content);
	/* The seed looks at the content, not at what precedes it. */
	if (rc == 0 && (!*content || content[strlen(content) - 1] != '\n'))
		rc = buf_addc(out, '\n');
	if (rc != 0) {
		out->len = start;
		if (out->p)
			out->p[start] = 0;
		return err_set(e, "out of memory formatting front matter");
	}
	return 0;
}

/* ---- writing the files -------------------------------------------------- */

static int write_mcp(const char *root, const cJSON *mcp, const cJSON *secrets, struct cc_files *out,
		     struct err *e)
{
	struct buf text = BUF_INIT;
	int rc;

	if (cc_check_refs(mcp, secrets, "mcpConfig", &out->warnings) != 0 || jsj_print(&text, mcp, 2) != 0)
		rc = err_set(e, "out of memory printing .mcp.json");
	else
		rc = ws_write_file(root, ".mcp.json", text.p, text.len, 0600, e);
	buf_free(&text);
	if (rc != 0)
		return -1;
	out->mcp = 1;
	return cc_files_add(out, ".mcp.json") == 0 ? 0 : err_set(e, "out of memory");
}

/* slashCommands (agents = 0) or subagents (agents = 1). */
static int write_md(const char *root, const cJSON *set, int agents, struct cc_files *out, struct err *e)
{
	const char *what = agents ? "subagents" : "slashCommands";
	const char *dir = agents ? ".claude/agents" : ".claude/commands";
	struct yaml_member *m;
	size_t n, i;
	int rc = 0;

	if (!cJSON_IsObject(set))
		return err_set(e, "%s must be an object of name -> {frontmatter, content}", what);
	if (yaml_members(set, &m, &n) != 0)
		return err_set(e, "out of memory");
	for (i = 0; rc == 0 && i < n; i++) {
		const cJSON *entry = m[i].item, *fm, *content;
		const char *name = entry->string ? entry->string : "", *why;
		struct buf text = BUF_INIT, rel = BUF_INIT;

		if (!cc_name_valid(name, &why)) {
			rc = err_set(e, "%s: invalid name '%.*s': %s", what, CC_NAME_MAX, name, why);
			break;
		}
		if (!cJSON_IsObject(entry)) {
			rc = err_set(e, "%s.%s must be an object with a content string", what, name);
			break;
		}
		fm = js_get(entry, "frontmatter");
		content = js_get(entry, "content");
		if (!cJSON_IsString(content) || !content->valuestring) {
			rc = err_set(e, "%s.%s.content must be a string", what, name);
			break;
		}
		if (fm && cJSON_IsNull(fm))
			fm = NULL;
		if (agents && !fm) {
			rc = err_set(e, "subagents.%s.frontmatter is required (an object, e.g. {\"description\": ...})",
				     name);
			break;
		}
		if (fm && !cJSON_IsObject(fm)) {
			rc = err_set(e, "%s.%s.frontmatter must be an object", what, name);
			break;
		}
		/* Commands go through the formatter only when frontmatter has a
		 * key; agents always (the result is the same either way). */
		rc = cc_front_matter(&text, fm && fm->child ? fm : NULL, content->valuestring, e);
		if (rc == 0 && buf_printf(&rel, "%s/%s.md", dir, name) != 0)
			rc = err_set(e, "out of memory");
		if (rc == 0)
			rc = ws_write_file(root, rel.p, text.p ? text.p : "", text.len, 0644, e);
		if (rc == 0 && cc_files_add(out, rel.p) != 0)
			rc = err_set(e, "out of memory");
		if (rc == 0) {
			if (agents)
				out->agents++;
			else
				out->commands++;
		}
		buf_free(&text);
		buf_free(&rel);
	}
	free(m);
	return rc == 0 ? 0 : redact_err(e);
}

int cc_write(const char *root, const cJSON *mcp_config, const cJSON *slash_commands, const cJSON *subagents,
	     const cJSON *env_secrets, struct cc_files *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (mcp_config && !cJSON_IsNull(mcp_config)) {
		if (!cJSON_IsObject(mcp_config))
			return err_set(e, "mcpConfig must be an object");
		if (mcp_config->child && write_mcp(root, mcp_config, env_secrets, out, e) != 0)
			return -1;
	}
	if (slash_commands && !cJSON_IsNull(slash_commands) && write_md(root, slash_commands, 0, out, e) != 0)
		return -1;
	if (subagents && !cJSON_IsNull(subagents) && write_md(root, subagents, 1, out, e) != 0)
		return -1;
	if (cc_files_add(out, "prompt.txt") != 0 || cc_files_add(out, ".env") != 0)
		return err_set(e, "out of memory");
	return 0;
}
