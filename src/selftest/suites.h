/*
 * suites.h: every test table, listed once: the deployment suites in
 * selftest.c (`ccr selftest`), the unit suites in unit_test.c (ccr-unit).
 * A module adding a suite declares its table here.
 */
#ifndef CCR_SUITES_H
#define CCR_SUITES_H

#include "selftest/selftest.h"

/* ---- deployment checks (`*_selftest.c`, linked into ccr) -------------- */
extern const struct st_case crypto_selftests[];
extern const struct st_case net_selftests[];
extern const struct st_case backend_selftests[];
extern const struct st_case sandbox_selftests[];

/* ---- unit tests (`*_test.c`, linked into ccr-unit only) ---------------- */
extern const struct st_case util_tests[];
extern const struct st_case jsjson_tests[];
extern const struct st_case jscheck_tests[];
extern const struct st_case gcp_tests[];
extern const struct st_case backend_tests[];
extern const struct st_case redact_tests[];
extern const struct st_case sandbox_tests[];
extern const struct st_case egress_tests[];
extern const struct st_case deploy_tests[];

/* ---- unit tests still named `*_selftest.c` ------------------------------
 * Being moved or split by other changes; they are linked into ccr-unit
 * only (build.zig, unit_legacy), and are to be renamed `*_test.c` with
 * their tables `xxx_tests` once those changes are in. */
extern const struct st_case http_selftests[];      /* src/http/server_selftest.c */
extern const struct st_case proxy_selftests[];     /* src/job/proxy_selftest.c */
extern const struct st_case git_selftests[];       /* src/job/git_selftest.c */
extern const struct st_case jobfiles_selftests[];  /* src/job/jobfiles_selftest.c */

#endif
