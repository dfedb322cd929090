/*
 * net_selftest.c: selftests for TLS start-up, the CA bundle, curl and
 * libgit2, all without leaving the process or the loopback interface.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <git2.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>

#include "net/ca.h"
#include "net/netinit.h"
#include "selftest/selftest.h"
#include "util/buf.h"

static int t_init(char *why, size_t n)
{
	return net_global_init(why, n) == 0 ? 0 : 1;
}

static int t_ca_bundle(char *why, size_t n)
{
	int count = ca_count_embedded(why, n);

	if (count < 0)
		return 1;
	if (count < 10)
		return st_fail(why, n, "only %d certificates in the compiled-in bundle", count);
	snprintf(why, n, "%d roots", count);
	return 0;
}

/* A TLS client configuration with the roots and a seeded DRBG. */
static int t_tls_config(char *why, size_t n)
{
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_entropy_context ent;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_x509_crt roots;
	size_t len;
	const unsigned char *pem = ca_embedded(&len);
	int ret, fail = 1;

	mbedtls_ssl_config_init(&conf);
	mbedtls_ssl_init(&ssl);
	mbedtls_entropy_init(&ent);
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_x509_crt_init(&roots);
	if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0)) != 0)
		st_fail(why, n, "DRBG seeding failed (-0x%04x): no entropy", -ret);
	else if ((ret = mbedtls_x509_crt_parse(&roots, pem, len + 1)) < 0)
		st_fail(why, n, "CA parse failed (-0x%04x)", -ret);
	else if ((ret = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
						    MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		st_fail(why, n, "ssl_config_defaults failed (-0x%04x)", -ret);
	else {
		mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
		mbedtls_ssl_conf_ca_chain(&conf, &roots, NULL);
		mbedtls_ssl_conf_min_tls_version(&conf, MBEDTLS_SSL_VERSION_TLS1_2);
		if ((ret = mbedtls_ssl_setup(&ssl, &conf)) != 0)
			st_fail(why, n, "ssl_setup failed (-0x%04x)", -ret);
		else if ((ret = mbedtls_ssl_set_hostname(&ssl, "example.com")) != 0)
			st_fail(why, n, "ssl_set_hostname failed (-0x%04x)", -ret);
		else
			fail = 0;
	}
	mbedtls_ssl_free(&ssl);
	mbedtls_ssl_config_free(&conf);
	mbedtls_x509_crt_free(&roots);
	mbedtls_ctr_drbg_free(&drbg);
	mbedtls_entropy_free(&ent);
	return fail;
}

/* A one-shot HTTP/1.1 server thread on 127.0.0.1. */
struct mini_server {
	int fd;
	int port;
	char request[2048];
};

static void *mini_serve(void *arg)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				    "Content-Length: 12\r\nConnection: close\r\n\r\nhello, ccr!\n";
	struct mini_server *ms = arg;
	size_t got = 0;
	int c = accept(ms->fd, NULL, NULL);

	if (c < 0)
		return NULL;
	while (got < sizeof(ms->request) - 1 && !strstr(ms->request, "\r\n\r\n")) {
		ssize_t r = read(c, ms->request + got, sizeof(ms->request) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		ms->request[got] = 0;
	}
	if (write(c, reply, sizeof(reply) - 1) < 0)
		ms->request[0] = 0;
	close(c);
	return NULL;
}

static int mini_listen(struct mini_server *ms)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(ms, 0, sizeof(*ms));
	ms->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ms->fd < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ms->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ms->fd, 1) != 0 ||
	    getsockname(ms->fd, (struct sockaddr *)&sa, &sl) != 0) {
		close(ms->fd);
		return -1;
	}
	ms->port = ntohs(sa.sin_port);
	return 0;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *userp)
{
	return buf_add(userp, data, size * nmemb) == 0 ? size * nmemb : 0;
}

static int t_curl_loopback(char *why, size_t n)
{
	struct mini_server ms;
	struct buf body = BUF_INIT;
	pthread_t th;
	char url[64];
	long status = 0;
	CURLcode rc;
	CURL *h;
	int fail = 1;

	if (mini_listen(&ms) != 0)
		return st_fail(why, n, "cannot listen on 127.0.0.1: %s", strerror(errno));
	if (pthread_create(&th, NULL, mini_serve, &ms) != 0) {
		close(ms.fd);
		return st_fail(why, n, "cannot start the server thread");
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/selftest", ms.port);
	h = curl_easy_init();
	if (!h) {
		st_fail(why, n, "curl_easy_init failed");
		shutdown(ms.fd, SHUT_RDWR);
	} else {
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
		rc = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (rc != CURLE_OK)
			st_fail(why, n, "request failed: %s", curl_easy_strerror(rc));
		else if (status != 200 || body.len != 12 || memcmp(body.p, "hello, ccr!\n", 12) != 0)
			st_fail(why, n, "unexpected answer: status %ld, %zu bytes", status, body.len);
		else if (!strstr(ms.request, "GET /selftest HTTP/1.1\r\n"))
			st_fail(why, n, "the server saw an unexpected request line");
		else
			fail = 0;
		curl_easy_cleanup(h);
	}
	pthread_join(th, NULL);
	close(ms.fd);
	buf_free(&body);
	return fail;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

static int git_fail(char *why, size_t n, const char *what)
{
	const git_error *e = git_error_last();

	return st_fail(why, n, "%s: %s", what, e && e->message ? e->message : "unknown libgit2 error");
}

/* Make a repository with one commit holding hello.txt; return its oid. */
static int make_repo(const char *path, git_oid *commit, char *why, size_t n)
{
	git_repository *repo = NULL;
	git_index *index = NULL;
	git_signature *sig = NULL;
	git_tree *tree = NULL;
	git_oid tree_id;
	char file[600];
	FILE *f;
	int fail = 1;

	if (git_repository_init(&repo, path, 0) != 0)
		return git_fail(why, n, "git init");
	snprintf(file, sizeof(file), "%s/hello.txt", path);
	if (!(f = fopen(file, "w")) || fputs("hello from ccr selftest\n", f) < 0 || fclose(f) != 0)
		st_fail(why, n, "cannot write %s", file);
	else if (git_repository_index(&index, repo) != 0 || git_index_add_bypath(index, "hello.txt") != 0 ||
		 git_index_write(index) != 0 || git_index_write_tree(&tree_id, index) != 0)
		git_fail(why, n, "git add");
	else if (git_tree_lookup(&tree, repo, &tree_id) != 0 ||
		 git_signature_new(&sig, "ccr selftest", "selftest@ccr.invalid", 1700000000, 0) != 0)
		git_fail(why, n, "tree or signature");
	else if (git_commit_create_v(commit, repo, "HEAD", sig, sig, NULL, "selftest commit\n", tree, 0) != 0)
		git_fail(why, n, "git commit");
	else
		fail = 0;
	git_signature_free(sig);
	git_tree_free(tree);
	git_index_free(index);
	git_repository_free(repo);
	return fail;
}

static int t_git_clone(char *why, size_t n)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256], src[300], dst[300], file[400], line[64] = "";
	git_repository *clone = NULL;
	git_oid made, head;
	FILE *f;
	int fail = 1;

	snprintf(dir, sizeof(dir), "%s/ccr-selftest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return st_fail(why, n, "cannot create a directory under %s: %s", tmp && *tmp ? tmp : "/tmp", strerror(errno));
	snprintf(src, sizeof(src), "%s/origin", dir);
	snprintf(dst, sizeof(dst), "%s/clone", dir);
	/* No user or system git config: the test must not depend on $HOME. */
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, "");
	git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, "");
	if (make_repo(src, &made, why, n) != 0)
		goto out;
	if (git_clone(&clone, src, dst, NULL) != 0) {
		git_fail(why, n, "git clone");
		goto out;
	}
	snprintf(file, sizeof(file), "%s/hello.txt", dst);
	if (git_reference_name_to_id(&head, clone, "HEAD") != 0)
		git_fail(why, n, "reading the clone's HEAD");
	else if (!git_oid_equal(&head, &made))
		st_fail(why, n, "the clone's HEAD differs from the origin's");
	else if (!(f = fopen(file, "r")))
		st_fail(why, n, "the clone has no hello.txt");
	else {
		if (!fgets(line, sizeof(line), f))
			line[0] = 0;
		fclose(f);
		if (strcmp(line, "hello from ccr selftest\n") != 0)
			st_fail(why, n, "hello.txt in the clone has the wrong content");
		else
			fail = 0;
	}
out:
	git_repository_free(clone);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return fail;
}

const struct st_case net_selftests[] = {
	{ "init", t_init },
	{ "ca_bundle", t_ca_bundle },
	{ "tls_config", t_tls_config },
	{ "curl_loopback", t_curl_loopback },
	{ "git_clone", t_git_clone },
	{ NULL, NULL },
};
