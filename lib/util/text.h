/* text: the one place that decides whether a string is safe to print and how an unsafe one is
 * shown. Every text output of diagnose (the daemon's stdout and stderr, diagnosectl's tables,
 * tail lines and errors, plugin lines) passes strings that came from a client or a target
 * through diag_text_escape, so no input can forge a line or drive a terminal. Validation of
 * input fields uses diag_text_check with the same definition of "unsafe". Owns no state and
 * never allocates except in diag_text_escape_dup. */
#ifndef DIAG_UTIL_TEXT_H
#define DIAG_UTIL_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

enum diag_text_verdict {
	DIAG_TEXT_OK = 0,
	DIAG_TEXT_BAD_UTF8,  /* a byte that does not start or continue a valid UTF-8 sequence */
	DIAG_TEXT_CONTROL,   /* C0 (U+0000..U+001F), DEL (U+007F) or C1 (U+0080..U+009F) */
};

/* Length (1..4) of the valid UTF-8 sequence at s[0..len) and its code point, 0 when invalid. */
size_t diag_utf8_len(const char *s, size_t len, uint32_t *cp);

/* The first unsafe place of s[0..len): its byte offset and, for a control character, its code
 * point. Overlong forms, surrogates and code points above U+10FFFF are invalid UTF-8. */
enum diag_text_verdict diag_text_check(const char *s, size_t len, size_t *off, uint32_t *cp);

enum {
	DIAG_TEXT_KEEP_NL = 1, /* multi-line text (a histogram's bars): '\n' stays a line break */
};

/* Copy s[0..len) into out (cap bytes, always NUL-terminated when cap > 0) with every unsafe
 * character written as printable ASCII: \n \r \t, \xNN for other C0 controls, DEL and bytes of
 * invalid UTF-8, \u00NN for C1 controls. Safe text is copied unchanged (backslashes included:
 * the escaping keeps lines and terminals intact; it is not meant to be reversed). Returns the
 * length the whole result needs (like snprintf). */
size_t diag_text_escape(char *out, size_t cap, const char *s, size_t len, unsigned flags);

/* The escaped copy of the C string s (malloc'd), or NULL on allocation failure. */
char *diag_text_escape_dup(const char *s, unsigned flags);

/* 0, or -DIAG_E_INVALID with err "FIELD: control character U+000A at byte 3 (not allowed)" or
 * "FIELD: invalid UTF-8 at byte 3" (err->field FIELD): how every input field that can reach
 * text is checked. */
int diag_text_field_check(const char *field, const char *s, struct diag_error *err);

/* The shortest decimal text that reads back as exactly v ("1e+308", "123456789.5"): error
 * messages must show the value that was given, not a rounding of it. Returns buf. */
char *diag_text_double(double v, char *buf, size_t len);

#endif
