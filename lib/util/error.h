/* error: the one error convention of diagnose.
 * Functions return 0 (or a count) on success and a negative code on failure: -errno for
 * system errors, or -DIAG_E_* (>= 4000) for our own. Functions that can fail for reasons a
 * user must read also take a `struct diag_error *` (may be NULL) and fill a precise,
 * one-line message naming what failed and why. The library never prints; callers log once.
 * Output parameters are written only on success. An error about a spec field names that field
 * in `field` ("target", "value", "condition", ...): callers read it there and never guess it
 * from the message's words. */
#ifndef DIAG_UTIL_ERROR_H
#define DIAG_UTIL_ERROR_H

#include <stddef.h>

enum {
	DIAG_E_BASE = 4000,
	DIAG_E_PARSE,     /* malformed input (JSON, expression, target syntax) */
	DIAG_E_INVALID,   /* well-formed but invalid (field value, unknown field) */
	DIAG_E_NOSYM,     /* no such symbol / variable */
	DIAG_E_AMBIGUOUS, /* several candidates */
	DIAG_E_RELOC,     /* instruction cannot be relocated */
	DIAG_E_PLUGIN,    /* instrument plugin failed to load or create */
	DIAG_E_LIMIT,     /* a resource limit was reached */
	DIAG_E_STATE,     /* operation not valid in the current state */
	DIAG_E_NODEBUG,   /* no debug information */
	DIAG_E_FAULT,     /* target memory could not be read */
	DIAG_E_GONE,      /* process or thread exited */
	DIAG_E_MAX
};

#define DIAG_ERRMSG_MAX 512
#define DIAG_ERRFIELD_MAX 48

struct diag_error {
	int code;                     /* negative code, 0 when no error */
	char field[DIAG_ERRFIELD_MAX]; /* the spec field it is about ("condition"), "" if none */
	char msg[DIAG_ERRMSG_MAX];    /* precise one-line message */
};

/* Record code and a printf-style message in *e (if e is non-NULL); returns code so callers can
 * write `return diag_error_set(err, -DIAG_E_INVALID, "...")`. */
int diag_error_set(struct diag_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* diag_error_set for an error about spec field `field` (a dotted path: "instrument.value"). */
int diag_error_set_field(struct diag_error *e, const char *field, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Name the field of an error already set when none is named yet (the innermost caller that
 * knows the field wins). Returns e->code (0 for a NULL e). */
int diag_error_in_field(struct diag_error *e, const char *field);

/* An error about field whose message does not say so yet: when no field is named, name it
 * and make the message lead with "FIELD: " (the one place that text is composed from the
 * field); an error whose field is named already is left as it is. Returns e->code (0 for a
 * NULL e). For callers that know which field an inner error is about: "value" or
 * "condition" for an expression, "target" for where a probe goes. */
int diag_error_lead_field(struct diag_error *e, const char *field);

/* Prefix an existing message with context ("spec w1: " + msg). Returns e->code. */
int diag_error_prefix(struct diag_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void diag_error_clear(struct diag_error *e);

/* Static description of a negative code (-errno or -DIAG_E_*). Never NULL. */
const char *diag_strerror(int code);

#endif
