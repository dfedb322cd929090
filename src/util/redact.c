/*
 * redact.c: see redact.h.  The registry is a small array of copies under a
 * mutex; application is a straightforward scan per secret, longest first,
 * which is plenty for the few dozen secrets one task carries.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "util/b64.h"
#include "util/redact.h"

/* An encoded form shorter than this is not registered: it could match
 * ordinary base64 or text by chance. */
#define ENCODED_MIN 16

/* Static: the process-wide registry every log line and error message is
 * checked against, from any thread and module, with no context to pass. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char **secrets;
static size_t n_secrets, cap_secrets;

static int add_one(const char *s, size_t n)
{
	char *copy;
	size_t i;

	if (n < REDACT_MIN)
		return 0;
	for (i = 0; i < n_secrets; i++)
		if (strlen(secrets[i]) == n && memcmp(secrets[i], s, n) == 0)
			return 0;
	if (n_secrets == cap_secrets) {
		size_t nc = cap_secrets ? cap_secrets * 2 : 16;
		char **ns = realloc(secrets, nc * sizeof(*ns));
		if (!ns)
			return -1;
		secrets = ns;
		cap_secrets = nc;
	}
	copy = malloc(n + 1);
	if (!copy)
		return -1;
	memcpy(copy, s, n);
	copy[n] = 0;
	/* Keep longest first, so a secret containing another goes first. */
	for (i = n_secrets; i > 0 && strlen(secrets[i - 1]) < n; i--)
		secrets[i] = secrets[i - 1];
	secrets[i] = copy;
	n_secrets++;
	return 0;
}

int redact_add(const char *secret)
{
	const char *line, *end;
	int rc;

	if (!secret)
		return 0;
	pthread_mutex_lock(&mu);
	rc = add_one(secret, strlen(secret));
	for (line = secret; rc == 0 && strchr(line, '\n'); line = end + 1) {
		end = strchr(line, '\n');
		size_t len = (size_t)(end - line);
		if (len > 0 && line[len - 1] == '\r')
			len--;
		/* PEM armour lines are not secret; their bodies are. */
		if (len >= 16 && strncmp(line, "-----", 5) != 0)
			rc = add_one(line, len);
	}
	if (rc == 0 && *line && strncmp(line, "-----", 5) != 0 && strlen(line) >= 16)
		rc = add_one(line, strlen(line));
	pthread_mutex_unlock(&mu);
	return rc;
}

int redact_add_url(const char *url)
{
	const char *s = url ? strstr(url, "://") : NULL, *at, *colon, *slash;
	char tmp[1024];
	size_t n;

	if (!s)
		return 0;
	s += 3;
	slash = strchr(s, '/');
	at = strchr(s, '@');
	if (!at || (slash && at > slash))
		return 0;
	colon = memchr(s, ':', (size_t)(at - s));
	if (colon)
		s = colon + 1;
	n = (size_t)(at - s);
	if (n == 0 || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	n = (size_t)redact_add(tmp);
	cr_wipe(tmp, sizeof(tmp));
	return (int)n;
}

/* The characters of the base64 of (k zero bytes + secret) that depend on
 * the secret alone: what any base64 text holding the secret at a byte
 * offset of k modulo 3 contains, whatever surrounds it. */
static int add_b64_cores(const char *s, size_t n, int url)
{
	struct buf data = BUF_INIT, enc = BUF_INIT;
	size_t k, first, last;
	int rc = 0;

	for (k = 0; k < 3 && rc == 0; k++) {
		buf_reset(&data);
		buf_reset(&enc);
		if (buf_add(&data, "\0\0", k) != 0 || buf_add(&data, s, n) != 0 ||
		    (url ? b64_url_encode(&enc, data.p, data.len) : b64_encode(&enc, data.p, data.len)) != 0) {
			rc = -1;
			break;
		}
		first = (8 * k + 5) / 6;
		last = 8 * (k + n) / 6;
		if (last > first && last - first >= ENCODED_MIN)
			rc = add_one(enc.p + first, last - first);
	}
	if (data.p)
		cr_wipe(data.p, data.cap);
	if (enc.p)
		cr_wipe(enc.p, enc.cap);
	buf_free(&data);
	buf_free(&enc);
	return rc;
}

/* The percent-encoded form (RFC 3986: everything but unreserved), in
 * upper- and lower-case hex, when it differs from the secret. */
static int add_percent(const char *s, size_t n)
{
	static const char *const digits[] = { "0123456789ABCDEF", "0123456789abcdef" };
	struct buf enc = BUF_INIT;
	size_t i, d, plain = 0;
	int rc = 0;

	for (d = 0; d < 2 && rc == 0; d++) {
		buf_reset(&enc);
		plain = 0;
		for (i = 0; i < n && rc == 0; i++) {
			unsigned char c = (unsigned char)s[i];
			if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
				rc = buf_addc(&enc, (char)c);
				plain++;
			} else {
				rc = buf_addc(&enc, '%') || buf_addc(&enc, digits[d][c >> 4]) || buf_addc(&enc, digits[d][c & 15]);
			}
		}
		if (rc == 0 && plain < n)
			rc = add_one(enc.p, enc.len);
	}
	if (enc.p)
		cr_wipe(enc.p, enc.cap);
	buf_free(&enc);
	return rc;
}

int redact_add_encoded(const char *secret)
{
	size_t n = secret ? strlen(secret) : 0;
	int rc;

	if (redact_add(secret) != 0)
		return -1;
	if (n < REDACT_MIN)
		return 0;
	pthread_mutex_lock(&mu);
	rc = add_b64_cores(secret, n, 0) || add_b64_cores(secret, n, 1) || add_percent(secret, n) ? -1 : 0;
	pthread_mutex_unlock(&mu);
	return rc;
}

static int apply_locked(struct buf *b)
{
	struct buf out = BUF_INIT;
	size_t i;

	for (i = 0; i < n_secrets; i++) {
		const char *s = secrets[i];
		size_t sl = strlen(s), pos = 0;
		char *hit;

		if (!b->p || !(hit = memmem(b->p, b->len, s, sl)))
			continue;
		buf_reset(&out);
		while (hit) {
			if (buf_add(&out, b->p + pos, (size_t)(hit - (b->p + pos))) != 0 || buf_adds(&out, REDACT_MARK) != 0) {
				buf_free(&out);
				return -1;
			}
			pos = (size_t)(hit - b->p) + sl;
			hit = memmem(b->p + pos, b->len - pos, s, sl);
		}
		if (buf_add(&out, b->p + pos, b->len - pos) != 0) {
			buf_free(&out);
			return -1;
		}
		cr_wipe(b->p, b->len);
		buf_reset(b);
		if (buf_add(b, out.p, out.len) != 0) {
			buf_free(&out);
			return -1;
		}
	}
	if (out.p)
		cr_wipe(out.p, out.cap);
	buf_free(&out);
	return 0;
}

int redact_apply(struct buf *b)
{
	int rc;

	pthread_mutex_lock(&mu);
	rc = apply_locked(b);
	pthread_mutex_unlock(&mu);
	return rc;
}

int redact_str(struct buf *out, const char *s)
{
	struct buf tmp = BUF_INIT;
	int rc;

	if (buf_adds(&tmp, s ? s : "") != 0)
		return -1;
	rc = redact_apply(&tmp);
	if (rc == 0)
		rc = buf_add(out, tmp.p, tmp.len);
	buf_free(&tmp);
	return rc;
}

void redact_clear(void)
{
	size_t i;

	pthread_mutex_lock(&mu);
	for (i = 0; i < n_secrets; i++) {
		cr_wipe(secrets[i], strlen(secrets[i]));
		free(secrets[i]);
	}
	free(secrets);
	secrets = NULL;
	n_secrets = cap_secrets = 0;
	pthread_mutex_unlock(&mu);
}

int redact_err(struct err *e)
{
	struct buf b = BUF_INIT;

	if (e && redact_str(&b, e->msg) == 0 && b.p)
		snprintf(e->msg, sizeof(e->msg), "%s", b.p);
	buf_free(&b);
	return -1;
}
