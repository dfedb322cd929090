/*
 * aead.c: AES-256-GCM (96-bit IV, 128-bit tag) over BearSSL's br_gcm.
 *
 * Design:
 *  - The AES-CTR and GHASH implementations are picked at run time, best
 *    first, all constant-time: AES-NI / PCLMULQDQ on x86 CPUs that have
 *    them, the POWER8 crypto instructions on ppc64, otherwise BearSSL's
 *    portable bitsliced br_aes_ct64 and br_ghash_ctmul64.  The *_get()
 *    functions return NULL when the code was not compiled for the target
 *    or the CPU lacks the instructions, so the choice is always safe.
 *  - br_gcm works in place, so the input is first moved to the output
 *    buffer (memmove: identical buffers are allowed) and then transformed
 *    there.  open() has to decrypt before it can check the tag (GHASH runs
 *    over the ciphertext during br_gcm_run); on a mismatch the output is
 *    wiped so unauthenticated plaintext is never handed out.
 *  - The tag check is br_gcm_check_tag(), which compares in constant time.
 *  - The key schedule and GCM state (which holds H = E_K(0)) live on the
 *    stack and are wiped before returning.
 */
#include <string.h>

#include "crypto/crypto.h"

struct cr_gcm {
	br_aes_gen_ctr_keys aes;
	br_gcm_context gcm;
};

static const br_block_ctr_class *cr_aes_ctr_impl(void)
{
	const br_block_ctr_class *c;

	c = br_aes_x86ni_ctr_get_vtable();
	if (c == NULL)
		c = br_aes_pwr8_ctr_get_vtable();
	if (c == NULL)
		c = &br_aes_ct64_ctr_vtable;
	return c;
}

static br_ghash cr_ghash_impl(void)
{
	br_ghash g;

	g = br_ghash_pclmul_get();
	if (g == 0)
		g = br_ghash_pwr8_get();
	if (g == 0)
		g = &br_ghash_ctmul64;
	return g;
}

/* Key setup, IV, AAD; leaves the context ready for br_gcm_run(). */
static void cr_gcm_start(struct cr_gcm *c, const uint8_t key[CR_GCM_KEY_LEN],
	const uint8_t iv[CR_GCM_IV_LEN], const void *aad, size_t aadlen)
{
	const br_block_ctr_class *impl = cr_aes_ctr_impl();

	impl->init(&c->aes.vtable, key, CR_GCM_KEY_LEN);
	br_gcm_init(&c->gcm, &c->aes.vtable, cr_ghash_impl());
	br_gcm_reset(&c->gcm, iv, CR_GCM_IV_LEN);
	if (aadlen > 0)
		br_gcm_aad_inject(&c->gcm, aad, aadlen);
	br_gcm_flip(&c->gcm);
}

static int cr_gcm_args_ok(const uint8_t *key, const uint8_t *iv, const void *aad,
	size_t aadlen, const void *in, const void *out, size_t n, const uint8_t *tag)
{
	if (key == NULL || iv == NULL || tag == NULL)
		return 0;
	if (aadlen > 0 && aad == NULL)
		return 0;
	if (n > 0 && (in == NULL || out == NULL))
		return 0;
	/* GCM's counter covers 2^32 - 2 blocks per IV. */
	if ((uint64_t)n > ((uint64_t)1 << 36) - 32)
		return 0;
	return 1;
}

int cr_aes256gcm_seal(const uint8_t key[CR_GCM_KEY_LEN], const uint8_t iv[CR_GCM_IV_LEN],
	const void *aad, size_t aadlen, const void *plain, size_t n,
	void *out_cipher, uint8_t tag[CR_GCM_TAG_LEN])
{
	struct cr_gcm c;

	if (!cr_gcm_args_ok(key, iv, aad, aadlen, plain, out_cipher, n, tag))
		return -1;
	cr_gcm_start(&c, key, iv, aad, aadlen);
	if (n > 0) {
		if (out_cipher != plain)
			memmove(out_cipher, plain, n);
		br_gcm_run(&c.gcm, 1, out_cipher, n);
	}
	br_gcm_get_tag(&c.gcm, tag);
	cr_wipe(&c, sizeof c);
	return 0;
}

int cr_aes256gcm_open(const uint8_t key[CR_GCM_KEY_LEN], const uint8_t iv[CR_GCM_IV_LEN],
	const void *aad, size_t aadlen, const void *cipher, size_t n,
	const uint8_t tag[CR_GCM_TAG_LEN], void *out_plain)
{
	struct cr_gcm c;
	uint32_t ok;

	if (!cr_gcm_args_ok(key, iv, aad, aadlen, cipher, out_plain, n, tag))
		return -1;
	cr_gcm_start(&c, key, iv, aad, aadlen);
	if (n > 0) {
		if (out_plain != cipher)
			memmove(out_plain, cipher, n);
		br_gcm_run(&c.gcm, 0, out_plain, n);
	}
	ok = br_gcm_check_tag(&c.gcm, tag);
	cr_wipe(&c, sizeof c);
	if (ok != 1) {
		cr_wipe(out_plain, n);
		return -1;
	}
	return 0;
}
