/*
 * util_test.c: known-answer and edge-case tests for buf, b64, hex and
 * crc32c, run by ccr-unit.
 *
 * Design: one st_case per module behaviour; vectors come from the RFCs
 * named next to them.  Each case frees what it allocated on every path
 * (single exit through `out:`), so the tests are clean under valgrind.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "selftest/suites.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/hex.h"

/* ---- buf ------------------------------------------------------------------ */

static int t_buf_append(char *why, size_t whylen)
{
	struct buf b = BUF_INIT;
	int i, rc = 1;

	if (buf_adds(&b, "ab") != 0 || buf_addc(&b, 'c') != 0 || buf_add(&b, "de", 2) != 0)
		goto oom;
	if (b.len != 5 || strcmp(b.p, "abcde") != 0) {
		rc = st_fail(why, whylen, "append: got \"%s\" len %zu", b.p, b.len);
		goto out;
	}
	for (i = 0; i < 100; i++)
		if (buf_printf(&b, "%03d", i) != 0)
			goto oom;
	if (b.len != 305 || memcmp(b.p + 5, "000001", 6) != 0 || strcmp(b.p + 302, "099") != 0) {
		rc = st_fail(why, whylen, "buf_printf loop: len %zu", b.len);
		goto out;
	}
	buf_reset(&b);
	if (b.len != 0 || b.p[0] != '\0') {
		rc = st_fail(why, whylen, "buf_reset left len %zu", b.len);
		goto out;
	}
	/* One printf far longer than the spare room takes the retry path. */
	if (buf_printf(&b, "%0500d|%s", 7, "x") != 0)
		goto oom;
	if (b.len != 502 || b.p[498] != '0' || strcmp(b.p + 499, "7|x") != 0) {
		rc = st_fail(why, whylen, "long buf_printf: len %zu", b.len);
		goto out;
	}
	/* Appending the buffer to itself must survive reallocation. */
	buf_reset(&b);
	if (buf_adds(&b, "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRST") != 0)
		goto oom;
	if (buf_add(&b, b.p, b.len) != 0 || buf_add(&b, b.p, b.len) != 0)
		goto oom;
	if (b.len != 4 * 66 || memcmp(b.p, b.p + 66, 66) != 0 || memcmp(b.p, b.p + 198, 66) != 0 ||
			b.p[b.len] != '\0') {
		rc = st_fail(why, whylen, "self-append: len %zu", b.len);
		goto out;
	}
	rc = 0;
	goto out;
oom:
	rc = st_fail(why, whylen, "out of memory");
out:
	buf_free(&b);
	return rc;
}

/* buf_addu: decimal, zero-padded to a width, the whole range. */
static int t_buf_addu(char *why, size_t whylen)
{
	struct buf b = BUF_INIT;
	int rc = 0;

	if (buf_addu(&b, 0, 0) != 0 || buf_addc(&b, '|') != 0 || buf_addu(&b, 7, 6) != 0 || buf_addc(&b, '|') != 0 ||
	    buf_addu(&b, 1234567, 6) != 0 || buf_addc(&b, '|') != 0 || buf_addu(&b, 18446744073709551615ull, 0) != 0)
		rc = st_fail(why, whylen, "out of memory");
	else if (strcmp(b.p, "0|000007|1234567|18446744073709551615") != 0)
		rc = st_fail(why, whylen, "got \"%s\"", b.p);
	buf_free(&b);
	return rc;
}

/* clock_iso: "YYYY-MM-DDTHH:MM:SS.mmmZ", the same second as time(). */
static int t_clock_iso(char *why, size_t whylen)
{
	char ts[32], want[32];
	time_t now = time(NULL);
	struct tm tm;
	int i;

	clock_iso(ts);
	gmtime_r(&now, &tm);
	strftime(want, sizeof(want), "%Y-%m-%dT", &tm);
	if (strlen(ts) != 24 || ts[23] != 'Z' || ts[19] != '.' || strncmp(ts, want, 11) != 0)
		return st_fail(why, whylen, "clock_iso gave \"%s\" (today is %s...)", ts, want);
	for (i = 0; i < 23; i++)
		if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19 && (ts[i] < '0' || ts[i] > '9'))
			return st_fail(why, whylen, "clock_iso gave \"%s\": not a digit at %d", ts, i);
	return 0;
}

static int t_buf_detach(char *why, size_t whylen)
{
	struct buf b = BUF_INIT;
	char *s = NULL;
	int rc = 1;

	/* A buffer that never allocated detaches as a fresh "". */
	s = buf_detach(&b);
	if (s == NULL) {
		rc = st_fail(why, whylen, "out of memory");
		goto out;
	}
	if (s[0] != '\0') {
		rc = st_fail(why, whylen, "empty detach is not \"\"");
		goto out;
	}
	free(s);
	s = NULL;
	/* buf_add of nothing still yields a valid C string. */
	if (buf_add(&b, "", 0) != 0 || b.p == NULL || b.p[0] != '\0' || b.len != 0) {
		rc = st_fail(why, whylen, "empty add");
		goto out;
	}
	if (buf_adds(&b, "hello") != 0) {
		rc = st_fail(why, whylen, "out of memory");
		goto out;
	}
	s = buf_detach(&b);
	if (s == NULL || strcmp(s, "hello") != 0 || b.p != NULL || b.len != 0 || b.cap != 0) {
		rc = st_fail(why, whylen, "detach: buffer not handed over");
		goto out;
	}
	rc = 0;
out:
	free(s);
	buf_free(&b);
	return rc;
}

/* ---- base64 (RFC 4648 §10) ------------------------------------------------ */

static const struct {
	const char *plain, *std, *url;
} b64_vectors[] = {
	{ "", "", "" },
	{ "f", "Zg==", "Zg" },
	{ "fo", "Zm8=", "Zm8" },
	{ "foo", "Zm9v", "Zm9v" },
	{ "foob", "Zm9vYg==", "Zm9vYg" },
	{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
	/* 62 and 63 in every position: where the alphabets differ. */
	{ "\xfb\xff\xbf", "+/+/", "-_-_" },
	{ "\xfb\xef\xbe\xff", "++++/w==", "----_w" },
};

static int t_b64_vectors(char *why, size_t whylen)
{
	struct buf b = BUF_INIT;
	size_t i, n = sizeof b64_vectors / sizeof b64_vectors[0];
	int rc = 1;

	for (i = 0; i < n; i++) {
		const char *p = b64_vectors[i].plain;
		size_t pl = strlen(p);

		buf_reset(&b);
		if (b64_encode(&b, p, pl) != 0 || strcmp(b.p, b64_vectors[i].std) != 0) {
			rc = st_fail(why, whylen, "b64_encode #%zu: got \"%s\"", i, b.p ? b.p : "(null)");
			goto out;
		}
		if (b.len != b64_encoded_len(pl)) {
			rc = st_fail(why, whylen, "b64_encoded_len #%zu", i);
			goto out;
		}
		buf_reset(&b);
		if (b64_url_encode(&b, p, pl) != 0 || strcmp(b.p, b64_vectors[i].url) != 0) {
			rc = st_fail(why, whylen, "b64_url_encode #%zu: got \"%s\"", i, b.p ? b.p : "(null)");
			goto out;
		}
		if (b.len != b64_url_encoded_len(pl)) {
			rc = st_fail(why, whylen, "b64_url_encoded_len #%zu", i);
			goto out;
		}
		buf_reset(&b);
		if (b64_decode(&b, b64_vectors[i].std, strlen(b64_vectors[i].std)) != 0 ||
				b.len != pl || memcmp(b.p, p, pl) != 0) {
			rc = st_fail(why, whylen, "b64_decode #%zu", i);
			goto out;
		}
		/* url decoding: unpadded, and padded (the std form when it has no + /). */
		buf_reset(&b);
		if (b64_url_decode(&b, b64_vectors[i].url, strlen(b64_vectors[i].url)) != 0 ||
				b.len != pl || memcmp(b.p, p, pl) != 0) {
			rc = st_fail(why, whylen, "b64_url_decode #%zu", i);
			goto out;
		}
		if (strpbrk(b64_vectors[i].std, "+/") == NULL) {
			buf_reset(&b);
			if (b64_url_decode(&b, b64_vectors[i].std, strlen(b64_vectors[i].std)) != 0 ||
					b.len != pl || memcmp(b.p, p, pl) != 0) {
				rc = st_fail(why, whylen, "b64_url_decode padded #%zu", i);
				goto out;
			}
			/* ... and std decoding without padding. */
			buf_reset(&b);
			if (b64_decode(&b, b64_vectors[i].url, strlen(b64_vectors[i].url)) != 0 ||
					b.len != pl || memcmp(b.p, p, pl) != 0) {
				rc = st_fail(why, whylen, "b64_decode unpadded #%zu", i);
				goto out;
			}
		}
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

static int t_b64_reject(char *why, size_t whylen)
{
	static const char *const bad_std[] = {
		"Zm9v!", "Zm 9v", "Zm9v\n", "-_-_", "Zm9vY", "Zg=", "Zg===", "=", "Z===",
		"Zh==", "Zm9=", "Zg==Zg==", "Zm=v",
	};
	static const char *const bad_url[] = {
		"+/+/", "Zm9v.", "Zm9vY", "Zh", "Zm9", "Zg=", "Zg===",
	};
	struct buf b = BUF_INIT;
	size_t i;
	int rc = 1;

	if (buf_adds(&b, "keep") != 0) {
		rc = st_fail(why, whylen, "out of memory");
		goto out;
	}
	for (i = 0; i < sizeof bad_std / sizeof bad_std[0]; i++) {
		if (b64_decode(&b, bad_std[i], strlen(bad_std[i])) != -1) {
			rc = st_fail(why, whylen, "b64_decode accepted \"%s\"", bad_std[i]);
			goto out;
		}
		if (b.len != 4 || strcmp(b.p, "keep") != 0) {
			rc = st_fail(why, whylen, "b64_decode changed the buffer on \"%s\"", bad_std[i]);
			goto out;
		}
	}
	for (i = 0; i < sizeof bad_url / sizeof bad_url[0]; i++) {
		if (b64_url_decode(&b, bad_url[i], strlen(bad_url[i])) != -1) {
			rc = st_fail(why, whylen, "b64_url_decode accepted \"%s\"", bad_url[i]);
			goto out;
		}
		if (b.len != 4 || strcmp(b.p, "keep") != 0) {
			rc = st_fail(why, whylen, "b64_url_decode changed the buffer on \"%s\"", bad_url[i]);
			goto out;
		}
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

/* Every byte value through both codecs, with appends after existing data. */
static int t_b64_roundtrip(char *why, size_t whylen)
{
	struct buf enc = BUF_INIT, dec = BUF_INIT;
	unsigned char all[256];
	size_t i, n;
	int url, rc = 1;

	for (i = 0; i < sizeof all; i++)
		all[i] = (unsigned char)(255 - i);
	for (url = 0; url < 2; url++) {
		for (n = 0; n <= sizeof all; n += (n < 8 ? 1 : 37)) {
			buf_reset(&enc);
			buf_reset(&dec);
			if (buf_adds(&enc, "x") != 0 || buf_adds(&dec, "y") != 0)
				goto oom;
			if ((url ? b64_url_encode(&enc, all, n) : b64_encode(&enc, all, n)) != 0)
				goto oom;
			if ((url ? b64_url_decode(&dec, enc.p + 1, enc.len - 1)
					: b64_decode(&dec, enc.p + 1, enc.len - 1)) != 0 ||
					dec.len != n + 1 || dec.p[0] != 'y' || memcmp(dec.p + 1, all, n) != 0) {
				rc = st_fail(why, whylen, "%s round trip of %zu bytes", url ? "url" : "std", n);
				goto out;
			}
		}
	}
	rc = 0;
	goto out;
oom:
	rc = st_fail(why, whylen, "out of memory");
out:
	buf_free(&enc);
	buf_free(&dec);
	return rc;
}

/* ---- hex ------------------------------------------------------------------ */

static int t_hex(char *why, size_t whylen)
{
	static const unsigned char bin[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff };
	struct buf b = BUF_INIT;
	char fixed[2 * sizeof bin + 1];
	unsigned char back[sizeof bin];
	int rc = 1;

	if (hex_encode(&b, bin, sizeof bin) != 0)
		goto oom;
	if (strcmp(b.p, "00017f80abcdefff") != 0) {
		rc = st_fail(why, whylen, "hex_encode: got %s", b.p);
		goto out;
	}
	hex_fmt(fixed, bin, sizeof bin);
	if (strcmp(fixed, "00017f80abcdefff") != 0) {
		rc = st_fail(why, whylen, "hex_fmt: got %s", fixed);
		goto out;
	}
	buf_reset(&b);
	if (hex_decode(&b, "00017F80ABcdEFff", 16) != 0)
		goto oom;
	if (b.len != sizeof bin || memcmp(b.p, bin, sizeof bin) != 0) {
		rc = st_fail(why, whylen, "hex_decode mismatch");
		goto out;
	}
	if (hex_decode_mem(back, sizeof back, "00017f80abcdefff", 16) != 0 ||
			memcmp(back, bin, sizeof bin) != 0) {
		rc = st_fail(why, whylen, "hex_decode_mem mismatch");
		goto out;
	}
	if (hex_decode(&b, "abc", 3) != -1 || hex_decode(&b, "0g", 2) != -1 ||
			hex_decode(&b, "00 1", 4) != -1 || hex_decode_mem(back, 1, "0000", 4) != -1) {
		rc = st_fail(why, whylen, "hex decoders accepted bad input");
		goto out;
	}
	if (b.len != sizeof bin || memcmp(b.p, bin, sizeof bin) != 0) {
		rc = st_fail(why, whylen, "hex_decode changed the buffer on failure");
		goto out;
	}
	rc = 0;
	goto out;
oom:
	rc = st_fail(why, whylen, "out of memory");
out:
	buf_free(&b);
	return rc;
}

/* ---- crc32c ----------------------------------------------------------------- */

static int t_crc32c(char *why, size_t whylen)
{
	static const char digits[] = "123456789";
	unsigned char v[32];
	uint32_t c;
	size_t i;

	c = crc32c(digits, 9);
	if (c != 0xE3069283u)
		return st_fail(why, whylen, "\"123456789\": %08x", (unsigned)c);
	if (crc32c("", 0) != 0)
		return st_fail(why, whylen, "empty input");
	/* RFC 3720 §B.4 (values as integers, not as transmitted bytes). */
	memset(v, 0, sizeof v);
	if ((c = crc32c(v, 32)) != 0x8A9136AAu)
		return st_fail(why, whylen, "32 zero bytes: %08x", (unsigned)c);
	memset(v, 0xFF, sizeof v);
	if ((c = crc32c(v, 32)) != 0x62A8AB43u)
		return st_fail(why, whylen, "32 0xFF bytes: %08x", (unsigned)c);
	for (i = 0; i < 32; i++)
		v[i] = (unsigned char)i;
	if ((c = crc32c(v, 32)) != 0x46DD794Eu)
		return st_fail(why, whylen, "incrementing bytes: %08x", (unsigned)c);
	for (i = 0; i < 32; i++)
		v[i] = (unsigned char)(31 - i);
	if ((c = crc32c(v, 32)) != 0x113FDB5Cu)
		return st_fail(why, whylen, "decrementing bytes: %08x", (unsigned)c);
	/* Incremental use gives the same result at every split point. */
	for (i = 0; i <= 9; i++) {
		c = crc32c_update(crc32c_update(0, digits, i), &digits[i], 9 - i);
		if (c != 0xE3069283u)
			return st_fail(why, whylen, "split at %zu: %08x", i, (unsigned)c);
	}
	return 0;
}

const struct st_case util_tests[] = {
	{ "buf_append", t_buf_append },         /* add, printf, reset, self-append */
	{ "buf_detach", t_buf_detach },
	{ "buf_addu", t_buf_addu },
	{ "clock_iso", t_clock_iso },
	{ "b64_vectors", t_b64_vectors },       /* RFC 4648 §10, std and url */
	{ "b64_reject", t_b64_reject },
	{ "b64_roundtrip", t_b64_roundtrip },   /* all byte values, both alphabets */
	{ "hex", t_hex },
	{ "crc32c", t_crc32c },                 /* known answers, incremental */
	{ NULL, NULL },
};
