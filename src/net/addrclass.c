/*
 * addrclass.c: see addrclass.h.  IPv4 is tested as a host-order 32-bit
 * number against prefix/length pairs; IPv6 first by its own prefixes, then
 * through the IPv4 address it embeds, if any.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "net/addrclass.h"

struct v4net {
	uint32_t net;
	unsigned len;
	enum ac_class cls;
};

#define V4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

/* Most specific first: the metadata addresses sit inside larger ranges. */
static const struct v4net v4nets[] = {
	{ V4(169, 254, 169, 254), 32, AC_METADATA },
	{ V4(169, 254, 170, 2), 32, AC_METADATA },      /* AWS ECS task credentials */
	{ V4(169, 254, 170, 23), 32, AC_METADATA },     /* AWS EKS pod identity */
	{ V4(100, 100, 100, 200), 32, AC_METADATA },
	{ V4(0, 0, 0, 0), 8, AC_UNSPECIFIED },
	{ V4(127, 0, 0, 0), 8, AC_LOOPBACK },
	{ V4(10, 0, 0, 0), 8, AC_PRIVATE },
	{ V4(172, 16, 0, 0), 12, AC_PRIVATE },
	{ V4(192, 168, 0, 0), 16, AC_PRIVATE },
	{ V4(192, 0, 0, 0), 24, AC_PRIVATE },
	{ V4(198, 18, 0, 0), 15, AC_PRIVATE },
	{ V4(100, 64, 0, 0), 10, AC_SHARED },
	{ V4(169, 254, 0, 0), 16, AC_LINK_LOCAL },
	{ V4(224, 0, 0, 0), 4, AC_MULTICAST },
	{ V4(240, 0, 0, 0), 4, AC_RESERVED },
};

static enum ac_class classify_v4(uint32_t a)
{
	size_t i;

	for (i = 0; i < sizeof(v4nets) / sizeof(v4nets[0]); i++) {
		uint32_t mask = v4nets[i].len == 32 ? 0xffffffffu : ~(0xffffffffu >> v4nets[i].len);
		if ((a & mask) == v4nets[i].net)
			return v4nets[i].cls;
	}
	return AC_PUBLIC;
}

static uint32_t v4_at(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int prefix_is(const uint8_t *b, const uint8_t *p, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(b, p, full) != 0)
		return 0;
	return rest == 0 || ((b[full] ^ p[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* The IPv4 address an IPv6 address carries: mapped, NAT64, 6to4. */
static int embedded_v4(const uint8_t *b, uint32_t *out)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };

	if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) {
		*out = v4_at(b + 12);
		return 1;
	}
	if (b[0] == 0x20 && b[1] == 0x02) {
		*out = v4_at(b + 2);
		return 1;
	}
	return 0;
}

static enum ac_class classify_v6(const uint8_t *b)
{
	static const uint8_t zero[16], local_nat64[6] = { 0, 0x64, 0xff, 0x9b, 0, 1 };
	static const uint8_t teredo[4] = { 0x20, 0x01, 0, 0 };
	static const uint8_t meta_aws[16] = { 0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54 };
	static const uint8_t meta_aws23[16] = { 0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x23 };
	static const uint8_t meta_gcp[16] = { 0xfd, 0x20, 0, 0xce, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54 };
	uint32_t v4;
	enum ac_class c;

	if (memcmp(b, meta_aws, 16) == 0 || memcmp(b, meta_aws23, 16) == 0 || memcmp(b, meta_gcp, 16) == 0)
		return AC_METADATA;
	if (memcmp(b, zero, 12) == 0)                    /* ::, ::1, IPv4-compatible */
		return memcmp(b, zero, 15) == 0 && b[15] == 1 ? AC_LOOPBACK : AC_UNSPECIFIED;
	if (embedded_v4(b, &v4) && (c = classify_v4(v4)) != AC_PUBLIC)
		return c;
	if (prefix_is(b, local_nat64, 48))
		return AC_PRIVATE;
	if (prefix_is(b, teredo, 32))
		return AC_RESERVED;
	if ((b[0] & 0xfe) == 0xfc)
		return AC_UNIQUE_LOCAL;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return AC_LINK_LOCAL;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
		return AC_UNIQUE_LOCAL;                  /* site-local, deprecated */
	if (b[0] == 0xff)
		return AC_MULTICAST;
	return AC_PUBLIC;
}

enum ac_class ac_classify(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return classify_v4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6)
		return classify_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
	return AC_NOT_IP;
}

enum ac_class ac_classify_text(const char *text)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, text, &a4) == 1)
		return classify_v4(ntohl(a4.s_addr));
	if (inet_pton(AF_INET6, text, &a6) == 1)
		return classify_v6(a6.s6_addr);
	return AC_NOT_IP;
}

const char *ac_name(enum ac_class c)
{
	static const char *const names[] = {
		[AC_PUBLIC] = "a public address",
		[AC_UNSPECIFIED] = "an unspecified address",
		[AC_LOOPBACK] = "a loopback address",
		[AC_PRIVATE] = "a private address",
		[AC_SHARED] = "a carrier-grade NAT address",
		[AC_LINK_LOCAL] = "a link-local address",
		[AC_METADATA] = "the cloud metadata server",
		[AC_UNIQUE_LOCAL] = "a unique-local address",
		[AC_MULTICAST] = "a multicast address",
		[AC_RESERVED] = "a reserved address",
		[AC_NOT_IP] = "not an IP address",
	};

	return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "an unknown address class";
}

int ac_metadata_name(const char *host)
{
	static const char *const names[] = { "metadata.google.internal", "metadata" };
	size_t i, n = strlen(host);

	if (n && host[n - 1] == '.')
		n--;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && strncasecmp(host, names[i], n) == 0)
			return 1;
	return 0;
}
