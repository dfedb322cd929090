/*
 * server_int.h: the private types and functions shared by the files of the
 * HTTP/1.1 server (prefix hs_).  Nothing outside src/http includes it.
 *
 *   server.c        the acceptor (caps, busy answers, lingering refused
 *                   sockets) and the lifecycle (new, listen, start, drain)
 *   server_conn.c   one connection: deadline I/O, reading a request, the
 *                   connection thread's loop, the lingering close
 *   server_parse.c  http-parser callbacks, limits, request accessors
 *   server_resp.c   responses: complete, streamed, and the helpers
 */
#ifndef CCR_HTTP_SERVER_INT_H
#define CCR_HTTP_SERVER_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http_parser.h"

#include "http/server.h"
#include "util/buf.h"

#define HS_MAX_LISTEN 4
#define RBUF_SIZE 8192            /* per-connection read buffer */
#define LINGER_SLOTS 64           /* lingering 503 sockets the acceptor tracks */
#define LINGER_MS 1000            /* how long a refused socket lingers */
#define LINGER_MAX_BYTES (8u << 20) /* bytes dropped while lingering */
#define AWAIT_MS 500              /* how long a refused socket may take to send its request line */
#define ACCEPT_BATCH 64           /* accepts per wake-up before polling again */
#define MAX_QUERY_PARAMS 256
#define ARENA_KEEP (64u << 10)    /* larger arenas/bodies are freed between requests */

/* AddressSanitizer's redzones make stack frames several times larger: a
 * body nested 1000 levels deep (cJSON's limit) overflows 256 KiB there,
 * while the release build has room to spare.  The sanitizer build
 * (scripts/build-asan) scales the default stack to keep the same margin. */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if __has_feature(address_sanitizer) || defined(__SANITIZE_ADDRESS__)
#define HS_STACK_SCALE 4u
#else
#define HS_STACK_SCALE 1u
#endif

/* ---- types ------------------------------------------------------------ */

struct hs_hdr {
	size_t name, name_len;     /* offsets into the arena */
	size_t value, value_len;
};

struct hs_qp {
	size_t name, value;        /* offsets of NUL-terminated decoded strings */
};

enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };

struct hs_conn;

struct hs_req {
	struct hs_conn *c;
	struct buf arena;          /* target, header fields, decoded path and query */
	struct buf body;
	struct buf qidx;           /* struct hs_qp[] */
	struct hs_hdr *hdrs;       /* max_headers entries */
	unsigned nhdrs;
	int last_cb;
	int url_done, headers_done, complete, have_method, prepared;
	size_t body_off;           /* stream_body: bytes of body already handed out */
	int body_failed;           /* stream_body: hs_req_body_read failed */
	int continue_due;          /* stream_body: "100 Continue" not sent yet */
	int head_paused;           /* stream_body: the parser stopped at the end
				    * of the head, its last LF still unparsed */
	size_t url_len, header_bytes, trailer_bytes;
	size_t raw_path, query, path;   /* arena offsets, valid once prepared */
	int fail_status;
	const char *fail_msg;
	int keep_alive;
	uint64_t t_start, t_headers;    /* microseconds, monotonic */
};

struct hs_resp {
	struct hs_conn *c;
	struct buf extra;          /* "Name: value\r\n" lines */
	int started;               /* 0, RESP_FULL, RESP_STREAM */
	int status;
	int close;
	int chunked, headless, ended;
	uint64_t body_bytes;
	char reason[64];           /* "" = the standard phrase */
	int has_date;              /* the handler set Date */
};

#define RESP_FULL 1
#define RESP_STREAM 2
#define RESP_TAKEN 3           /* the handler took the socket over */

struct hs_conn {
	struct hs_server *srv;
	struct hs_conn *prev, *next;
	int fd;
	int gone;                  /* the client is known to be gone */
	char remote[INET6_ADDRSTRLEN];
	int remote_port;
	http_parser parser;
	char *rbuf;
	size_t rlen, rpos;         /* bytes in rbuf, bytes parsed */
	struct hs_req req;
	struct hs_resp resp;
	void *data;                /* the handler's, see hs_set_conn_data */
	void (*data_free)(void *data);
};

struct linger_slot {
	int fd;
	uint64_t deadline;         /* ms */
	size_t dropped;
	/* A refused socket first waits (AWAIT_MS) for its request line, to
	 * tell a cap_exempt request from the rest; then it is answered. */
	int awaiting;
	char head[40];
	size_t hlen;
	const char *why;           /* the 503's reason (a string constant) */
	struct sockaddr_storage ss;
};

struct hs_server {
	struct hs_config cfg;
	int lfd[HS_MAX_LISTEN];
	int nlisten;
	int port;
	int drain_pipe[2];
	int draining;              /* atomic */
	int started;
	pthread_t acceptor;
	pthread_attr_t attr;
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* signalled when a connection ends */
	struct hs_conn *conns;
	unsigned nconn;
	struct linger_slot linger[LINGER_SLOTS];
	int nlinger;
	uint64_t accept_pause_until;    /* ms; after EMFILE and friends */
};


/* What hs_wait_io saw. */
enum { W_READY, W_TIMEOUT, W_DRAIN, W_ERR };

/* server_conn.c */
void hs_set_remote(struct hs_conn *c, const struct sockaddr_storage *ss);
/* Wait until c's socket has `events`, deadline (ms, 0 = none) passes, or
 * (when watch_drain) the server starts draining; W_*. */
int hs_wait_io(struct hs_conn *c, short events, uint64_t deadline, int watch_drain);
/* Write all of iov / p; -1 (and c->gone) when the client is gone. */
int hs_conn_writev(struct hs_conn *c, struct iovec *iov, int n);
int hs_conn_write(struct hs_conn *c, const void *p, size_t n);
void hs_conn_linger(struct hs_conn *c);
struct hs_conn *hs_conn_new(struct hs_server *s, int fd, const struct sockaddr_storage *ss);
void hs_conn_free(struct hs_conn *c);
/* Link c into the server's list of open connections / unlink it, closing
 * its socket (unless c->fd is -1) and calling the handler's free_fn. */
void hs_conn_register(struct hs_server *s, struct hs_conn *c);
void hs_conn_unregister(struct hs_server *s, struct hs_conn *c);
void hs_serve_connection(struct hs_conn *c);
void *hs_conn_main(void *arg);

/* server_parse.c */
extern const http_parser_settings hs_parser_settings;
const char *hs_arena_str(const struct hs_req *r, size_t off);
/* Record the first failure of a request (status, message); returns -1. */
int hs_fail(struct hs_req *q, int status, const char *msg);
/* Classify a parser error into q's failure; RD_FAIL or RD_CLOSE. */
int hs_parser_failure(struct hs_conn *c);
/* Decode the target of a complete request into path, query, params. */
int hs_prepare_request(struct hs_req *q);

/* server_resp.c */
int hs_conn_closing(const struct hs_conn *c);
/* The server's own error answer (cfg.error_body's format, or JSON). */
int hs_send_error(struct hs_conn *c, int status, const char *msg);
/* That body and type for status and msg into out; 0 or -1. */
int hs_error_body(const struct hs_server *s, int status, const char *msg, struct buf *out, const char **ctype);

enum { RD_OK, RD_CLOSE, RD_FAIL };

#endif
