/*
 * seal_seam.c: the sealing seam's calls (seal.h), forwarding to the
 * backend's operation table so no caller reaches through `ops`.
 */
#include "backend/seal.h"

int seal_wrap(struct sealer *s, const uint8_t dek[32], struct buf *out, struct err *e)
{
	return s->ops->wrap(s, dek, out, e);
}

int seal_unwrap(struct sealer *s, const uint8_t *wrapped, size_t n, uint8_t dek[32], struct err *e)
{
	return s->ops->unwrap(s, wrapped, n, dek, e);
}

int seal_can_decrypt_direct(const struct sealer *s)
{
	return s->ops->decrypt_direct != NULL;
}

int seal_decrypt_direct(struct sealer *s, const uint8_t *blob, size_t n, struct buf *out, struct err *e)
{
	if (!seal_can_decrypt_direct(s))
		return err_set(e, "the %s sealer has no legacy format; re-submit the task", s->ops->name);
	return s->ops->decrypt_direct(s, blob, n, out, e);
}

const char *seal_backend_name(const struct sealer *s)
{
	return s->ops->name;
}

void seal_free(struct sealer *s)
{
	if (s)
		s->ops->free(s);
}
