/*
 * serve.h: the parts of `ccr serve` above the HTTP server: the service
 * context, the route table and the endpoint handlers.
 *
 * Adding an endpoint: write a handler of type route_fn in its own file
 * (declare it below) and add one line to the table in routes.c.  Patterns
 * are Express-style: literal segments and ":name" segments that capture
 * one path segment (percent-decoded, read with route_param()).  Matching
 * follows Express's defaults, which the seed relied on: case-insensitive,
 * and a trailing slash is ignored.  A GET route also answers HEAD.  A path
 * no route matches, or one matched only for another method, gets the
 * seed's 404, as JSON: {"error":"Cannot <METHOD> <path>"}.
 */
#ifndef CCR_SERVE_H
#define CCR_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/config.h"
#include "http/server.h"
#include "serve/serverkey.h"
#include "webhook/webhook.h"

struct backends;
struct reconciler;

struct sysprompt;

/* The last `claude --version` check: one at a time, kept for a while. */
struct health_cli {
	pthread_mutex_t mu;
	int ok;
	int64_t checked_at;                /* clock_mono_ms(); 0: never */
};

#define SERVE_MAX_KEYS 64

/* The API keys (auth.c): set by serve_auth_init before the server starts,
 * read-only afterwards. */
struct serve_auth {
	uint8_t key_hash[SERVE_MAX_KEYS][32];  /* SHA-256 of each key */
	size_t n_keys;
	int loopback_hosts_only;               /* local mode without keys */
};

/* serve's settings, read once from the table (settings.h) by serve_main,
 * and reached through serve_ctx: no file of serve/ reads the settings
 * snapshot but serve.c's serve_settings_read(). */
struct serve_settings {
	const char *bind;               /* CCR_BIND, or the mode's default */
	unsigned long port, max_conn, per_client, backlog;
	unsigned long read_ms, idle_ms, write_ms, drain_ms;
	unsigned long cli_check_ms;     /* `claude --version` for /health?verbose=true */
	unsigned long reconcile_s, webhook_deadline_s;
	const char *workspace_root;
	const char *log_level;          /* LOG_LEVEL */
	const char *sandbox;            /* CCR_SANDBOX, checked at start-up, shown by /health */
	const char *claude_bin;         /* CLAUDE_BIN, or NULL: claude */
	const char *project;            /* GOOGLE_CLOUD_PROJECT, else PROJECT_ID (trace names) */
	const char *prompt_secret;      /* CCR_SYSTEM_PROMPT_SECRET */
	unsigned long prompt_refresh_s; /* CCR_SYSTEM_PROMPT_REFRESH_S */
	struct wh_policy callbacks;     /* CCR_ALLOW_PRIVATE_CALLBACKS, CCR_CALLBACK_ALLOW_HOSTS */
	struct backends_settings be;    /* GCS_LOGS_BUCKET, CCR_DATA_DIR, ... (backend/config.h) */
};

struct serve_ctx {
	struct hs_server *srv;
	struct serve_auth auth;            /* CCR_API_KEYS (auth.c) */
	struct {                           /* message ids only grow (inbox.c) */
		pthread_mutex_t mu;
		long long last;
	} msg_ids;
	struct backends *be;               /* storage, sealing, execution */
	struct serverkey key;              /* keyed hashes: idempotency, task owners (serverkey.h) */
	struct reconciler *rec;            /* finalises tasks whose job is gone */
	const struct serve_settings *set;  /* serve's settings, read once at start-up */
	struct topics *topics;             /* one reader per followed task (topic.h) */
	char log_project[128];             /* trace names in the access log (serve/log.h) */
	struct health_cli cli;             /* the cached `claude --version` check (health.c) */
	const struct sysprompt *prompt;    /* the default system prompt (sysprompt.h) */
};

#define ROUTE_MAX_PARAMS 4

struct route_match {
	unsigned n;
	const char *name[ROUTE_MAX_PARAMS];    /* without the ':' (points into the pattern) */
	size_t name_len[ROUTE_MAX_PARAMS];
	const char *value[ROUTE_MAX_PARAMS];   /* decoded, NUL-terminated, in store */
	char store[1024];
};

typedef int (*route_fn)(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp,
			const struct route_match *m);

struct route {
	const char *method;     /* "GET", "POST", ... */
	const char *pattern;    /* "/health", "/cancel/:taskId" */
	route_fn fn;
};

/* The hs_handler_fn of the service (app = struct serve_ctx *). */
int serve_dispatch(struct hs_req *req, struct hs_resp *resp, void *app);

/* Match path (raw, as sent) against pattern; 1 on a match (m filled). */
int route_match_path(const char *pattern, const char *path, struct route_match *m);

/* The decoded value of parameter name, or NULL. */
const char *route_param(const struct route_match *m, const char *name);

/* health.c: GET /, GET /health, GET /healthz (seed-spec §2.7). */
int health_root(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);
int health_check(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);

/* 1 when `claude_bin --version` (CLAUDE_BIN; NULL or "": `claude`) exits 0 within
 * timeout_ms, else 0 (spawn failure, non-zero exit, signal, timeout: the
 * process group is then killed). */
int health_cli_available(const char *claude_bin, unsigned timeout_ms);

/* auth.c: CCR_API_KEYS (comma-separated keys, or @FILE with one per
 * line) turns on `Authorization: Bearer` checks for the task endpoints.
 * serve_auth_init refuses a local-mode server on a non-loopback address
 * without keys. */
int serve_auth_init(struct serve_auth *a, const struct backends *be, const char *bind_addr);
/* 1 when req may use the task endpoints; otherwise answers and returns 0:
 * 401 without a valid key when keys are on; 403 in local mode without
 * keys when the Host header is not a loopback name (DNS rebinding). */
int serve_authorized(const struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp);

/* api.c: the task endpoints. */
int api_run(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);
int api_run_async(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);
int api_cancel(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);
int api_status(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);
int api_task(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);
int api_events(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);

/* inbox.c: messages, interrupt and end for a running task. */
int api_message(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);
int api_interrupt(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);
int api_end(struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp, const struct route_match *m);

#endif
