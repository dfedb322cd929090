/*
 * gcp_json.c: Google's JSON answers as ccr reads them (the parsers in src/gcp/).
 *
 * The first input byte picks the reader, the rest is the answer body:
 *   0 an Object resource (gcs_object_from_json), and an objects.list
 *     answer page (gcs_list_page, twice, as two pages of one listing);
 *   1 a KMS encrypt answer (kms_encrypt_answer), 2 a decrypt answer
 *     (kms_decrypt_answer);
 *   3 a jobs.run Operation (crun_execution_from_operation), 4 an
 *     Execution resource (crun_status_from_json);
 *   5 an error body of any service (gcp_error_text, gcp_http_error);
 *   6 proto3 int64 and CRC32C members (gcp_json_i64, gcp_json_crc32c);
 *   7 a Secret Manager versions.access answer (gsm_payload_from_json);
 *   8 an access-token answer (gauth_token_from_json).
 * Properties: no crash or leak; a failure always has a message; the
 * texts ccr derives from an answer (error text, execution name) are
 * bounded and NUL-terminated; a parsed object has a name; Run task
 * counts are never negative; a CRC32C member is within 32 bits.
 */
#include "cJSON.h"
#include "fuzz.h"
#include "gcp/auth.h"
#include "gcp/common.h"
#include "gcp/gcs.h"
#include "gcp/kms.h"
#include "gcp/run.h"
#include "gcp/secrets.h"
#include "util/crc32c.h"
#include "http/client.h"

static void object(const char *j, size_t n)
{
	struct gcs_object o;
	struct gcs_listing l;
	struct err e = ERR_INIT;
	char *next = NULL;
	size_t limit = n % 5, i;
	int rc;

	if (gcs_object_from_json(j, n, &o) == 0) {
		FUZZ_CHECK(o.name != NULL, "an object without a name");
		gcs_object_free(&o);
	}
	memset(&l, 0, sizeof(l));
	rc = gcs_list_page(&l, j, n, limit, &next, &e);
	if (rc == 0) {
		free(next);
		rc = gcs_list_page(&l, j, n, limit, &next, &e);
	}
	FUZZ_CHECK(rc == 0 || e.msg[0], "list page refused without a message");
	FUZZ_CHECK(!limit || l.n <= limit, "%zu items past the limit %zu", l.n, limit);
	FUZZ_CHECK(l.n <= l.cap_items && l.nprefixes <= l.cap_prefixes, "listing lengths");
	for (i = 0; i < l.n; i++)
		FUZZ_CHECK(l.items[i].name != NULL, "a listed object without a name");
	for (i = 0; i < l.nprefixes; i++)
		FUZZ_CHECK(l.prefixes[i] != NULL, "a NULL prefix");
	free(next);
	gcs_listing_free(&l);
}

static void kms(const char *j, size_t n, int decrypt)
{
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;
	int rc = decrypt ? kms_decrypt_answer(j, n, &out, &e)
			 : kms_encrypt_answer(j, n, n ? (uint32_t)j[0] * 0x01000193u : 0, &out, &e);

	FUZZ_CHECK(rc == 0 || e.msg[0], "KMS answer refused without a message");
	buf_free(&out);
}

static void run_operation(const char *j, size_t n)
{
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;

	if (crun_execution_from_operation(j, n, &out, &e) == 0)
		FUZZ_CHECK(out.p && strlen(out.p) == out.len, "execution name with a NUL");
	else
		FUZZ_CHECK(e.msg[0], "operation refused without a message");
	buf_free(&out);
}

static void run_execution(const char *j, size_t n)
{
	cJSON *exe = cJSON_ParseWithLength(j, n);
	struct crun_status st;

	memset(&st, 0x5a, sizeof(st));
	crun_status_from_json(exe, &st);
	FUZZ_CHECK(st.task_count >= 0 && st.running >= 0 && st.succeeded >= 0 && st.failed >= 0 && st.cancelled >= 0,
		   "negative task counts");
	FUZZ_CHECK(memchr(st.completion_time, 0, sizeof(st.completion_time)) && memchr(st.message, 0, sizeof(st.message)),
		   "unterminated text");
	FUZZ_CHECK(crun_state_name(st.state) != NULL, "state %d", (int)st.state);
	cJSON_Delete(exe);
}

static void error_body(const char *j, size_t n)
{
	struct hc_response rs = HC_RESPONSE_INIT;
	struct err e = ERR_INIT;
	char text[300];

	rs.status = 400 + (n % 200);
	if (buf_add(&rs.body, j, n) != 0)
		abort();
	memset(text, 'x', sizeof(text));
	gcp_error_text(&rs, text, sizeof(text));
	FUZZ_CHECK(memchr(text, 0, sizeof(text)) != NULL, "error text not terminated");
	FUZZ_CHECK(gcp_http_error(&e, &rs, "fuzz-creds", "fuzz %s", "call") == -1 && e.http == rs.status && e.msg[0], "gcp_http_error");
	hc_response_free(&rs);
}

static void members(const char *j, size_t n)
{
	cJSON *o = cJSON_ParseWithLength(j, n);
	const cJSON *it;

	cJSON_ArrayForEach(it, o) {
		int64_t v;
		uint32_t c;

		if (!it->string)
			continue;
		(void)gcp_json_i64(o, it->string, &v);
		if (gcp_json_crc32c(o, it->string, &c) == 0) {
			FUZZ_CHECK(gcp_json_i64(o, it->string, &v) == 0 && v >= 0 && v <= 0xffffffffLL && (uint32_t)v == c,
				   "crc32c member %s", it->string);
		}
		(void)gcp_json_str(o, it->string);
	}
	cJSON_Delete(o);
}

static void secret(const char *j, size_t n)
{
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;
	cJSON *doc;
	uint32_t want;

	if (buf_adds(&out, "pre") != 0)
		abort();
	if (gsm_payload_from_json(j, n, &out, &e) != 0) {
		FUZZ_CHECK(e.msg[0] && out.len == 3 && memcmp(out.p, "pre", 3) == 0, "refused secret changed the output");
	} else if ((doc = cJSON_ParseWithLength(j, n)) != NULL) {
		if (gcp_json_crc32c(cJSON_GetObjectItemCaseSensitive(doc, "payload"), "dataCrc32c", &want) == 0)
			FUZZ_CHECK(crc32c(out.p + 3, out.len - 3) == want, "accepted a payload that fails its CRC32C");
		cJSON_Delete(doc);
	}
	buf_free(&out);
}

static void token(const char *j, size_t n)
{
	cJSON *doc = cJSON_ParseWithLength(j, n);
	struct err e = ERR_INIT;
	const char *tok = NULL;
	int64_t ttl = 0;

	if (gauth_token_from_json(doc, &tok, &ttl, &e) == 0)
		FUZZ_CHECK(tok && *tok && ttl >= 1 && ttl <= GAUTH_MAX_TTL_S, "token lifetime %lld", (long long)ttl);
	else
		FUZZ_CHECK(e.msg[0], "token answer refused without a message");
	cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *j = (const char *)data + 1;
	size_t n = size ? size - 1 : 0;

	if (size == 0)
		return 0;
	switch (data[0] % 9) {
	case 0: object(j, n); break;
	case 1: kms(j, n, 0); break;
	case 2: kms(j, n, 1); break;
	case 3: run_operation(j, n); break;
	case 4: run_execution(j, n); break;
	case 5: error_body(j, n); break;
	case 6: members(j, n); break;
	case 7: secret(j, n); break;
	default: token(j, n); break;
	}
	return 0;
}
