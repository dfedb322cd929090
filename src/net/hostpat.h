/*
 * hostpat.h: host names and allow-list entries in canonical form (prefix
 * hp_).  Pure string work, no sockets and no DNS: the egress policy
 * (egress/egpolicy.h) builds its allow-lists on it, and task/payload.c
 * validates a request's `allowedHosts` with it before the task is stored.
 *
 * A host is a DNS name or an IPv4/IPv6 literal.  hp_host_norm() gives its
 * canonical form: names in lower case without the trailing dot, IP
 * literals as inet_ntop writes them.  A name whose last label is numeric
 * ("2130706434", "0x7f.1", "1.2.3") is refused: resolvers read those as
 * IPv4 addresses in forms the allow-lists would not recognise.
 *
 * An allow-list entry is a host name ("github.com"), "*.suffix"
 * ("*.github.com"; kept with its "*." prefix), or an IP literal (an IPv6
 * one may come in brackets).  A bare "*" is refused: leaving the list out
 * is how every public host is allowed.
 */
#ifndef CCR_HOSTPAT_H
#define CCR_HOSTPAT_H

#include "util/err.h"

#define HP_HOST_MAX 256

/* hp_host_norm: canonical form of host into out (HP_HOST_MAX bytes);
 * *is_ip says whether it is an IP literal.  -1 with e set when host is not
 * a valid name or literal. */
int hp_host_norm(const char *host, char *out, int *is_ip, struct err *e);

/* hp_entry_norm: canonical form of an allow-list entry into out
 * (HP_HOST_MAX bytes); -1 with e saying why it is not one. */
int hp_entry_norm(const char *entry, char *out, struct err *e);

/* hp_pattern_check: 0 when entry is a valid allow-list entry; otherwise
 * -1 with e saying why (without naming the list: the caller prefixes). */
int hp_pattern_check(const char *entry, struct err *e);

#endif
