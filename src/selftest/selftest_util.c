/*
 * selftest_util.c: helpers shared by the selftest case tables.
 *
 * Design: st_fail() formats straight into the caller's `why` buffer (no
 * allocation; output is truncated to whylen).  st_hexeq() compares bytes
 * with an expected value written in hex, so test vectors can be pasted as
 * they appear in RFCs and NIST files: upper- or lower-case digits, with
 * spaces, tabs and newlines between digit pairs ignored.  st_tmpdir() and
 * st_rmtree() give a case its private directory under TMPDIR and remove
 * it afterwards, so cases leave nothing behind.
 */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "selftest/selftest.h"
#include "util/hex.h"

int st_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		(void)vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return 1;
}

static int st_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int st_hexeq(const void *got, size_t n, const char *want)
{
	const unsigned char *g = got;
	size_t i = 0;

	for (;;) {
		int hi, lo;

		while (st_isspace(*want))
			want++;
		if (*want == '\0')
			break;
		hi = hex_digit(want[0]);
		lo = hi < 0 ? -1 : hex_digit(want[1]);
		if (lo < 0)
			return -1;      /* malformed expectation: never "equal" */
		if (i >= n || g[i] != (unsigned)((hi << 4) | lo))
			return 1;
		i++;
		want += 2;
	}
	return i == n ? 0 : 1;
}

int st_tmpdir(char *dir, size_t n)
{
	const char *tmp = getenv("TMPDIR");
	int len = snprintf(dir, n, "%s/ccr-selftest-XXXXXX", tmp && *tmp ? tmp : "/tmp");

	if (len < 0 || (size_t)len >= n) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return mkdtemp(dir) ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

void st_rmtree(const char *dir)
{
	(void)nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
