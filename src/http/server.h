/*
 * server.h: ccr's HTTP/1.1 server (prefix hs_), the transport under
 * `ccr serve`.
 *
 * One application handler sees every request, with its body already read
 * and checked against the limits; it answers with one complete response
 * (hs_send) or a chunked stream (hs_stream_*, for Server-Sent Events).
 * Requests are parsed by http-parser (strict mode); the server enforces the
 * limits below itself and answers violations with a JSON {"error":"..."}
 * body without calling the handler:
 *
 *   400  malformed request line, headers, chunked framing or URL; both
 *        Content-Length and Transfer-Encoding; HTTP/1.1 without Host
 *   408  request line, headers or body not complete within the read timeout
 *   413  body larger than max_body (Content-Length checked before reading)
 *   414  request target longer than max_url
 *   417  an Expect other than 100-continue
 *   431  header section larger than max_header_bytes, or too many fields
 *   501  a Transfer-Encoding other than "chunked"
 *   503  more than max_connections connections, or more than max_per_client
 *        from one client address (answered by the event loop; a request
 *        the cap_exempt hook accepts gets its fixed 200 instead)
 *   505  an HTTP major version other than 1
 *
 * After such an error the connection is closed (Connection: close), with
 * a short lingering read so the client sees the answer rather than a reset.
 *
 * Threads: one event-loop thread owns the listeners, every idle
 * keep-alive connection, every connection still reading its request, and
 * every parked stream; a pool of worker threads runs the handler (see
 * server.c for why), so the handler may block (storage calls, child
 * processes, upstream requests, tunnels).  The handler, the access-log
 * hook and the drain hook are called from several threads at once and
 * must be thread-safe.  A struct hs_req and its struct hs_resp belong to
 * the thread running the handler and are valid only until the handler
 * returns (or, for a parked stream, until its done callback); every
 * string they hand out lives as long.
 *
 * Lifecycle: hs_new, hs_listen (once per address), hs_start; later
 * hs_shutdown (graceful drain with a deadline), then hs_free.
 *
 * Users: `ccr serve` (buffered bodies), the token proxy (proxy/proxy.h:
 * stream_body, its own error format) and the egress proxy (egress/egress.h:
 * stream_body, hs_req_take_socket for its tunnels).
 *
 * Streams that cost no thread: a streaming handler (serve's SSE) may
 * park its stream (hs_stream_park) and return; the loop then owns the
 * connection and calls the handler's pump when woken (hs_stream_wake,
 * from any thread), on a timer tick, and when the server drains.  The
 * other handlers (the proxies) are unchanged: they block on a worker.
 */
#ifndef CCR_HTTP_SERVER_H
#define CCR_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

struct hs_server;
struct hs_req;
struct hs_resp;

/* The Content-Type the server uses for JSON, its own errors included. */
#define HS_JSON "application/json; charset=utf-8"

/* Returns 0.  A non-zero return, or returning without having answered,
 * makes the server answer 500 (when nothing was sent yet) and close the
 * connection. */
typedef int (*hs_handler_fn)(struct hs_req *req, struct hs_resp *resp, void *app);

/* One completed request (or a request the server refused), for the
 * access-log hook.  Strings are never NULL ("" when unknown). */
struct hs_access {
	const char *method;        /* "GET"; "" when the request line was not parsed */
	const char *target;        /* raw request target ("/health?verbose=true") */
	const char *path;          /* percent-decoded path, "" when unknown */
	int status;
	int http_minor;            /* 0 or 1 (HTTP/1.x) */
	uint64_t body_bytes;       /* response body bytes written, framing excluded */
	uint64_t latency_us;       /* first request byte to response complete */
	const char *user_agent;
	const char *remote_addr;   /* "127.0.0.1", "::1" (IPv4-mapped shown as IPv4) */
	const char *trace;         /* X-Cloud-Trace-Context */
};

struct hs_config {
	size_t max_body;               /* 2 MiB */
	size_t max_url;                /* 8 KiB: request target bytes */
	size_t max_header_bytes;       /* 32 KiB: request line + header section */
	unsigned max_headers;          /* 100 header fields */
	unsigned max_connections;      /* 1024 open connections */
	unsigned max_per_client;       /* 0: 3/4 of max_connections, from one client address */
	unsigned header_timeout_ms;    /* 10 s: first request byte -> end of headers */
	unsigned body_timeout_ms;      /* 30 s: end of headers -> end of body */
	unsigned idle_timeout_ms;      /* 65 s: keep-alive wait for the next request */
	unsigned write_timeout_ms;     /* 30 s without write progress = client gone */
	size_t stack_size;             /* 256 KiB per worker thread */

	hs_handler_fn handler;         /* required */
	void *app;                     /* passed to every hook */
	/* Called once per answered request, from the thread that answered
	 * it (a worker, or the loop's for inline answers, parked streams'
	 * ends and 503s past the connection cap).  May be NULL. */
	void (*on_access)(const struct hs_access *a, void *app);
	/* Called once by hs_shutdown, after accepting stopped and before
	 * waiting: tell long-lived streams to send a last event and end.
	 * May be NULL. */
	void (*on_drain)(void *app);
	/* The application's exemption from the caps (serve's plain health
	 * check): a socket refused past a cap is kept, without a thread,
	 * until its request line starts (at most 500 ms); this hook sees its
	 * first bytes (up to 39) and returns 1 to have the acceptor answer 200
	 * with *ctype and *body (static strings) instead of the 503, 0 for the
	 * 503, or -1 while too few bytes arrived to tell (hs_prefix_match
	 * does this for a list of prefixes).  Called from the loop's
	 * thread: it must not block.  May be NULL. */
	int (*cap_exempt)(const char *head, size_t n, const char **ctype, const char **body, void *app);
	/* Run this request's handler on the loop thread, with no hand-off
	 * to a worker (a fixed answer such as a plain health check): return
	 * 1 for that.  Such a handler must not block and must not park; its
	 * writes never wait (what the socket does not take is kept and
	 * written when it can).  Called on the loop thread with the whole
	 * request read (buffered mode only).  May be NULL. */
	int (*is_inline)(const struct hs_req *req, void *app);

	/* ---- for a proxy handler (the token proxy); serve leaves them 0 --- */
	/* Stream request bodies: the handler is called as soon as the header
	 * section is complete, and reads the body with hs_req_body_read (at
	 * most one read buffer of it is held; max_body does not apply; path
	 * and query accessors stay "": the raw target is what a proxy
	 * forwards).  A response started before the body was read whole
	 * closes the connection (after a lingering read). */
	int stream_body;
	int allow_connect;             /* hand CONNECT to the handler instead of answering 400 */
	int host_optional;             /* do not require Host on HTTP/1.1 */
	/* Formats the server's own error answers (the statuses listed at the
	 * top, the 503 past the caps included) instead of {"error":msg} as
	 * HS_JSON: the body into out (empty on entry), its Content-Type into
	 * *ctype.  Returns 0, or -1 to fall back to the default.  Called from
	 * a worker or the loop thread.  May be NULL. */
	int (*error_body)(int status, const char *msg, struct buf *out, const char **ctype, void *app);
};

/* Fill c with the defaults above (handler and hooks NULL). */
void hs_config_defaults(struct hs_config *c);

/* A server with a copy of cfg (not listening yet).  NULL on failure. */
struct hs_server *hs_new(const struct hs_config *cfg, struct err *e);

/* Listen on host (an IPv4 or IPv6 literal such as "0.0.0.0", "::",
 * "127.0.0.1", "::1", or a name: its first address is used) and port;
 * port 0 picks a free port.  "::" also accepts IPv4 (dual stack).  May be
 * called up to 4 times before hs_start; an empty or NULL host means
 * "0.0.0.0". */
int hs_listen(struct hs_server *s, const char *host, int port, struct err *e);

/* The port the first listener is bound to (after hs_listen), or -1. */
int hs_port(const struct hs_server *s);

/* Start accepting on a background thread; returns at once. */
int hs_start(struct hs_server *s, struct err *e);

/* Serve one already-connected stream socket fd on the calling thread,
 * exactly as a connection accepted by hs_start would be served (the same
 * limits, timeouts and handler), until the client closes it or the
 * server closes it; fd is then closed.  No hs_listen or hs_start is
 * needed.  Returns 0, or -1 (fd left open) when out of memory or fd
 * cannot be made non-blocking.  Used by the HTTP parser's fuzz target. */
int hs_serve_fd(struct hs_server *s, int fd);

/* Graceful drain: stop accepting (listeners closed), close idle keep-alive
 * connections, call on_drain, let in-flight requests finish (their
 * responses carry Connection: close; hs_stream_wait_closed returns
 * HS_WAIT_DRAINING), and wait until every connection is closed or
 * deadline_ms passed.  Past the deadline the remaining sockets are shut
 * down (their reads and writes fail at once) and their threads get up to
 * one more second to finish.  Returns 0 when every connection closed,
 * 1 when some were forced, 2 when some threads are still running (then
 * do not call hs_free; exit the process instead).  Safe to call once,
 * from any thread but a connection's. */
int hs_shutdown(struct hs_server *s, unsigned deadline_ms);

/* Free a server that was never started, or whose hs_shutdown returned 0
 * or 1. */
void hs_free(struct hs_server *s);

/* 1 once hs_shutdown started. */
int hs_draining(const struct hs_server *s);

/* The number of open connections right now. */
unsigned hs_connections(const struct hs_server *s);

/* ---- the request ----------------------------------------------------- */

const char *hs_req_method(const struct hs_req *r);      /* "GET", "POST", ... */
const char *hs_req_target(const struct hs_req *r);      /* raw request target */
const char *hs_req_raw_path(const struct hs_req *r);    /* path as sent, no query */
const char *hs_req_path(const struct hs_req *r);        /* percent-decoded path */
const char *hs_req_query_string(const struct hs_req *r);/* raw, without '?'; "" if none */
int hs_req_http_minor(const struct hs_req *r);          /* 0 or 1 */

/* The percent-decoded value ('+' is a space) of the first query
 * parameter called name (compared after decoding), or NULL.  "?a" gives
 * a = "".  At most 256 parameters are looked at. */
const char *hs_req_query(const struct hs_req *r, const char *name);

/* How many query parameters are called name ("?a=1&a=2" has two; Express
 * would make that an array, which never equals a string). */
size_t hs_req_query_count(const struct hs_req *r, const char *name);

/* The first header called name (case-insensitive), value without
 * surrounding whitespace, or NULL. */
const char *hs_req_header(const struct hs_req *r, const char *name);

/* Header fields in the order received: 0 .. hs_req_header_count()-1. */
size_t hs_req_header_count(const struct hs_req *r);
int hs_req_header_at(const struct hs_req *r, size_t i, const char **name, const char **value);

/* The request body (NUL-terminated for convenience; may hold NULs) and
 * its length.  Never NULL. */
const char *hs_req_body(const struct hs_req *r, size_t *len);

/* stream_body mode: read up to cap bytes of the request body (de-chunked)
 * into dst, receiving from the client as needed (at most
 * body_timeout_ms per wait).  The first call answers "Expect:
 * 100-continue".  Returns the byte count, 0 at the end of the body, or -1
 * when the client is gone, too slow, or sent a malformed body (then
 * hs_req_error says which, and the connection is closed after the
 * response). */
long hs_req_body_read(struct hs_req *r, void *dst, size_t cap);

/* stream_body mode: take the connection over after the head (a CONNECT
 * tunnel).  The bytes the client sent after the head are appended to
 * pending; the socket (non-blocking) is the handler's to read and write
 * until it returns, and the server's to close.  No response is sent, the
 * access log shows 200.  Returns the socket, or -1 (a response was
 * started, out of memory, the client is gone). */
int hs_req_take_socket(struct hs_req *r, struct buf *pending);

/* 1 once the whole request (body included) has been read. */
int hs_req_complete(const struct hs_req *r);

/* Why hs_req_body_read failed: the status the server would answer (400,
 * 408, 500; 0 when the client is simply gone) and a message for a user. */
int hs_req_error(const struct hs_req *r, const char **msg);

/* The HTTP method as http-parser's enum http_method (HTTP_GET, ...). */
int hs_req_method_id(const struct hs_req *r);

/* Per-connection state of a handler (a proxy's upstream handle, kept for
 * the client's keep-alive requests): hs_conn_data returns what the last
 * hs_set_conn_data stored (NULL at first); free_fn(data) is called once
 * when the connection ends, on a worker thread, before the
 * server counts it closed (so after hs_shutdown every free_fn ran). */
void *hs_conn_data(const struct hs_req *r);
void hs_set_conn_data(struct hs_req *r, void *data, void (*free_fn)(void *data));

const char *hs_req_remote_addr(const struct hs_req *r);
int hs_req_remote_port(const struct hs_req *r);

/* 1 when the client has closed or reset the connection (checked now,
 * without blocking), else 0. */
int hs_req_client_gone(struct hs_req *r);

struct hs_server *hs_req_server(const struct hs_req *r);

/* ---- the response ---------------------------------------------------- */

/* Add a header to the response (before hs_send / hs_stream_begin).
 * Names must be tokens and values must not hold CR, LF or NUL;
 * Content-Length, Transfer-Encoding and Connection are the server's (a
 * Date set here replaces the server's own).
 * Content-Type belongs in hs_send's argument (or, for a stream, in the
 * hs_stream_begin list), not here, or it would be sent twice.
 * Returns 0, or -1 (invalid, too late, out of memory). */
int hs_resp_header(struct hs_resp *r, const char *name, const char *value);

/* The reason phrase of the status line (a proxy relays its upstream's);
 * default: the standard one.  Printable ASCII, at most 63 bytes, or the
 * default is kept.  Before the response is started. */
void hs_resp_reason(struct hs_resp *r, const char *reason);

/* Close the connection after this response (sends Connection: close). */
void hs_resp_close(struct hs_resp *r);

/* Send a complete response.  content_type may be NULL (no Content-Type).
 * For HEAD requests the body is not sent (its Content-Length is).
 * Returns 0, or -1 when the client is gone or a response was already
 * started. */
int hs_send(struct hs_resp *r, int status, const char *content_type, const void *body, size_t len);

/* hs_send of {"error":<message as a JSON string>} as HS_JSON. */
int hs_send_json_error(struct hs_resp *r, int status, const char *message);

/* Start a streamed response and flush its headers at once.  headers is
 * NULL or a NULL-terminated list of name, value pairs, e.g.
 *   { "Content-Type", "text/event-stream", "Cache-Control", "no-cache", NULL }
 * (added to those set with hs_resp_header).  HTTP/1.1 responses use
 * chunked transfer encoding; HTTP/1.0 ones end by closing.  Returns 0 or
 * -1 (client gone, already started). */
int hs_stream_begin(struct hs_resp *r, int status, const char *const *headers);

/* hs_stream_begin with a known body length: length >= 0 is sent as
 * Content-Length and the body (exactly that long, written with
 * hs_stream_write) is not chunked; length < 0 is hs_stream_begin.  For
 * HEAD the Content-Length is kept and no body sent; 1xx, 204 and 304
 * get neither framing header nor body. */
int hs_stream_begin_length(struct hs_resp *r, int status, const char *const *headers, int64_t length);

/* Write len bytes (one chunk) at once.  Returns 0, or -1 once the client
 * is gone (write failed, reset, or no progress for write_timeout_ms);
 * afterwards every call returns -1.  len 0 does nothing. */
int hs_stream_write(struct hs_resp *r, const void *data, size_t len);

/* End the stream (the zero-length chunk).  Returns 0 or -1 (gone). */
int hs_stream_end(struct hs_resp *r);

/* What hs_stream_wait_closed saw. */
#define HS_WAIT_TIMEOUT  0  /* ms elapsed; the client is still there */
#define HS_WAIT_GONE     1  /* the client closed or reset the connection */
#define HS_WAIT_DRAINING 2  /* the server is draining: send a last event and end */

/* Sleep up to ms milliseconds, returning early when the client goes away
 * or the server starts draining (returns at once while it is draining).
 * Meant for the loop of a streaming handler: wait for "new data, client
 * gone, or heartbeat due" in slices of a few milliseconds to seconds. */
int hs_stream_wait_closed(struct hs_resp *r, unsigned ms);

/* 1 once a response (complete or streamed) was started. */
int hs_resp_started(const struct hs_resp *r);

/* ---- parked streams -------------------------------------------------- */

/* A streaming handler parks its started stream and returns; the stream
 * stays open, owned by the event loop, costing no thread:
 *
 *   pump(ctx, r, flags) writes what is new with hs_stream_write and
 *       returns HS_PUMP_CONTINUE (keep the stream parked), HS_PUMP_END
 *       (end the stream: the terminating chunk follows, then the
 *       connection is kept alive or closed as for any response) or
 *       HS_PUMP_WORKER (run me once more on a worker: I need to block,
 *       e.g. to read history from storage).  It runs on the loop thread
 *       (flags without HS_PUMP_ON_WORKER), where it must not block: its
 *       writes never wait, what the socket does not take is buffered and
 *       written as the client reads; it should stop writing while
 *       hs_stream_writable() is 0 (it is run again once the buffer has
 *       drained).  On a worker (HS_PUMP_ON_WORKER) it may block and its
 *       writes wait as a handler's do.  It runs: once as soon as the loop
 *       has the stream, after each hs_stream_wake, every tick_ms (0: no
 *       tick) without a run, when the buffer drained, and once with
 *       HS_PUMP_DRAINING when the server drains (write a last event and
 *       return HS_PUMP_END).  Never two at once for one stream.
 *   done(ctx, why) is called exactly once, on a worker thread (it may
 *       block), when the stream ended: HS_PARK_ENDED (pump said END),
 *       HS_PARK_DRAINED (pump ended it during a drain), HS_PARK_GONE (the
 *       client closed, reset, stopped reading for write_timeout_ms, or
 *       let the buffer grow past its hard bound).  After done returns,
 *       neither pump nor done runs again and the struct hs_park is gone:
 *       stop calling hs_stream_wake before returning from done.
 *
 * hs_stream_park returns the handle for hs_stream_wake, or NULL (not
 * a started stream, out of memory, or a connection not served by the
 * loop: hs_serve_fd's) when the handler must go on by itself.  The
 * handler must return 0 soon after parking and not touch r again; the
 * access log is written when the stream ends. */
struct hs_park;
struct hs_park_ops {
	int (*pump)(void *ctx, struct hs_resp *r, int flags);
	void (*done)(void *ctx, int why);
};
#define HS_PUMP_CONTINUE 0
#define HS_PUMP_END      1
#define HS_PUMP_WORKER   2
#define HS_PUMP_ON_WORKER 1   /* flags */
#define HS_PUMP_DRAINING  2
#define HS_PARK_ENDED   0
#define HS_PARK_DRAINED 1
#define HS_PARK_GONE    2

struct hs_park *hs_stream_park(struct hs_resp *r, const struct hs_park_ops *ops, void *ctx, unsigned tick_ms);

/* Run p's pump soon (any thread, never blocks; many wakes before the
 * pump runs make one run). */
void hs_stream_wake(struct hs_park *p);

/* 1 while the stream's output buffer is below its bound (always 1 on a
 * worker, where writes wait). */
int hs_stream_writable(const struct hs_resp *r);

/* ---- helpers, exported for the selftests and the routing layer ------- */

/* Percent-decode n bytes of src into dst (room for n + 1 bytes), '+' as a
 * space when plus_space.  Invalid escapes are kept as they are.  Returns
 * the decoded length (dst NUL-terminated). */
size_t hs_pct_decode(char *dst, const char *src, size_t n, int plus_space);

/* Does head[0..n) start with one of the NULL-terminated prefixes?  1 yes,
 * 0 no, -1 when n bytes are too few to tell (a cap_exempt helper). */
int hs_prefix_match(const char *head, size_t n, const char *const *prefixes);

/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") for t (seconds since
 * the epoch) into dst[30]. */
void hs_http_date(char dst[30], int64_t t);

/* The selftest table, http_tests (server_test.c), is declared in
 * selftest/suites.h. */

#endif
