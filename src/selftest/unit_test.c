/*
 * unit_test.c: main() of ccr-unit, the unit-test binary.
 *
 *   zig-out/bin/ccr-unit [--list] [SUITE[/CASE]...]
 *
 * `zig build test` builds it from ccr's own sources (main.c left out)
 * plus every `*_test.c` file, and runs it; scripts/test runs it after
 * `ccr selftest`.  The harness and output are the selftest's (runner.c):
 * one line per case, then "N passed, M failed"; exit 1 when anything
 * failed, 2 on a usage error.  These cases check ccr's own logic
 * (parsers, encoders, state machines, policy tables), which does not
 * change with the machine, so they are not shipped in ccr.
 */
#include "selftest/selftest.h"
#include "selftest/suites.h"

static const struct st_suite suites[] = {
	{ "util", util_tests },
	{ "json", jsjson_tests },
	{ "jscheck", jscheck_tests },
	{ "gcp", gcp_tests },
	{ "backend", backend_tests },
	{ "http", http_tests },
	{ "redact", redact_tests },
	{ "proxy", proxy_tests },
	{ "git", git_tests },
	{ "jobfiles", jobfiles_tests },
	{ "sandbox", sandbox_tests },
	{ "egress", egress_tests },
	{ "deploy", deploy_tests },
	{ "child", child_tests },
	{ "task", task_tests },
	{ "msgsock", msgsock_tests },
	{ "settings", settings_tests },
};

int main(int argc, char **argv)
{
	return st_run("ccr-unit", suites, sizeof(suites) / sizeof(suites[0]), argc, argv);
}
