/*
 * billing.c: the seed's "billing" summary (seed-spec §10.5), from what the
 * task changed in its repository: test-case files it added and the
 * manifests of test runs it wrote.
 *
 * Changed paths come from the last commit (HEAD~1..HEAD, with libgit2);
 * when there is no such commit, from the working tree's new and untracked
 * files.  Only read, never written: a failure just leaves billing out.
 */
#include <stdio.h>
#include <string.h>

#include <git2.h>

#include "job/task_int.h"

struct paths {
	cJSON *added, *changed;     /* arrays of strings */
};

static int from_commit(git_repository *repo, struct paths *p)
{
	git_object *head = NULL;
	git_commit *c = NULL, *parent = NULL;
	git_tree *t1 = NULL, *t0 = NULL;
	git_diff *diff = NULL;
	size_t i;
	int rc = -1;

	if (git_revparse_single(&head, repo, "HEAD") || git_commit_lookup(&c, repo, git_object_id(head)) ||
	    git_commit_parentcount(c) < 1 || git_commit_parent(&parent, c, 0) || git_commit_tree(&t1, c) ||
	    git_commit_tree(&t0, parent) || git_diff_tree_to_tree(&diff, repo, t0, t1, NULL))
		goto out;
	for (i = 0; i < git_diff_num_deltas(diff); i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		if (d->status == GIT_DELTA_ADDED)
			cJSON_AddItemToArray(p->added, cJSON_CreateString(d->new_file.path));
		if (d->status == GIT_DELTA_ADDED || d->status == GIT_DELTA_MODIFIED)
			cJSON_AddItemToArray(p->changed, cJSON_CreateString(d->new_file.path));
	}
	rc = 0;
out:
	git_diff_free(diff);
	git_tree_free(t0);
	git_tree_free(t1);
	git_commit_free(parent);
	git_commit_free(c);
	git_object_free(head);
	return rc;
}

static void from_status(git_repository *repo, struct paths *p)
{
	git_status_options o;
	git_status_list *list = NULL;
	size_t i;

	if (git_status_options_init(&o, GIT_STATUS_OPTIONS_VERSION) != 0)
		return;
	o.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED | GIT_STATUS_OPT_RECURSE_UNTRACKED_DIRS;
	if (git_status_list_new(&list, repo, &o) != 0)
		return;
	for (i = 0; i < git_status_list_entrycount(list); i++) {
		const git_status_entry *s = git_status_byindex(list, i);
		const char *path = s->index_to_workdir ? s->index_to_workdir->new_file.path
				   : s->head_to_index ? s->head_to_index->new_file.path : NULL;
		if (path && (s->status & (GIT_STATUS_INDEX_NEW | GIT_STATUS_WT_NEW))) {
			cJSON_AddItemToArray(p->added, cJSON_CreateString(path));
			cJSON_AddItemToArray(p->changed, cJSON_CreateString(path));
		}
	}
	git_status_list_free(list);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void add_run(struct task *t, cJSON *bill, const char *path)
{
	char file[8192], stamp[256];
	const char *slash = strchr(path, '/'), *next;
	struct buf text = BUF_INIT;
	FILE *f;
	cJSON *m, *run, *runs, *v;
	size_t n;

	snprintf(file, sizeof(file), "%s/%s", t->ws.root, path);
	if (!slash || !(next = strchr(slash + 1, '/')) || !(f = fopen(file, "re")))
		return;
	snprintf(stamp, sizeof(stamp), "%.*s", (int)(next - slash - 1), slash + 1);
	while ((n = fread(file, 1, sizeof(file), f)) > 0)
		buf_add(&text, file, n);
	fclose(f);
	m = text.p ? cJSON_ParseWithLength(text.p, text.len) : NULL;
	buf_free(&text);
	if (!m) {
		slog(SLOG_WARNING, "billing: %s is not JSON", path);
		return;
	}
	run = cJSON_CreateObject();
	cJSON_AddStringToObject(run, "timestamp", stamp);
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "stats"), "totalTests");
	if (cJSON_IsNumber(v) && v->valuedouble != 0)
		cJSON_AddNumberToObject(run, "testCaseCount", v->valuedouble);
	else
		cJSON_AddNumberToObject(run, "testCaseCount",
					cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "testCases")));
	if (cJSON_GetArraySize(v = cJSON_GetObjectItemCaseSensitive(m, "new_failures")) > 0)
		cJSON_ReplaceItemInObject(bill, "newFailures", cJSON_Duplicate(v, 1));
	if (cJSON_GetArraySize(v = cJSON_GetObjectItemCaseSensitive(m, "known_failures")) > 0)
		cJSON_ReplaceItemInObject(bill, "knownFailures", cJSON_Duplicate(v, 1));
	cJSON_AddItemToObject(run, "manifest", m);
	runs = cJSON_GetObjectItemCaseSensitive(bill, "testRuns");
	cJSON_AddItemToArray(runs, run);
}

void billing_collect(struct task *t)
{
	git_repository *repo = NULL;
	struct paths p;
	cJSON *bill = cJSON_CreateObject(), *creations = cJSON_CreateArray(), *it, *out;

	p.added = cJSON_CreateArray();
	p.changed = cJSON_CreateArray();

	if (!t->ws_on || !p.added || !p.changed || !bill || !creations ||
	    git_repository_open_ext(&repo, t->ws.root, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) != 0)
		goto out;
	if (from_commit(repo, &p) != 0)
		from_status(repo, &p);
	cJSON_ArrayForEach(it, p.added)
		if (!strncmp(it->valuestring, "test-cases/", 11) && ends_with(it->valuestring, ".md"))
			cJSON_AddItemToArray(creations, cJSON_CreateString(it->valuestring));
	/* Placeholders keep the seed's key order; empty ones are dropped. */
	cJSON_AddItemToObject(bill, "testCaseCreations", creations);
	creations = NULL;
	cJSON_AddItemToObject(bill, "newFailures", cJSON_CreateNull());
	cJSON_AddItemToObject(bill, "knownFailures", cJSON_CreateNull());
	cJSON_AddItemToObject(bill, "testRuns", cJSON_CreateArray());
	cJSON_ArrayForEach(it, p.changed)
		if (!strncmp(it->valuestring, "test-runs/", 10) && ends_with(it->valuestring, "/manifest.json"))
			add_run(t, bill, it->valuestring);
	out = cJSON_CreateObject();
	cJSON_ArrayForEach(it, bill)
		if (!cJSON_IsNull(it) && cJSON_GetArraySize(it) > 0)
			cJSON_AddItemToObject(out, it->string, cJSON_Duplicate(it, 1));
	if (out && cJSON_GetArraySize(out) > 0) {
		cJSON_Delete(t->rep.billing);
		t->rep.billing = out;
	} else {
		cJSON_Delete(out);
	}
out:
	git_repository_free(repo);
	cJSON_Delete(creations);
	cJSON_Delete(bill);
	cJSON_Delete(p.added);
	cJSON_Delete(p.changed);
}
