/* spec_parse: parsing spec JSON in unit tests, with the parser's message kept for the check. */
#ifndef DIAG_TESTS_SPEC_PARSE_H
#define DIAG_TESTS_SPEC_PARSE_H

#include <stdio.h>
#include <string.h>

#include "check.h"
#include "spec/spec.h"

/* The parser's error for text (arrays allowed), or "(no error)" when it parses. The message
 * lives until the next call. */
static const char *spec_parse_err(const char *text)
{
	static struct diag_error err;
	struct diag_spec **v = NULL;
	diag_error_clear(&err);
	int n = diag_spec_parse(text, strlen(text), true, 0, &v, &err);
	if (n >= 0) {
		diag_spec_free_array(v, n);
		return "(no error)";
	}
	return err.msg;
}

/* Exactly one spec parsed from text (checked; the parser's message printed otherwise), or NULL.
 * Free with diag_spec_free_array(v, 1). */
static struct diag_spec **spec_parse_one(const char *text, bool allow_array, unsigned flags)
{
	struct diag_spec **v = NULL;
	struct diag_error err = { 0 };
	int n = diag_spec_parse(text, strlen(text), allow_array, flags, &v, &err);

	CHECK_EQ_INT(n, 1);
	if (n == 1)
		return v;
	if (n < 0)
		fprintf(stderr, "%s\n", err.msg);
	else
		diag_spec_free_array(v, n);
	return NULL;
}

#endif
