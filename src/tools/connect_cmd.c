/*
 * connect_cmd.c: `ccr connect HOST PORT`, a TCP connection through the
 * job's egress proxy (egress/egress.h) on standard input and output.
 *
 * It exists for ssh, which cannot use an HTTP proxy by itself: the
 * agent's GIT_SSH_COMMAND carries -o ProxyCommand="<ccr> connect %h %p"
 * (job/agentenv.h), so git over SSH done by the agent leaves the sandbox
 * through the same proxy, with the same checks and logs, as its HTTPS.
 *
 * The proxy is read from HTTPS_PROXY (or https_proxy), http://HOST:PORT.
 * The command sends "CONNECT HOST:PORT", requires a 2xx answer, then
 * copies standard input to the socket and the socket to standard output
 * until both directions have ended: the end of standard input half-closes
 * the socket (shutdown SHUT_WR), the end of the socket closes standard
 * output.  Exit status: 0 when the tunnel ended, 1 on any failure (one
 * line on stderr, saying what the proxy answered when it refused), 2 on a
 * usage error.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ccr.h"
#include "settings/settings.h"

#define CN_HEAD_MAX 16384
#define HOST_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:"

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ccr connect: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* "http://host:port[/]" (or "host:port") into host and port. */
static int parse_proxy(const char *url, char *host, size_t hn, char *port, size_t pn)
{
	const char *a = url, *end, *colon;
	size_t hl;

	if (strncasecmp(a, "http://", 7) == 0)
		a += 7;
	else if (strstr(a, "://"))
		return -1;
	end = a + strcspn(a, "/");
	if (*a == '[') {
		const char *rb = memchr(a, ']', (size_t)(end - a));
		if (!rb || rb[1] != ':')
			return -1;
		colon = rb + 1;
		a++;
		hl = (size_t)(rb - a);
	} else {
		colon = memchr(a, ':', (size_t)(end - a));
		if (!colon)
			return -1;
		hl = (size_t)(colon - a);
	}
	if (hl == 0 || hl >= hn || (size_t)(end - colon - 1) >= pn || end == colon + 1)
		return -1;
	memcpy(host, a, hl);
	host[hl] = 0;
	memcpy(port, colon + 1, (size_t)(end - colon - 1));
	port[end - colon - 1] = 0;
	return strspn(port, "0123456789") == strlen(port) ? 0 : -1;
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = fd == 1 ? write(fd, p, n) : send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

/* The proxy's answer head; extra bytes after it go to stdout.  Returns
 * the status, or -1 when the proxy closed or sent no HTTP. */
static int read_answer(int fd, char *head, size_t cap, size_t *extra_at, size_t *have)
{
	char *end;

	*have = 0;
	for (;;) {
		ssize_t r = recv(fd, head + *have, cap - 1 - *have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		*have += (size_t)r;
		head[*have] = 0;
		if ((end = strstr(head, "\r\n\r\n"))) {
			*extra_at = (size_t)(end - head) + 4;
			break;
		}
		if (*have == cap - 1)
			return -1;
	}
	if (strncmp(head, "HTTP/1.", 7) != 0 || strlen(head) < 12)
		return -1;
	return atoi(head + 9);
}

/* The first line of the refusal's body, without the proxy's prefix. */
static void refusal_text(int fd, char *head, size_t cap, size_t at, size_t have, char *out, size_t n)
{
	const char *p, *nl;
	ssize_t r;

	while (have < cap - 1 && !memchr(head + at, '\n', have - at) &&
	       (r = recv(fd, head + have, cap - 1 - have, 0)) > 0)
		have += (size_t)r;
	head[have] = 0;
	p = head + at;
	if (strncmp(p, "ccr egress proxy: ", 18) == 0)
		p += 18;
	nl = strchr(p, '\n');
	snprintf(out, n, "%.*s", (int)(nl ? nl - p : (ptrdiff_t)strlen(p)), p);
}

/* stdin -> sock and sock -> stdout until both ended. */
static int pump(int sock)
{
	char buf[16384];
	int in_open = 1, out_open = 1;

	while (in_open || out_open) {
		struct pollfd pf[2] = { { in_open ? 0 : -1, POLLIN, 0 }, { out_open ? sock : -1, POLLIN, 0 } };
		ssize_t r;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (pf[0].revents) {
			r = read(0, buf, sizeof(buf));
			if (r > 0 && write_all(sock, buf, (size_t)r) != 0)
				return -1;
			if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
				shutdown(sock, SHUT_WR);
				in_open = 0;
			}
		}
		if (pf[1].revents) {
			r = recv(sock, buf, sizeof(buf), 0);
			if (r > 0 && write_all(1, buf, (size_t)r) != 0)
				return -1;
			if (r == 0) {
				close(1);
				out_open = 0;
			} else if (r < 0 && errno != EINTR && errno != EAGAIN) {
				return -1;
			}
		}
	}
	return 0;
}

static int tunnel(const char *proxy, const char *host, const char *port)
{
	char phost[256], pport[16], req[1200], head[CN_HEAD_MAX], why[600];
	const char *lb = strchr(host, ':') ? "[" : "", *rb = *lb ? "]" : "";
	size_t at = 0, have = 0;
	int fd, status, n;

	if (parse_proxy(proxy, phost, sizeof(phost), pport, sizeof(pport)) != 0)
		return fail("HTTPS_PROXY is '%s', not http://HOST:PORT", proxy);
	if ((fd = dial(phost, pport)) < 0)
		return fail("cannot reach the egress proxy at %s: %s", proxy, strerror(errno));
	n = snprintf(req, sizeof(req), "CONNECT %s%s%s:%s HTTP/1.1\r\nHost: %s%s%s:%s\r\n\r\n", lb, host, rb, port, lb,
		     host, rb, port);
	if (n <= 0 || (size_t)n >= sizeof(req) || write_all(fd, req, (size_t)n) != 0) {
		close(fd);
		return fail("cannot send the CONNECT request to %s", proxy);
	}
	status = read_answer(fd, head, sizeof(head), &at, &have);
	if (status < 200 || status > 299) {
		if (status < 0)
			snprintf(why, sizeof(why), "no valid answer");
		else
			refusal_text(fd, head, sizeof(head), at, have, why, sizeof(why));
		fprintf(stderr, "ccr connect: the egress proxy refused %s%s%s:%s: %d %s\n", lb, host, rb, port, status,
			why);
		close(fd);
		return 1;
	}
	if (have > at && write_all(1, head + at, have - at) != 0) {
		close(fd);
		return fail("cannot write to standard output: %s", strerror(errno));
	}
	n = pump(fd);
	close(fd);
	return n == 0 ? 0 : fail("the connection to %s:%s failed", host, port);
}

int connect_main(int argc, char **argv)
{
	const char *proxy = settings_str(SET_HTTPS_PROXY);
	char *end;
	long port;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: ccr connect HOST PORT\n"
		       "Opens a TCP connection to HOST:PORT through the egress proxy named by HTTPS_PROXY\n"
		       "(http://127.0.0.1:PORT, set by `ccr job` for the agent) and copies standard input\n"
		       "and output to it: an ssh ProxyCommand (-o ProxyCommand=\"ccr connect %%h %%p\").\n"
		       "Exit status: 0 when the connection ended, 1 on failure, 2 on a usage error.\n");
		return 0;
	}
	if (argc != 3 || !*argv[1] || strspn(argv[1], HOST_CHARS) != strlen(argv[1])) {
		fprintf(stderr, "usage: ccr connect HOST PORT (HOST: a name or an IP address)\n");
		return 2;
	}
	port = strtol(argv[2], &end, 10);
	if (*end || end == argv[2] || port < 1 || port > 65535) {
		fprintf(stderr, "ccr connect: '%s' is not a port (1-65535)\n", argv[2]);
		return 2;
	}
	if (!proxy || !*proxy)
		proxy = settings_str(SET_https_proxy);
	if (!proxy || !*proxy)
		return fail("HTTPS_PROXY is not set: it names the egress proxy, http://127.0.0.1:PORT");
	signal(SIGPIPE, SIG_IGN);
	return tunnel(proxy, argv[1], argv[2]);
}
