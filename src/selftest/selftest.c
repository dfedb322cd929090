/*
 * selftest.c: `ccr selftest [--list] [PREFIX...]`, the deployment checks.
 *
 * Runs every case of every suite in the table below (or those whose
 * "suite/case" name starts with one of the PREFIX arguments), prints one
 * line per case, and ends with "N passed, M failed" (runner.c).  Exit
 * status 1 when anything failed, 2 on a usage error.  The cases need only
 * the binary and a writable TMPDIR (default /tmp), so this proves a
 * deployment works even in an empty FROM scratch image.
 *
 * Only what can differ where the binary runs belongs here: the crypto
 * known answers, the compiled-in CA roots, TLS, curl and libgit2 on
 * loopback, the storage and sealing round trips, inotify, and whether the
 * agent's sandbox can be built.  The unit tests (parsers, encoders, state
 * machines, policy tables) are in the separate binary ccr-unit
 * (unit_test.c, `zig build test`), and are not linked into ccr.
 */
#include "ccr.h"
#include "selftest/selftest.h"
#include "selftest/suites.h"

static const struct st_suite suites[] = {
	{ "crypto", crypto_selftests },
	{ "net", net_selftests },
	{ "backend", backend_selftests },
	{ "sandbox", sandbox_selftests },
};

int selftest_main(int argc, char **argv)
{
	return st_run("ccr selftest", suites, sizeof(suites) / sizeof(suites[0]), argc, argv);
}
