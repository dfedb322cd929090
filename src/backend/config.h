/*
 * config.h: which backends this process uses, chosen from the environment
 * the same way by `ccr serve` and `ccr job`.
 *
 * Cloud mode when GCS_LOGS_BUCKET is set: the bucket, the Cloud KMS key
 * (PROJECT_ID/GCS_PROJECT_ID, CCR_KMS_LOCATION or REGION, KMS_KEY_RING,
 * KMS_KEY_NAME; the project may also come from the metadata server; the
 * seed's KMS_LOCATION is ignored as the seed ignored it) and,
 * for serve, Cloud Run Jobs (CLOUDRUN_JOB_NAME, REGION).  Local mode
 * otherwise: everything under CCR_DATA_DIR (default ./ccr-data) with the
 * key file CCR_DATA_DIR/ccr.key (or CCR_LOCAL_KEY_FILE), and tasks run as
 * child processes.  A half-configured cloud mode is refused with one line
 * naming what is missing.
 */
#ifndef CCR_CONFIG_H
#define CCR_CONFIG_H

#include "backend/exec.h"
#include "backend/seal.h"
#include "backend/storage.h"

enum cfg_mode { CFG_LOCAL, CFG_CLOUD };

struct backends {
	enum cfg_mode mode;
	struct storage *storage;
	struct sealer *sealer;
	struct executor *exec;           /* NULL unless want_exec */
	char data_dir[4096];             /* local mode: absolute */
	char bucket[256];                /* cloud mode */
	char kms_note[200];              /* cloud mode: the KMS location used, for the log */
	char kms_warning[400];           /* cloud mode: "" or why KMS_LOCATION is ignored */
};

/* What backends_open takes from its caller's settings (serve and job read
 * them once at start-up; strings NULL or "" when unset). */
struct backends_settings {
	const char *bucket;         /* GCS_LOGS_BUCKET: cloud mode when set */
	const char *data_dir;       /* CCR_DATA_DIR, else ccr-data */
	const char *local_key;      /* CCR_LOCAL_KEY_FILE, else <data dir>/ccr.key */
	const char *job_name;       /* CLOUDRUN_JOB_NAME, else claude-code-async-worker */
	const char *kms_location;   /* KMS_LOCATION: documented, ignored (a warning) */
	long max_tasks;             /* CCR_MAX_CONCURRENT_TASKS (want_exec) */
	long cancel_grace_ms;       /* CCR_CANCEL_GRACE_MS (want_exec) */
	int keep_job_logs;          /* CCR_KEEP_JOB_LOGS (want_exec) */
};

/* backends_open: pick and construct the backends from set.  want_exec:
 * also the executor (serve).  self_exe: this binary, for local executions. */
int backends_open(struct backends *b, const struct backends_settings *set, int want_exec, const char *self_exe,
		  struct err *e);

void backends_close(struct backends *b);

/* backends_mode_name: "local" or "cloud". */
const char *backends_mode_name(const struct backends *b);


#endif
