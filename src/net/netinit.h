/*
 * netinit.h: one-time initialisation of the networking libraries.
 *
 * net_global_init() starts PSA crypto (mbedTLS 3.6 needs it before any
 * TLS 1.3 handshake), curl and libgit2, and gives libgit2 its CA roots.
 * It must run before threads start; a second call does nothing.  Every
 * failure is returned with a message, because later calls into a library
 * whose init failed would crash.
 */
#ifndef CCR_NETINIT_H
#define CCR_NETINIT_H

#include <stddef.h>

int net_global_init(char *err, size_t errlen);

#endif
