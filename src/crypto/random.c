/*
 * random.c: kernel randomness for keys, IVs and nonces.
 *
 * Design: getrandom(2) with flags 0 reads the kernel CSPRNG (the same pool
 * as /dev/urandom) but needs no file, so it works in a FROM scratch image
 * or a chroot without /dev, and it blocks only until the pool has been
 * seeded once at boot.  Requests of more than 256 bytes may be cut short
 * and a signal may interrupt the call, so it loops.  /dev/urandom is
 * used only when the kernel predates the call (ENOSYS, Linux < 3.17).
 * No user-space DRBG: every request goes to the kernel, which keeps
 * fork() safety trivial.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include "crypto/crypto.h"

static int cr_random_devurandom(unsigned char *p, size_t n)
{
	int fd, saved;

	do {
		fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			saved = r == 0 ? EIO : errno;
			(void)close(fd);
			errno = saved;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	if (close(fd) != 0 && errno != EINTR)
		return -1;
	return 0;
}

int cr_random(void *out, size_t n)
{
	unsigned char *p = out;
	size_t left = n;

	while (left > 0) {
		ssize_t r = getrandom(p, left, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOSYS && cr_random_devurandom(p, left) == 0)
				return 0;
			goto fail;
		}
		if (r == 0) {
			errno = EIO;
			goto fail;
		}
		p += r;
		left -= (size_t)r;
	}
	return 0;
fail:
	{
		int saved = errno;
		cr_wipe(out, n);
		errno = saved;
	}
	return -1;
}
