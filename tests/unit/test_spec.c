/* test_spec: spec JSON codec and validation errors (each names spec, field and reason). */
#include "check.h"
#include "spec/spec.h"
#include "spec_parse.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static void test_seed_shape(void)
{
	const char *t = "{\"id\":\"w1\",\"target\":\"work\",\"instrument\":{\"type\":\"log\",\"name\":\"w\","
			"\"value\":\"$arg1\",\"event\":\"call\",\"custom\":{\"a\":1}},\"lifespan\":10}";
	struct diag_spec **v = spec_parse_one(t, true, 0);
	if (!v)
		return;
	struct diag_spec *s = v[0];
	CHECK_EQ_STR(s->id, "w1");
	CHECK_EQ_STR(s->target, "work");
	CHECK_EQ_STR(s->type, "log");
	CHECK_EQ_STR(s->name, "w");
	CHECK_EQ_STR(s->value, "$arg1");
	CHECK_EQ_STR(s->custom, "{\"a\":1}");
	CHECK_EQ_INT(s->event, DIAG_EVENT_CALL);
	CHECK(s->lifespan_min == 10);
	CHECK_EQ_INT(s->npids, 0);

	s->lastmodified_ns = 1795625242LL * 1000000000LL;
	struct diag_applied *a = diag_spec_applied_get(s, "h:42", 42);
	a->state = DIAG_APPLIED_ERROR;
	snprintf(a->error, sizeof(a->error), "target: no function 'x'");
	a->hits = 3;
	a->naddrs = 1;
	a->addrs[0] = 0x401136;
	cJSON *j = diag_spec_to_json(s, DIAG_SPEC_JSON_APPLIED, s->lastmodified_ns);
	char *txt = cJSON_PrintUnformatted(j);
	CHECK(strstr(txt, "\"lastmodified\":\"2026-11-25T16:47:22Z\"") != NULL);
	CHECK(strstr(txt, "\"expires_in\":600") != NULL);
	CHECK(strstr(txt, "\"addresses\":[\"0x401136\"]") != NULL);

	/* Round trip through the store's flags keeps applied. */
	struct diag_spec **w = spec_parse_one(txt, false, DIAG_SPEC_KEEP_APPLIED);
	if (w) {
		CHECK_EQ_INT(w[0]->napplied, 1);
		CHECK_EQ_STR(w[0]->applied[0].error, "target: no function 'x'");
		CHECK_EQ_INT(w[0]->applied[0].state, DIAG_APPLIED_ERROR);
		CHECK_EQ_INT(w[0]->applied[0].hits, 3);
		CHECK_EQ_INT(w[0]->applied[0].addrs[0], 0x401136);
		CHECK_EQ_INT(w[0]->lastmodified_ns, s->lastmodified_ns);
		diag_spec_free_array(w, 1);
	}
	/* Without the flag, applied is accepted and ignored. */
	w = spec_parse_one(txt, false, 0);
	if (w) {
		CHECK_EQ_INT(w[0]->napplied, 0);
		diag_spec_free_array(w, 1);
	}
	struct diag_spec *d = diag_spec_dup(s);
	CHECK(d && d->napplied == 1 && strcmp(d->target, "work") == 0);
	diag_spec_free(d);
	free(txt);
	cJSON_Delete(j);
	diag_spec_free_array(v, 1);
}

#define BASE_INSTR "\"instrument\":{\"type\":\"log\",\"name\":\"w\"}"

static void test_errors(void)
{
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w1\",\"target\":\"work\",\"instrument\":{\"type\":\"log\",\"name\":\"w\",\"event\":\"entry\"}}"),
		     "spec 'w1': instrument.event: must be one of call, return, end (got 'entry')");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w1\",\"tagret\":\"work\"," BASE_INSTR "}"),
		     "spec 'w1': unknown field 'tagret'");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w1\",\"target\":\"work\",\"instrument\":{\"type\":\"log\",\"name\":\"w\",\"colour\":1}}"),
		     "spec 'w1': unknown field 'instrument.colour'");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w1\",\"target\":\"work\"," BASE_INSTR ",\"lifespan\":\"10\"}"),
		     "spec 'w1': lifespan: must be a number of minutes or null (got string)");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w1\",\"target\":\"work\"," BASE_INSTR ",\"lifespan\":0}"),
		     "spec 'w1': lifespan: must be > 0 minutes (got 0)");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w1\"," BASE_INSTR "}"),
		     "spec 'w1': target: required string is missing");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w 1\",\"target\":\"work\"," BASE_INSTR "}"),
		     "spec #1: id: must be 1-64 characters of A-Z a-z 0-9 _ . - (got 'w 1')");
	CHECK_EQ_STR(spec_parse_err("[{\"target\":\"work\"," BASE_INSTR "},{\"target\":1," BASE_INSTR "}]"),
		     "spec #2: target: must be a string (got number)");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w1\",\"target\":\"work\"," BASE_INSTR ",\"pid\":[1,\"x\"]}"),
		     "spec 'w1': pid: must be a process id or a list of them (got string)");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"w1\",\"target\":\"work\",\"instrument\":{\"type\":\"../x\",\"name\":\"w\"}}"),
		     "spec 'w1': instrument.type: must use only letters, digits, '_' and '-' (got '../x')");
	CHECK(strncmp(spec_parse_err("{\"id\":"), "invalid JSON at byte", 20) == 0);
	char big[2200];
	snprintf(big, sizeof(big), "{\"id\":\"w1\",\"target\":\"%01100d\"," BASE_INSTR "}", 0);
	CHECK_EQ_STR(spec_parse_err(big), "spec 'w1': target: too long (1100 bytes, max 1024)");
}

static void test_pids_and_time(void)
{
	const char *t = "{\"target\":\"w\"," BASE_INSTR ",\"pid\":[10,20],\"lifespan\":0.05,"
			"\"lastmodified\":\"2026-11-25T16:47:22Z\"}";
	struct diag_spec **v = spec_parse_one(t, false, 0);
	if (v) {
		CHECK_EQ_INT(v[0]->npids, 2);
		CHECK_EQ_INT(v[0]->pids[1], 20);
		CHECK_EQ_STR(v[0]->id, "");
		CHECK_EQ_INT(diag_spec_expiry_ns(v[0]) - v[0]->lastmodified_ns, 3000000000LL);
		diag_spec_free_array(v, 1);
	}
	int64_t ns = 0;
	CHECK_EQ_INT(diag_time_parse("2026-11-25T16:47:22.5Z", &ns), 0);
	char buf[64];
	CHECK_EQ_STR(diag_time_format(ns, true, buf, sizeof(buf)), "2026-11-25T16:47:22.500000000Z");
	CHECK(diag_time_parse("2026-11-25 16:47", &ns) < 0);
}

int main(void)
{
	test_seed_shape();
	test_errors();
	test_pids_and_time();
	return CHECK_DONE();
}
