/*
 * selftest.c: `ccr selftest [--list] [PREFIX...]`.
 *
 * Runs every case of every suite in the table below (or those whose
 * "suite/case" name starts with one of the PREFIX arguments), prints one
 * line per case, and ends with "N passed, M failed".  Exit status 1 when
 * anything failed, 2 on a usage error.  The cases need only the binary and
 * a writable TMPDIR (default /tmp), so this proves a deployment works even
 * in an empty FROM scratch image.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ccr.h"
#include "selftest/selftest.h"
#include "selftest/suites.h"

struct suite {
	const char *name;
	const struct st_case *cases;
};

static const struct suite suites[] = {
	{ "util", util_selftests },
	{ "crypto", crypto_selftests },
	{ "json", jsjson_selftests },
	{ "jscheck", jscheck_selftests },
	{ "net", net_selftests },
	{ "gcp", gcp_selftests },
	{ "backend", backend_selftests },
	{ "task", task_selftests },
	{ "http", http_selftests },
	{ "redact", redact_selftests },
	{ "child", child_selftests },
	{ "proxy", proxy_selftests },
	{ "git", git_selftests },
	{ "jobfiles", jobfiles_selftests },
	{ "msgsock", msgsock_selftests },
	{ "sandbox", sandbox_selftests },
	{ "egress", egress_selftests },
	{ "deploy", deploy_selftests },
	{ "settings", settings_selftests },
};

#define N_SUITES (sizeof(suites) / sizeof(suites[0]))

static int selected(const char *full, int argc, char **argv)
{
	int i;

	if (argc == 0)
		return 1;
	for (i = 0; i < argc; i++)
		if (strncmp(full, argv[i], strlen(argv[i])) == 0)
			return 1;
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int selftest_main(int argc, char **argv)
{
	int passed = 0, failed = 0, list = 0;
	size_t s;

	argc--, argv++;
	if (argc > 0 && (strcmp(argv[0], "--list") == 0 || strcmp(argv[0], "-l") == 0))
		list = 1, argc--, argv++;
	if (argc > 0 && argv[0][0] == '-') {
		fprintf(stderr, "usage: ccr selftest [--list] [SUITE[/CASE]...]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (s = 0; s < N_SUITES; s++) {
		const struct st_case *c;
		for (c = suites[s].cases; c->name; c++) {
			char full[128], why[512] = "";
			double t0;
			int rc;

			snprintf(full, sizeof(full), "%s/%s", suites[s].name, c->name);
			if (!selected(full, argc, argv))
				continue;
			if (list) {
				printf("%s\n", full);
				continue;
			}
			t0 = now_ms();
			rc = c->run(why, sizeof(why));
			if (rc == 0) {
				passed++;
				printf("ok   %-40s %7.1f ms%s%s\n", full, now_ms() - t0, why[0] ? "  " : "", why);
			} else {
				failed++;
				printf("FAIL %-40s %s\n", full, why[0] ? why : "(no reason given)");
			}
		}
	}
	if (list)
		return 0;
	if (passed + failed == 0) {
		fprintf(stderr, "ccr selftest: no case matches\n");
		return 2;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
