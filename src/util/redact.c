/*
 * redact.c: see redact.h.  The registry is a small array of copies under a
 * mutex; application is a straightforward scan per secret, longest first,
 * which is plenty for the few dozen secrets one task carries.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "util/redact.h"

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
