/*
 * agentenv.c: see agentenv.h.
 *
 * Design.  One small list of malloc'd "NAME=value" strings with
 * set-or-replace semantics (struct envlist), so that the order of the
 * steps in ae_base() decides who wins exactly as property assignment did
 * in the seed's object.  Every string is wiped when freed: the list holds
 * environmentSecrets values.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "job/agentenv.h"
#include "job/precmd.h"
#include "util/buf.h"
#include "util/redact.h"

extern char **environ;

struct envlist {
	char **v;
	size_t n, cap;
	struct err *e;
};

static void envlist_free(struct envlist *l)
{
	ae_free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int envlist_find(const struct envlist *l, const char *name, size_t nl)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strncmp(l->v[i], name, nl) == 0 && l->v[i][nl] == '=')
			return (int)i;
	return -1;
}

/* Set name (nl bytes) to value, replacing it where it already is. */
static int envlist_set(struct envlist *l, const char *name, size_t nl, const char *value)
{
	int at = envlist_find(l, name, nl);
	size_t vl = strlen(value);
	char *s = malloc(nl + vl + 2);

	if (!s)
		return err_set(l->e, "out of memory building an environment");
	memcpy(s, name, nl);
	s[nl] = '=';
	memcpy(s + nl + 1, value, vl + 1);
	if (at >= 0) {
		cr_wipe(l->v[at], strlen(l->v[at]));
		free(l->v[at]);
		l->v[at] = s;
		return 0;
	}
	if (l->n + 1 >= l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 32;
		char **nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv) {
			free(s);
			return err_set(l->e, "out of memory building an environment");
		}
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = s;
	l->v[l->n] = NULL;
	return 0;
}

static int set(struct envlist *l, const char *name, const char *value)
{
	return envlist_set(l, name, strlen(name), value);
}

static int has_secret(const cJSON *secrets, const char *name)
{
	return cJSON_IsObject(secrets) && cJSON_GetObjectItemCaseSensitive(secrets, name) != NULL;
}

void ae_free(char **envp)
{
	char **p;

	for (p = envp; p && *p; p++) {
		cr_wipe(*p, strlen(*p));
		free(*p);
	}
	free(envp);
}

const char *ae_get(char *const *envp, const char *name)
{
	size_t nl = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, nl) == 0 && (*envp)[nl] == '=')
			return *envp + nl + 1;
	return NULL;
}

int ae_protected(const char *name)
{
	static const char *const names[] = { "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN",
					     "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS" };
	/* Tools read these in either case (Python's in any), so every case
	 * is ccr's. */
	static const char *const proxy_names[] = { "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return 1;
	for (i = 0; i < sizeof(proxy_names) / sizeof(proxy_names[0]); i++)
		if (strcasecmp(name, proxy_names[i]) == 0)
			return 1;
	return 0;
}

/* Case-insensitive: does name (len bytes) contain word? */
static int contains(const char *name, size_t len, const char *word)
{
	size_t wl = strlen(word), i, j;

	for (i = 0; i + wl <= len; i++) {
		for (j = 0; j < wl && toupper((unsigned char)name[i + j]) == word[j]; j++)
			;
		if (j == wl)
			return 1;
	}
	return 0;
}

static int prefixed(const char *name, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);

	return len >= pl && strncmp(name, prefix, pl) == 0;
}

int ae_inherited(const char *name, size_t len)
{
	static const char *const exact[] = { "NODE_PATH", "PWD", "CLOUDRUN_CALLBACK_SECRET", "GIT_SSH",
					     "CLAUDE_CODE_OAUTH_TOKEN" };
	static const char *const prefixes[] = { "npm_", "CCR_", "GOOGLE_", "CLOUDSDK_", "ANTHROPIC_" };
	static const char *const words[] = { "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL",
					     "API_KEY", "APIKEY", "PRIVATE_KEY", "ACCESS_KEY" };
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strlen(exact[i]) == len && strncmp(name, exact[i], len) == 0)
			return 0;
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (prefixed(name, len, prefixes[i]))
			return 0;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (contains(name, len, words[i]))
			return 0;
	return 1;
}

/* The newest chromium-* build under the Playwright browsers path. */
static int find_chromium(const char *base, char *out, size_t n)
{
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

/* environmentSecrets, first position and last value of a duplicate (as
 * Object.entries of JSON.parse's object). */
static int add_secrets(struct envlist *l, const cJSON *secrets)
{
	const cJSON *it;

	if (!secrets || cJSON_IsNull(secrets))
		return 0;
	if (!cJSON_IsObject(secrets))
		return err_set(l->e, "environmentSecrets must be an object of strings");
	cJSON_ArrayForEach(it, secrets) {
		const char *k = it->string ? it->string : "";

		if (!pc_env_name_valid(k))
			return err_set(l->e, "environmentSecrets: '%.100s' is not a valid environment variable name "
				       "(letters, digits and '_', not starting with a digit)", k);
		if (ae_protected(k))
			continue;
		if (set(l, k, cJSON_IsString(it) && it->valuestring ? it->valuestring : "") != 0)
			return -1;
	}
	return 0;
}

/* The egress proxy's variables (see agentenv.h). */
static int add_egress(struct envlist *l, const char *url)
{
	static const char *const names[] = { "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
					     "http_proxy", "https_proxy", "all_proxy" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (set(l, names[i], url) != 0)
			return -1;
	return set(l, "NO_PROXY", AE_NO_PROXY) != 0 || set(l, "no_proxy", AE_NO_PROXY) != 0 ? -1 : 0;
}

static int sh_quote(struct buf *b, const char *s)
{
	int rc = buf_addc(b, '\'');

	for (; *s && rc == 0; s++)
		rc = *s == '\'' ? buf_adds(b, "'\\''") : buf_addc(b, *s);
	return rc || buf_addc(b, '\'') ? -1 : 0;
}

/* GIT_SSH_COMMAND, plus the ProxyCommand through `ccr connect` when the
 * egress proxy runs.  ssh hands ProxyCommand to a shell, and git hands the
 * whole command to one: the executable is quoted for the inner shell, the
 * option for the outer one. */
static int set_git_ssh(struct envlist *l, const struct ae_ctx *c)
{
	struct buf cmd = BUF_INIT, opt = BUF_INIT;
	int rc;

	if (!c->egress_url || !c->connect_exe)
		return set(l, "GIT_SSH_COMMAND", c->git_ssh);
	rc = buf_adds(&opt, "ProxyCommand=") || sh_quote(&opt, c->connect_exe) || buf_adds(&opt, " connect %h %p") ||
	     buf_adds(&cmd, c->git_ssh) || buf_adds(&cmd, " -o ") || sh_quote(&cmd, opt.p);
	rc = rc ? err_set(l->e, "out of memory building GIT_SSH_COMMAND") : set(l, "GIT_SSH_COMMAND", cmd.p);
	buf_free(&cmd);
	buf_free(&opt);
	return rc;
}

/* The base (see agentenv.h), added to l. */
static int ae_base(const struct ae_ctx *c, struct envlist *l)
{
	const char *path = c->set->path;
	char chrome[600];

	if (set(l, "ANTHROPIC_BASE_URL", c->base_url ? c->base_url : "") != 0 || add_secrets(l, c->secrets) != 0)
		return -1;
	if (c->cred_name && set(l, c->cred_name, c->cred_value ? c->cred_value : "") != 0)
		return -1;
	if (c->egress_url && add_egress(l, c->egress_url) != 0)
		return -1;
	if (c->git_ssh && (c->git_ssh_forced || !has_secret(c->secrets, "GIT_SSH_COMMAND")) &&
	    set_git_ssh(l, c) != 0)
		return -1;
	if (c->config_dir && !has_secret(c->secrets, "CLAUDE_CONFIG_DIR") &&
	    set(l, "CLAUDE_CONFIG_DIR", c->config_dir) != 0)
		return -1;
	if (find_chromium(c->set->browsers, chrome, sizeof(chrome)) == 0 &&
	    (set(l, "PLAYWRIGHT_MCP_EXECUTABLE_PATH", chrome) != 0 || set(l, "PLAYWRIGHT_MCP_SANDBOX", "false") != 0))
		return -1;
	if (c->tmpdir && (set(l, "TMPDIR", c->tmpdir) != 0 || set(l, "TMP", c->tmpdir) != 0 || set(l, "TEMP", c->tmpdir) != 0))
		return -1;
	if (set(l, "HOME", c->home ? c->home : c->set->home) != 0 ||
	    set(l, "PATH", path && *path ? path : "/usr/local/bin:/usr/bin:/bin") != 0 ||
	    set(l, "CLAUDE_CODE_ACTION", "1") != 0 || set(l, "CLAUDE_CODE_ENTRYPOINT", "cli") != 0 ||
	    set(l, "DISABLE_AUTOUPDATER", "1") != 0)
		return -1;
	if (c->set->skip_permissions && geteuid() == 0 && set(l, "IS_SANDBOX", "1") != 0)
		return -1;
	return 0;
}

static int finish(struct envlist *l, char ***envp, int rc)
{
	struct err *e = l->e;

	if (rc == 0 && !l->v && !(l->v = calloc(1, sizeof(*l->v))))
		rc = err_set(e, "out of memory building an environment");
	if (rc != 0) {
		struct buf b = BUF_INIT;

		envlist_free(l);
		if (e && redact_str(&b, e->msg) == 0 && b.p)
			snprintf(e->msg, sizeof(e->msg), "%s", b.p);
		buf_free(&b);
		return -1;
	}
	*envp = l->v;
	return 0;
}

int ae_claude_env(const struct ae_ctx *c, char ***envp, struct err *e)
{
	struct envlist l = { NULL, 0, 0, e };

	*envp = NULL;
	return finish(&l, envp, ae_base(c, &l));
}

int ae_precmd_env(const struct ae_ctx *c, char ***envp, struct err *e)
{
	struct envlist l = { NULL, 0, 0, e };
	char **p;
	int rc = 0;

	*envp = NULL;
	for (p = environ; rc == 0 && p && *p; p++) {
		const char *eq = strchr(*p, '=');
		size_t nl = eq ? (size_t)(eq - *p) : 0;

		if (eq && ae_inherited(*p, nl))
			rc = envlist_set(&l, *p, nl, eq + 1);
	}
	if (rc == 0)
		rc = ae_base(c, &l);
	if (rc == 0)
		rc = set(&l, "CI", "true") || set(&l, "HOME", c->home ? c->home : c->set->home) || set(&l, "NODE_ENV", "") ? -1 : 0;
	return finish(&l, envp, rc);
}
