/*
 * jscheck.h: what JavaScript accepts as input, where cJSON is more lenient
 * (prefix jsc_).
 *
 * The original service parsed request bodies with JSON.parse and coerced
 * numeric fields with JavaScript's Number().  cJSON parses a superset of
 * JSON: it stops at the end of the first value and ignores what follows,
 * takes any byte up to 0x20 as whitespace, copies raw control characters
 * (a NUL included, which then cuts the C string short) into strings,
 * accepts numbers such as "01", "+1", "1." or ".5", and reads 1e999 as an
 * infinity that later prints as null.  jsc_json_check() runs before cJSON
 * and refuses all of that with a message naming the byte offset, so cJSON
 * only ever sees text JSON.parse would also take, with finite numbers.
 *
 * jsc_number() is Number(string) for the forms the original's clients
 * send: see its comment for the exact grammar.
 */
#ifndef CCR_JSCHECK_H
#define CCR_JSCHECK_H

#include <stddef.h>

#include "util/err.h"

/* Deepest nesting of arrays and objects accepted (cJSON's own limit). */
#define JSC_MAX_DEPTH 1000

/* jsc_json_check: 0 when s[0..n) is exactly one JSON text (RFC 8259, as
 * JSON.parse reads it: only space, tab, LF and CR as whitespace, around
 * and after the value) whose numbers are all finite doubles and whose
 * nesting is at most JSC_MAX_DEPTH.  Otherwise -1 with e saying what is
 * wrong and at which byte offset.  UTF-8 validity is not checked here. */
int jsc_json_check(const char *s, size_t n, struct err *e);

/* jsc_number: JavaScript's Number(s) for a string, when the result is a
 * finite number: 0 and *out set; -1 when Number(s) would be NaN or
 * +-Infinity.  Accepted, as in JavaScript:
 *   - surrounding white space: tab, LF, VT, FF, CR, space, and the UTF-8
 *     encodings of U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
 *     U+202F, U+205F, U+3000 and U+FEFF;
 *   - nothing but white space (or ""): 0;
 *   - a decimal: optional sign, digits with an optional fraction ("10",
 *     "-1.5", "1.", ".5"), optional exponent ("1e3", "2E-2");
 *   - 0x / 0o / 0b (either case) followed by hex, octal or binary digits,
 *     without a sign ("0x1A" is 26).
 * Refused as JavaScript refuses them: "1_000", "10px", "1,5", "--1", "",
 * a sign before 0x, a bare "." or "e5".  Also refused: "Infinity" and
 * overflowing values (finite numbers only). */
int jsc_number(const char *s, double *out);

#endif
