/*
 * stream_json.c: the CLI's stream-json output -> the job's handling of it.
 *
 * The input is a sequence of lines as `claude -p --output-format
 * stream-json` prints them.  Each goes through report_line()
 * (src/task/report.c: turns, errors, the result line with usage and
 * cost), then the terminal documents are built from what was gathered:
 * report_metadata() (metadata.json) and report_webhook() (the webhook
 * body).  Each line is also read as the init line that lists the MCP
 * servers (ml_init_line, src/job/mcplog.c).  Properties: both documents
 * are valid JSON objects that carry the task id (or hold \udxxx escapes,
 * which cJSON cannot read back); turns/errors never exceed the number of
 * lines; an init line has at most `total` servers connected and at most
 * total - ok names listed as failed, and any other line appends nothing.
 * The same input is also read as an MCP server's log file by ml_explain()
 * (src/job/mcplog.c), from a scratch cache directory, whose explanation
 * is bounded by ML_MAX_TEXT.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "cJSON.h"
#include "fuzz.h"
#include "job/mcplog.h"
#include "task/report.h"

static char cache[64], logdir[512], logfile[600];
static const char *cwd = "/work/task";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(cache, sizeof(cache), "/tmp/ccr-fuzz-mcplog.%ld", (long)getpid());
	snprintf(logdir, sizeof(logdir), "%s/claude-cli-nodejs", cache);
	if ((mkdir(cache, 0700) != 0) || mkdir(logdir, 0700) != 0)
		abort();
	snprintf(logdir, sizeof(logdir), "%s/claude-cli-nodejs/-work-task", cache);
	if (mkdir(logdir, 0700) != 0)
		abort();
	snprintf(logdir, sizeof(logdir), "%s/claude-cli-nodejs/-work-task/mcp-logs-srv", cache);
	if (mkdir(logdir, 0700) != 0)
		abort();
	snprintf(logfile, sizeof(logfile), "%s/2025-01-01T00-00-00-000Z.txt", logdir);
	return 0;
}

static void check_doc(const struct buf *b, const char *what)
{
	cJSON *j = cJSON_ParseWithLength(b->p, b->len);
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "taskId");

	if (!j && strstr(b->p, "\\ud")) {
		/* a lone surrogate from invalid UTF-8, escaped as JavaScript does */
		return;
	}
	FUZZ_CHECK(cJSON_IsObject(j), "%s is not a JSON object: %.200s", what, b->p);
	FUZZ_CHECK(cJSON_IsString(id) && strcmp(id->valuestring, "fuzz-task") == 0, "%s lost the task id", what);
	cJSON_Delete(j);
}

static void init_line(const char *line, size_t n)
{
	struct buf summary = BUF_INIT, failed = BUF_INIT;
	int ok = -1, total = -1, rc = ml_init_line(line, n, &ok, &total, &summary, &failed);
	size_t k, nfailed = 0;

	FUZZ_CHECK(rc == 0 || rc == 1, "ml_init_line %d", rc);
	FUZZ_CHECK(ok >= 0 && ok <= total, "%d of %d connected", ok, total);
	for (k = 0; k < failed.len; k++)
		nfailed += failed.p[k] == '\n';
	FUZZ_CHECK(nfailed <= (size_t)(total - ok), "%zu failed of %d servers, %d connected", nfailed, total, ok);
	FUZZ_CHECK(rc == 1 || (summary.len == 0 && failed.len == 0), "a non-init line appended text");
	buf_free(&summary);
	buf_free(&failed);
}

static void mcp_log(const uint8_t *data, size_t size)
{
	FILE *f = fopen(logfile, "wb");
	struct buf out = BUF_INIT;

	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
		abort();
	(void)ml_explain(cache, cwd, "srv", &out);
	FUZZ_CHECK(out.len <= ML_MAX_TEXT + 64, "explanation of %zu bytes", out.len);
	buf_free(&out);
	(void)ml_explain(cache, cwd, "other", &out);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct report r;
	struct buf meta = BUF_INIT, hook = BUF_INIT;
	const char *p = (const char *)data, *end = p + size;
	unsigned lines = 0;

	report_init(&r, "fuzz-task");
	r.callback_url = "https://example.invalid/hook";
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		report_line(&r, p, n);
		init_line(p, n);
		lines++;
		p += n + 1;
	}
	FUZZ_CHECK(r.turns <= lines && r.errors <= lines, "turns %u errors %u of %u lines", r.turns, r.errors, lines);
	r.status = TR_COMPLETED;
	r.reason = "completed";
	r.exit_code = 0;
	FUZZ_CHECK(report_metadata(&r, &meta) == 0, "report_metadata");
	check_doc(&meta, "metadata.json");
	FUZZ_CHECK(report_webhook(&r, &hook) == 0, "report_webhook");
	check_doc(&hook, "the webhook body");
	buf_free(&meta);
	buf_free(&hook);
	report_free(&r);
	mcp_log(data, size);
	return 0;
}
