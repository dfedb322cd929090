/*
 * ca.h: where ccr's TLS clients (curl, libgit2) get their trusted roots.
 *
 * Order: $SSL_CERT_FILE (a PEM bundle), then $SSL_CERT_DIR (a hashed
 * directory), then the bundle compiled into the binary at build time, so
 * HTTPS works in an image that holds nothing but /ccr.  libgit2 with
 * mbedTLS only loads roots from a path, so for the compiled-in bundle
 * ca_git_apply writes a 0600 temporary file, has libgit2 parse it, and
 * removes it again.
 */
#ifndef CCR_CA_H
#define CCR_CA_H

#include <stddef.h>

enum ca_kind { CA_EMBEDDED, CA_FILE, CA_DIR };

struct ca_source {
	enum ca_kind kind;
	const char *path;                /* CA_FILE, CA_DIR */
	const unsigned char *pem;        /* CA_EMBEDDED: NUL-terminated PEM */
	size_t pem_len;
};

/* ca_source_get: the roots to use now, from the environment or built in. */
void ca_source_get(struct ca_source *out);

/* ca_embedded: the compiled-in bundle (NUL-terminated; len excludes NUL). */
const unsigned char *ca_embedded(size_t *len);

/* ca_count_embedded: parse the compiled-in bundle with mbedTLS; returns
 * the number of certificates, or -1 with a message in err. */
int ca_count_embedded(char *err, size_t errlen);

/* ca_curl_apply: point a curl easy handle (CURL *) at the roots. 0 or -1. */
int ca_curl_apply(void *curl);

/* ca_git_apply: point libgit2 at the roots (after git_libgit2_init).
 * 0, or -1 with a message in err. */
int ca_git_apply(char *err, size_t errlen);

#endif
