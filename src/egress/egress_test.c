/*
 * egress_test.c: the deny-list (net/addrclass.h), the egress policy
 * (egress/egpolicy.h) and the egress proxy itself (egress/egress.h), the last
 * against a loopback echo server inside this process.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "egress/egpolicy.h"
#include "egress/egress.h"
#include "net/addrclass.h"
#include "selftest/selftest.h"

static int t_classes(char *why, size_t n)
{
	static const struct {
		const char *addr;
		enum ac_class want;
	} cases[] = {
		{ "8.8.8.8", AC_PUBLIC }, { "1.1.1.1", AC_PUBLIC }, { "2606:4700::1111", AC_PUBLIC },
		{ "0.0.0.0", AC_UNSPECIFIED }, { "::", AC_UNSPECIFIED }, { "::7f00:1", AC_UNSPECIFIED },
		{ "127.0.0.1", AC_LOOPBACK }, { "127.255.0.9", AC_LOOPBACK }, { "::1", AC_LOOPBACK },
		{ "10.1.2.3", AC_PRIVATE }, { "172.16.0.1", AC_PRIVATE }, { "172.31.255.255", AC_PRIVATE },
		{ "172.32.0.1", AC_PUBLIC }, { "192.168.1.1", AC_PRIVATE }, { "192.0.0.8", AC_PRIVATE },
		{ "198.18.0.1", AC_PRIVATE }, { "100.64.0.1", AC_SHARED }, { "100.127.255.255", AC_SHARED },
		{ "100.128.0.1", AC_PUBLIC }, { "169.254.1.1", AC_LINK_LOCAL }, { "fe80::1", AC_LINK_LOCAL },
		{ "169.254.169.254", AC_METADATA }, { "100.100.100.200", AC_METADATA },
		{ "fd00:ec2::254", AC_METADATA }, { "fd20:ce::254", AC_METADATA }, { "169.254.170.2", AC_METADATA },
		{ "169.254.170.23", AC_METADATA }, { "fd00:ec2::23", AC_METADATA }, { "169.254.170.3", AC_LINK_LOCAL },
		{ "fc00::1", AC_UNIQUE_LOCAL }, { "fd12:3456::1", AC_UNIQUE_LOCAL }, { "fec0::1", AC_UNIQUE_LOCAL },
		{ "224.0.0.1", AC_MULTICAST }, { "239.1.1.1", AC_MULTICAST }, { "ff02::1", AC_MULTICAST },
		{ "240.0.0.1", AC_RESERVED }, { "255.255.255.255", AC_RESERVED }, { "2001:0:4136:e378::1", AC_RESERVED },
		/* IPv4 embedded in IPv6 */
		{ "::ffff:127.0.0.1", AC_LOOPBACK }, { "::ffff:10.0.0.1", AC_PRIVATE },
		{ "::ffff:169.254.169.254", AC_METADATA }, { "::ffff:8.8.8.8", AC_PUBLIC },
		{ "64:ff9b::7f00:1", AC_LOOPBACK }, { "64:ff9b::a9fe:a9fe", AC_METADATA },
		{ "64:ff9b::808:808", AC_PUBLIC }, { "64:ff9b:1::1", AC_PRIVATE },
		{ "2002:7f00:1::", AC_LOOPBACK }, { "2002:a9fe:a9fe::1", AC_METADATA }, { "2002:c0a8:101::", AC_PRIVATE },
		{ "2002:808:808::1", AC_PUBLIC },
		{ "example.com", AC_NOT_IP },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum ac_class got = ac_classify_text(cases[i].addr);
		if (got != cases[i].want)
			return st_fail(why, n, "%s: %s, want %s", cases[i].addr, ac_name(got), ac_name(cases[i].want));
	}
	snprintf(why, n, "%zu addresses", i);
	return 0;
}

static int t_metadata_names(char *why, size_t n)
{
	static const char *const yes[] = { "metadata.google.internal", "METADATA.Google.Internal.", "metadata",
					   "metadata." };
	static const char *const no[] = { "metadata.google.internal.evil.example", "xmetadata", "google.internal" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!ac_metadata_name(yes[i]))
			return st_fail(why, n, "%s is not recognised as the metadata server", yes[i]);
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (ac_metadata_name(no[i]))
			return st_fail(why, n, "%s taken for the metadata server", no[i]);
	return 0;
}

static int t_host_norm(char *why, size_t n)
{
	static const struct {
		const char *in, *out;
		int ip;
	} ok[] = {
		{ "GitHub.COM.", "github.com", 0 }, { "a_b-c.example", "a_b-c.example", 0 },
		{ "127.0.0.1", "127.0.0.1", 1 }, { "0:0:0:0:0:0:0:1", "::1", 1 }, { "FE80::1", "fe80::1", 1 },
	};
	static const char *const bad[] = { "", "2130706434", "0x7f.1", "1.2.3", "127.1", "a..b", "a b",
					   "x.0x10", "host:80", "[::1]", "a/b" };
	char out[EGP_HOST_MAX];
	struct err e = ERR_INIT;
	int ip;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (hp_host_norm(ok[i].in, out, &ip, &e) != 0 || strcmp(out, ok[i].out) != 0 || ip != ok[i].ip)
			return st_fail(why, n, "'%s' -> '%s' (%s), want '%s'", ok[i].in, out, e.msg, ok[i].out);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (hp_host_norm(bad[i], out, &ip, &e) == 0)
			return st_fail(why, n, "'%s' accepted as a host", bad[i]);
	return 0;
}

static int t_lists(char *why, size_t n)
{
	struct egp_list l;
	struct err e = ERR_INIT;
	static const char *const bad[] = { "*", "*.", "a b", "*.127.0.0.1", "2130706434", "x,,*.", "[zz]" };
	size_t i;
	int rc = 0;

	if (egp_list_csv(&l, " github.com, *.npmjs.org ,10.0.0.5,[::1] ", "CCR_EGRESS_ALLOW", &e) != 0)
		return st_fail(why, n, "valid list refused: %s", e.msg);
	if (!l.set || l.n != 4 || !egp_list_match(&l, "github.com") || egp_list_match(&l, "api.github.com") ||
	    !egp_list_match(&l, "registry.npmjs.org") || egp_list_match(&l, "npmjs.org") ||
	    egp_list_match(&l, "evilnpmjs.org") || !egp_list_match(&l, "10.0.0.5") || !egp_list_match(&l, "::1") ||
	    egp_list_match(&l, "10.0.0.6"))
		rc = st_fail(why, n, "matching is wrong");
	egp_list_free(&l);
	if (rc)
		return rc;
	if (egp_list_csv(&l, " , ", "X", &e) != 0 || l.set || !egp_list_match(&l, "anything.example"))
		return st_fail(why, n, "a blank operator list must allow any host");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (egp_list_csv(&l, bad[i], "CCR_EGRESS_ALLOW", &e) == 0) {
			egp_list_free(&l);
			return st_fail(why, n, "'%s' accepted as a list", bad[i]);
		}
		if (strncmp(e.msg, "CCR_EGRESS_ALLOW: ", 18) != 0)
			return st_fail(why, n, "error does not name the list: %s", e.msg);
	}
	return 0;
}

static int t_json_list(char *why, size_t n)
{
	cJSON *empty = cJSON_Parse("[]"), *two = cJSON_Parse("[\"Example.com\",\"*.example.org\"]");
	cJSON *wrong = cJSON_Parse("[\"ok.example\", 7]");
	struct egp_list l;
	struct err e = ERR_INIT;
	int rc = 0;

	if (!empty || !two || !wrong)
		rc = st_fail(why, n, "out of memory");
	else if (egp_list_json(&l, empty, "allowedHosts", &e) != 0 || !l.set || egp_list_match(&l, "example.com"))
		rc = st_fail(why, n, "an empty allowedHosts must allow nothing");
	else if (egp_list_free(&l), egp_list_json(&l, two, "allowedHosts", &e) != 0 ||
		 !egp_list_match(&l, "example.com") || !egp_list_match(&l, "a.example.org") ||
		 egp_list_match(&l, "example.org"))
		rc = st_fail(why, n, "allowedHosts matching is wrong (%s)", e.msg);
	else if (egp_list_free(&l), egp_list_json(&l, wrong, "allowedHosts", &e) == 0 ||
		 !strstr(e.msg, "allowedHosts[1]"))
		rc = st_fail(why, n, "a non-string entry was not named: %s", e.msg);
	egp_list_free(&l);
	cJSON_Delete(empty), cJSON_Delete(two), cJSON_Delete(wrong);
	return rc;
}

static void sa_of(const char *text, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, text, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, text, &s4->sin_addr);
	}
}

/* The whole decision: names first, then addresses, with an operator list,
 * a task list and private admissions. */
static int t_decisions(char *why, size_t n)
{
	static const struct {
		const char *host, *addr;
		int port, ok;
		const char *reason;     /* a word the refusal must contain */
	} cases[] = {
		{ "github.com", "140.82.121.3", 443, 1, NULL },
		{ "api.github.com", "140.82.121.6", 443, 0, "allowedHosts" },
		{ "pypi.org", "151.101.0.223", 443, 0, "CCR_EGRESS_ALLOW" },
		{ "metadata.google.internal", "169.254.169.254", 80, 0, "metadata" },
		{ "github.com", "169.254.169.254", 80, 0, "metadata" },
		{ "github.com", "10.0.0.8", 443, 0, "private" },
		{ "github.com", "::ffff:127.0.0.1", 443, 0, "loopback" },
		{ "git.internal", "10.1.2.3", 22, 1, NULL },           /* admitted by name */
		{ "git.internal", "10.1.2.3", 23, 0, "private" },      /* not that port */
		{ "127.0.0.2", "127.0.0.2", 8443, 1, NULL },           /* admitted by address */
		{ "github.com", "127.0.0.2", 8443, 1, NULL },          /* an IP entry admits any name for it */
		{ "github.com", "127.0.0.3", 8443, 0, "loopback" },
		{ "10.9.9.9", "10.9.9.9", 22, 1, NULL },
		{ "github.com", "fd00::5", 443, 0, "unique-local" },
	};
	struct egp_policy pol;
	struct err e = ERR_INIT;
	char reason[600];
	cJSON *task = cJSON_Parse("[\"github.com\",\"*.internal\",\"127.0.0.2\",\"10.9.9.9\"]");
	size_t i;
	int rc = 0;

	memset(&pol, 0, sizeof(pol));
	if (!task || egp_list_csv(&pol.op, "github.com,*.github.com,*.internal,127.0.0.2,10.9.9.9,pypi.org.invalid",
				  "CCR_EGRESS_ALLOW", &e) != 0 ||
	    egp_list_json(&pol.task, task, "allowedHosts", &e) != 0 ||
	    egp_private_csv(&pol, "git.internal:22, 127.0.0.2:8443,10.9.9.9:22", &e) != 0) {
		rc = st_fail(why, n, "setup: %s", e.msg);
		goto out;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]) && rc == 0; i++) {
		struct sockaddr_storage ss;
		int got;

		reason[0] = 0;
		sa_of(cases[i].addr, cases[i].port, &ss);
		got = egp_check_name(&pol, cases[i].host, reason, sizeof(reason)) == 0 &&
		      egp_check_addr(&pol, cases[i].host, cases[i].port, (struct sockaddr *)&ss, reason,
				     sizeof(reason)) == 0;
		if (got != cases[i].ok)
			rc = st_fail(why, n, "%s (%s) port %d: %s, want %s (%s)", cases[i].host, cases[i].addr,
				     cases[i].port, got ? "allowed" : "refused", cases[i].ok ? "allowed" : "refused",
				     reason);
		else if (!got && !strstr(reason, cases[i].reason))
			rc = st_fail(why, n, "%s: reason '%s' lacks '%s'", cases[i].host, reason, cases[i].reason);
	}
out:
	egp_policy_free(&pol);
	cJSON_Delete(task);
	return rc;
}

static int t_private_list(char *why, size_t n)
{
	static const char *const bad[] = { "host", "host:0", "host:70000", "host:", "::1:22", "metadata:80",
					   "169.254.169.254:80", "metadata.google.internal.:80", "[fd00:ec2::254]:80" };
	struct egp_policy pol;
	struct err e = ERR_INIT;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&pol, 0, sizeof(pol));
		if (egp_private_csv(&pol, bad[i], &e) == 0) {
			egp_policy_free(&pol);
			return st_fail(why, n, "CCR_EGRESS_ALLOW_PRIVATE '%s' accepted", bad[i]);
		}
		egp_policy_free(&pol);
		if ((strstr(bad[i], "metadata") || strstr(bad[i], "254]") || strstr(bad[i], "169.254")) &&
		    !strstr(e.msg, "metadata server"))
			return st_fail(why, n, "'%s': the error does not say it is the metadata server: %s", bad[i], e.msg);
	}
	memset(&pol, 0, sizeof(pol));
	if (egp_private_csv(&pol, "[::1]:22,Git.Internal.:2222", &e) != 0 || pol.npriv != 2 ||
	    strcmp(pol.priv[0].host, "::1") != 0 || strcmp(pol.priv[1].host, "git.internal") != 0 ||
	    pol.priv[1].port != 2222) {
		egp_policy_free(&pol);
		return st_fail(why, n, "valid entries misread: %s", e.msg);
	}
	egp_policy_free(&pol);
	return 0;
}

/* ---- the proxy, end to end on loopback ---- */

struct echo {
	int fd, port;
	pthread_t th;
};

/* Accepts one connection and echoes it until the peer half-closes. */
static void *echo_main(void *arg)
{
	struct echo *s = arg;
	char buf[4096];
	int c = accept(s->fd, NULL, NULL);
	ssize_t r;

	if (c < 0)
		return NULL;
	while ((r = recv(c, buf, sizeof(buf), 0)) > 0)
		if (send(c, buf, (size_t)r, MSG_NOSIGNAL) != r)
			break;
	close(c);
	return NULL;
}

static int listen_any(int *port)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static int dial(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { 5, 0 };

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Send req, read everything until the proxy closes (or limit). */
static size_t exchange(int port, const char *req, int half_close, char *out, size_t cap)
{
	int fd = dial(port);
	size_t have = 0;
	ssize_t r;

	out[0] = 0;
	if (fd < 0)
		return 0;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		close(fd);
		return 0;
	}
	if (half_close)
		shutdown(fd, SHUT_WR);
	while (have + 1 < cap && (r = recv(fd, out + have, cap - 1 - have, 0)) > 0)
		have += (size_t)r;
	out[have] = 0;
	close(fd);
	return have;
}

static struct {
	int lines;
	char last[600];
} logged;

static void log_line(void *arg, const char *line)
{
	(void)arg;
	logged.lines++;
	snprintf(logged.last, sizeof(logged.last), "%s", line);
}

static int t_proxy(char *why, size_t n)
{
	struct echo s = { -1, 0, 0 };
	struct eg_proxy p;
	struct eg_config cfg;
	struct err e = ERR_INIT;
	char allow[64], req[300], out[4096];
	int rc = 0;

	memset(&p, 0, sizeof(p));
	if ((s.fd = listen_any(&s.port)) < 0 || pthread_create(&s.th, NULL, echo_main, &s) != 0) {
		if (s.fd >= 0)
			close(s.fd);
		return st_fail(why, n, "cannot start the echo server");
	}
	snprintf(allow, sizeof(allow), "127.0.0.1:%d", s.port);
	memset(&cfg, 0, sizeof(cfg));
	cfg.allow_private = allow;
	cfg.log = log_line;
	logged.lines = 0;
	if (eg_start(&p, &cfg, &e) != 0) {
		rc = st_fail(why, n, "eg_start: %s", e.msg);
		goto out;
	}
	/* not admitted: another loopback port */
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", s.port == 65535 ? 1 : s.port + 1);
	exchange(eg_port(&p), req, 0, out, sizeof(out));
	if (strncmp(out, "HTTP/1.1 403", 12) != 0 || !strstr(out, "loopback") || logged.lines != 1 ||
	    !strstr(logged.last, "refused CONNECT 127.0.0.1:")) {
		rc = st_fail(why, n, "a loopback port not admitted: '%.80s' (log: %s)", out, logged.last);
		goto out;
	}
	exchange(eg_port(&p), "GET http://metadata.google.internal/computeMetadata/v1/ HTTP/1.1\r\n\r\n", 0, out,
		 sizeof(out));
	if (strncmp(out, "HTTP/1.1 403", 12) != 0 || !strstr(out, "metadata server")) {
		rc = st_fail(why, n, "the metadata server by name: '%.80s'", out);
		goto out;
	}
	exchange(eg_port(&p), "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, out, sizeof(out));
	if (strncmp(out, "HTTP/1.1 400", 12) != 0) {
		rc = st_fail(why, n, "an origin-form request: '%.80s'", out);
		goto out;
	}
	/* admitted: the tunnel carries bytes both ways and passes the half-close */
	snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\nping-through-the-tunnel", s.port);
	exchange(eg_port(&p), req, 1, out, sizeof(out));
	if (strncmp(out, "HTTP/1.1 200", 12) != 0 || !strstr(out, "\r\n\r\nping-through-the-tunnel"))
		rc = st_fail(why, n, "the admitted tunnel: '%.120s'", out);
out:
	eg_stop(&p);
	shutdown(s.fd, SHUT_RDWR);
	close(s.fd);
	pthread_join(s.th, NULL);
	return rc;
}

static int t_bad_config(char *why, size_t n)
{
	struct eg_proxy p;
	struct eg_config cfg;
	struct err e = ERR_INIT;

	memset(&cfg, 0, sizeof(cfg));
	cfg.allow = "github.com, not a host";
	if (eg_start(&p, &cfg, &e) == 0) {
		eg_stop(&p);
		return st_fail(why, n, "a bad CCR_EGRESS_ALLOW was accepted");
	}
	if (!strstr(e.msg, "CCR_EGRESS_ALLOW") || !strstr(e.msg, "not a host"))
		return st_fail(why, n, "unclear error: %s", e.msg);
	eg_stop(&p);    /* harmless after a failed start */
	return 0;
}

const struct st_case egress_tests[] = {
	{ "classes", t_classes },
	{ "metadata_names", t_metadata_names },
	{ "host_norm", t_host_norm },
	{ "lists", t_lists },
	{ "json_list", t_json_list },
	{ "decisions", t_decisions },
	{ "private_list", t_private_list },
	{ "proxy", t_proxy },
	{ "bad_config", t_bad_config },
	{ NULL, NULL },
};
