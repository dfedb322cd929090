/*
 * version.c: `ccr version`: ccr's version and each linked library's,
 * read from the library itself at run time where it offers a call for it.
 */
#include <stdio.h>

#include <cJSON.h>
#include <curl/curl.h>
#include <git2.h>
#include <http_parser.h>
#include <mbedtls/version.h>
#include <zlib.h>

#include "ccr.h"

int version_main(int argc, char **argv)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	char mbed[32];
	int gmaj = 0, gmin = 0, grev = 0;
	unsigned long hp = http_parser_version();

	(void)argc;
	(void)argv;
	mbedtls_version_get_string(mbed);
	if (git_libgit2_version(&gmaj, &gmin, &grev) != 0)
		gmaj = gmin = grev = -1;
	printf("ccr %s\n", CCR_VERSION);
	printf("libcurl %s (%s)\n", cv->version, cv->ssl_version ? cv->ssl_version : "no TLS");
	printf("mbedtls %s\n", mbed);
	printf("libgit2 %d.%d.%d\n", gmaj, gmin, grev);
	printf("zlib %s\n", zlibVersion());
	printf("cjson %s\n", cJSON_Version());
	printf("http-parser %lu.%lu.%lu\n", (hp >> 16) & 255, (hp >> 8) & 255, hp & 255);
	printf("bearssl 0.6 (no run-time version call; pinned in vendor/sources.lock)\n");
	return 0;
}
