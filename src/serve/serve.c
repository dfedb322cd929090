/*
 * serve.c: `ccr serve`, the HTTP API.  Not built yet: see issue 5.
 */
#include <stdio.h>

#include "ccr.h"

int serve_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "ccr serve: not available in this build yet\n");
	return 1;
}
