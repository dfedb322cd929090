/*
 * prices.h: what a token costs, per model, for the token proxy's budget
 * (prefix price_).
 *
 * Source: Anthropic's published API pricing (the "Pricing" page of the
 * Claude developer documentation, docs.claude.com/en/docs/about-claude/pricing),
 * as listed in November 2025.  US dollars per million tokens: base input,
 * output, cache write (the 5-minute cache, 1.25 x input) and cache read
 * (0.1 x input); a write to the 1-hour cache costs 2 x input (the usage's
 * cache_creation.ephemeral_1h_input_tokens), price_1h_extra() adds the
 * difference.  One row comes from elsewhere, and says so: the pinned
 * CLI's default model, priced as that CLI prices it.  Long-context (over 200k input tokens) and batch rates
 * are not modelled: the budget is a cap, and the table errs upwards.
 *
 * A model is matched by the longest prefix of its id (so dated ids such
 * as claude-sonnet-4-5-20250929 find their family).  A model the table
 * does not know is charged at the most expensive row, so an unknown or
 * renamed model can never slip under a cap.  Update the table, and the
 * month above, when Anthropic's prices change.
 */
#ifndef CCR_JOB_PRICES_H
#define CCR_JOB_PRICES_H

struct price_row {
	const char *prefix;
	double input, output, cache_write, cache_read;   /* USD per million tokens */
};

/* price_for: the row of model (never NULL: unknown models get the most
 * expensive row). */
const struct price_row *price_for(const char *model);

/* price_cost: the cost in USD of the given token counts under row r. */
double price_cost(const struct price_row *r, double input, double output, double cache_write, double cache_read);

/* price_1h_extra: what n cache-write tokens cost more in the 1-hour cache
 * (2 x input) than price_cost() charged for them (the 5-minute rate). */
double price_1h_extra(const struct price_row *r, double n);

#endif
