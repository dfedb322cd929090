/*
 * sysprompt.c: see sysprompt.h.  Secret Manager's client (gcp/secrets.h)
 * owns the cache and its refresh; this file only decides when to use it.
 */
#include <stdlib.h>
#include <string.h>

#include "backend/config.h"
#include "gcp/secrets.h"
#include "serve/sysprompt.h"

int sysprompt_init(struct sysprompt *sp, const char *name, unsigned refresh_s, struct err *e)
{
	sp->client = NULL;
	sp->secret = NULL;
	if (!name || !*name)
		return 0;
	sp->client = gsm_new(NULL, refresh_s, e);
	if (!sp->client)
		return err_prefix(e, "CCR_SYSTEM_PROMPT_SECRET");
	sp->secret = name;
	return 0;
}

int sysprompt_apply(const struct sysprompt *sp, cJSON *body, struct err *e)
{
	const cJSON *have = cJSON_GetObjectItemCaseSensitive(body, "systemPrompt");
	struct buf value = BUF_INIT;

	if (!sp->client || (cJSON_IsString(have) && have->valuestring[0]))
		return 0;
	if (have && !cJSON_IsNull(have) && !cJSON_IsString(have))
		return 0;      /* the type check reports it */
	if (gsm_access(sp->client, sp->secret, NULL, &value, e) != 0) {
		buf_free(&value);
		return err_prefix(e, "the default system prompt (CCR_SYSTEM_PROMPT_SECRET) is unavailable");
	}
	cJSON_DeleteItemFromObjectCaseSensitive(body, "systemPrompt");
	cJSON_AddStringToObject(body, "systemPrompt", value.p ? value.p : "");
	buf_free(&value);
	return 0;
}
