/*
 * secenv.h: the operator's secrets, taken out of the environment (prefix
 * secenv_).
 *
 * A secret handed to ccr in its environment (CCR_API_KEYS,
 * CLOUDRUN_CALLBACK_SECRET) would otherwise stay readable for the life of
 * the process: in /proc/<pid>/environ (which shows the bytes the kernel
 * placed at exec, whatever setenv does later) and in every child that
 * inherits the environment.  secenv_take() copies the value, overwrites
 * the original bytes in place and removes the variable, so neither shows
 * it; secenv_get() returns the copy.  Call secenv_take() at start-up,
 * before any thread exists; secenv_get() is then safe from any thread.
 */
#ifndef CCR_SECENV_H
#define CCR_SECENV_H

/* secenv_take: move each named variable out of the environment. */
void secenv_take(const char *const *names, int n);

/* secenv_get: a taken value, or NULL (not set, or never taken). */
const char *secenv_get(const char *name);

#endif
