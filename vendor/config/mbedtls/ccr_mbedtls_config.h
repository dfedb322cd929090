/*
 * ccr_mbedtls_config.h: ccr's adjustments to mbedTLS 3.6's default config.
 *
 * Every compilation unit that includes an mbedTLS header (mbedTLS itself,
 * curl, libgit2, ccr) is built with
 * MBEDTLS_USER_CONFIG_FILE="ccr_mbedtls_config.h", so all of them agree on
 * struct layouts (MBEDTLS_THREADING_C adds mutexes to structs; a mismatch
 * would be a silent ABI break).
 */
#ifndef CCR_MBEDTLS_CONFIG_H
#define CCR_MBEDTLS_CONFIG_H

/* Thread safety, as Debian builds it: serve answers requests on threads. */
#define MBEDTLS_THREADING_C
#define MBEDTLS_THREADING_PTHREAD

/*
 * Entropy from getrandom(2), not /dev/urandom: mbedTLS only uses getrandom
 * on glibc, and an empty chroot or a minimal sandbox has no /dev.  See
 * entropy_getrandom.c.
 */
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_ENTROPY_HARDWARE_ALT

/* ccr is only ever a TLS client; Cloud Run terminates inbound TLS. */
#undef MBEDTLS_SSL_SRV_C
#undef MBEDTLS_SSL_PROTO_DTLS
#undef MBEDTLS_SSL_DTLS_ANTI_REPLAY
#undef MBEDTLS_SSL_DTLS_HELLO_VERIFY
#undef MBEDTLS_SSL_DTLS_CLIENT_PORT_REUSE
#undef MBEDTLS_SSL_DTLS_CONNECTION_ID
#undef MBEDTLS_SSL_COOKIE_C
#undef MBEDTLS_SSL_CACHE_C
#undef MBEDTLS_SSL_TICKET_C

/*
 * No finite-field Diffie-Hellman suites: obsolete and slow; every server ccr
 * talks to offers ECDHE or TLS 1.3.  This also keeps libgit2 1.9's
 * mbedTLS stream correct: it copies the 28 names of its default cipher
 * list that mbedTLS knows into a static int[28] and hands it to
 * mbedtls_ssl_conf_ciphersuites(), which needs a 0 terminator.  With all
 * 28 known (mbedTLS's defaults) there was none, and every HTTPS git
 * connection read past the array (ASan: global-buffer-overflow in
 * ssl_write_client_hello_cipher_suites).  Five of the names are DHE-RSA.
 */
#undef MBEDTLS_KEY_EXCHANGE_DHE_RSA_ENABLED

/* Nothing of ccr's needs these. */
#undef MBEDTLS_ECJPAKE_C
#undef MBEDTLS_KEY_EXCHANGE_ECJPAKE_ENABLED
#undef MBEDTLS_DEBUG_C

#endif
