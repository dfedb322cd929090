/*
 * proxy_int.h: what the files of the token proxy share (prefix tp_).
 *
 *   proxy.c        start and stop: configuration, upstream pinning, the
 *                  credentials, the server core it runs on, the handler
 *   proxy_check.c  what is refused before anything goes upstream, and the
 *                  Anthropic-style error answers
 *   proxy_relay.c  forwarding with libcurl and relaying the answer
 *   meter.c        the usage meter (meter.h)
 */
#ifndef CCR_PROXY_INT_H
#define CCR_PROXY_INT_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "http/server.h"
#include "proxy/meter.h"
#include "proxy/proxy.h"
#include "util/buf.h"

#define TP_MAX_URL 16384
#define TP_MAX_HEADERS 128
#define TP_MAX_HEADER_BYTES (80u << 10)  /* http-parser's own limit */
#define TP_MAX_RESP_HEADERS 256
#define TP_IDLE_MS (300 * 1000)         /* keep-alive wait for the next request */
#define TP_STALL_MS (120 * 1000)        /* no progress inside one request */
#define TP_POLL_MS 100                  /* transfer loop: drain / hang-up checks */
#define TP_CONNECT_TIMEOUT_MS 30000L
#define TP_LOW_SPEED_TIME 600L          /* abort an upstream silent for 10 min */
#define TP_THREAD_STACK (1024 * 1024)
#define TP_DUMMY_PREFIX "sk-ant-ccr-proxy-"

/* One client connection's upstream handles (the core's connection data). */
struct tp_conn {
	CURL *curl;
	CURLM *multi;           /* drives curl; one per connection, kept */
};

struct tp_hdr {
	size_t name, val;       /* offsets into rhbuf (NUL-terminated) */
};

/* One request being handled: on the handler's stack. */
struct tp_req {
	struct tp_proxy *p;
	struct hs_req *hq;
	struct hs_resp *hr;
	struct tp_conn *conn;
	const char *url;        /* the request target */
	size_t plen;            /* the length of its path */
	int method;             /* enum http_method */
	long long clen;         /* request body length, -1 chunked */
	int has_body, head_req, is_messages;

	/* The response being relayed. */
	char errbuf[CURL_ERROR_SIZE];
	int status;
	char reason[64];
	struct buf rhbuf;
	struct tp_hdr rhdrs[TP_MAX_RESP_HEADERS];
	size_t nrhdrs;
	int resp_started;       /* bytes of the response went to the client */
	int chunked_end;        /* the response needs hs_stream_end */
	int client_gone;
	int bad_body;           /* the request body did not arrive whole */
	struct um_meter meter;
};

/* proxy.c */
void tp_log(struct tp_proxy *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tp_count(struct tp_proxy *p, uint64_t *field);
int tp_ieq(const char *a, const char *b);

/* proxy_check.c */
/* An Anthropic-style JSON error; the connection is closed afterwards. */
void tp_refuse(struct tp_req *r, int status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The body of such an error for status and msg into out (core hook). */
int tp_error_json(struct buf *out, const char *type, const char *msg);
/* Check a request whose header section is complete: 0 to forward it,
 * -1 when it was refused (answer sent). */
int tp_check(struct tp_req *r);
/* Hop-by-hop and proxy headers, plus those the message's own Connection
 * header names (the request's when request, else the response's). */
int tp_is_hop_header(const struct tp_req *r, const char *name, int request);

/* proxy_relay.c */
/* Forward a checked request and relay the answer; 0, or -1 when the
 * response was cut off (the connection must close without a terminator). */
int tp_forward(struct tp_req *r);
void tp_conn_free(void *conn);

#endif
