/*
 * addrclass.h: which IP addresses ccr never contacts on a user's behalf
 * (prefix ac_).  One classification serves the webhook's SSRF guard
 * (webhook/webhook.h: callbackUrl and its redirect targets) and the egress
 * proxy (egress/egress.h: every connection the agent makes).
 *
 * ac_classify() names the class of an address; anything but AC_PUBLIC is
 * refused by default.  The classes:
 *   unspecified  0.0.0.0/8, ::, and the rest of ::/96 (IPv4-compatible,
 *                deprecated, never routed)
 *   loopback     127.0.0.0/8, ::1
 *   private      10/8, 172.16/12, 192.168/16, 192.0.0.0/24 (IETF
 *                protocol assignments), 198.18/15 (benchmarking, used
 *                inside networks), 64:ff9b:1::/48 (local-use NAT64)
 *   shared       100.64.0.0/10 (carrier-grade NAT)
 *   link-local   169.254/16, fe80::/10
 *   metadata     the cloud metadata and credential servers:
 *                169.254.169.254, AWS's 169.254.170.2 (ECS), 169.254.170.23
 *                and fd00:ec2::23 (EKS), fd00:ec2::254, Alibaba's
 *                100.100.100.200, Google's fd20:ce::254 (never admitted,
 *                whatever an operator lists)
 *   unique-local fc00::/7, and the deprecated site-local fec0::/10
 *   multicast    224/4, ff00::/8
 *   reserved     240/4 (255.255.255.255 included), Teredo 2001::/32
 *                (tunnels to an IPv4 address of its own choosing)
 * An IPv6 address that embeds an IPv4 address takes the class of the
 * embedded address when that is not public: IPv4-mapped ::ffff:0:0/96,
 * NAT64 64:ff9b::/96 and 6to4 2002::/16 (so ::ffff:127.0.0.1,
 * 64:ff9b::a9fe:a9fe and 2002:a9fe:a9fe:: are refused like 127.0.0.1 and
 * 169.254.169.254).
 *
 * ac_metadata_name() recognises the metadata server's host names
 * (metadata.google.internal and metadata, any case, with or without the
 * trailing dot), so a caller can refuse them before any DNS query.
 */
#ifndef CCR_ADDRCLASS_H
#define CCR_ADDRCLASS_H

#include <sys/socket.h>

enum ac_class {
	AC_PUBLIC = 0,
	AC_UNSPECIFIED,
	AC_LOOPBACK,
	AC_PRIVATE,
	AC_SHARED,
	AC_LINK_LOCAL,
	AC_METADATA,
	AC_UNIQUE_LOCAL,
	AC_MULTICAST,
	AC_RESERVED,
	AC_NOT_IP,              /* not an AF_INET / AF_INET6 address */
};

/* ac_classify: the class of sa (AF_INET or AF_INET6). */
enum ac_class ac_classify(const struct sockaddr *sa);

/* ac_classify_text: the class of a numeric address ("127.0.0.1", "::1"),
 * AC_NOT_IP when text is neither. */
enum ac_class ac_classify_text(const char *text);

/* ac_name: a short phrase for messages, "a loopback address". */
const char *ac_name(enum ac_class c);

/* ac_metadata_name: 1 when host names the cloud metadata server. */
int ac_metadata_name(const char *host);

/* Its unit tests are in egress/egress_test.c (egress_tests, selftest/suites.h). */

#endif
