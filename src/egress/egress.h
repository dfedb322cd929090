/*
 * egress.h: the egress proxy of `ccr job` (prefix eg_).
 *
 * In the sandbox the agent's network namespace holds only loopback: the
 * only way out is this HTTP proxy, which listens on 127.0.0.1 (ephemeral
 * port) next to the token proxy and is relayed into the namespace on the
 * same port.  The agent finds it through HTTP_PROXY, HTTPS_PROXY (and
 * their lower-case forms), ALL_PROXY, with NO_PROXY naming loopback so the
 * token proxy is reached directly (job/agentenv.h); its ssh uses
 * `ccr connect` as ProxyCommand (tools/connect_cmd.c).
 *
 * What it speaks:
 *   CONNECT host:port HTTP/1.x    a TCP tunnel to any port (443, 22, ...);
 *                                 "200 Connection established", then bytes
 *                                 both ways (TLS stays end to end)
 *   GET http://host[:port]/path   absolute-form plain HTTP, any method: sent
 *                                 to the origin in origin-form with Host set
 *                                 from the URL, hop-by-hop and Proxy-*
 *                                 headers removed and "Connection: close";
 *                                 the answer's head gets "Connection: close"
 *                                 too.  One request per client connection.
 * Bodies stream both ways through 64 KiB windows; nothing is collected.
 * Anything else is a 400 (origin-form requests, https:// URLs, which take
 * CONNECT, credentials in the URL, malformed heads); heads over 32 KiB or
 * 100 lines are 431, request targets over 8 KiB 414, a version other than
 * HTTP/1.x 505.
 *
 * Who may be reached is egress/egpolicy.h's decision: the metadata server by
 * name is refused before any DNS query; then the allow-lists
 * (CCR_EGRESS_ALLOW, the task's allowedHosts); then the proxy resolves the
 * name itself (getaddrinfo) and refuses the destination when ANY address is
 * not public (net/addrclass.h) unless CCR_EGRESS_ALLOW_PRIVATE admits it;
 * then it connects to exactly the addresses it checked, in order (no
 * second resolution, so no DNS-rebinding window).  A refusal is a 403 with
 * a one-line text/plain reason, the connection is closed, and one line
 * (method, host, port, reason) goes to cfg->log.  A name that does not
 * resolve is a 502, a destination that does not answer 502 (504 after the
 * connect timeout).
 *
 * Limits: at most max_tunnels connections at once (503 beyond, logged);
 * a head must arrive within 30 s; a connection on which nothing moved
 * either way for idle_ms is closed.
 *
 * Threads: the HTTP server core's (http/server.h): an event loop, and a
 * worker thread per connection while its handler runs (a tunnel).  eg_stop() closes the listener, cuts every
 * connection and waits (up to 1 s, a name lookup cannot be interrupted)
 * for the threads; a thread still resolving
 * after that finishes on its own, with its own reference to the shared
 * state, and never touches the struct eg_proxy again.
 *
 * Call sequence:
 *     struct eg_proxy eg;
 *     struct eg_config cfg = { settings_str(SET_CCR_EGRESS_ALLOW),
 *                              settings_str(SET_CCR_EGRESS_ALLOW_PRIVATE), allowedHosts, ... };
 *     if (eg_start(&eg, &cfg, &e) != 0) ...;   // e.msg: a bad list, no socket
 *     agent env: HTTPS_PROXY=http://127.0.0.1:<eg_port(&eg)> ...
 *     ... run the agent ...
 *     eg_stop(&eg);
 */
#ifndef CCR_JOB_EGRESS_H
#define CCR_JOB_EGRESS_H

#include <pthread.h>

#include <cJSON.h>

#include "util/err.h"

#define EG_MAX_TUNNELS_DEFAULT 256
#define EG_IDLE_MS_DEFAULT 600000L
#define EG_CONNECT_MS_DEFAULT 10000L

struct eg_config {
	const char *allow;            /* CCR_EGRESS_ALLOW's value, or NULL (any public host) */
	const char *allow_private;    /* CCR_EGRESS_ALLOW_PRIVATE's value, or NULL */
	const cJSON *allowed_hosts;   /* the payload's allowedHosts (array), or NULL */
	unsigned max_tunnels;         /* 0: EG_MAX_TUNNELS_DEFAULT */
	long idle_ms;                 /* 0: EG_IDLE_MS_DEFAULT */
	long connect_ms;              /* 0: EG_CONNECT_MS_DEFAULT */
	/* Optional: one line per refused connection (no trailing newline; the
	 * caller redacts).  Called from proxy threads. */
	void (*log)(void *arg, const char *line);
	void *log_arg;
};

struct eg_shared;
struct hs_server;

/* The proxy.  Owned by the caller; every field is private. */
struct eg_proxy {
	int started;
	int port;
	struct hs_server *srv;        /* the HTTP server core it is a handler of */
	struct eg_shared *sh;
};

/* eg_start: parse the lists (an invalid entry is an error naming it),
 * listen on 127.0.0.1 and start serving.  0, or -1 with e set (p then
 * needs no eg_stop(), which is harmless anyway). */
int eg_start(struct eg_proxy *p, const struct eg_config *cfg, struct err *e);

/* eg_port: the TCP port on 127.0.0.1 (0 when not started). */
int eg_port(const struct eg_proxy *p);

/* eg_stop: stop accepting, cut every connection, wait for the threads.
 * Safe on a zeroed, failed or stopped proxy. */
void eg_stop(struct eg_proxy *p);

/* The unit-test table, egress_tests (egress_test.c), is declared in
 * selftest/suites.h. */

#endif
