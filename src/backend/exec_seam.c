/*
 * exec_seam.c: the execution seam's calls (exec.h), forwarding to the
 * backend's operation table.  Optional operations have a predicate and a
 * call that is harmless when the backend lacks them.
 */
#include <stddef.h>

#include "backend/exec.h"

int exec_start(struct executor *x, const char *task_id, const char *payload_path, const char *const *extra_env,
	       struct buf *name_out, struct err *e)
{
	return x->ops->start(x, task_id, payload_path, extra_env, name_out, e);
}

int exec_status(struct executor *x, const char *name, struct exec_status *out, struct err *e)
{
	return x->ops->status(x, name, out, e);
}

int exec_cancel(struct executor *x, const char *name, struct err *e)
{
	return x->ops->cancel(x, name, e);
}

int exec_can_count_slots(const struct executor *x)
{
	return x->ops->free_slots != NULL;
}

int exec_free_slots(struct executor *x)
{
	return exec_can_count_slots(x) ? x->ops->free_slots(x) : 0;
}

int exec_can_tidy(const struct executor *x)
{
	return x->ops->tidy != NULL;
}

void exec_tidy(struct executor *x)
{
	if (exec_can_tidy(x))
		x->ops->tidy(x);
}

int exec_can_notify(const struct executor *x)
{
	return x->ops->notify != NULL;
}

void exec_notify(struct executor *x, void (*fn)(void *arg), void *arg)
{
	if (exec_can_notify(x))
		x->ops->notify(x, fn, arg);
}

void exec_free(struct executor *x)
{
	if (x)
		x->ops->free(x);
}
