/*
 * egpolicy.h: who the egress proxy lets the agent reach (prefix egp_).
 * Pure decisions, no sockets: egress/egress.c asks them for every
 * connection, and the selftests (egress_test.c) check them directly.
 * Hosts and allow-list entries are put in canonical form by net/hostpat.h,
 * which task/payload.c also uses to validate `allowedHosts`.
 *
 * A destination is the host as the client named it (a DNS name, or an
 * IPv4/IPv6 literal) and a port; net/hostpat.h gives its canonical form
 * and checks allow-list entries (the syntax below).
 *
 * The decision, in order (egp_check_name before any DNS query, then
 * egp_check_addr for every address the name resolves to):
 *   1. the metadata server by name (net/addrclass.h) is refused, always;
 *   2. the operator's allow-list (CCR_EGRESS_ALLOW), when set, must match;
 *   3. the task's allow-list (allowedHosts), when given, must match too:
 *      it can only narrow the operator's;
 *   4. each resolved address must be public (net/addrclass.h), unless the
 *      destination is admitted by CCR_EGRESS_ALLOW_PRIVATE; a metadata
 *      address is refused even then.
 *
 * Allow-list entries (comma-separated in CCR_EGRESS_ALLOW, an array of
 * strings in allowedHosts): a host name ("github.com", matching only
 * itself), "*.suffix" ("*.github.com", matching every name below it but
 * not github.com itself), or an IP literal (matching a client that names
 * that address).  An unset or empty operator list allows any public host;
 * an empty allowedHosts array allows none.
 *
 * CCR_EGRESS_ALLOW_PRIVATE entries are "host:port", "ip:port" or
 * "[ipv6]:port": the destination named exactly so (or, for an IP entry,
 * any name that resolves to that address) may resolve to a loopback,
 * private or link-local address.  It still has to pass the allow-lists.
 */
#ifndef CCR_EGPOLICY_H
#define CCR_EGPOLICY_H

#include <stddef.h>
#include <sys/socket.h>

#include <cJSON.h>

#include "net/hostpat.h"
#include "util/err.h"

#define EGP_HOST_MAX HP_HOST_MAX

/* An allow-list: set = 0 means "no list" (anything passes). */
struct egp_list {
	int set;
	size_t n;
	char **v;               /* canonical entries, "*.suffix" kept as written */
};

struct egp_private_entry {
	char host[EGP_HOST_MAX];        /* canonical */
	int is_ip;
	int port;
};

struct egp_policy {
	struct egp_list op;             /* CCR_EGRESS_ALLOW */
	struct egp_list task;           /* allowedHosts */
	struct egp_private_entry *priv; /* CCR_EGRESS_ALLOW_PRIVATE */
	size_t npriv;
};

/* egp_list_csv: parse a comma-separated list (blank: no list); `what`
 * names it in errors ("CCR_EGRESS_ALLOW"). */
int egp_list_csv(struct egp_list *l, const char *csv, const char *what, struct err *e);

/* egp_list_json: a JSON array of strings (NULL: no list; [] allows none). */
int egp_list_json(struct egp_list *l, const cJSON *arr, const char *what, struct err *e);

/* egp_list_match: 1 when l is not set or the canonical host matches. */
int egp_list_match(const struct egp_list *l, const char *host);

void egp_list_free(struct egp_list *l);

/* egp_private_csv: parse CCR_EGRESS_ALLOW_PRIVATE into pol.  An entry naming
 * the metadata server is refused with an error saying it is never
 * reachable. */
int egp_private_csv(struct egp_policy *pol, const char *csv, struct err *e);

/* egp_check_name: the decisions that need no DNS (1-3 above) for the
 * canonical host.  0 allowed; -1 refused, with the reason in why. */
int egp_check_name(const struct egp_policy *pol, const char *host, char *why, size_t n);

/* egp_check_addr: decision 4 for one resolved address of host:port. */
int egp_check_addr(const struct egp_policy *pol, const char *host, int port, const struct sockaddr *sa, char *why,
		   size_t n);

void egp_policy_free(struct egp_policy *pol);

#endif
