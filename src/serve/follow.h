/*
 * follow.h: follow one task's log in storage, line by line, reading each
 * chunk object once.
 *
 * Lines are numbered from 1 in log order; that number is the SSE event
 * id, so a client that reconnects with Last-Event-ID: N resumes at N+1
 * and nothing is lost or repeated.  Chunks are listed with start-after
 * the last one read (GCS startOffset), so each poll fetches only new
 * objects.  Chunk names written by the seed (index padded to 3 digits,
 * which sorts wrongly past 999) are ordered by their parsed index
 * (tr_chunk_index, task/record.h); tr_meta_terminal says when a
 * task's log has ended.
 *
 * A caller told the key of a new chunk (the local backend's watch names
 * them) gives it to follow_take, which reads it without listing when it
 * is the next one (its index is last_index + 1); anything else (a gap,
 * names out of order, a seed-named chunk) falls back to one follow_poll.
 */
#ifndef CCR_FOLLOW_H
#define CCR_FOLLOW_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "backend/storage.h"

typedef int (*follow_emit_fn)(void *arg, uint64_t id, const char *line, size_t n);

struct follow {
	struct storage *st;
	char task_id[160];         /* at most TASK_ID_MAX (serve/taskdoc.h) */
	char prefix[400];            /* sessions/<id>/ (task/record.h) */
	char last_key[600];          /* the last chunk read */
	long last_index;             /* its parsed index */
	uint64_t line_no;            /* lines seen so far */
	uint64_t resume_after;       /* emit only lines with a number above this */
	uint64_t bytes_read;         /* chunk bytes downloaded */
	uint64_t lists;              /* storage listings made */
	uint64_t chunks;             /* chunks read */
	int legacy;                  /* seed-named chunks seen: list everything */
};

void follow_init(struct follow *f, struct storage *st, const char *task_id, uint64_t resume_after);

/* follow_poll: read new chunks, emitting their lines; returns the number
 * of lines emitted, or -1 (e set, or emit returned non-zero: stop). */
int follow_poll(struct follow *f, follow_emit_fn emit, void *arg, struct err *e);

/* follow_take: key appeared under the prefix.  A chunk after the next
 * one is read through follow_poll, an older one is ignored, as is any
 * other object.  Returns as follow_poll. */
int follow_take(struct follow *f, const char *key, follow_emit_fn emit, void *arg, struct err *e);

/* follow_metadata: the task's metadata.json, parsed (NULL: none yet). */
cJSON *follow_metadata(struct follow *f, struct err *e);

#endif
