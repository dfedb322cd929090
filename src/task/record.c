/*
 * record.c: see record.h.  Keys are formatted with snprintf into the
 * caller's TR_KEY_MAX buffer; status words are one table.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task/record.h"
#include "util/rmtree.h"

static const char *key_of(char out[TR_KEY_MAX], const char *fmt, const char *a, const char *b)
{
	snprintf(out, TR_KEY_MAX, fmt, a, b);
	return out;
}

const char *tr_key_metadata(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, "sessions/%s/%s", task_id, "metadata.json");
}

const char *tr_key_logs(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, "sessions/%s/%s", task_id, "");
}

const char *tr_key_chunk(char out[TR_KEY_MAX], const char *task_id, unsigned index, const char *stamp)
{
	snprintf(out, TR_KEY_MAX, "sessions/%s/%06u-%s.jsonl", task_id, index, stamp);
	return out;
}

const char *tr_key_owner(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, "sessions/%s/%s", task_id, TR_OWNER_NAME);
}

const char *tr_key_reconciled(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, "sessions/%s/%s", task_id, "reconciled.json");
}

const char *tr_key_transcript(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, "sessions/%s/%s", task_id, TR_TRANSCRIPT_NAME);
}

const char *tr_key_payload(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, "tasks/%s/%s", task_id, "payload.enc");
}

const char *tr_key_active(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, TR_ACTIVE_PREFIX "%s%s", task_id, "");
}

const char *tr_key_inbox(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, "inbox/%s/%s", task_id, "");
}

const char *tr_key_inbox_message(char out[TR_KEY_MAX], const char *task_id, const char *msg_id)
{
	snprintf(out, TR_KEY_MAX, "inbox/%s/%s.enc", task_id, msg_id);
	return out;
}

const char *tr_key_files(char out[TR_KEY_MAX], const char *task_id)
{
	return key_of(out, "files/%s%s", task_id, "");
}

const char *tr_key_idempotency(char out[TR_KEY_MAX], const char *mac_hex)
{
	return key_of(out, "idempotency/%s%s", mac_hex, "");
}

const char *tr_active_task(const char *key)
{
	size_t n = sizeof(TR_ACTIVE_PREFIX) - 1;

	return key && strncmp(key, TR_ACTIVE_PREFIX, n) == 0 && key[n] ? key + n : NULL;
}

static const char *const status_words[] = {
	[TR_UNKNOWN] = "unknown",     [TR_PENDING] = "pending", [TR_RUNNING] = "running",
	[TR_COMPLETED] = "completed", [TR_FAILED] = "failed",   [TR_CANCELLED] = "cancelled",
};

const char *tr_status_name(enum tr_status s)
{
	return (unsigned)s < sizeof(status_words) / sizeof(status_words[0]) ? status_words[s] : "unknown";
}

enum tr_status tr_status_parse(const char *word)
{
	size_t i;

	for (i = TR_PENDING; word && i < sizeof(status_words) / sizeof(status_words[0]); i++)
		if (strcmp(word, status_words[i]) == 0)
			return (enum tr_status)i;
	return TR_UNKNOWN;
}

int tr_status_terminal(enum tr_status s)
{
	return s == TR_COMPLETED || s == TR_FAILED || s == TR_CANCELLED;
}

enum tr_status tr_meta_status(const cJSON *meta)
{
	const cJSON *s = meta ? cJSON_GetObjectItemCaseSensitive(meta, "status") : NULL;

	return cJSON_IsString(s) ? tr_status_parse(s->valuestring) : TR_UNKNOWN;
}

int tr_meta_terminal(const cJSON *meta)
{
	return tr_status_terminal(tr_meta_status(meta));
}

long tr_chunk_index(const char *prefix, const char *key, int *width)
{
	size_t plen = strlen(prefix), n = strlen(key);
	const char *s = key + plen, *d = s;

	if (n < plen || strncmp(key, prefix, plen) != 0)
		return -1;
	if (n - plen < 6 || strcmp(key + n - 6, ".jsonl") != 0 || strchr(s, '/'))
		return -1;
	while (*d >= '0' && *d <= '9')
		d++;
	if (d == s || *d != '-' || d - s > TR_CHUNK_DIGITS_MAX)
		return -1;
	*width = (int)(d - s);
	return strtol(s, NULL, 10);
}

/* 1 when name is "ws-<task>-" followed by exactly 16 hex digits. */
static int is_task_workspace(const char *name, const char *task)
{
	size_t t = strlen(task), i;

	if (strncmp(name, "ws-", 3) != 0 || strncmp(name + 3, task, t) != 0 || name[3 + t] != '-' ||
	    strlen(name + 4 + t) != 16)
		return 0;
	for (i = 4 + t; name[i]; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return 1;
}

int tr_remove_workspaces(const char *root, const char *task_id, struct err *e)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int n = 0, rc = 0;

	if (!root || !*root)
		root = TR_WORKSPACE_ROOT_DEFAULT;
	if (!(d = opendir(root)))
		return errno == ENOENT ? 0 : err_set(e, "cannot read %s: %s", root, strerror(errno));
	while ((de = readdir(d))) {
		if (!is_task_workspace(de->d_name, task_id) ||
		    snprintf(path, sizeof(path), "%s/%s", root, de->d_name) >= (int)sizeof(path))
			continue;
		if ((rc = rmtree(path, e)) != 0)
			break;
		n++;
	}
	closedir(d);
	return rc != 0 ? -1 : n;
}
