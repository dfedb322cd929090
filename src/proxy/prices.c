/*
 * prices.c: the price table (see prices.h for its source and date).
 */
#include <string.h>

#include "proxy/prices.h"

static const struct price_row rows[] = {
	/* prefix                input   output  write    read */
	/* The pinned CLI's default model: its rate as the CLI itself prices
	 * it (result modelUsage.costUSD of Claude Code 2.1.332, 2026-12),
	 * cache rates at 1.25 x and 0.1 x input like every other row. */
	{ "claude-opus-5-5",     4.00,   20.00,  5.00,    0.40 },
	{ "claude-opus-4-5",     5.00,   25.00,  6.25,    0.50 },
	{ "claude-opus-4-1",     15.00,  75.00,  18.75,   1.50 },
	{ "claude-opus-4",       15.00,  75.00,  18.75,   1.50 },
	{ "claude-3-opus",       15.00,  75.00,  18.75,   1.50 },
	{ "claude-sonnet-4-5",   3.00,   15.00,  3.75,    0.30 },
	{ "claude-sonnet-4",     3.00,   15.00,  3.75,    0.30 },
	{ "claude-3-7-sonnet",   3.00,   15.00,  3.75,    0.30 },
	{ "claude-3-5-sonnet",   3.00,   15.00,  3.75,    0.30 },
	{ "claude-haiku-4-5",    1.00,   5.00,   1.25,    0.10 },
	{ "claude-3-5-haiku",    0.80,   4.00,   1.00,    0.08 },
	{ "claude-3-haiku",      0.25,   1.25,   0.30,    0.03 },
};

/* Unknown models: the most expensive row above. */
static const struct price_row unknown = { "", 15.00, 75.00, 18.75, 1.50 };

const struct price_row *price_for(const char *model)
{
	const struct price_row *best = NULL;
	size_t i, n, best_n = 0;

	for (i = 0; model && i < sizeof(rows) / sizeof(rows[0]); i++) {
		n = strlen(rows[i].prefix);
		if (n > best_n && strncmp(model, rows[i].prefix, n) == 0)
			best = &rows[i], best_n = n;
	}
	return best ? best : &unknown;
}

double price_cost(const struct price_row *r, double input, double output, double cache_write, double cache_read)
{
	return (input * r->input + output * r->output + cache_write * r->cache_write + cache_read * r->cache_read) /
	       1e6;
}

double price_1h_extra(const struct price_row *r, double n)
{
	double extra = 2.0 * r->input - r->cache_write;

	return extra > 0 ? n * extra / 1e6 : 0;
}
