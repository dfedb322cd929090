/*
 * meter.c: the token proxy's usage meter (see meter.h).  An SSE body is
 * split into lines (CR, LF or CRLF) and events; the data of a
 * message_start or message_delta event is parsed with cJSON and its usage
 * compared with what this response already counted.  A JSON body is
 * collected and parsed once the response is over.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cJSON.h"
#include "proxy/prices.h"
#include "proxy/meter.h"

static const char *const usage_names[4] = { "input_tokens", "output_tokens",
	"cache_creation_input_tokens", "cache_read_input_tokens" };

/* The increase of usage.cache_creation.ephemeral_1h_input_tokens (part of
 * cache_creation_input_tokens, written to the 1-hour cache). */
static double new_1h_writes(struct um_meter *m, const cJSON *u)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(u, "cache_creation"),
							  "ephemeral_1h_input_tokens");
	uint64_t n;

	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 1e15)
		return 0;
	n = (uint64_t)v->valuedouble;
	if (n <= m->seen_1h)
		return 0;
	n -= m->seen_1h;
	m->seen_1h += n;
	return (double)n;
}

/* Add the increase of each usage field over what this response already
 * counted (stream usage values are cumulative). */
static void meter_usage(struct um_meter *m, const cJSON *u, uint64_t requests)
{
	struct um_delta d;
	int i;

	memset(&d, 0, sizeof(d));
	d.requests = requests;
	if (cJSON_IsObject(u)) {
		for (i = 0; i < 4; i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(u, usage_names[i]);
			uint64_t n;

			if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 1e15)
				continue;
			n = (uint64_t)v->valuedouble;
			if (n > m->seen[i]) {
				d.tokens[i] = n - m->seen[i];
				m->seen[i] = n;
			}
		}
		d.cost_usd = price_cost(price_for(m->model), (double)d.tokens[0], (double)d.tokens[1],
					(double)d.tokens[2], (double)d.tokens[3]) +
			     price_1h_extra(price_for(m->model), new_1h_writes(m, u));
	}
	if (m->add)
		m->add(m->arg, &d);
}

/* Remember the response's model, which prices its usage. */
static void meter_model(struct um_meter *m, const cJSON *model)
{
	snprintf(m->model, sizeof(m->model), "%s", cJSON_IsString(model) ? model->valuestring : "");
}

/* The end of one SSE event: meter message_start / message_delta. */
static void meter_event(struct um_meter *m)
{
		cJSON *j;

	if (m->event && m->have_data && !m->data_over) {
		j = cJSON_ParseWithLength(m->data.p, m->data.len);
		if (j) {
			if (m->event == 1) {
				const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");

				meter_model(m, cJSON_GetObjectItemCaseSensitive(msg, "model"));
				meter_usage(m, cJSON_GetObjectItemCaseSensitive(msg, "usage"), 1);
			} else {
				meter_usage(m, cJSON_GetObjectItemCaseSensitive(j, "usage"), 0);
			}
			cJSON_Delete(j);
		}
	}
	m->event = 0;
	m->have_data = 0;
	m->data_over = 0;
	buf_reset(&m->data);
}

/* One SSE line (without its end of line). */
static void meter_line(struct um_meter *m, const char *l, size_t n)
{
		const char *colon, *v;
	size_t fl, vl;

	if (n == 0) {
		meter_event(m);
		return;
	}
	if (l[0] == ':')
		return;
	colon = memchr(l, ':', n);
	fl = colon ? (size_t)(colon - l) : n;
	v = colon ? colon + 1 : l + n;
	vl = n - (size_t)(v - l);
	if (vl > 0 && *v == ' ')
		v++, vl--;
	if (fl == 5 && memcmp(l, "event", 5) == 0) {
		m->event = vl == 13 && memcmp(v, "message_start", 13) == 0   ? 1
			   : vl == 13 && memcmp(v, "message_delta", 13) == 0 ? 2
									     : 0;
	} else if (fl == 4 && memcmp(l, "data", 4) == 0) {
		if (m->data.len + vl + 1 > UM_LINE_MAX) {
			m->data_over = 1;
			return;
		}
		if ((m->have_data && buf_addc(&m->data, '\n') != 0) || buf_add(&m->data, v, vl) != 0)
			m->data_over = 1;
		m->have_data = 1;
	}
}

/* Feed response body bytes to the meter. */
void um_feed(struct um_meter *m, const char *d, size_t n)
{
		size_t i = 0;

	if (m->kind == UM_JSON) {
		if (m->json_over || m->json.len + n > UM_JSON_MAX || buf_add(&m->json, d, n) != 0)
			m->json_over = 1;
		return;
	}
	if (m->kind != UM_SSE)
		return;
	while (i < n) {
		size_t j = i;

		if (m->cr && d[i] == '\n') {    /* the LF of a CRLF */
			m->cr = 0;
			i++;
			continue;
		}
		m->cr = 0;
		while (j < n && d[j] != '\r' && d[j] != '\n')
			j++;
		if (j > i && !m->line_over) {
			if (m->line.len + (j - i) > UM_LINE_MAX || buf_add(&m->line, d + i, j - i) != 0)
				m->line_over = 1;
		}
		if (j == n)
			break;
		if (m->line_over)
			meter_line(m, "x", 1);  /* a line we could not keep: ignored */
		else
			meter_line(m, m->line.p ? m->line.p : "", m->line.len);
		buf_reset(&m->line);
		m->line_over = 0;
		m->cr = d[j] == '\r';
		i = j + 1;
	}
}

/* The response is over: meter a JSON body. */
void um_finish(struct um_meter *m)
{
		cJSON *j;

	if (m->kind != UM_JSON || m->json_over || m->json.len == 0)
		return;
	j = cJSON_ParseWithLength(m->json.p, m->json.len);
	if (!j)
		return;
	if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "usage"))) {
		meter_model(m, cJSON_GetObjectItemCaseSensitive(j, "model"));
		meter_usage(m, cJSON_GetObjectItemCaseSensitive(j, "usage"), 1);
	}
	cJSON_Delete(j);
}

void um_reset(struct um_meter *m)
{
	um_add_fn add = m->add;
	void *arg = m->arg;

	buf_free(&m->line);
	buf_free(&m->data);
	buf_free(&m->json);
	memset(m, 0, sizeof(*m));
	um_init(m, add, arg);
}

void um_init(struct um_meter *m, um_add_fn add, void *arg)
{
	memset(m, 0, sizeof(*m));
	m->add = add;
	m->arg = arg;
}

void um_begin(struct um_meter *m, int status, const char *content_type, const char *content_encoding)
{
	const char *ct = content_type, *ce = content_encoding;

	m->kind = UM_NONE;
	if (status != 200 || (ce && strcasecmp(ce, "identity") != 0) || !ct)
		return;
	if (strncasecmp(ct, "text/event-stream", 17) == 0)
		m->kind = UM_SSE;
	else if (strncasecmp(ct, "application/json", 16) == 0)
		m->kind = UM_JSON;
}

