/*
 * jobfiles_selftest.c: selftests for the task's files: the workspace
 * (workspace.c), the Claude configuration files (claudecfg.c), `.env` and
 * the pre-execution commands (precmd.c), and the upload globbing
 * (upload.c).
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
#include "job/prices.h"
#include "job/session.h"
#include "job/precmd.h"
#include "job/upload.h"
#include "job/workspace.h"
#include "selftest/selftest.h"
#include "util/buf.h"
#include "util/jsjson.h"
#include "settings/settings.h"

/* ---- helpers ------------------------------------------------------------ */

static int tmp_dir(char *dir, size_t n)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, n, "%s/ccr-jobfiles-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static void rm_dir(const char *dir)
{
	struct err e = ERR_INIT;

	(void)ws_remove_tree(dir, &e);
}

static int put_file(const char *dir, const char *rel, const char *text, mode_t mode)
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

static int sub_dir(const char *dir, const char *rel, mode_t mode)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -1;
}

static int sub_link(const char *dir, const char *rel, const char *target)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return symlink(target, path);
}

/* The contents of dir/rel into out (reset first); -1 when unreadable. */
static int slurp(const char *dir, const char *rel, struct buf *out)
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

static int exists(const char *dir, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), *rel ? "%s/%s" : "%s", dir, rel);
	return lstat(path, &st) == 0;
}

static int mode_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static int have_sh(void)
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

	if (tmp_dir(dir, sizeof(dir)) != 0)
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
	if (mode_of(parent) != 0700 || mode_of(ws.dir) != 0700 || strcmp(ws.root, ws.dir) != 0) {
		st_fail(why, n, "modes: parent %o, workspace %o (want 700, 700)", mode_of(parent), mode_of(ws.dir));
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
	if (mode_of(ws.key_path) != 0600 || slurp(ws.key_path, "", &got) != 0 || strcmp(got.p, want) != 0) {
		st_fail(why, n, "key file mode %o or content not normalised", mode_of(ws.key_path));
		goto out;
	}
	{
		char sshdir[PATH_MAX + 8];
		snprintf(sshdir, sizeof(sshdir), "%s/.ssh", ws.dir);
		if (mode_of(sshdir) != 0700) {
			st_fail(why, n, ".ssh mode %o, want 700", mode_of(sshdir));
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
		if (exists(keep, "")) {
			st_fail(why, n, "the workspace is still there after ws_wipe");
			goto out;
		}
	}
	fail = 0;
out:
	buf_free(&got);
	rm_dir(dir);
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

	if (tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	if (sub_dir(dir, "outside", 0700) != 0 || ws_create_in(&ws, dir, &e) != 0 ||
	    sub_dir(ws.dir, "sub", 0755) != 0 || sub_dir(ws.dir, "deep", 0755) != 0 ||
	    sub_link(ws.dir, "out", outside) != 0 || sub_link(ws.dir, "deep/out2", "../../outside") != 0 ||
	    sub_link(ws.dir, "in", "sub") != 0 || sub_link(ws.dir, "dangling", "nowhere") != 0) {
		st_fail(why, n, "setup failed: %s", e.msg[0] ? e.msg : strerror(errno));
		goto out;
	}
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (ws_join(&ws, refused[i], &out, &e) == 0 || ws_mkdir(&ws, refused[i], &out, &e) == 0) {
			st_fail(why, n, "'%s' was accepted (%s)", refused[i], out.p);
			goto out;
		}
	if (exists(outside, "x") || exists(outside, "y")) {
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
	if (ws_mkdir(&ws, "./a/b/c", &out, &e) != 0 || strcmp(out.p, want) != 0 || !exists(ws.dir, "a/b/c")) {
		st_fail(why, n, "ws_mkdir a/b/c: %s", e.msg);
		goto out;
	}
	fail = 0;
out:
	buf_free(&out);
	rm_dir(dir);
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

	if (tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(target, sizeof(target), "%s/victim", dir);
	if (put_file(dir, "victim", "precious", 0600) != 0 || ws_create_in(&ws, dir, &e) != 0 ||
	    sub_link(ws.dir, ".mcp.json", target) != 0) {
		st_fail(why, n, "setup failed: %s", e.msg[0] ? e.msg : strerror(errno));
		goto out;
	}
	if (ws_write_file(ws.root, ".mcp.json", "{}", 2, 0600, &e) != 0) {
		st_fail(why, n, "ws_write_file: %s", e.msg);
		goto out;
	}
	if (slurp(dir, "victim", &got) != 0 || strcmp(got.p, "precious") != 0) {
		st_fail(why, n, "the link's target was written through");
		goto out;
	}
	if (slurp(ws.dir, ".mcp.json", &got) != 0 || strcmp(got.p, "{}") != 0) {
		st_fail(why, n, "the file was not written");
		goto out;
	}
	fail = 0;
out:
	buf_free(&got);
	rm_dir(dir);
	return fail;
}

static int t_ws_wipe(char *why, size_t n)
{
	struct err e = ERR_INIT;
	char dir[PATH_MAX], outside[PATH_MAX + 16], keep[PATH_MAX];
	struct ws ws;
	int fail = 1;

	if (tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	if (sub_dir(dir, "outside", 0700) != 0 || put_file(outside, "keep.txt", "keep", 0600) != 0 ||
	    ws_create_in(&ws, dir, &e) != 0 || ws_write_ssh_key(&ws, "-----BEGIN PRIVATE KEY-----\nx\n", &e) != 0 ||
	    sub_dir(ws.dir, "repo", 0755) != 0 || put_file(ws.dir, "repo/ro.txt", "ro", 0400) != 0 ||
	    sub_dir(ws.dir, "repo/locked", 0755) != 0 || put_file(ws.dir, "repo/locked/f", "f", 0400) != 0 ||
	    sub_dir(ws.dir, "repo/locked/none", 0755) != 0 || put_file(ws.dir, "repo/locked/none/g", "g", 0) != 0 ||
	    sub_link(ws.dir, "repo/escape", outside) != 0 || sub_link(ws.dir, "repo/escape2", "../../outside") != 0) {
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
	if (exists(keep, "")) {
		st_fail(why, n, "%s is still there", keep);
		goto out;
	}
	if (!exists(outside, "keep.txt")) {
		st_fail(why, n, "ws_wipe followed a link out of the workspace");
		goto out;
	}
	if (ws_wipe(&ws, &e) != 0) {
		st_fail(why, n, "a second ws_wipe failed: %s", e.msg);
		goto out;
	}
	fail = 0;
out:
	rm_dir(dir);
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
	if (!cfg || !secrets || tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(cfg), cJSON_Delete(secrets);
		return st_fail(why, n, "setup failed");
	}
	if (cc_write(dir, cfg, NULL, NULL, secrets, &files, &e) != 0) {
		st_fail(why, n, "cc_write: %s", e.msg);
		goto out;
	}
	/* the references stay for the CLI; no secret value in the file */
	if (slurp(dir, ".mcp.json", &got) != 0 || strcmp(got.p, want) != 0 || strstr(got.p, "tok-123456")) {
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
		if (mode_of(path) != 0600) {
			st_fail(why, n, ".mcp.json mode %o, want 600", mode_of(path));
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
	rm_dir(dir);
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
	struct buf got = BUF_INIT;
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
	if (tmp_dir(dir, sizeof(dir)) != 0)
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
	if (exists(dir, "../escape.md") || exists(dir, ".claude/commands/a")) {
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
	if (slurp(dir, ".claude/commands/review.md", &got) != 0 ||
	    strcmp(got.p, "---\ndescription: Review\n---\nDo it\n") != 0) {
		st_fail(why, n, "review.md: %s", got.p ? got.p : "(unreadable)");
		goto out;
	}
	if (slurp(dir, ".claude/commands/plain.md", &got) != 0 || strcmp(got.p, "Just text\n") != 0) {
		st_fail(why, n, "plain.md: %s", got.p ? got.p : "(unreadable)");
		goto out;
	}
	if (slurp(dir, ".claude/agents/helper.md", &got) != 0 ||
	    strcmp(got.p, "---\nname: helper\ntools:\n  - Read\n---\nHelp.\n") != 0) {
		st_fail(why, n, "helper.md: %s", got.p ? got.p : "(unreadable)");
		goto out;
	}
	fail = 0;
out:
	cc_files_free(&files);
	cJSON_Delete(c);
	cJSON_Delete(a);
	buf_free(&got);
	rm_dir(dir);
	return fail;
}

/* ---- .env and pre-execution commands ------------------------------------ */

static int t_env_file(char *why, size_t n)
{
	cJSON *s = cJSON_Parse("{\"API_URL\":\"https://x.example/a=b\",\"TOKEN\":\"t 1\",\"API_URL\":\"last\",\"_E\":\"\"}");
	cJSON *bad = cJSON_Parse("{\"NOT-A-NAME\":\"x\"}"), *none = cJSON_Parse("{}");
	struct err e = ERR_INIT;
	struct buf got = BUF_INIT;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	int written = 0, fail = 1;

	if (!s || !bad || !none || tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(s), cJSON_Delete(bad), cJSON_Delete(none);
		return st_fail(why, n, "setup failed");
	}
	snprintf(path, sizeof(path), "%s/.env", dir);
	if (pc_write_env(dir, none, &written, &e) != 0 || written || exists(dir, ".env")) {
		st_fail(why, n, "an empty environmentSecrets wrote .env");
		goto out;
	}
	if (pc_write_env(dir, s, &written, &e) != 0 || !written) {
		st_fail(why, n, "pc_write_env: %s", e.msg);
		goto out;
	}
	if (slurp(dir, ".env", &got) != 0 || strcmp(got.p, "API_URL=last\nTOKEN=t 1\n_E=") != 0 ||
	    mode_of(path) != 0600) {
		st_fail(why, n, ".env is [%s] mode %o", got.p ? got.p : "", mode_of(path));
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
	rm_dir(dir);
	return fail;
}

static int t_pre_ok(char *why, size_t n)
{
	cJSON *cmds = cJSON_Parse("[\"echo hello > made.txt\", \"[ -f made.txt ] && echo \\\"$CI\\\" >> made.txt\"]");
	struct err e = ERR_INIT;
	struct buf got = BUF_INIT;
	struct pc_leftovers left = { { 0 }, 0 };
	char dir[PATH_MAX], *const envp[] = { "CI=true", "PATH=/usr/bin:/bin", NULL };
	int fail = 1;

	if (!have_sh()) {
		cJSON_Delete(cmds);
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	}
	if (!cmds || tmp_dir(dir, sizeof(dir)) != 0) {
		cJSON_Delete(cmds);
		return st_fail(why, n, "setup failed");
	}
	if (pc_run_all(dir, cmds, envp, NULL, &left, &e) != 0) {
		st_fail(why, n, "pc_run_all: %s", e.msg);
		goto out;
	}
	if (slurp(dir, "made.txt", &got) != 0 || strcmp(got.p, "hello\ntrue\n") != 0) {
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
	rm_dir(dir);
	return fail;
}

static int t_pre_fail(char *why, size_t n)
{
	cJSON *cmds = cJSON_Parse("[\"true\", \"echo out; echo boom >&2; exit 3\", \"echo never > never.txt\"]");
	struct err e = ERR_INIT;
	char dir[PATH_MAX];
	int fail = 1;

	if (!have_sh()) {
		cJSON_Delete(cmds);
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	}
	if (!cmds || tmp_dir(dir, sizeof(dir)) != 0) {
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
	if (exists(dir, "never.txt")) {
		st_fail(why, n, "a command after the failure ran");
		goto out;
	}
	fail = 0;
out:
	cJSON_Delete(cmds);
	rm_dir(dir);
	return fail;
}

static int t_pre_timeout(char *why, size_t n)
{
	static const char cmd[] = "(while :; do :; done) & while :; do :; done";
	struct pc_opts o = { 300, 0, 500, NULL, NULL, NULL };
	struct pc_result r;
	struct err e = ERR_INIT;
	char dir[PATH_MAX], *const envp[] = { "PATH=/usr/bin:/bin", NULL };
	int fail = 1, i;

	if (!have_sh())
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	if (tmp_dir(dir, sizeof(dir)) != 0)
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
	rm_dir(dir);
	return fail;
}

static int t_pre_cap(char *why, size_t n)
{
	cJSON *cmds = cJSON_Parse(
		"[\"i=0; while [ $i -lt 20000 ]; do echo 0123456789012345678901234567890123456789012345678901234567890123456789; "
		"i=$((i+1)); done; echo finished > done.txt\"]");
	struct err e = ERR_INIT;
	char dir[PATH_MAX];
	int fail = 1;

	if (!have_sh()) {
		cJSON_Delete(cmds);
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	}
	if (!cmds || tmp_dir(dir, sizeof(dir)) != 0) {
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
	if (exists(dir, "done.txt")) {
		st_fail(why, n, "the command ran on after the cap");
		goto out;
	}
	fail = 0;
out:
	cJSON_Delete(cmds);
	rm_dir(dir);
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
	memset(c, 0, sizeof(*c));
	c->secrets = secrets;
	c->base_url = "http://127.0.0.1:1";
	c->cred_name = "ANTHROPIC_API_KEY";
	c->cred_value = "dummy-x";
	c->git_ssh = "ssh -o X";
	c->git_ssh_forced = forced;
	c->config_dir = "/cfg";
}

/* The CLI's environment: the base only, each name once, ccr's wins. */
static int t_agent_env(char *why, size_t n)
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
static int t_pre_env(char *why, size_t n)
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

	if (!have_sh()) {
		cJSON_Delete(secrets), cJSON_Delete(cmds);
		return snprintf(why, n, "skipped: no /bin/sh"), 0;
	}
	if (!secrets || !cmds || tmp_dir(dir, sizeof(dir)) != 0) {
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
	if (fd9 >= 0 && exists(dir, "fd9.txt")) {
		st_fail(why, n, "descriptor 9 of ccr reached the command");
		goto out;
	}
	buf_printf(&want, "unset unset unset unset unset unset dummy-x http://127.0.0.1:1 s3cr3t-value true [] "
		   "/pw-browsers t-canary ssh -o X /cfg /home/agent %s\n",
		   path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	if (slurp(dir, "env.txt", &got) != 0 || strcmp(got.p, want.p) != 0) {
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
	rm_dir(dir);
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
	return sub_dir(ws, "sub", 0755) || sub_dir(ws, "sub/deep", 0755) || sub_dir(ws, ".dot", 0755) ||
	       sub_dir(ws, "node_modules", 0755) || sub_dir(ws, ".git", 0755) || sub_dir(ws, "sub/node_modules", 0755) ||
	       put_file(ws, "a.txt", "A", 0644) || put_file(ws, "sub/b.txt", "BB", 0644) ||
	       put_file(ws, "sub/deep/c.txt", "CCC", 0644) || put_file(ws, ".hidden.txt", "H", 0644) ||
	       put_file(ws, ".dot/d.txt", "D", 0644) || put_file(ws, "node_modules/x.txt", "X", 0644) ||
	       put_file(ws, ".git/y.txt", "Y", 0644) || put_file(ws, "sub/node_modules/z.txt", "Z", 0644) ||
	       put_file(ws, "img.png", "P", 0644) || put_file(ws, "img.jpg", "J", 0644) ||
	       put_file(ws, "img.gif", "G", 0644) || sub_link(ws, "link_in.txt", "a.txt") ||
	       sub_link(ws, "link_out.txt", target) || sub_link(ws, "sub/dirlink", outside) ||
	       put_file(outside, "secret.txt", "SECRET", 0644);
}

struct glob_case {
	const char *pattern, *want;   /* want: matches joined by ' ', or NULL = refused */
};

static int t_glob(char *why, size_t n)
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

	if (tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	if (sub_dir(dir, "ws", 0700) != 0 || sub_dir(dir, "outside", 0700) != 0 || glob_tree(ws, outside) != 0) {
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
	rm_dir(dir);
	return fail;
}

static int t_upload(char *why, size_t n)
{
	struct buf warns = BUF_INIT, got = BUF_INIT, want = BUF_INIT, text = BUF_INIT;
	struct err e = ERR_INIT;
	struct storage *st = NULL;
	char dir[PATH_MAX], ws[PATH_MAX + 8], outside[PATH_MAX + 16], store[PATH_MAX + 16];
	cJSON *req = NULL, *res = NULL;
	struct up_config c;
	int fail = 1;

	if (tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(ws, sizeof(ws), "%s/ws", dir);
	snprintf(outside, sizeof(outside), "%s/outside", dir);
	snprintf(store, sizeof(store), "%s/store", dir);
	if (sub_dir(dir, "ws", 0700) != 0 || sub_dir(dir, "outside", 0700) != 0 || glob_tree(ws, outside) != 0 ||
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
	st->ops->url(st, "out/run/sub/b.txt", &want);
	buf_printf(&want, "\",\"sizeBytes\":2},{\"originalPath\":\"%s/sub/deep/c.txt\",\"gcsPath\":\"", ws);
	st->ops->url(st, "out/run/sub/deep/c.txt", &want);
	buf_adds(&want, "\",\"sizeBytes\":3}]");
	if (strcmp(text.p, want.p) != 0) {
		st_fail(why, n, "uploadedFiles %s, want %s", text.p, want.p);
		goto out;
	}
	if (st->ops->get(st, "out/run/sub/deep/c.txt", 0, &got, &e) != 0 || strcmp(got.p, "CCC") != 0) {
		st_fail(why, n, "the stored object differs: %s", e.msg);
		goto out;
	}
	if (!strstr(warns.p, "/etc/passwd") || !strstr(warns.p, "No files matched pattern: *.zzz") ||
	    !strstr(warns.p, "skipped link_out.txt")) {
		st_fail(why, n, "missing warnings: [%s]", warns.p);
		goto out;
	}
	/* Default prefix files/<taskId>; nothing matched gives []. */
	cJSON_Delete(req);
	cJSON_Delete(res);
	res = NULL;
	buf_reset(&text);
	req = cJSON_Parse("{\"globPatterns\":[\"a.txt\"]}");
	buf_reset(&got);
	if (!req || up_run(&c, req, &res, &e) != 0 || st->ops->get(st, "files/task-1/a.txt", 0, &got, &e) != 0) {
		st_fail(why, n, "default prefix: %s", e.msg);
		goto out;
	}
	cJSON_Delete(req);
	cJSON_Delete(res);
	res = NULL;
	req = cJSON_Parse("{\"globPatterns\":[\"none/*\"]}");
	if (!req || up_run(&c, req, &res, &e) != 0 || jsj_print(&text, res, 0) != 0 || strcmp(text.p, "[]") != 0) {
		st_fail(why, n, "nothing matched: %s", text.p ? text.p : e.msg);
		goto out;
	}
	cJSON_Delete(req);
	cJSON_Delete(res);
	res = NULL;
	req = cJSON_Parse("{\"globPatterns\":[\"a.txt\"],\"gcsPrefix\":\"../up\"}");
	if (!req || up_run(&c, req, &res, &e) == 0 || !strstr(e.msg, "gcsPrefix")) {
		st_fail(why, n, "a bad gcsPrefix was accepted");
		goto out;
	}
	fail = 0;
out:
	cJSON_Delete(req);
	cJSON_Delete(res);
	if (st)
		st->ops->free(st);
	buf_free(&warns);
	buf_free(&got);
	buf_free(&want);
	buf_free(&text);
	rm_dir(dir);
	return fail;
}

/* mcplog.c: the CLI's MCP logs, in both naming schemes and all three
 * formats, explained and then forgotten. */
static int t_mcplog(char *why, size_t n)
{
	char dir[PATH_MAX], cache[PATH_MAX + 16];
	struct buf out = BUF_INIT;
	const char *cwd = "/w/ws_1";
	int rc = 1, k;

	if (tmp_dir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "mkdtemp: %s", strerror(errno));
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	if (sub_dir(dir, "cache", 0700) || sub_dir(dir, "cache/claude-cli-nodejs", 0700) ||
			sub_dir(dir, "cache/claude-cli-nodejs/-w-ws-1", 0700) ||
			sub_dir(dir, "cache/claude-cli-nodejs/-w-ws-1/mcp-logs-new", 0700) ||
			put_file(dir, "cache/claude-cli-nodejs/-w-ws-1/mcp-logs-new/2026-01-01.jsonl",
				 "{\"error\":\"stale\"}\n", 0600) ||
			put_file(dir, "cache/claude-cli-nodejs/-w-ws-1/mcp-logs-new/2026-02-01.jsonl",
				 "{\"debug\":\"starting\"}\n{\"error\":\"Server stderr: no token\\n\"}\n"
				 "{\"error\":\"Connection closed\"}\n", 0600) ||
			sub_dir(dir, "cache/claude-old", 0700) || sub_dir(dir, "cache/claude-old/-w-ws_1", 0700) ||
			sub_dir(dir, "cache/claude-old/-w-ws_1/mcp-logs-old", 0700) ||
			put_file(dir, "cache/claude-old/-w-ws_1/mcp-logs-old/a.txt",
				 "[{\"error\":\"spawn npx ENOENT\",\"timestamp\":\"t\"}]", 0600) ||
			sub_dir(dir, "cache/claude-old/-w-ws_1/mcp-logs-raw", 0700) ||
			put_file(dir, "cache/claude-old/-w-ws_1/mcp-logs-raw/a.txt", "plain words", 0600)) {
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
	if ((k = ml_forget(cache, cwd)) != 2 || exists(cache, "claude-cli-nodejs/-w-ws-1") ||
			exists(cache, "claude-old/-w-ws_1") || !exists(cache, "claude-old")) {
		st_fail(why, n, "forget removed %d directories, or the wrong ones", k);
		goto out;
	}
	rc = 0;
out:
	buf_free(&out);
	rm_dir(dir);
	return rc;
}

/* The price table: longest prefix wins, dated ids find their family, an
 * unknown model pays the most expensive row, 1-hour cache writes 2 x input. */
static int t_prices(char *why, size_t n)
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
static int t_session_paths(char *why, size_t n)
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

const struct st_case jobfiles_selftests[] = {
	{ "ws_create", t_ws_create },
	{ "ws_join", t_ws_join },
	{ "ws_write", t_ws_write },
	{ "ws_wipe", t_ws_wipe },
	{ "mcp_refs", t_mcp_refs },
	{ "yaml", t_yaml },
	{ "cfg_names", t_cfg_names },
	{ "env_file", t_env_file },
	{ "pre_ok", t_pre_ok },
	{ "pre_fail", t_pre_fail },
	{ "pre_timeout", t_pre_timeout },
	{ "pre_cap", t_pre_cap },
	{ "agent_env", t_agent_env },
	{ "pre_env", t_pre_env },
	{ "glob", t_glob },
	{ "upload", t_upload },
	{ "mcplog", t_mcplog },
	{ "prices", t_prices },
	{ "session_paths", t_session_paths },
	{ NULL, NULL },
};
