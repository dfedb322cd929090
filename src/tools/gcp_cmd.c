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
 * Files: this one holds usage, options, data in and out, and the
 * token, whoami, kms, run, secret and store commands and the dispatch;
 * `gcs ...` is gcp_cmd_gcs.c, `script` gcp_cmd_script.c; gcp_cmd.h is
 * what they share.
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
#include "tools/gcp_cmd.h"

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
int gcpc_usage(struct gcpc_ctx *c, const char *prefix)
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

/* Parse words into o; -1 on an unknown option or a missing value. */
static int parse(int argc, char **argv, struct gcpc_opts *o)
{
	static const struct { const char *name; size_t off; } valued[] = {
		{ "--data", offsetof(struct gcpc_opts, data) },
		{ "--content-type", offsetof(struct gcpc_opts, content_type) },
		{ "--key", offsetof(struct gcpc_opts, key) },
		{ "--project", offsetof(struct gcpc_opts, project) },
		{ "--region", offsetof(struct gcpc_opts, region) },
		{ "--version", offsetof(struct gcpc_opts, version) },
		{ "--prefix", offsetof(struct gcpc_opts, prefix) },
		{ "--delimiter", offsetof(struct gcpc_opts, delimiter) },
		{ "--start-offset", offsetof(struct gcpc_opts, start_offset) },
		{ "--after", offsetof(struct gcpc_opts, after) },
		{ "--id-token", offsetof(struct gcpc_opts, id_token) },
		{ "--if-generation-match", offsetof(struct gcpc_opts, gen) },
		{ "--offset", offsetof(struct gcpc_opts, offset) },
		{ "--chunk-size", offsetof(struct gcpc_opts, chunk) },
		{ "--page-size", offsetof(struct gcpc_opts, page_size) },
		{ "--cache", offsetof(struct gcpc_opts, cache) },
		{ "--threads", offsetof(struct gcpc_opts, threads) },
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

int gcpc_parse_i64(const char *s, long long *out)
{
	char *end;

	if (!s || !*s)
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || *end ? -1 : 0;
}

int gcpc_parse_u64(const char *s, unsigned long long *out)
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
int gcpc_input(struct gcpc_ctx *c, const struct gcpc_opts *o, const char *file, struct buf *out, struct err *e)
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

int gcpc_emit(struct gcpc_ctx *c, const void *p, size_t n)
{
	return n && fwrite(p, 1, n, c->out) != n ? -1 : 0;
}

struct gcs *gcpc_gcs_client(struct gcpc_ctx *c, struct err *e)
{
	if (!c->gcs)
		c->gcs = gcs_new(e);
	return c->gcs;
}

/* ---- token, whoami ----------------------------------------------------- */

static int cmd_token(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct gauth *g;
	struct buf tok = BUF_INIT;
	int rc;

	if (o->npos != 1)
		return gcpc_usage(c, "token");
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

static int cmd_whoami(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct gauth *g;
	struct buf p = BUF_INIT, r = BUF_INIT;
	struct err e2 = ERR_INIT;

	if (o->npos != 1)
		return gcpc_usage(c, "whoami");
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

/* ---- kms --------------------------------------------------------------- */

static int cmd_kms(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	const char *v = o->npos > 1 ? o->pos[1] : "";
	struct buf in = BUF_INIT, raw = BUF_INIT, out = BUF_INIT;
	struct sealer *s = NULL;
	struct kms *k = NULL;
	int rc = 1, roundtrip = strcmp(v, "roundtrip") == 0;

	if (strcmp(v, "encrypt") != 0 && strcmp(v, "decrypt") != 0 && strcmp(v, "seal") != 0 &&
			strcmp(v, "open") != 0 && !(roundtrip && c->script))
		return gcpc_usage(c, "kms");
	if (roundtrip) {
		if (o->npos != 3)
			return gcpc_usage(c, "kms");
		o->data = o->pos[2];
	} else if (o->npos != 2) {
		return gcpc_usage(c, "kms");
	}
	if (gcpc_input(c, o, NULL, &in, e) != 0)
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
		rc = gcpc_emit(c, raw.p, raw.len) == 0 && (c->script || gcpc_emit(c, "\n", 1) == 0) ? 0 : 1;
	} else {
		rc = gcpc_emit(c, out.p, out.len) == 0 ? 0 : 1;
	}
out:
	if (s)
		s->ops->free(s);
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

static int cmd_run(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	const char *v = o->npos > 1 ? o->pos[1] : "";

	if (strcmp(v, "start") == 0) {
		struct executor *x;
		struct buf name = BUF_INIT;
		int rc;

		if (o->npos < 5)
			return gcpc_usage(c, "run start");
		if (!(x = exec_cloudrun_new(o->project, o->region, o->pos[2], e)))
			return 1;
		rc = x->ops->start(x, o->pos[3], o->pos[4], o->npos > 5 ? o->pos + 5 : NULL, &name, e);
		if (rc == 0)
			fprintf(c->out, "%s\n", name.p);
		buf_free(&name);
		x->ops->free(x);
		return rc == 0 ? 0 : 1;
	}
	if (strcmp(v, "status") == 0) {
		struct crun_status st;
		struct crun *cr;
		int rc;

		if (o->npos != 3)
			return gcpc_usage(c, "run status");
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
			return gcpc_usage(c, "run cancel");
		if (!(cr = crun_new(o->project, o->region, e)))
			return 1;
		rc = crun_cancel_execution(cr, o->pos[2], e);
		crun_free(cr);
		return rc == 0 ? 0 : 1;
	}
	return gcpc_usage(c, "run");
}

/* ---- secret ------------------------------------------------------------ */

static int cmd_secret(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct buf out = BUF_INIT;
	unsigned long long refresh = 0;
	int rc = 1;

	if (o->npos != 3 || strcmp(o->pos[1], "get") != 0 ||
			(o->cache && (gcpc_parse_u64(o->cache, &refresh) != 0 || refresh > 86400)))
		return gcpc_usage(c, "secret");
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
		rc = gcpc_emit(c, out.p, out.len) == 0 ? 0 : 1;
	if (out.p)
		cr_wipe(out.p, out.cap);
	buf_free(&out);
	return rc;
}

/* ---- store (the storage seam) ------------------------------------------ */

static int cmd_store(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	const char *v = o->npos > 1 ? o->pos[1] : "";
	struct storage *st;
	struct buf data = BUF_INIT;
	int rc = 1;

	if (o->npos < 4 || (strcmp(v, "put") != 0 && strcmp(v, "get") != 0 && strcmp(v, "ls") != 0 &&
			strcmp(v, "rm") != 0))
		return gcpc_usage(c, "store");
	if (!(st = storage_gcs_new(o->pos[2], e)))
		return 1;
	if (strcmp(v, "put") == 0) {
		struct storage_put_opts po = { o->content_type, o->nmeta ? o->meta : NULL, o->if_absent };

		if (o->npos > 5) {
			rc = gcpc_usage(c, "store put");
			goto out;
		}
		if (gcpc_input(c, o, o->npos == 5 ? o->pos[4] : NULL, &data, e) != 0)
			goto out;
		rc = st->ops->put(st, o->pos[3], data.p ? data.p : "", data.len, &po, e) == 0 ? 0 : 1;
	} else if (strcmp(v, "get") == 0) {
		unsigned long long off = 0;

		if (o->npos != 4 || (o->offset && gcpc_parse_u64(o->offset, &off) != 0)) {
			rc = gcpc_usage(c, "store get");
			goto out;
		}
		if (st->ops->get(st, o->pos[3], off, &data, e) == 0)
			rc = gcpc_emit(c, data.p, data.len) == 0 ? 0 : 1;
	} else if (strcmp(v, "ls") == 0) {
		struct storage_list l;
		size_t i;

		if (o->npos != 4) {
			rc = gcpc_usage(c, "store ls");
			goto out;
		}
		if (st->ops->list(st, o->pos[3], o->after, &l, e) == 0) {
			for (i = 0; i < l.n; i++)
				fprintf(c->out, "%s\t%llu\n", l.items[i].key, (unsigned long long)l.items[i].size);
			storage_list_free(&l);
			rc = 0;
		}
	} else {
		if (o->npos != 4) {
			rc = gcpc_usage(c, "store rm");
			goto out;
		}
		rc = st->ops->del(st, o->pos[3], e) == 0 ? 0 : 1;
	}
out:
	buf_free(&data);
	st->ops->free(st);
	return rc;
}

int gcpc_run_op(struct gcpc_ctx *c, int argc, char **argv, struct err *e)
{
	struct gcpc_opts o;
	const char *cmd = argc > 0 ? argv[0] : "";

	if (parse(argc, argv, &o) != 0)
		return gcpc_usage(c, cmd);
	if (strcmp(cmd, "token") == 0)
		return cmd_token(c, &o, e);
	if (strcmp(cmd, "whoami") == 0)
		return cmd_whoami(c, &o, e);
	if (strcmp(cmd, "gcs") == 0)
		return gcpc_gcs(c, &o, e);
	if (strcmp(cmd, "kms") == 0)
		return cmd_kms(c, &o, e);
	if (strcmp(cmd, "run") == 0)
		return cmd_run(c, &o, e);
	if (strcmp(cmd, "secret") == 0)
		return cmd_secret(c, &o, e);
	if (strcmp(cmd, "store") == 0)
		return cmd_store(c, &o, e);
	if (strcmp(cmd, "script") == 0)
		return gcpc_script(c, &o, e);
	snprintf(c->usage, sizeof c->usage, "unknown command '%.40s' (ccr gcp --help lists them)", cmd);
	return EXIT_USAGE;
}

int gcp_main(int argc, char **argv)
{
	struct gcpc_ctx c;
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
	rc = gcpc_run_op(&c, argc, argv, &e);
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
