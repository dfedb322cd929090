/*
 * webhook_url.c: the callback URL check (src/webhook/webhook.c wh_check_url:
 * URL syntax, http/https only, the host's addresses against the deny-list
 * of loopback, private, link-local, unique-local, multicast, reserved and
 * unspecified ranges).
 *
 * No name is ever looked up: this target defines getaddrinfo() itself
 * (the executable's definition wins over the C library's), forwarding to
 * the real one with AI_NUMERICHOST, so only address literals resolve and
 * the fuzzer never touches DNS or the network.
 * Properties: a refusal has a message; an acceptance pins an address
 * ("host:port:address") that the reference deny-list written here
 * (RFC 6890 special-purpose ranges as ccr documents them) allows.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>

#include "fuzz.h"
#include "webhook/webhook.h"

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
	static gai_fn real;
	struct addrinfo h;

	if (!real && !(real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo")))
		abort();
	memset(&h, 0, sizeof(h));
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	return real(node, service, &h, res);
}

static int denied_v4(const uint8_t a[4])
{
	return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 169 && a[1] == 254) ||
	       (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
	       (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] >= 224;
}

static int denied(const char *addr)
{
	uint8_t b[16];
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t zero15[15] = { 0 };

	if (inet_pton(AF_INET, addr, b) == 1)
		return denied_v4(b);
	if (addr[0] == '[' && strlen(addr) < 60) {
		char t[64];

		snprintf(t, sizeof(t), "%.*s", (int)strlen(addr) - 2, addr + 1);
		if (inet_pton(AF_INET6, t, b) == 1) {
			if (memcmp(b, zero15, 15) == 0)
				return 1;
			if (memcmp(b, mapped, 12) == 0)
				return denied_v4(b + 12);
			return (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff;
		}
	}
	FUZZ_CHECK(0, "pinned address \"%s\" is not an address literal", addr);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = fuzz_str(data, size);
	char resolve[600];
	struct err e = ERR_INIT;

	memset(resolve, 0, sizeof(resolve));
	if (wh_check_url(url, "callbackUrl", NULL, 0, resolve, sizeof(resolve), &e) != 0) {
		FUZZ_CHECK(e.msg[0], "refused (or unresolved) without a message");
	} else {
		/* host:port:address; the address is the last field (an IPv6 one in brackets) */
		const char *addr = resolve[strlen(resolve) - 1] == ']' ? strrchr(resolve, '[') : strrchr(resolve, ':') + 1;

		FUZZ_CHECK(addr && !denied(addr), "%s accepted, pinned to a denied address (%s)", url, resolve);
	}
	free(url);
	return 0;
}
