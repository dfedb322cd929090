/*
 * redact_test.c: redaction by value, including URL credentials and
 * fragments of multi-line keys.
 */
#include <string.h>

#include "selftest/selftest.h"
#include "util/redact.h"

static int check(const char *in, const char *want, char *why, size_t n)
{
	struct buf out = BUF_INIT;
	int fail = 0;

	if (redact_str(&out, in) != 0)
		fail = st_fail(why, n, "out of memory");
	else if (strcmp(out.p, want) != 0)
		fail = st_fail(why, n, "redacting '%s' gave '%s'", in, out.p);
	buf_free(&out);
	return fail;
}

static int t_values(char *why, size_t n)
{
	int fail;

	redact_clear();
	redact_add("sk-ant-canary-123456");
	redact_add("abc");            /* too short: ignored */
	redact_add_url("https://x-access-token:ghs_TOKEN42@github.com/a/b.git");
	redact_add("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n"
		   "-----END OPENSSH PRIVATE KEY-----\n");
	fail = check("key=sk-ant-canary-123456 and again sk-ant-canary-123456",
		     "key=[REDACTED] and again [REDACTED]", why, n) ||
	       check("abc stays", "abc stays", why, n) ||
	       check("push to https://x-access-token:ghs_TOKEN42@github.com failed",
		     "push to https://x-access-token:[REDACTED]@github.com failed", why, n) ||
	       check("bad key line b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE here",
		     "bad key line [REDACTED] here", why, n) ||
	       check("-----BEGIN OPENSSH PRIVATE KEY----- is not secret",
		     "-----BEGIN OPENSSH PRIVATE KEY----- is not secret", why, n);
	redact_clear();
	if (!fail)
		fail = check("sk-ant-canary-123456", "sk-ant-canary-123456", why, n);
	return fail;
}

const struct st_case redact_tests[] = {
	{ "values", t_values },
	{ NULL, NULL },
};
