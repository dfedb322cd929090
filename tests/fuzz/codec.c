/*
 * codec.c: base64, base64url, hex and CRC-32C (src/util) against reference
 * properties.
 *
 *  - encode then decode gives the input back, for both base64 alphabets
 *    and hex; encoded lengths match b64_encoded_len / b64_url_encoded_len;
 *  - decoding arbitrary text either fails leaving the buffer untouched, or
 *    succeeds and re-encoding gives the same text (the decoders accept
 *    only canonical input; base64 may omit its padding, hex may be upper
 *    case);
 *  - hex_decode_mem agrees with hex_decode;
 *  - crc32c equals a bitwise reference written here, and continuing a CRC
 *    over a split input equals the CRC of the whole.
 */
#include <ctype.h>

#include "fuzz.h"
#include "util/b64.h"
#include "util/crc32c.h"
#include "util/hex.h"

static uint32_t crc32c_reference(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		crc ^= p[i];
		for (k = 0; k < 8; k++)
			crc = crc & 1 ? crc >> 1 ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static void round_trip(const uint8_t *data, size_t size)
{
	struct buf enc = BUF_INIT, dec = BUF_INIT;

	FUZZ_CHECK(b64_encode(&enc, data, size) == 0, "b64_encode");
	FUZZ_CHECK(enc.len == b64_encoded_len(size), "b64 length %zu vs %zu", enc.len, b64_encoded_len(size));
	FUZZ_CHECK(b64_decode(&dec, enc.p, enc.len) == 0, "b64_decode of its own encoding");
	FUZZ_CHECK(dec.len == size && (size == 0 || memcmp(dec.p, data, size) == 0), "b64 round trip");
	buf_reset(&enc);
	buf_reset(&dec);
	FUZZ_CHECK(b64_url_encode(&enc, data, size) == 0, "b64_url_encode");
	FUZZ_CHECK(enc.len == b64_url_encoded_len(size), "b64url length");
	FUZZ_CHECK(!memchr(enc.p ? enc.p : "", '=', enc.len), "b64url has padding");
	FUZZ_CHECK(b64_url_decode(&dec, enc.p, enc.len) == 0, "b64_url_decode of its own encoding");
	FUZZ_CHECK(dec.len == size && (size == 0 || memcmp(dec.p, data, size) == 0), "b64url round trip");
	buf_reset(&enc);
	buf_reset(&dec);
	FUZZ_CHECK(hex_encode(&enc, data, size) == 0 && enc.len == 2 * size, "hex_encode");
	FUZZ_CHECK(hex_decode(&dec, enc.p, enc.len) == 0, "hex_decode of its own encoding");
	FUZZ_CHECK(dec.len == size && (size == 0 || memcmp(dec.p, data, size) == 0), "hex round trip");
	if (size <= 64) {
		char fmt[129];

		hex_fmt(fmt, data, size);
		FUZZ_CHECK(strlen(fmt) == 2 * size && memcmp(fmt, enc.p, 2 * size) == 0, "hex_fmt vs hex_encode");
	}
	buf_free(&enc);
	buf_free(&dec);
}

typedef int (*dec_fn)(struct buf *, const char *, size_t);
typedef int (*enc_fn)(struct buf *, const void *, size_t);

/* Decode arbitrary text; on success the re-encoding is the canonical text. */
static void decode_text(const char *s, size_t n, dec_fn dec, enc_fn enc)
{
	struct buf out = BUF_INIT, again = BUF_INIT;
	int rc;

	FUZZ_CHECK(buf_adds(&out, "x") == 0, "oom");
	rc = dec(&out, s, n);
	if (rc != 0) {
		FUZZ_CHECK(rc == -1 && out.len == 1 && out.p[0] == 'x', "failed decode changed the buffer");
		buf_free(&out);
		return;
	}
	FUZZ_CHECK(out.p[0] == 'x', "decode overwrote existing contents");
	FUZZ_CHECK(enc(&again, out.p + 1, out.len - 1) == 0, "re-encode");
	{
		/* Either alphabet may leave its padding out; if present it is exact. */
		size_t m = again.len, k = n;

		while (m > 0 && again.p[m - 1] == '=')
			m--;
		while (k > 0 && s[k - 1] == '=')
			k--;
		FUZZ_CHECK(m == k && memcmp(again.p, s, k) == 0, "decode accepted non-canonical input \"%.*s\"",
			   (int)n, s);
		FUZZ_CHECK(k == n || n % 4 == 0, "decode accepted wrong padding \"%.*s\"", (int)n, s);
	}
	buf_free(&out);
	buf_free(&again);
}

static void hex_text(const char *s, size_t n)
{
	struct buf out = BUF_INIT, again = BUF_INIT;
	unsigned char mem[256];
	size_t i;
	int rc = hex_decode(&out, s, n);

	if (n / 2 <= sizeof(mem)) {
		int rm = hex_decode_mem(mem, sizeof(mem), s, n);

		FUZZ_CHECK(rm == rc, "hex_decode_mem %d vs hex_decode %d", rm, rc);
		FUZZ_CHECK(rc != 0 || n == 0 || memcmp(mem, out.p, n / 2) == 0, "hex_decode_mem bytes");
	}
	if (rc == 0) {
		FUZZ_CHECK(hex_encode(&again, out.p, out.len) == 0 && again.len == n, "hex re-encode");
		for (i = 0; i < n; i++)
			FUZZ_CHECK(again.p[i] == tolower((unsigned char)s[i]), "hex re-encode differs");
	} else {
		FUZZ_CHECK(out.len == 0, "failed hex_decode changed the buffer");
	}
	buf_free(&out);
	buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t split = size ? data[0] % (size + 1) : 0;
	uint32_t whole = crc32c(data, size);

	FUZZ_CHECK(whole == crc32c_reference(data, size), "crc32c %08x vs reference %08x", whole,
		   crc32c_reference(data, size));
	FUZZ_CHECK(crc32c_update(crc32c_update(0, data, split), data + split, size - split) == whole,
		   "crc32c_update split at %zu", split);
	round_trip(data, size);
	decode_text((const char *)data, size, b64_decode, b64_encode);
	decode_text((const char *)data, size, b64_url_decode, b64_url_encode);
	hex_text((const char *)data, size);
	return 0;
}
