/*
 * egpolicy.c: see egpolicy.h.  Everything works on canonical host strings,
 * so matching is plain string comparison.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress/egpolicy.h"
#include "net/hostpat.h"
#include "net/addrclass.h"

static int list_add(struct egp_list *l, const char *entry, const char *what, struct err *e)
{
	char canon[EGP_HOST_MAX];
	char **nv;

	if (hp_entry_norm(entry, canon, e) != 0)
		return err_prefix(e, "%s", what);
	nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return err_set(e, "%s: out of memory", what);
	l->v = nv;
	if (!(l->v[l->n] = strdup(canon)))
		return err_set(e, "%s: out of memory", what);
	l->n++;
	return 0;
}

/* Each comma-separated, blank-trimmed item of csv (empty items skipped). */
static int csv_each(const char *csv, int (*fn)(void *, const char *, struct err *), void *arg, struct err *e)
{
	const char *p = csv, *end, *q;
	char item[EGP_HOST_MAX + 16];

	for (; p && *p; p = *end ? end + 1 : end) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		q = end;
		while (p < q && isspace((unsigned char)*p))
			p++;
		while (q > p && isspace((unsigned char)q[-1]))
			q--;
		if (q == p)
			continue;
		if ((size_t)(q - p) >= sizeof(item))
			return err_set(e, "'%.60s...' is too long", p);
		memcpy(item, p, (size_t)(q - p));
		item[q - p] = 0;
		if (fn(arg, item, e) != 0)
			return -1;
	}
	return 0;
}

struct list_arg {
	struct egp_list *l;
	const char *what;
};

static int list_item(void *arg, const char *item, struct err *e)
{
	struct list_arg *a = arg;

	return list_add(a->l, item, a->what, e);
}

int egp_list_csv(struct egp_list *l, const char *csv, const char *what, struct err *e)
{
	struct list_arg a = { l, what };

	memset(l, 0, sizeof(*l));
	if (csv_each(csv, list_item, &a, e) != 0) {
		egp_list_free(l);
		return -1;
	}
	l->set = l->n > 0;
	return 0;
}

int egp_list_json(struct egp_list *l, const cJSON *arr, const char *what, struct err *e)
{
	const cJSON *it;
	int i = 0;

	memset(l, 0, sizeof(*l));
	if (!arr || cJSON_IsNull(arr))
		return 0;
	if (!cJSON_IsArray(arr))
		return err_set(e, "%s must be an array of strings", what);
	l->set = 1;
	cJSON_ArrayForEach(it, arr) {
		if (!cJSON_IsString(it)) {
			egp_list_free(l);
			return err_set(e, "%s[%d] must be a string", what, i);
		}
		if (list_add(l, it->valuestring, what, e) != 0) {
			egp_list_free(l);
			return -1;
		}
		i++;
	}
	return 0;
}

int egp_list_match(const struct egp_list *l, const char *host)
{
	size_t i, hl = strlen(host);

	if (!l->set)
		return 1;
	for (i = 0; i < l->n; i++) {
		const char *p = l->v[i];

		if (strncmp(p, "*.", 2) == 0) {
			size_t sl = strlen(p + 1);   /* ".suffix" */
			if (hl > sl && strcmp(host + hl - sl, p + 1) == 0)
				return 1;
		} else if (strcmp(p, host) == 0) {
			return 1;
		}
	}
	return 0;
}

void egp_list_free(struct egp_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* "host:port", "ip:port" or "[v6]:port". */
static int private_item(void *arg, const char *item, struct err *e)
{
	struct egp_policy *pol = arg;
	struct egp_private_entry ent, *nv;
	char host[EGP_HOST_MAX + 16];
	const char *colon = strrchr(item, ':'), *h = item;
	size_t hl;
	char *end;
	long port;

	if (!colon || colon == item)
		return err_set(e, "CCR_EGRESS_ALLOW_PRIVATE: '%.100s' is not host:port", item);
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 1 || port > 65535)
		return err_set(e, "CCR_EGRESS_ALLOW_PRIVATE: '%.100s' has no valid port (1-65535)", item);
	hl = (size_t)(colon - item);
	if (item[0] == '[' && hl > 2 && item[hl - 1] == ']')
		h = item + 1, hl -= 2;
	else if (memchr(item, ':', hl))
		return err_set(e, "CCR_EGRESS_ALLOW_PRIVATE: '%.100s': write an IPv6 address in brackets, [::1]:22", item);
	memcpy(host, h, hl);
	host[hl] = 0;
	memset(&ent, 0, sizeof(ent));
	if (hp_host_norm(host, ent.host, &ent.is_ip, e) != 0)
		return err_prefix(e, "CCR_EGRESS_ALLOW_PRIVATE");
	if (ac_metadata_name(ent.host) || (ent.is_ip && ac_classify_text(ent.host) == AC_METADATA))
		return err_set(e, "CCR_EGRESS_ALLOW_PRIVATE: '%.100s' is the cloud metadata server, which is never "
			       "reachable through the egress proxy; remove it", item);
	ent.port = (int)port;
	nv = realloc(pol->priv, (pol->npriv + 1) * sizeof(*nv));
	if (!nv)
		return err_set(e, "CCR_EGRESS_ALLOW_PRIVATE: out of memory");
	pol->priv = nv;
	pol->priv[pol->npriv++] = ent;
	return 0;
}

int egp_private_csv(struct egp_policy *pol, const char *csv, struct err *e)
{
	return csv_each(csv, private_item, pol, e);
}

int egp_check_name(const struct egp_policy *pol, const char *host, char *why, size_t n)
{
	if (ac_metadata_name(host)) {
		snprintf(why, n, "%s is the cloud metadata server, which is never reachable", host);
		return -1;
	}
	if (!egp_list_match(&pol->op, host)) {
		snprintf(why, n, "%s is not in the operator's allow-list (CCR_EGRESS_ALLOW)", host);
		return -1;
	}
	if (!egp_list_match(&pol->task, host)) {
		snprintf(why, n, "%s is not in the task's allowedHosts", host);
		return -1;
	}
	return 0;
}

static int admitted(const struct egp_policy *pol, const char *host, int port, const char *addr)
{
	size_t i;

	for (i = 0; i < pol->npriv; i++)
		if (pol->priv[i].port == port &&
		    (strcmp(pol->priv[i].host, host) == 0 || (pol->priv[i].is_ip && strcmp(pol->priv[i].host, addr) == 0)))
			return 1;
	return 0;
}

int egp_check_addr(const struct egp_policy *pol, const char *host, int port, const struct sockaddr *sa, char *why,
		   size_t n)
{
	enum ac_class c = ac_classify(sa);
	char addr[INET6_ADDRSTRLEN] = "?";
	const void *bin = sa->sa_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
						    : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (c == AC_PUBLIC)
		return 0;
	if (c != AC_NOT_IP)
		inet_ntop(sa->sa_family, bin, addr, sizeof(addr));
	if (c == AC_METADATA) {
		snprintf(why, n, "%s resolves to %s, the cloud metadata server, which is never reachable", host, addr);
		return -1;
	}
	if (c != AC_NOT_IP && admitted(pol, host, port, addr))
		return 0;
	snprintf(why, n, "%s resolves to %s, %s (an operator can admit %s:%d in CCR_EGRESS_ALLOW_PRIVATE)", host,
		 addr, ac_name(c), host, port);
	return -1;
}

void egp_policy_free(struct egp_policy *pol)
{
	egp_list_free(&pol->op);
	egp_list_free(&pol->task);
	free(pol->priv);
	memset(pol, 0, sizeof(*pol));
}
