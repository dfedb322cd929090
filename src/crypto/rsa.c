/*
 * rsa.c: RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signatures from a PEM key.
 *
 * Design:
 *  - The PEM text is streamed through br_pem_decoder; when the decoder
 *    reports the start of a "PRIVATE KEY" (PKCS#8) or "RSA PRIVATE KEY"
 *    (PKCS#1) object, its destination callback is pointed at
 *    br_skey_decoder_push, so the DER bytes go straight from the PEM
 *    decoder into the key decoder with no intermediate copy.  Other
 *    objects (certificates, parameters) are decoded into nothing.
 *  - BearSSL's PEM decoder only recognises an END banner once the line
 *    is terminated, so a "\n" is pushed after the text: keys pasted
 *    without the final newline still work.
 *  - The signature is computed by br_rsa_pkcs1_sign_get_default() (i62
 *    or i31 code, constant-time) straight into the output buffer.
 *  - Both decoder contexts hold key material (the skey decoder keeps the
 *    CRT components in its key_data; the PEM decoder's line buffer holds
 *    decoded bytes), so the whole state lives in one stack struct that is
 *    wiped with cr_wipe() on every exit path, as is the message hash.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crypto/crypto.h"

struct cr_keydec {
	br_pem_decoder_context pem;
	br_skey_decoder_context skey;
};

static void cr_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void cr_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void cr_skey_sink(void *ctx, const void *src, size_t len)
{
	br_skey_decoder_push(ctx, src, len);
}

/*
 * Run the PEM text through the decoders.  Returns 0 when an RSA private key
 * was decoded into d->skey, else -1 with err set.
 */
static int cr_decode_key(struct cr_keydec *d, const char *pem, char *err, size_t errlen)
{
	const char *p = pem;
	size_t len = strlen(pem);
	int tail_pushed = 0, in_key = 0, found = 0, encrypted = 0, objects = 0;
	int kerr;

	br_pem_decoder_init(&d->pem);
	br_skey_decoder_init(&d->skey);
	while (!found) {
		size_t used;
		int ev;

		if (len == 0) {
			if (tail_pushed)
				break;
			p = "\n";
			len = 1;
			tail_pushed = 1;
		}
		used = br_pem_decoder_push(&d->pem, p, len);
		p += used;
		len -= used;
		ev = br_pem_decoder_event(&d->pem);
		if (ev == BR_PEM_BEGIN_OBJ) {
			const char *name = br_pem_decoder_name(&d->pem);
			objects++;
			if (strcmp(name, "PRIVATE KEY") == 0 || strcmp(name, "RSA PRIVATE KEY") == 0) {
				br_pem_decoder_setdest(&d->pem, cr_skey_sink, &d->skey);
				in_key = 1;
			} else {
				if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0)
					encrypted = 1;
				br_pem_decoder_setdest(&d->pem, 0, NULL);
			}
		} else if (ev == BR_PEM_END_OBJ) {
			if (in_key)
				found = 1;
		} else if (ev == BR_PEM_ERROR) {
			cr_seterr(err, errlen, "private key: malformed PEM");
			return -1;
		} else if (used == 0) {
			/* No progress and no event: never expected, but never spin. */
			cr_seterr(err, errlen, "private key: PEM decoder stalled");
			return -1;
		}
	}
	if (!found) {
		if (in_key)
			cr_seterr(err, errlen, "private key: PEM object not terminated");
		else if (encrypted)
			cr_seterr(err, errlen, "private key: encrypted PEM keys are not supported");
		else if (objects == 0)
			cr_seterr(err, errlen, "private key: no PEM object found");
		else
			cr_seterr(err, errlen, "private key: no PRIVATE KEY or RSA PRIVATE KEY PEM object");
		return -1;
	}
	kerr = br_skey_decoder_last_error(&d->skey);
	if (kerr != 0) {
		cr_seterr(err, errlen, "private key: invalid DER key (BearSSL error %d)", kerr);
		return -1;
	}
	if (br_skey_decoder_key_type(&d->skey) != BR_KEYTYPE_RSA) {
		cr_seterr(err, errlen, "private key: not an RSA key");
		return -1;
	}
	return 0;
}

int cr_rs256_sign(const char *pem_private_key, const void *msg, size_t n,
	struct buf *sig_out, char *err, size_t errlen)
{
	struct cr_keydec d;
	const br_rsa_private_key *sk;
	br_rsa_pkcs1_sign sign;
	uint8_t hash[CR_SHA256_LEN];
	size_t siglen;
	int rc = -1;

	cr_seterr(err, errlen, "%s", "");
	if (pem_private_key == NULL || sig_out == NULL || (n > 0 && msg == NULL)) {
		cr_seterr(err, errlen, "rs256: invalid arguments");
		return -1;
	}
	if (cr_decode_key(&d, pem_private_key, err, errlen) != 0)
		goto out;
	sk = br_skey_decoder_get_rsa(&d.skey);
	if (sk == NULL) {
		cr_seterr(err, errlen, "private key: not an RSA key");
		goto out;
	}
	if (sk->n_bitlen < 1024 || sk->n_bitlen > 4096) {
		cr_seterr(err, errlen, "private key: unsupported RSA size %u bits",
			(unsigned)sk->n_bitlen);
		goto out;
	}
	siglen = (sk->n_bitlen + 7) / 8;
	if (buf_reserve(sig_out, siglen) != 0) {
		cr_seterr(err, errlen, "rs256: out of memory");
		goto out;
	}
	cr_sha256(msg, n, hash);
	sign = br_rsa_pkcs1_sign_get_default();
	if (sign(BR_HASH_OID_SHA256, hash, sizeof hash, sk,
			(unsigned char *)sig_out->p + sig_out->len) != 1) {
		cr_seterr(err, errlen, "rs256: RSA signing failed (inconsistent key)");
		cr_wipe(sig_out->p + sig_out->len, siglen);
		goto out;
	}
	sig_out->len += siglen;
	sig_out->p[sig_out->len] = '\0';
	rc = 0;
out:
	cr_wipe(&d, sizeof d);
	cr_wipe(hash, sizeof hash);
	return rc;
}
