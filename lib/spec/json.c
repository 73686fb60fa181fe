/* json: strict parsing at the edge and safe strings on the way out (see json.h). A lexical
 * pass over the raw bytes finds what cJSON cannot report (a NUL inside a string, invalid
 * UTF-8, the nesting depth) and keeps the member path so the error names the field; cJSON then
 * builds the tree. Owns no state; never prints. */
#include "spec/json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"

#define KEY_SHOWN 40 /* bytes of a member name kept for the path in messages */

struct level {
	bool obj, expect_key;
	size_t index;
	char key[KEY_SHOWN + 4];
};

struct scan {
	const char *s;
	size_t len, i;
	int depth;
	struct level lv[DIAG_JSON_DEPTH_MAX];
	struct diag_error *err;
};

/* "spec.instrument.name", "pid[2]"; "" at the top level. */
static void path_of(const struct scan *sc, char *buf, size_t cap)
{
	size_t at = 0;
	buf[0] = '\0';
	for (int d = 0; d < sc->depth && at < cap; d++) {
		const struct level *l = &sc->lv[d];
		int n = l->obj ? snprintf(buf + at, cap - at, "%s%s", at ? "." : "", l->key)
			       : snprintf(buf + at, cap - at, "[%zu]", l->index);
		at += n > 0 ? (size_t)n : 0;
	}
}

/* An error inside a string: named by the member path (or as a member name of its object). */
static int string_fail(struct scan *sc, bool is_key, size_t at, const char *what)
{
	char path[256];
	sc->depth -= is_key; /* the name being read is not part of the path yet */
	path_of(sc, path, sizeof(path));
	sc->depth += is_key;
	if (is_key)
		return diag_error_set_field(sc->err, path, -DIAG_E_PARSE,
					    "%s%s%s in a member name at byte %zu", path,
					    *path ? ": " : "", what, at);
	return diag_error_set_field(sc->err, path, -DIAG_E_PARSE, "%s%s%s at byte %zu", path,
				    *path ? ": " : "", what, at);
}

static int hex4(const char *s, size_t avail, unsigned *out)
{
	unsigned v = 0;
	if (avail < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		char c = s[k];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return 0;
}

/* The string starting at sc->i (a '"'). Returns 0 past it, 1 when it is not well-formed
 * (cJSON reports that), or a negative code. A member name is kept for the path. */
static int scan_string(struct scan *sc, bool is_key)
{
	size_t j = sc->i + 1, start = j;
	while (j < sc->len && sc->s[j] != '"') {
		unsigned char b = (unsigned char)sc->s[j];
		if (b == '\\') {
			unsigned u;
			if (j + 1 >= sc->len)
				return 1;
			if (sc->s[j + 1] != 'u') {
				j += 2;
				continue;
			}
			if (hex4(sc->s + j + 2, sc->len - j - 2, &u) < 0)
				return 1;
			if (u == 0)
				return string_fail(sc, is_key, j, "NUL character (\\u0000)");
			j += 6;
		} else if (b == 0) {
			return string_fail(sc, is_key, j, "NUL byte");
		} else if (b >= 0x80) {
			size_t n = diag_utf8_len(sc->s + j, sc->len - j, NULL);
			if (!n)
				return string_fail(sc, is_key, j, "invalid UTF-8");
			j += n;
		} else {
			j++;
		}
	}
	if (j >= sc->len)
		return 1;
	if (is_key) { /* as written (escapes unresolved), made safe: it goes into messages */
		struct level *l = &sc->lv[sc->depth - 1];
		size_t n = j - start;
		size_t at = diag_text_escape(l->key, KEY_SHOWN + 1, sc->s + start,
					     n > KEY_SHOWN ? KEY_SHOWN : n, 0);
		if (n > KEY_SHOWN || at > KEY_SHOWN)
			strcpy(l->key + (at < KEY_SHOWN ? at : KEY_SHOWN), "...");
		l->expect_key = false;
	}
	sc->i = j + 1;
	return 0;
}

/* Returns 0 (nothing found, or a syntax error left for cJSON) or a negative code. */
static int scan_all(struct scan *sc)
{
	while (sc->i < sc->len) {
		unsigned char c = (unsigned char)sc->s[sc->i];
		struct level *top = sc->depth ? &sc->lv[sc->depth - 1] : NULL;
		if (c == '"') {
			int r = scan_string(sc, top && top->obj && top->expect_key);
			if (r)
				return r < 0 ? r : 0;
			continue;
		}
		if (c == '{' || c == '[') {
			if (sc->depth == DIAG_JSON_DEPTH_MAX)
				return diag_error_set(sc->err, -DIAG_E_PARSE,
						      "nested deeper than %d levels at byte %zu",
						      DIAG_JSON_DEPTH_MAX, sc->i);
			sc->lv[sc->depth++] = (struct level){ .obj = c == '{', .expect_key = c == '{' };
		} else if (c == '}' || c == ']') {
			if (!top)
				return 0;
			sc->depth--;
		} else if (c == ',' && top) {
			top->expect_key = top->obj;
			top->index += !top->obj;
		} else if (c == 0) {
			return diag_error_set(sc->err, -DIAG_E_PARSE, "NUL byte at byte %zu", sc->i);
		} else if (c >= 0x80) {
			size_t n = diag_utf8_len(sc->s + sc->i, sc->len - sc->i, NULL);
			if (!n)
				return diag_error_set(sc->err, -DIAG_E_PARSE, "invalid UTF-8 at byte %zu",
						      sc->i);
			sc->i += n;
			continue;
		}
		sc->i++;
	}
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

cJSON *diag_json_parse(const char *text, size_t len, struct diag_error *err)
{
	struct scan *sc = calloc(1, sizeof(*sc));
	if (!sc) {
		diag_error_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	*sc = (struct scan){ .s = text, .len = len, .err = err };
	int r = scan_all(sc);
	free(sc);
	if (r < 0)
		return NULL;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	size_t off = end ? (size_t)(end - text) : 0;
	if (!root) {
		char near[21];
		diag_json_excerpt(near, sizeof(near), text + off, len - off, ' ');
		diag_error_set(err, -DIAG_E_PARSE, "invalid JSON at byte %zu near '%s'", off, near);
		return NULL;
	}
	while (off < len && is_space(text[off]))
		off++;
	if (off < len) {
		cJSON_Delete(root);
		diag_error_set(err, -DIAG_E_PARSE, "trailing data after the JSON value at byte %zu",
			       off);
		return NULL;
	}
	return root;
}

char *diag_json_excerpt(char *out, size_t cap, const char *text, size_t len, char repl)
{
	size_t i = 0;
	for (; cap && i < cap - 1 && i < len && text[i]; i++)
		out[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? repl : text[i];
	if (cap)
		out[i] = '\0';
	return out;
}

/* s escaped, or NULL when it is safe already (or memory ran out: then it stays as it is,
 * and the output side escapes again). */
static char *escaped_or_null(const char *s, unsigned flags)
{
	size_t len = strlen(s);
	/* every escape is longer than what it replaces: the same length means nothing to do */
	if (diag_text_escape(NULL, 0, s, len, flags) == len)
		return NULL;
	return diag_text_escape_dup(s, flags);
}

void diag_json_escape_strings(cJSON *j, unsigned flags)
{
	for (; j; j = j->next) {
		char *e;
		if (j->string && !(j->type & cJSON_StringIsConst) &&
		    (e = escaped_or_null(j->string, flags))) {
			cJSON_free(j->string);
			j->string = e;
		}
		if (cJSON_IsString(j) && j->valuestring && (e = escaped_or_null(j->valuestring, flags))) {
			cJSON_SetValuestring(j, e);
			free(e);
		}
		diag_json_escape_strings(j->child, flags);
	}
}
