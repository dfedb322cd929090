/*
 * fdio.c: see fdio.h.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/fdio.h"

static int all(int fd, const void *p, size_t n, int use_send)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = use_send ? send(fd, c, n, MSG_NOSIGNAL) : write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int fd_write_all(int fd, const void *p, size_t n)
{
	return all(fd, p, n, 0);
}

int fd_send_all(int fd, const void *p, size_t n)
{
	return all(fd, p, n, 1);
}
