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

extern const struct st_case http_tests[];
extern const struct st_case proxy_tests[];
extern const struct st_case git_tests[];
extern const struct st_case jobfiles_tests[];
extern const struct st_case child_tests[];
extern const struct st_case task_tests[];
extern const struct st_case msgsock_tests[];
extern const struct st_case settings_tests[];

#endif
