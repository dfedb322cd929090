/*
 * jobfiles_test.c: selftests for the task's files: the workspace
 * (workspace.c) and the Claude configuration files (claudecfg.c) here;
 * `.env`, the pre-execution commands (precmd.c), the agent's environment,
 * the upload globbing (upload.c), the MCP log, prices and session paths
 * in jobfiles_run_test.c.  This file holds the suite's table and the
 * helpers both share (jobfiles_selftest.h).
 *
 * Every case works in a private directory under TMPDIR (default /tmp) and
 * removes it.
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


/* ---- helpers ------------------------------------------------------------ */

int jft_tmp_dir(char *dir, size_t n)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, n, "%s/ccr-jobfiles-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

void jft_rm_dir(const char *dir)
{
	struct err e = ERR_INIT;

	(void)ws_remove_tree(dir, &e);
}

int jft_put_file(const char *dir, const char *rel, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	int fd;
	size_t n = strlen(text);

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (write(fd, text, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

int jft_sub_dir(const char *dir, const char *rel, mode_t mode)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -1;
}

int jft_sub_link(const char *dir, const char *rel, const char *target)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return symlink(target, path);
}

/* The contents of dir/rel into out (reset first); -1 when unreadable. */
int jft_slurp(const char *dir, const char *rel, struct buf *out)
{
	char path[PATH_MAX], chunk[4096];
	ssize_t n;
	int fd;

	buf_reset(out);
	snprintf(path, sizeof(path), *rel ? "%s/%s" : "%s", dir, rel);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_add(out, chunk, (size_t)n) != 0)
			break;
	close(fd);
	if (!out->p)
		buf_adds(out, "");
	return n == 0 ? 0 : -1;
}

int jft_exists(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), *rel ? "%s/%s" : "%s", dir, rel);
	return lstat(path, &st) == 0;
}

int jft_mode_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

int jft_have_sh(void)
{
	return access("/bin/sh", X_OK) == 0;
}

/* ---- workspace ---------------------------------------------------------- */

static int t_ws_create(char *why, size_t n)
{
	static const char key[] = "  -----BEGIN OPENSSH PRIVATE KEY-----\r\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\r\n"
				  "-----END OPENSSH PRIVATE KEY-----  \n";
	static const char want[] = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3NzaC1yc2EAAAADAQABAAABAQ\n"
				   "-----END OPENSSH PRIVATE KEY-----\n";
	struct err e = ERR_INIT;
	struct buf got = BUF_INIT;
	struct ws ws;
	char dir[PATH_MAX], parent[PATH_MAX + 16], *base;
	int fail = 1;
	size_t i;

	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR: %s", strerror(errno));
	snprintf(parent, sizeof(parent), "%s/a/workspaces", dir);
	if (ws_create_in(&ws, parent, &e) != 0) {
		st_fail(why, n, "ws_create_in: %s", e.msg);
		goto out;
	}
	base = strrchr(ws.dir, '/') + 1;
	for (i = 3; i < 19 && ((base[i] >= '0' && base[i] <= '9') || (base[i] >= 'a' && base[i] <= 'f')); i++)
		;
	if (strncmp(base, "ws-", 3) != 0 || i != 19 || base[19]) {
		st_fail(why, n, "workspace name %s is not ws-<16 hex>", base);
		goto out;
	}
	if (jft_mode_of(parent) != 0700 || jft_mode_of(ws.dir) != 0700 || strcmp(ws.root, ws.dir) != 0) {
		st_fail(why, n, "modes: parent %o, workspace %o (want 700, 700)", jft_mode_of(parent), jft_mode_of(ws.dir));
		goto out;
	}
	if (ws_write_ssh_key(&ws, "ssh-rsa AAAA not a private key", &e) == 0 ||
	    strcmp(e.msg, "Invalid SSH key format: Missing BEGIN/PRIVATE KEY markers") != 0) {
		st_fail(why, n, "a bad key was not refused with the seed's message: %s", e.msg);
		goto out;
	}
	if (ws_write_ssh_key(&ws, key, &e) != 0) {
		st_fail(why, n, "ws_write_ssh_key: %s", e.msg);
		goto out;
	}
	if (jft_mode_of(ws.key_path) != 0600 || jft_slurp(ws.key_path, "", &got) != 0 || strcmp(got.p, want) != 0) {
		st_fail(why, n, "key file mode %o or content not normalised", jft_mode_of(ws.key_path));
		goto out;
	}
	{
		char sshdir[PATH_MAX + 8];
		snprintf(sshdir, sizeof(sshdir), "%s/.ssh", ws.dir);
		if (jft_mode_of(sshdir) != 0700) {
			st_fail(why, n, ".ssh mode %o, want 700", jft_mode_of(sshdir));
			goto out;
		}
	}
	{
		char keep[PATH_MAX];
		memcpy(keep, ws.dir, sizeof(keep));
		if (ws_wipe(&ws, &e) != 0) {
			st_fail(why, n, "ws_wipe: %s", e.msg);
			goto out;
		}
		if (jft_exists(keep, "")) {
			st_fail(why, n, "the workspace is still there after ws_wipe");
			goto out;
		}
	}
	fail = 0;
out:
	buf_free(&got);
	jft_rm_dir(dir);
	return fail;
}

static int t_ws_join(char *why, size_t n)
{
	static const char *const refused[] = { "..", "a/../b", "../x", "/etc", "/", "out", "out/x", "deep/out2/y",
					       "dangling/x" };
	struct err e = ERR_INIT;
	struct buf out = BUF_INIT;
	char dir[PATH_MAX], outside[PATH_MAX + 16], want[PATH_MAX + 32];
	struct ws ws;
	size_t i;
	int fail = 1;

	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	if (jft_sub_dir(dir, "outside", 0700) != 0 || ws_create_in(&ws, dir, &e) != 0 ||
	    jft_sub_dir(ws.dir, "sub", 0755) != 0 || jft_sub_dir(ws.dir, "deep", 0755) != 0 ||
	    jft_sub_link(ws.dir, "out", outside) != 0 || jft_sub_link(ws.dir, "deep/out2", "../../outside") != 0 ||
	    jft_sub_link(ws.dir, "in", "sub") != 0 || jft_sub_link(ws.dir, "dangling", "nowhere") != 0) {
		st_fail(why, n, "setup failed: %s", e.msg[0] ? e.msg : strerror(errno));
		goto out;
	}
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (ws_join(&ws, refused[i], &out, &e) == 0 || ws_mkdir(&ws, refused[i], &out, &e) == 0) {
			st_fail(why, n, "'%s' was accepted (%s)", refused[i], out.p);
			goto out;
		}
	if (jft_exists(outside, "x") || jft_exists(outside, "y")) {
		st_fail(why, n, "ws_mkdir created a directory outside the workspace");
		goto out;
	}
	if (ws_join(&ws, ".", &out, &e) != 0 || strcmp(out.p, ws.dir) != 0) {
		st_fail(why, n, "'.' is not the root: %s", e.msg);
		goto out;
	}
	snprintf(want, sizeof(want), "%s/sub/new", ws.dir);
	if (ws_join(&ws, "in//new/", &out, &e) != 0 || strcmp(out.p, want) != 0) {
		st_fail(why, n, "an inside link was not resolved: %s", out.p ? out.p : e.msg);
		goto out;
	}
	snprintf(want, sizeof(want), "%s/a/b/c", ws.dir);
	if (ws_mkdir(&ws, "./a/b/c", &out, &e) != 0 || strcmp(out.p, want) != 0 || !jft_exists(ws.dir, "a/b/c")) {
		st_fail(why, n, "ws_mkdir a/b/c: %s", e.msg);
		goto out;
	}
	fail = 0;
out:
	buf_free(&out);
	jft_rm_dir(dir);
	return fail;
}

/* Writing a file replaces a link in its place, never writes through it. */
static int t_ws_write(char *why, size_t n)
{
	struct err e = ERR_INIT;
	struct buf got = BUF_INIT;
	char dir[PATH_MAX], target[PATH_MAX + 16];
	struct ws ws;
	int fail = 1;

	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(target, sizeof(target), "%s/victim", dir);
	if (jft_put_file(dir, "victim", "precious", 0600) != 0 || ws_create_in(&ws, dir, &e) != 0 ||
	    jft_sub_link(ws.dir, ".mcp.json", target) != 0) {
		st_fail(why, n, "setup failed: %s", e.msg[0] ? e.msg : strerror(errno));
		goto out;
	}
	if (ws_write_file(ws.root, ".mcp.json", "{}", 2, 0600, &e) != 0) {
		st_fail(why, n, "ws_write_file: %s", e.msg);
		goto out;
	}
	if (jft_slurp(dir, "victim", &got) != 0 || strcmp(got.p, "precious") != 0) {
		st_fail(why, n, "the link's target was written through");
		goto out;
	}
	if (jft_slurp(ws.dir, ".mcp.json", &got) != 0 || strcmp(got.p, "{}") != 0) {
		st_fail(why, n, "the file was not written");
		goto out;
	}
	fail = 0;
out:
	buf_free(&got);
	jft_rm_dir(dir);
	return fail;
}

static int t_ws_wipe(char *why, size_t n)
{
	struct err e = ERR_INIT;
	char dir[PATH_MAX], outside[PATH_MAX + 16], keep[PATH_MAX];
	struct ws ws;
	int fail = 1;

	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	if (jft_sub_dir(dir, "outside", 0700) != 0 || jft_put_file(outside, "keep.txt", "keep", 0600) != 0 ||
	    ws_create_in(&ws, dir, &e) != 0 || ws_write_ssh_key(&ws, "-----BEGIN PRIVATE KEY-----\nx\n", &e) != 0 ||
	    jft_sub_dir(ws.dir, "repo", 0755) != 0 || jft_put_file(ws.dir, "repo/ro.txt", "ro", 0400) != 0 ||
	    jft_sub_dir(ws.dir, "repo/locked", 0755) != 0 || jft_put_file(ws.dir, "repo/locked/f", "f", 0400) != 0 ||
	    jft_sub_dir(ws.dir, "repo/locked/none", 0755) != 0 || jft_put_file(ws.dir, "repo/locked/none/g", "g", 0) != 0 ||
	    jft_sub_link(ws.dir, "repo/escape", outside) != 0 || jft_sub_link(ws.dir, "repo/escape2", "../../outside") != 0) {
		st_fail(why, n, "setup failed: %s", e.msg[0] ? e.msg : strerror(errno));
		goto out;
	}
	{
		char p1[PATH_MAX + 32], p2[PATH_MAX + 32];
		snprintf(p1, sizeof(p1), "%s/repo/locked/none", ws.dir);
		snprintf(p2, sizeof(p2), "%s/repo/locked", ws.dir);
		if (chmod(p1, 0) != 0 || chmod(p2, 0500) != 0 || chmod(ws.dir, 0500) != 0) {
			st_fail(why, n, "chmod: %s", strerror(errno));
			goto out;
		}
	}
	memcpy(keep, ws.dir, sizeof(keep));
	if (ws_wipe(&ws, &e) != 0) {
		st_fail(why, n, "ws_wipe: %s", e.msg);
		goto out;
	}
	if (jft_exists(keep, "")) {
		st_fail(why, n, "%s is still there", keep);
		goto out;
	}
	if (!jft_exists(outside, "keep.txt")) {
		st_fail(why, n, "ws_wipe followed a link out of the workspace");
		goto out;
	}
	if (ws_wipe(&ws, &e) != 0) {
		st_fail(why, n, "a second ws_wipe failed: %s", e.msg);
		goto out;
	}
	fail = 0;
out:
	jft_rm_dir(dir);
	return fail;
}

/* ---- Claude configuration files ----------------------------------------- */

static int t_mcp_refs(char *why, size_t n)
{
	static const char mcp[] =
		"{\"mcpServers\":{\"github\":{\"command\":\"npx\",\"args\":[\"-y\",\"srv\",\"--t=${TOKEN}\"],"
		"\"env\":{\"GITHUB_TOKEN\":\"${NOPE}\",\"X\":\"${NOPE2:-dflt} ${not a name} ${HOME}\",\"N\":1.5}}}}";
	static const char want[] = "{\n  \"mcpServers\": {\n    \"github\": {\n      \"command\": \"npx\",\n"
				   "      \"args\": [\n        \"-y\",\n        \"srv\",\n        \"--t=${TOKEN}\"\n"
				   "      ],\n      \"env\": {\n        \"GITHUB_TOKEN\": \"${NOPE}\",\n"
				   "        \"X\": \"${NOPE2:-dflt} ${not a name} ${HOME}\",\n        \"N\": 1.5\n      }\n"
				   "    }\n  }\n}";
	static const char warn[] = "Environment variable \"NOPE\" referenced in "
				   "mcpConfig.mcpServers.github.env.GITHUB_TOKEN but not defined in environmentSecrets\n";
	cJSON *cfg = cJSON_Parse(mcp), *secrets = cJSON_Parse("{\"TOKEN\":\"tok-123456\"}");
	struct err e = ERR_INIT;
	struct cc_files files;
	struct buf got = BUF_INIT;
	char dir[PATH_MAX];
	int fail = 1;

	memset(&files, 0, sizeof(files));
	if (!cfg || !secrets || jft_tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(cfg), cJSON_Delete(secrets);
		return st_fail(why, n, "setup failed");
	}
	if (cc_write(dir, cfg, NULL, NULL, secrets, &files, &e) != 0) {
		st_fail(why, n, "cc_write: %s", e.msg);
		goto out;
	}
	/* the references stay for the CLI; no secret value in the file */
	if (jft_slurp(dir, ".mcp.json", &got) != 0 || strcmp(got.p, want) != 0 || strstr(got.p, "tok-123456")) {
		st_fail(why, n, ".mcp.json differs: %s", got.p ? got.p : "(unreadable)");
		goto out;
	}
	if (!files.warnings.p || strcmp(files.warnings.p, warn) != 0) {
		st_fail(why, n, "warnings: [%s], want [%s]", files.warnings.p ? files.warnings.p : "", warn);
		goto out;
	}
	{
		char path[PATH_MAX + 16];
		snprintf(path, sizeof(path), "%s/.mcp.json", dir);
		if (jft_mode_of(path) != 0600) {
			st_fail(why, n, ".mcp.json mode %o, want 600", jft_mode_of(path));
			goto out;
		}
	}
	if (!files.mcp || files.n != 3 || strcmp(files.paths[0], ".mcp.json") != 0 ||
	    strcmp(files.paths[1], "prompt.txt") != 0 || strcmp(files.paths[2], ".env") != 0) {
		st_fail(why, n, "wrong list of created files");
		goto out;
	}
	fail = 0;
out:
	cc_files_free(&files);
	cJSON_Delete(cfg);
	cJSON_Delete(secrets);
	buf_free(&got);
	jft_rm_dir(dir);
	return fail;
}

struct yaml_case {
	const char *fm, *content, *want;
};

static int t_yaml(char *why, size_t n)
{
	static const struct yaml_case cases[] = {
		/* The seed's verified sample (seed-spec §8.6), byte for byte. */
		{ "{\"description\":\"Deploy to staging\",\"allowed-tools\":\"Bash, Read\",\"model\":\"sonnet\","
		  "\"n\":3,\"list\":[\"a\",\"b\"],\"multi\":\"line1\\nline2\"}",
		  "Run the deploy.",
		  "---\ndescription: Deploy to staging\nallowed-tools: 'Bash, Read'\nmodel: sonnet\n'n': 3\n"
		  "list:\n  - a\n  - b\nmulti: |-\n  line1\n  line2\n---\nRun the deploy.\n" },
		/* nulls dropped; nothing left -> just the content (+ newline). */
		{ "{\"a\":null}", "body\n", "body\n" },
		{ "{}", "", "\n" },
		/* quoting rules */
		{ "{\"e\":\"\",\"y\":\"yes\",\"t\":\"true\",\"num\":\"12\",\"f\":\"1.5\",\"d\":\"2024-01-02\","
		  "\"c\":\"a: b\",\"h\":\"a #b\",\"h2\":\"a#b\",\"q\":\"it's\",\"lead\":\"-x\",\"sp\":\"x \","
		  "\"tab\":\"a\\tb\",\"emoji\":\"\xf0\x9f\xa4\x96 bot\",\"u\":\"caf\xc3\xa9\"}",
		  "x",
		  "---\ne: ''\n'y': 'yes'\nt: 'true'\nnum: '12'\nf: '1.5'\nd: '2024-01-02'\nc: 'a: b'\n"
		  "h: 'a #b'\nh2: a#b\nq: it's\nlead: '-x'\nsp: 'x '\ntab: \"a\\tb\"\nemoji: \"\\U0001F916 bot\"\n"
		  "u: caf\xc3\xa9\n---\nx\n" },
		/* scalars, nesting, flow for empties, JS key order */
		{ "{\"b\":true,\"1\":\"one\",\"i\":-7,\"fl\":0.5,\"tiny\":1e-7,\"big\":1e21,\"nul\":[null],"
		  "\"o\":{\"k\":{\"deep\":\"v\"},\"e\":{},\"l\":[]},\"seq\":[{\"a\":1,\"b\":2},[\"x\",\"y\"],\"m\\nn\\n\"]}",
		  "",
		  "---\n'1': one\nb: true\ni: -7\nfl: 0.5\ntiny: 1.e-7\nbig: 1e+21\nnul:\n  - null\no:\n  k:\n"
		  "    deep: v\n  e: {}\n  l: []\nseq:\n  - a: 1\n    b: 2\n  - - x\n    - 'y'\n  - |\n    m\n    n\n"
		  "---\n\n" },
		/* literal blocks: leading space needs an indentation indicator, keep chomping */
		{ "{\"a\":\" x\\ny\",\"b\":\"p\\n\\nq\\n\\n\"}", "c",
		  "---\na: |2-\n   x\n  y\nb: |+\n  p\n\n  q\n\n---\nc\n" },
	};
	struct buf got = BUF_INIT;
	struct err e = ERR_INIT;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *fm = cJSON_Parse(cases[i].fm);

		buf_reset(&got);
		if (!fm || cc_front_matter(&got, fm, cases[i].content, &e) != 0) {
			cJSON_Delete(fm);
			buf_free(&got);
			return st_fail(why, n, "case %zu: %s", i, fm ? e.msg : "bad JSON");
		}
		cJSON_Delete(fm);
		if (strcmp(got.p, cases[i].want) != 0) {
			st_fail(why, n, "case %zu: got [%s]", i, got.p);
			buf_free(&got);
			return 1;
		}
	}
	buf_free(&got);
	return 0;
}

/* The command and subagent files cc_write made, in the CLI's format. */
static int written_ok(const char *dir, char *why, size_t n)
{
	struct buf got = BUF_INIT;
	int fail = 1;

	if (jft_slurp(dir, ".claude/commands/review.md", &got) != 0 ||
	    strcmp(got.p, "---\ndescription: Review\n---\nDo it\n") != 0) {
		st_fail(why, n, "review.md: %s", got.p ? got.p : "(unreadable)");
		goto out;
	}
	if (jft_slurp(dir, ".claude/commands/plain.md", &got) != 0 || strcmp(got.p, "Just text\n") != 0) {
		st_fail(why, n, "plain.md: %s", got.p ? got.p : "(unreadable)");
		goto out;
	}
	if (jft_slurp(dir, ".claude/agents/helper.md", &got) != 0 ||
	    strcmp(got.p, "---\nname: helper\ntools:\n  - Read\n---\nHelp.\n") != 0) {
		st_fail(why, n, "helper.md: %s", got.p ? got.p : "(unreadable)");
		goto out;
	}
	fail = 0;
out:
	buf_free(&got);
	return fail;
}

static int t_cfg_names(char *why, size_t n)
{
	static const char *const bad[] = { "", ".", "..", "../x", "a/b", "a\\b", "-rf", "tab\tname",
					   ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
					    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") };
	static const char *const cmds[] = {
		"{\"../../escape\":{\"content\":\"x\"}}",
		"{\"a/b\":{\"content\":\"x\"}}",
		"{\"ok\":{\"content\":1}}",
		"{\"ok\":{\"content\":\"x\",\"frontmatter\":\"nope\"}}",
	};
	struct err e = ERR_INIT;
	struct cc_files files;
	char dir[PATH_MAX];
	cJSON *c = NULL, *a = NULL;
	size_t i;
	int fail = 1;

	memset(&files, 0, sizeof(files));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cc_name_valid(bad[i], NULL))
			return st_fail(why, n, "name '%s' was accepted", bad[i]);
	if (!cc_name_valid("review-pr", NULL) || !cc_name_valid("a.b c", NULL))
		return st_fail(why, n, "a good name was refused");
	if (jft_tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		c = cJSON_Parse(cmds[i]);
		if (!c || cc_write(dir, NULL, c, NULL, NULL, &files, &e) == 0) {
			st_fail(why, n, "slashCommands %s was accepted", cmds[i]);
			goto out;
		}
		cc_files_free(&files);
		cJSON_Delete(c);
		c = NULL;
	}
	a = cJSON_Parse("{\"helper\":{\"content\":\"x\"}}");
	if (!a || cc_write(dir, NULL, NULL, a, NULL, &files, &e) == 0 || !strstr(e.msg, "frontmatter")) {
		st_fail(why, n, "a subagent without frontmatter was accepted: %s", e.msg);
		goto out;
	}
	cc_files_free(&files);
	if (jft_exists(dir, "../escape.md") || jft_exists(dir, ".claude/commands/a")) {
		st_fail(why, n, "a file was written for a refused name");
		goto out;
	}
	cJSON_Delete(a);
	c = cJSON_Parse("{\"review\":{\"frontmatter\":{\"description\":\"Review\"},\"content\":\"Do it\"},"
			"\"plain\":{\"content\":\"Just text\"}}");
	a = cJSON_Parse("{\"helper\":{\"frontmatter\":{\"name\":\"helper\",\"tools\":[\"Read\"]},\"content\":\"Help.\\n\"}}");
	if (!c || !a || cc_write(dir, NULL, c, a, NULL, &files, &e) != 0) {
		st_fail(why, n, "cc_write: %s", e.msg);
		goto out;
	}
	if (files.n != 5 || strcmp(files.paths[0], ".claude/commands/review.md") != 0 ||
	    strcmp(files.paths[1], ".claude/commands/plain.md") != 0 ||
	    strcmp(files.paths[2], ".claude/agents/helper.md") != 0 || files.commands != 2 || files.agents != 1 ||
	    !cc_files_has(&files, "prompt.txt") || !cc_files_has(&files, ".env")) {
		st_fail(why, n, "wrong list of created files (%zu)", files.n);
		goto out;
	}
	fail = written_ok(dir, why, n);
out:
	cc_files_free(&files);
	cJSON_Delete(c);
	cJSON_Delete(a);
	jft_rm_dir(dir);
	return fail;
}

const struct st_case jobfiles_tests[] = {
	{ "ws_create", t_ws_create },
	{ "ws_join", t_ws_join },
	{ "ws_write", t_ws_write },
	{ "ws_wipe", t_ws_wipe },
	{ "mcp_refs", t_mcp_refs },
	{ "yaml", t_yaml },
	{ "cfg_names", t_cfg_names },
	{ "env_file", jft_env_file },
	{ "pre_ok", jft_pre_ok },
	{ "pre_fail", jft_pre_fail },
	{ "pre_timeout", jft_pre_timeout },
	{ "pre_cap", jft_pre_cap },
	{ "agent_env", jft_agent_env },
	{ "pre_env", jft_pre_env },
	{ "glob", jft_glob },
	{ "upload", jft_upload },
	{ "mcplog", jft_mcplog },
	{ "prices", jft_prices },
	{ "session_paths", jft_session_paths },
	{ NULL, NULL },
};
