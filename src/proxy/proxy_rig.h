/*
 * proxy_rig.h: the test rig of the token proxy's selftests (prefixes fu_
 * for the fake upstream, cl_ for the libcurl client, rig_ for both with
 * a proxy in between; tpt_ for the rest).  proxy_rig.c describes the fake.
 */
#ifndef CCR_PROXY_RIG_H
#define CCR_PROXY_RIG_H

#include <pthread.h>
#include <stddef.h>

#include <curl/curl.h>

#include "proxy/proxy.h"
#include "util/buf.h"

#define REAL_KEY "sk-ant-api03-selftest-REAL-key-0123456789abcdef"
#define REAL_TOKEN "sk-ant-oat01-selftest-REAL-token-0123456789abcdef"
#define FU_MAX_CONN 32

struct fake {
	int fd, port;
	int wake[2];
	pthread_t th;
	pthread_mutex_t mu;
	int conns, requests;            /* accepted connections, complete requests */
	char last_method[16];
	char last_target[1024];
	struct buf last_headers;        /* "name: value\n", names lower-cased */
	struct buf last_body;
	int last_chunked;
	int peer_closed;                /* a peer hung up during an SSE pause */
	struct buf sent;                /* the body of the last SSE answer */
	int cfd[FU_MAX_CONN];
	pthread_t cth[FU_MAX_CONN];
	int ncth;
};

struct cl {
	/* request */
	char url[512];
	const char *method;             /* NULL: GET, or POST when body is set */
	struct curl_slist *hdrs;
	const char *body;
	size_t blen;
	int chunked;                    /* send body through a read callback, no length */
	const char *proxy;              /* use as an HTTP proxy (absolute-form / CONNECT) */
	int tunnel;
	int abort_after_first;
	/* result */
	CURLcode rc;
	long status, connect_code;
	struct buf out, head, first;
	double t0, t_first, t_last;
	int pieces;
	size_t rd_off;
};

/* A fake and a proxy in front of it. */
struct rig {
	struct fake f;
	struct tp_proxy p;
	int fake_ok, proxy_ok;
};

extern const char tpt_json_body[], tpt_sse_body[];

double tpt_now_ms(void);
int send_all(int fd, const void *d, size_t n);
/* A listening socket on 127.0.0.1 (kernel-chosen *port), or -1. */
int listen_loopback(int *port);
/* Complete requests the fake has seen. */
int fu_requests(struct fake *f);
/* Run the request described in c (with handle reuse if given, else a new one). */
void cl_run(struct cl *c, CURL *reuse);
void cl_free(struct cl *c);
void cl_header_add(struct cl *c, const char *fmt, const char *arg);
/* A fake and a proxy in front of it; 0, or 1 with why set. */
int rig_start(struct rig *r, enum tp_cred_kind kind, const char *upstream, char *why, size_t n);
void rig_stop(struct rig *r);
void via_proxy(struct cl *c, struct rig *r, const char *target);
/* No secret in the proxy's log lines so far: 0, or 1 with why set. */
int log_clean(char *why, size_t n);

/* The cases of proxy_more_test.c. */
int t_down(char *why, size_t n);
int t_gone(char *why, size_t n);
int t_stop(char *why, size_t n);
int t_framing(char *why, size_t n);
int t_malformed(char *why, size_t n);
int t_pipeline(char *why, size_t n);
int t_config(char *why, size_t n);
int t_overhead(char *why, size_t n);

#endif
