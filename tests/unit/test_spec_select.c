/* test_spec_select: the `select` member of a spec (issue 11): each error names its field
 * (select.exe, select.comm, ...) and the reason, a round trip through the store's JSON keeps
 * every member, a copy owns its own strings, and the `exited` applied state reads back. */
#include "check.h"
#include "spec/spec.h"
#include "spec_parse.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#define SPEC(extra)                                                                         \
	"{\"id\":\"s1\",\"target\":\"work\",\"instrument\":{\"type\":\"incr\",\"name\":\"g\"}" \
	extra "}"

static void test_errors(void)
{
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":\"nginx\"")),
		     "spec 's1': select: must be an object of exe, comm, unit, cgroup (got string)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{}")),
		     "spec 's1': select: empty (give exe, comm, unit or cgroup, or omit select)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"pid\":3}")),
		     "spec 's1': unknown field 'select.pid'");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"exe\":\"nginx\"}")),
		     "spec 's1': select.exe: must be an absolute path (got 'nginx')");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"exe\":\"\"}")),
		     "spec 's1': select.exe: must not be empty");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"exe\":7}")),
		     "spec 's1': select.exe: must be a string (got number)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"comm\":\"a-very-long-process-name\"}")),
		     "spec 's1': select.comm: 'a-very-long-process-name' is 24 bytes; the kernel keeps "
		     "15 of a process name, so it can never match (use 'a-very-long-pro', or select.exe)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"comm\":\"/bin/sh\"}")),
		     "spec 's1': select.comm: '/bin/sh' is a path; give the process name as pgrep -x "
		     "matches it, or use select.exe");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"unit\":\"nginx\"}")),
		     "spec 's1': select.unit: must be a systemd unit name like NAME.service (got 'nginx')");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"cgroup\":\"system.slice\"}")),
		     "spec 's1': select.cgroup: must be an absolute path (got 'system.slice')");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"comm\":\"a\\u0001b\"}")),
		     "spec 's1': select.comm: control character U+0001 at byte 1 (not allowed)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":null")), "(no error)");
	CHECK_EQ_STR(spec_parse_err(SPEC(",\"select\":{\"comm\":\"nginx\",\"exe\":null}")), "(no error)");
}

static void test_round_trip(void)
{
	const char *t = SPEC(",\"pid\":[4,5],\"select\":{\"exe\":\"/usr/sbin/nginx\",\"comm\":\"nginx\","
			     "\"unit\":\"nginx.service\",\"cgroup\":\"/system.slice/nginx.service\"}");
	struct diag_spec **v = spec_parse_one(t, false, 0);
	if (!v)
		return;
	CHECK(diag_spec_has_select(v[0]));
	CHECK_EQ_STR(v[0]->select.exe, "/usr/sbin/nginx");
	CHECK_EQ_INT((int)v[0]->npids, 2);
	char buf[256];
	CHECK_EQ_STR(diag_spec_select_text(v[0], buf, sizeof(buf)),
		     "exe=/usr/sbin/nginx comm=nginx unit=nginx.service cgroup=/system.slice/nginx.service");
	struct diag_applied *a = diag_spec_applied_get(v[0], "h:7", 7);
	a->state = DIAG_APPLIED_EXITED;
	cJSON *j = diag_spec_to_json(v[0], DIAG_SPEC_JSON_APPLIED, 0);
	char *txt = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	CHECK(strstr(txt, "\"select\":{\"exe\":\"/usr/sbin/nginx\",\"comm\":\"nginx\",\"unit\":"
			  "\"nginx.service\",\"cgroup\":\"/system.slice/nginx.service\"}"));
	CHECK(strstr(txt, "\"state\":\"exited\""));
	struct diag_spec **w = spec_parse_one(txt, false, DIAG_SPEC_KEEP_APPLIED);
	if (w) {
		CHECK_EQ_STR(w[0]->select.cgroup, "/system.slice/nginx.service");
		CHECK_EQ_STR(w[0]->select.unit, "nginx.service");
		CHECK_EQ_INT(w[0]->applied[0].state, DIAG_APPLIED_EXITED);
		struct diag_spec *d = diag_spec_dup(w[0]);
		CHECK(d && d->select.comm != w[0]->select.comm);
		CHECK_EQ_STR(d ? d->select.comm : "", "nginx");
		diag_spec_free(d);
		diag_spec_free_array(w, 1);
	}
	free(txt);
	/* no select: no member written, members NULL */
	struct diag_spec **n = spec_parse_one(SPEC(""), false, 0);
	if (n) {
		CHECK(!diag_spec_has_select(n[0]) && !n[0]->select.exe);
		j = diag_spec_to_json(n[0], 0, 0);
		char *t2 = cJSON_PrintUnformatted(j);
		CHECK(!strstr(t2, "select"));
		free(t2);
		cJSON_Delete(j);
		diag_spec_free_array(n, 1);
	}
	diag_spec_free_array(v, 1);
}

static void test_library(void)
{
	CHECK(diag_spec_path_is_library("/usr/lib/x86_64-linux-gnu/libc.so.6"));
	CHECK(diag_spec_path_is_library("/opt/x/libfoo.so"));
	CHECK(!diag_spec_path_is_library("/usr/sbin/nginx"));
	CHECK(!diag_spec_path_is_library("/opt/x.so.d/prog"));
	CHECK(!diag_spec_path_is_library("/opt/x/libsomething"));
}

int main(void)
{
	test_errors();
	test_round_trip();
	test_library();
	return CHECK_DONE();
}
