/* spec/target: the target grammar (see target.h): one parse of a `target` string into a struct
 * diag_target, with a message naming what is wrong. Owns the syntax only; never looks a name
 * up, never reads files or processes, depends on lib/util alone. */
#include "spec/target.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(struct diag_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct diag_error *err, const char *fmt, ...)
{
	char msg[DIAG_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return diag_error_set_field(err, "target", -DIAG_E_PARSE, "%s", msg);
}

/* Decimal, or hex after 0x; digits only, and no overflow. */
static bool parse_u64(const char *s, uint64_t *v)
{
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *digits = hex ? s + 2 : s;
	if (!*digits)
		return false;
	for (const char *p = digits; *p; p++)
		if (hex ? !isxdigit((unsigned char)*p) : !isdigit((unsigned char)*p))
			return false;
	errno = 0;
	*v = strtoull(digits, NULL, hex ? 16 : 10);
	return errno == 0;
}

/* Not empty, not starting with a digit, letters and digits and the characters of extra. */
static bool name_of(const char *s, const char *extra)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return false;
	return true;
}

/* A C function name; C++ names and globs may hold more: "ns::Widget::~Widget", "ns::f<int>",
 * "ns::*". */
#define FUNC_CHARS "_.$@"
#define PATTERN_CHARS "_.$@:~<>,*?[]! &"

/* The MODULE separator is a lone ':' (a "::" belongs to a C++ name). */
static const char *module_colon(const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p != ':')
			continue;
		if (p[1] == ':') {
			p++;
			continue;
		}
		return p;
	}
	return NULL;
}

/* "[MODULE:]FILE:LINE": the last lone ':' followed by decimal digits only. */
static bool parse_line_target(const char *text, struct diag_target *t)
{
	const char *colon = strrchr(text, ':');
	if (!colon || colon == text || colon[-1] == ':' || !colon[1] ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return false;
	char head[DIAG_TARGET_MAX + 1];
	snprintf(head, sizeof(head), "%.*s", (int)(colon - text), text);
	const char *mc = module_colon(head);
	if (mc) {
		snprintf(t->module, sizeof(t->module), "%.*s", (int)(mc - head), head);
		snprintf(t->func, sizeof(t->func), "%s", mc + 1);
	} else {
		snprintf(t->func, sizeof(t->func), "%s", head);
	}
	unsigned long line = strtoul(colon + 1, NULL, 10);
	t->line = line > 0 && line < (1ul << 30) ? (unsigned)line : 0;
	t->kind = DIAG_TARGET_LINE;
	return true;
}

/* The name forms, t->func holding what follows MODULE: FUNC[+OFF], C++ NAME[(PARAMS)], GLOB. */
static int parse_name(const char *text, struct diag_target *t, struct diag_error *err)
{
	char *paren = strchr(t->func, '(');
	if (paren) {
		snprintf(t->params, sizeof(t->params), "%s", paren);
		*paren = '\0';
		t->kind = DIAG_TARGET_CXX;
	} else {
		char *plus = strrchr(t->func, '+');
		if (plus) {
			*plus = '\0';
			if (!parse_u64(plus + 1, &t->off))
				return fail(err, "target '%s': offset '%s' is not a decimal or 0x hex number",
					    text, plus + 1);
			t->has_off = true;
		}
	}
	if (strpbrk(t->func, "*?["))
		t->kind = DIAG_TARGET_GLOB;
	else if (t->kind != DIAG_TARGET_CXX && (strstr(t->func, "::") || strpbrk(t->func, "~<")))
		t->kind = DIAG_TARGET_CXX;
	bool ok = name_of(t->func, t->kind == DIAG_TARGET_FUNC ? FUNC_CHARS : PATTERN_CHARS);
	if (!ok || (t->has_off && t->kind != DIAG_TARGET_FUNC))
		return fail(err,
			    "target '%s': '%s' is not a function name (expected FUNC, MODULE:FUNC, "
			    "FUNC+OFF, ns::Class::method(params), a glob, FILE:LINE or 0xADDR)",
			    text, t->func);
	return 0;
}

static int parse(const char *text, struct diag_target *t, struct diag_error *err)
{
	if (!text || !*text)
		return fail(err, "target: empty");
	if (strlen(text) > DIAG_TARGET_MAX)
		return fail(err, "target '%.64s...': longer than %d bytes", text, DIAG_TARGET_MAX);
	const char *colon = module_colon(text);
	if (!colon && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
		if (!parse_u64(text, &t->addr))
			return fail(err, "target '%s': bad hex address", text);
		t->kind = DIAG_TARGET_ADDR;
		return 0;
	}
	if (parse_line_target(text, t)) {
		if (!t->func[0] || !t->line || (colon == text))
			return fail(err, "target '%s': expected FILE:LINE with a line number >= 1", text);
		return 0;
	}
	const char *rest = text;
	if (colon) {
		if (colon == text)
			return fail(err, "target '%s': empty module before ':'", text);
		memcpy(t->module, text, (size_t)(colon - text));
		rest = colon + 1;
	}
	snprintf(t->func, sizeof(t->func), "%s", rest);
	return parse_name(text, t, err);
}

int diag_target_parse(const char *text, struct diag_target *out, struct diag_error *err)
{
	struct diag_target t;
	memset(&t, 0, sizeof(t));
	t.kind = DIAG_TARGET_FUNC;
	int rc = parse(text, &t, err);
	if (rc == 0)
		*out = t;
	return rc;
}

const char *diag_target_kind_name(enum diag_target_kind kind)
{
	switch (kind) {
	case DIAG_TARGET_FUNC: return "function";
	case DIAG_TARGET_CXX: return "C++ name";
	case DIAG_TARGET_GLOB: return "glob";
	case DIAG_TARGET_LINE: return "FILE:LINE";
	case DIAG_TARGET_ADDR: return "address";
	}
	return "?";
}
