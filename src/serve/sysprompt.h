/*
 * sysprompt.h: the default system prompt, hot-reloaded from Secret Manager.
 *
 * CCR_SYSTEM_PROMPT_SECRET names a secret (short id, projects/P/secrets/S,
 * or a full version name; "latest" by default).  Its value becomes the
 * systemPrompt of every request that has none; a request's own
 * systemPrompt wins.  The value is cached and re-read every
 * CCR_SYSTEM_PROMPT_REFRESH_S seconds (default 60), so a new secret version
 * takes effect without a restart; while Secret Manager cannot be reached
 * the last value keeps being used.
 */
#ifndef CCR_SYSPROMPT_H
#define CCR_SYSPROMPT_H

#include <cJSON.h>

#include "util/err.h"

struct gsm;

/* What the service keeps: Secret Manager's client (NULL: not configured)
 * and the secret's name. */
struct sysprompt {
	struct gsm *client;
	const char *secret;
};

/* sysprompt_init: sp set up for the secret name (CCR_SYSTEM_PROMPT_SECRET,
 * NULL or "": not configured), cached refresh_s seconds
 * (CCR_SYSTEM_PROMPT_REFRESH_S); 0 (also when not configured), or -1 with
 * e set. */
int sysprompt_init(struct sysprompt *sp, const char *name, unsigned refresh_s, struct err *e);

/* sysprompt_apply: add the default systemPrompt to body when it has none.
 * 0, or -1 with e set when a default is configured but unavailable. */
int sysprompt_apply(const struct sysprompt *sp, cJSON *body, struct err *e);

#endif
