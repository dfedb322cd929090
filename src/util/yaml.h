/*
 * yaml.h: YAML text of a cJSON tree, byte for byte as js-yaml 3's
 * safeDump writes it (the seed formats the front matter of slash commands
 * and subagents with it).  Prefix yaml_.
 *
 * Block style, 2-space indent, keys in JavaScript property order, plain
 * scalars when safe, else single quotes, double quotes for non-printable
 * characters, `|` literal blocks for multi-line strings.  One difference:
 * long lines are never folded (js-yaml folds at 80 columns with `>`); the
 * value is the same.  Every function appends to out and returns 0, or -1
 * only when memory runs out (out is then left as it was).
 */
#ifndef CCR_UTIL_YAML_H
#define CCR_UTIL_YAML_H

#include <stddef.h>
#include <stdint.h>

#include "cJSON.h"
#include "util/buf.h"

/* yaml_dump: v, without the final newline. */
int yaml_dump(struct buf *out, const cJSON *v);

/* yaml_dump_mapping: the members of the object obj as a top-level block
 * mapping; drop_null leaves out members whose value is null.  *count (may
 * be NULL) gets how many members were written; none writes "{}". */
int yaml_dump_mapping(struct buf *out, const cJSON *obj, int drop_null, size_t *count);

/* One member of an object, in the order yaml_members gives. */
struct yaml_member {
	const cJSON *item;     /* the last occurrence (its value counts) */
	uint64_t idx;
	int is_idx;
	size_t pos;
};

/* yaml_members: the members of obj in JavaScript property order (the
 * order the dump uses); *out is malloc'd (NULL when empty). */
int yaml_members(const cJSON *obj, struct yaml_member **out, size_t *n);

#endif
