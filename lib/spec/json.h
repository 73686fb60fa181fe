/* json: the strict JSON edge of diagnose. Every JSON text that comes from outside (control
 * requests, --spec files, the store) is read through diag_json_parse, which refuses what cJSON
 * would accept and then misrepresent: invalid UTF-8, NUL characters (a C string ends there, so
 * "keep\u0000x" would match the spec "keep"), nesting deeper than DIAG_JSON_DEPTH_MAX and data
 * after the value. Errors name the member path (spec.instrument.name) and the byte offset.
 * Also what goes back out: diag_json_escape_strings makes every string of a tree safe to print
 * and valid UTF-8, so strict readers can read our replies and our store. Never prints. */
#ifndef DIAG_SPEC_JSON_H
#define DIAG_SPEC_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "util/error.h"
#include "util/text.h"

#define DIAG_JSON_DEPTH_MAX 64

/* Parse text[0..len) as one JSON value (surrounding whitespace allowed). Returns the tree
 * (caller deletes) or NULL with err: "invalid UTF-8 at byte N", "spec.id: NUL character
 * (\u0000) at byte N", "nested deeper than 64 levels at byte N", "invalid JSON at byte N near
 * '...'", "trailing data after the JSON value at byte N". Code -DIAG_E_PARSE (-ENOMEM). */
cJSON *diag_json_parse(const char *text, size_t len, struct diag_error *err);

/* An excerpt of input for a one-line message: at most cap - 1 bytes of text[0..len), up to a
 * NUL, every control byte (< 0x20, 0x7f) replaced by repl; NUL-terminated. out may be text
 * (in place). Returns out. The one way quoted input is kept to one line in an error. */
char *diag_json_excerpt(char *out, size_t cap, const char *text, size_t len, char repl);

/* Replace every string value and member name of j, recursively, by its diag_text_escape form
 * (flags as there). Strings that are already safe are left alone. */
void diag_json_escape_strings(cJSON *j, unsigned flags);

#endif
