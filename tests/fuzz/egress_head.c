/*
 * egress_head.c: the egress proxy's HTTP (src/egress/egress_http.c): a
 * request head from the agent, and a response head from an origin.
 *
 * Properties: egh_parse() answers 0 or one of the documented statuses
 * (400, 414, 431, 505), with a reason when it refuses; an accepted request
 * names a canonical host (hp_host_norm() gives it back unchanged, so the
 * allow-lists and the deny-list see what will be resolved) and a port in
 * 1..65535; the head sent on for plain HTTP is one request-line, header
 * lines and a single blank line at its very end (nothing the client wrote
 * can add a second request or a Proxy-* header), starts with the method
 * and an origin-form target, and ends with "Connection: close"; a
 * rewritten response head likewise ends, once, with "Connection: close".
 */
#include <strings.h>

#include "fuzz.h"
#include "egress/egpolicy.h"
#include "egress/egress_http.h"

static void check_one_head(const struct buf *b, const char *what)
{
	static const char tail[] = "Connection: close\r\n\r\n";
	const char *blank = strstr(b->p, "\r\n\r\n"), *p;

	FUZZ_CHECK(b->len >= sizeof(tail) - 1 && strcmp(b->p + b->len - (sizeof(tail) - 1), tail) == 0,
		   "%s does not end with Connection: close", what);
	FUZZ_CHECK(blank && (size_t)(blank - b->p) + 4 == b->len, "%s holds a blank line before its end", what);
	FUZZ_CHECK(strlen(b->p) == b->len, "%s holds a NUL", what);
	for (p = strstr(b->p, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n"))
		FUZZ_CHECK((strncasecmp(p + 2, "proxy-", 6) != 0 && strncasecmp(p + 2, "connection:", 11) != 0) ||
				   strcmp(p + 2, tail) == 0,
			   "%s forwards a hop-by-hop header: %.40s", what, p + 2);
}

static void check_request(char *head, size_t len)
{
	struct egh_request r;
	struct err e = ERR_INIT;
	struct buf out = BUF_INIT;
	char again[EGP_HOST_MAX];
	int st = egh_parse(head, len, &r), ip;

	if (st != 0) {
		FUZZ_CHECK(st == 400 || st == 414 || st == 431 || st == 505, "status %d", st);
		FUZZ_CHECK(r.why[0], "status %d without a reason", st);
		return;
	}
	FUZZ_CHECK(r.port >= 1 && r.port <= 65535, "port %d", r.port);
	FUZZ_CHECK(hp_host_norm(r.host, again, &ip, &e) == 0 && strcmp(again, r.host) == 0 && ip == r.is_ip,
		   "host '%s' is not canonical", r.host);
	FUZZ_CHECK(r.is_connect == (strcmp(r.method, "CONNECT") == 0), "CONNECT flag");
	if (r.is_connect)
		return;
	FUZZ_CHECK(egh_upstream_head(&r, &out) == 0, "upstream head failed");
	FUZZ_CHECK(strncmp(out.p, r.method, strlen(r.method)) == 0 && out.p[strlen(r.method)] == ' ' &&
			   out.p[strlen(r.method) + 1] == '/',
		   "not origin-form: %.60s", out.p);
	check_one_head(&out, "the upstream request");
	buf_free(&out);
}

static void check_response(const char *data, size_t len)
{
	struct buf out = BUF_INIT;

	if (egh_rewrite_response(data, len, &out) == 0)
		check_one_head(&out, "the rewritten response");
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *head = fuzz_str(data, size), *end = egh_find_blank(head, size);

	if (end) {
		size_t len = (size_t)(end - head) + 4;

		check_response(head, len);
		check_request(head, len);
	}
	free(head);
	return 0;
}
