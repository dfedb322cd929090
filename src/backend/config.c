/*
 * config.c: see config.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/config.h"
#include "gcp/kms.h"

static int open_local(struct backends *b, const struct backends_settings *set, int want_exec, const char *self_exe,
		      struct err *e)
{
	const char *dir = set->data_dir, *key = set->local_key;
	char keyfile[4200], rundir[4200];

	b->mode = CFG_LOCAL;
	b->storage = storage_local_new(dir && *dir ? dir : "ccr-data", e);
	if (!b->storage)
		return -1;
	if (!realpath(dir && *dir ? dir : "ccr-data", b->data_dir))
		return err_set(e, "cannot resolve CCR_DATA_DIR: %s", strerror(errno));
	snprintf(keyfile, sizeof(keyfile), "%s/ccr.key", b->data_dir);
	b->sealer = seal_local_new(key && *key ? key : keyfile, e);
	if (!b->sealer)
		return -1;
	if (!want_exec)
		return 0;
	snprintf(rundir, sizeof(rundir), "%s/.run", b->data_dir);
	b->exec = exec_local_new(self_exe, rundir, (int)set->max_tasks, (int)set->cancel_grace_ms,
				set->keep_job_logs, e);
	return b->exec ? 0 : -1;
}

/* The KMS location in use and, when the seed's documented but unread
 * KMS_LOCATION says otherwise, why it is ignored (for the start-up log). */
static void kms_notes(struct backends *b, const char *doc)
{
	const char *from, *loc = kms_location(&from);

	snprintf(b->kms_note, sizeof(b->kms_note), "Cloud KMS key location %s (from %s)", loc, from);
	if (doc && *doc && strcmp(doc, loc) != 0)
		snprintf(b->kms_warning, sizeof(b->kms_warning),
			 "KMS_LOCATION=%.60s is ignored, as the original service ignored it: the key ring is looked "
			 "up in %s (from %s); set CCR_KMS_LOCATION to use another location", doc, loc, from);
}

static int open_cloud(struct backends *b, const struct backends_settings *set, int want_exec, struct err *e)
{
	struct buf key = BUF_INIT;
	const char *bucket = set->bucket, *job = set->job_name;

	b->mode = CFG_CLOUD;
	snprintf(b->bucket, sizeof(b->bucket), "%s", bucket);
	kms_notes(b, set->kms_location);
	if (kms_default_key_name(&key, e) != 0) {
		err_prefix(e, "cloud mode (GCS_LOGS_BUCKET is set) needs a KMS key");
		return -1;
	}
	b->storage = storage_gcs_new(bucket, e);
	if (b->storage)
		b->sealer = seal_kms_new(key.p, e);
	buf_free(&key);
	if (!b->storage || !b->sealer)
		return -1;
	if (!want_exec)
		return 0;
	b->exec = exec_cloudrun_new(NULL, NULL, job && *job ? job : "claude-code-async-worker", e);
	return b->exec ? 0 : -1;
}

int backends_open(struct backends *b, const struct backends_settings *set, int want_exec, const char *self_exe,
		  struct err *e)
{
	int rc;

	memset(b, 0, sizeof(*b));
	rc = set->bucket && *set->bucket ? open_cloud(b, set, want_exec, e) : open_local(b, set, want_exec, self_exe, e);
	if (rc != 0)
		backends_close(b);
	return rc;
}

void backends_close(struct backends *b)
{
	if (b->exec)
		exec_free(b->exec);
	if (b->sealer)
		seal_free(b->sealer);
	if (b->storage)
		storage_free(b->storage);
	b->exec = NULL;
	b->sealer = NULL;
	b->storage = NULL;
}

const char *backends_mode_name(const struct backends *b)
{
	return b->mode == CFG_CLOUD ? "cloud" : "local";
}
