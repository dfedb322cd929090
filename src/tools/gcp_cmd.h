/*
 * gcp_cmd.h: what the files of `ccr gcp` share (gcp_cmd.c: usage, options,
 * data in and out, token, whoami, kms, run, secret, store, dispatch;
 * gcp_cmd_gcs.c: `gcs ...`; gcp_cmd_script.c: `script FILE`).  The
 * commands are described in gcp_cmd.c.  Prefix gcpc_.
 *
 * A command returns 0, 1 (failure, e set) or EXIT_USAGE (c->usage set).
 */
#ifndef CCR_TOOLS_GCP_CMD_H
#define CCR_TOOLS_GCP_CMD_H

#include <stdio.h>

#include "gcp/gcs.h"
#include "gcp/secrets.h"
#include "util/buf.h"
#include "util/err.h"

#define EXIT_USAGE 2
#define MAX_ARGS 64
#define MAX_META 32

struct gcpc_ctx {
	FILE *out;
	int script;
	struct gcs *gcs;
	struct gsm *gsm;          /* kept across a script's lines (--cache) */
	unsigned gsm_refresh;
	char usage[256];          /* set by a usage error */
};

struct gcpc_opts {
	const char *pos[MAX_ARGS];
	int npos;
	const char *data, *content_type, *key, *project, *region, *version, *prefix, *delimiter;
	const char *start_offset, *after, *id_token, *gen, *offset, *chunk, *page_size, *cache, *threads;
	const char *meta[2 * MAX_META + 1];
	int nmeta;
	int resumable, no_retry, base64, if_absent;
};

/* Run one operation (words after `ccr gcp`). */
int gcpc_run_op(struct gcpc_ctx *c, int argc, char **argv, struct err *e);
/* `gcs ...` (gcp_cmd_gcs.c) and `script FILE` (gcp_cmd_script.c). */
int gcpc_gcs(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e);
int gcpc_script(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e);

/* A usage error of the command named by prefix; returns EXIT_USAGE. */
int gcpc_usage(struct gcpc_ctx *c, const char *prefix);
/* Decimal numbers; 0, or -1 when s is not one. */
int gcpc_parse_i64(const char *s, long long *out);
int gcpc_parse_u64(const char *s, unsigned long long *out);
/* The data of a command: --data, FILE ("-": stdin), or stdin. */
int gcpc_input(struct gcpc_ctx *c, const struct gcpc_opts *o, const char *file, struct buf *out, struct err *e);
/* Write n bytes to the command's output; 0 or -1. */
int gcpc_emit(struct gcpc_ctx *c, const void *p, size_t n);
/* The GCS client, made on first use and kept in c. */
struct gcs *gcpc_gcs_client(struct gcpc_ctx *c, struct err *e);

#endif
