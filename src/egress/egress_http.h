/*
 * egress_http.h: the HTTP of the egress proxy (prefix egh_), apart from
 * its sockets so that it can be tested and fuzzed alone (egress/egress.h
 * describes what the proxy accepts).
 *
 * egh_parse() reads a request head in place: the request line (a token
 * method, the target, HTTP/1.x), the target (CONNECT host:port, or an
 * absolute http:// URL without credentials), the destination host in
 * canonical form (egress/egpolicy.h), and, for plain HTTP, checks the header
 * lines (Name: value, no obsolete folding, at most EGH_HEAD_LINES).  It
 * returns 0, or the HTTP status to answer with the reason in r->why.
 * egh_upstream_head() writes the origin-form request for the origin;
 * egh_rewrite_response() gives a response head "Connection: close".
 */
#ifndef CCR_EGRESS_HTTP_H
#define CCR_EGRESS_HTTP_H

#include <stddef.h>

#include "egress/egpolicy.h"
#include "util/buf.h"

#define EGH_HEAD_LINES 100
#define EGH_TARGET_MAX 8192

struct egh_request {
	char method[24];
	const char *target;             /* inside the head, NUL-terminated */
	size_t target_len;
	char version[16];
	const char *headers;            /* the first header line, inside the head */
	int is_connect;
	char authority[EGP_HOST_MAX + 16];   /* as written: the Host sent on */
	char host_raw[EGP_HOST_MAX + 8];
	char host[EGP_HOST_MAX];        /* canonical */
	int is_ip;
	int port;
	const char *path;               /* absolute-form: from the '/', or NULL for "/" */
	char why[600];
};

/* egh_find_blank: the "\r\n\r\n" ending a head within p[0..n), or NULL. */
char *egh_find_blank(char *p, size_t n);

/* egh_parse: head[0..head_len) is a complete head ending in "\r\n\r\n",
 * NUL-terminated at or after head_len; it is modified in place. */
int egh_parse(char *head, size_t head_len, struct egh_request *r);

/* egh_upstream_head: "METHOD path VERSION", Host from the URL, the
 * client's headers without hop-by-hop and Proxy-* ones, then
 * "Connection: close" and the blank line (appended to out). */
int egh_upstream_head(const struct egh_request *r, struct buf *out);

/* egh_rewrite_response: the response head head[0..head_len) without its
 * Connection, Keep-Alive and Proxy-Connection headers, plus
 * "Connection: close" (appended to out).  -1 when it does not parse. */
int egh_rewrite_response(const char *head, size_t head_len, struct buf *out);

#endif
