/*
 * entropy_getrandom.c: mbedTLS's hardware entropy hook, fed by getrandom(2).
 *
 * With MBEDTLS_ENTROPY_HARDWARE_ALT mbedTLS calls mbedtls_hardware_poll()
 * for entropy.  getrandom needs no file system, so TLS works in a FROM
 * scratch image or an empty chroot.  It blocks only until the kernel's pool
 * is first initialised, which on a running system has long happened.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/random.h>

int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len, size_t *olen);

int mbedtls_hardware_poll(void *data, unsigned char *output, size_t len, size_t *olen)
{
	size_t done = 0;

	(void)data;
	while (done < len) {
		ssize_t n = getrandom(output + done, len - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*olen = done;
			return -1;
		}
		done += (size_t)n;
	}
	*olen = done;
	return 0;
}
