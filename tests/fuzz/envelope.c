/*
 * envelope.c: opening a sealed payload (src/backend/envelope.c) with the
 * local sealing backend (a scratch key file).
 *
 * The first input byte picks the mode:
 *   even: the rest is a stored blob: envelope_open() either fails with a
 *         message and leaves `out` as it was, or succeeds (which random
 *         bytes can only do through the legacy format, never by forging
 *         a v2 authentication tag);
 *   odd:  the rest is a plaintext: envelope_seal() then envelope_open()
 *         gives it back, and flipping any one byte of the sealed text's
 *         base64 fields makes opening fail or yield the same plaintext.
 */
#include <unistd.h>

#include "backend/seal.h"
#include "fuzz.h"

static struct sealer *sealer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[64];
	struct err e = ERR_INIT;

	(void)argc, (void)argv;
	snprintf(path, sizeof(path), "/tmp/ccr-fuzz-envelope.%ld.key", (long)getpid());
	unlink(path);
	sealer = seal_local_new(path, &e);
	if (!sealer) {
		fprintf(stderr, "seal_local_new: %s\n", e.msg);
		abort();
	}
	unlink(path);
	return 0;
}

static void open_blob(const uint8_t *data, size_t size)
{
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;

	if (buf_adds(&out, "keep") != 0)
		abort();
	if (envelope_open(sealer, data, size, &out, &e) != 0) {
		FUZZ_CHECK(e.msg[0], "open failed without a message");
		FUZZ_CHECK(out.len == 4 && memcmp(out.p, "keep", 4) == 0, "a failed open changed the output");
	}
	buf_free(&out);
}

static void round_trip(const uint8_t *data, size_t size)
{
	struct buf sealed = BUF_INIT, out = BUF_INIT;
	struct err e = ERR_INIT;
	size_t pos;

	FUZZ_CHECK(envelope_seal(sealer, data, size, &sealed, &e) == 0, "seal: %s", e.msg);
	FUZZ_CHECK(envelope_open(sealer, sealed.p, sealed.len, &out, &e) == 0, "open of a fresh seal: %s", e.msg);
	FUZZ_CHECK(out.len == size && (size == 0 || memcmp(out.p, data, size) == 0), "round trip");
	/* tamper with one byte chosen by the input */
	pos = size ? (data[0] * 131u + size) % sealed.len : sealed.len / 2;
	sealed.p[pos] ^= 0x01;
	buf_reset(&out);
	if (envelope_open(sealer, sealed.p, sealed.len, &out, &e) == 0)
		FUZZ_CHECK(out.len == size && (size == 0 || memcmp(out.p, data, size) == 0),
			   "a tampered envelope opened to different bytes (byte %zu)", pos);
	buf_free(&sealed);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		round_trip(data + 1, size - 1);
	else
		open_blob(data + 1, size - 1);
	return 0;
}
