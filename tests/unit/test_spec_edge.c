/* test_spec_edge: the hostile-input edge of specs and requests. The one escaper
 * (lib/util/text: what a forged log line and a terminal escape become), the strict JSON
 * parser (lib/spec/json: NUL, invalid UTF-8, depth, trailing data, each error naming the
 * member path and the byte), the spec fields that refuse control characters, the bounded
 * custom, `"pid": []`, lifespan messages that show the value given, and the encoder that
 * keeps target text in `applied` readable by a strict reader. */
#include "check.h"
#include "spec/json.h"
#include "spec/spec.h"
#include "spec_parse.h"
#include "util/text.h"

#include <stdlib.h>

static void check_escape(const char *in, unsigned flags, const char *want)
{
	char out[256];
	size_t need = diag_text_escape(out, sizeof(out), in, strlen(in), flags);
	CHECK_EQ_STR(out, want);
	CHECK_EQ_INT(need, strlen(want));
}

static void test_escape(void)
{
	check_escape("a\nFAKE Probe (x) = 1\n\x1b[31m", 0, "a\\nFAKE Probe (x) = 1\\n\\x1b[31m");
	check_escape("tab\there\r", 0, "tab\\there\\r");
	check_escape("del\x7f nul-free \x01", 0, "del\\x7f nul-free \\x01");
	check_escape("csi \xc2\x9b" "31m", 0, "csi \\u009b31m");         /* C1 as UTF-8 */
	check_escape("bad \xff\xfe end", 0, "bad \\xff\\xfe end");          /* invalid bytes */
	check_escape("overlong \xc0\xaf", 0, "overlong \\xc0\\xaf");
	check_escape("surrogate \xed\xa0\x80", 0, "surrogate \\xed\\xa0\\x80");
	check_escape("été ☃ \\n stays", 0, "été ☃ \\n stays"); /* safe text unchanged */
	check_escape("bars\n##\n", DIAG_TEXT_KEEP_NL, "bars\n##\n");
	check_escape("bars\n\x1b", DIAG_TEXT_KEEP_NL, "bars\n\\x1b");
	/* truncation: always terminated, the needed length reported */
	char small[6];
	CHECK_EQ_INT(diag_text_escape(small, sizeof(small), "ab\ncd", 5, 0), 6);
	CHECK_EQ_STR(small, "ab\\nc");
	char *d = diag_text_escape_dup("x\x1b", 0);
	CHECK_EQ_STR(d, "x\\x1b");
	free(d);

	size_t off = 9;
	uint32_t cp = 0;
	CHECK_EQ_INT(diag_text_check("ok été", strlen("ok été"), &off, &cp), DIAG_TEXT_OK);
	CHECK_EQ_INT(diag_text_check("ab\xc2\x85", 4, &off, &cp), DIAG_TEXT_CONTROL);
	CHECK_EQ_INT(off, 2);
	CHECK_EQ_INT(cp, 0x85);
	CHECK_EQ_INT(diag_text_check("abc\xf5", 4, &off, &cp), DIAG_TEXT_BAD_UTF8);
	CHECK_EQ_INT(off, 3);

	char b[32];
	CHECK_EQ_STR(diag_text_double(1e308, b, sizeof(b)), "1e+308");
	CHECK_EQ_STR(diag_text_double(123456789.5, b, sizeof(b)), "123456789.5");
	CHECK_EQ_STR(diag_text_double(4194305, b, sizeof(b)), "4194305");
	CHECK_EQ_STR(diag_text_double(0.1, b, sizeof(b)), "0.1");
}

/* The parser's message for text, or "(parsed)". */
static const char *json_err(const char *text, size_t len)
{
	static struct diag_error err;
	diag_error_clear(&err);
	cJSON *j = diag_json_parse(text, len, &err);
	if (j) {
		cJSON_Delete(j);
		return "(parsed)";
	}
	CHECK_EQ_INT(err.code, -DIAG_E_PARSE);
	return err.msg;
}
#define JSON_ERR(lit) json_err(lit, sizeof(lit) - 1)

static void test_json_edge(void)
{
	CHECK_EQ_STR(JSON_ERR("{\"cmd\":\"remove\",\"id\":\"keep\\u0000anything\"}"),
		     "id: NUL character (\\u0000) at byte 26");
	CHECK_EQ_STR(JSON_ERR("{\"cmd\":\"remove\",\"id\":\"keep\0x\"}"), "id: NUL byte at byte 26");
	CHECK_EQ_STR(JSON_ERR("{\"a\":1}\0"), "NUL byte at byte 7");
	CHECK_EQ_STR(JSON_ERR("{\"spec\":{\"instrument\":{\"name\":\"a\xff\"}}}"),
		     "spec.instrument.name: invalid UTF-8 at byte 32");
	CHECK_EQ_STR(JSON_ERR("{\"pid\":[1,\"x\\u0000\"]}"), "pid[1]: NUL character (\\u0000) at byte 12");
	CHECK_EQ_STR(JSON_ERR("{\"custom\":{\"k\\u0000\":1}}"),
		     "custom: NUL character (\\u0000) in a member name at byte 13");
	CHECK_EQ_STR(JSON_ERR("[\xc3]"), "invalid UTF-8 at byte 1");
	CHECK_EQ_STR(JSON_ERR("{\"a\":1} x"), "trailing data after the JSON value at byte 8");
	CHECK_EQ_STR(JSON_ERR("{\"a\":1}{\"b\":2}"), "trailing data after the JSON value at byte 7");
	CHECK_EQ_STR(JSON_ERR(" {\"a\":\"\\u00e9\\\\u0000\"} \r\n"), "(parsed)"); /* an escaped backslash */
	CHECK_EQ_STR(JSON_ERR("{\"a\":"), "invalid JSON at byte 4 near ':'");

	char deep[200];
	memset(deep, '[', 64);
	memset(deep + 64, ']', 64);
	CHECK_EQ_STR(json_err(deep, 128), "(parsed)");
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	CHECK_EQ_STR(json_err(deep, 130), "nested deeper than 64 levels at byte 64");

	/* What goes out: every string and member name safe, the tree otherwise unchanged. */
	cJSON *j = cJSON_Parse("{\"ok\":\"fine\",\"k\\u001b\":[\"a\\nb\",\"\\u009b\"],\"n\":1}");
	diag_json_escape_strings(j, 0);
	char *t = cJSON_PrintUnformatted(j);
	CHECK_EQ_STR(t, "{\"ok\":\"fine\",\"k\\\\x1b\":[\"a\\\\nb\",\"\\\\u009b\"],\"n\":1}");
	free(t);
	cJSON_Delete(j);
	j = cJSON_Parse("{\"text\":\"bars\\n\\u0007\"}");
	diag_json_escape_strings(j, DIAG_TEXT_KEEP_NL);
	t = cJSON_PrintUnformatted(j);
	CHECK_EQ_STR(t, "{\"text\":\"bars\\n\\\\x07\"}");
	free(t);
	cJSON_Delete(j);
}

#define INSTR(name) "\"instrument\":{\"type\":\"log\",\"name\":\"" name "\"}"

static void test_spec_fields(void)
{
	static const struct {
		const char *spec, *want;
	} cases[] = {
		{ "{\"id\":\"n1\",\"target\":\"work\"," INSTR("a\\nFAKE Probe (x) = 1\\n\\u001b[31m") "}",
		  "spec 'n1': instrument.name: control character U+000A at byte 1 (not allowed)" },
		{ "{\"id\":\"n2\",\"target\":\"wo\\u001brk\"," INSTR("n") "}",
		  "spec 'n2': target: control character U+001B at byte 2 (not allowed)" },
		{ "{\"id\":\"n3\",\"target\":\"w\",\"condition\":\"\\u0085\"," INSTR("n") "}",
		  "spec 'n3': condition: control character U+0085 at byte 0 (not allowed)" },
		{ "{\"id\":\"n4\",\"target\":\"w\",\"instrument\":{\"type\":\"log\",\"name\":\"n\","
		  "\"custom\":{\"format\":\"{name}\\n\"}}}",
		  "spec 'n4': instrument.custom.format: control character U+000A at byte 6 (not allowed)" },
		{ "{\"id\":\"n5\",\"target\":\"w\",\"instrument\":{\"type\":\"log\",\"name\":\"n\","
		  "\"custom\":{\"a\":{\"b\":[1,\"\\t\"]}}}}",
		  "spec 'n5': instrument.custom.a.b[1]: control character U+0009 at byte 0 (not allowed)" },
		{ "{\"id\":\"n6\",\"target\":\"w\",\"instrument\":{\"type\":\"log\",\"name\":\"n\","
		  "\"custom\":{\"x\\u0001\":true}}}",
		  "spec 'n6': instrument.custom.x?: control character U+0001 at byte 1 (not allowed)" },
		{ "{\"id\":\"n7\",\"target\":\"w\"," INSTR("\\u0000") "}",
		  "instrument.name: NUL character (\\u0000) at byte 59" },
		{ "{\"id\":\"a\\u000ab\",\"target\":\"w\"," INSTR("n") "}",
		  "spec #1: id: must be 1-64 characters of A-Z a-z 0-9 _ . - (got 'a?b')" },
		{ "{\"id\":\"n8\",\"target\":\"été\"," INSTR("ünï") "}",
		  "(no error)" },
		{ "{\"id\":\"p1\",\"target\":\"w\"," INSTR("n") ",\"pid\":[]}",
		  "spec 'p1': pid: empty list (omit pid to mean every attached process)" },
		{ "{\"id\":\"p2\",\"target\":\"w\"," INSTR("n") ",\"pid\":4194305}",
		  "spec 'p2': pid: not a valid process id (got 4194305)" },
		{ "{\"id\":\"l1\",\"target\":\"w\"," INSTR("n") ",\"lifespan\":1e308}",
		  "spec 'l1': lifespan: must be at most 100000000 minutes (about 190 years; got 1e+308)" },
		{ "{\"id\":\"l2\",\"target\":\"w\"," INSTR("n") ",\"lifespan\":123456789.5}",
		  "spec 'l2': lifespan: must be at most 100000000 minutes (about 190 years; got 123456789.5)" },
		{ "{\"id\":\"l3\",\"target\":\"w\"," INSTR("n") ",\"lifespan\":1e8}",
		  "(no error)" },
		{ "{\"id\":\"g1\",\"target\":\"w\"," INSTR("n")
		  ",\"limits\":{\"max_hits_per_sec\":1234567890.25}}",
		  "spec 'g1': limits.max_hits_per_sec: must be > 0 and <= 1000000000 (got 1234567890.25)" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_EQ_STR(spec_parse_err(cases[i].spec), cases[i].want);

	/* custom as stored: 65536 bytes fit, one more does not */
	size_t pad = DIAG_SPEC_CUSTOM_MAX - 10; /* {"pad":"..."} */
	char *t = malloc(pad + 200);
	int n = snprintf(t, 200, "{\"id\":\"c1\",\"target\":\"w\",\"instrument\":{\"type\":\"log\",\"name\":\"n\",\"custom\":{\"pad\":\"");
	memset(t + n, 'x', pad);
	strcpy(t + n + pad, "\"}}}");
	CHECK_EQ_STR(spec_parse_err(t), "(no error)");
	memset(t + n, 'x', pad + 1);
	strcpy(t + n + pad + 1, "\"}}}");
	CHECK_EQ_STR(spec_parse_err(t),
		     "spec 'c1': instrument.custom: too large (65537 bytes as stored, max 65536)");
	free(t);
}

/* applied records quote the target (symbols, paths): encoded escaped, strictly readable back. */
static void test_applied_encoded_safe(void)
{
	struct diag_spec **v = spec_parse_one("{\"id\":\"w1\",\"target\":\"w\"," INSTR("n") "}", false, 0);
	if (!v)
		return;
	struct diag_applied *a = diag_spec_applied_get(v[0], "h:1", 1);
	a->state = DIAG_APPLIED_ERROR;
	snprintf(a->error, sizeof(a->error), "did you mean: ev\nFAKE\x1b[31m\xff");
	snprintf(a->instances, sizeof(a->instances), "[{\"what\":\"ev\\u001b\",\"skipped\":\"\\u009b\"}]");
	cJSON *j = diag_spec_to_json(v[0], DIAG_SPEC_JSON_APPLIED, 0);
	char *txt = cJSON_PrintUnformatted(j);
	CHECK_CONTAINS(txt, "\"error\":\"did you mean: ev\\\\nFAKE\\\\x1b[31m\\\\xff\"");
	CHECK_CONTAINS(txt, "\"instances\":[{\"what\":\"ev\\\\x1b\",\"skipped\":\"\\\\u009b\"}]");
	struct diag_spec **w = spec_parse_one(txt, false, DIAG_SPEC_KEEP_APPLIED);
	if (w) {
		CHECK_EQ_STR(w[0]->applied[0].error, "did you mean: ev\\nFAKE\\x1b[31m\\xff");
		diag_spec_free_array(w, 1);
	}
	free(txt);
	cJSON_Delete(j);
	diag_spec_free_array(v, 1);
}

/* An applied record's key (HOST:PID) is text like any other: a control character in it is
 * refused when the store is read (fuzz_spec: the encoder escaped it into a key too long to read
 * back, so the store no longer round-tripped). */
static void test_applied_key_text(void)
{
	const char *txt = "[{\"id\":\"a1\",\"target\":\"w\"," INSTR("n")
			  ",\"applied\":{\"h\\u000cx:1\":{\"state\":\"applied\"}}}]";
	struct diag_spec **v = NULL;
	struct diag_error err = { 0 };
	int n = diag_spec_parse(txt, strlen(txt), true, DIAG_SPEC_KEEP_APPLIED, &v, &err);
	CHECK_EQ_INT(n, -DIAG_E_INVALID);
	CHECK_CONTAINS(err.msg, "applied: control character U+000C at byte 1");
	if (n >= 0)
		diag_spec_free_array(v, n);
}

int main(void)
{
	test_escape();
	test_json_edge();
	test_spec_fields();
	test_applied_encoded_safe();
	test_applied_key_text();
	return CHECK_DONE();
}
