/*
 * deploy.c: `ccr deploy`, the command: options (flags and a config
 * file), defaults, and the order the resources are brought up (see
 * deploy.h for how each one is handled).
 *
 *   ccr deploy --project P [--region R] [--config FILE] [--dry-run] [options]
 *
 * Defaults are the original service's names (seed README and
 * seed-spec §13), so an existing deployment is taken over in place; the
 * environment variables the original read (PROJECT_ID, REGION,
 * GCS_LOGS_BUCKET, KMS_KEY_RING, KMS_KEY_NAME, CLOUDRUN_JOB_NAME) are
 * honoured as defaults too.  A config file holds one option per line,
 * `name = value` (the flag without its dashes; `true` for a switch;
 * `env` may repeat); '#' starts a comment; flags given on the command
 * line win over the file.
 *
 * Order: registry and image push, service accounts, bucket, KMS,
 * secrets, job, service: each step's IAM bindings name accounts made
 * earlier, and the job and service reference the images, bucket, key and
 * secrets.  The last line counts calls and writes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccr.h"
#include "deploy/deploy.h"
#include "gcp/auth.h"
#include "gcp/common.h"
#include "http/client.h"
#include "net/netinit.h"
#include "util/clock.h"

#define EXIT_USAGE 2
#define MAX_FILE_OPTS 128

static const char usage_text[] =
	"usage: ccr deploy [--project P] [--region R] [--config FILE] [--dry-run] [options]\n"
	"\n"
	"Creates or updates, idempotently, the Google Cloud resources of a ccr deployment:\n"
	"the Artifact Registry repository (and pushes the images), two service accounts,\n"
	"the bucket, the KMS key ring and key, the secrets, the Cloud Run Job and Service,\n"
	"and the IAM bindings each needs (each printed with its reason).  A second run with\n"
	"no change writes nothing.  --dry-run prints the plan and writes nothing.\n"
	"\n"
	"names (defaults: the original service's, so it is taken over in place):\n"
	"  --project ID                  PROJECT_ID, GCS_PROJECT_ID, else the credentials' project\n"
	"  --region R                    REGION, else europe-west3 (Cloud Run, KMS, bucket, registry)\n"
	"  --bucket NAME                 GCS_LOGS_BUCKET, else PROJECT-ccr-logs\n"
	"  --kms-key-ring NAME           KMS_KEY_RING, else cloudrun-claude-code-keys\n"
	"  --kms-key NAME                KMS_KEY_NAME, else async-task-payload-key\n"
	"  --job NAME                    CLOUDRUN_JOB_NAME, else claude-code-async-worker\n"
	"  --service NAME                cloudrun-claude-code\n"
	"  --repository NAME             cloudrun-claude-code (Artifact Registry, DOCKER)\n"
	"  --serve-service-account ID    ccr-serve   (ID@PROJECT.iam.gserviceaccount.com)\n"
	"  --job-service-account ID      ccr-job\n"
	"  --callback-secret ID          cloudrun-callback-secret (CLOUDRUN_CALLBACK_SECRET)\n"
	"  --api-keys-secret ID          ccr-api-keys (CCR_API_KEYS)\n"
	"secret values (default: generated once, kept afterwards):\n"
	"  --callback-secret-file FILE   --api-keys-file FILE\n"
	"images:\n"
	"  --job-image-dir DIR           push this OCI layout as ccr-job:TAG, deploy it by digest\n"
	"  --serve-image-dir DIR         push this OCI layout as ccr-serve:TAG\n"
	"  --job-image REF, --serve-image REF   deploy these instead (default REGISTRY/P/REPO/ccr-*:TAG)\n"
	"  --tag TAG                     latest\n"
	"  --registry HOST[:PORT]        REGION-docker.pkg.dev\n"
	"  --registry-user U --registry-password-file F   basic credentials (default: the access token)\n"
	"job:      --job-cpu 1 --job-memory 4Gi --job-timeout 24h --job-max-retries 1\n"
	"service:  --serve-cpu 1 --serve-memory 512Mi --serve-timeout 1h --ingress all|internal|\n"
	"          internal-and-cloud-load-balancing --min-instances 0 --max-instances 10\n"
	"          --concurrency 80 --allow-unauthenticated\n"
	"both:     --env NAME=VALUE (repeatable)\n"
	"--config FILE: one `name = value` per line (a flag's name without --, `true` for a switch);\n"
	"          flags on the command line win\n"
	"endpoints (tests): STORAGE_EMULATOR_HOST, CCR_KMS_ENDPOINT, CCR_SECRETMANAGER_ENDPOINT,\n"
	"          CCR_RUN_ENDPOINT, CCR_IAM_ENDPOINT, CCR_ARTIFACTREGISTRY_ENDPOINT\n";

struct opts {
	struct dp_config cf;
	char *owned[MAX_FILE_OPTS * 2 + 8];   /* strings read from the config file */
	int n_owned;
	char project[128], bucket[256], job_image[1024], serve_image[1024];
	char job_timeout[32], serve_timeout[32], registry[300];
};

static const char *envor(const char *name, const char *dflt)
{
	const char *v = gcp_setting(name);

	return v ? v : dflt;
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || end == v || *end || n < lo || n > hi) {
		fprintf(stderr, "ccr deploy: --%s %s: give a whole number from %d to %d\n", flag, v, lo, hi);
		return -1;
	}
	*out = (int)n;
	return 0;
}

/* 90, 90s, 30m, 24h -> "<seconds>s" */
static int parse_duration(const char *flag, const char *v, long max_s, char *out, size_t outlen)
{
	char *end;
	long n, mult = 1;

	errno = 0;
	n = strtol(v, &end, 10);
	if (!errno && end != v && (!*end || !end[1])) {
		if (*end == 'm')
			mult = 60;
		else if (*end == 'h')
			mult = 3600;
		else if (*end && *end != 's')
			n = -1;
		if (n > 0 && n <= max_s / mult) {
			snprintf(out, outlen, "%lds", n * mult);
			return 0;
		}
	}
	fprintf(stderr, "ccr deploy: --%s %s: give a duration like 600s, 30m or 24h, at most %lds\n", flag, v,
		max_s);
	return -1;
}

/* One option; *used: how many argv entries it took (1 or 2). 0, or -1 after a usage message. */
static int take(struct opts *o, const char *name, const char *value, int *used)
{
	static const struct {
		const char *name;
		size_t off;
	} strs[] = {
#define S(n, f) { n, offsetof(struct dp_config, f) }
		S("project", project), S("region", region), S("bucket", bucket), S("kms-key-ring", key_ring),
		S("kms-key", key), S("repository", repo), S("job", job), S("service", service),
		S("serve-service-account", serve_sa), S("job-service-account", job_sa),
		S("callback-secret", callback_secret), S("api-keys-secret", api_keys_secret),
		S("callback-secret-file", callback_secret_file), S("api-keys-file", api_keys_file),
		S("job-image", job_image), S("serve-image", serve_image), S("job-image-dir", job_image_dir),
		S("serve-image-dir", serve_image_dir), S("tag", tag), S("registry", registry),
		S("registry-user", registry_user), S("registry-password-file", registry_password_file),
		S("job-cpu", job_cpu), S("job-memory", job_memory), S("serve-cpu", serve_cpu),
		S("serve-memory", serve_memory), S("ingress", ingress),
#undef S
	};
	struct dp_config *cf = &o->cf;
	char padded[80];
	size_t i;

	*used = 1;
	if (strcmp(name, "dry-run") == 0 || strcmp(name, "allow-unauthenticated") == 0) {
		int on = !value || strcmp(value, "true") == 0;

		if (value && !on && strcmp(value, "false") != 0) {
			fprintf(stderr, "ccr deploy: %s = %s: give true or false\n", name, value);
			return -1;
		}
		*(strcmp(name, "dry-run") == 0 ? &cf->dry_run : &cf->allow_unauthenticated) = on;
		return 0;
	}
	snprintf(padded, sizeof padded, " %s ", name);
	for (i = 0; i < sizeof strs / sizeof strs[0] && strcmp(name, strs[i].name) != 0; i++)
		;
	if (i == sizeof strs / sizeof strs[0] && !strstr(" env job-timeout serve-timeout job-max-retries "
			"min-instances max-instances concurrency ", padded)) {
		fprintf(stderr, "ccr deploy: unknown option --%s (ccr deploy --help lists them)\n", name);
		return -1;
	}
	if (!value) {
		fprintf(stderr, "ccr deploy: --%s needs a value (ccr deploy --help)\n", name);
		return -1;
	}
	*used = 2;
	for (i = 0; i < sizeof strs / sizeof strs[0]; i++)
		if (strcmp(name, strs[i].name) == 0) {
			*(const char **)((char *)cf + strs[i].off) = value;
			return 0;
		}
	if (strcmp(name, "env") == 0) {
		const char *eq = strchr(value, '=');

		if (!eq || eq == value || eq - value > 100 || cf->n_env >= DP_MAX_ENV) {
			fprintf(stderr, "ccr deploy: --env %s: give NAME=VALUE (at most %d)\n", value, DP_MAX_ENV);
			return -1;
		}
		cf->env[cf->n_env++] = value;
		return 0;
	}
	if (strcmp(name, "job-timeout") == 0)
		return parse_duration(name, value, 7 * 86400, o->job_timeout, sizeof o->job_timeout);
	if (strcmp(name, "serve-timeout") == 0)
		return parse_duration(name, value, 3600, o->serve_timeout, sizeof o->serve_timeout);
	if (strcmp(name, "job-max-retries") == 0)
		return parse_int(name, value, 0, 10, &cf->job_max_retries);
	if (strcmp(name, "min-instances") == 0)
		return parse_int(name, value, 0, 1000, &cf->min_instances);
	if (strcmp(name, "max-instances") == 0)
		return parse_int(name, value, 1, 1000, &cf->max_instances);
	if (strcmp(name, "concurrency") == 0)
		return parse_int(name, value, 1, 1000, &cf->concurrency);
	fprintf(stderr, "ccr deploy: unknown option --%s (ccr deploy --help lists them)\n", name);
	return -1;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	int i, used;

	for (i = 0; i < argc; i += used) {
		const char *a = argv[i], *eq;
		char name[64];

		if (strncmp(a, "--", 2) != 0) {
			fprintf(stderr, "ccr deploy: unexpected argument '%s' (options start with --)\n", a);
			return -1;
		}
		if ((eq = strchr(a, '='))) {
			snprintf(name, sizeof name, "%.*s", (int)(eq - a - 2), a + 2);
			if (strcmp(name, "config") != 0 && take(o, name, eq + 1, &used) != 0)
				return -1;
			used = 1;
			continue;
		}
		snprintf(name, sizeof name, "%s", a + 2);
		if (strcmp(name, "config") == 0) {
			used = 2;
			continue;
		}
		if (take(o, name, i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 ? argv[i + 1] : NULL,
				&used) != 0)
			return -1;
	}
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = 0;
	return s;
}

static int read_config(struct opts *o, const char *file)
{
	FILE *f = fopen(file, "r");
	char line[2048];
	int lineno = 0, used;

	if (!f) {
		fprintf(stderr, "ccr deploy: cannot read the config file %s: %s\n", file, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char *s = trim(line), *eq, *name, *value;

		lineno++;
		if (!*s || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (!eq || o->n_owned + 2 > (int)(sizeof o->owned / sizeof o->owned[0])) {
			fprintf(stderr, "ccr deploy: %s:%d: give `name = value` (at most %d lines)\n", file, lineno,
				MAX_FILE_OPTS);
			fclose(f);
			return -1;
		}
		*eq = 0;
		name = strdup(trim(s));
		value = strdup(trim(eq + 1));
		if (!name || !value) {
			free(name);
			free(value);
			fclose(f);
			fprintf(stderr, "ccr deploy: out of memory\n");
			return -1;
		}
		o->owned[o->n_owned++] = name;
		o->owned[o->n_owned++] = value;
		if (take(o, name, value, &used) != 0) {
			fprintf(stderr, "ccr deploy: (in %s line %d)\n", file, lineno);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

static void defaults(struct opts *o)
{
	struct dp_config *cf = &o->cf;

	cf->region = envor("REGION", "europe-west3");
	cf->key_ring = envor("KMS_KEY_RING", "cloudrun-claude-code-keys");
	cf->key = envor("KMS_KEY_NAME", "async-task-payload-key");
	cf->job = envor("CLOUDRUN_JOB_NAME", "claude-code-async-worker");
	cf->bucket = gcp_setting("GCS_LOGS_BUCKET");
	cf->service = "cloudrun-claude-code";
	cf->repo = "cloudrun-claude-code";
	cf->serve_sa = "ccr-serve";
	cf->job_sa = "ccr-job";
	cf->callback_secret = "cloudrun-callback-secret";
	cf->api_keys_secret = "ccr-api-keys";
	cf->tag = "latest";
	cf->job_cpu = "1";
	cf->job_memory = "4Gi";
	cf->job_max_retries = 1;
	cf->serve_cpu = "1";
	cf->serve_memory = "512Mi";
	cf->ingress = "all";
	cf->min_instances = 0;
	cf->max_instances = 10;
	cf->concurrency = 80;
	snprintf(o->job_timeout, sizeof o->job_timeout, "86400s");
	snprintf(o->serve_timeout, sizeof o->serve_timeout, "3600s");
}

/* Google's resource ids: lower-case letters, digits, '-', '_', '.' (each API is stricter; it says so). */
static int check_id(const char *what, const char *v, int allow_upper)
{
	const char *p;

	if (!v || !*v || strlen(v) > 200)
		goto bad;
	for (p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
				(allow_upper && *p >= 'A' && *p <= 'Z')))
			goto bad;
	return 0;
bad:
	fprintf(stderr, "ccr deploy: %s \"%.200s\" is not a valid name (letters, digits, '-', '_', '.')\n", what,
		v ? v : "");
	return -1;
}

static int finish(struct opts *o)
{
	struct dp_config *cf = &o->cf;
	struct buf p = BUF_INIT;
	struct err e = ERR_INIT;

	if (!cf->project)
		cf->project = gcp_setting("PROJECT_ID") ? gcp_setting("PROJECT_ID") : gcp_setting("GCS_PROJECT_ID");
	if (!cf->project) {
		if (gauth_project_id(&p, &e) != 0) {
			fprintf(stderr, "ccr deploy: no project: pass --project (%s)\n", e.msg);
			buf_free(&p);
			return 1;
		}
		snprintf(o->project, sizeof o->project, "%s", p.p);
		buf_free(&p);
		cf->project = o->project;
	}
	if (!cf->bucket) {
		snprintf(o->bucket, sizeof o->bucket, "%s-ccr-logs", cf->project);
		cf->bucket = o->bucket;
	}
	cf->job_timeout = o->job_timeout;
	cf->serve_timeout = o->serve_timeout;
	if (check_id("--project", cf->project, 0) || check_id("--region", cf->region, 0) ||
			check_id("--bucket", cf->bucket, 0) || check_id("--kms-key-ring", cf->key_ring, 1) ||
			check_id("--kms-key", cf->key, 1) || check_id("--repository", cf->repo, 0) ||
			check_id("--job", cf->job, 0) || check_id("--service", cf->service, 0) ||
			check_id("--serve-service-account", cf->serve_sa, 0) ||
			check_id("--job-service-account", cf->job_sa, 0) ||
			check_id("--callback-secret", cf->callback_secret, 1) ||
			check_id("--api-keys-secret", cf->api_keys_secret, 1) || check_id("--tag", cf->tag, 1))
		return EXIT_USAGE;
	if (strcmp(cf->ingress, "all") != 0 && strcmp(cf->ingress, "internal") != 0 &&
			strcmp(cf->ingress, "internal-and-cloud-load-balancing") != 0) {
		fprintf(stderr, "ccr deploy: --ingress %s: give all, internal or internal-and-cloud-load-balancing\n",
			cf->ingress);
		return EXIT_USAGE;
	}
	if (cf->min_instances > cf->max_instances) {
		fprintf(stderr, "ccr deploy: --min-instances %d is above --max-instances %d\n", cf->min_instances,
			cf->max_instances);
		return EXIT_USAGE;
	}
	if (!cf->registry) {
		snprintf(o->registry, sizeof o->registry, "%s-docker.pkg.dev", cf->region);
		cf->registry = o->registry;
	}
	return 0;
}

static int steps(struct dp_ctx *c, struct err *e)
{
	const struct dp_config *cf = c->cf;

	snprintf(c->job_image, sizeof c->job_image, "%s", cf->job_image ? cf->job_image : "");
	snprintf(c->serve_image, sizeof c->serve_image, "%s", cf->serve_image ? cf->serve_image : "");
	if (!cf->job_image)
		snprintf(c->job_image, sizeof c->job_image, "%s/%s/%s/ccr-job:%s", cf->registry, cf->project, cf->repo,
			cf->tag);
	if (!cf->serve_image)
		snprintf(c->serve_image, sizeof c->serve_image, "%s/%s/%s/ccr-serve:%s", cf->registry, cf->project,
			cf->repo, cf->tag);
	if (dp_registry(c, e) != 0 || dp_push_images(c, e) != 0)
		return -1;
	if (dp_service_accounts(c, e) != 0 || dp_bucket(c, e) != 0 || dp_kms(c, e) != 0 ||
			dp_secrets(c, e) != 0)
		return -1;
	return dp_job(c, e) != 0 || dp_service(c, e) != 0 ? -1 : 0;
}

static int run(struct opts *o)
{
	struct dp_ctx c;
	struct err e = ERR_INIT;
	uint64_t t0 = (uint64_t)clock_mono_ms();
	char why[256];
	int i, rc;

	memset(&c, 0, sizeof c);
	c.cf = &o->cf;
	c.out = stdout;
	if (net_global_init(why, sizeof why) != 0) {
		fprintf(stderr, "ccr deploy: %s\n", why);
		return 1;
	}
	for (i = 0; i < GREST_N_APIS; i++)
		if (grest_endpoint((enum grest_api)i, &c.ep[i], &e) != 0) {
			fprintf(stderr, "ccr deploy: %s\n", e.msg);
			return EXIT_USAGE;
		}
	fprintf(c.out, "ccr deploy: project %s, region %s%s\n", o->cf.project, o->cf.region,
		o->cf.dry_run ? " (dry run: nothing is written)" : "");
	rc = steps(&c, &e);
	fprintf(c.out, "deploy %s: %u calls, %u writes, %u images pushed, %llu ms\n", rc == 0 ?
		(o->cf.dry_run ? "planned" : "done") : "failed", c.calls, c.writes, c.pushes,
		(unsigned long long)((uint64_t)clock_mono_ms() - t0));
	if (fflush(c.out) != 0 && rc == 0) {
		fprintf(stderr, "ccr deploy: writing the output: %s\n", strerror(errno));
		return 1;
	}
	if (rc != 0) {
		fprintf(stderr, "ccr deploy: %s\n", e.msg);
		return 1;
	}
	return 0;
}

int deploy_main(int argc, char **argv)
{
	struct opts *o = calloc(1, sizeof *o);
	int i, rc = EXIT_USAGE;

	if (!o) {
		fprintf(stderr, "ccr deploy: out of memory\n");
		return 1;
	}
	argc--, argv++;
	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage_text, stdout);
			free(o);
			return 0;
		}
	defaults(o);
	for (i = 0; i < argc; i++) {
		const char *file = NULL;

		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			file = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			file = argv[i] + 9;
		else if (strcmp(argv[i], "--config") == 0) {
			fprintf(stderr, "ccr deploy: --config needs a file\n");
			goto out;
		}
		if (file && read_config(o, file) != 0)
			goto out;
	}
	if (parse_args(o, argc, argv) != 0)
		goto out;
	if ((rc = finish(o)) != 0)
		goto out;
	rc = run(o);
out:
	for (i = 0; i < o->n_owned; i++)
		free(o->owned[i]);
	free(o);
	return rc;
}
