/*
 * gcp_cmd_script.c: `ccr gcp script FILE [--threads N]`: one operation
 * per line run in one process (see gcp_cmd.c), so tests can drive
 * hundreds of calls through one token cache and connection pool.
 *
 * Design.  The lines are read and split first; N worker threads then take
 * the next line from a shared counter (struct pool) and run it with
 * gcpc_run_op on their own context (sharing the GCS client), writing
 * the output into the line's own buffer; the results are printed in line
 * order once every worker is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "gcp/gcs.h"
#include "http/client.h"
#include "util/jsjson.h"
#include "tools/gcp_cmd.h"

/* Split a script line into words ("double" with \" \\ escapes, 'single'
 * literal).  Returns the count, or -1 on an unterminated quote. */
static int split(char *line, char **words, int max)
{
	char *r = line, *w;
	int n = 0;

	for (;;) {
		while (*r == ' ' || *r == '\t' || *r == '\r' || *r == '\n')
			r++;
		if (!*r)
			return n;
		if (n >= max)
			return -1;
		words[n++] = w = r;
		while (*r && *r != ' ' && *r != '\t' && *r != '\r' && *r != '\n') {
			if (*r == '"') {
				r++;
				while (*r && *r != '"') {
					if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
						r++;
					*w++ = *r++;
				}
				if (*r != '"')
					return -1;
				r++;
			} else if (*r == '\'') {
				r++;
				while (*r && *r != '\'')
					*w++ = *r++;
				if (*r != '\'')
					return -1;
				r++;
			} else {
				*w++ = *r++;
			}
		}
		if (*r)
			r++;
		*w = 0;
	}
}

static void print_escaped(FILE *f, const char *p, size_t n)
{
	size_t i;

	if (n > 0 && p[n - 1] == '\n')
		n--;
	for (i = 0; i < n; i++) {
		if (p[i] == '\\')
			fputs("\\\\", f);
		else if (p[i] == '\n')
			fputs("\\n", f);
		else if (p[i] == '\t' || (unsigned char)p[i] >= 0x20)
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", (unsigned char)p[i]);
	}
}

struct line {
	int lineno;
	char *text;
	int rc;
	char *out;
	size_t outlen;
	char msg[sizeof(((struct err *)0)->msg)];
};

struct pool {
	struct line *lines;
	size_t n;
	size_t next;
	pthread_mutex_t lock;
	struct gcpc_ctx base;
};

/* Run one script line in ctx c (output captured). */
static void run_line(struct gcpc_ctx *c, struct line *l)
{
	char *words[MAX_ARGS];
	struct gcpc_ctx sub = *c;
	struct err e2 = ERR_INIT;
	int n = split(l->text, words, MAX_ARGS);

	l->rc = 1;
	if (n < 0) {
		snprintf(l->msg, sizeof l->msg, "unterminated quote or too many words");
		return;
	}
	sub.script = 1;
	sub.usage[0] = 0;
	sub.out = open_memstream(&l->out, &l->outlen);
	if (!sub.out) {
		snprintf(l->msg, sizeof l->msg, "out of memory");
		return;
	}
	if (strcmp(words[0], "sleep") == 0 && n == 2) {
		struct timespec ts;
		long ms = atol(words[1]);

		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		l->rc = 0;
	} else {
		l->rc = gcpc_run_op(&sub, n, words, &e2);
	}
	fclose(sub.out);
	c->gcs = sub.gcs;
	c->gsm = sub.gsm;
	c->gsm_refresh = sub.gsm_refresh;
	snprintf(l->msg, sizeof l->msg, "%s", l->rc == EXIT_USAGE ? sub.usage : e2.msg);
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	struct gcpc_ctx c = p->base;      /* own ctx: own secret cache; the GCS client is shared */

	for (;;) {
		size_t i;

		pthread_mutex_lock(&p->lock);
		i = p->next++;
		pthread_mutex_unlock(&p->lock);
		if (i >= p->n)
			break;
		run_line(&c, &p->lines[i]);
	}
	gsm_free(c.gsm);
	return NULL;
}

/* The script's operations (blank and '#' lines skipped) into p->lines:
 * 0, or -1 when out of memory. */
static int read_lines(FILE *f, struct pool *p)
{
	size_t cap = 0, lcap = 0;
	char *line = NULL;
	int lineno = 0, rc = 0;

	while (getline(&line, &cap, f) >= 0) {
		const char *t = line + strspn(line, " \t\r\n");

		lineno++;
		if (!*t || *t == '#')
			continue;
		if (p->n == lcap) {
			size_t nc = lcap ? 2 * lcap : 64;
			struct line *nl = realloc(p->lines, nc * sizeof *nl);

			if (!nl) {
				rc = -1;
				break;
			}
			p->lines = nl;
			lcap = nc;
		}
		memset(&p->lines[p->n], 0, sizeof p->lines[0]);
		p->lines[p->n].lineno = lineno;
		if (!(p->lines[p->n].text = strdup(line))) {
			rc = -1;
			break;
		}
		p->n++;
	}
	free(line);
	return rc;
}

/* Run the lines on `threads` workers, each with its own ctx. */
static int run_threads(struct gcpc_ctx *c, struct pool *p, unsigned long long threads, struct err *e)
{
	pthread_t tids[64];
	size_t i, started = 0;

	/* Clients shared by the threads are made before they start. */
	if (!gcpc_gcs_client(c, e))
		return -1;
	p->base = *c;
	p->base.gsm = NULL;
	if (pthread_mutex_init(&p->lock, NULL) != 0)
		return err_set(e, "cannot make a mutex");
	for (i = 0; i < threads; i++) {
		if (pthread_create(&tids[i], NULL, worker, p) != 0)
			break;
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	pthread_mutex_destroy(&p->lock);
	return started == 0 ? err_set(e, "cannot start threads") : 0;
}

/* One result line per operation, in script order; the number failed. */
static int print_results(struct gcpc_ctx *c, const struct pool *p)
{
	size_t i;
	int failed = 0;

	for (i = 0; i < p->n; i++) {
		const struct line *l = &p->lines[i];

		if (l->rc == 0) {
			fprintf(c->out, "%d\t", l->lineno);
			print_escaped(c->out, l->out ? l->out : "", l->outlen);
			fputc('\n', c->out);
		} else {
			failed++;
			fprintf(c->out, "%d\tERROR\t%s\n", l->lineno, l->msg);
		}
	}
	return failed;
}

int gcpc_script(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct pool p;
	unsigned long long threads = 1, r0 = hc_retries_total();
	uint64_t t0 = (uint64_t)clock_mono_ms();
	size_t i;
	int failed, rc = 1, rd;
	FILE *f;

	if (o->npos != 2 || c->script ||
			(o->threads && (gcpc_parse_u64(o->threads, &threads) != 0 || threads < 1 || threads > 64)))
		return gcpc_usage(c, "script");
	f = strcmp(o->pos[1], "-") == 0 ? stdin : fopen(o->pos[1], "r");
	if (!f)
		return err_set(e, "%s: %s", o->pos[1], strerror(errno)), 1;
	memset(&p, 0, sizeof p);
	rd = read_lines(f, &p);
	if (f != stdin)
		fclose(f);
	if (rd != 0) {
		err_set(e, "script %s: out of memory", o->pos[1]);
		goto out;
	}
	if (threads == 1) {
		for (i = 0; i < p.n; i++)
			run_line(c, &p.lines[i]);
	} else if (run_threads(c, &p, threads, e) != 0) {
		goto out;
	}
	failed = print_results(c, &p);
	fprintf(c->out, "# ops=%zu failed=%d retries=%llu ms=%llu\n", p.n, failed, hc_retries_total() - r0,
		(unsigned long long)((uint64_t)clock_mono_ms() - t0));
	if (failed)
		err_set(e, "script %s: %d of %zu operations failed", o->pos[1], failed, p.n);
	else
		rc = 0;
out:
	for (i = 0; i < p.n; i++) {
		free(p.lines[i].text);
		free(p.lines[i].out);
	}
	free(p.lines);
	return rc;
}
