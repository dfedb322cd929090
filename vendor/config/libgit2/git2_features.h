/*
 * git2_features.h: libgit2 1.9's feature switches, written by hand for ccr.
 *
 * CMake normally generates this from src/util/git2_features.h.in.  ccr
 * builds libgit2 with: threads, HTTPS over mbedTLS (the same mbedTLS and
 * config as curl), the system's http-parser 2.9, SHA-1 collision
 * detection (git's real hash), SHA-256 from mbedTLS, zlib, POSIX regcomp
 * from musl, and SSH by running the system `ssh` (GIT_SSH_EXEC), so every
 * key type and ~/.ssh/config work.  NTLM and GSSAPI are off: their
 * bundled code is stripped from Debian's +ds tarball and ccr needs neither.
 */
#ifndef INCLUDE_features_h__
#define INCLUDE_features_h__

#define GIT_THREADS 1
#define GIT_ARCH_64 1
#define GIT_USE_NSEC 1
#define GIT_USE_STAT_MTIM 1
#define GIT_USE_FUTIMENS 1
#define GIT_REGEX_REGCOMP
#define GIT_QSORT_GNU
#define GIT_SSH 1
#define GIT_SSH_EXEC 1
#define GIT_HTTPS 1
#define GIT_MBEDTLS 1
#define GIT_HTTPPARSER_HTTPPARSER 1
#define GIT_SHA1_COLLISIONDETECT 1
#define GIT_SHA256_MBEDTLS 1
#define GIT_COMPRESSION_ZLIB 1
#define GIT_RAND_GETENTROPY 1
#define GIT_RAND_GETLOADAVG 1
#define GIT_IO_POLL 1

#endif
