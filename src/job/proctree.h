/*
 * proctree.h: the processes below one ancestor, read from /proc.
 *
 * The job uses it twice.  The idle watchdog asks how much CPU time every
 * process the agent started has used (proctree_cpu_ticks), so a tool that
 * is silent but busy counts as activity.  The orphan guard (runner.c)
 * kills every descendant of the CLI when `ccr job` itself dies, including
 * processes that left the CLI's process group (proctree_kill).
 *
 * A snapshot is taken on each call; no state is kept between calls.
 * Processes that appear or vanish during a scan are handled as the scan
 * found them (the callers repeat when that matters).
 */
#ifndef CCR_PROCTREE_H
#define CCR_PROCTREE_H

#include <sys/types.h>

/* proctree_cpu_ticks: user + system time (clock ticks) of every process
 * below root (root itself excluded), including the time of their children
 * that already exited and were reaped. */
unsigned long long proctree_cpu_ticks(pid_t root);

/* proctree_kill: send sig to every process below root (root excluded);
 * returns how many were signalled. */
int proctree_kill(pid_t root, int sig);

#endif
