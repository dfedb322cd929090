/*
 * proxy.h: the token proxy of `ccr job` (prefix tp_).
 *
 * The Claude Code CLI never sees the real Anthropic credential.  ccr gives
 * it a per-task random dummy credential and ANTHROPIC_BASE_URL pointing at
 * this proxy, a handler on ccr's HTTP/1.1 server core (http/server.h) that
 * listens on 127.0.0.1 (ephemeral port).  For
 * every request that carries the dummy (in x-api-key, or as
 * "Authorization: Bearer <dummy>") the proxy forwards the request to the
 * pinned upstream with the real credential put in its place, and streams
 * the answer back unbuffered (Server-Sent Events included).
 *
 * What the proxy refuses (with an Anthropic-style JSON error body, before
 * anything reaches the upstream):
 *   400  a request target that is not origin-form ("/v1/messages?beta=true"):
 *        absolute-form ("http://evil.example/"), authority-form, "*";
 *        malformed HTTP; an Upgrade request
 *   401  a request without the dummy credential (no credential, or another one)
 *   405  CONNECT, and methods other than GET HEAD POST PUT PATCH DELETE OPTIONS
 *   414  a request target over 16 KiB;  431  too many or too large headers
 *   417  an Expect other than 100-continue;  505  HTTP major version != 1
 *   408  a request head not complete within 120 s, or a body stalled as long
 *   501  a Transfer-Encoding other than chunked
 *   503  more simultaneous connections than max_connections
 * So the real credential only ever goes to the upstream fixed at tp_start().
 *
 * What is forwarded: method, target and body unchanged (Content-Length and
 * chunked request bodies are streamed, never collected); all headers except
 * hop-by-hop ones (Connection and the names it lists, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade), every "Proxy-*" header, Host (set
 * to the upstream's), Expect, Accept-Encoding (so responses arrive
 * uncompressed and can be metered) and every credential the client sent
 * (x-api-key, Authorization); then the real credential is added:
 * "x-api-key: <key>" (TP_CRED_API_KEY) or "Authorization: Bearer <token>"
 * (TP_CRED_OAUTH).
 *
 * Responses: status and headers are relayed (hop-by-hop headers removed);
 * the body is re-framed for the client with Content-Length when the
 * upstream gave one, otherwise with chunked encoding (or, to an HTTP/1.0
 * client, by closing the connection), and every piece is written to the
 * client as soon as libcurl hands it over.  An upstream that cannot be
 * reached, or fails before any response byte was relayed, gives 502 Bad
 * Gateway.  A client that goes away aborts the upstream request (within
 * about 100 ms), which closes that upstream connection.
 *
 * Usage metering: for POST /v1/messages answered 200, the usage meter
 * (proxy/meter.h) reads the `usage` objects as they pass and prices them;
 * tp_usage() returns the running totals.
 *
 * Budget: each metered usage increase is priced with the table of
 * proxy/prices.h (by the response's model) into cost_usd.  With
 * cfg->budget_usd > 0, a POST /v1/messages... (count_tokens excepted)
 * arriving when cost_usd >= budget_usd is answered 400
 * invalid_request_error without reaching the upstream, so a task
 * overshoots its budget by at most the requests already in flight when
 * the budget was reached (one, for the CLI's sequential main loop).
 *
 * Upstream: cfg->upstream, else cfg->upstream_env (the caller's
 * $CCR_ANTHROPIC_UPSTREAM), else
 * TP_DEFAULT_UPSTREAM.  It must be https://host[:port][/path]; plain http
 * is accepted only to a loopback host (127.0.0.1, ::1, localhost: tests and
 * local fakes).  TLS >= 1.2 with the roots of ca_curl_apply(); redirects
 * are never followed.  For a loopback upstream proxy environment variables
 * are ignored; otherwise libcurl's usual https_proxy/no_proxy handling
 * applies (a CONNECT tunnel: TLS is still end-to-end with the pinned host).
 *
 * Secrets: the real credential is copied, registered with redact_add(),
 * never logged or put in an error, and wiped by tp_stop().  The dummy is
 * registered too (it unlocks the proxy while the task runs).
 *
 * Threads: the server core's (an event loop, and a worker thread per
 * client request while it runs, with its deadlines and drain); each client connection keeps
 * its own libcurl easy and multi handle as the core's per-connection data
 * (so an upstream connection is reused for the keep-alive requests of one
 * client connection); TLS sessions and DNS answers are shared.  tp_port(),
 * tp_dummy(), tp_cred_env() and tp_usage() may be called from any thread
 * while the proxy runs, but not concurrently with tp_stop().
 *
 * Call sequence:
 *     struct tp_proxy px;
 *     struct tp_config cfg = { TP_CRED_API_KEY, key, NULL, 0, log_fn, log_arg };
 *     if (tp_start(&px, &cfg, &e) != 0) ...;   // e.msg says why
 *     child env: ANTHROPIC_BASE_URL=http://127.0.0.1:<tp_port(&px)>
 *                <tp_cred_env(&px)>=<tp_dummy(&px)>
 *     ... run the CLI ...
 *     tp_usage(&px, &u);                        // any time; final after the CLI exits
 *     tp_stop(&px);
 *
 * tp_start() calls net_global_init() (idempotent): call that yourself
 * first if other threads are running.
 */
#ifndef CCR_PROXY_PROXY_H
#define CCR_PROXY_PROXY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define TP_DEFAULT_UPSTREAM "https://api.anthropic.com"
#define TP_UPSTREAM_ENV "CCR_ANTHROPIC_UPSTREAM"
/* "sk-ant-ccr-proxy-" + 64 hex digits, NUL included. */
#define TP_DUMMY_SIZE 96
#define TP_MAX_CONNECTIONS_DEFAULT 64

enum tp_cred_kind {
	TP_CRED_API_KEY = 1,    /* real credential sent as x-api-key */
	TP_CRED_OAUTH = 2,      /* real credential sent as Authorization: Bearer */
};

struct tp_config {
	enum tp_cred_kind kind;
	const char *credential;     /* the real API key or OAuth token; copied.
	                             * Surrounding whitespace is trimmed. */
	const char *upstream;       /* NULL: upstream_env or the default */
	const char *upstream_env;   /* $CCR_ANTHROPIC_UPSTREAM as the caller read it, or NULL */
	unsigned max_connections;   /* 0: TP_MAX_CONNECTIONS_DEFAULT */
	double budget_usd;          /* > 0: refuse Messages requests once the
	                             * metered cost reaches it (see Budget) */
	/* Optional: one line per refused request or upstream failure (already
	 * redacted, no trailing newline).  Called from proxy threads. */
	void (*log)(void *arg, const char *line);
	void *log_arg;
};

/* Running totals since tp_start(). */
struct tp_usage {
	uint64_t requests;                      /* Messages responses metered */
	uint64_t input_tokens;
	uint64_t output_tokens;
	uint64_t cache_creation_input_tokens;
	uint64_t cache_read_input_tokens;
	uint64_t forwarded;                     /* requests sent to the upstream */
	uint64_t refused;                       /* requests answered by the proxy itself */
	double cost_usd;                        /* the usage priced by proxy/prices.h */
	uint64_t budget_refused;                /* Messages requests refused: budget spent */
};

struct hs_server;

/* The proxy.  Owned by the caller; every field is private. */
struct tp_proxy {
	int started;
	enum tp_cred_kind kind;
	char dummy[TP_DUMMY_SIZE];
	char *secret;                   /* the real credential (wiped at stop) */
	size_t secret_len;
	char *base;                     /* upstream URL without the trailing '/' */
	char *up_scheme, *up_host, *up_port;
	int up_loopback;
	struct hs_server *srv;          /* the HTTP server core it is a handler of */
	int port;
	double budget_usd;              /* 0: no budget */
	pthread_mutex_t lock;           /* usage */
	struct tp_usage usage;
	void *share;                    /* CURLSH *: DNS and TLS sessions */
	pthread_mutex_t share_lock[8];
	void (*log)(void *arg, const char *line);
	void *log_arg;
};

/*
 * tp_start: validate cfg, make the dummy credential, listen on 127.0.0.1
 * (kernel-chosen port) and start serving.  Returns 0, or -1 with an
 * actionable message in e (which never contains the credential); p then
 * needs no tp_stop() (calling it is harmless).
 */
int tp_start(struct tp_proxy *p, const struct tp_config *cfg, struct err *e);

/* tp_port: the TCP port the proxy listens on (127.0.0.1). */
int tp_port(const struct tp_proxy *p);

/* tp_dummy: the dummy credential to give the CLI (NUL-terminated; valid
 * until tp_stop()). */
const char *tp_dummy(const struct tp_proxy *p);

/* tp_cred_env: the CLI environment variable for the dummy:
 * "ANTHROPIC_API_KEY" (TP_CRED_API_KEY) or "CLAUDE_CODE_OAUTH_TOKEN". */
const char *tp_cred_env(const struct tp_proxy *p);

/* tp_upstream: the pinned upstream base URL (no trailing '/'). */
const char *tp_upstream(const struct tp_proxy *p);

/* tp_usage: copy the running totals into out (thread-safe). */
void tp_usage(struct tp_proxy *p, struct tp_usage *out);

/*
 * tp_stop: stop accepting, abort requests in flight (a stream being relayed
 * is cut off: the core's drain with no grace period), wait for every
 * connection thread, close every socket, and wipe the real
 * credential and the dummy.  Usage totals stay readable with tp_usage().
 * Safe on a proxy that is not running (zeroed, failed to start, or
 * already stopped).
 */
void tp_stop(struct tp_proxy *p);

/* The selftest table, proxy_tests (proxy_test.c), is declared in
 * selftest/suites.h. */

#endif
