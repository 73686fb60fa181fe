/* test_spec_limits: the governor's `limits` member of a spec (validation errors name the field,
 * round trip through the store's JSON) and the `disabled` applied state. */
#include "check.h"
#include "spec/spec.h"
#include "spec_parse.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#define SPEC(extra)                                                                         \
	"{\"id\":\"g1\",\"target\":\"work\",\"instrument\":{\"type\":\"incr\",\"name\":\"g\"}" \
	extra "}"

static void test_errors(void)
{
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"limits\":5")), "spec 'g1': limits: must be an object (got number)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"limits\":{\"max_hits\":5}")),
		     "spec 'g1': unknown field 'limits.max_hits'");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"limits\":{\"max_hits_per_sec\":\"5\"}")),
		     "spec 'g1': limits.max_hits_per_sec: must be a number (got string)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"limits\":{\"max_hits_per_sec\":0}")),
		     "spec 'g1': limits.max_hits_per_sec: must be > 0 and <= 1000000000 (got 0)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"limits\":{\"max_stopped_ms_per_sec\":-1}")),
		     "spec 'g1': limits.max_stopped_ms_per_sec: must be > 0 and <= 1000000 (got -1)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"limits\":{\"max_stopped_ms_per_sec\":2e6}")),
		     "spec 'g1': limits.max_stopped_ms_per_sec: must be > 0 and <= 1000000 (got 2e+06)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"limits\":null")), "(no error)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"limits\":{}")), "(no error)");
}

static void test_round_trip(void)
{
	const char *t = SPEC(",\"limits\":{\"max_hits_per_sec\":10000,\"max_stopped_ms_per_sec\":2.5}");
	struct diag_spec **v = spec_parse_one(t, false, 0);
	if (!v)
		return;
	CHECK(v[0]->max_hits_per_sec == 10000);
	CHECK(v[0]->max_stopped_ms_per_sec == 2.5);
	struct diag_applied *a = diag_spec_applied_get(v[0], "h:7", 7);
	a->state = DIAG_APPLIED_DISABLED;
	snprintf(a->error, sizeof(a->error), "disabled by the governor: x");
	cJSON *j = diag_spec_to_json(v[0], DIAG_SPEC_JSON_APPLIED, 0);
	char *txt = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	CHECK(strstr(txt, "\"limits\":{\"max_hits_per_sec\":10000,\"max_stopped_ms_per_sec\":2.5}"));
	CHECK(strstr(txt, "\"state\":\"disabled\""));
	struct diag_spec **w = spec_parse_one(txt, false, DIAG_SPEC_KEEP_APPLIED);
	if (w) {
		CHECK(w[0]->max_hits_per_sec == 10000);
		CHECK(w[0]->max_stopped_ms_per_sec == 2.5);
		CHECK_EQ_INT(w[0]->applied[0].state, DIAG_APPLIED_DISABLED);
		CHECK_EQ_STR(w[0]->applied[0].error, "disabled by the governor: x");
		diag_spec_free_array(w, 1);
	}
	/* No limits: no member written. */
	v[0]->max_hits_per_sec = v[0]->max_stopped_ms_per_sec = 0;
	j = diag_spec_to_json(v[0], 0, 0);
	char *txt2 = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	CHECK(!strstr(txt2, "limits"));
	free(txt2);
	free(txt);
	diag_spec_free_array(v, 1);
	CHECK_EQ_STR(diag_applied_state_name(DIAG_APPLIED_DISABLED), "disabled");
}

int main(void)
{
	test_errors();
	test_round_trip();
	return CHECK_DONE();
}
