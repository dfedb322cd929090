/*
 * crypto_selftest.c: known-answer tests for the cr_ layer, run by
 * `ccr selftest`.
 *
 * Design: every primitive is checked against published vectors (FIPS 180-2
 * examples, RFC 4231, the GCM specification's 256-bit test cases), plus the
 * failure paths that matter for security (tag, ciphertext and AAD
 * tampering must be rejected and must not leak plaintext).
 *
 * The RS256 vector is not from a standard: RSASSA-PKCS1-v1_5 is
 * deterministic, so the expected signature was produced once with an
 * independent implementation (OpenSSL 3.0) from the embedded throwaway
 * test key:
 *     openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem
 *     openssl rsa -in key.pem -traditional -out key1.pem    (PKCS#1 copy)
 *     printf %s "$rs_msg" > msg.txt
 *     openssl dgst -sha256 -sign key.pem msg.txt | base64 -w0
 * and checked with `openssl dgst -sha256 -verify pub.pem -signature ...`.
 * The key exists only for this test and signs nothing else.
 */
#include <string.h>

#include "crypto/crypto.h"
#include "selftest/suites.h"
#include "util/b64.h"

/* ---- SHA-256 (FIPS 180-2 appendix B) ------------------------------------- */

static int t_sha256(char *why, size_t whylen)
{
	static const char m448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	struct cr_sha256 ctx;
	uint8_t h[CR_SHA256_LEN];
	char chunk[1000];
	size_t i;

	cr_sha256("abc", 3, h);
	if (st_hexeq(h, sizeof h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
		return st_fail(why, whylen, "SHA-256(\"abc\")");
	cr_sha256(NULL, 0, h);
	if (st_hexeq(h, sizeof h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
		return st_fail(why, whylen, "SHA-256(\"\")");
	cr_sha256(m448, strlen(m448), h);
	if (st_hexeq(h, sizeof h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"))
		return st_fail(why, whylen, "SHA-256(448-bit message)");
	/* Incremental, in uneven pieces. */
	cr_sha256_init(&ctx);
	cr_sha256_update(&ctx, m448, 1);
	cr_sha256_update(&ctx, m448 + 1, 0);
	cr_sha256_update(&ctx, m448 + 1, 54);
	cr_sha256_update(&ctx, m448 + 55, strlen(m448) - 55);
	cr_sha256_final(&ctx, h);
	if (st_hexeq(h, sizeof h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"))
		return st_fail(why, whylen, "incremental SHA-256(448-bit message)");
	/* One million 'a' (FIPS 180-2 B.3). */
	memset(chunk, 'a', sizeof chunk);
	cr_sha256_init(&ctx);
	for (i = 0; i < 1000; i++)
		cr_sha256_update(&ctx, chunk, sizeof chunk);
	cr_sha256_final(&ctx, h);
	if (st_hexeq(h, sizeof h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"))
		return st_fail(why, whylen, "SHA-256(10^6 x 'a')");
	return 0;
}

/* ---- HMAC-SHA256 (RFC 4231 §4) -------------------------------------------- */

static int t_hmac(char *why, size_t whylen)
{
	static const char *const data[] = {
		"Hi There",
		"what do ya want for nothing?",
		NULL, /* 50 x 0xdd */
		NULL, /* 50 x 0xcd */
		"Test Using Larger Than Block-Size Key - Hash Key First",
		"This is a test using a larger than block-size key and a larger than "
			"block-size data. The key needs to be hashed before being used by "
			"the HMAC algorithm.",
	};
	static const int rfc_case[] = { 1, 2, 3, 4, 6, 7 };
	static const char *const want[] = {
		"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
		"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		"773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
		"82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
		"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
		"9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
	};
	unsigned char key[131], msg[50];
	uint8_t mac[CR_SHA256_LEN];
	struct cr_hmac_sha256 ctx;
	size_t i, klen, mlen;
	const void *m;

	for (i = 0; i < 6; i++) {
		switch (rfc_case[i]) {
		case 1: memset(key, 0x0b, 20); klen = 20; break;
		case 2: memcpy(key, "Jefe", 4); klen = 4; break;
		case 3: memset(key, 0xaa, 20); klen = 20; break;
		case 4:
			for (klen = 0; klen < 25; klen++)
				key[klen] = (unsigned char)(klen + 1);
			break;
		default: memset(key, 0xaa, 131); klen = 131; break;
		}
		if (data[i] != NULL) {
			m = data[i];
			mlen = strlen(data[i]);
		} else {
			memset(msg, rfc_case[i] == 3 ? 0xdd : 0xcd, sizeof msg);
			m = msg;
			mlen = sizeof msg;
		}
		cr_hmac_sha256(key, klen, m, mlen, mac);
		if (st_hexeq(mac, sizeof mac, want[i]))
			return st_fail(why, whylen, "RFC 4231 test case %d", rfc_case[i]);
		/* The incremental interface, byte by byte. */
		cr_hmac_sha256_init(&ctx, key, klen);
		for (klen = 0; klen < mlen; klen++)
			cr_hmac_sha256_update(&ctx, (const unsigned char *)m + klen, 1);
		cr_hmac_sha256_final(&ctx, mac);
		if (st_hexeq(mac, sizeof mac, want[i]))
			return st_fail(why, whylen, "RFC 4231 test case %d (incremental)", rfc_case[i]);
	}
	return 0;
}

/* ---- AES-256-GCM (McGrew & Viega, GCM spec, test cases 13-16) ------------- */

static const char gcm_k15[] =
	"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
static const char gcm_iv15[] = "cafebabefacedbaddecaf888";
static const char gcm_p15[] =
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
static const char gcm_c15[] =
	"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	"8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";
static const char gcm_a16[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

static const struct {
	int tc;
	const char *key, *iv, *aad, *plain, *cipher, *tag;
	size_t plen; /* bytes of plain / cipher used (case 16 truncates 15's) */
} gcm_vectors[] = {
	{ 13, NULL, NULL, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b", 0 },
	{ 14, NULL, NULL, "", "00000000000000000000000000000000",
		"cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919", 16 },
	{ 15, gcm_k15, gcm_iv15, "", gcm_p15, gcm_c15, "b094dac5d93471bdec1a502270e3cc6c", 64 },
	{ 16, gcm_k15, gcm_iv15, gcm_a16, gcm_p15, gcm_c15, "76fc6ece0f4e1768cddf8853bb2d551b", 60 },
};

static int gcm_unhex(uint8_t *dst, size_t dstlen, const char *hex, size_t n)
{
	size_t i;

	if (hex == NULL) { /* all-zero key or IV */
		memset(dst, 0, n);
		return 0;
	}
	if (2 * n > strlen(hex) || n > dstlen)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned v = 0;
		int j;
		for (j = 0; j < 2; j++) {
			char c = hex[2 * i + (size_t)j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return -1;
		}
		dst[i] = (uint8_t)v;
	}
	return 0;
}

static int t_gcm_vectors(char *why, size_t whylen)
{
	uint8_t key[32], iv[12], aad[20], plain[64], cipher[64], out[64], tag[16], want_tag[16];
	size_t i, alen;

	for (i = 0; i < sizeof gcm_vectors / sizeof gcm_vectors[0]; i++) {
		size_t n = gcm_vectors[i].plen;
		int tc = gcm_vectors[i].tc;

		alen = strlen(gcm_vectors[i].aad) / 2;
		if (gcm_unhex(key, sizeof key, gcm_vectors[i].key, 32) != 0 ||
				gcm_unhex(iv, sizeof iv, gcm_vectors[i].iv, 12) != 0 ||
				gcm_unhex(aad, sizeof aad, gcm_vectors[i].aad, alen) != 0 ||
				gcm_unhex(plain, sizeof plain, gcm_vectors[i].plain, n) != 0 ||
				gcm_unhex(cipher, sizeof cipher, gcm_vectors[i].cipher, n) != 0 ||
				gcm_unhex(want_tag, sizeof want_tag, gcm_vectors[i].tag, 16) != 0)
			return st_fail(why, whylen, "test case %d: bad vector", tc);
		if (cr_aes256gcm_seal(key, iv, aad, alen, plain, n, out, tag) != 0)
			return st_fail(why, whylen, "test case %d: seal failed", tc);
		if (memcmp(out, cipher, n) != 0)
			return st_fail(why, whylen, "test case %d: ciphertext", tc);
		if (memcmp(tag, want_tag, 16) != 0)
			return st_fail(why, whylen, "test case %d: tag", tc);
		memset(out, 0x55, sizeof out);
		if (cr_aes256gcm_open(key, iv, aad, alen, cipher, n, want_tag, out) != 0)
			return st_fail(why, whylen, "test case %d: open rejected a valid tag", tc);
		if (memcmp(out, plain, n) != 0)
			return st_fail(why, whylen, "test case %d: decrypted text", tc);
		/* In place, both directions. */
		memcpy(out, plain, n);
		if (cr_aes256gcm_seal(key, iv, aad, alen, out, n, out, tag) != 0 ||
				memcmp(out, cipher, n) != 0 || memcmp(tag, want_tag, 16) != 0)
			return st_fail(why, whylen, "test case %d: in-place seal", tc);
		if (cr_aes256gcm_open(key, iv, aad, alen, out, n, tag, out) != 0 ||
				memcmp(out, plain, n) != 0)
			return st_fail(why, whylen, "test case %d: in-place open", tc);
	}
	return 0;
}

static int t_gcm_tamper(char *why, size_t whylen)
{
	uint8_t key[32], iv[12], aad[20], plain[60], cipher[60], out[60], tag[16], bad[16];
	size_t i;

	if (gcm_unhex(key, sizeof key, gcm_k15, 32) != 0 || gcm_unhex(iv, sizeof iv, gcm_iv15, 12) != 0 ||
			gcm_unhex(aad, sizeof aad, gcm_a16, 20) != 0 ||
			gcm_unhex(plain, sizeof plain, gcm_p15, 60) != 0)
		return st_fail(why, whylen, "bad vector");
	if (cr_aes256gcm_seal(key, iv, aad, 20, plain, 60, cipher, tag) != 0)
		return st_fail(why, whylen, "seal failed");
	/* Flip every bit of the tag in turn. */
	for (i = 0; i < 128; i++) {
		memcpy(bad, tag, 16);
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		memset(out, 0x55, sizeof out);
		if (cr_aes256gcm_open(key, iv, aad, 20, cipher, 60, bad, out) != -1)
			return st_fail(why, whylen, "open accepted a tag with bit %zu flipped", i);
		for (size_t j = 0; j < sizeof out; j++)
			if (out[j] != 0)
				return st_fail(why, whylen, "plaintext left in output after a bad tag");
	}
	cipher[7] ^= 0x01;
	if (cr_aes256gcm_open(key, iv, aad, 20, cipher, 60, tag, out) != -1)
		return st_fail(why, whylen, "open accepted a modified ciphertext");
	cipher[7] ^= 0x01;
	aad[19] ^= 0x80;
	if (cr_aes256gcm_open(key, iv, aad, 20, cipher, 60, tag, out) != -1)
		return st_fail(why, whylen, "open accepted a modified AAD");
	if (cr_aes256gcm_open(key, iv, NULL, 0, cipher, 60, tag, out) != -1)
		return st_fail(why, whylen, "open accepted a missing AAD");
	aad[19] ^= 0x80;
	iv[0] ^= 0x01;
	if (cr_aes256gcm_open(key, iv, aad, 20, cipher, 60, tag, out) != -1)
		return st_fail(why, whylen, "open accepted a different IV");
	iv[0] ^= 0x01;
	if (cr_aes256gcm_open(key, iv, aad, 20, cipher, 59, tag, out) != -1)
		return st_fail(why, whylen, "open accepted a truncated ciphertext");
	if (cr_aes256gcm_open(key, iv, aad, 20, cipher, 60, tag, out) != 0 ||
			memcmp(out, plain, 60) != 0)
		return st_fail(why, whylen, "open of the untouched message failed");
	return 0;
}

/* ---- random, const_eq, wipe ----------------------------------------------- */

static int t_random(char *why, size_t whylen)
{
	uint8_t a[64], b[64], big[1000];
	size_t i, zeros = 0;

	if (cr_random(a, sizeof a) != 0 || cr_random(b, sizeof b) != 0)
		return st_fail(why, whylen, "getrandom failed");
	if (memcmp(a, b, sizeof a) == 0)
		return st_fail(why, whylen, "two draws were identical");
	/* More than getrandom's 256-byte single-call guarantee. */
	memset(big, 0, sizeof big);
	if (cr_random(big, sizeof big) != 0)
		return st_fail(why, whylen, "getrandom failed on 1000 bytes");
	for (i = 0; i < sizeof big; i++)
		zeros += big[i] == 0;
	if (zeros > 40) /* expected ~4; 40 is astronomically unlikely */
		return st_fail(why, whylen, "1000 random bytes hold %zu zeros", zeros);
	if (cr_random(NULL, 0) != 0)
		return st_fail(why, whylen, "empty request failed");
	return 0;
}

static int t_const_eq_wipe(char *why, size_t whylen)
{
	uint8_t a[33], b[33];
	size_t i;

	for (i = 0; i < sizeof a; i++)
		a[i] = b[i] = (uint8_t)(i * 7 + 1);
	if (cr_const_eq(a, b, sizeof a) != 1 || cr_const_eq(a, b, 0) != 1)
		return st_fail(why, whylen, "equal buffers compared unequal");
	for (i = 0; i < sizeof a; i++) {
		b[i] ^= 0x80;
		if (cr_const_eq(a, b, sizeof a) != 0)
			return st_fail(why, whylen, "difference at byte %zu not seen", i);
		b[i] ^= 0x81;
		if (cr_const_eq(a, b, sizeof a) != 0)
			return st_fail(why, whylen, "difference at byte %zu not seen", i);
		b[i] ^= 0x01;
	}
	cr_wipe(a, sizeof a);
	for (i = 0; i < sizeof a; i++)
		if (a[i] != 0)
			return st_fail(why, whylen, "cr_wipe left byte %zu", i);
	cr_wipe(NULL, 0);
	return 0;
}

/* ---- RS256 ---------------------------------------------------------------- */

static const char rs_key_pkcs8[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDecHpDB9jiJaVd\n"
	"2d7LkBWS3syIN3ThxuXqGcN9zmhtigtExGMYg21vx2kYcdo/FMA9PyAEYeDUQsA3\n"
	"ehnrv7zLrkdr4AyvNVpeF/v5m8YEll6P7L6GDwwLi6UG2GZFbbbIzftRGRykj/oR\n"
	"Z8VLgCgQqMZHgAoRZ3cwu+29p9VlgQTt3R7aOdyOUC81MNIUPJsM9Q1hJOvYSOP/\n"
	"p9kNjdb2wUVW+SCZab2z1QAzGmQ4DEq3sYm/9KNc/pKi8K4yGUxvFLGqwZbRxlbV\n"
	"qdPZuoJPrHRRkUwmIiu8jcoPVCmcp1xCKQ1AfjNTlDvSGKmFx34kAmH0u6/P0f28\n"
	"kJVVljYZAgMBAAECggEAYQKg77buacKNWl74gcL3BbTRct7sxMLf5rcRwT5R4OQB\n"
	"gh48MaawBb3sIdMVoclFBfEP35loWmo6Nnez8lMO3a3GTE/MeGVGYh8Hr5a2R63k\n"
	"09QmS4UodaiTcmbSQ5lTzEO5RWc0TLjWEN02+HSOBKX2w5wdx/Vd0A1F5B7cPIW2\n"
	"CWFGtbwqZ3ZYF8SiFVvYlKj+YMmFVzixu61poLpMk6n2ijf0lXGSOgQxmdMHoN3T\n"
	"zOV4wZeHKfjcz9xybeCFZsf495v7AqRrN1wJqu3htnSEh7LWhRJtkRYUMQMsFM6/\n"
	"rlfF7n0sO7MQJsSI096YDyPcHmr/1LJyvyNSZYW5WQKBgQD130olD2sQ4hyD7O6p\n"
	"jrTe24/udivwHOEo9LP1zEG0vE7E9ztR/L36OjkLlBD6WKhaiHvVeN6WYT/quUSz\n"
	"LLR2qjuA2pBusKPBVHR4cu0y7cnzzrw0XvpSDqZ3e3CdbOOeK9RRlpEVxc41dsUs\n"
	"JywCdT01N6vPM6yI2IOyj2bd6wKBgQDnmhbxWJD+Q2t5JEgpHOGEelL7rykmt63M\n"
	"mDUQErSTLCXG014pD97WacUfuHxsHNslTxojfgYedBGR5AklONm5634/KmUwhnVP\n"
	"KTBVBAgdKwzEy36kGB2ZH7XexqAO4fox3pbnEMZhWR1RalBAQ3AdkXb0Jc81N6+F\n"
	"GytOkbvHCwKBgQDueF+likrB2Uzm98qTUgJDlJkJJDyBasFHw+83m6Cu92U+zLwQ\n"
	"TR7Fr+rcPAQrjAndpTrWVaEuIayosIDdd6Kg5YNI+rPTaCerv4onuPAu0Utq2TzZ\n"
	"XrVTGTqD8InNZmtuYfxQFcUqZOwYFtYueN/KkoOHNjPBh9Dz+WviqAuReQKBgQDe\n"
	"u1cDJizTCp2qNFVdjJPppwZ1XAAUZyMzFtI5MfQNcbCm5RGyJbwlsjTMi8zE4H91\n"
	"AvzdU06pLPDUwFx3OpRRdAPG1YvZPgZFahQ8PpNbEdLG0/ln8HVOlKuAor69cV//\n"
	"Y9T2RTCz4FMMwFSLaQ/Cr+mZZV9AC9y2AuoENq1C/wKBgQC5I5iKC88tKlwJjTCq\n"
	"2dceE6vxfIuO1nE+JQnYfeakGxRN+HJCDTkGdjZoOR27Vc2tjLyFOJsCtqbjyeob\n"
	"4r38DIso6HB1RacxOl15sMeXT/cLJcpqrjeFvvonHnPTRqKOA7h2f2O40LsN0JjM\n"
	"ZRuulTUGID2/QKvYgXkVr2Y23w==\n"
	"-----END PRIVATE KEY-----\n";

static const char rs_key_pkcs1[] =
	"-----BEGIN RSA PRIVATE KEY-----\n"
	"MIIEpQIBAAKCAQEA3nB6QwfY4iWlXdney5AVkt7MiDd04cbl6hnDfc5obYoLRMRj\n"
	"GINtb8dpGHHaPxTAPT8gBGHg1ELAN3oZ67+8y65Ha+AMrzVaXhf7+ZvGBJZej+y+\n"
	"hg8MC4ulBthmRW22yM37URkcpI/6EWfFS4AoEKjGR4AKEWd3MLvtvafVZYEE7d0e\n"
	"2jncjlAvNTDSFDybDPUNYSTr2Ejj/6fZDY3W9sFFVvkgmWm9s9UAMxpkOAxKt7GJ\n"
	"v/SjXP6SovCuMhlMbxSxqsGW0cZW1anT2bqCT6x0UZFMJiIrvI3KD1QpnKdcQikN\n"
	"QH4zU5Q70hiphcd+JAJh9Luvz9H9vJCVVZY2GQIDAQABAoIBAGECoO+27mnCjVpe\n"
	"+IHC9wW00XLe7MTC3+a3EcE+UeDkAYIePDGmsAW97CHTFaHJRQXxD9+ZaFpqOjZ3\n"
	"s/JTDt2txkxPzHhlRmIfB6+Wtket5NPUJkuFKHWok3Jm0kOZU8xDuUVnNEy41hDd\n"
	"Nvh0jgSl9sOcHcf1XdANReQe3DyFtglhRrW8Kmd2WBfEohVb2JSo/mDJhVc4sbut\n"
	"aaC6TJOp9oo39JVxkjoEMZnTB6Dd08zleMGXhyn43M/ccm3ghWbH+Peb+wKkazdc\n"
	"Cart4bZ0hIey1oUSbZEWFDEDLBTOv65Xxe59LDuzECbEiNPemA8j3B5q/9Sycr8j\n"
	"UmWFuVkCgYEA9d9KJQ9rEOIcg+zuqY603tuP7nYr8BzhKPSz9cxBtLxOxPc7Ufy9\n"
	"+jo5C5QQ+lioWoh71XjelmE/6rlEsyy0dqo7gNqQbrCjwVR0eHLtMu3J8868NF76\n"
	"Ug6md3twnWzjnivUUZaRFcXONXbFLCcsAnU9NTerzzOsiNiDso9m3esCgYEA55oW\n"
	"8ViQ/kNreSRIKRzhhHpS+68pJretzJg1EBK0kywlxtNeKQ/e1mnFH7h8bBzbJU8a\n"
	"I34GHnQRkeQJJTjZuet+PyplMIZ1TykwVQQIHSsMxMt+pBgdmR+13sagDuH6Md6W\n"
	"5xDGYVkdUWpQQENwHZF29CXPNTevhRsrTpG7xwsCgYEA7nhfpYpKwdlM5vfKk1IC\n"
	"Q5SZCSQ8gWrBR8PvN5ugrvdlPsy8EE0exa/q3DwEK4wJ3aU61lWhLiGsqLCA3Xei\n"
	"oOWDSPqz02gnq7+KJ7jwLtFLatk82V61Uxk6g/CJzWZrbmH8UBXFKmTsGBbWLnjf\n"
	"ypKDhzYzwYfQ8/lr4qgLkXkCgYEA3rtXAyYs0wqdqjRVXYyT6acGdVwAFGcjMxbS\n"
	"OTH0DXGwpuURsiW8JbI0zIvMxOB/dQL83VNOqSzw1MBcdzqUUXQDxtWL2T4GRWoU\n"
	"PD6TWxHSxtP5Z/B1TpSrgKK+vXFf/2PU9kUws+BTDMBUi2kPwq/pmWVfQAvctgLq\n"
	"BDatQv8CgYEAuSOYigvPLSpcCY0wqtnXHhOr8XyLjtZxPiUJ2H3mpBsUTfhyQg05\n"
	"BnY2aDkdu1XNrYy8hTibAram48nqG+K9/AyLKOhwdUWnMTpdebDHl0/3CyXKaq43\n"
	"hb76Jx5z00aijgO4dn9juNC7DdCYzGUbrpU1BiA9v0Cr2IF5Fa9mNt8=\n"
	"-----END RSA PRIVATE KEY-----\n";

static const char ec_key_pkcs8[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwJ1EUrie/rU2wdai\n"
	"dCB8QfEsGmgdLicIE5LjQrtqZJehRANCAAQyiuNZR+Cge2xn46fktwOxEAn/Tj0D\n"
	"Dn7y/0NfXU4/50D5Qx+cLkZTj8vr4M7Q+v8idEn6SNO+4EUdEcB5I838\n"
	"-----END PRIVATE KEY-----\n";

/* A JWT signing input: base64url(header) "." base64url(claims). */
static const char rs_msg[] =
	"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImNjci1zZWxmdGVzdCJ9"
	".eyJpc3MiOiJzZWxmdGVzdEBjY3IuZXhhbXBsZSIsInNjb3BlIjoiaHR0cHM6Ly9"
	"3d3cuZ29vZ2xlYXBpcy5jb20vYXV0aC9jbG91ZC1wbGF0Zm9ybSIsImF1ZCI6Imh"
	"0dHBzOi8vb2F1dGgyLmdvb2dsZWFwaXMuY29tL3Rva2VuIiwiaWF0IjoxNzAwMDA"
	"wMDAwLCJleHAiOjE3MDAwMDM2MDB9";

static const char rs_sig_b64[] =
	"cvr/NK4t0f7JZQTb2fw5Y5NPe6vd4VjIMglHrKuufv6okA7fY8/UVVM2upxIGsXk"
	"mH0Wv6gA4tB8Ld1xakqHbeZnIWTqU7nF1KpNxjxvR0V1YAUP2d642dzk/JW7B2fQ"
	"eR5lB+bJl8c0pIdJbuzylEYoALRoO08/QKSFsgw//mky6/gaDYb4N6z1swpXzkbO"
	"EcvgKR13wFXlcfyFIWUXaNWGgSbnP8MCLsU5caaiptKrbIptTGZl+aMd7ZUw4xXi"
	"T7QSADBlEMQldrpMweHl+5UtgXzZ0xUIAAWvH6ARurCTWCD8vgf9CN7k7TD4Pq1u"
	"pMXdIquBMkG3JtNjGhqVaA==";

static int rs_check(const char *pem, const char *what, char *why, size_t whylen)
{
	struct buf sig = BUF_INIT, want = BUF_INIT;
	char err[128];
	int rc = 1;

	if (b64_decode(&want, rs_sig_b64, strlen(rs_sig_b64)) != 0) {
		rc = st_fail(why, whylen, "bad expected signature");
		goto out;
	}
	/* The signature is appended after what the buffer already holds. */
	if (buf_adds(&sig, "pre") != 0) {
		rc = st_fail(why, whylen, "out of memory");
		goto out;
	}
	if (cr_rs256_sign(pem, rs_msg, strlen(rs_msg), &sig, err, sizeof err) != 0) {
		rc = st_fail(why, whylen, "%s: %s", what, err);
		goto out;
	}
	if (sig.len != 3 + 256 || memcmp(sig.p, "pre", 3) != 0 ||
			memcmp(sig.p + 3, want.p, want.len) != 0) {
		rc = st_fail(why, whylen, "%s: signature differs from OpenSSL's", what);
		goto out;
	}
	rc = 0;
out:
	buf_free(&sig);
	buf_free(&want);
	return rc;
}

static int t_rs256_pkcs8(char *why, size_t whylen)
{
	return rs_check(rs_key_pkcs8, "PKCS#8 key", why, whylen);
}

static int t_rs256_pkcs1(char *why, size_t whylen)
{
	return rs_check(rs_key_pkcs1, "PKCS#1 key", why, whylen);
}

/* Key without the final newline, preceded by unrelated text and objects. */
static int t_rs256_framing(char *why, size_t whylen)
{
	struct buf pem = BUF_INIT;
	int rc = 1;

	if (buf_adds(&pem, "service account key follows\n"
			"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") != 0 ||
			buf_add(&pem, rs_key_pkcs8, strlen(rs_key_pkcs8) - 1) != 0) {
		rc = st_fail(why, whylen, "out of memory");
		goto out;
	}
	rc = rs_check(pem.p, "framed PKCS#8 key", why, whylen);
out:
	buf_free(&pem);
	return rc;
}

static int t_rs256_errors(char *why, size_t whylen)
{
	static const struct {
		const char *pem, *label;
	} bad[] = {
		{ "", "empty text" },
		{ "not a key at all", "no PEM" },
		{ ec_key_pkcs8, "EC key" },
		{ "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
			"encrypted key" },
		{ "-----BEGIN PRIVATE KEY-----\nMIIEvwIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
			"truncated DER" },
		{ "-----BEGIN PRIVATE KEY-----\nMIIE*wIB\n-----END PRIVATE KEY-----\n", "bad base64" },
		{ "-----BEGIN PRIVATE KEY-----\nMIIEvwIBADANBgkqhkiG9w0BAQEFAASC\n", "no END line" },
	};
	struct buf sig = BUF_INIT;
	char err[128];
	size_t i;
	int rc = 1;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (cr_rs256_sign(bad[i].pem, "x", 1, &sig, err, sizeof err) != -1) {
			rc = st_fail(why, whylen, "%s: accepted", bad[i].label);
			goto out;
		}
		if (err[0] == '\0' || sig.len != 0) {
			rc = st_fail(why, whylen, "%s: no reason, or output written", bad[i].label);
			goto out;
		}
	}
	if (cr_rs256_sign(rs_key_pkcs8, "x", 1, &sig, NULL, 0) != 0 || sig.len != 256) {
		rc = st_fail(why, whylen, "signing without an error buffer failed");
		goto out;
	}
	rc = 0;
out:
	buf_free(&sig);
	return rc;
}

const struct st_case crypto_selftests[] = {
	{ "sha256", t_sha256 },                 /* FIPS 180-2 abc, empty, 448 bits, 10^6 a */
	{ "hmac_sha256", t_hmac },              /* RFC 4231 cases 1 2 3 4 6 7 */
	{ "aes256gcm", t_gcm_vectors },         /* GCM spec test cases 13-16 */
	{ "aes256gcm_tamper", t_gcm_tamper },   /* bad tag / ciphertext / AAD / IV */
	{ "random", t_random },
	{ "const_eq_wipe", t_const_eq_wipe },
	{ "rs256_pkcs8", t_rs256_pkcs8 },       /* same bytes as OpenSSL */
	{ "rs256_pkcs1", t_rs256_pkcs1 },
	{ "rs256_framing", t_rs256_framing },   /* other PEM objects, no final newline */
	{ "rs256_errors", t_rs256_errors },     /* bad keys rejected with a reason */
	{ NULL, NULL },
};
