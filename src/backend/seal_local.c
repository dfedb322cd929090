/*
 * seal_local.c: the local sealing backend: a 32-byte key in a file.
 *
 * The key file holds 64 hex digits and a newline.  It is created with
 * mode 0600 (O_EXCL, so two processes starting together agree on one key)
 * on first use, and refused when group or others can read it.  A DEK is
 * wrapped as: version byte 0x01, a random 12-byte IV, the 32-byte DEK
 * encrypted with AES-256-GCM under the key (AAD "ccr-local-dek-v1"), and
 * the 16-byte tag: 61 bytes, base64'd by the envelope into encryptedDek.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/seal.h"
#include "crypto/crypto.h"
#include "util/fdio.h"
#include "util/hex.h"

#define WRAP_VERSION 0x01
#define WRAP_LEN (1 + CR_GCM_IV_LEN + 32 + CR_GCM_TAG_LEN)
static const char wrap_aad[] = "ccr-local-dek-v1";

struct seal_local {
	struct sealer base;
	uint8_t key[32];
};

/* Create a new key file; 1 when it already exists, 0 made, -1 error. */
static int create_key(const char *path, struct err *e)
{
	uint8_t key[32];
	char text[66];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST)
		return 1;
	if (fd < 0)
		return err_set(e, "cannot create the local key %s: %s", path, strerror(errno));
	if (cr_random(key, sizeof(key)) != 0) {
		close(fd);
		unlink(path);
		return err_set(e, "cannot create the local key %s: no randomness from the kernel", path);
	}
	hex_fmt(text, key, sizeof(key));
	text[64] = '\n';
	if (fd_write_all(fd, text, 65) != 0 || fsync(fd) != 0) {
		close(fd);
		unlink(path);
		cr_wipe(key, sizeof(key));
		return err_set(e, "cannot write the local key %s: %s", path, strerror(errno));
	}
	cr_wipe(key, sizeof(key));
	cr_wipe(text, sizeof(text));
	return close(fd) == 0 ? 0 : err_set(e, "cannot write the local key %s: %s", path, strerror(errno));
}

static int load_key(const char *path, uint8_t key[32], struct err *e)
{
	char text[80];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return err_set(e, "cannot open the local key %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
		close(fd);
		return err_set(e, "the local key %s is readable by group or others: chmod 600 it", path);
	}
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 64 || hex_decode_mem(key, 32, text, 64) != 0) {
		cr_wipe(text, sizeof(text));
		return err_set(e, "the local key %s is damaged: it must hold 64 hex digits", path);
	}
	cr_wipe(text, sizeof(text));
	return 0;
}

static int local_wrap(struct sealer *s, const uint8_t dek[32], struct buf *out, struct err *e)
{
	struct seal_local *l = (struct seal_local *)s;
	uint8_t w[WRAP_LEN];

	w[0] = WRAP_VERSION;
	if (cr_random(w + 1, CR_GCM_IV_LEN) != 0)
		return err_set(e, "local key: no randomness from the kernel");
	if (cr_aes256gcm_seal(l->key, w + 1, wrap_aad, sizeof(wrap_aad) - 1, dek, 32, w + 1 + CR_GCM_IV_LEN,
			      w + 1 + CR_GCM_IV_LEN + 32) != 0)
		return err_set(e, "local key: AES-GCM refused its input");
	if (buf_add(out, w, sizeof(w)) != 0)
		return err_set(e, "local key: out of memory");
	return 0;
}

static int local_unwrap(struct sealer *s, const uint8_t *w, size_t n, uint8_t dek[32], struct err *e)
{
	struct seal_local *l = (struct seal_local *)s;

	if (n != WRAP_LEN || w[0] != WRAP_VERSION)
		return err_set(e, "encryptedDek was not made by a local key (was the payload sealed by Cloud KMS?)");
	if (cr_aes256gcm_open(l->key, w + 1, wrap_aad, sizeof(wrap_aad) - 1, w + 1 + CR_GCM_IV_LEN, 32,
			      w + 1 + CR_GCM_IV_LEN + 32, dek) != 0)
		return err_set(e, "encryptedDek does not open with this local key (a different CCR_DATA_DIR or key file?)");
	return 0;
}

static void local_free(struct sealer *s)
{
	struct seal_local *l = (struct seal_local *)s;

	if (!l)
		return;
	cr_wipe(l->key, sizeof(l->key));
	free(l);
}

static const struct seal_ops local_ops = {
	.name = "local",
	.wrap = local_wrap,
	.unwrap = local_unwrap,
	.decrypt_direct = NULL,
	.free = local_free,
};

struct sealer *seal_local_new(const char *key_path, struct err *e)
{
	struct seal_local *l;

	if (create_key(key_path, e) < 0)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l) {
		err_set(e, "out of memory");
		return NULL;
	}
	l->base.ops = &local_ops;
	if (load_key(key_path, l->key, e) != 0) {
		local_free(&l->base);
		return NULL;
	}
	return &l->base;
}
