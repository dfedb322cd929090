/*
 * follow.c: see follow.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/follow.h"
#include "task/record.h"

void follow_init(struct follow *f, struct storage *st, const char *task_id, uint64_t resume_after)
{
	memset(f, 0, sizeof(*f));
	f->st = st;
	snprintf(f->task_id, sizeof(f->task_id), "%s", task_id);
	tr_key_logs(f->prefix, task_id);
	f->last_index = 0;
	f->resume_after = resume_after;
}

static long chunk_index(const struct follow *f, const char *key, int *width)
{
	return tr_chunk_index(f->prefix, key, width);
}

static int by_index(const void *a, const void *b)
{
	const long *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

static int emit_chunk(struct follow *f, const struct buf *data, follow_emit_fn emit, void *arg)
{
	const char *p = data->p, *end = data->p + data->len;
	int emitted = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		size_t i;

		for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'); i++)
			;
		if (i < n) {
			f->line_no++;
			if (f->line_no > f->resume_after) {
				if (emit(arg, f->line_no, p, n) != 0)
					return -1;
				emitted++;
			}
		}
		p += n + 1;
	}
	return emitted;
}

#define FOLLOW_GONE (-2)

/* Read chunk key (index idx) and emit its lines: their number, -1 (e
 * set, or emit said stop), or FOLLOW_GONE when it no longer exists. */
static int read_chunk(struct follow *f, const char *key, long idx, follow_emit_fn emit, void *arg, struct err *e)
{
	struct buf data = BUF_INIT;
	int n;

	if (storage_get(f->st, key, 0, &data, e) != 0) {
		buf_free(&data);
		return e->http == 404 ? FOLLOW_GONE : -1;
	}
	f->bytes_read += data.len;
	f->chunks++;
	n = emit_chunk(f, &data, emit, arg);
	buf_free(&data);
	snprintf(f->last_key, sizeof(f->last_key), "%s", key);
	f->last_index = idx;
	return n;
}

int follow_poll(struct follow *f, follow_emit_fn emit, void *arg, struct err *e)
{
	struct storage_list l;
	long (*order)[2] = NULL;
	size_t i, k = 0;
	int total = 0, legacy = 0, w;

	/* Our own 6-digit names sort as they are numbered: list after the
	 * last one.  Seed names (3 digits) need the whole list, by index. */
	f->lists++;
	if (storage_list(f->st, f->prefix, f->last_key[0] && !f->legacy ? f->last_key : NULL, &l, e) != 0)
		return -1;
	if (l.n && !(order = calloc(l.n, sizeof(*order)))) {
		storage_list_free(&l);
		return err_set(e, "out of memory");
	}
	for (i = 0; i < l.n; i++) {
		long idx = chunk_index(f, l.items[i].key, &w);
		if (idx > f->last_index) {
			order[k][0] = idx;
			order[k++][1] = (long)i;
			legacy |= w < 6;
		}
	}
	f->legacy |= legacy;
	if (legacy)
		qsort(order, k, sizeof(*order), by_index);
	for (i = 0; i < k && total >= 0; i++) {
		int n = read_chunk(f, l.items[order[i][1]].key, order[i][0], emit, arg, e);

		if (n == FOLLOW_GONE)
			continue;       /* deleted by lifecycle: skip it */
		total = n < 0 ? -1 : total + n;
	}
	free(order);
	storage_list_free(&l);
	return total;
}

int follow_take(struct follow *f, const char *key, follow_emit_fn emit, void *arg, struct err *e)
{
	int w, n;
	long idx = chunk_index(f, key, &w);

	if (idx < 0 || idx <= f->last_index)
		return 0;
	if (f->legacy || w < 6 || idx != f->last_index + 1)
		return follow_poll(f, emit, arg, e);
	n = read_chunk(f, key, idx, emit, arg, e);
	return n == FOLLOW_GONE ? follow_poll(f, emit, arg, e) : n;
}

cJSON *follow_metadata(struct follow *f, struct err *e)
{
	struct buf doc = BUF_INIT;
	char key[TR_KEY_MAX];
	cJSON *j = NULL;

	tr_key_metadata(key, f->task_id);
	if (storage_get(f->st, key, 0, &doc, e) == 0)
		j = cJSON_ParseWithLength(doc.p, doc.len);
	buf_free(&doc);
	return j;
}
