/*
 * gcs_upload.c: the uploads of gcs.h: simple (media), multipart and
 * resumable, and gcs_put, which picks one by size.
 *
 * Design.  A create (ifGenerationMatch=0) whose answer was lost is
 * checked by reading the object back (lost_create), so a retried create
 * that finds its own object succeeds.  The resumable upload is a small
 * state machine over three numbers: `ack`, what the session has committed
 * (learnt from 308 Range headers, never from what was sent); `pending`,
 * the bytes from ack on that were read from the source but not committed;
 * and whether the source has ended.  Each PUT sends min(chunk, pending)
 * bytes from ack, so chunk sizes stay multiples of 256 KiB whatever offset
 * the server reports.  After a transient failure it backs off and asks
 * the session for its offset (status query) instead of resending blindly,
 * so a chunk that was partly stored is never stored twice.  The source is
 * read once, front to back; at most one chunk of it is in memory.  The
 * CRC32C of everything read goes out with the final chunk (x-goog-hash)
 * and is compared with the stored object's (gcs_finish_upload).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cJSON.h"
#include "crypto/crypto.h"
#include "gcp/auth.h"
#include "gcp/common.h"
#include "gcp/gcs.h"
#include "gcp/gcs_int.h"
#include "util/b64.h"
#include "util/crc32c.h"
#include "util/hex.h"
#include "util/jsjson.h"

/* Parse the answer of an upload into out (if wanted) and check its crc32c. */
static int upload_url(struct buf *u, struct gcs *g, const char *bucket, const char *type,
	const char *name, const struct gcs_put_opts *o)
{
	if (buf_adds(u, g->ep.base) != 0 || buf_adds(u, "/upload/storage/v1/b/") != 0 ||
			gcp_pct_encodes(u, bucket) != 0 || buf_printf(u, "/o?uploadType=%s", type) != 0)
		return -1;
	if (name && (buf_adds(u, "&name=") != 0 || gcp_pct_encodes(u, name) != 0))
		return -1;
	if (o && o->use_generation_match &&
			buf_printf(u, "&ifGenerationMatch=%lld", (long long)o->if_generation_match) != 0)
		return -1;
	return 0;
}

/* The JSON resource sent with multipart and resumable uploads. */
static int meta_json(struct buf *b, const char *name, const struct gcs_put_opts *o, const char *crc)
{
	const char *const *m;

	if (buf_adds(b, "{\"name\":") != 0 || jsj_string(b, name, strlen(name)) != 0 ||
			buf_adds(b, ",\"contentType\":") != 0 || jsj_string(b, gcs_ctype_of(o), strlen(gcs_ctype_of(o))) != 0)
		return -1;
	if (crc && buf_printf(b, ",\"crc32c\":\"%s\"", crc) != 0)
		return -1;
	if (o && o->metadata && o->metadata[0]) {
		if (buf_adds(b, ",\"metadata\":{") != 0)
			return -1;
		for (m = o->metadata; m[0] && m[1]; m += 2) {
			if ((m != o->metadata && buf_addc(b, ',') != 0) || jsj_string(b, m[0], strlen(m[0])) != 0 ||
					buf_addc(b, ':') != 0 || jsj_string(b, m[1], strlen(m[1])) != 0)
				return -1;
		}
		if (buf_addc(b, '}') != 0)
			return -1;
	}
	return buf_addc(b, '}');
}

/* ---- simple and multipart uploads -------------------------------------- */

/*
 * A create (ifGenerationMatch=0) that was sent more than once and then
 * answered 412 may have been refused because of its own earlier attempt,
 * which created the object and lost its answer.  It succeeded when the
 * stored object holds exactly these bytes; any other content is somebody
 * else's object and the 412 stands.  Creates are sent with own_attempts,
 * so curl never resends one behind hc's back and attempts is exact.
 */
static int is_create(const struct gcs_put_opts *o)
{
	return o && o->use_generation_match && o->if_generation_match == 0;
}

static int lost_create(struct gcs *g, const char *bucket, const char *name, const void *data, size_t n,
	const struct gcs_put_opts *o, const struct hc_response *rs)
{
	struct buf have = BUF_INIT;
	struct err ignore = { 0, { 0 } };
	int ours;

	if (rs->status != 412 || rs->attempts < 2 || !is_create(o))
		return 0;
	ours = gcs_get(g, bucket, name, 0, &have, &ignore) == 0 && have.len == n &&
	       (n == 0 || memcmp(have.p, data, n) == 0);
	buf_free(&have);
	return ours;
}

/* The end of an upload answered 412 that lost_create() found to be ours. */
static int finish_lost_create(struct gcs *g, const char *bucket, const char *name, struct gcs_object *out,
	struct err *e)
{
	return out ? gcs_stat(g, bucket, name, out, e) : 0;
}

/*
 * POST one simple or multipart upload request (body, with its headers)
 * that stores the n bytes at data as bucket/name, and read the answer:
 * the stored object (its CRC32C checked against crc) into out.
 */
static int send_upload(struct gcs *g, const char *url, const char *const *hdrs, const void *body, size_t body_len,
	const char *bucket, const char *name, const void *data, size_t n, const char *crc,
	const struct gcs_put_opts *o, struct gcs_object *out, struct err *e)
{
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	int rc = -1;

	rq.method = "POST";
	rq.url = url;
	rq.headers = hdrs;
	rq.body = body;
	rq.body_len = body_len;
	rq.retry = gcs_write_retry(o && o->use_generation_match, o && o->idempotent);
	rq.own_attempts = is_create(o);
	rq.timeout_ms = 300000;
	if (gcs_call(g, &rq, &rs, e) != 0)
		err_prefix(e, "upload of " GCS_NAME_FMT, bucket, name);
	else if (lost_create(g, bucket, name, data, n, o, &rs))
		rc = finish_lost_create(g, bucket, name, out, e);
	else if (rs.status != 200 && rs.status != 201)
		gcp_http_error(e, &rs, gauth_default_describe(), "upload of " GCS_NAME_FMT, bucket, name);
	else
		rc = gcs_finish_upload(&rs, bucket, name, crc, out, e);
	hc_response_free(&rs);
	return rc;
}

int gcs_put_media(struct gcs *g, const char *bucket, const char *name, const void *data, size_t n,
	const struct gcs_put_opts *o, struct gcs_object *out, struct err *e)
{
	struct buf url = BUF_INIT, ct = BUF_INIT;
	const char *hdrs[2];
	char crc[9];
	int rc = -1;

	if (gcs_check_names("upload", bucket, name, e) != 0)
		return -1;
	if (upload_url(&url, g, bucket, "media", name, o) != 0 ||
			buf_printf(&ct, "Content-Type: %s", gcs_ctype_of(o)) != 0) {
		GCS_OOM(e);
		goto out;
	}
	gcs_crc32c_b64(data, n, crc);
	hdrs[0] = ct.p;
	hdrs[1] = NULL;
	rc = send_upload(g, url.p, hdrs, data, n, bucket, name, data, n, crc, o, out, e);
out:
	buf_free(&url);
	buf_free(&ct);
	return rc;
}

int gcs_put_multipart(struct gcs *g, const char *bucket, const char *name, const void *data,
	size_t n, const struct gcs_put_opts *o, struct gcs_object *out, struct err *e)
{
	struct buf url = BUF_INIT, body = BUF_INIT, ct = BUF_INIT, meta = BUF_INIT;
	char boundary[48], crc[9];
	const char *hdrs[2];
	int tries, rc = -1;

	if (gcs_check_names("upload", bucket, name, e) != 0)
		return -1;
	gcs_crc32c_b64(data, n, crc);
	for (tries = 0;; tries++) {
		unsigned char rnd[16];

		if (cr_random(rnd, sizeof rnd) != 0) {
			err_set(e, "upload of " GCS_NAME_FMT ": no randomness for the multipart boundary", bucket, name);
			goto out;
		}
		memcpy(boundary, "ccr_", 4);
		hex_fmt(boundary + 4, rnd, sizeof rnd);
		if (!data || n < strlen(boundary) || !memmem(data, n, boundary, strlen(boundary)))
			break;
		if (tries > 8) {
			err_set(e, "upload of " GCS_NAME_FMT ": cannot find a multipart boundary", bucket, name);
			goto out;
		}
	}
	if (upload_url(&url, g, bucket, "multipart", NULL, o) != 0 || meta_json(&meta, name, o, crc) != 0 ||
			buf_printf(&ct, "Content-Type: multipart/related; boundary=%s", boundary) != 0 ||
			buf_reserve(&body, n + meta.len + 256) != 0 ||
			buf_printf(&body, "--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n", boundary) != 0 ||
			buf_add(&body, meta.p, meta.len) != 0 ||
			buf_printf(&body, "\r\n--%s\r\nContent-Type: %s\r\n\r\n", boundary, gcs_ctype_of(o)) != 0 ||
			buf_add(&body, data, n) != 0 || buf_printf(&body, "\r\n--%s--", boundary) != 0) {
		GCS_OOM(e);
		goto out;
	}
	hdrs[0] = ct.p;
	hdrs[1] = NULL;
	rc = send_upload(g, url.p, hdrs, body.p, body.len, bucket, name, data, n, crc, o, out, e);
out:
	buf_free(&url);
	buf_free(&body);
	buf_free(&ct);
	buf_free(&meta);
	return rc;
}

/* ---- resumable upload -------------------------------------------------- */

int64_t gcs_range_next(const char *range)
{
	const char *p;
	char *end;
	long long last;

	if (!range)
		return 0;
	p = range;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "bytes=0-", 8) != 0)
		return -1;
	p += 8;
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	last = strtoll(p, &end, 10);
	if (errno || last < 0)
		return -1;
	while (*end == ' ')
		end++;
	if (*end)
		return -1;
	return (int64_t)last + 1;
}

struct upload {
	struct gcs *g;
	const char *bucket, *name, *ctype;
	char *session;
	struct buf pending;            /* bytes [ack, ack + pending.len) */
	int64_t ack;                   /* committed by the session */
	int64_t total;                 /* -1 until known */
	int eof;
	uint32_t crc;
	int64_t read_total;
};

static int fill(struct upload *u, gcs_read_fn rd, void *arg, size_t want, struct err *e)
{
	while (!u->eof && u->pending.len < want) {
		size_t got = 0, room = want - u->pending.len;

		if (buf_reserve(&u->pending, room) != 0)
			return GCS_OOM(e);
		if (rd(arg, u->pending.p + u->pending.len, room, &got) != 0)
			return err_set(e, "upload of " GCS_NAME_FMT ": reading the data failed: %s", u->bucket, u->name,
				strerror(errno));
		if (got > room)
			return err_set(e, "upload of " GCS_NAME_FMT ": the data source overran its buffer", u->bucket, u->name);
		if (got == 0) {
			u->eof = 1;
			if (u->total >= 0 && u->read_total != u->total)
				return err_set(e, "upload of " GCS_NAME_FMT ": the data ended after %lld of %lld bytes",
					u->bucket, u->name, (long long)u->read_total, (long long)u->total);
			u->total = u->read_total;
			break;
		}
		u->crc = crc32c_update(u->crc, u->pending.p + u->pending.len, got);
		u->pending.len += got;
		u->pending.p[u->pending.len] = 0;
		u->read_total += (int64_t)got;
		if (u->total >= 0 && u->read_total > u->total)
			return err_set(e, "upload of " GCS_NAME_FMT ": the data is longer than the %lld bytes announced",
				u->bucket, u->name, (long long)u->total);
		if (u->total >= 0 && u->read_total == u->total)
			u->eof = 1;
	}
	return 0;
}

/* The session now holds `next` bytes: drop what it committed. */
static int advance(struct upload *u, int64_t next, struct err *e)
{
	size_t drop;

	if (next < u->ack || next > u->ack + (int64_t)u->pending.len)
		return err_set(e, "upload of " GCS_NAME_FMT ": the upload session reports %lld bytes stored, but "
			"%lld were sent", u->bucket, u->name, (long long)next,
			(long long)(u->ack + (int64_t)u->pending.len));
	drop = (size_t)(next - u->ack);
	memmove(u->pending.p, u->pending.p + drop, u->pending.len - drop);
	u->pending.len -= drop;
	u->ack = next;
	return 0;
}

static int initiate(struct upload *u, const struct gcs_put_opts *o, struct err *e)
{
	struct hc_request rq = { 0 };
	struct hc_response rs = HC_RESPONSE_INIT;
	struct buf url = BUF_INIT, meta = BUF_INIT, xct = BUF_INIT, xlen = BUF_INIT;
	const char *hdrs[4], *loc;
	int rc = -1, k = 0;

	if (upload_url(&url, u->g, u->bucket, "resumable", NULL, o) != 0 || meta_json(&meta, u->name, o, NULL) != 0 ||
			buf_printf(&xct, "X-Upload-Content-Type: %s", u->ctype) != 0 ||
			(u->total >= 0 && buf_printf(&xlen, "X-Upload-Content-Length: %lld", (long long)u->total) != 0)) {
		GCS_OOM(e);
		goto out;
	}
	hdrs[k++] = "Content-Type: application/json; charset=UTF-8";
	hdrs[k++] = xct.p;
	if (xlen.p)
		hdrs[k++] = xlen.p;
	hdrs[k] = NULL;
	rq.method = "POST";
	rq.url = url.p;
	rq.headers = hdrs;
	rq.body = meta.p;
	rq.body_len = meta.len;
	rq.retry = HC_RETRY_IDEMPOTENT;      /* an unused session costs nothing */
	if (gcs_call(u->g, &rq, &rs, e) != 0) {
		err_prefix(e, "upload of " GCS_NAME_FMT ": starting the resumable session", u->bucket, u->name);
		goto out;
	}
	if (rs.status != 200 && rs.status != 201) {
		gcp_http_error(e, &rs, gauth_default_describe(), "upload of " GCS_NAME_FMT ": starting the resumable session", u->bucket, u->name);
		goto out;
	}
	loc = hc_header(&rs, "Location");
	if (!loc || (strncmp(loc, "https://", 8) != 0 && strncmp(loc, "http://", 7) != 0)) {
		err_set(e, "upload of " GCS_NAME_FMT ": the resumable session has no Location", u->bucket, u->name);
		goto out;
	}
	if (!(u->session = strdup(loc))) {
		GCS_OOM(e);
		goto out;
	}
	rc = 0;
out:
	hc_response_free(&rs);
	buf_free(&url);
	buf_free(&meta);
	buf_free(&xct);
	buf_free(&xlen);
	return rc;
}

enum put_result { PUT_DONE, PUT_MORE, PUT_TRANSIENT, PUT_FAILED };

/* One PUT to the session: a chunk of n pending bytes (final or not), or
 * a status query (query = 1).  On PUT_MORE *next holds the session's
 * offset; on PUT_DONE rs holds the object. */
static enum put_result session_put(struct upload *u, size_t n, int query, struct hc_response *rs,
	int64_t *next, long *retry_after, struct err *e)
{
	struct hc_request rq = { 0 };
	struct buf cr = BUF_INIT, ct = BUF_INIT, xh = BUF_INIT;
	const char *hdrs[4];
	int final, k = 0;
	enum put_result res = PUT_FAILED;
	char crc[9];

	*retry_after = -1;
	final = !query && u->eof && n == u->pending.len;
	if (query) {
		if (u->total >= 0)
			(void)buf_printf(&cr, "Content-Range: bytes */%lld", (long long)u->total);
		else
			(void)buf_adds(&cr, "Content-Range: bytes */*");
	} else if (n == 0) {
		(void)buf_printf(&cr, "Content-Range: bytes */%lld", (long long)u->total);
	} else if (final || u->total >= 0) {
		(void)buf_printf(&cr, "Content-Range: bytes %lld-%lld/%lld", (long long)u->ack,
			(long long)(u->ack + (int64_t)n - 1), (long long)u->total);
	} else {
		(void)buf_printf(&cr, "Content-Range: bytes %lld-%lld/*", (long long)u->ack,
			(long long)(u->ack + (int64_t)n - 1));
	}
	if (!cr.p || buf_printf(&ct, "Content-Type: %s", u->ctype) != 0) {
		GCS_OOM(e);
		goto out;
	}
	hdrs[k++] = cr.p;
	hdrs[k++] = ct.p;
	if (final) {
		gcs_crc_b64(u->crc, crc);
		if (buf_printf(&xh, "x-goog-hash: crc32c=%s", crc) != 0) {
			GCS_OOM(e);
			goto out;
		}
		hdrs[k++] = xh.p;
	}
	hdrs[k] = NULL;
	rq.method = "PUT";
	rq.url = u->session;
	rq.headers = hdrs;
	rq.body = query ? NULL : u->pending.p;
	rq.body_len = query ? 0 : n;
	rq.retry = HC_RETRY_NEVER;       /* recovery is the status query below */
	rq.timeout_ms = 600000;
	if (gcs_call(u->g, &rq, rs, e) != 0) {
		res = PUT_TRANSIENT;
		goto out;
	}
	if (rs->status == 308) {
		*next = gcs_range_next(hc_header(rs, "Range"));
		if (*next < 0) {
			err_set(e, "upload of " GCS_NAME_FMT ": the session answered 308 with a malformed Range header",
				u->bucket, u->name);
			goto out;
		}
		res = PUT_MORE;
	} else if (rs->status == 200 || rs->status == 201) {
		res = PUT_DONE;
	} else if (hc_status_retryable(rs->status)) {
		gcp_http_error(e, rs, gauth_default_describe(), "upload of " GCS_NAME_FMT, u->bucket, u->name);
		*retry_after = hc_retry_after_ms(rs);
		res = PUT_TRANSIENT;
	} else if (rs->status == 404 || rs->status == 410) {
		gcp_http_error(e, rs, gauth_default_describe(), "upload of " GCS_NAME_FMT ": the upload session is gone (expired or "
			"cancelled); upload again", u->bucket, u->name);
	} else {
		gcp_http_error(e, rs, gauth_default_describe(), "upload of " GCS_NAME_FMT, u->bucket, u->name);
	}
out:
	buf_free(&cr);
	buf_free(&ct);
	buf_free(&xh);
	return res;
}

int gcs_put_resumable(struct gcs *g, const char *bucket, const char *name, gcs_read_fn rd,
	void *arg, int64_t total, const struct gcs_put_opts *o, struct gcs_object *out, struct err *e)
{
	struct upload u;
	struct hc_response rs = HC_RESPONSE_INIT;
	size_t chunk = o && o->chunk_size ? o->chunk_size : GCS_DEFAULT_CHUNK;
	uint64_t deadline;
	unsigned retry = 0, stalls = 0;
	int rc = -1;

	if (gcs_check_names("upload", bucket, name, e) != 0)
		return -1;
	chunk = (chunk + GCS_RESUMABLE_UNIT - 1) / GCS_RESUMABLE_UNIT * GCS_RESUMABLE_UNIT;
	memset(&u, 0, sizeof u);
	u.g = g;
	u.bucket = bucket;
	u.name = name;
	u.ctype = gcs_ctype_of(o);
	u.total = total;
	if (total == 0)
		u.eof = 1;
	if (initiate(&u, o, e) != 0)
		goto out;
	deadline = hc_now_ms() + (uint64_t)hc_default_deadline_ms();
	for (;;) {
		enum put_result r;
		int64_t next = 0, before = u.ack;
		long ra;
		size_t n;

		if (fill(&u, rd, arg, chunk, e) != 0)
			goto out;
		n = u.pending.len < chunk ? u.pending.len : chunk;
		if (n == 0 && !u.eof) {
			err_set(e, "upload of " GCS_NAME_FMT ": internal error: nothing to send", bucket, name);
			goto out;
		}
		r = session_put(&u, n, 0, &rs, &next, &ra, e);
		/* A transient failure: back off, ask the session where it is. */
		while (r == PUT_TRANSIENT) {
			if (hc_backoff_wait(retry++, ra, deadline) != 0) {
				err_prefix(e, "gave up resuming");
				goto out;
			}
			r = session_put(&u, 0, 1, &rs, &next, &ra, e);
		}
		if (r == PUT_FAILED)
			goto out;
		if (r == PUT_DONE) {
			char crc[9];

			if (!u.eof) {
				err_set(e, "upload of " GCS_NAME_FMT ": the session completed before all data was sent",
					bucket, name);
				goto out;
			}
			gcs_crc_b64(u.crc, crc);
			rc = gcs_finish_upload(&rs, bucket, name, crc, out, e);
			goto out;
		}
		if (advance(&u, next, e) != 0)
			goto out;
		if (u.ack > before) {
			retry = 0;
			stalls = 0;
			deadline = hc_now_ms() + (uint64_t)hc_default_deadline_ms();
		} else if (++stalls > 8) {
			err_set(e, "upload of " GCS_NAME_FMT ": the session keeps refusing the data at offset %lld",
				bucket, name, (long long)u.ack);
			goto out;
		}
	}
out:
	hc_response_free(&rs);
	buf_free(&u.pending);
	free(u.session);
	return rc;
}

struct memsrc {
	const unsigned char *p;
	size_t n, off;
};

static int mem_read(void *arg, void *dst, size_t n, size_t *got)
{
	struct memsrc *m = arg;
	size_t k = m->n - m->off < n ? m->n - m->off : n;

	if (k)
		memcpy(dst, m->p + m->off, k);
	m->off += k;
	*got = k;
	return 0;
}

int gcs_put(struct gcs *g, const char *bucket, const char *name, const void *data, size_t n,
	const struct gcs_put_opts *o, struct gcs_object *out, struct err *e)
{
	if ((o && o->resumable) || n > GCS_RESUMABLE_THRESHOLD) {
		struct memsrc m = { data, n, 0 };

		return gcs_put_resumable(g, bucket, name, mem_read, &m, (int64_t)n, o, out, e);
	}
	if (o && o->metadata && o->metadata[0])
		return gcs_put_multipart(g, bucket, name, data, n, o, out, e);
	return gcs_put_media(g, bucket, name, data, n, o, out, e);
}
