/*
 * init.c: pid 1 of the agent's sandbox (see sandbox.h and enter.c).
 *
 * The box's first process forks the agent and then execs this, so that
 * the process every other one in the box is re-parented to is a fresh
 * image: nothing of ccr job's memory (keys, the payload) stays in the box.
 * It reaps every orphan until the agent itself exits, hands the agent's
 * wait status to the process outside on a pipe, and exits; the kernel
 * then kills whatever is left in the box.  Signals from ccr's process
 * group are ignored here (pid 1 has no default actions anyway): the agent
 * gets them directly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

_Noreturn void sbx_reap(pid_t agent, int status_fd)
{
	int st = 0, agent_st = 0;
	pid_t p;

	for (;;) {
		p = waitpid(-1, &st, 0);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0 || p == agent) {
			agent_st = p == agent ? st : 0;
			break;
		}
	}
	(void)!write(status_fd, &agent_st, sizeof(agent_st));
	_exit(0);
}

int sbx_init_main(int argc, char **argv)
{
	char *end1 = NULL, *end2 = NULL;
	long agent = argc == 3 ? strtol(argv[1], &end1, 10) : 0;
	long fd = argc == 3 ? strtol(argv[2], &end2, 10) : -1;

	if (argc != 3 || *end1 || *end2 || agent <= 0 || fd < 0 || getpid() != 1) {
		fprintf(stderr, "ccr sandbox-init: internal command of the agent's sandbox (pid 1 of it), not for direct use\n");
		return 2;
	}
	sbx_reap((pid_t)agent, (int)fd);
}
