/* error: message formatting for the error convention (see error.h). Owns no state. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int error_vset(struct diag_error *e, const char *field, int code, const char *fmt,
		      va_list ap)
{
	if (!e)
		return code;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	e->code = code;
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	return code;
}

int diag_error_set(struct diag_error *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(e, NULL, code, fmt, ap);
	va_end(ap);
	return code;
}

int diag_error_set_field(struct diag_error *e, const char *field, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(e, field, code, fmt, ap);
	va_end(ap);
	return code;
}

int diag_error_in_field(struct diag_error *e, const char *field)
{
	if (!e)
		return 0;
	if (!e->field[0] && field)
		snprintf(e->field, sizeof(e->field), "%s", field);
	return e->code;
}

int diag_error_lead_field(struct diag_error *e, const char *field)
{
	if (!e || e->field[0] || !field || !*field)
		return e ? e->code : 0;
	diag_error_in_field(e, field);
	return diag_error_prefix(e, "%s: ", e->field);
}

int diag_error_prefix(struct diag_error *e, const char *fmt, ...)
{
	if (!e)
		return 0;
	char prefix[DIAG_ERRMSG_MAX], old[DIAG_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	size_t n = strnlen(prefix, sizeof(e->msg) - 1);
	memcpy(e->msg, prefix, n);
	size_t rest = strnlen(old, sizeof(old));
	if (rest > sizeof(e->msg) - 1 - n)
		rest = sizeof(e->msg) - 1 - n;
	memcpy(e->msg + n, old, rest);
	e->msg[n + rest] = '\0';
	return e->code;
}

void diag_error_clear(struct diag_error *e)
{
	if (e) {
		e->code = 0;
		e->field[0] = '\0';
		e->msg[0] = '\0';
	}
}

const char *diag_strerror(int code)
{
	static const char *const own[] = {
		[DIAG_E_PARSE - DIAG_E_BASE] = "parse error",
		[DIAG_E_INVALID - DIAG_E_BASE] = "invalid value",
		[DIAG_E_NOSYM - DIAG_E_BASE] = "no such symbol",
		[DIAG_E_AMBIGUOUS - DIAG_E_BASE] = "ambiguous name",
		[DIAG_E_RELOC - DIAG_E_BASE] = "instruction cannot be relocated",
		[DIAG_E_PLUGIN - DIAG_E_BASE] = "instrument plugin error",
		[DIAG_E_LIMIT - DIAG_E_BASE] = "limit reached",
		[DIAG_E_STATE - DIAG_E_BASE] = "invalid state",
		[DIAG_E_NODEBUG - DIAG_E_BASE] = "no debug information",
		[DIAG_E_FAULT - DIAG_E_BASE] = "memory fault",
		[DIAG_E_GONE - DIAG_E_BASE] = "process exited",
	};
	int c = -code;
	if (c > DIAG_E_BASE && c < DIAG_E_MAX)
		return own[c - DIAG_E_BASE];
	if (c > 0 && c < DIAG_E_BASE)
		return strerror(c);
	return "unknown error";
}
