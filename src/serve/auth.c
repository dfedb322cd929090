/*
 * auth.c: optional API keys for the task endpoints (see serve.h).
 *
 * Cloud Run IAM protects a cloud deployment; keys add a second gate and
 * are the only gate for a local server exposed beyond loopback.  Keys are
 * compared in constant time against a SHA-256 of the presented token, so
 * neither the comparison time nor the key length leaks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/secenv.h"
#include "backend/config.h"
#include "crypto/crypto.h"
#include "serve/log.h"
#include "serve/serve.h"

static void add_key(struct serve_auth *a, const char *k, size_t n)
{
	while (n && (k[n - 1] == '\r' || k[n - 1] == ' ' || k[n - 1] == '\n'))
		n--;
	while (n && (*k == ' ' || *k == '\t'))
		k++, n--;
	if (n && a->n_keys < SERVE_MAX_KEYS)
		cr_sha256(k, n, a->key_hash[a->n_keys++]);
}

static int load(struct serve_auth *a, const char *spec)
{
	char line[1024];
	FILE *f;

	if (spec[0] != '@') {
		const char *p = spec, *c;
		for (; (c = strchr(p, ',')); p = c + 1)
			add_key(a, p, (size_t)(c - p));
		add_key(a, p, strlen(p));
		return 0;
	}
	if (!(f = fopen(spec + 1, "re"))) {
		slog(SLOG_ERROR, "cannot read CCR_API_KEYS file %s", spec + 1);
		return -1;
	}
	while (fgets(line, sizeof(line), f))
		if (line[0] != '#')
			add_key(a, line, strlen(line));
	fclose(f);
	cr_wipe(line, sizeof(line));
	return 0;
}

static int loopback(const char *addr)
{
	return !strcmp(addr, "127.0.0.1") || !strcmp(addr, "::1") || !strcmp(addr, "localhost") ||
	       !strncmp(addr, "127.", 4);
}

int serve_auth_init(struct serve_auth *a, const struct backends *be, const char *bind_addr)
{
	const char *spec = secenv_get("CCR_API_KEYS");

	memset(a, 0, sizeof(*a));
	if (spec && *spec && load(a, spec) != 0)
		return -1;
	if (spec && *spec && a->n_keys == 0) {
		slog(SLOG_ERROR, "CCR_API_KEYS is set but holds no key");
		return -1;
	}
	if (a->n_keys) {
		slog(SLOG_INFO, "API keys on: %zu key(s); task endpoints need Authorization: Bearer", a->n_keys);
		return 0;
	}
	if (be->mode == CFG_LOCAL && !loopback(bind_addr)) {
		slog(SLOG_ERROR, "local mode without CCR_API_KEYS listens on loopback only; set CCR_API_KEYS "
				 "to listen on %s", bind_addr);
		return -1;
	}
	if (be->mode == CFG_LOCAL) {
		a->loopback_hosts_only = 1;
		slog(SLOG_INFO, "no API keys: listening on loopback only, answering loopback host names only "
				"(set CCR_API_KEYS to expose the API)");
	}
	return 0;
}

/* 1 when a Host header names loopback: localhost, 127.0.0.0/8 or [::1],
 * with or without a port.  A web page that rebinds its own name to
 * 127.0.0.1 still sends that name, so it is refused. */
static int loopback_host(const char *host)
{
	char name[256];
	const char *end;
	size_t n;

	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end || (end[1] && end[1] != ':'))
			return 0;
		return (size_t)(end - host - 1) == 3 && strncmp(host + 1, "::1", 3) == 0;
	}
	end = strchr(host, ':');
	n = end ? (size_t)(end - host) : strlen(host);
	if (n == 0 || n >= sizeof(name))
		return 0;
	memcpy(name, host, n);
	name[n] = 0;
	if (name[n - 1] == '.')
		name[--n] = 0;
	if (strcasecmp(name, "localhost") == 0)
		return 1;
	if (strncmp(name, "127.", 4) != 0)
		return 0;
	for (end = name; *end; end++)
		if (!((*end >= '0' && *end <= '9') || *end == '.'))
			return 0;
	return 1;
}

static int host_allowed(const struct serve_auth *a, struct hs_req *req, struct hs_resp *resp)
{
	const char *host = hs_req_header(req, "Host");

	if (!a->loopback_hosts_only || !host || loopback_host(host))
		return 1;
	hs_send_json_error(resp, 403, "Host is not a loopback name: without CCR_API_KEYS, ccr serve answers only "
				      "requests for localhost, 127.0.0.1 or [::1] (set CCR_API_KEYS to serve other names)");
	return 0;
}

int serve_authorized(const struct serve_ctx *sc, struct hs_req *req, struct hs_resp *resp)
{
	const struct serve_auth *a = &sc->auth;
	const char *h = hs_req_header(req, "Authorization");
	uint8_t got[32];
	unsigned ok = 0;
	size_t i;

	if (a->n_keys == 0)
		return host_allowed(a, req, resp);
	if (h && strncasecmp(h, "Bearer ", 7) == 0) {
		cr_sha256(h + 7, strlen(h + 7), got);
		for (i = 0; i < a->n_keys; i++)
			ok |= (unsigned)cr_const_eq(got, a->key_hash[i], 32);
	}
	if (ok)
		return 1;
	hs_resp_header(resp, "WWW-Authenticate", "Bearer");
	hs_send_json_error(resp, 401, "missing or invalid API key (Authorization: Bearer <key>)");
	return 0;
}
