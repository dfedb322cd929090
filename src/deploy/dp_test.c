/*
 * dp_test.c: unit tests of `ccr deploy`'s pure parts: the
 * desired-versus-current comparison that decides every write (dp_diff)
 * and the registry's WWW-Authenticate challenge parser (dp_push.c).
 *
 * Design: these decide whether a deploy writes at all and how it
 * authenticates, and neither needs a network, so they run wherever the
 * binary does.
 */
#include <stdio.h>
#include <string.h>

#include "deploy/deploy.h"
#include "deploy/dp_oci.h"
#include "selftest/selftest.h"

static int diff_of(const char *want, const char *cur, char *out, size_t n)
{
	cJSON *w = cJSON_Parse(want), *c = cJSON_Parse(cur);
	struct buf changed = BUF_INIT;
	int rc = w && c ? dp_diff(w, c, "", &changed) : -1;

	snprintf(out, n, "%s", changed.p ? changed.p : "");
	buf_free(&changed);
	cJSON_Delete(w);
	cJSON_Delete(c);
	return rc;
}

static int t_diff(char *why, size_t whylen)
{
	static const struct {
		const char *want, *cur, *changed;
	} cases[] = {
		/* server-set fields are ignored, proto3 defaults may be absent */
		{ "{\"a\":1,\"s\":{\"min\":0,\"max\":10}}", "{\"a\":1,\"uid\":\"x\",\"s\":{\"max\":10}}", "" },
		{ "{\"on\":false,\"l\":[],\"t\":\"\"}", "{}", "" },
		/* int64 as a string equals the number */
		{ "{\"n\":30}", "{\"n\":\"30\"}", "" },
		{ "{\"n\":30}", "{\"n\":31}", "n" },
		/* arrays: same length, element by element (extra fields in elements ignored) */
		{ "{\"e\":[{\"name\":\"A\",\"value\":\"1\"}]}", "{\"e\":[{\"name\":\"A\",\"value\":\"1\",\"x\":2}]}", "" },
		{ "{\"e\":[{\"name\":\"A\"}]}", "{\"e\":[{\"name\":\"A\"},{\"name\":\"B\"}]}", "e" },
		{ "{\"t\":{\"c\":[{\"img\":\"a\"}]}}", "{\"t\":{\"c\":[{\"img\":\"b\"}]}}", "t.c[0].img" },
		{ "{\"a\":\"x\",\"b\":true}", "{\"b\":false}", "a, b" },
		{ "{\"o\":{\"k\":1}}", "{\"o\":\"str\"}", "o" },
		/* resource quantities compare by value, other strings as text */
		{ "{\"resources\":{\"limits\":{\"cpu\":\"1\",\"memory\":\"4Gi\"}}}",
			"{\"resources\":{\"limits\":{\"cpu\":\"1000m\",\"memory\":\"4096Mi\"}}}", "" },
		{ "{\"resources\":{\"limits\":{\"cpu\":\"2\",\"memory\":\"4Gi\"}}}",
			"{\"resources\":{\"limits\":{\"cpu\":\"1000m\",\"memory\":\"4G\"}}}",
			"resources.limits.cpu, resources.limits.memory" },
		{ "{\"env\":{\"value\":\"1\"}}", "{\"env\":{\"value\":\"1000m\"}}", "env.value" },
	};
	char got[256];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (diff_of(cases[i].want, cases[i].cur, got, sizeof got) != 0)
			return st_fail(why, whylen, "case %zu: dp_diff failed", i);
		if (strcmp(got, cases[i].changed) != 0)
			return st_fail(why, whylen, "case %zu: changed \"%s\", want \"%s\"", i, got, cases[i].changed);
	}
	return 0;
}

static int t_challenge(char *why, size_t whylen)
{
	char scheme[16], realm[128], service[64], scope[128];

	if (dp_parse_challenge("Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
			"scope=\"repository:p/r/ccr-job:pull,push\"", scheme, sizeof scheme, realm, sizeof realm,
			service, sizeof service, scope, sizeof scope) != 0)
		return st_fail(why, whylen, "a Bearer challenge did not parse");
	if (strcmp(scheme, "Bearer") || strcmp(realm, "https://auth.example/token") ||
			strcmp(service, "registry.example") || strcmp(scope, "repository:p/r/ccr-job:pull,push"))
		return st_fail(why, whylen, "Bearer: got %s %s %s %s", scheme, realm, service, scope);
	if (dp_parse_challenge("Basic realm=\"ccr \\\"test\\\"\"", scheme, sizeof scheme, realm, sizeof realm,
			service, sizeof service, scope, sizeof scope) != 0 || strcmp(scheme, "Basic") ||
			strcmp(realm, "ccr \"test\"") || service[0] || scope[0])
		return st_fail(why, whylen, "Basic with an escaped quote: got %s [%s]", scheme, realm);
	if (dp_parse_challenge("", scheme, sizeof scheme, realm, sizeof realm, service, sizeof service, scope,
			sizeof scope) == 0)
		return st_fail(why, whylen, "an empty challenge parsed");
	return 0;
}

const struct st_case deploy_tests[] = {
	{ "deploy_diff_ignores_server_fields_and_defaults", t_diff },
	{ "deploy_registry_auth_challenge", t_challenge },
	{ NULL, NULL },
};
