/*
 * http_request.c: ccr's HTTP/1.1 server (src/http/server.c) on arbitrary
 * client bytes.
 *
 * The input is what a client sends on one connection: it is written into
 * one end of a socketpair, that end is shut for writing, and hs_serve_fd()
 * serves the other end on this thread exactly as an accepted connection
 * (http-parser strict mode, the server's limits, pipelining).  The handler
 * reads everything a request exposes (method, target, path, query,
 * headers, body) and answers 200.  Properties: every answer the server
 * writes is a well-formed HTTP/1.1 status line with a known status code,
 * and a request that reached the handler has a decoded path without NUL
 * and a body of its Content-Length.  Limits are lowered (4 KiB body,
 * 1 KiB target, 2 KiB of headers, 16 fields) so that the fuzzer reaches
 * them with small inputs.
 *
 * Every input is also served by a second server in streaming-body mode,
 * as the token and egress proxies run it (CONNECT and a missing Host
 * allowed): its handler reads the body with hs_req_body_read, checks it
 * against Content-Length, and takes the socket over for a CONNECT.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "http/server.h"
#include "http_parser.h"

static struct hs_server *srv, *ssrv;
static unsigned handled;

static int handler(struct hs_req *req, struct hs_resp *resp, void *app)
{
	const char *name, *value, *body, *cl;
	size_t i, n, len;
	unsigned sum = 0;

	(void)app;
	handled++;
	FUZZ_CHECK(hs_req_method(req) && hs_req_target(req) && hs_req_raw_path(req) && hs_req_path(req) &&
			   hs_req_query_string(req),
		   "request strings");
	FUZZ_CHECK(hs_req_raw_path(req)[0] != 0, "empty raw path");
	n = hs_req_header_count(req);
	for (i = 0; i < n; i++) {
		FUZZ_CHECK(hs_req_header_at(req, i, &name, &value) == 0 && name && value, "header %zu", i);
		sum += (unsigned)strlen(name) + (unsigned)strlen(value);
	}
	FUZZ_CHECK(hs_req_header_at(req, n, &name, &value) != 0, "header past the end");
	body = hs_req_body(req, &len);
	FUZZ_CHECK(body && body[len] == 0, "body not terminated");
	cl = hs_req_header(req, "content-length");
	if (cl && !hs_req_header(req, "transfer-encoding"))
		FUZZ_CHECK(strtoull(cl, NULL, 10) == len, "body of %zu bytes for Content-Length %s", len, cl);
	(void)hs_req_query(req, "a");
	(void)hs_req_query_count(req, "a");
	(void)hs_req_header(req, "host");
	(void)hs_req_http_minor(req);
	(void)sum;
	return hs_send(resp, 200, "text/plain", "ok\n", 3);
}

/* The streaming-body server's handler. */
static int stream_handler(struct hs_req *req, struct hs_resp *resp, void *app)
{
	const char *cl = hs_req_header(req, "content-length"), *msg;
	char chunk[512];
	size_t total = 0;
	long n;

	(void)app;
	handled++;
	if (hs_req_method_id(req) == HTTP_CONNECT) {
		struct buf pending = BUF_INIT;
		int fd = hs_req_take_socket(req, &pending);

		FUZZ_CHECK(fd >= 0 || hs_req_client_gone(req), "take the socket");
		if (fd >= 0)
			(void)!write(fd, "HTTP/1.1 200 Connection established\r\n\r\n", 39);
		buf_free(&pending);
		return 0;
	}
	while ((n = hs_req_body_read(req, chunk, sizeof(chunk))) > 0)
		total += (size_t)n;
	if (n < 0) {
		int st = hs_req_error(req, &msg);

		FUZZ_CHECK(msg != NULL && (st == 0 || (st >= 400 && st <= 599)), "body error %d", st);
		return st ? hs_send_json_error(resp, st, msg) : -1;
	}
	FUZZ_CHECK(hs_req_complete(req), "body ended before the request did");
	if (cl && !hs_req_header(req, "transfer-encoding"))
		FUZZ_CHECK(strtoull(cl, NULL, 10) == total, "streamed %zu bytes for Content-Length %s", total, cl);
	return hs_send(resp, 200, "text/plain", "ok\n", 3);
}

static struct hs_server *make_server(int stream)
{
	struct hs_config c;
	struct hs_server *s;
	struct err e = ERR_INIT;

	hs_config_defaults(&c);
	c.max_body = 4096;
	c.max_url = 1024;
	c.max_header_bytes = 2048;
	c.max_headers = 16;
	c.header_timeout_ms = c.body_timeout_ms = c.idle_timeout_ms = 2000;
	c.write_timeout_ms = 2000;
	c.handler = stream ? stream_handler : handler;
	c.stream_body = c.allow_connect = c.host_optional = stream;
	s = hs_new(&c, &e);
	if (!s) {
		fprintf(stderr, "hs_new: %s\n", e.msg);
		abort();
	}
	return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	srv = make_server(0);
	ssrv = make_server(1);
	return 0;
}

/* The output starts with a status line, and every status line in it is
 * "HTTP/1.x NNN " with a status the server or the handler can produce
 * (no body the server writes contains "HTTP/1."). */
static void check_output(const char *out, size_t n)
{
	static const int known[] = { 100, 200, 400, 408, 413, 414, 417, 431, 500, 501, 505 };
	const char *p = out, *end = out + n, *hit;

	FUZZ_CHECK(n == 0 || (n >= 13 && memcmp(out, "HTTP/1.", 7) == 0), "output starts with %.20s", out);
	while ((hit = memmem(p, (size_t)(end - p), "HTTP/1.", 7)) != NULL) {
		int code = end - hit >= 13 ? atoi(hit + 9) : -1, ok = 0;
		size_t k;

		for (k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			ok |= code == known[k];
		FUZZ_CHECK(ok, "unexpected status line %.16s", hit);
		p = hit + 7;
	}
}

/* One connection carrying data to server s; its answers checked. */
static void serve_input(struct hs_server *s, const uint8_t *data, size_t size)
{
	int sv[2];
	size_t off = 0;
	char out[1 << 16];
	size_t got = 0;
	ssize_t r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	{
		int big = 1 << 20;

		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	}
	while (off < size) {
		r = write(sv[0], data + off, size - off);
		if (r <= 0)
			abort();
		off += (size_t)r;
	}
	shutdown(sv[0], SHUT_WR);
	handled = 0;
	FUZZ_CHECK(hs_serve_fd(s, sv[1]) == 0, "hs_serve_fd");
	while (got < sizeof(out) && (r = read(sv[0], out + got, sizeof(out) - got)) > 0)
		got += (size_t)r;
	close(sv[0]);
	check_output(out, got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	serve_input(srv, data, size);
	serve_input(ssrv, data, size);
	return 0;
}
