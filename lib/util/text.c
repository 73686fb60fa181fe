/* text: safe-to-print checks and escaping (see text.h). Owns no state. */
#include "util/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4) with its code point, or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, v = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, v = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, v = c & 0x07, min = 0x10000;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

size_t diag_utf8_len(const char *s, size_t len, uint32_t *cp)
{
	uint32_t c = 0;
	size_t n = len ? utf8_seq((const unsigned char *)s, len, &c) : 0;
	if (cp)
		*cp = c;
	return n;
}

static int is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

enum diag_text_verdict diag_text_check(const char *s, size_t len, size_t *off, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		uint32_t c;
		size_t n = utf8_seq(u + i, len - i, &c);
		if (n == 0 || is_control(c)) {
			if (off)
				*off = i;
			if (cp)
				*cp = n ? c : 0;
			return n ? DIAG_TEXT_CONTROL : DIAG_TEXT_BAD_UTF8;
		}
		i += n;
	}
	return DIAG_TEXT_OK;
}

/* Append the escape of one unsafe character (or one bad byte) into out. */
static size_t put_escape(char *out, size_t cap, size_t at, uint32_t c, int bad_byte)
{
	char tmp[16];
	if (!bad_byte && c == '\n')
		snprintf(tmp, sizeof(tmp), "\\n");
	else if (!bad_byte && c == '\r')
		snprintf(tmp, sizeof(tmp), "\\r");
	else if (!bad_byte && c == '\t')
		snprintf(tmp, sizeof(tmp), "\\t");
	else if (!bad_byte && c >= 0x80)
		snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned)c);
	else
		snprintf(tmp, sizeof(tmp), "\\x%02x", (unsigned)c);
	size_t n = strlen(tmp);
	for (size_t i = 0; i < n; i++)
		if (at + i + 1 < cap)
			out[at + i] = tmp[i];
	return n;
}

size_t diag_text_escape(char *out, size_t cap, const char *s, size_t len, unsigned flags)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t at = 0;
	for (size_t i = 0; i < len;) {
		uint32_t c;
		size_t n = utf8_seq(u + i, len - i, &c);
		if (n == 0) {
			at += put_escape(out, cap, at, u[i], 1);
			i++;
			continue;
		}
		if (is_control(c) && !(c == '\n' && (flags & DIAG_TEXT_KEEP_NL))) {
			at += put_escape(out, cap, at, c, 0);
		} else {
			for (size_t k = 0; k < n; k++)
				if (at + k + 1 < cap)
					out[at + k] = (char)u[i + k];
			at += n;
		}
		i += n;
	}
	if (cap)
		out[at < cap ? at : cap - 1] = '\0';
	return at;
}

char *diag_text_escape_dup(const char *s, unsigned flags)
{
	size_t len = strlen(s);
	size_t need = diag_text_escape(NULL, 0, s, len, flags);
	char *out = malloc(need + 1);
	if (out)
		diag_text_escape(out, need + 1, s, len, flags);
	return out;
}

int diag_text_field_check(const char *field, const char *s, struct diag_error *err)
{
	size_t off = 0;
	uint32_t cp = 0;
	switch (diag_text_check(s, strlen(s), &off, &cp)) {
	case DIAG_TEXT_CONTROL:
		return diag_error_set_field(err, field, -DIAG_E_INVALID,
					    "%s: control character U+%04X at byte %zu (not allowed)",
					    field, (unsigned)cp, off);
	case DIAG_TEXT_BAD_UTF8:
		return diag_error_set_field(err, field, -DIAG_E_INVALID,
					    "%s: invalid UTF-8 at byte %zu", field, off);
	default:
		return 0;
	}
}

char *diag_text_double(double v, char *buf, size_t len)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}
