/*
 * suites.h: every selftest table, listed once in selftest.c.
 * A module adding a suite declares its table here.
 */
#ifndef CCR_SUITES_H
#define CCR_SUITES_H

#include "selftest/selftest.h"

extern const struct st_case util_selftests[];
extern const struct st_case child_selftests[];
extern const struct st_case crypto_selftests[];
extern const struct st_case jsjson_selftests[];
extern const struct st_case jscheck_selftests[];
extern const struct st_case net_selftests[];
extern const struct st_case gcp_selftests[];
extern const struct st_case backend_selftests[];
extern const struct st_case task_selftests[];
extern const struct st_case http_selftests[];
extern const struct st_case redact_selftests[];
extern const struct st_case proxy_selftests[];
extern const struct st_case git_selftests[];
extern const struct st_case jobfiles_selftests[];
extern const struct st_case msgsock_selftests[];
extern const struct st_case sandbox_selftests[];
extern const struct st_case egress_selftests[];
extern const struct st_case deploy_selftests[];
extern const struct st_case settings_selftests[];

#endif
