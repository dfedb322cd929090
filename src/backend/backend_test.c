/*
 * backend_test.c: unit tests of the local sealer's refusals: an envelope
 * opened with another key, a tampered one, a non-envelope, and a key file
 * that others can read.  The round trips themselves are deployment
 * checks (backend_selftest.c).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/seal.h"
#include "selftest/suites.h"

/* A damaged envelope and a foreign key are refused with a reason. */
static int t_envelope_refusals(char *why, size_t n)
{
	struct buf sealed = BUF_INIT, opened = BUF_INIT;
	struct err e = ERR_INIT;
	struct sealer *a = NULL, *b = NULL;
	char dir[256], ka[300], kb[300], *p;
	int fail = 1;

	if (st_tmpdir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(ka, sizeof(ka), "%s/a.key", dir);
	snprintf(kb, sizeof(kb), "%s/b.key", dir);
	if (!(a = seal_local_new(ka, &e)) || !(b = seal_local_new(kb, &e)) ||
	    envelope_seal(a, "secret", 6, &sealed, &e) != 0)
		st_fail(why, n, "%s", e.msg);
	else if (envelope_open(b, sealed.p, sealed.len, &opened, &e) == 0)
		st_fail(why, n, "a different local key opened the envelope");
	else if (!(p = strstr(sealed.p, "\"encryptedData\":\"")))
		st_fail(why, n, "no encryptedData");
	else {
		p += 17;
		*p = *p == 'A' ? 'B' : 'A';
		if (envelope_open(a, sealed.p, sealed.len, &opened, &e) == 0)
			st_fail(why, n, "a tampered envelope opened");
		else if (!strstr(e.msg, "authentication tag"))
			st_fail(why, n, "unexpected reason: %s", e.msg);
		else if (envelope_open(a, "{\"version\":\"v1\"}", 16, &opened, &e) == 0)
			st_fail(why, n, "a non-envelope opened");
		else
			fail = 0;
	}
	if (a)
		seal_free(a);
	if (b)
		seal_free(b);
	buf_free(&sealed);
	buf_free(&opened);
	st_rmtree(dir);
	return fail;
}

static int t_key_file_mode(char *why, size_t n)
{
	struct err e = ERR_INIT;
	struct sealer *s;
	struct stat st;
	char dir[256], key[300];
	int fail = 1;

	if (st_tmpdir(dir, sizeof(dir)) != 0)
		return st_fail(why, n, "cannot create a directory under TMPDIR");
	snprintf(key, sizeof(key), "%s/ccr.key", dir);
	if (!(s = seal_local_new(key, &e)))
		st_fail(why, n, "%s", e.msg);
	else {
		seal_free(s);
		if (stat(key, &st) != 0 || (st.st_mode & 0777) != 0600)
			st_fail(why, n, "the key file is not mode 0600");
		else if (chmod(key, 0644) != 0 || (s = seal_local_new(key, &e)) != NULL)
			st_fail(why, n, "a world-readable key file was accepted");
		else
			fail = 0;
	}
	if (fail == 0 && s)
		seal_free(s);
	st_rmtree(dir);
	return fail;
}

const struct st_case backend_tests[] = {
	{ "envelope_refusals", t_envelope_refusals },
	{ "key_file_mode", t_key_file_mode },
	{ NULL, NULL },
};
