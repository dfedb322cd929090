/*
 * gcp_cmd.c: `ccr gcp`, operator tools for ccr's Google Cloud layer.
 *
 * Each subcommand is a thin shell over one client call (src/gcp) or one
 * backend seam (src/backend), so an operator can check credentials,
 * buckets, keys, jobs and secrets with exactly the code the service
 * runs, and the integration tests can drive every client operation.
 *
 *   ccr gcp token [--id-token AUDIENCE]
 *   ccr gcp whoami
 *   ccr gcp gcs put BUCKET NAME [FILE|-] [--data TEXT] [--content-type T]
 *                   [--meta K=V]... [--if-generation-match N] [--resumable]
 *                   [--chunk-size BYTES] [--no-retry]
 *   ccr gcp gcs get BUCKET NAME [--offset N]
 *   ccr gcp gcs stat BUCKET NAME
 *   ccr gcp gcs ls BUCKET [--prefix P] [--delimiter D] [--start-offset S] [--page-size N]
 *   ccr gcp gcs rm BUCKET NAME [--if-generation-match N]
 *   ccr gcp gcs compose BUCKET DEST SRC... [--content-type T] [--if-generation-match N]
 *   ccr gcp kms encrypt|decrypt|seal|open [--key NAME] [--data TEXT] [--base64]
 *   ccr gcp run start JOB TASK_ID PAYLOAD_PATH [NAME=VALUE]... [--project P] [--region R]
 *   ccr gcp run status NAME | run cancel NAME
 *   ccr gcp secret get NAME [--version V] [--project P] [--cache SECONDS]
 *   ccr gcp store put|get|ls|rm BUCKET KEY ...     (the storage seam)
 *   ccr gcp script FILE [--threads N]
 *
 * Data comes from --data, a FILE argument, or stdin; results go to
 * stdout.  `kms seal` / `kms open` are the seed's payload envelope
 * through the KMS sealer (envelope.c + seal_kms.c).
 *
 * `script FILE` runs one operation per line (the same words as above,
 * after `ccr gcp`; '#' starts a comment line; "double" and 'single'
 * quotes group words) in one process, so tests can run hundreds of
 * calls through one token cache and connection pool.  Two more verbs
 * exist there: `sleep MS` and `kms roundtrip TEXT` (encrypt then
 * decrypt, print the plaintext).  For each line it prints
 * "<line>\t<output>" (output with '\' and newlines escaped as \\ and \n)
 * or "<line>\tERROR\t<message>", then "# ops=N failed=F retries=R ms=T".
 * The retry count is the HTTP client's process-wide counter.  With
 * --threads N the lines run on N threads at once (one shared token
 * cache, connection pool and GCS client), results still in line order.
 *
 * Exit status: 0 success, 1 failure (one line on stderr), 2 usage error
 * (one line on stderr).  Nothing secret is ever written to stderr;
 * `token` prints the token to stdout, which is its purpose (in a script
 * only its length is shown).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/exec.h"
#include "backend/seal.h"
#include "backend/storage.h"
#include "ccr.h"
#include "crypto/crypto.h"
#include "gcp/auth.h"
#include "gcp/gcs.h"
#include "gcp/kms.h"
#include "gcp/run.h"
#include "gcp/secrets.h"
#include "http/client.h"
#include "net/netinit.h"
#include "util/b64.h"
#include "util/jsjson.h"

#define EXIT_USAGE 2
#define MAX_ARGS 64
#define MAX_META 32

struct ctx {
	FILE *out;
	int script;
	struct gcs *gcs;
	struct gsm *gsm;          /* kept across a script's lines (--cache) */
	unsigned gsm_refresh;
	char usage[256];          /* set by a usage error */
};

/* ---- usage ------------------------------------------------------------- */

static const char *const synopsis[] = {
	"token [--id-token AUDIENCE]",
	"whoami",
	"gcs put BUCKET NAME [FILE|-] [--data TEXT] [--content-type T] [--meta K=V]... "
		"[--if-generation-match N] [--resumable] [--chunk-size BYTES] [--no-retry]",
	"gcs get BUCKET NAME [--offset N]",
	"gcs stat BUCKET NAME",
	"gcs ls BUCKET [--prefix P] [--delimiter D] [--start-offset S] [--page-size N]",
	"gcs rm BUCKET NAME [--if-generation-match N]",
	"gcs compose BUCKET DEST SRC... [--content-type T] [--if-generation-match N]",
	"kms encrypt|decrypt|seal|open [--key NAME] [--data TEXT] [--base64]",
	"run start JOB TASK_ID PAYLOAD_PATH [NAME=VALUE]... [--project P] [--region R]",
	"run status NAME [--project P] [--region R]",
	"run cancel NAME [--project P] [--region R]",
	"secret get NAME [--version V] [--project P] [--cache SECONDS]",
	"store put BUCKET KEY [FILE|-] [--data TEXT] [--content-type T] [--meta K=V]... [--if-absent]",
	"store get BUCKET KEY [--offset N]",
	"store ls BUCKET PREFIX [--after KEY]",
	"store rm BUCKET KEY",
	"script FILE [--threads N]",
	NULL,
};

static void usage_all(FILE *f)
{
	const char *const *s;

	fprintf(f, "usage: ccr gcp COMMAND ...\n\n");
	for (s = synopsis; *s; s++)
		fprintf(f, "  ccr gcp %s\n", *s);
	fprintf(f, "\nCredentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, or the metadata server "
		"(GCE_METADATA_HOST).\nEndpoints: STORAGE_EMULATOR_HOST, CCR_KMS_ENDPOINT, CCR_RUN_ENDPOINT, "
		"CCR_SECRETMANAGER_ENDPOINT.\nRetries: CCR_RETRY_BASE_MS scales the backoff (default 1000).\n");
}

/* Record a usage error for the synopsis starting with `prefix`; for a
 * bare command with several verbs, list the verbs. */
static int usage(struct ctx *c, const char *prefix)
{
	const char *const *s;
	size_t pl = strlen(prefix), off;
	int matches = 0;

	for (s = synopsis; *s; s++)
		if (strncmp(*s, prefix, pl) == 0 && ((*s)[pl] == ' ' || (*s)[pl] == 0))
			matches++;
	if (matches > 1 && !strchr(prefix, ' ')) {
		off = (size_t)snprintf(c->usage, sizeof c->usage, "usage: ccr gcp %s VERB ... (verbs:", prefix);
		for (s = synopsis; *s && off < sizeof c->usage; s++)
			if (strncmp(*s, prefix, pl) == 0 && (*s)[pl] == ' ')
				off += (size_t)snprintf(c->usage + off, sizeof c->usage - off, " %.*s",
					(int)strcspn(*s + pl + 1, " "), *s + pl + 1);
		if (off < sizeof c->usage)
			snprintf(c->usage + off, sizeof c->usage - off, ")");
		return EXIT_USAGE;
	}
	for (s = synopsis; *s; s++)
		if (strncmp(*s, prefix, pl) == 0)
			break;
	snprintf(c->usage, sizeof c->usage, "usage: ccr gcp %s", *s ? *s : prefix);
	return EXIT_USAGE;
}

/* ---- argument parsing -------------------------------------------------- */

struct opts {
	const char *pos[MAX_ARGS];
	int npos;
	const char *data, *content_type, *key, *project, *region, *version, *prefix, *delimiter;
	const char *start_offset, *after, *id_token, *gen, *offset, *chunk, *page_size, *cache, *threads;
	const char *meta[2 * MAX_META + 1];
	int nmeta;
	int resumable, no_retry, base64, if_absent;
};

/* Parse words into o; -1 on an unknown option or a missing value. */
static int parse(int argc, char **argv, struct opts *o)
{
	static const struct { const char *name; size_t off; } valued[] = {
		{ "--data", offsetof(struct opts, data) },
		{ "--content-type", offsetof(struct opts, content_type) },
		{ "--key", offsetof(struct opts, key) },
		{ "--project", offsetof(struct opts, project) },
		{ "--region", offsetof(struct opts, region) },
		{ "--version", offsetof(struct opts, version) },
		{ "--prefix", offsetof(struct opts, prefix) },
		{ "--delimiter", offsetof(struct opts, delimiter) },
		{ "--start-offset", offsetof(struct opts, start_offset) },
		{ "--after", offsetof(struct opts, after) },
		{ "--id-token", offsetof(struct opts, id_token) },
		{ "--if-generation-match", offsetof(struct opts, gen) },
		{ "--offset", offsetof(struct opts, offset) },
		{ "--chunk-size", offsetof(struct opts, chunk) },
		{ "--page-size", offsetof(struct opts, page_size) },
		{ "--cache", offsetof(struct opts, cache) },
		{ "--threads", offsetof(struct opts, threads) },
	};
	int i;

	memset(o, 0, sizeof *o);
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		size_t k;
		int found = 0;

		if (strcmp(a, "--resumable") == 0) {
			o->resumable = 1;
			continue;
		}
		if (strcmp(a, "--no-retry") == 0) {
			o->no_retry = 1;
			continue;
		}
		if (strcmp(a, "--base64") == 0) {
			o->base64 = 1;
			continue;
		}
		if (strcmp(a, "--if-absent") == 0) {
			o->if_absent = 1;
			continue;
		}
		if (strcmp(a, "--meta") == 0) {
			const char *eq;
			char *kv;

			if (i + 1 >= argc || o->nmeta >= MAX_META || !(eq = strchr(argv[i + 1], '=')) || eq == argv[i + 1])
				return -1;
			kv = argv[++i];
			kv[eq - kv] = 0;     /* split K=V in place */
			o->meta[2 * o->nmeta] = kv;
			o->meta[2 * o->nmeta + 1] = eq + 1;
			o->nmeta++;
			o->meta[2 * o->nmeta] = NULL;
			continue;
		}
		for (k = 0; k < sizeof valued / sizeof valued[0]; k++) {
			if (strcmp(a, valued[k].name) == 0) {
				if (i + 1 >= argc)
					return -1;
				*(const char **)((char *)o + valued[k].off) = argv[++i];
				found = 1;
				break;
			}
		}
		if (found)
			continue;
		if (a[0] == '-' && a[1] == '-')
			return -1;
		if (o->npos >= MAX_ARGS)
			return -1;
		o->pos[o->npos++] = a;
	}
	return 0;
}

static int parse_i64(const char *s, long long *out)
{
	char *end;

	if (!s || !*s)
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int parse_u64(const char *s, unsigned long long *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

/* ---- data in and out --------------------------------------------------- */

static int read_fd(int fd, struct buf *out)
{
	char tmp[65536];
	ssize_t r;

	for (;;) {
		r = read(fd, tmp, sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		if (buf_add(out, tmp, (size_t)r) != 0) {
			errno = ENOMEM;
			return -1;
		}
	}
}

/* The input of a command: --data, a FILE (or "-"), or stdin. */
static int input(struct ctx *c, const struct opts *o, const char *file, struct buf *out, struct err *e)
{
	int fd, rc;

	if (o->data)
		return buf_adds(out, o->data) == 0 ? 0 : err_set(e, "out of memory");
	if (c->script && (!file || strcmp(file, "-") == 0))
		return err_set(e, "a script reads no stdin: give --data TEXT or a FILE");
	if (!file || strcmp(file, "-") == 0) {
		if (read_fd(0, out) != 0)
			return err_set(e, "reading stdin: %s", strerror(errno));
		return 0;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, "%s: %s", file, strerror(errno));
	rc = read_fd(fd, out);
	if (rc != 0)
		err_set(e, "%s: %s", file, strerror(errno));
	close(fd);
	return rc;
}

static int emit(struct ctx *c, const void *p, size_t n)
{
	return n && fwrite(p, 1, n, c->out) != n ? -1 : 0;
}

static struct gcs *gcs_client(struct ctx *c, struct err *e)
{
	if (!c->gcs)
		c->gcs = gcs_new(e);
	return c->gcs;
}

static void print_object(struct ctx *c, const struct gcs_object *ob)
{
	fprintf(c->out, "gs://%s/%s generation=%lld size=%llu crc32c=%s\n", ob->bucket ? ob->bucket : "?",
		ob->name ? ob->name : "?", (long long)ob->generation, (unsigned long long)ob->size,
		ob->crc32c ? ob->crc32c : "-");
}

static int json_str_member(struct buf *b, const char *key, const char *val, int *first)
{
	if (!val)
		return 0;
	if ((!*first && buf_addc(b, ',') != 0) || jsj_string(b, key, strlen(key)) != 0 || buf_addc(b, ':') != 0 ||
			jsj_string(b, val, strlen(val)) != 0)
		return -1;
	*first = 0;
	return 0;
}

/* ---- token, whoami ----------------------------------------------------- */

static int cmd_token(struct ctx *c, struct opts *o, struct err *e)
{
	struct gauth *g;
	struct buf tok = BUF_INIT;
	int rc;

	if (o->npos != 1)
		return usage(c, "token");
	if (!(g = gauth_default(e)))
		return 1;
	rc = o->id_token ? gauth_id_token(g, o->id_token, &tok, e) : gauth_token(g, &tok, e);
	if (rc == 0) {
		if (c->script)
			fprintf(c->out, "%s ok (%zu chars)", o->id_token ? "identity token" : "access token", tok.len);
		else
			fprintf(c->out, "%s\n", tok.p);
	}
	if (tok.p)
		cr_wipe(tok.p, tok.cap);
	buf_free(&tok);
	return rc == 0 ? 0 : 1;
}

static int cmd_whoami(struct ctx *c, struct opts *o, struct err *e)
{
	struct gauth *g;
	struct buf p = BUF_INIT, r = BUF_INIT;
	struct err e2 = ERR_INIT;

	if (o->npos != 1)
		return usage(c, "whoami");
	if (!(g = gauth_default(e)))
		return 1;
	fprintf(c->out, "credentials: %s\n", gauth_describe(g));
	if (gauth_project_id(&p, &e2) == 0)
		fprintf(c->out, "project: %s\n", p.p);
	else
		fprintf(c->out, "project: (unknown: %s)\n", e2.msg);
	if (gauth_region(&r, &e2) == 0)
		fprintf(c->out, "region: %s\n", r.p);
	else
		fprintf(c->out, "region: (unknown: %s)\n", e2.msg);
	buf_free(&p);
	buf_free(&r);
	return 0;
}

/* ---- gcs --------------------------------------------------------------- */

struct fdsrc {
	int fd;
};

static int fd_read(void *arg, void *dst, size_t n, size_t *got)
{
	struct fdsrc *s = arg;
	size_t have = 0;

	/* Fill as much as asked (pipes return short reads). */
	while (have < n) {
		ssize_t r = read(s->fd, (char *)dst + have, n - have);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		have += (size_t)r;
	}
	*got = have;
	return 0;
}

static int put_opts(struct ctx *c, struct opts *o, struct gcs_put_opts *po, const char *what)
{
	long long g;
	unsigned long long cs;

	memset(po, 0, sizeof *po);
	po->content_type = o->content_type;
	po->metadata = o->nmeta ? o->meta : NULL;
	po->resumable = o->resumable;
	po->idempotent = !o->no_retry;
	if (o->gen) {
		if (parse_i64(o->gen, &g) != 0 || g < 0)
			return usage(c, what);
		po->use_generation_match = 1;
		po->if_generation_match = g;
	}
	if (o->chunk) {
		if (parse_u64(o->chunk, &cs) != 0 || cs == 0 || cs > ((unsigned long long)1 << 30))
			return usage(c, what);
		po->chunk_size = (size_t)cs;
	}
	return 0;
}

static int gcs_put_cmd(struct ctx *c, struct opts *o, struct err *e)
{
	struct gcs_put_opts po;
	struct gcs_object ob;
	struct gcs *g;
	struct buf data = BUF_INIT;
	const char *file;
	int rc;

	if (o->npos < 4 || o->npos > 5 || (o->npos == 5 && o->data))
		return usage(c, "gcs put");
	if ((rc = put_opts(c, o, &po, "gcs put")) != 0)
		return rc;
	if (!(g = gcs_client(c, e)))
		return 1;
	file = o->npos == 5 ? o->pos[4] : NULL;
	memset(&ob, 0, sizeof ob);
	if (o->resumable && !o->data && !c->script) {
		/* Stream the file or stdin: read once, at most a chunk in memory. */
		struct fdsrc src = { 0 };
		struct stat st;
		int64_t total = -1;

		if (file && strcmp(file, "-") != 0) {
			src.fd = open(file, O_RDONLY | O_CLOEXEC);
			if (src.fd < 0)
				return err_set(e, "%s: %s", file, strerror(errno)), 1;
		}
		if (fstat(src.fd, &st) == 0 && S_ISREG(st.st_mode))
			total = (int64_t)st.st_size;
		rc = gcs_put_resumable(g, o->pos[2], o->pos[3], fd_read, &src, total, &po, &ob, e);
		if (src.fd > 0)
			close(src.fd);
	} else {
		if (input(c, o, file, &data, e) != 0)
			return 1;
		rc = gcs_put(g, o->pos[2], o->pos[3], data.p ? data.p : "", data.len, &po, &ob, e);
		buf_free(&data);
	}
	if (rc != 0)
		return 1;
	print_object(c, &ob);
	gcs_object_free(&ob);
	return 0;
}

static int gcs_get_cmd(struct ctx *c, struct opts *o, struct err *e)
{
	struct buf data = BUF_INIT;
	unsigned long long off = 0;
	struct gcs *g;
	int rc = 1;

	if (o->npos != 4 || (o->offset && parse_u64(o->offset, &off) != 0))
		return usage(c, "gcs get");
	if (!(g = gcs_client(c, e)))
		return 1;
	if (gcs_get(g, o->pos[2], o->pos[3], off, &data, e) == 0)
		rc = emit(c, data.p, data.len) == 0 ? 0 : (err_set(e, "writing the output: %s", strerror(errno)), 1);
	buf_free(&data);
	return rc;
}

static int gcs_stat_cmd(struct ctx *c, struct opts *o, struct err *e)
{
	struct gcs_object ob;
	struct buf j = BUF_INIT;
	struct gcs *g;
	char num[64];
	int first = 1, rc = 1;

	if (o->npos != 4)
		return usage(c, "gcs stat");
	if (!(g = gcs_client(c, e)))
		return 1;
	if (gcs_stat(g, o->pos[2], o->pos[3], &ob, e) != 0)
		return 1;
	if (buf_addc(&j, '{') != 0 || json_str_member(&j, "bucket", ob.bucket, &first) != 0 ||
			json_str_member(&j, "name", ob.name, &first) != 0)
		goto oom;
	snprintf(num, sizeof num, "%llu", (unsigned long long)ob.size);
	if (json_str_member(&j, "size", num, &first) != 0)
		goto oom;
	snprintf(num, sizeof num, "%lld", (long long)ob.generation);
	if (json_str_member(&j, "generation", num, &first) != 0)
		goto oom;
	snprintf(num, sizeof num, "%lld", (long long)ob.metageneration);
	if (json_str_member(&j, "metageneration", num, &first) != 0 ||
			json_str_member(&j, "contentType", ob.content_type, &first) != 0 ||
			json_str_member(&j, "crc32c", ob.crc32c, &first) != 0 ||
			json_str_member(&j, "md5Hash", ob.md5, &first) != 0 ||
			buf_printf(&j, ",\"componentCount\":%d", ob.component_count) != 0)
		goto oom;
	if (ob.metadata) {
		char **m;
		int f2 = 1;

		if (buf_adds(&j, ",\"metadata\":{") != 0)
			goto oom;
		for (m = ob.metadata; m[0] && m[1]; m += 2)
			if (json_str_member(&j, m[0], m[1], &f2) != 0)
				goto oom;
		if (buf_addc(&j, '}') != 0)
			goto oom;
	}
	if (buf_adds(&j, "}\n") != 0)
		goto oom;
	rc = emit(c, j.p, j.len) == 0 ? 0 : 1;
	goto out;
oom:
	err_set(e, "out of memory");
out:
	gcs_object_free(&ob);
	buf_free(&j);
	return rc;
}

static int gcs_ls_cmd(struct ctx *c, struct opts *o, struct err *e)
{
	struct gcs_list_opts lo;
	struct gcs_listing l;
	unsigned long long ps = 0;
	struct gcs *g;
	size_t i;

	if (o->npos != 3 || (o->page_size && (parse_u64(o->page_size, &ps) != 0 || ps == 0 || ps > 1000)))
		return usage(c, "gcs ls");
	if (!(g = gcs_client(c, e)))
		return 1;
	memset(&lo, 0, sizeof lo);
	lo.prefix = o->prefix;
	lo.delimiter = o->delimiter;
	lo.start_offset = o->start_offset;
	lo.page_size = (unsigned)ps;
	if (gcs_list(g, o->pos[2], &lo, &l, e) != 0)
		return 1;
	for (i = 0; i < l.nprefixes; i++)
		fprintf(c->out, "%s\n", l.prefixes[i]);
	for (i = 0; i < l.n; i++)
		fprintf(c->out, "%s\t%llu\n", l.items[i].name, (unsigned long long)l.items[i].size);
	gcs_listing_free(&l);
	return 0;
}

static int gcs_rm_cmd(struct ctx *c, struct opts *o, struct err *e)
{
	struct gcs_del_opts d = { 0, 0, 0 };
	long long g;
	struct gcs *gc;

	if (o->npos != 4)
		return usage(c, "gcs rm");
	if (o->gen) {
		if (parse_i64(o->gen, &g) != 0 || g < 0)
			return usage(c, "gcs rm");
		d.use_generation_match = 1;
		d.if_generation_match = g;
	}
	d.idempotent = !o->no_retry;
	if (!(gc = gcs_client(c, e)))
		return 1;
	return gcs_delete(gc, o->pos[2], o->pos[3], &d, e) == 0 ? 0 : 1;
}

static int gcs_compose_cmd(struct ctx *c, struct opts *o, struct err *e)
{
	struct gcs_put_opts po;
	struct gcs_object ob;
	struct gcs *g;
	int rc;

	if (o->npos < 5)
		return usage(c, "gcs compose");
	if ((rc = put_opts(c, o, &po, "gcs compose")) != 0)
		return rc;
	if (!(g = gcs_client(c, e)))
		return 1;
	if (gcs_compose(g, o->pos[2], o->pos[3], o->pos + 4, (size_t)(o->npos - 4), &po, &ob, e) != 0)
		return 1;
	print_object(c, &ob);
	gcs_object_free(&ob);
	return 0;
}

static int cmd_gcs(struct ctx *c, struct opts *o, struct err *e)
{
	const char *v = o->npos > 1 ? o->pos[1] : "";

	if (strcmp(v, "put") == 0)
		return gcs_put_cmd(c, o, e);
	if (strcmp(v, "get") == 0)
		return gcs_get_cmd(c, o, e);
	if (strcmp(v, "stat") == 0)
		return gcs_stat_cmd(c, o, e);
	if (strcmp(v, "ls") == 0)
		return gcs_ls_cmd(c, o, e);
	if (strcmp(v, "rm") == 0)
		return gcs_rm_cmd(c, o, e);
	if (strcmp(v, "compose") == 0)
		return gcs_compose_cmd(c, o, e);
	return usage(c, "gcs");
}

/* ---- kms --------------------------------------------------------------- */

static int cmd_kms(struct ctx *c, struct opts *o, struct err *e)
{
	const char *v = o->npos > 1 ? o->pos[1] : "";
	struct buf in = BUF_INIT, raw = BUF_INIT, out = BUF_INIT;
	struct sealer *s = NULL;
	struct kms *k = NULL;
	int rc = 1, roundtrip = strcmp(v, "roundtrip") == 0;

	if (strcmp(v, "encrypt") != 0 && strcmp(v, "decrypt") != 0 && strcmp(v, "seal") != 0 &&
			strcmp(v, "open") != 0 && !(roundtrip && c->script))
		return usage(c, "kms");
	if (roundtrip) {
		if (o->npos != 3)
			return usage(c, "kms");
		o->data = o->pos[2];
	} else if (o->npos != 2) {
		return usage(c, "kms");
	}
	if (input(c, o, NULL, &in, e) != 0)
		goto out;
	if (o->base64 && (strcmp(v, "decrypt") == 0 || strcmp(v, "open") == 0)) {
		if (b64_decode(&raw, in.p ? in.p : "", in.len) != 0) {
			err_set(e, "the input is not base64");
			goto out;
		}
		buf_free(&in);
		in = raw;
		memset(&raw, 0, sizeof raw);
	}
	if (strcmp(v, "seal") == 0 || strcmp(v, "open") == 0) {
		if (!(s = seal_kms_new(o->key, e)))
			goto out;
		if ((strcmp(v, "seal") == 0 ? envelope_seal(s, in.p ? in.p : "", in.len, &out, e)
				: envelope_open(s, in.p ? in.p : "", in.len, &out, e)) != 0)
			goto out;
	} else {
		if (!(k = kms_new(o->key, e)))
			goto out;
		if (strcmp(v, "decrypt") == 0) {
			if (kms_decrypt(k, in.p, in.len, &out, e) != 0)
				goto out;
		} else {
			if (kms_encrypt(k, in.p ? in.p : "", in.len, &out, e) != 0)
				goto out;
			if (roundtrip) {
				buf_reset(&raw);
				if (kms_decrypt(k, out.p, out.len, &raw, e) != 0)
					goto out;
				buf_free(&out);
				out = raw;
				memset(&raw, 0, sizeof raw);
			}
		}
	}
	if (o->base64 && (strcmp(v, "encrypt") == 0 || strcmp(v, "seal") == 0)) {
		if (b64_encode(&raw, out.p, out.len) != 0) {
			err_set(e, "out of memory");
			goto out;
		}
		rc = emit(c, raw.p, raw.len) == 0 && (c->script || emit(c, "\n", 1) == 0) ? 0 : 1;
	} else {
		rc = emit(c, out.p, out.len) == 0 ? 0 : 1;
	}
out:
	if (s)
		seal_free(s);
	kms_free(k);
	if (out.p)
		cr_wipe(out.p, out.cap);
	if (in.p)
		cr_wipe(in.p, in.cap);
	buf_free(&in);
	buf_free(&raw);
	buf_free(&out);
	return rc;
}

/* ---- run --------------------------------------------------------------- */

static int cmd_run(struct ctx *c, struct opts *o, struct err *e)
{
	const char *v = o->npos > 1 ? o->pos[1] : "";

	if (strcmp(v, "start") == 0) {
		struct executor *x;
		struct buf name = BUF_INIT;
		int rc;

		if (o->npos < 5)
			return usage(c, "run start");
		if (!(x = exec_cloudrun_new(o->project, o->region, o->pos[2], e)))
			return 1;
		rc = exec_start(x, o->pos[3], o->pos[4], o->npos > 5 ? o->pos + 5 : NULL, &name, e);
		if (rc == 0)
			fprintf(c->out, "%s\n", name.p);
		buf_free(&name);
		exec_free(x);
		return rc == 0 ? 0 : 1;
	}
	if (strcmp(v, "status") == 0) {
		struct crun_status st;
		struct crun *cr;
		int rc;

		if (o->npos != 3)
			return usage(c, "run status");
		if (!(cr = crun_new(o->project, o->region, e)))
			return 1;
		rc = crun_get_execution(cr, o->pos[2], &st, e);
		if (rc == 0)
			fprintf(c->out, "%s done=%d tasks=%d running=%d succeeded=%d failed=%d cancelled=%d%s%s\n",
				crun_state_name(st.state), st.done, st.task_count, st.running, st.succeeded,
				st.failed, st.cancelled, st.message[0] ? " message=" : "", st.message);
		crun_free(cr);
		return rc == 0 ? 0 : 1;
	}
	if (strcmp(v, "cancel") == 0) {
		struct crun *cr;
		int rc;

		if (o->npos != 3)
			return usage(c, "run cancel");
		if (!(cr = crun_new(o->project, o->region, e)))
			return 1;
		rc = crun_cancel_execution(cr, o->pos[2], e);
		crun_free(cr);
		return rc == 0 ? 0 : 1;
	}
	return usage(c, "run");
}

/* ---- secret ------------------------------------------------------------ */

static int cmd_secret(struct ctx *c, struct opts *o, struct err *e)
{
	struct buf out = BUF_INIT;
	unsigned long long refresh = 0;
	int rc = 1;

	if (o->npos != 3 || strcmp(o->pos[1], "get") != 0 ||
			(o->cache && (parse_u64(o->cache, &refresh) != 0 || refresh > 86400)))
		return usage(c, "secret");
	/* With --cache, one client (and so one cache) serves all of a
	 * script's lines, as in a long-running service. */
	if (c->gsm && (!o->cache || o->project || c->gsm_refresh != (unsigned)refresh)) {
		gsm_free(c->gsm);
		c->gsm = NULL;
	}
	if (!c->gsm && !(c->gsm = gsm_new(o->project, (unsigned)refresh, e)))
		return 1;
	c->gsm_refresh = (unsigned)refresh;
	if (gsm_access(c->gsm, o->pos[2], o->version, &out, e) == 0)
		rc = emit(c, out.p, out.len) == 0 ? 0 : 1;
	if (out.p)
		cr_wipe(out.p, out.cap);
	buf_free(&out);
	return rc;
}

/* ---- store (the storage seam) ------------------------------------------ */

static int cmd_store(struct ctx *c, struct opts *o, struct err *e)
{
	const char *v = o->npos > 1 ? o->pos[1] : "";
	struct storage *st;
	struct buf data = BUF_INIT;
	int rc = 1;

	if (o->npos < 4 || (strcmp(v, "put") != 0 && strcmp(v, "get") != 0 && strcmp(v, "ls") != 0 &&
			strcmp(v, "rm") != 0))
		return usage(c, "store");
	if (!(st = storage_gcs_new(o->pos[2], e)))
		return 1;
	if (strcmp(v, "put") == 0) {
		struct storage_put_opts po = { o->content_type, o->nmeta ? o->meta : NULL, o->if_absent };

		if (o->npos > 5) {
			rc = usage(c, "store put");
			goto out;
		}
		if (input(c, o, o->npos == 5 ? o->pos[4] : NULL, &data, e) != 0)
			goto out;
		rc = storage_put(st, o->pos[3], data.p ? data.p : "", data.len, &po, e) == 0 ? 0 : 1;
	} else if (strcmp(v, "get") == 0) {
		unsigned long long off = 0;

		if (o->npos != 4 || (o->offset && parse_u64(o->offset, &off) != 0)) {
			rc = usage(c, "store get");
			goto out;
		}
		if (storage_get(st, o->pos[3], off, &data, e) == 0)
			rc = emit(c, data.p, data.len) == 0 ? 0 : 1;
	} else if (strcmp(v, "ls") == 0) {
		struct storage_list l;
		size_t i;

		if (o->npos != 4) {
			rc = usage(c, "store ls");
			goto out;
		}
		if (storage_list(st, o->pos[3], o->after, &l, e) == 0) {
			for (i = 0; i < l.n; i++)
				fprintf(c->out, "%s\t%llu\n", l.items[i].key, (unsigned long long)l.items[i].size);
			storage_list_free(&l);
			rc = 0;
		}
	} else {
		if (o->npos != 4) {
			rc = usage(c, "store rm");
			goto out;
		}
		rc = storage_delete(st, o->pos[3], e) == 0 ? 0 : 1;
	}
out:
	buf_free(&data);
	storage_free(st);
	return rc;
}

/* ---- dispatch and script ----------------------------------------------- */

static int run_op(struct ctx *c, int argc, char **argv, struct err *e);

/* Split a script line into words ("double" with \" \\ escapes, 'single'
 * literal).  Returns the count, or -1 on an unterminated quote. */
static int split(char *line, char **words, int max)
{
	char *r = line, *w;
	int n = 0;

	for (;;) {
		while (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n')
			r++;
		if (!*r)
			return n;
		if (n >= max)
			return -1;
		words[n++] = w = r;
		while (*r && *r != ' ' && *r != '\t' && *r != '\r' && *r != '\n') {
			if (*r == '"') {
				r++;
				while (*r && *r != '"') {
					if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
						r++;
					*w++ = *r++;
				}
				if (*r != '"')
					return -1;
				r++;
			} else if (*r == '\'') {
				r++;
				while (*r && *r != '\'')
					*w++ = *r++;
				if (*r != '\'')
					return -1;
				r++;
			} else {
				*w++ = *r++;
			}
		}
		if (*r)
			r++;
		*w = 0;
	}
}

static void print_escaped(FILE *f, const char *p, size_t n)
{
	size_t i;

	if (n > 0 && p[n - 1] == '\n')
		n--;
	for (i = 0; i < n; i++) {
		if (p[i] == '\\')
			fputs("\\\\", f);
		else if (p[i] == '\n')
			fputs("\\n", f);
		else if (p[i] == '\t' || (unsigned char)p[i] >= 0x20)
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", (unsigned char)p[i]);
	}
}

struct line {
	int lineno;
	char *text;
	int rc;
	char *out;
	size_t outlen;
	char msg[sizeof(((struct err *)0)->msg)];
};

struct pool {
	struct line *lines;
	size_t n;
	size_t next;
	pthread_mutex_t lock;
	struct ctx base;
};

/* Run one script line in ctx c (output captured). */
static void run_line(struct ctx *c, struct line *l)
{
	char *words[MAX_ARGS];
	struct ctx sub = *c;
	struct err e2 = ERR_INIT;
	int n = split(l->text, words, MAX_ARGS);

	l->rc = 1;
	if (n < 0) {
		snprintf(l->msg, sizeof l->msg, "unterminated quote or too many words");
		return;
	}
	sub.script = 1;
	sub.usage[0] = 0;
	sub.out = open_memstream(&l->out, &l->outlen);
	if (!sub.out) {
		snprintf(l->msg, sizeof l->msg, "out of memory");
		return;
	}
	if (strcmp(words[0], "sleep") == 0 && n == 2) {
		struct timespec ts;
		long ms = atol(words[1]);

		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		l->rc = 0;
	} else {
		l->rc = run_op(&sub, n, words, &e2);
	}
	fclose(sub.out);
	c->gcs = sub.gcs;
	c->gsm = sub.gsm;
	c->gsm_refresh = sub.gsm_refresh;
	snprintf(l->msg, sizeof l->msg, "%s", l->rc == EXIT_USAGE ? sub.usage : e2.msg);
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	struct ctx c = p->base;      /* own ctx: own secret cache; the GCS client is shared */

	for (;;) {
		size_t i;

		pthread_mutex_lock(&p->lock);
		i = p->next++;
		pthread_mutex_unlock(&p->lock);
		if (i >= p->n)
			break;
		run_line(&c, &p->lines[i]);
	}
	gsm_free(c.gsm);
	return NULL;
}

static int cmd_script(struct ctx *c, struct opts *o, struct err *e)
{
	struct pool p;
	pthread_t tids[64];
	unsigned long long threads = 1, r0 = hc_retries_total();
	uint64_t t0 = hc_now_ms();
	size_t cap = 0, lcap = 0, i;
	ssize_t len;
	char *line = NULL;
	int lineno = 0, failed = 0, started = 0, rc = 1;
	FILE *f;

	if (o->npos != 2 || c->script ||
			(o->threads && (parse_u64(o->threads, &threads) != 0 || threads < 1 || threads > 64)))
		return usage(c, "script");
	f = strcmp(o->pos[1], "-") == 0 ? stdin : fopen(o->pos[1], "r");
	if (!f)
		return err_set(e, "%s: %s", o->pos[1], strerror(errno)), 1;
	memset(&p, 0, sizeof p);
	while ((len = getline(&line, &cap, f)) >= 0) {
		const char *t = line + strspn(line, " \t\r\n");

		lineno++;
		if (!*t || *t == '#')
			continue;
		if (p.n == lcap) {
			size_t nc = lcap ? 2 * lcap : 64;
			struct line *nl = realloc(p.lines, nc * sizeof *nl);

			if (!nl)
				goto oom;
			p.lines = nl;
			lcap = nc;
		}
		memset(&p.lines[p.n], 0, sizeof p.lines[0]);
		p.lines[p.n].lineno = lineno;
		if (!(p.lines[p.n].text = strdup(line)))
			goto oom;
		p.n++;
	}
	free(line);
	line = NULL;
	if (f != stdin)
		fclose(f);
	f = NULL;
	if (threads == 1) {
		for (i = 0; i < p.n; i++)
			run_line(c, &p.lines[i]);
	} else {
		/* Clients shared by the threads are made before they start. */
		if (!gcs_client(c, e))
			goto out;
		p.base = *c;
		p.base.gsm = NULL;
		if (pthread_mutex_init(&p.lock, NULL) != 0) {
			err_set(e, "cannot make a mutex");
			goto out;
		}
		for (i = 0; i < threads; i++) {
			if (pthread_create(&tids[i], NULL, worker, &p) != 0)
				break;
			started++;
		}
		for (i = 0; i < (size_t)started; i++)
			pthread_join(tids[i], NULL);
		pthread_mutex_destroy(&p.lock);
		if (started == 0) {
			err_set(e, "cannot start threads");
			goto out;
		}
	}
	for (i = 0; i < p.n; i++) {
		struct line *l = &p.lines[i];

		if (l->rc == 0) {
			fprintf(c->out, "%d\t", l->lineno);
			print_escaped(c->out, l->out ? l->out : "", l->outlen);
			fputc('\n', c->out);
		} else {
			failed++;
			fprintf(c->out, "%d\tERROR\t%s\n", l->lineno, l->msg);
		}
	}
	fprintf(c->out, "# ops=%zu failed=%d retries=%llu ms=%llu\n", p.n, failed, hc_retries_total() - r0,
		(unsigned long long)(hc_now_ms() - t0));
	if (failed)
		err_set(e, "script %s: %d of %zu operations failed", o->pos[1], failed, p.n);
	else
		rc = 0;
	goto out;
oom:
	err_set(e, "script %s: out of memory", o->pos[1]);
out:
	free(line);
	if (f && f != stdin)
		fclose(f);
	for (i = 0; i < p.n; i++) {
		free(p.lines[i].text);
		free(p.lines[i].out);
	}
	free(p.lines);
	return rc;
}

static int run_op(struct ctx *c, int argc, char **argv, struct err *e)
{
	struct opts o;
	const char *cmd = argc > 0 ? argv[0] : "";

	if (parse(argc, argv, &o) != 0)
		return usage(c, cmd);
	if (strcmp(cmd, "token") == 0)
		return cmd_token(c, &o, e);
	if (strcmp(cmd, "whoami") == 0)
		return cmd_whoami(c, &o, e);
	if (strcmp(cmd, "gcs") == 0)
		return cmd_gcs(c, &o, e);
	if (strcmp(cmd, "kms") == 0)
		return cmd_kms(c, &o, e);
	if (strcmp(cmd, "run") == 0)
		return cmd_run(c, &o, e);
	if (strcmp(cmd, "secret") == 0)
		return cmd_secret(c, &o, e);
	if (strcmp(cmd, "store") == 0)
		return cmd_store(c, &o, e);
	if (strcmp(cmd, "script") == 0)
		return cmd_script(c, &o, e);
	snprintf(c->usage, sizeof c->usage, "unknown command '%.40s' (ccr gcp --help lists them)", cmd);
	return EXIT_USAGE;
}

int gcp_main(int argc, char **argv)
{
	struct ctx c;
	struct err e = ERR_INIT;
	char why[256];
	int rc;

	argc--, argv++;
	if (argc == 0) {
		fprintf(stderr, "ccr gcp: usage: ccr gcp COMMAND ... (ccr gcp --help lists them)\n");
		return EXIT_USAGE;
	}
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "help") == 0) {
		usage_all(stdout);
		return 0;
	}
	if (net_global_init(why, sizeof why) != 0) {
		fprintf(stderr, "ccr gcp: %s\n", why);
		return 1;
	}
	memset(&c, 0, sizeof c);
	c.out = stdout;
	rc = run_op(&c, argc, argv, &e);
	if (fflush(stdout) != 0 && rc == 0) {
		err_set(&e, "writing the output: %s", strerror(errno));
		rc = 1;
	}
	gcs_free(c.gcs);
	gsm_free(c.gsm);
	if (rc == EXIT_USAGE)
		fprintf(stderr, "ccr gcp: %s\n", c.usage);
	else if (rc != 0)
		fprintf(stderr, "ccr gcp: %s\n", e.msg[0] ? e.msg : "failed");
	return rc;
}
