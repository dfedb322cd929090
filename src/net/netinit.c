/*
 * netinit.c: see netinit.h.
 */
#include <stdio.h>

#include <curl/curl.h>
#include <git2.h>
#include <psa/crypto.h>

#include "net/ca.h"
#include "net/netinit.h"

int net_global_init(char *err, size_t errlen)
{
	static int done;     /* the libraries' global init runs once per process */
	psa_status_t ps;
	CURLcode cc;
	int gr;

	if (done)
		return 0;
	ps = psa_crypto_init();
	if (ps != PSA_SUCCESS) {
		snprintf(err, errlen, "mbedTLS PSA crypto failed to start (status %d): no entropy source?", (int)ps);
		return -1;
	}
	cc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "libcurl failed to start: %s", curl_easy_strerror(cc));
		return -1;
	}
	gr = git_libgit2_init();
	if (gr < 0) {
		const git_error *e = git_error_last();
		snprintf(err, errlen, "libgit2 failed to start: %s", e && e->message ? e->message : "unknown error");
		return -1;
	}
	if (ca_git_apply(err, errlen) != 0)
		return -1;
	done = 1;
	return 0;
}
