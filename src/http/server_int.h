/*
 * server_int.h: the private types and functions shared by the files of the
 * HTTP/1.1 server (prefix hs_).  Nothing outside src/http includes it.
 *
 *   server.c        the design, and the lifecycle (new, listen, start,
 *                   drain, free)
 *   server_accept.c accepting: the caps, busy answers, lingering refused
 *                   sockets (all on the loop thread)
 *   server_loop.c   the event loop: reading request heads, timers, the
 *                   drain, connections handed back by workers
 *   server_pool.c   the worker pool and what a worker does with a
 *                   connection (the handler, keep-alive, pipelining)
 *   server_park.c   parked streams: wake-ups, pumps, the output buffer
 *   server_conn.c   one connection: deadline I/O, reading a request, the
 *                   blocking path of a request, the lingering close
 *   server_parse.c  http-parser callbacks, limits, request accessors
 *   server_resp.c   responses: complete, streamed, and the helpers
 *
 * Ownership: a connection belongs to exactly one thread at a time, the
 * loop or one worker; it moves with a pool job (loop -> worker) or the
 * loop's inbox (worker -> loop).  Fields marked "loop" are only touched
 * by the loop thread.
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
#define LINGER_SLOTS 64           /* lingering 503 sockets the loop tracks */
#define LINGER_MS 1000            /* how long a refused socket lingers */
#define LINGER_MAX_BYTES (8u << 20) /* bytes dropped while lingering */
#define AWAIT_MS 500              /* how long a refused socket may take to send its request line */
#define ACCEPT_BATCH 64           /* accepts per wake-up before polling again */
#define MAX_QUERY_PARAMS 256
#define ARENA_KEEP (64u << 10)    /* larger arenas/bodies are freed between requests */
#define OBUF_SOFT (256u << 10)    /* a parked stream's output: hs_stream_writable() says 0 above */
#define OBUF_HARD (64u << 20)     /* past this the client is treated as gone */
#define LOOP_EVENTS 256           /* epoll events per wake-up */
#define TIMER_SLACK_MS 20         /* timers are checked at most this often */
#define INLINE_BATCH 16           /* pipelined inline requests per turn */
#define POOL_MIN 1                /* idle workers kept */
#define POOL_IDLE_MS 5000         /* an idle worker past the minimum exits after this */
#define POOL_BURST_IDLE_MS 1000   /* ... and sooner while more than POOL_SHORT_MAX run */
#define POOL_SHORT_MAX 4          /* threads started for short jobs (pumps, stream ends) */

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

/* epoll tags of the loop's own descriptors (u64; pointers are larger) */
#define TAG_DRAIN 1
#define TAG_WAKE 2
#define TAG_LISTEN 8              /* + the listener's index */

/* What an epoll event points at (the first member of each). */
enum { EV_CONN = 1, EV_LINGER };

/* Where a connection is (loop). */
enum { C_LOOP_READ = 1, C_LOOP_PARKED, C_LOOP_FLUSH, C_WORKER, C_DEAD };

/* What a worker does with a connection. */
enum { JOB_REQUEST = 1, JOB_PUMP, JOB_PARK_END, JOB_FINISH };

/* What a worker hands back to the loop. */
enum { HB_READ = 1, HB_PARKED };

/* Where a park is (loop). */
enum { P_LOOP = 1, P_WORKER, P_DEAD };

struct hs_park {
	struct hs_conn *c;
	struct hs_park_ops ops;
	void *ctx;
	unsigned tick_ms;
	uint64_t next_tick;        /* ms (loop) */
	int woken;                 /* atomic: on the wake stack */
	struct hs_park *wnext;     /* the wake stack */
	int state;                 /* P_* (loop; the worker that parks sets P_WORKER) */
	int rewake;                /* woken while on a worker (loop) */
	int result;                /* a pump's result on a worker */
	int why;                   /* HS_PARK_* given to done */
	struct hs_park *znext;     /* the loop's list of parks to free */
};

struct hs_conn {
	int kind;                  /* EV_CONN */
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
	/* the event loop */
	int looped;                /* served by the loop (parking possible) */
	int nonblock;              /* on the loop thread: writes never wait */
	struct buf obuf;           /* output not yet written (nonblock) */
	uint64_t write_deadline;   /* ms: obuf made no progress since (loop) */
	uint64_t idle_deadline;    /* ms: keep-alive wait ends */
	int where;                 /* C_* (loop) */
	int armed;                 /* the events epoll watches; -1: not in the set (loop) */
	struct hs_conn *lprev, *lnext;  /* the loop's list (loop) */
	struct hs_conn *znext;     /* the loop's list of conns to free (loop) */
	int job, rd, hb;           /* JOB_*, its read result, HB_* */
	struct hs_conn *qnext;     /* the pool's queue or the loop's inbox */
	struct hs_park *park;      /* a parked stream, or NULL */
};

struct linger_slot {
	int kind;                  /* EV_LINGER */
	int fd;                    /* -1: free */
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

struct hs_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* a job was queued, or stop */
	pthread_cond_t gone;       /* a worker exited */
	struct hs_conn *head, *tail;
	unsigned queued, nthreads, nidle, max;
	int starting;              /* a thread was created and has not run yet */
	int stop;
};

struct hs_server {
	struct hs_config cfg;
	int lfd[HS_MAX_LISTEN];
	int nlisten;
	int port;
	int drain_pipe[2];
	int draining;              /* atomic */
	int started;
	pthread_t loop;
	pthread_attr_t attr;
	int epfd, evfd;            /* the loop's epoll and its wake-up eventfd */
	int loop_stop;             /* atomic: the loop exits */
	int loop_drained;          /* the loop has seen the drain (loop) */
	pthread_mutex_t inbox_mu;
	struct hs_conn *inbox;     /* handed back by workers */
	struct hs_park *dead_parks;/* ended by workers, for the loop to free */
	struct hs_park *wakes;     /* atomic stack of woken parks */
	int kicked;                /* atomic: the eventfd was written */
	struct hs_conn *lconns;    /* loop-owned connections (loop) */
	struct hs_conn *zconns;    /* closed by the loop, freed after the turn */
	struct hs_park *zparks;    /* ended, freed after the next wake drain */
	uint64_t next_timer;       /* ms (loop) */
	struct hs_pool pool;
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* signalled when a connection ends */
	struct hs_conn *conns;
	unsigned nconn;
	struct linger_slot linger[LINGER_SLOTS];
	int nlinger;               /* slots in use */
	uint64_t accept_pause_until;    /* ms; after EMFILE and friends */
	int listen_paused;         /* the listeners are out of the epoll set (loop) */
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
/* Read what the client sent, without blocking, into rbuf while it has
 * room: 0, or -1 with c->gone set when the client closed or failed. */
int hs_conn_absorb(struct hs_conn *c);
void hs_conn_linger(struct hs_conn *c);
struct hs_conn *hs_conn_new(struct hs_server *s, int fd, const struct sockaddr_storage *ss);
void hs_conn_free(struct hs_conn *c);
/* Link c into the server's list of open connections / unlink it, closing
 * its socket (unless c->fd is -1) and calling the handler's free_fn. */
void hs_conn_register(struct hs_server *s, struct hs_conn *c);
void hs_conn_unregister(struct hs_server *s, struct hs_conn *c);
void hs_serve_connection(struct hs_conn *c);
/* Back to the state before a request (a kept-alive connection). */
void hs_req_reset(struct hs_conn *c);
/* Parse what rbuf holds: RD_OK (a request ready for its handler), RD_MORE,
 * RD_FAIL (answer the error). */
int hs_request_ready(struct hs_conn *c);
/* Answer a read request (rd RD_OK or RD_FAIL): run the handler, or send
 * the error.  ANS_KEEP (read the next request), ANS_DONE (close the
 * connection), ANS_PARKED (the handler parked its stream). */
int hs_conn_answer(struct hs_conn *c, int rd);
/* After the handler (or a parked stream) ended with rc: end the
 * response, log it; ANS_KEEP or ANS_DONE. */
int hs_conn_after(struct hs_conn *c, int rc);
/* Write obuf out, waiting as a blocking write does; 0 or -1 (gone). */
int hs_conn_flush(struct hs_conn *c);

enum { ANS_DONE, ANS_KEEP, ANS_PARKED };

/* server_accept.c (loop thread) */
void hs_accept_ready(struct hs_server *s, int lfd);
void hs_linger_event(struct hs_server *s, struct linger_slot *l, int readable);
/* Check the lingering sockets' deadlines; the next one (ms) or 0. */
uint64_t hs_linger_timers(struct hs_server *s, uint64_t now);
void hs_linger_close_all(struct hs_server *s);

/* server_loop.c */
void *hs_loop_main(void *arg);
/* A new connection (accepted): the loop reads its first request. */
void hs_loop_adopt(struct hs_server *s, struct hs_conn *c);
/* A worker gives c back (c->hb says how); any thread. */
void hs_loop_handback(struct hs_server *s, struct hs_conn *c);
/* Wake the loop thread (any thread). */
void hs_loop_kick(struct hs_server *s);
/* On the loop: give c to a worker for job; 0, or -1 (c closed). */
int hs_loop_dispatch(struct hs_server *s, struct hs_conn *c, int job);
/* On the loop: arm c's socket for what its state waits for. */
void hs_loop_arm(struct hs_server *s, struct hs_conn *c);
/* On the loop: close c (freed after this turn). */
void hs_loop_close(struct hs_server *s, struct hs_conn *c);

/* server_pool.c */
int hs_pool_init(struct hs_pool *p, unsigned max);
/* Queue c for a worker (c->job); short jobs start few threads.  0 or -1. */
int hs_pool_submit(struct hs_server *s, struct hs_conn *c);
/* Stop the pool; wait until deadline (ms) for its threads; 1 if some run. */
int hs_pool_stop(struct hs_server *s, uint64_t deadline);
void hs_pool_destroy(struct hs_pool *p);

/* server_park.c */
/* Loop: run p's pump now (flags: HS_PUMP_DRAINING). */
void hs_park_run(struct hs_server *s, struct hs_park *p, int flags);
/* Loop: take the woken parks and run them; free the ended ones. */
void hs_park_drain_wakes(struct hs_server *s);
/* Loop: end p for why (its done runs on a worker). */
void hs_park_end(struct hs_server *s, struct hs_park *p, int why);
/* Loop: c's socket is writable or readable. */
void hs_park_io(struct hs_server *s, struct hs_conn *c, uint32_t ev);
/* Worker: a JOB_PUMP or the end of a park (JOB_PARK_END; returns what
 * hs_conn_after returned). */
void hs_park_pump_job(struct hs_conn *c);
int hs_park_end_job(struct hs_conn *c);
/* Loop: write obuf without waiting; 0, or -1 when the client is gone. */
int hs_obuf_push(struct hs_conn *c);

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

enum { RD_OK, RD_CLOSE, RD_FAIL, RD_MORE };

#endif
