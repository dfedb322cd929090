/*
 * runner.c: st_run(), the harness of `ccr selftest` and of `ccr-unit`.
 *
 * Design: one loop over a table of suites, so both binaries select cases
 * the same way ("suite/case" names starting with one of the PREFIX
 * arguments), print the same line per case (name, time, and the note a
 * passing case left) and end with the same "N passed, M failed" line that
 * scripts and tests read.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "selftest/selftest.h"

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

/* One case: 1 passed, 0 failed. */
static int run_case(const char *full, const struct st_case *c)
{
	char why[512] = "";
	double t0 = now_ms();

	if (c->run(why, sizeof(why)) == 0) {
		printf("ok   %-40s %7.1f ms%s%s\n", full, now_ms() - t0, why[0] ? "  " : "", why);
		return 1;
	}
	printf("FAIL %-40s %s\n", full, why[0] ? why : "(no reason given)");
	return 0;
}

int st_run(const char *prog, const struct st_suite *suites, size_t n, int argc, char **argv)
{
	int passed = 0, failed = 0, list = 0;
	size_t s;

	argc--, argv++;
	if (argc > 0 && (strcmp(argv[0], "--list") == 0 || strcmp(argv[0], "-l") == 0))
		list = 1, argc--, argv++;
	if (argc > 0 && argv[0][0] == '-') {
		fprintf(stderr, "usage: %s [--list] [SUITE[/CASE]...]\n", prog);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (s = 0; s < n; s++) {
		const struct st_case *c;
		for (c = suites[s].cases; c->name; c++) {
			char full[128];

			snprintf(full, sizeof(full), "%s/%s", suites[s].name, c->name);
			if (!selected(full, argc, argv))
				continue;
			if (list)
				printf("%s\n", full);
			else if (run_case(full, c))
				passed++;
			else
				failed++;
		}
	}
	if (list)
		return 0;
	if (passed + failed == 0) {
		fprintf(stderr, "%s: no case matches\n", prog);
		return 2;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
