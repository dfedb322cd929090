/*
 * gcp_cmd_gcs.c: `ccr gcp gcs put|get|stat|ls|rm|compose`, one Cloud
 * Storage client call each (gcp/gcs.h), with the options of gcp_cmd.c's
 * synopsis.  Objects print as one line (gs://B/N generation= size=
 * crc32c=); `stat` and `ls` print JSON.
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

#include "gcp/gcs.h"
#include "http/client.h"
#include "util/jsjson.h"
#include "tools/gcp_cmd.h"

static void print_object(struct gcpc_ctx *c, const struct gcs_object *ob)
{
	fprintf(c->out, "gs://%s/%s generation=%lld size=%llu crc32c=%s\n", ob->bucket ? ob->bucket : "?",
		ob->name ? ob->name : "?", (long long)ob->generation, (unsigned long long)ob->size,
		ob->crc32c ? ob->crc32c : "-");
}

static int json_str_member(struct buf *b, const char *key, const char *val, int *first)
{
	if (!val)
		return 0;
	if ((!*first && buf_addc(b, ',') != 0) || jsj_string(b, key, strlen(key)) != 0 || buf_addc(b, ':') != 0 ||
			jsj_string(b, val, strlen(val)) != 0)
		return -1;
	*first = 0;
	return 0;
}

/* ---- gcs --------------------------------------------------------------- */

struct fdsrc {
	int fd;
};

static int fd_read(void *arg, void *dst, size_t n, size_t *got)
{
	struct fdsrc *s = arg;
	size_t have = 0;

	/* Fill as much as asked (pipes return short reads). */
	while (have < n) {
		ssize_t r = read(s->fd, (char *)dst + have, n - have);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		have += (size_t)r;
	}
	*got = have;
	return 0;
}

static int put_opts(struct gcpc_ctx *c, struct gcpc_opts *o, struct gcs_put_opts *po, const char *what)
{
	long long g;
	unsigned long long cs;

	memset(po, 0, sizeof *po);
	po->content_type = o->content_type;
	po->metadata = o->nmeta ? o->meta : NULL;
	po->resumable = o->resumable;
	po->idempotent = !o->no_retry;
	if (o->gen) {
		if (gcpc_parse_i64(o->gen, &g) != 0 || g < 0)
			return gcpc_usage(c, what);
		po->use_generation_match = 1;
		po->if_generation_match = g;
	}
	if (o->chunk) {
		if (gcpc_parse_u64(o->chunk, &cs) != 0 || cs == 0 || cs > ((unsigned long long)1 << 30))
			return gcpc_usage(c, what);
		po->chunk_size = (size_t)cs;
	}
	return 0;
}

static int gcs_put_cmd(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct gcs_put_opts po;
	struct gcs_object ob;
	struct gcs *g;
	struct buf data = BUF_INIT;
	const char *file;
	int rc;

	if (o->npos < 4 || o->npos > 5 || (o->npos == 5 && o->data))
		return gcpc_usage(c, "gcs put");
	if ((rc = put_opts(c, o, &po, "gcs put")) != 0)
		return rc;
	if (!(g = gcpc_gcs_client(c, e)))
		return 1;
	file = o->npos == 5 ? o->pos[4] : NULL;
	memset(&ob, 0, sizeof ob);
	if (o->resumable && !o->data && !c->script) {
		/* Stream the file or stdin: read once, at most a chunk in memory. */
		struct fdsrc src = { 0 };
		struct stat st;
		int64_t total = -1;

		if (file && strcmp(file, "-") != 0) {
			src.fd = open(file, O_RDONLY | O_CLOEXEC);
			if (src.fd < 0)
				return err_set(e, "%s: %s", file, strerror(errno)), 1;
		}
		if (fstat(src.fd, &st) == 0 && S_ISREG(st.st_mode))
			total = (int64_t)st.st_size;
		rc = gcs_put_resumable(g, o->pos[2], o->pos[3], fd_read, &src, total, &po, &ob, e);
		if (src.fd > 0)
			close(src.fd);
	} else {
		if (gcpc_input(c, o, file, &data, e) != 0)
			return 1;
		rc = gcs_put(g, o->pos[2], o->pos[3], data.p ? data.p : "", data.len, &po, &ob, e);
		buf_free(&data);
	}
	if (rc != 0)
		return 1;
	print_object(c, &ob);
	gcs_object_free(&ob);
	return 0;
}

static int gcs_get_cmd(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct buf data = BUF_INIT;
	unsigned long long off = 0;
	struct gcs *g;
	int rc = 1;

	if (o->npos != 4 || (o->offset && gcpc_parse_u64(o->offset, &off) != 0))
		return gcpc_usage(c, "gcs get");
	if (!(g = gcpc_gcs_client(c, e)))
		return 1;
	if (gcs_get(g, o->pos[2], o->pos[3], off, &data, e) == 0)
		rc = gcpc_emit(c, data.p, data.len) == 0 ? 0 : (err_set(e, "writing the output: %s", strerror(errno)), 1);
	buf_free(&data);
	return rc;
}

static int gcs_stat_cmd(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct gcs_object ob;
	struct buf j = BUF_INIT;
	struct gcs *g;
	char num[64];
	int first = 1, rc = 1;

	if (o->npos != 4)
		return gcpc_usage(c, "gcs stat");
	if (!(g = gcpc_gcs_client(c, e)))
		return 1;
	if (gcs_stat(g, o->pos[2], o->pos[3], &ob, e) != 0)
		return 1;
	if (buf_addc(&j, '{') != 0 || json_str_member(&j, "bucket", ob.bucket, &first) != 0 ||
			json_str_member(&j, "name", ob.name, &first) != 0)
		goto oom;
	snprintf(num, sizeof num, "%llu", (unsigned long long)ob.size);
	if (json_str_member(&j, "size", num, &first) != 0)
		goto oom;
	snprintf(num, sizeof num, "%lld", (long long)ob.generation);
	if (json_str_member(&j, "generation", num, &first) != 0)
		goto oom;
	snprintf(num, sizeof num, "%lld", (long long)ob.metageneration);
	if (json_str_member(&j, "metageneration", num, &first) != 0 ||
			json_str_member(&j, "contentType", ob.content_type, &first) != 0 ||
			json_str_member(&j, "crc32c", ob.crc32c, &first) != 0 ||
			json_str_member(&j, "md5Hash", ob.md5, &first) != 0 ||
			buf_printf(&j, ",\"componentCount\":%d", ob.component_count) != 0)
		goto oom;
	if (ob.metadata) {
		char **m;
		int f2 = 1;

		if (buf_adds(&j, ",\"metadata\":{") != 0)
			goto oom;
		for (m = ob.metadata; m[0] && m[1]; m += 2)
			if (json_str_member(&j, m[0], m[1], &f2) != 0)
				goto oom;
		if (buf_addc(&j, '}') != 0)
			goto oom;
	}
	if (buf_adds(&j, "}\n") != 0)
		goto oom;
	rc = gcpc_emit(c, j.p, j.len) == 0 ? 0 : 1;
	goto out;
oom:
	err_set(e, "out of memory");
out:
	gcs_object_free(&ob);
	buf_free(&j);
	return rc;
}

static int gcs_ls_cmd(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct gcs_list_opts lo;
	struct gcs_listing l;
	unsigned long long ps = 0;
	struct gcs *g;
	size_t i;

	if (o->npos != 3 || (o->page_size && (gcpc_parse_u64(o->page_size, &ps) != 0 || ps == 0 || ps > 1000)))
		return gcpc_usage(c, "gcs ls");
	if (!(g = gcpc_gcs_client(c, e)))
		return 1;
	memset(&lo, 0, sizeof lo);
	lo.prefix = o->prefix;
	lo.delimiter = o->delimiter;
	lo.start_offset = o->start_offset;
	lo.page_size = (unsigned)ps;
	if (gcs_list(g, o->pos[2], &lo, &l, e) != 0)
		return 1;
	for (i = 0; i < l.nprefixes; i++)
		fprintf(c->out, "%s\n", l.prefixes[i]);
	for (i = 0; i < l.n; i++)
		fprintf(c->out, "%s\t%llu\n", l.items[i].name, (unsigned long long)l.items[i].size);
	gcs_listing_free(&l);
	return 0;
}

static int gcs_rm_cmd(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct gcs_del_opts d = { 0, 0, 0 };
	long long g;
	struct gcs *gc;

	if (o->npos != 4)
		return gcpc_usage(c, "gcs rm");
	if (o->gen) {
		if (gcpc_parse_i64(o->gen, &g) != 0 || g < 0)
			return gcpc_usage(c, "gcs rm");
		d.use_generation_match = 1;
		d.if_generation_match = g;
	}
	d.idempotent = !o->no_retry;
	if (!(gc = gcpc_gcs_client(c, e)))
		return 1;
	return gcs_delete(gc, o->pos[2], o->pos[3], &d, e) == 0 ? 0 : 1;
}

static int gcs_compose_cmd(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	struct gcs_put_opts po;
	struct gcs_object ob;
	struct gcs *g;
	int rc;

	if (o->npos < 5)
		return gcpc_usage(c, "gcs compose");
	if ((rc = put_opts(c, o, &po, "gcs compose")) != 0)
		return rc;
	if (!(g = gcpc_gcs_client(c, e)))
		return 1;
	if (gcs_compose(g, o->pos[2], o->pos[3], o->pos + 4, (size_t)(o->npos - 4), &po, &ob, e) != 0)
		return 1;
	print_object(c, &ob);
	gcs_object_free(&ob);
	return 0;
}

int gcpc_gcs(struct gcpc_ctx *c, struct gcpc_opts *o, struct err *e)
{
	const char *v = o->npos > 1 ? o->pos[1] : "";

	if (strcmp(v, "put") == 0)
		return gcs_put_cmd(c, o, e);
	if (strcmp(v, "get") == 0)
		return gcs_get_cmd(c, o, e);
	if (strcmp(v, "stat") == 0)
		return gcs_stat_cmd(c, o, e);
	if (strcmp(v, "ls") == 0)
		return gcs_ls_cmd(c, o, e);
	if (strcmp(v, "rm") == 0)
		return gcs_rm_cmd(c, o, e);
	if (strcmp(v, "compose") == 0)
		return gcs_compose_cmd(c, o, e);
	return gcpc_usage(c, "gcs");
}
