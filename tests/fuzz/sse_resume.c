/*
 * sse_resume.c: what a reconnecting SSE client and the log's object names
 * feed the log follower (src/serve/sse.c, src/serve/follow.c).
 *
 * The input is split at its first NUL byte (none: all of it is used for
 * each part):
 *   - as a Last-Event-ID: sse_last_event_id() accepts exactly the strings
 *     of decimal digits whose value fits in 64 bits, compared with a
 *     reference parser written here;
 *   - as an object name under "sessions/t1/": tr_chunk_index() finds
 *     an index only in "<prefix><1-18 digits>-<anything without '/'>.jsonl",
 *     and it is the value of those digits;
 *   - as a log line: sf_frame() (serve/sseframe.h) writes exactly "id: N\ndata: X\n\n" where
 *     X holds no CR or LF (a line can never inject SSE fields).
 */
#include "fuzz.h"
#include "task/record.h"
#include "serve/sse.h"
#include "serve/sseframe.h"

static int ref_last_event_id(const char *s, uint64_t *out)
{
	unsigned __int128 v = 0;

	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > UINT64_MAX)
			return -1;
	}
	*out = (uint64_t)v;
	return 0;
}

static void last_event_id(const char *s)
{
	uint64_t a = 7, b = 9;
	int ra = sse_last_event_id(s, &a), rb = ref_last_event_id(s, &b);

	FUZZ_CHECK(ra == rb, "sse_last_event_id(\"%s\") = %d, reference %d", s, ra, rb);
	FUZZ_CHECK(ra != 0 || a == b, "sse_last_event_id(\"%s\") = %llu, reference %llu", s, (unsigned long long)a,
		   (unsigned long long)b);
}

static void chunk_name(const char *name)
{
	static const char prefix[] = "sessions/t1/";
	char key[700];
	int w = -1, rw = 0;
	long idx, ref = -1;
	size_t n, d;
	const char *rest;

	/* as a bare key, and as a key under the task's prefix */
	(void)tr_chunk_index(prefix, name, &w);
	if (snprintf(key, sizeof(key), "%s%s", prefix, name) >= (int)sizeof(key))
		return;
	idx = tr_chunk_index(prefix, key, &w);
	rest = name;
	n = strlen(rest);
	for (d = 0; rest[d] >= '0' && rest[d] <= '9'; d++)
		;
	if (d >= 1 && d <= 18 && rest[d] == '-' && n >= 6 && strcmp(rest + n - 6, ".jsonl") == 0 && !strchr(rest, '/')) {
		ref = 0;
		for (size_t i = 0; i < d; i++)
			ref = ref * 10 + (rest[i] - '0');
		rw = (int)d;
	}
	FUZZ_CHECK(idx == ref, "tr_chunk_index(\"%s\") = %ld, reference %ld", key, idx, ref);
	FUZZ_CHECK(idx < 0 || w == rw, "width %d, reference %d", w, rw);
}

static void frame(const char *line, size_t n, uint64_t id)
{
	struct buf out = BUF_INIT;
	char head[40];
	int hl = snprintf(head, sizeof(head), "id: %llu\ndata: ", (unsigned long long)id);
	const char *data;
	size_t dl;

	FUZZ_CHECK(sf_frame(&out, id, line, n) == 0, "sf_frame");
	FUZZ_CHECK(out.len >= (size_t)hl + 2 && memcmp(out.p, head, (size_t)hl) == 0, "frame head %.40s", out.p);
	FUZZ_CHECK(memcmp(out.p + out.len - 2, "\n\n", 2) == 0, "frame end");
	data = out.p + hl;
	dl = out.len - (size_t)hl - 2;
	FUZZ_CHECK(!memchr(data, '\n', dl) && !memchr(data, '\r', dl), "a line break inside the data field: %.*s",
		   (int)dl, data);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	size_t n = strlen(s);
	uint64_t id = 0;

	last_event_id(s);
	chunk_name(s);
	memcpy(&id, data, size < sizeof(id) ? size : sizeof(id));
	frame((const char *)data, size, id);
	if (n < size)
		frame(s, n, id >> 3);
	free(s);
	return 0;
}
