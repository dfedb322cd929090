/*
 * gcp_test.c: offline unit tests of the Google Cloud client layer:
 * the service-account JWT (claims, times, signature), object-name
 * percent-encoding, the retry schedule, the CRC32C fields of KMS and
 * GCS, Operation -> execution name, execution states, endpoint
 * overrides, key-file discovery, error texts and secret names.  Nothing
 * here touches the network.
 *
 * The test key below was made for this file only and signs nothing
 * else:
 *     python3: rsa.generate_private_key(65537, 2048), PKCS#8 PEM
 * and the expected JWT digests were computed independently with
 * python3-cryptography: RS256 over base64url(header) "." base64url(claims)
 * with the exact JSON texts checked in t_jwt_claims.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cJSON.h"
#include "crypto/crypto.h"
#include "gcp/auth.h"
#include "gcp/common.h"
#include "gcp/gcs.h"
#include "gcp/kms.h"
#include "gcp/run.h"
#include "gcp/secrets.h"
#include "http/client.h"
#include "selftest/selftest.h"
#include "selftest/suites.h"
#include "util/b64.h"
#include "util/hex.h"
#include "util/jsjson.h"
#include "settings/settings.h"

static const char test_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC4TB+1uC3z0oXE\n"
	"+pl0m8BVCFkuvLf8plaSjZBWQn3tV1wP4kXGnEF/vIR6Z+hI+6rsCV+63KiewftY\n"
	"tVN851yfOlhafB301zxtIFlD/9QAQYGuEmzAn2YiHlSmYjGAQw5JcTtNE6ovsoLk\n"
	"gvotDzSge4Vq82jD4fSMEgfibBIA/rITWZI4QfeoByKLTeSmxQXJwAbJSDGyfLIy\n"
	"UAbZE6VFtJv/eIJz9DCg0CFKutJehjeBg4ND+l7R/m/K8adwop47THEjSViVcPxq\n"
	"7iHPfic8qkkB8D7TgU6JgjrkzyoYerB4aEdrTvhUelFo3WsoXw7h5CDIXwPxkXHo\n"
	"rqH+xsVRAgMBAAECggEANi/DnwVRFYBPbnQUDHIC4b17oz8/hVxO1fYjewk/xznJ\n"
	"Sq5Hv7aPl4QRG4BTjqnYPmAfMmzQcyUrxpBBxNatp+9arPgTQrrJ/HfnZxPf/FdG\n"
	"Tq0CJrx3Jg7u6qCyVzjgCX3uZqIihrWgwJk1/2uaGJlYx/JbWkSkR07B3LPTs1Cv\n"
	"Md35ipx/mkiunsF0DQ46BJFSuErX6bXMKZWyfn9g2GIkssDU8fS0XH4kP/wUtueh\n"
	"SVKVoEy6CX2bSSjAoc5F6YU1EKqrYaTO+qVZOL7A72iE6spjKZh89BaNjvLMBvPB\n"
	"nsZrB2wS7YZVDSYBZCFf20W/Vz5vR0GnSYmY8WQQ9QKBgQDu7KTPdOd/qtaxBygu\n"
	"qT9nID1Kkd16T5xJD04SnSegKvMGEOt1lNvtmBM+Ki/ZYC4yU7ge1z5LZza+FQxp\n"
	"AtGBiemfzeE5YrBAvTAWH88Y3XODGHkzs/t4o5w/UtL3Xq8LdC7nCoud5moBjq7D\n"
	"1gB2Yug6ATZtijMgkoKtYtGj9wKBgQDFeAZhzA4PeWR1MMQXSYZt4VUK0bHl1q15\n"
	"tkskrxwVKBu9lze/XbzW6dQxjN6AzIt8blMGiXrhBaDZn6DaOL3/dD6AG3H6qKIk\n"
	"NCKQ8IEon0H7V62fC4vA7Px0DPOrS7ouAqtQ+ASlsrhd8SAtrVbMFrKHwnH09h97\n"
	"oqiKlyJ+9wKBgQC6ORaIYF0jw/uMhcCLBf3WGmnLWn/fGnf89gHrPjSpgXBkVQHB\n"
	"ZuI4gSTWejlLW80GCvzihPAYA33GkE9Y9gpnxh+jH+whN0ubWhpF1Est3UVwc73c\n"
	"T7d8o0FgleS7TEBxVABOsoh57SLIzfZny8AWhibtNw6+OE57X9ac3/34pwKBgENA\n"
	"jWvhQyih/0SqRx5nPBFQHNaCdEQCyTIak5z6xmWuM0Ruq93Q3u+S02HMyDq1bwwB\n"
	"xuUDDYZ1lEKJyw6HJK5LuL2Im1jy9cW+u8cBIfvjwWUIh2kTVZVvIMulXZeJQu9I\n"
	"mXAKCAsmwwO7i2oDDvyS/lqeLpFvAWnqC9ynfGghAoGBAI2wNYQszmxLdhMcfTiO\n"
	"Y5TWrVvelDA1Iqp1anudJRtPiWLdUBYg8EDTmd9Rdt40sHzgjZUDLNIMKWTQMAXh\n"
	"J8sZdpcN6RPyN1Ez+hacdxVjfUojEKrQC0V2OykoeN4EtZub5Y2hU7odgWC4OkvJ\n"
	"9K5yI/nWfxt3zYWjBzLy4VSE\n"
	"-----END PRIVATE KEY-----\n";

#define T_EMAIL "selftest@ccr-test.iam.gserviceaccount.com"
#define T_AUD "https://oauth2.googleapis.com/token"

static void fixed_jwt(struct gauth_jwt *j)
{
	memset(j, 0, sizeof *j);
	j->email = T_EMAIL;
	j->kid = "0123abcd";
	j->scope = GCP_SCOPE;
	j->aud = T_AUD;
	j->iat = 1700000000;
	j->exp = 1700003600;
}

static int t_jwt_claims(char *why, size_t n)
{
	struct gauth_jwt j;
	struct buf h = BUF_INIT, c = BUF_INIT;
	int rc = 1;

	fixed_jwt(&j);
	if (gauth_jwt_json(&j, &h, &c) != 0) {
		rc = st_fail(why, n, "out of memory");
		goto out;
	}
	if (strcmp(h.p, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"0123abcd\"}") != 0) {
		rc = st_fail(why, n, "header %s", h.p);
		goto out;
	}
	if (strcmp(c.p, "{\"iss\":\"" T_EMAIL "\",\"scope\":\"" GCP_SCOPE "\",\"aud\":\"" T_AUD "\","
			"\"iat\":1700000000,\"exp\":1700003600}") != 0) {
		rc = st_fail(why, n, "claims %s", c.p);
		goto out;
	}
	/* iat backdated 30 s, exp exactly one hour later. */
	gauth_jwt_times(&j, 1800000000);
	if (j.iat != 1800000000 - 30 || j.exp != j.iat + 3600) {
		rc = st_fail(why, n, "times iat=%lld exp=%lld", (long long)j.iat, (long long)j.exp);
		goto out;
	}
	/* No kid: no member; identity flow: target_audience instead of scope;
	 * strings are escaped. */
	buf_reset(&h);
	buf_reset(&c);
	fixed_jwt(&j);
	j.kid = NULL;
	j.target_audience = "https://svc.example/\"q\"";
	if (gauth_jwt_json(&j, &h, &c) != 0 || strcmp(h.p, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}") != 0 ||
			!strstr(c.p, "\"target_audience\":\"https://svc.example/\\\"q\\\"\"") || strstr(c.p, "scope")) {
		rc = st_fail(why, n, "identity-token claims %s / %s", h.p ? h.p : "", c.p ? c.p : "");
		goto out;
	}
	rc = 0;
out:
	buf_free(&h);
	buf_free(&c);
	return rc;
}

static int jwt_digest(const struct gauth_jwt *j, const char *want_hex, char *why, size_t n)
{
	struct buf jwt = BUF_INIT;
	struct err e = ERR_INIT;
	uint8_t d[CR_SHA256_LEN];
	int rc = 1;

	if (gauth_jwt_sign(j, test_key, &jwt, &e) != 0) {
		rc = st_fail(why, n, "%s", e.msg);
		goto out;
	}
	cr_sha256(jwt.p, jwt.len, d);
	if (st_hexeq(d, sizeof d, want_hex) != 0) {
		rc = st_fail(why, n, "JWT differs from python3-cryptography's (%.40s...)", jwt.p);
		goto out;
	}
	if (gauth_jwt_sign(j, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", &jwt, &e) == 0 ||
			!strstr(e.msg, "private key")) {
		rc = st_fail(why, n, "a bad key was not refused (%s)", e.msg);
		goto out;
	}
	rc = 0;
out:
	buf_free(&jwt);
	return rc;
}

static int t_jwt_sign(char *why, size_t n)
{
	struct gauth_jwt j;

	fixed_jwt(&j);
	if (jwt_digest(&j, "88f4e5087af82b12c868a44225552875278081876dcd2dbbe3aaac508cfe44a9", why, n))
		return 1;
	j.scope = NULL;
	j.target_audience = "https://svc.example/";
	return jwt_digest(&j, "adcefb6d5d5a6c47832ee03310b0a65410cdd468e0a863bce3bbf6dc512974e6", why, n);
}

static int t_pct_encode(char *why, size_t n)
{
	static const struct { const char *in, *out; } v[] = {
		{ "plain-name_1.txt~", "plain-name_1.txt~" },
		{ "a/b c", "a%2Fb%20c" },
		{ "sessions/t-1/001-20250112103045.jsonl", "sessions%2Ft-1%2F001-20250112103045.jsonl" },
		{ "!#$&'()*+,/:;=?@[]%", "%21%23%24%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D%25" },
		{ "caf\xc3\xa9 \xe2\x82\xac", "caf%C3%A9%20%E2%82%AC" },
		{ "\x01\x7f\xff", "%01%7F%FF" },
	};
	struct buf b = BUF_INIT;
	size_t i;
	int rc = 1;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		buf_reset(&b);
		if (gcp_pct_encodes(&b, v[i].in) != 0 || strcmp(b.p, v[i].out) != 0) {
			rc = st_fail(why, n, "\"%s\" -> \"%s\", want \"%s\"", v[i].in, b.p ? b.p : "", v[i].out);
			goto out;
		}
	}
	buf_reset(&b);
	if (gcs_object_path(&b, "my-bucket", "logs/a b.txt") != 0 ||
			strcmp(b.p, "/storage/v1/b/my-bucket/o/logs%2Fa%20b.txt") != 0) {
		rc = st_fail(why, n, "object path %s", b.p ? b.p : "");
		goto out;
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

static int t_backoff(char *why, size_t n)
{
	static const uint64_t want[] = { 1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000 };
	static const uint32_t rnds[] = { 0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 12345, 0xdeadbeef };
	struct hc_response rs = HC_RESPONSE_INIT;
	unsigned i, k;
	uint64_t sum = 0;
	int rc = 1;

	for (i = 0; i < 8; i++) {
		uint64_t c = hc_backoff_ceiling_ms(i, 1000);

		if (c != want[i])
			return st_fail(why, n, "ceiling before retry %u is %llu ms, want %llu", i,
				(unsigned long long)c, (unsigned long long)want[i]);
		for (k = 0; k < sizeof rnds / sizeof rnds[0]; k++) {
			uint64_t w = hc_backoff_pick_ms(c, rnds[k]);

			if (w > c)
				return st_fail(why, n, "wait %llu above ceiling %llu", (unsigned long long)w,
					(unsigned long long)c);
			sum += w;
		}
		if (hc_backoff_pick_ms(c, 0) != 0 || hc_backoff_pick_ms(c, 0xffffffff) != c)
			return st_fail(why, n, "full jitter must reach 0 and the ceiling (%llu)", (unsigned long long)c);
	}
	if (hc_backoff_ceiling_ms(40, 10) != 320 || hc_backoff_ceiling_ms(1000, 1000) != 32000)
		return st_fail(why, n, "the cap is not 32 x base for large retry numbers");
	/* Retryable statuses: 408, 429, 5xx, nothing else. */
	for (k = 100; k < 600; k++) {
		int want_r = k == 408 || k == 429 || k >= 500;

		if (hc_status_retryable((long)k) != want_r)
			return st_fail(why, n, "status %u retryable=%d", k, !want_r);
	}
	/* Retry-After in seconds, scaled by the base. */
	if (buf_add(&rs.headers, "Retry-After: 3", 15) != 0)
		return st_fail(why, n, "out of memory");
	if (hc_retry_after_ms(&rs) != 3 * hc_retry_base_ms()) {
		rc = st_fail(why, n, "Retry-After: 3 gave %ld ms", hc_retry_after_ms(&rs));
		goto out;
	}
	/* The HTTP-date form: 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT. */
	if (hc_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 7) != 7 ||
			hc_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 60) != 0 ||
			hc_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 86400) != 3600 ||
			hc_retry_after_parse("Wed, 21 Foo 2015 07:28:00 GMT", 0) != -1 ||
			hc_retry_after_parse("Wed, 21 Oct 2015 07:28:00 CET", 0) != -1 ||
			hc_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT junk", 0) != -1 ||
			hc_retry_after_parse("12s", 0) != -1 || hc_retry_after_parse("99999", 0) != 3600) {
		rc = st_fail(why, n, "Retry-After parsing (seconds or an HTTP-date)");
		goto out;
	}
	snprintf(why, n, "waits 0..1 s, 0..2 s, ... capped at 0..32 s (mean of samples %llu ms)",
		(unsigned long long)(sum / 64));
	rc = 0;
out:
	hc_response_free(&rs);
	return rc;
}

static int t_crc32c_fields(char *why, size_t n)
{
	struct buf b = BUF_INIT, out = BUF_INIT;
	struct err e = ERR_INIT;
	char g[9];
	uint32_t v;
	cJSON *j;
	int rc = 1;

	/* CRC32C("123456789") = 0xE3069283 = 3808858755, an int64 string. */
	if (kms_encrypt_body(&b, "123456789", 9) != 0 ||
			strcmp(b.p, "{\"plaintext\":\"MTIzNDU2Nzg5\",\"plaintextCrc32c\":\"3808858755\"}") != 0) {
		rc = st_fail(why, n, "encrypt body %s", b.p ? b.p : "");
		goto out;
	}
	buf_reset(&b);
	if (kms_decrypt_body(&b, "123456789", 9) != 0 ||
			strcmp(b.p, "{\"ciphertext\":\"MTIzNDU2Nzg5\",\"ciphertextCrc32c\":\"3808858755\"}") != 0) {
		rc = st_fail(why, n, "decrypt body %s", b.p ? b.p : "");
		goto out;
	}
	j = cJSON_Parse("{\"a\":\"3808858755\",\"b\":3808858755,\"c\":\"-1\",\"d\":\"4294967296\",\"e\":\"12x\"}");
	if (!j || gcp_json_crc32c(j, "a", &v) != 0 || v != 0xE3069283u || gcp_json_crc32c(j, "b", &v) != 0 ||
			v != 0xE3069283u || gcp_json_crc32c(j, "c", &v) == 0 || gcp_json_crc32c(j, "d", &v) == 0 ||
			gcp_json_crc32c(j, "e", &v) == 0 || gcp_json_crc32c(j, "z", &v) == 0) {
		cJSON_Delete(j);
		rc = st_fail(why, n, "int64 CRC32C parsing (string, number, range)");
		goto out;
	}
	cJSON_Delete(j);
	/* Answers: the good one passes, an unverified or damaged one does not. */
#define ANSWER(fn, lit, ...) fn(lit, sizeof(lit) - 1, __VA_ARGS__)
	if (ANSWER(kms_encrypt_answer, "{\"ciphertext\":\"MTIzNDU2Nzg5\",\"ciphertextCrc32c\":\"3808858755\","
			"\"verifiedPlaintextCrc32c\":true}", 0, &out, &e) != 0 || out.len != 9) {
		rc = st_fail(why, n, "good encrypt answer refused: %s", e.msg);
		goto out;
	}
	if (ANSWER(kms_encrypt_answer, "{\"ciphertext\":\"MTIzNDU2Nzg5\",\"ciphertextCrc32c\":\"3808858755\"}", 0, &out,
			&e) == 0 || !strstr(e.msg, "verify")) {
		rc = st_fail(why, n, "an answer without verifiedPlaintextCrc32c was accepted");
		goto out;
	}
	if (ANSWER(kms_encrypt_answer, "{\"ciphertext\":\"MTIzNDU2Nzg5\",\"ciphertextCrc32c\":\"3808858754\","
			"\"verifiedPlaintextCrc32c\":true}", 0, &out, &e) == 0) {
		rc = st_fail(why, n, "a ciphertext with a wrong CRC32C was accepted");
		goto out;
	}
	buf_reset(&out);
	if (ANSWER(kms_decrypt_answer, "{\"plaintext\":\"MTIzNDU2Nzg5\",\"plaintextCrc32c\":3808858755}", &out, &e) != 0 ||
			out.len != 9 || memcmp(out.p, "123456789", 9) != 0) {
		rc = st_fail(why, n, "good decrypt answer refused: %s", e.msg);
		goto out;
	}
	if (ANSWER(kms_decrypt_answer, "{\"plaintext\":\"MTIzNDU2Nzg4\",\"plaintextCrc32c\":\"3808858755\"}", &out, &e) == 0) {
		rc = st_fail(why, n, "a plaintext with a wrong CRC32C was accepted");
		goto out;
	}
	/* GCS form: base64 of the big-endian bytes. */
	gcs_crc32c_b64("123456789", 9, g);
	if (strcmp(g, "4waSgw==") != 0) {
		rc = st_fail(why, n, "GCS crc32c %s", g);
		goto out;
	}
	rc = 0;
#undef ANSWER
out:
	buf_free(&b);
	buf_free(&out);
	return rc;
}

static int t_operation(char *why, size_t n)
{
	static const char op[] =
		"{\"name\":\"projects/p/locations/europe-west3/operations/729ad1bc-b5ff-428c\","
		"\"metadata\":{\"@type\":\"type.googleapis.com/google.cloud.run.v2.Execution\","
		"\"name\":\"projects/p/locations/europe-west3/jobs/worker/executions/worker-x7k2p\","
		"\"taskCount\":1},\"done\":false}";
	static const char op_nometa[] = "{\"name\":\"projects/p/locations/l/operations/1\",\"done\":false}";
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	int rc = 1;

	if (crun_execution_from_operation(op, strlen(op), &b, &e) != 0 ||
			strcmp(b.p, "projects/p/locations/europe-west3/jobs/worker/executions/worker-x7k2p") != 0) {
		rc = st_fail(why, n, "execution name %s (%s)", b.p ? b.p : "", e.msg);
		goto out;
	}
	buf_reset(&b);
	if (crun_execution_from_operation(op_nometa, strlen(op_nometa), &b, &e) == 0 || b.len != 0) {
		rc = st_fail(why, n, "an operation without metadata.name gave \"%s\"", b.p ? b.p : "");
		goto out;
	}
	if (crun_run_body(&b, "t-1", "gs://b/tasks/t-1/payload.enc", (const char *const[]){ "A=b=c", NULL }) != 0 ||
			strcmp(b.p, "{\"overrides\":{\"containerOverrides\":[{\"env\":[{\"name\":\"TASK_ID\",\"value\":\"t-1\"},"
				"{\"name\":\"ENCRYPTED_PAYLOAD_PATH\",\"value\":\"gs://b/tasks/t-1/payload.enc\"},"
				"{\"name\":\"A\",\"value\":\"b=c\"}]}]}}") != 0) {
		rc = st_fail(why, n, "run body %s", b.p ? b.p : "");
		goto out;
	}
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

static int t_exec_state(char *why, size_t n)
{
	static const struct { const char *json; enum crun_state want; } v[] = {
		{ "{\"taskCount\":1}", CRUN_PENDING },
		{ "{\"taskCount\":1,\"startTime\":\"2024-06-14T10:00:00Z\",\"runningCount\":1}", CRUN_RUNNING },
		{ "{\"taskCount\":1,\"succeededCount\":1,\"completionTime\":\"2024-06-14T10:01:00Z\"}", CRUN_SUCCEEDED },
		{ "{\"taskCount\":2,\"succeededCount\":1,\"failedCount\":1,\"completionTime\":\"t\"}", CRUN_FAILED },
		{ "{\"taskCount\":1,\"cancelledCount\":1,\"completionTime\":\"t\"}", CRUN_CANCELLED },
		{ "{\"completionTime\":\"t\",\"conditions\":[{\"type\":\"Completed\",\"state\":\"CONDITION_FAILED\","
			"\"executionReason\":\"CANCELLED\"}]}", CRUN_CANCELLED },
		{ "{\"completionTime\":\"t\",\"conditions\":[{\"type\":\"Completed\",\"state\":\"CONDITION_FAILED\","
			"\"executionReason\":\"NON_ZERO_EXIT_CODE\"}]}", CRUN_FAILED },
		{ "{\"taskCount\":\"3\",\"succeededCount\":\"3\",\"completionTime\":\"t\"}", CRUN_SUCCEEDED },
	};
	size_t i;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct crun_status st;
		cJSON *j = cJSON_Parse(v[i].json);

		crun_status_from_json(j, &st);
		cJSON_Delete(j);
		if (st.state != v[i].want)
			return st_fail(why, n, "%s -> %s, want %s", v[i].json, crun_state_name(st.state),
				crun_state_name(v[i].want));
	}
	return 0;
}

static int t_range(char *why, size_t n)
{
	if (gcs_range_next("bytes=0-262143") != 262144 || gcs_range_next(NULL) != 0 ||
			gcs_range_next("Bytes=0-0") != 1 || gcs_range_next("bytes=5-9") != -1 ||
			gcs_range_next("bytes=0-") != -1 || gcs_range_next("bytes=0-12x") != -1)
		return st_fail(why, n, "308 Range header parsing");
	return 0;
}

static int t_endpoints(char *why, size_t n)
{
	static const char *const var = "CCR_SELFTEST_ENDPOINT";
	static const struct { const char *val; int bare; const char *base; int http; } v[] = {
		{ NULL, 0, "https://example.googleapis.com", 0 },
		{ "localhost:4443", 1, "http://localhost:4443", 1 },
		{ "http://127.0.0.1:9/", 0, "http://127.0.0.1:9", 1 },
		{ "https://kms.internal/prefix//", 0, "https://kms.internal/prefix", 0 },
		{ "localhost:4443", 0, NULL, 0 },
		{ "ftp://x", 1, NULL, 0 },
		{ "http://x/?q=1", 1, NULL, 0 },
	};
	struct gcp_endpoint ep;
	struct err e = ERR_INIT;
	size_t i;
	int r;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		if (v[i].val)
			setenv(var, v[i].val, 1);
		else
			unsetenv(var);
		settings_reload();
		r = gcp_endpoint_get(&ep, var, "https://example.googleapis.com", v[i].bare, &e);
		unsetenv(var);
		settings_reload();
		if (!v[i].base ? r == 0 : (r != 0 || strcmp(ep.base, v[i].base) != 0 || ep.allow_http != v[i].http))
			return st_fail(why, n, "%s=%s -> %s (%s)", var, v[i].val ? v[i].val : "(unset)",
				r == 0 ? ep.base : "error", r == 0 ? "" : e.msg);
		if (!v[i].base && !strstr(e.msg, var))
			return st_fail(why, n, "the error does not name %s: %s", var, e.msg);
	}
	return 0;
}

/* Run f with GOOGLE_APPLICATION_CREDENTIALS pointing at a file holding
 * json (restoring the environment after). */
static struct gauth *with_key_file(const char *json, char *path, size_t pathlen, struct err *e)
{
	const char *tmp = getenv("TMPDIR");
	char *old = getenv("GOOGLE_APPLICATION_CREDENTIALS");
	char saved[1024] = "";
	struct gauth *g = NULL;
	int fd, had = old != NULL;
	size_t len = strlen(json);

	if (had)
		snprintf(saved, sizeof saved, "%s", old);
	snprintf(path, pathlen, "%s/ccr-gcp-selftest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(path);
	if (fd < 0) {
		err_set(e, "mkstemp failed");
		return NULL;
	}
	if (write(fd, json, len) != (ssize_t)len) {
		close(fd);
		unlink(path);
		err_set(e, "write failed");
		return NULL;
	}
	close(fd);
	setenv("GOOGLE_APPLICATION_CREDENTIALS", path, 1);
	settings_reload();
	g = gauth_new(e);
	if (had)
		setenv("GOOGLE_APPLICATION_CREDENTIALS", saved, 1);
	else
		unsetenv("GOOGLE_APPLICATION_CREDENTIALS");
	settings_reload();
	unlink(path);
	return g;
}

static int t_key_file(char *why, size_t n)
{
	struct buf j = BUF_INIT;
	struct err e = ERR_INIT;
	char path[512];
	struct gauth *g;
	int rc = 1;

	if (buf_adds(&j, "{\"type\":\"service_account\",\"project_id\":\"p\",\"private_key_id\":\"k1\","
			"\"private_key\":") != 0 || jsj_string(&j, test_key, strlen(test_key)) != 0 ||
			buf_adds(&j, ",\"client_email\":\"" T_EMAIL "\",\"token_uri\":\"http://127.0.0.1:9/token\"}") != 0) {
		rc = st_fail(why, n, "out of memory");
		goto out;
	}
	g = with_key_file(j.p, path, sizeof path, &e);
	if (!g) {
		rc = st_fail(why, n, "service_account key refused: %s", e.msg);
		goto out;
	}
	if (gauth_kind(g) != GAUTH_SERVICE_ACCOUNT || gauth_source(g) != GAUTH_SRC_ENV_FILE ||
			!strstr(gauth_describe(g), "GOOGLE_APPLICATION_CREDENTIALS=") ||
			!strstr(gauth_describe(g), path) || !strstr(gauth_describe(g), T_EMAIL)) {
		gauth_free(g);
		rc = st_fail(why, n, "description: %s", gauth_describe(g));
		goto out;
	}
	gauth_free(g);
	/* Refusals name the variable and never echo the key. */
	g = with_key_file("{\"type\":\"external_account\",\"private_key\":\"SECRET-KEY-TEXT\"}", path, sizeof path, &e);
	if (g || !strstr(e.msg, "GOOGLE_APPLICATION_CREDENTIALS=") || !strstr(e.msg, "external_account") ||
			strstr(e.msg, "SECRET-KEY-TEXT")) {
		gauth_free(g);
		rc = st_fail(why, n, "unsupported type: %s", e.msg);
		goto out;
	}
	g = with_key_file("{\"type\":\"service_account\",\"private_key\":\"SECRET-KEY-TEXT\"}", path, sizeof path, &e);
	if (g || !strstr(e.msg, "client_email") || strstr(e.msg, "SECRET-KEY-TEXT")) {
		gauth_free(g);
		rc = st_fail(why, n, "incomplete key: %s", e.msg);
		goto out;
	}
	g = with_key_file("not json", path, sizeof path, &e);
	if (g || !strstr(e.msg, "not a JSON")) {
		gauth_free(g);
		rc = st_fail(why, n, "garbage key file: %s", e.msg);
		goto out;
	}
	rc = 0;
out:
	buf_free(&j);
	return rc;
}

static int t_error_text(char *why, size_t n)
{
	static const struct { const char *body, *want; } v[] = {
		{ "{\"error\":{\"code\":404,\"message\":\"Job not found.\",\"status\":\"NOT_FOUND\"}}",
			"NOT_FOUND: Job not found." },
		{ "{\"error\":{\"errors\":[{\"domain\":\"global\",\"reason\":\"conditionNotMet\",\"message\":\"x\"}],"
			"\"code\":412,\"message\":\"Precondition\\nFailed\"}}", "conditionNotMet: Precondition" },
		{ "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}",
			"invalid_grant: Invalid JWT Signature." },
		{ "Service Unavailable\r\nmore", "Service Unavailable" },
	};
	size_t i;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct hc_response rs = HC_RESPONSE_INIT;
		char text[300];

		if (buf_adds(&rs.body, v[i].body) != 0)
			return st_fail(why, n, "out of memory");
		rs.status = 400;
		gcp_error_text(&rs, text, sizeof text);
		hc_response_free(&rs);
		if (strcmp(text, v[i].want) != 0)
			return st_fail(why, n, "\"%s\", want \"%s\"", text, v[i].want);
	}
	return 0;
}

static int t_secret_names(char *why, size_t n)
{
	static const struct { const char *project, *secret, *version, *want; } v[] = {
		{ "p", "prompt", NULL, "projects/p/secrets/prompt/versions/latest" },
		{ "p", "prompt", "3", "projects/p/secrets/prompt/versions/3" },
		{ NULL, "projects/q/secrets/s", NULL, "projects/q/secrets/s/versions/latest" },
		{ NULL, "projects/q/secrets/s/versions/7", NULL, "projects/q/secrets/s/versions/7" },
		{ "p", "../etc", NULL, NULL },
		{ "p", "projects/q/secrets/s/versions/7", "8", NULL },
		{ "p", "a b", NULL, NULL },
	};
	size_t i;

	for (i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct buf b = BUF_INIT;
		struct err e = ERR_INIT;
		int r = gsm_version_name(&b, v[i].project, v[i].secret, v[i].version, &e);
		int ok = v[i].want ? r == 0 && strcmp(b.p, v[i].want) == 0 : r != 0;

		buf_free(&b);
		if (!ok)
			return st_fail(why, n, "secret \"%s\" version %s", v[i].secret, v[i].version ? v[i].version : "-");
	}
	return 0;
}

static int t_url_message(char *why, size_t n)
{
	char out[200];

	hc_url_for_message("https://user:pw@host:1/upload/x?upload_id=SECRET#f", out, sizeof out);
	if (strcmp(out, "https://host:1/upload/x") != 0)
		return st_fail(why, n, "%s", out);
	return 0;
}

const struct st_case gcp_tests[] = {
	{ "jwt_claims", t_jwt_claims },       /* header, claims, iat - 30, exp = iat + 3600 */
	{ "jwt_sign", t_jwt_sign },           /* RS256 over a fixed test key, both flows */
	{ "pct_encode", t_pct_encode },       /* object names: all but unreserved */
	{ "backoff", t_backoff },             /* 1 s x 2^n capped at 32 s, full jitter, Retry-After */
	{ "crc32c_fields", t_crc32c_fields }, /* KMS int64 strings, answer checks, GCS base64 */
	{ "operation_name", t_operation },    /* jobs.run Operation -> execution name */
	{ "exec_state", t_exec_state },
	{ "range_header", t_range },
	{ "endpoints", t_endpoints },         /* overrides, http only there */
	{ "key_file", t_key_file },           /* ADC file discovery and refusals */
	{ "error_text", t_error_text },
	{ "secret_names", t_secret_names },
	{ "url_message", t_url_message },     /* no query strings or userinfo in messages */
	{ NULL, NULL },
};
