/* test_spec_hosts: the spec's `hosts` selector (issue 12): a name or glob or a list of them,
 * kept through the codec and dup, matched with fnmatch; bad values refused naming the field. */
#include "check.h"
#include "spec/spec.h"
#include "spec_parse.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#define BASE "\"target\":\"work\",\"instrument\":{\"type\":\"incr\",\"name\":\"n\"}"

static void test_round_trip(void)
{
	struct diag_spec **v = spec_parse_one("{\"id\":\"h1\"," BASE ",\"hosts\":[\"web-*\",\"db-?\"]}", false, 0);
	if (!v)
		return;
	struct diag_spec *s = v[0];
	CHECK_EQ_INT(s->nhosts, 2);
	CHECK(diag_spec_selects_host(s, "web-1"));
	CHECK(diag_spec_selects_host(s, "db-2"));
	CHECK(!diag_spec_selects_host(s, "db-12"));
	CHECK(!diag_spec_selects_host(s, "mail"));
	cJSON *j = diag_spec_to_json(s, 0, 0);
	char *txt = cJSON_PrintUnformatted(j);
	CHECK(strstr(txt, "\"hosts\":[\"web-*\",\"db-?\"]") != NULL);
	free(txt);
	cJSON_Delete(j);
	struct diag_spec *d = diag_spec_dup(s);
	CHECK(d && d->nhosts == 2 && d->hosts[1] != s->hosts[1] && !strcmp(d->hosts[1], "db-?"));
	diag_spec_free(d);
	diag_spec_free_array(v, 1);

	v = spec_parse_one("{\"id\":\"h2\"," BASE ",\"hosts\":\"web-1\"}", false, 0);
	if (v) {
		CHECK(diag_spec_selects_host(v[0], "web-1") && !diag_spec_selects_host(v[0], "web-2"));
		diag_spec_free_array(v, 1);
	}
	v = spec_parse_one("{\"id\":\"h3\"," BASE "}", false, 0);
	if (v) { /* no hosts: every host */
		CHECK(diag_spec_selects_host(v[0], "anything"));
		cJSON *k = diag_spec_to_json(v[0], 0, 0);
		CHECK(!cJSON_GetObjectItemCaseSensitive(k, "hosts"));
		cJSON_Delete(k);
		diag_spec_free_array(v, 1);
	}
}

static void test_errors(void)
{
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"h1\"," BASE ",\"hosts\":[]}"),
		     "spec 'h1': hosts: empty list (omit hosts to mean every host)");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"h1\"," BASE ",\"hosts\":[\"a:b\"]}"),
		     "spec 'h1': hosts: 'a:b': only A-Z a-z 0-9 . _ - and the glob characters * ? [ ] ! are allowed");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"h1\"," BASE ",\"hosts\":[1]}"),
		     "spec 'h1': hosts: must be a host name or glob, or a list of them (got number)");
	CHECK_EQ_STR(spec_parse_err("{\"id\":\"h1\"," BASE ",\"hosts\":[\"\"]}"),
		     "spec 'h1': hosts: each must be 1-255 bytes (got 0)");
	char big[4096];
	int at = snprintf(big, sizeof(big), "{\"id\":\"h1\"," BASE ",\"hosts\":[");
	for (int i = 0; i < 65; i++)
		at += snprintf(big + at, sizeof(big) - (size_t)at, "%s\"h%d\"", i ? "," : "", i);
	snprintf(big + at, sizeof(big) - (size_t)at, "]}");
	CHECK_EQ_STR(spec_parse_err(big), "spec 'h1': hosts: too many names (65, max 64)");
	CHECK(diag_spec_host_valid("web-1.example"));
	CHECK(!diag_spec_host_valid("web:1"));
	CHECK(!diag_spec_host_valid(""));
	CHECK(!diag_spec_host_valid("web-*"));
}

int main(void)
{
	test_round_trip();
	test_errors();
	return CHECK_DONE();
}
