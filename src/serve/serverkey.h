/*
 * serverkey.h: serve's own 32-byte key for keyed hashes (idempotency
 * records, a task's credential fingerprint), shared by every instance.
 *
 * The key is random, sealed with the payload envelope (backend/seal.h)
 * and stored once at keys/serve-hmac.enc with a create-only write, so
 * instances racing at first use all end up with the one that won.  It is
 * read and opened once per serve instance (struct serverkey, which serve's
 * context owns) and kept in memory.  Nothing it keys
 * is secret by itself; it only stops anyone who can read the bucket from
 * testing guesses of a credential or a body against the stored hashes.
 */
#ifndef CCR_SERVERKEY_H
#define CCR_SERVERKEY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/config.h"
#include "task/record.h"

#define SERVERKEY_OBJECT TR_SERVERKEY_KEY

/* The key of one serve instance: loaded (or made) at first use, under
 * lock, from be's storage and sealer. */
struct serverkey {
	struct backends *be;
	pthread_mutex_t lock;
	uint8_t key[32];
	int loaded;
};

/* serverkey_init: not loaded yet; be must outlive sk.  0, or -1 (no mutex). */
int serverkey_init(struct serverkey *sk, struct backends *be);

/* serverkey_free: wipe the key.  Safe on a zeroed struct. */
void serverkey_free(struct serverkey *sk);

/* serverkey_mac: HMAC-SHA256 under the server key of the parts (label,
 * then each part preceded by its length, so no two lists collide), as 64
 * lower-case hex digits in out.  -1 with e set when the key cannot be
 * read, created or opened. */
int serverkey_mac(struct serverkey *sk, const char *label, const char *const *parts, const size_t *lens, size_t n,
		  char out[65], struct err *e);

#endif
