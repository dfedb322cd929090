/*
 * meter.h: the usage meter of the token proxy (prefix um_).
 *
 * It reads the `usage` objects of one upstream Messages response as the
 * body passes through: the SSE `message_start` (message.usage) and
 * `message_delta` (usage) events of a streamed response, or the JSON body
 * of a non-streaming one.  Usage values in a stream are cumulative, so
 * each new value counts only its increase over the last value seen in
 * that response.  Each increase is priced with proxy/prices.h by the
 * response's model and handed to the owner's add callback, which keeps
 * the running totals (the proxy's, under its lock).
 *
 * Memory is bounded: an SSE line over UM_LINE_MAX, or a JSON body over
 * UM_JSON_MAX, is skipped rather than kept.
 *
 * Use, per response:
 *     um_init(&m, add, arg);                           once
 *     um_begin(&m, status, content_type, content_encoding);
 *     um_feed(&m, bytes, n) ...;  um_finish(&m);
 *     um_reset(&m);                                    before the next one
 */
#ifndef CCR_PROXY_METER_H
#define CCR_PROXY_METER_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define UM_LINE_MAX (256 * 1024)  /* longest SSE line kept */
#define UM_JSON_MAX (32u << 20)   /* largest JSON body metered */

enum um_kind { UM_NONE, UM_SSE, UM_JSON };

/* One metered step: a response counted (requests 0 or 1) and the token
 * increases input, output, cache creation, cache read, and their cost. */
struct um_delta {
	uint64_t requests;
	uint64_t tokens[4];
	double cost_usd;
};

typedef void (*um_add_fn)(void *arg, const struct um_delta *d);

struct um_meter {
	um_add_fn add;
	void *arg;
	enum um_kind kind;
	struct buf line;        /* SSE: the current line */
	int line_over;          /* it grew past UM_LINE_MAX */
	int cr;                 /* the last byte was '\r' */
	int event;              /* 1 message_start, 2 message_delta, 0 other */
	struct buf data;        /* SSE: data lines of the current event */
	int data_over;
	int have_data;
	struct buf json;        /* JSON body */
	int json_over;
	uint64_t seen[4];       /* usage values already counted in this response */
	uint64_t seen_1h;       /* of which 1-hour cache writes (priced higher) */
	char model[128];        /* the response's model, for its price */
};

void um_init(struct um_meter *m, um_add_fn add, void *arg);

/* Decide from a Messages response's status and headers whether (and how)
 * to meter it: 200 with an identity encoding and an SSE or JSON type. */
void um_begin(struct um_meter *m, int status, const char *content_type, const char *content_encoding);

/* Response body bytes, as they are relayed. */
void um_feed(struct um_meter *m, const char *d, size_t n);

/* The response is over: meter a JSON body. */
void um_finish(struct um_meter *m);

/* Free the buffers and forget the response (add and arg are kept). */
void um_reset(struct um_meter *m);

#endif
