/*
 * ccr.h: the commands of the multicall binary.
 *
 * Each command lives in its own file with a small main of this shape; the
 * dispatch table in main.c maps names (and argv[0] links such as
 * `ccr-serve`) to them.  A command returns its exit status: 0 success,
 * 1 failure, 2 usage error.
 */
#ifndef CCR_H
#define CCR_H

#ifndef CCR_VERSION
#define CCR_VERSION "0.0.0-dev"
#endif

int serve_main(int argc, char **argv);
int job_main(int argc, char **argv);
int selftest_main(int argc, char **argv);
int version_main(int argc, char **argv);
int gcp_main(int argc, char **argv);
int git_main(int argc, char **argv);
int sbx_init_main(int argc, char **argv);
int help_main(int argc, char **argv);

/* usage_print: the command list, for `ccr help` and usage errors. */
void usage_print(void *stream);

#endif
