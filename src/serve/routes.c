/*
 * routes.c: the route table of `ccr serve` and its dispatcher.
 *
 * The table is searched in order; the first route whose pattern matches
 * the raw path and whose method matches (GET also serving HEAD) runs.
 * Matching is Express's default: segment by segment, case-insensitive
 * for literals, a trailing slash ignored, ":name" capturing one non-empty
 * segment which is percent-decoded (no '+' rule, as decodeURIComponent).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "serve/serve.h"

static const struct route routes[] = {
	{ "GET", "/", health_root },
	{ "GET", "/health", health_check },
	{ "GET", "/healthz", health_check },
	{ "POST", "/run", api_run },
	{ "POST", "/run-async", api_run_async },
	{ "POST", "/cancel/:taskId", api_cancel },
	{ "GET", "/tasks/status", api_status },
	{ "GET", "/tasks/:taskId", api_task },
	{ "GET", "/tasks/:taskId/events", api_events },
	{ "POST", "/tasks/:taskId/messages", api_message },
	{ "POST", "/tasks/:taskId/interrupt", api_interrupt },
	{ "POST", "/tasks/:taskId/end", api_end },
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

int route_match_path(const char *pattern, const char *path, struct route_match *m)
{
	size_t used = 0;

	m->n = 0;
	if (*path != '/' || *pattern != '/')
		return 0;
	for (;;) {
		const char *pe, *se;
		size_t pn, sn;

		while (*pattern == '/')
			pattern++;
		if (*path == '/')
			path++;
		pe = strchr(pattern, '/');
		pe = pe ? pe : pattern + strlen(pattern);
		se = strchr(path, '/');
		se = se ? se : path + strlen(path);
		pn = (size_t)(pe - pattern);
		sn = (size_t)(se - path);
		if (pn == 0)      /* pattern done: the path may only have a trailing '/' */
			return sn == 0 && *se == 0;
		if (pattern[0] == ':') {
			if (sn == 0 || m->n >= ROUTE_MAX_PARAMS || used + sn + 1 > sizeof(m->store))
				return 0;
			m->name[m->n] = pattern + 1;
			m->name_len[m->n] = pn - 1;
			m->value[m->n] = m->store + used;
			used += hs_pct_decode(m->store + used, path, sn, 0) + 1;
			m->n++;
		} else if (pn != sn || strncasecmp(pattern, path, pn) != 0) {
			return 0;
		}
		pattern = pe;
		path = se;
	}
}

const char *route_param(const struct route_match *m, const char *name)
{
	unsigned i;

	for (i = 0; i < m->n; i++)
		if (strlen(name) == m->name_len[i] && strncmp(name, m->name[i], m->name_len[i]) == 0)
			return m->value[i];
	return NULL;
}

int serve_dispatch(struct hs_req *req, struct hs_resp *resp, void *app)
{
	struct serve_ctx *sc = app;
	const char *method = hs_req_method(req), *path = hs_req_raw_path(req);
	struct route_match m;
	char msg[512];
	size_t i;

	for (i = 0; i < N_ROUTES; i++) {
		const struct route *r = &routes[i];

		if (strcmp(r->method, method) != 0 &&
		    !(strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
			continue;
		if (route_match_path(r->pattern, path, &m))
			return r->fn(sc, req, resp, &m);
	}
	snprintf(msg, sizeof(msg), "Cannot %s %s", method, path);
	return hs_send_json_error(resp, 404, msg);
}
