/*
 * common.c: shared helpers of the Google Cloud modules (see common.h).
 *
 * Design: everything here is stateless and allocation-light.  Endpoint
 * values are validated once, when a client is made, and copied into a
 * fixed buffer so a client never rereads the environment mid-flight.
 * Error text is taken from the service's JSON when there is some and
 * cleaned (printable ASCII and UTF-8 only, one line, bounded) because it
 * ends up in logs and HTTP answers.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcp/common.h"
#include "settings/settings.h"

const char *gcp_setting(const char *name)
{
	const char *v = settings_env(name);

	return v && *v ? v : NULL;
}

char *gcp_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int gcp_endpoint_get(struct gcp_endpoint *ep, const char *env, const char *dflt,
	int bare_host_means_http, struct err *e)
{
	const char *v = env ? gcp_setting(env) : NULL;
	const char *host;
	size_t n;
	int http;

	memset(ep, 0, sizeof *ep);
	if (!v) {
		snprintf(ep->base, sizeof ep->base, "%s", dflt);
		return 0;
	}
	ep->overridden = 1;
	if (strncmp(v, "http://", 7) == 0) {
		http = 1;
		host = v + 7;
	} else if (strncmp(v, "https://", 8) == 0) {
		http = 0;
		host = v + 8;
	} else if (strstr(v, "://")) {
		return err_set(e, "%s=%s: only http:// and https:// endpoints are supported", env, v);
	} else if (bare_host_means_http) {
		http = 1;
		host = v;
	} else {
		return err_set(e, "%s=%s: give a URL starting with http:// or https://", env, v);
	}
	if (!*host || *host == '/')
		return err_set(e, "%s=%s: no host in the endpoint", env, v);
	if (strpbrk(v, " \t\r\n?#"))
		return err_set(e, "%s=%s: an endpoint holds scheme, host, port and path only", env, v);
	n = (size_t)snprintf(ep->base, sizeof ep->base, "%s%s", http && host == v ? "http://" : "", v);
	if (n >= sizeof ep->base)
		return err_set(e, "%s: the endpoint is too long", env);
	while (n > 0 && ep->base[n - 1] == '/')
		ep->base[--n] = 0;
	ep->allow_http = http;
	return 0;
}

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		c == '-' || c == '.' || c == '_' || c == '~';
}

int gcp_pct_encode(struct buf *out, const char *s, size_t n)
{
	static const char hexd[] = "0123456789ABCDEF";
	size_t i, start = out->len;

	if (buf_reserve(out, n) != 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[3];

		if (unreserved(c)) {
			if (buf_addc(out, (char)c) != 0)
				goto oom;
			continue;
		}
		esc[0] = '%';
		esc[1] = hexd[c >> 4];
		esc[2] = hexd[c & 15];
		if (buf_add(out, esc, 3) != 0)
			goto oom;
	}
	return 0;
oom:
	out->len = start;
	if (out->p)
		out->p[start] = 0;
	return -1;
}

int gcp_pct_encodes(struct buf *out, const char *s)
{
	return gcp_pct_encode(out, s, strlen(s));
}

cJSON *gcp_json_parse(const struct buf *b)
{
	if (!b || !b->p || b->len == 0)
		return NULL;
	return cJSON_ParseWithLength(b->p, b->len);
}

const char *gcp_json_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int gcp_json_i64(const cJSON *obj, const char *key, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	const char *s;
	char *end;
	long long n;

	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;

		if (d != d || d < -9.2e18 || d > 9.2e18 || d != (double)(long long)d)
			return -1;
		*out = (int64_t)d;
		return 0;
	}
	if (!cJSON_IsString(v))
		return -1;
	s = v->valuestring;
	if (!*s || (!isdigit((unsigned char)*s) && *s != '-'))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return -1;
	*out = (int64_t)n;
	return 0;
}

int gcp_json_crc32c(const cJSON *obj, const char *key, uint32_t *out)
{
	int64_t v;

	if (gcp_json_i64(obj, key, &v) != 0 || v < 0 || v > 0xFFFFFFFFLL)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int gcp_crc32c_field(struct buf *out, uint32_t crc)
{
	return buf_printf(out, "\"%lu\"", (unsigned long)crc);
}

/* Copy s into dst as one clean line: control characters become spaces,
 * runs of spaces collapse, at most dstlen - 1 bytes. */
static void clean_copy(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t o = 0, i;
	int space = 0;

	if (dstlen == 0)
		return;
	for (i = 0; i < n && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			if (c == '\n' && o > 0)
				break;          /* first line only */
			c = ' ';
		}
		if (c == ' ') {
			if (space || o == 0)
				continue;
			space = 1;
		} else {
			space = 0;
		}
		dst[o++] = (char)c;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = 0;
}

void gcp_error_text(const struct hc_response *rs, char *dst, size_t dstlen)
{
	cJSON *j = gcp_json_parse(&rs->body);
	const cJSON *err = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
	char text[400] = "";

	if (dstlen == 0)
		return;
	dst[0] = 0;
	if (cJSON_IsObject(err)) {
		const char *st = gcp_json_str(err, "status");
		const char *msg = gcp_json_str(err, "message");
		const cJSON *errs = cJSON_GetObjectItemCaseSensitive(err, "errors");
		const char *reason = NULL;

		if (cJSON_IsArray(errs) && cJSON_GetArraySize(errs) > 0)
			reason = gcp_json_str(cJSON_GetArrayItem(errs, 0), "reason");
		if (msg)
			clean_copy(text, sizeof text, msg, strlen(msg));
		if (st || reason)
			snprintf(dst, dstlen, "%s: %s", st ? st : reason, text[0] ? text : "(no message)");
		else
			snprintf(dst, dstlen, "%s", text[0] ? text : "(no message)");
	} else if (cJSON_IsString(err)) {
		const char *desc = gcp_json_str(j, "error_description");

		if (desc)
			clean_copy(text, sizeof text, desc, strlen(desc));
		snprintf(dst, dstlen, "%.100s%s%s", err->valuestring, text[0] ? ": " : "", text);
		clean_copy(dst, dstlen, dst, strlen(dst));
	} else if (rs->body.len > 0) {
		clean_copy(dst, dstlen, rs->body.p, rs->body.len < 300 ? rs->body.len : 300);
	}
	cJSON_Delete(j);
}

int gcp_http_error(struct err *e, const struct hc_response *rs, const char *creds, const char *fmt, ...)
{
	char what[256], text[300];
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	gcp_error_text(rs, text, sizeof text);
	n = strlen(text);
	if (rs->attempts > 1 && n + 32 < sizeof text)
		snprintf(text + n, sizeof text - n, "%s(after %u attempts)", n ? " " : "", rs->attempts);
	/* Refused credentials: say whose. */
	if ((rs->status == 401 || rs->status == 403) && creds)
		return err_http(e, (int)rs->status, "%s: HTTP %ld: %s (credentials: %s)", what, rs->status,
			text[0] ? text : "refused", creds);
	if (text[0])
		return err_http(e, (int)rs->status, "%s: HTTP %ld: %s", what, rs->status, text);
	return err_http(e, (int)rs->status, "%s: HTTP %ld", what, rs->status);
}
