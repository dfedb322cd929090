/*
 * git_selftest.h: the fixtures the git selftests share
 * (git_fx_test.c); the cases are in git_test.c.  Every function
 * returns 0 or -1 (libgit2's error, or errno, says why) unless noted.
 */
#ifndef CCR_GIT_SELFTEST_H
#define CCR_GIT_SELFTEST_H

#include <stddef.h>

#include <git2.h>

#include "git/git.h"
#include "git/git_int.h"
#include "util/err.h"

/* A temporary directory with a bare origin (README.md, app.txt on main)
 * and a workspace holding a gop context (local paths allowed). */
struct fx {
	char tmp[512];
	char bare[600];
	char ws[600];
	struct gop_ctx c;
	struct err e;
};

/* Create the fixture; on failure why says what went wrong (st_fail). */
int gst_fx_open(struct fx *f, char *why, size_t whylen);
void gst_fx_close(struct fx *f);
/* Clone origin into <ws>/<name> (dest gets the path). */
int gst_fx_clone(struct fx *f, const char *name, char *dest, size_t n, char *why, size_t whylen);

/* Remove a directory tree (best effort). */
void gst_rm_rf(const char *dir);
/* A fresh temporary directory into out. */
int gst_mktmp(char *out, size_t n);
/* Write text to <dir>/<rel>, creating parent directories. */
int gst_put(const char *dir, const char *rel, const char *text);
/* The content of path at rev (e.g. "HEAD") in the repository at repo_dir. */
int gst_blob_at(const char *repo_dir, const char *rev, const char *path, char *out, size_t n);
/* The 40-hex target of ref. */
int gst_ref_hex(const char *repo_dir, const char *ref, char out[41]);
/* The 40-hex first parent of commit sha. */
int gst_parent_hex(const char *repo_dir, const char *sha, char out[41]);
/* A bare repository at dir with HEAD on main. */
int gst_bare_init(const char *dir);
/* Commit files (NULL-terminated name, text pairs) on branch of a bare repo. */
int gst_bare_commit(const char *dir, const char *branch, const char *const *files, const char *msg);
/* The libgit2 transport factory of "ccrst://" (the in-process upload-pack). */
int gst_fake_transport(git_transport **out, git_remote *owner, void *param);

#endif
