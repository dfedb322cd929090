/*
 * job.c: `ccr job`, the task runner.  Not built yet: see issue 4.
 */
#include <stdio.h>

#include "ccr.h"

int job_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "ccr job: not available in this build yet\n");
	return 1;
}
