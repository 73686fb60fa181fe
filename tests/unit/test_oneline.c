/* test_oneline: the one-line probe form of `diagnosed -e` (spec/oneline.h) becomes the spec a
 * user would have written, and every malformed line is refused with what is wrong. The spec it
 * makes also passes the spec reader (the same checks as any other spec). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "spec/oneline.h"
#include "spec/spec.h"

static char *spec_text(const char *line)
{
	cJSON *j = NULL;
	struct diag_error err = {0};
	if (diag_spec_oneline(line, "e1", &j, &err) < 0)
		return strdup(err.msg);
	struct diag_spec *s = NULL;
	struct diag_error serr = {0};
	CHECK_EQ_INT(diag_spec_from_json(j, DIAG_SPEC_CHECK_TARGET, "e1", &s, &serr), 0);
	diag_spec_free(s);
	char *t = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return t;
}

static void expect(const char *line, const char *want)
{
	char *got = spec_text(line);
	CHECK_EQ_STR(got, want);
	free(got);
}

static void expect_err(const char *line, const char *want)
{
	cJSON *j = NULL;
	struct diag_error err = {0};
	CHECK(diag_spec_oneline(line, "e1", &j, &err) < 0);
	CHECK(j == NULL);
	CHECK(strstr(err.msg, want) != NULL);
	if (!strstr(err.msg, want))
		fprintf(stderr, "  got: %s\n", err.msg);
}

int main(void)
{
	expect("log handle_request req->path",
	       "{\"instrument\":{\"type\":\"log\",\"name\":\"handle_request\",\"value\":\"req->path\","
	       "\"event\":\"call\",\"custom\":{}},\"id\":\"e1\",\"target\":\"handle_request\"}");
	expect("  hist   handle@return   elapsed  ",
	       "{\"instrument\":{\"type\":\"hist\",\"name\":\"handle@return\",\"value\":\"elapsed\","
	       "\"event\":\"return\",\"custom\":{}},\"id\":\"e1\",\"target\":\"handle\"}");
	expect("incr,by_value,limit=3,unit=ns,x=false libc.so.6:write $arg3 if $arg3 > 4096 && $arg1 == 1",
	       "{\"instrument\":{\"type\":\"incr\",\"name\":\"libc.so.6:write\",\"value\":\"$arg3\","
	       "\"event\":\"call\",\"custom\":{\"by_value\":true,\"limit\":3,\"unit\":\"ns\",\"x\":false}},"
	       "\"id\":\"e1\",\"target\":\"libc.so.6:write\",\"condition\":\"$arg3 > 4096 && $arg1 == 1\"}");
	expect("incr ns::Widget::add(int)@end if diff > 0",
	       "{\"instrument\":{\"type\":\"incr\",\"name\":\"ns::Widget::add(int)@end\",\"event\":\"end\","
	       "\"custom\":{}},\"id\":\"e1\",\"target\":\"ns::Widget::add(int)\",\"condition\":\"diff > 0\"}");
	/* "if" inside a word is not the keyword */
	expect("log f verify_iff",
	       "{\"instrument\":{\"type\":\"log\",\"name\":\"f\",\"value\":\"verify_iff\",\"event\":\"call\","
	       "\"custom\":{}},\"id\":\"e1\",\"target\":\"f\"}");

	expect_err("", "empty (expected TYPE TARGET");
	expect_err("   ", "empty (expected TYPE TARGET");
	expect_err("hist", "-e 'hist': a TARGET must follow the type 'hist'");
	expect_err("log f@exit", "unknown event '@exit' (expected @call, @return or @end)");
	expect_err("log @return", "no target before '@return'");
	expect_err("log f $arg1 if", "'if' without a condition");
	expect_err("incr,=3 f", "a setting without a name ('=3')");
	char big[DIAG_ONELINE_MAX + 16];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect_err(big, "longer than 4096 bytes");
	return CHECK_DONE();
}
