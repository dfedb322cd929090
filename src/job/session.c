/*
 * session.c: see session.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/seal.h"
#include "backend/storage.h"
#include "crypto/crypto.h"
#include "job/session.h"
#include "job/workspace.h"
#include "task/record.h"
#include "task/report.h"
#include "util/log.h"

/* Transcripts larger than this are not kept (a log line says so). */
#define SESS_MAX_BYTES (256u << 20)

void sess_project_dir(const char *cwd, char *out, size_t size)
{
	size_t i;

	for (i = 0; cwd[i] && i + 1 < size; i++) {
		char c = cwd[i];
		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '-';
	}
	if (size)
		out[i] = 0;
}

int sess_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > SESS_ID_MAX)
		return 0;
	for (; *id; id++)
		if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z') || (*id >= '0' && *id <= '9') ||
		      *id == '-' || *id == '_'))
			return 0;
	return 1;
}

/* The sessionId the earlier task's metadata recorded. */
static int resumed_session_id(const struct sess_ctx *c, const char *from, char out[SESS_ID_MAX + 1],
			      struct err *e)
{
	struct buf doc = BUF_INIT;
	char key[TR_KEY_MAX];
	cJSON *j = NULL;
	const cJSON *v;
	int rc = -1;

	if (storage_get(c->st, tr_key_metadata(key, from), 0, &doc, e) != 0) {
		err_prefix(e, "cannot read the metadata of task %s (resumeTaskId)", from);
		goto out;
	}
	j = cJSON_ParseWithLength(doc.p, doc.len);
	v = cJSON_GetObjectItemCaseSensitive(j, "sessionId");
	if (!cJSON_IsString(v) || !sess_id_valid(v->valuestring)) {
		err_set(e, "task %s (resumeTaskId) has no stored session to resume", from);
		goto out;
	}
	snprintf(out, SESS_ID_MAX + 1, "%s", v->valuestring);
	rc = 0;
out:
	cJSON_Delete(j);
	buf_free(&doc);
	return rc;
}

int sess_restore(const struct sess_ctx *c, const char *from, char sid[SESS_ID_MAX + 1], struct err *e)
{
	struct buf sealed = BUF_INIT, plain = BUF_INIT;
	char key[TR_KEY_MAX], proj[4096], rel[4300];
	int rc = -1;

	if (!from)
		return 0;
	if (resumed_session_id(c, from, sid, e) != 0)
		return -1;
	if (storage_get(c->st, tr_key_transcript(key, from), 0, &sealed, e) != 0) {
		err_prefix(e, "cannot read the session transcript of task %s (resumeTaskId)", from);
		goto out;
	}
	if (envelope_open(c->sealer, sealed.p, sealed.len, &plain, e) != 0) {
		err_prefix(e, "cannot open the session transcript of task %s", from);
		goto out;
	}
	sess_project_dir(c->cwd, proj, sizeof(proj));
	if (snprintf(rel, sizeof(rel), "projects/%s/%s.jsonl", proj, sid) >= (int)sizeof(rel)) {
		err_set(e, "the working directory's path is too long to restore a session");
		goto out;
	}
	if (ws_write_file(c->confdir, rel, plain.p ? plain.p : "", plain.len, 0600, e) != 0) {
		err_prefix(e, "cannot restore the session of task %s", from);
		goto out;
	}
	slog(SLOG_INFO, "resuming session %s of task %s (%zu bytes of transcript)", sid,
		 from, plain.len);
	rc = 0;
out:
	if (plain.p)
		cr_wipe(plain.p, plain.len);
	buf_free(&plain);
	buf_free(&sealed);
	return rc;
}

/* Read confdir/projects/<any>/<sid>.jsonl into out: 0, or -1 when absent. */
static int find_transcript(const char *confdir, const char *sid, struct buf *out, char *path, size_t psize)
{
	char dir[4200];
	struct dirent *d;
	DIR *dp;
	int rc = -1;

	snprintf(dir, sizeof(dir), "%s/projects", confdir);
	if (!(dp = opendir(dir)))
		return -1;
	while (rc != 0 && (d = readdir(dp)) != NULL) {
		struct stat sb;
		char buf[65536];
		ssize_t n;
		int fd;

		if (d->d_name[0] == '.' ||
		    snprintf(path, psize, "%s/%s/%s.jsonl", dir, d->d_name, sid) >= (int)psize)
			continue;
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size <= SESS_MAX_BYTES) {
			buf_reset(out);
			while ((n = read(fd, buf, sizeof(buf))) > 0)
				if (buf_add(out, buf, (size_t)n) != 0)
					break;
			rc = n == 0 ? 0 : -1;
		}
		close(fd);
	}
	closedir(dp);
	return rc;
}

void sess_save(const struct sess_ctx *c, struct report *rep)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(rep->result, "session_id");
	const char *sid = cJSON_IsString(v) ? v->valuestring : rep->session_id;
	const char *meta[] = { "taskId", c->task_id, "encrypted", "true", NULL };
	struct storage_put_opts o = { "application/octet-stream", meta, 0 };
	struct buf plain = BUF_INIT, sealed = BUF_INIT;
	struct err e = ERR_INIT;
	char key[TR_KEY_MAX], path[4400];

	if (!c->confdir[0] || !sess_id_valid(sid))
		return;
	if (find_transcript(c->confdir, sid, &plain, path, sizeof(path)) != 0) {
		slog(SLOG_WARNING, "the CLI's transcript of session %s was not found under %s/projects; the task "
				    "cannot be resumed", sid, c->confdir);
		goto out;
	}
	tr_key_transcript(key, c->task_id);
	if (envelope_seal(c->sealer, plain.p ? plain.p : "", plain.len, &sealed, &e) != 0 ||
	    storage_put(c->st, key, sealed.p, sealed.len, &o, &e) != 0) {
		slog(SLOG_WARNING, "cannot store the session transcript %s: %s; the task cannot be resumed", key, e.msg);
		goto out;
	}
	snprintf(rep->session_id, sizeof(rep->session_id), "%s", sid);
	rep->transcript_bytes = (long long)plain.len;
out:
	if (plain.p)
		cr_wipe(plain.p, plain.len);
	buf_free(&plain);
	buf_free(&sealed);
}
