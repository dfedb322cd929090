/*
 * jsjson.h: print cJSON trees byte-for-byte like JavaScript's JSON.stringify.
 *
 * The Node original re-serialises Claude's stream-json lines, metadata.json
 * and webhook bodies with JSON.stringify; ccr must produce the same bytes
 * (seed-spec §18.2).  cJSON's own printer differs (number format, escapes,
 * key order, duplicates), so ccr parses with cJSON and prints with this.
 *
 * Rules implemented (JSON.stringify(v) and JSON.stringify(v, null, indent)):
 *  - Object members in JavaScript property order: keys that are array
 *    indices (canonical decimal integers 0 .. 2^32-2, e.g. "0", "17", not
 *    "01") first in ascending numeric order, then all other keys in
 *    insertion (= parse) order.  Duplicate keys print once, at the position
 *    of the first occurrence, with the value of the last (what JSON.parse
 *    builds); keys are compared as the JavaScript strings their bytes
 *    decode to, so two different invalid bytes (both U+FFFD), or a
 *    surrogate pair in WTF-8 and the same character in UTF-8, are one key.
 *    Members whose (last) value is cJSON_Invalid are treated as
 *    `undefined` and omitted; in arrays such an element prints as null.
 *  - Strings: `"` and `\` escaped, \b \f \n \r \t short escapes, other
 *    bytes < 0x20 as \u00xx (lower-case hex); everything else raw UTF-8
 *    (including '/', DEL, U+2028/U+2029, emoji).  Bytes that are not valid
 *    UTF-8 become U+FFFD, one per maximal invalid subpart (what Node's
 *    UTF-8 decoder would have made of them).  Surrogates encoded in WTF-8
 *    style (ED A0..BF xx) print as \udxxx escapes like JavaScript's lone
 *    surrogates, and a high+low pair is joined into one raw 4-byte UTF-8
 *    character, so a reader that maps lone-surrogate escapes to WTF-8
 *    bytes round-trips them.
 *  - Numbers: Number.prototype.toString (shortest round-trip digits laid
 *    out per ECMAScript Number::toString), NaN and +-Infinity -> null,
 *    -0 -> 0.
 *  - true / false / null literal; cJSON_Raw items are copied verbatim.
 *  - indent 0: compact.  indent 1..10 (larger values are clamped to 10,
 *    as JSON.stringify does): one member per line, `": "` after keys,
 *    empty object / array as {} / [].
 *
 * All functions append to out and return 0, or -1 when memory runs out
 * (out is then left as it was).  jsj_print() also returns -1 when v is NULL
 * or cJSON_Invalid (JSON.stringify(undefined) yields no JSON text).
 *
 * The only allocation is one scratch struct buf per jsj_print() call, used
 * to order the members of objects (O(n log n) per object, so huge objects
 * or many duplicates cost no more than sorting).
 */
#ifndef CCR_JSJSON_H
#define CCR_JSJSON_H

#include <stddef.h>

#include "cJSON.h"
#include "util/buf.h"

/* Longest jsj_dtoa() result plus NUL ("-1.2345678901234567e-308" is 24). */
#define JSJ_DTOA_MAX 32

/* Serialise v; indent 0 = compact, 2 = JSON.stringify(v, null, 2). */
int jsj_print(struct buf *out, const cJSON *v, unsigned indent);

/* jsj_print(out, v, 0) and jsj_print(out, v, 2). */
int jsj_stringify(struct buf *out, const cJSON *v);
int jsj_stringify_pretty(struct buf *out, const cJSON *v);

/* Append n bytes of s as a JSON string literal, quotes included. */
int jsj_string(struct buf *out, const char *s, size_t n);

/* Append d as JSON.stringify prints a number (non-finite -> null). */
int jsj_number(struct buf *out, double d);

/* JavaScript String(d) into dst (NUL-terminated): like jsj_number but
 * "NaN", "Infinity", "-Infinity" for non-finite values.  Returns strlen. */
size_t jsj_dtoa(double d, char dst[JSJ_DTOA_MAX]);

/* The unit-test table, jsjson_tests (jsjson_test.c), is declared in
 * selftest/suites.h. */

#endif
