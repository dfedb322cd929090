/*
 * hostpat.c: see hostpat.h.  Everything produces canonical host strings,
 * so the allow-lists built on it match by plain string comparison.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "net/hostpat.h"

/* A numeric last label ("1", "0x7f"): the resolver would read the name as
 * an IPv4 address in one of inet_aton's forms. */
static int numeric_label(const char *label, size_t n)
{
	size_t i;

	if (n >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
		for (i = 2; i < n; i++)
			if (!isxdigit((unsigned char)label[i]))
				return 0;
		return 1;
	}
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)label[i]))
			return 0;
	return 1;
}

static int name_valid(const char *s, size_t n)
{
	size_t i, start = 0;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (i == start || i - start > 63)
				return 0;
			if (i == n && numeric_label(s + start, i - start))
				return 0;
			start = i + 1;
		} else if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_') {
			return 0;
		}
	}
	return 1;
}

int hp_host_norm(const char *host, char *out, int *is_ip, struct err *e)
{
	unsigned char a[16];
	size_t n = strlen(host), i;

	*is_ip = 0;
	if (n >= HP_HOST_MAX)
		return err_set(e, "the host name is longer than %d bytes", HP_HOST_MAX - 1);
	if (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1) {
		*is_ip = 1;
		if (!inet_ntop(strchr(host, ':') ? AF_INET6 : AF_INET, a, out, HP_HOST_MAX))
			return err_set(e, "cannot format the address %s", host);
		return 0;
	}
	if (n && host[n - 1] == '.')
		n--;
	if (!name_valid(host, n))
		return err_set(e, "'%.100s' is not a valid host name or IP address", host);
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)host[i]);
	out[n] = 0;
	return 0;
}

int hp_entry_norm(const char *entry, char *out, struct err *e)
{
	char tmp[HP_HOST_MAX];
	size_t n = strlen(entry);
	int is_ip;

	if (n >= sizeof(tmp))
		return err_set(e, "'%.60s...' is longer than %d bytes", entry, HP_HOST_MAX - 1);
	if (strcmp(entry, "*") == 0)
		return err_set(e, "'*' is not an entry: leave the list out to allow any public host");
	if (strncmp(entry, "*.", 2) == 0) {
		if (hp_host_norm(entry + 2, tmp, &is_ip, e) != 0)
			return err_set(e, "'%.100s' is not a host name, '*.suffix' or IP address", entry);
		if (is_ip)
			return err_set(e, "'%.100s': a '*.' pattern takes a domain name, not an address", entry);
		snprintf(out, HP_HOST_MAX, "*.%s", tmp);
		return strlen(tmp) + 2 < HP_HOST_MAX ? 0 : err_set(e, "'%.60s...' is too long", entry);
	}
	if (entry[0] == '[' && n > 2 && entry[n - 1] == ']') {
		memcpy(tmp, entry + 1, n - 2);
		tmp[n - 2] = 0;
		if (hp_host_norm(tmp, out, &is_ip, e) != 0 || !is_ip)
			return err_set(e, "'%.100s' is not an IPv6 address", entry);
		return 0;
	}
	if (hp_host_norm(entry, out, &is_ip, e) != 0)
		return err_set(e, "'%.100s' is not a host name, '*.suffix' or IP address", entry);
	return 0;
}

int hp_pattern_check(const char *entry, struct err *e)
{
	char out[HP_HOST_MAX];

	return hp_entry_norm(entry, out, e);
}
