/*
 * ca.c: trusted roots for curl and libgit2 (see ca.h for the order).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <git2.h>
#include <mbedtls/x509_crt.h>

#include "net/ca.h"
#include "settings/settings.h"
#include "util/fdio.h"

extern const unsigned char ccr_ca_bundle[];
extern const size_t ccr_ca_bundle_len;

const unsigned char *ca_embedded(size_t *len)
{
	*len = ccr_ca_bundle_len;
	return ccr_ca_bundle;
}

void ca_source_get(struct ca_source *out)
{
	const char *file = settings_str(SET_SSL_CERT_FILE);
	const char *dir = settings_str(SET_SSL_CERT_DIR);

	memset(out, 0, sizeof(*out));
	if (file && *file) {
		out->kind = CA_FILE;
		out->path = file;
	} else if (dir && *dir) {
		out->kind = CA_DIR;
		out->path = dir;
	} else {
		out->kind = CA_EMBEDDED;
		out->pem = ca_embedded(&out->pem_len);
	}
}

int ca_count_embedded(char *err, size_t errlen)
{
	mbedtls_x509_crt chain;
	const mbedtls_x509_crt *c;
	int ret, n = 0;

	mbedtls_x509_crt_init(&chain);
	/* mbedTLS wants the PEM length including its terminating NUL. */
	ret = mbedtls_x509_crt_parse(&chain, ccr_ca_bundle, ccr_ca_bundle_len + 1);
	if (ret < 0) {
		snprintf(err, errlen, "the compiled-in CA bundle does not parse (mbedTLS -0x%04x)", -ret);
		mbedtls_x509_crt_free(&chain);
		return -1;
	}
	if (ret > 0) {
		snprintf(err, errlen, "%d certificates in the compiled-in CA bundle failed to parse", ret);
		mbedtls_x509_crt_free(&chain);
		return -1;
	}
	for (c = &chain; c && c->raw.len; c = c->next)
		n++;
	mbedtls_x509_crt_free(&chain);
	return n;
}

int ca_curl_apply(void *curl)
{
	struct ca_source src;
	struct curl_blob blob;
	CURLcode rc;

	ca_source_get(&src);
	switch (src.kind) {
	case CA_FILE:
		rc = curl_easy_setopt(curl, CURLOPT_CAINFO, src.path);
		break;
	case CA_DIR:
		rc = curl_easy_setopt(curl, CURLOPT_CAPATH, src.path);
		break;
	default:
		blob.data = (void *)src.pem;
		blob.len = src.pem_len;
		blob.flags = CURL_BLOB_NOCOPY;
		rc = curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
		break;
	}
	return rc == CURLE_OK ? 0 : -1;
}

/* Write the compiled-in bundle to a 0600 temporary file, once. */
static int embedded_to_file(char *path, size_t pathlen, char *err, size_t errlen)
{
	const char *tmp = settings_str(SET_TMPDIR);
	int fd;

	snprintf(path, pathlen, "%s/ccr-ca-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(path);
	if (fd < 0) {
		snprintf(err, errlen, "cannot write the CA bundle for libgit2 to %s: %s", path, strerror(errno));
		return -1;
	}
	if (fd_write_all(fd, ccr_ca_bundle, ccr_ca_bundle_len) != 0) {
		snprintf(err, errlen, "cannot write the CA bundle to %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd) != 0) {
		snprintf(err, errlen, "cannot write the CA bundle to %s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

int ca_git_apply(char *err, size_t errlen)
{
	char tmp_path[512];
	struct ca_source src;
	const char *file = NULL, *dir = NULL;
	int rc;

	tmp_path[0] = 0;
	ca_source_get(&src);
	if (src.kind == CA_FILE) {
		file = src.path;
	} else if (src.kind == CA_DIR) {
		dir = src.path;
	} else {
		/* libgit2 parses the file at once, so it can go right after. */
		if (embedded_to_file(tmp_path, sizeof(tmp_path), err, errlen) != 0)
			return -1;
		file = tmp_path;
	}
	rc = git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file, dir);
	if (tmp_path[0])
		unlink(tmp_path);
	if (rc != 0) {
		const git_error *e = git_error_last();
		snprintf(err, errlen, "libgit2 rejected the CA roots %s: %s", src.kind == CA_EMBEDDED ? "(compiled in)" : src.path,
			 e && e->message ? e->message : "unknown error");
		return -1;
	}
	return 0;
}
