/*
 * selftest.h: the test registry and harness shared by `ccr selftest` and
 * the unit-test binary `ccr-unit`.
 *
 * Two kinds of checks use it, and each lives in its own binary:
 *   - deployment checks (`*_selftest.c`, linked into ccr, listed in
 *     selftest.c): what can differ where the binary is deployed: crypto
 *     known answers, the compiled-in CA roots and TLS, curl and libgit2 on
 *     loopback, storage and sealing round trips, inotify, the sandbox;
 *   - unit tests (`*_test.c`, linked only into zig-out/bin/ccr-unit, which
 *     `zig build test` builds and runs; listed in unit_test.c): parsers,
 *     encoders, state machines, policy tables.
 * A module exports one table of cases, `const struct st_case xxx_selftests[]`
 * (deployment) or `xxx_tests[]` (unit), ended by an entry whose name is
 * NULL, declared in suites.h.  A case returns 0 when it passes; otherwise
 * it writes a one-line reason into `why` (at most `whylen` bytes, NUL
 * included) and returns non-zero.  A passing case may leave a short note in
 * `why` (a count, a version); it is printed too.  Cases must not need
 * anything outside the binary except a writable /tmp (TMPDIR), so that
 * they pass in an empty chroot or a FROM scratch image.
 */
#ifndef CCR_SELFTEST_H
#define CCR_SELFTEST_H

#include <stddef.h>

struct st_case {
	const char *name;
	int (*run)(char *why, size_t whylen);
};

struct st_suite {
	const char *name;
	const struct st_case *cases;
};

/* st_run: the harness behind both binaries.  argv[0] is the command name
 * (for messages), then [--list] [SUITE[/CASE]...]: runs every selected
 * case, one line each, and ends with "N passed, M failed".  Returns the
 * exit status: 0 all passed, 1 something failed, 2 usage error. */
int st_run(const char *prog, const struct st_suite *suites, size_t n, int argc, char **argv);

/* st_fail: format a reason into why and return 1 (for `return st_fail(...)`). */
int st_fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* st_hexeq: 0 when the n bytes at got equal the hex string want. */
int st_hexeq(const void *got, size_t n, const char *want);

/* st_tmpdir: create a private directory under TMPDIR (default /tmp) and
 * write its path into dir (n bytes); 0 or -1 with errno set. */
int st_tmpdir(char *dir, size_t n);

/* st_rmtree: remove dir and everything below it (best effort). */
void st_rmtree(const char *dir);

#endif
