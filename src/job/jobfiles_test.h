/*
 * jobfiles_selftest.h: what the two files of the `jobfiles` selftest suite
 * share: small file helpers (jobfiles_test.c) and the cases of
 * jobfiles_run_test.c, listed in jobfiles_test.c's table.
 * Every case is a struct st_case function: 0, or -1 with why set.
 */
#ifndef CCR_JOB_JOBFILES_SELFTEST_H
#define CCR_JOB_JOBFILES_SELFTEST_H

#include <stddef.h>
#include <sys/types.h>

#include "util/buf.h"

/* A private directory under TMPDIR (default /tmp); 0 or -1. */
int jft_tmp_dir(char *dir, size_t n);
/* Remove a tree (best effort). */
void jft_rm_dir(const char *dir);
/* Write text to dir/rel with mode; 0 or -1. */
int jft_put_file(const char *dir, const char *rel, const char *text, mode_t mode);
/* mkdir dir/rel (an existing one is fine); 0 or -1. */
int jft_sub_dir(const char *dir, const char *rel, mode_t mode);
/* dir/rel as a symlink to target; 0 or -1. */
int jft_sub_link(const char *dir, const char *rel, const char *target);
/* The contents of dir/rel into out (reset first); -1 when unreadable. */
int jft_slurp(const char *dir, const char *rel, struct buf *out);
/* 1 when dir/rel exists (not following a last symlink). */
int jft_exists(const char *dir, const char *rel);
/* The permission bits of path, or -1. */
int jft_mode_of(const char *path);
/* 1 when /bin/sh can run (the pre-execution cases need it). */
int jft_have_sh(void);

/* The cases of jobfiles_run_test.c. */
int jft_env_file(char *why, size_t n);
int jft_pre_ok(char *why, size_t n);
int jft_pre_fail(char *why, size_t n);
int jft_pre_timeout(char *why, size_t n);
int jft_pre_cap(char *why, size_t n);
int jft_agent_env(char *why, size_t n);
int jft_pre_env(char *why, size_t n);
int jft_glob(char *why, size_t n);
int jft_upload(char *why, size_t n);
int jft_mcplog(char *why, size_t n);
int jft_prices(char *why, size_t n);
int jft_session_paths(char *why, size_t n);

#endif
