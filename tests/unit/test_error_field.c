/* test_error_field: an error about a spec field names it in err->field, and its message reads
 * "FIELD: why" (lib/util/error.h), at every layer: the error helpers, the expression compiler
 * (value vs condition), the spec codec and the engine's probe_add against a real fixture (bad
 * target, bad value, bad condition). Nobody reads the field back from the message's words. */
#include <cjson/cJSON.h>
#include <string.h>

#include "check.h"
#include "fixture_proc.h"
#include "engine/engine.h"
#include "expr/expr.h"
#include "spec/spec.h"
#include "util/error.h"

static void test_helpers(void)
{
	struct diag_error e = {0};
	CHECK_EQ_INT(diag_error_set_field(&e, "condition", -DIAG_E_PARSE, "condition: bad %d", 1),
		     -DIAG_E_PARSE);
	CHECK_EQ_STR(e.field, "condition");
	CHECK_EQ_STR(e.msg, "condition: bad 1");
	/* the innermost field wins: naming another one changes nothing */
	CHECK_EQ_INT(diag_error_lead_field(&e, "target"), -DIAG_E_PARSE);
	CHECK_EQ_STR(e.field, "condition");
	CHECK_EQ_STR(e.msg, "condition: bad 1");
	/* an error that names no field: named, and its message composed from the field */
	diag_error_set(&e, -ENOENT, "no such thing");
	CHECK_EQ_STR(e.field, "");
	CHECK_EQ_INT(diag_error_lead_field(&e, "target"), -ENOENT);
	CHECK_EQ_STR(e.field, "target");
	CHECK_EQ_STR(e.msg, "target: no such thing");
	CHECK_EQ_INT(diag_error_lead_field(NULL, "target"), 0);
}

static void test_expr(void)
{
	struct diag_expr_scope sc = {.elf_path = NULL};
	struct diag_expr *x = NULL;
	struct diag_error e = {0};
	CHECK(diag_expr_compile("$arg1 +", &sc, &x, &e) < 0);
	CHECK_EQ_STR(e.field, "value");
	CHECK_EQ_STR(e.msg, "value: syntax error at 1:8: unexpected end of expression");
	sc.field = "condition";
	CHECK(diag_expr_compile("$nosuch == 1", &sc, &x, &e) < 0);
	CHECK_EQ_STR(e.field, "condition");
	CHECK(strncmp(e.msg, "condition: unknown name '$nosuch' at 1:1", 40) == 0);
	diag_expr_free(x);
}

static int spec_error(const char *json, struct diag_error *e)
{
	cJSON *j = cJSON_Parse(json);
	struct diag_spec *s = NULL;
	int r = diag_spec_from_json(j, 0, "spec", &s, e);
	cJSON_Delete(j);
	diag_spec_free(s);
	return r;
}

static void test_spec(void)
{
	struct diag_error e = {0};
	CHECK(spec_error("{\"id\":\"a\",\"instrument\":{\"type\":\"log\",\"name\":\"n\"}}", &e) < 0);
	CHECK_EQ_STR(e.field, "target");
	CHECK_EQ_STR(e.msg, "spec 'a': target: required string is missing");
	CHECK(spec_error("{\"id\":\"b\",\"target\":\"f\",\"condition\":\"x\\n\","
			 "\"instrument\":{\"type\":\"log\",\"name\":\"n\"}}", &e) < 0);
	CHECK_EQ_STR(e.field, "condition");
	CHECK_EQ_STR(e.msg, "spec 'b': condition: control character U+000A at byte 1 (not allowed)");
	CHECK(spec_error("{\"id\":\"c\",\"target\":\"f\",\"instrument\":{\"type\":\"log\",\"name\":\"n\","
			 "\"event\":\"later\"}}", &e) < 0);
	CHECK_EQ_STR(e.field, "instrument.event");
	CHECK(spec_error("{\"id\":\"d\",\"target\":\"f\",\"colour\":1,"
			 "\"instrument\":{\"type\":\"log\",\"name\":\"n\"}}", &e) < 0);
	CHECK_EQ_STR(e.field, "colour");
	CHECK_EQ_STR(e.msg, "spec 'd': unknown field 'colour'");
}

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	(void)ctx;
	(void)h;
}

static void test_engine(void)
{
	struct diag_engine_callbacks cb = {.on_hit = on_hit};
	struct diag_engine *eng = NULL;
	CHECK_EQ_INT(diag_engine_new(&cb, &eng), 0);
	struct fixture f;
	char *argv[] = {"work", "1", "10", NULL};
	char line[128];
	CHECK(fixture_start(&f, fixture_path("work", "O2", "pie"), argv) == 0);
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	struct diag_error e = {0};
	CHECK_EQ_INT(diag_engine_attach(eng, f.pid, &e), 0);
	struct diag_probe_def def = {.target = "wrok", .event = DIAG_EVENT_CALL, .cookie = (void *)1};
	CHECK(diag_engine_probe_add(eng, f.pid, &def, &e) < 0);
	CHECK_EQ_STR(e.field, "target");
	CHECK(strncmp(e.msg, "target: ", 8) == 0);
	def.target = "work";
	def.value = "$arg9";
	CHECK(diag_engine_probe_add(eng, f.pid, &def, &e) < 0);
	CHECK_EQ_STR(e.field, "value");
	CHECK(strncmp(e.msg, "value: ", 7) == 0);
	def.value = "$arg1";
	def.condition = "$arg1 >";
	CHECK(diag_engine_probe_add(eng, f.pid, &def, &e) < 0);
	CHECK_EQ_STR(e.field, "condition");
	CHECK_EQ_STR(e.msg, "condition: syntax error at 1:8: unexpected end of expression");
	diag_engine_free(eng);
	fixture_go(&f);
	fixture_reap(&f);
}

int main(void)
{
	test_helpers();
	test_expr();
	test_spec();
	test_engine();
	return CHECK_DONE();
}
