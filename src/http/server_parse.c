/*
 * server_parse.c: request parsing for the HTTP/1.1 server.  http-parser's
 * callbacks copy the target and header fields into the request's arena
 * (as offsets) and enforce the limits as bytes arrive; a parser error is
 * turned into the status and message the client gets; a complete request's
 * target is decoded into path, query and parameters; and the hs_req_*
 * accessors read the result.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/hex.h"
#include "util/clock.h"
#include "http/server_int.h"

size_t hs_pct_decode(char *dst, const char *src, size_t n, int plus_space)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int hi, lo;

		if (src[i] == '%' && i + 2 < n &&
		    (hi = hex_digit(src[i + 1])) >= 0 &&
		    (lo = hex_digit(src[i + 2])) >= 0) {
			dst[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus_space && src[i] == '+') {
			dst[o++] = ' ';
		} else {
			dst[o++] = src[i];
		}
	}
	dst[o] = 0;
	return o;
}

/* ---- request accessors ------------------------------------------------ */

const char *hs_arena_str(const struct hs_req *r, size_t off)
{
	return r->arena.p ? r->arena.p + off : "";
}

const char *hs_req_method(const struct hs_req *r)
{
	return r->have_method ? http_method_str((enum http_method)r->c->parser.method) : "";
}

const char *hs_req_target(const struct hs_req *r)
{
	return r->url_done ? hs_arena_str(r, 0) : "";
}

const char *hs_req_raw_path(const struct hs_req *r)
{
	return r->prepared ? hs_arena_str(r, r->raw_path) : "";
}

const char *hs_req_path(const struct hs_req *r)
{
	return r->prepared ? hs_arena_str(r, r->path) : "";
}

const char *hs_req_query_string(const struct hs_req *r)
{
	return r->prepared ? hs_arena_str(r, r->query) : "";
}

int hs_req_http_minor(const struct hs_req *r)
{
	return r->c->parser.http_minor;
}

const char *hs_req_query(const struct hs_req *r, const char *name)
{
	const struct hs_qp *q = (const struct hs_qp *)(const void *)r->qidx.p;
	size_t i, n = r->qidx.len / sizeof(struct hs_qp);

	for (i = 0; i < n; i++)
		if (strcmp(hs_arena_str(r, q[i].name), name) == 0)
			return hs_arena_str(r, q[i].value);
	return NULL;
}

size_t hs_req_query_count(const struct hs_req *r, const char *name)
{
	const struct hs_qp *q = (const struct hs_qp *)(const void *)r->qidx.p;
	size_t i, n = r->qidx.len / sizeof(struct hs_qp), count = 0;

	for (i = 0; i < n; i++)
		if (strcmp(hs_arena_str(r, q[i].name), name) == 0)
			count++;
	return count;
}

const char *hs_req_header(const struct hs_req *r, const char *name)
{
	unsigned i;

	if (!r->headers_done)
		return NULL;
	for (i = 0; i < r->nhdrs; i++)
		if (strcasecmp(hs_arena_str(r, r->hdrs[i].name), name) == 0)
			return hs_arena_str(r, r->hdrs[i].value);
	return NULL;
}

size_t hs_req_header_count(const struct hs_req *r)
{
	return r->headers_done ? r->nhdrs : 0;
}

int hs_req_header_at(const struct hs_req *r, size_t i, const char **name, const char **value)
{
	if (!r->headers_done || i >= r->nhdrs)
		return -1;
	*name = hs_arena_str(r, r->hdrs[i].name);
	*value = hs_arena_str(r, r->hdrs[i].value);
	return 0;
}

const char *hs_req_body(const struct hs_req *r, size_t *len)
{
	if (len)
		*len = r->body.len;
	return r->body.p ? r->body.p : "";
}

const char *hs_req_remote_addr(const struct hs_req *r)
{
	return r->c->remote;
}

int hs_req_remote_port(const struct hs_req *r)
{
	return r->c->remote_port;
}

struct hs_server *hs_req_server(const struct hs_req *r)
{
	return r->c->srv;
}

int hs_req_method_id(const struct hs_req *r)
{
	return r->have_method ? (int)r->c->parser.method : -1;
}

int hs_req_complete(const struct hs_req *r)
{
	return r->complete;
}

int hs_req_error(const struct hs_req *r, const char **msg)
{
	*msg = r->fail_msg ? r->fail_msg : "the client went away";
	return r->fail_status;
}

void *hs_conn_data(const struct hs_req *r)
{
	return r->c->data;
}

void hs_set_conn_data(struct hs_req *r, void *data, void (*free_fn)(void *data))
{
	r->c->data = data;
	r->c->data_free = free_fn;
}

/* ---- parser callbacks ------------------------------------------------- */

int hs_fail(struct hs_req *q, int status, const char *msg)
{
	if (!q->fail_status) {
		q->fail_status = status;
		q->fail_msg = msg;
	}
	return -1;
}

/* Terminate the element being collected (URL, field name or value). */
static int end_element(struct hs_req *q)
{
	if (q->last_cb == CB_NONE)
		return 0;
	if (buf_addc(&q->arena, 0) != 0)
		return hs_fail(q, 500, "out of memory");
	if (q->last_cb == CB_URL) {
		q->url_done = 1;
	} else if (q->last_cb == CB_FIELD) {
		struct hs_hdr *h = &q->hdrs[q->nhdrs - 1];

		h->value = h->name + h->name_len;      /* "" until a value arrives */
		h->value_len = 0;
	} else {
		struct hs_hdr *h = &q->hdrs[q->nhdrs - 1];
		char *v = q->arena.p + h->value;

		while (h->value_len && (v[h->value_len - 1] == ' ' || v[h->value_len - 1] == '\t'))
			v[--h->value_len] = 0;
		while (h->value_len && (v[0] == ' ' || v[0] == '\t'))
			v++, h->value++, h->value_len--;
	}
	q->last_cb = CB_NONE;
	return 0;
}

static int cb_message_begin(http_parser *p)
{
	struct hs_conn *c = p->data;

	if (!c->req.t_start)
		c->req.t_start = (uint64_t)clock_mono_us();
	return 0;
}

static int cb_url(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;

	q->have_method = 1;
	q->last_cb = CB_URL;
	if (q->url_len + len > c->srv->cfg.max_url)
		return hs_fail(q, 414, "request URL too long");
	q->url_len += len;
	q->header_bytes += len;
	if (buf_add(&q->arena, at, len) != 0)
		return hs_fail(q, 500, "out of memory");
	return 0;
}

static int header_budget(struct hs_conn *c, size_t len)
{
	struct hs_req *q = &c->req;
	size_t *count = q->headers_done ? &q->trailer_bytes : &q->header_bytes;

	*count += len;
	if (*count > c->srv->cfg.max_header_bytes)
		return hs_fail(q, 431, "request header fields too large");
	return 0;
}

static int cb_header_field(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;

	if (q->headers_done)     /* a trailer field: counted, not kept */
		return header_budget(c, len + 4);
	if (q->last_cb != CB_FIELD) {
		struct hs_hdr *h;

		if (end_element(q) != 0)
			return -1;
		if (q->nhdrs >= c->srv->cfg.max_headers)
			return hs_fail(q, 431, "too many header fields");
		h = &q->hdrs[q->nhdrs++];
		memset(h, 0, sizeof(*h));
		h->name = q->arena.len;
		q->last_cb = CB_FIELD;
		if (header_budget(c, 4) != 0)      /* ": " and CRLF */
			return -1;
	}
	if (header_budget(c, len) != 0)
		return -1;
	if (buf_add(&q->arena, at, len) != 0)
		return hs_fail(q, 500, "out of memory");
	q->hdrs[q->nhdrs - 1].name_len += len;
	return 0;
}

static int cb_header_value(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;

	if (q->headers_done)
		return header_budget(c, len);
	if (header_budget(c, len) != 0)
		return -1;
	if (q->last_cb != CB_VALUE) {
		if (q->last_cb != CB_FIELD)
			return hs_fail(q, 400, "header value without a name");
		if (end_element(q) != 0)
			return -1;
		q->hdrs[q->nhdrs - 1].value = q->arena.len;
		q->last_cb = CB_VALUE;
	}
	if (buf_add(&q->arena, at, len) != 0)
		return hs_fail(q, 500, "out of memory");
	q->hdrs[q->nhdrs - 1].value_len += len;
	return 0;
}

/* How many headers called name; the first one's value in *value. */
static unsigned header_count(const struct hs_req *q, const char *name, const char **value)
{
	unsigned i, n = 0;

	*value = NULL;
	for (i = 0; i < q->nhdrs; i++) {
		if (strcasecmp(hs_arena_str(q, q->hdrs[i].name), name) == 0) {
			if (!n)
				*value = hs_arena_str(q, q->hdrs[i].value);
			n++;
		}
	}
	return n;
}

static int cb_headers_complete(http_parser *p)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;
	const struct hs_config *cfg = &c->srv->cfg;
	const char *v;
	unsigned n;
	int has_body;

	if (end_element(q) != 0)
		return -1;
	q->headers_done = 1;
	q->t_headers = (uint64_t)clock_mono_us();
	if (p->http_major != 1)
		return hs_fail(q, 505, "HTTP version not supported");
	if (p->method == HTTP_CONNECT && !cfg->allow_connect)
		return hs_fail(q, 400, "CONNECT is not supported");
	if (!q->url_done || q->url_len == 0)
		return hs_fail(q, 400, "missing request target");
	n = header_count(q, "host", &v);
	if (n > 1 || (n == 0 && p->http_minor >= 1)) {
		if (cfg->host_optional && n == 0)
			goto host_ok;
		return hs_fail(q, 400, n ? "more than one Host header" : "missing Host header");
	}
host_ok:
	n = header_count(q, "transfer-encoding", &v);
	if (n > 1)
		return hs_fail(q, 400, "more than one Transfer-Encoding header");
	if (n == 1 && strcasecmp(v, "chunked") != 0)
		return hs_fail(q, 501, "unsupported Transfer-Encoding (only chunked is)");
	q->keep_alive = http_should_keep_alive(p);
	if (!cfg->stream_body && (p->flags & F_CONTENTLENGTH) && !(p->flags & F_CHUNKED) &&
	    p->content_length > cfg->max_body)
		return hs_fail(q, 413, "request entity too large");
	has_body = (p->flags & F_CHUNKED) ||
		   ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
	n = header_count(q, "expect", &v);
	if (n > 1 || (n == 1 && strcasecmp(v, "100-continue") != 0))
		return hs_fail(q, 417, "unsupported Expect header (only 100-continue is)");
	if (n == 1 && has_body && p->http_minor >= 1 && cfg->stream_body) {
		q->continue_due = 1;       /* sent by the first hs_req_body_read */
	} else if (n == 1 && has_body && p->http_minor >= 1) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		if (hs_conn_write(c, cont, sizeof(cont) - 1) != 0)
			return -1;
	}
	if (cfg->stream_body)
		http_parser_pause(p, 1);   /* the handler decides about the body */
	return 0;
}

static int cb_body(http_parser *p, const char *at, size_t len)
{
	struct hs_conn *c = p->data;
	struct hs_req *q = &c->req;

	if (!c->srv->cfg.stream_body && len > c->srv->cfg.max_body - q->body.len)
		return hs_fail(q, 413, "request entity too large");
	if (buf_add(&q->body, at, len) != 0)
		return hs_fail(q, 500, "out of memory");
	return 0;
}

static int cb_message_complete(http_parser *p)
{
	struct hs_conn *c = p->data;

	c->req.complete = 1;
	c->req.keep_alive = http_should_keep_alive(p);
	http_parser_pause(p, 1);
	return 0;
}

const http_parser_settings hs_parser_settings = {
	.on_message_begin = cb_message_begin,
	.on_url = cb_url,
	.on_header_field = cb_header_field,
	.on_header_value = cb_header_value,
	.on_headers_complete = cb_headers_complete,
	.on_body = cb_body,
	.on_message_complete = cb_message_complete,
};

int hs_parser_failure(struct hs_conn *c)
{
	struct hs_req *q = &c->req;
	enum http_errno en = HTTP_PARSER_ERRNO(&c->parser);

	if (q->fail_status)
		return RD_FAIL;
	if (c->gone)
		return RD_CLOSE;
	switch (en) {
	case HPE_HEADER_OVERFLOW:
		hs_fail(q, 431, "request header fields too large");
		break;
	case HPE_INVALID_METHOD:
		hs_fail(q, 400, "malformed request line: invalid method");
		break;
	case HPE_INVALID_URL:
	case HPE_INVALID_HOST:
	case HPE_INVALID_PORT:
	case HPE_INVALID_PATH:
	case HPE_INVALID_QUERY_STRING:
	case HPE_INVALID_FRAGMENT:
		hs_fail(q, 400, "malformed request line: invalid request target");
		break;
	case HPE_INVALID_VERSION:
		hs_fail(q, 400, "malformed request line: invalid HTTP version");
		break;
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		hs_fail(q, 400, "Content-Length not allowed here (duplicate, or with Transfer-Encoding)");
		break;
	case HPE_INVALID_CONTENT_LENGTH:     /* also an overflowing chunk size */
		hs_fail(q, 400, q->headers_done ? "malformed chunked body: chunk size too large"
					     : "invalid Content-Length");
		break;
	case HPE_INVALID_CHUNK_SIZE:
		hs_fail(q, 400, "malformed chunked body: invalid chunk size");
		break;
	case HPE_INVALID_TRANSFER_ENCODING:
		hs_fail(q, 400, "invalid Transfer-Encoding");
		break;
	case HPE_INVALID_HEADER_TOKEN:
		hs_fail(q, 400, "malformed header: invalid character");
		break;
	default:
		if (q->headers_done && (c->parser.flags & F_CHUNKED))
			hs_fail(q, 400, "malformed chunked body");
		else if (q->headers_done)
			hs_fail(q, 400, "malformed request body");
		else
			hs_fail(q, 400, "malformed request line or headers");
		break;
	}
	return RD_FAIL;
}

/* Decode the target into path, raw path, query and parameters. */
/* Decode the query's parameters ("a=1&b&c=x%20y", qlen bytes at
 * q->query) into the arena and the index. */
static int decode_params(struct hs_req *q, size_t qlen)
{
	size_t plen, i, start, nparams = 0;

	for (start = 0, i = 0; i <= qlen && nparams < MAX_QUERY_PARAMS; i++) {
		size_t off = q->query, eq, n;
		struct hs_qp qp;
		const char *piece;

		if (i < qlen && q->arena.p[off + i] != '&')
			continue;
		n = i - start;
		if (n == 0) {
			start = i + 1;
			continue;
		}
		piece = q->arena.p + off + start;
		for (eq = 0; eq < n && piece[eq] != '='; eq++)
			;
		if (buf_reserve(&q->arena, n + 2) != 0)
			return hs_fail(q, 500, "out of memory");
		piece = q->arena.p + off + start;       /* the arena may have moved */
		qp.name = q->arena.len;
		plen = hs_pct_decode(q->arena.p + qp.name, piece, eq, 1);
		if (strlen(q->arena.p + qp.name) != plen)
			return hs_fail(q, 400, "malformed query string: NUL in a name");
		q->arena.len += plen + 1;
		qp.value = q->arena.len;
		plen = eq < n ? hs_pct_decode(q->arena.p + qp.value, piece + eq + 1, n - eq - 1, 1)
			      : (q->arena.p[qp.value] = 0, 0);
		if (strlen(q->arena.p + qp.value) != plen)
			return hs_fail(q, 400, "malformed query string: NUL in a value");
		q->arena.len += plen + 1;
		if (buf_add(&q->qidx, &qp, sizeof(qp)) != 0)
			return hs_fail(q, 500, "out of memory");
		nparams++;
		start = i + 1;
	}
	return 0;
}

int hs_prepare_request(struct hs_req *q)
{
	struct http_parser_url u;
	const char *url;
	size_t plen, ulen = q->url_len, qoff, qlen;
	size_t raw_off, raw_len;

	url = hs_arena_str(q, 0);
	raw_off = 0;
	raw_len = ulen;
	qoff = 0;
	qlen = 0;
	if (!(ulen == 1 && url[0] == '*')) {
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, ulen, 0, &u) != 0)
			return hs_fail(q, 400, "malformed request target");
		if (u.field_set & (1 << UF_PATH)) {
			raw_off = u.field_data[UF_PATH].off;
			raw_len = u.field_data[UF_PATH].len;
		} else {
			raw_len = 0;
		}
		if (u.field_set & (1 << UF_QUERY)) {
			qoff = u.field_data[UF_QUERY].off;
			qlen = u.field_data[UF_QUERY].len;
		}
	}
	/* raw path ("/" when an absolute-form target has none) */
	q->raw_path = q->arena.len;
	if (raw_len ? buf_add(&q->arena, q->arena.p + raw_off, raw_len) : buf_addc(&q->arena, '/'))
		return hs_fail(q, 500, "out of memory");
	if (buf_addc(&q->arena, 0) != 0)
		return hs_fail(q, 500, "out of memory");
	raw_len = raw_len ? raw_len : 1;
	q->query = q->arena.len;
	if ((qlen && buf_add(&q->arena, q->arena.p + qoff, qlen) != 0) || buf_addc(&q->arena, 0) != 0)
		return hs_fail(q, 500, "out of memory");
	q->path = q->arena.len;
	if (buf_reserve(&q->arena, raw_len + 1) != 0)
		return hs_fail(q, 500, "out of memory");
	plen = hs_pct_decode(q->arena.p + q->path, q->arena.p + q->raw_path, raw_len, 0);
	if (strlen(q->arena.p + q->path) != plen)
		return hs_fail(q, 400, "malformed request target: NUL in path");
	q->arena.len += plen + 1;
	if (decode_params(q, qlen) != 0)
		return -1;
	q->prepared = 1;
	return 0;
}

