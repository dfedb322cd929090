/*
 * egress_http.c: see egress_http.h.  Everything works in place on the
 * NUL-terminated head; nothing here touches a socket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "egress/egpolicy.h"
#include "egress/egress_http.h"

char *egh_find_blank(char *p, size_t n)
{
	size_t i;

	for (i = 0; i + 3 < n; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			return p + i;
	return NULL;
}

/* ---- headers ---- */

static int name_is(const char *line, size_t nl, const char *name)
{
	return strlen(name) == nl && strncasecmp(line, name, nl) == 0;
}

/* Does the comma-separated list in v (vl bytes) name the header name? */
static int token_listed(const char *v, size_t vl, const char *name, size_t nl)
{
	size_t i = 0;

	while (i < vl) {
		size_t s, t;
		while (i < vl && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < vl && v[i] != ',')
			i++;
		t = i;
		while (t > s && (v[t - 1] == ' ' || v[t - 1] == '\t'))
			t--;
		if (t - s == nl && strncasecmp(v + s, name, nl) == 0)
			return 1;
	}
	return 0;
}

/* Each header line of a head (from `first` to the blank line): calls fn
 * with the line, its name length and its value.  0, or -1 on a line that
 * is not "Name: value", too many lines or obsolete folding. */
static const char tchars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~";

/* An HTTP token (a method, a header name): n bytes of tchar. */
static int token(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!s[i] || !strchr(tchars, s[i]))
			return 0;
	return n > 0;
}

/* Visible ASCII only (a request target). */
static int visible(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static int each_header(const char *first, int (*fn)(void *, const char *, size_t, size_t, const char *, size_t),
		       void *arg)
{
	const char *p = first;
	int count = 0;

	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *eol = strstr(p, "\r\n"), *colon, *v;
		if (!eol || ++count > EGH_HEAD_LINES || *p == ' ' || *p == '\t')
			return -1;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p || !token(p, (size_t)(colon - p)) || memchr(p, '\n', (size_t)(eol - p)) ||
		    memchr(p, '\r', (size_t)(eol - p)))
			return -1;
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		if (fn(arg, p, (size_t)(eol - p), (size_t)(colon - p), v, (size_t)(eol - v)) != 0)
			return -1;
		p = eol + 2;
	}
	return 0;
}

struct fwd {
	struct buf *out;
	const char *conn_value;         /* the Connection header's value, or NULL */
	size_t conn_len;
};

static int find_connection(void *arg, const char *line, size_t len, size_t nl, const char *v, size_t vl)
{
	struct fwd *f = arg;

	(void)line, (void)len;
	if (name_is(line, nl, "Connection")) {
		f->conn_value = v;
		f->conn_len = vl;
	}
	return 0;
}

static int hop_by_hop(const struct fwd *f, const char *name, size_t nl)
{
	static const char *const drop[] = { "Host", "Connection", "Keep-Alive", "Upgrade" };
	size_t i;

	if (nl >= 6 && strncasecmp(name, "Proxy-", 6) == 0)
		return 1;
	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
		if (name_is(name, nl, drop[i]))
			return 1;
	/* Names listed in Connection go too, except the body's framing,
	 * which the raw relay depends on. */
	return f->conn_value && !name_is(name, nl, "Content-Length") && !name_is(name, nl, "Transfer-Encoding") &&
	       token_listed(f->conn_value, f->conn_len, name, nl);
}

static int keep_header(void *arg, const char *line, size_t len, size_t nl, const char *v, size_t vl)
{
	struct fwd *f = arg;

	(void)v, (void)vl;
	if (hop_by_hop(f, line, nl))
		return 0;
	return buf_add(f->out, line, len) != 0 || buf_adds(f->out, "\r\n") != 0 ? -1 : 0;
}

/* ---- the request ---- */

/* host[:port] or [v6][:port] into r->host_raw and r->port. */
static int parse_authority(struct egh_request *r, const char *a, size_t n, int default_port)
{
	const char *colon = NULL, *h = a;
	size_t hl = n;
	char *end;
	long port;

	if (n == 0 || n >= sizeof(r->authority))
		return snprintf(r->why, sizeof(r->why), "missing or too long host"), 400;
	if (memchr(a, '@', n))
		return snprintf(r->why, sizeof(r->why), "credentials in the URL are not supported"), 400;
	memcpy(r->authority, a, n);
	r->authority[n] = 0;
	if (a[0] == '[') {
		const char *rb = memchr(a, ']', n);
		if (!rb)
			return snprintf(r->why, sizeof(r->why), "unterminated IPv6 address"), 400;
		h = a + 1, hl = (size_t)(rb - a) - 1;
		if (rb + 1 < a + n) {
			if (rb[1] != ':')
				return snprintf(r->why, sizeof(r->why), "bad authority %.100s", r->authority), 400;
			colon = rb + 1;
		}
	} else {
		colon = memchr(a, ':', n);
		if (colon && memchr(colon + 1, ':', (size_t)(a + n - colon - 1)))
			return snprintf(r->why, sizeof(r->why), "write an IPv6 address in brackets"), 400;
		if (colon)
			hl = (size_t)(colon - a);
	}
	if (hl == 0 || hl >= sizeof(r->host_raw))
		return snprintf(r->why, sizeof(r->why), "missing or too long host"), 400;
	memcpy(r->host_raw, h, hl);
	r->host_raw[hl] = 0;
	if (!colon || colon + 1 == a + n) {
		if (default_port <= 0)
			return snprintf(r->why, sizeof(r->why), "CONNECT needs host:port"), 400;
		r->port = default_port;
		return 0;
	}
	port = strtol(colon + 1, &end, 10);
	if (end != a + n || port < 1 || port > 65535 || colon[1] == '+' || colon[1] == '-')
		return snprintf(r->why, sizeof(r->why), "bad port in %.100s", r->authority), 400;
	r->port = (int)port;
	return 0;
}

static int parse_target(struct egh_request *r)
{
	const char *t = r->target, *a, *e;

	if (r->is_connect)
		return parse_authority(r, t, r->target_len, 0);
	if (strncasecmp(t, "https://", 8) == 0)
		return snprintf(r->why, sizeof(r->why), "send https:// requests through CONNECT"), 400;
	if (strncasecmp(t, "http://", 7) != 0)
		return snprintf(r->why, sizeof(r->why),
				"this is an HTTP proxy: send absolute-form http:// requests or CONNECT host:port"), 400;
	a = t + 7;
	for (e = a; *e && *e != '/' && *e != '?' && *e != '#'; e++)
		;
	r->path = *e == '/' ? e : NULL;
	if (*e && *e != '/')
		return snprintf(r->why, sizeof(r->why), "the URL's path must start with '/'"), 400;
	return parse_authority(r, a, (size_t)(e - a), 80);
}

/* The request line: method SP target SP HTTP/1.x.  0 or a status. */
int egh_parse(char *head, size_t head_len, struct egh_request *r)
{
	char *line = head, *eol, *sp1, *sp2;
	struct err e = ERR_INIT;
	int st;

	memset(r, 0, sizeof(*r));
	if (memchr(head, 0, head_len) || !(eol = strstr(line, "\r\n")))
		return snprintf(r->why, sizeof(r->why), "malformed request head"), 400;
	*eol = 0;
	r->headers = eol + 2;
	sp1 = strchr(line, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strchr(sp2 + 1, ' ') || (size_t)(sp1 - line) >= sizeof(r->method) || sp1 == line)
		return snprintf(r->why, sizeof(r->why), "malformed request line"), 400;
	memcpy(r->method, line, (size_t)(sp1 - line));
	r->method[sp1 - line] = 0;
	if (!token(r->method, strlen(r->method)))
		return snprintf(r->why, sizeof(r->why), "malformed method"), 400;
	*sp2 = 0;
	r->target = sp1 + 1;
	r->target_len = (size_t)(sp2 - sp1 - 1);
	if (r->target_len > EGH_TARGET_MAX)
		return snprintf(r->why, sizeof(r->why), "request target over %d bytes", EGH_TARGET_MAX), 414;
	if (!visible(r->target, r->target_len))
		return snprintf(r->why, sizeof(r->why), "control characters or spaces in the request target"), 400;
	if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || strlen(sp2 + 1) != 8)
		return snprintf(r->why, sizeof(r->why), "only HTTP/1.x is supported"), 505;
	snprintf(r->version, sizeof(r->version), "%s", sp2 + 1);
	r->is_connect = strcmp(r->method, "CONNECT") == 0;
	if ((st = parse_target(r)) != 0)
		return st;
	if (hp_host_norm(r->host_raw, r->host, &r->is_ip, &e) != 0)
		return snprintf(r->why, sizeof(r->why), "%s", e.msg), 400;
	if (!r->is_connect && each_header(r->headers, find_connection, &(struct fwd){ NULL, NULL, 0 }) != 0)
		return snprintf(r->why, sizeof(r->why), "malformed, folded or more than %d header lines", EGH_HEAD_LINES),
		       431;
	return 0;
}

int egh_upstream_head(const struct egh_request *r, struct buf *out)
{
	struct fwd f = { out, NULL, 0 };

	if (buf_printf(out, "%s %s %s\r\nHost: %s\r\n", r->method, r->path ? r->path : "/", r->version,
		       r->authority) != 0 ||
	    each_header(r->headers, find_connection, &f) != 0 || each_header(r->headers, keep_header, &f) != 0 ||
	    buf_adds(out, "Connection: close\r\n\r\n") != 0)
		return -1;
	return 0;
}

int egh_rewrite_response(const char *head, size_t head_len, struct buf *out)
{
	struct fwd f = { out, NULL, 0 };
	const char *eol = strstr(head, "\r\n");
	char *copy = malloc(head_len + 1);
	int rc;

	if (!copy || !eol || memchr(head, 0, head_len))
		return free(copy), -1;
	memcpy(copy, head, head_len);
	copy[head_len] = 0;
	eol = copy + (eol - head);
	rc = buf_add(out, copy, (size_t)(eol - copy) + 2) || each_header(eol + 2, find_connection, &f) ||
	     each_header(eol + 2, keep_header, &f) || buf_adds(out, "Connection: close\r\n\r\n");
	free(copy);
	return rc ? -1 : 0;
}

