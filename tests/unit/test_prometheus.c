/* test_prometheus: the metrics page from status/list/stats documents shaped as the daemon
 * sends them: counters per incr, histograms per hist (cumulative buckets, +Inf, _sum,
 * _count), hits per process, the daemon's figures; hostile label text escaped; by_value keys
 * bounded; and Debian's `promtool check metrics` accepts the page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "export/prometheus.h"

static const char *status_json =
	"{\"ok\":true,\"pid\":1,\"targets\":[{\"pid\":41,\"threads\":2},{\"pid\":42,\"threads\":1}],"
	"\"specs\":3,\"probes\":4,\"hits\":1234,\"queue\":{\"length\":0,\"capacity\":4096,\"dropped\":7},"
	"\"governor\":{\"disables\":1,\"stopped_seconds\":0.25}}";

static const char *specs_json =
	"[{\"id\":\"reqs\",\"target\":\"f\",\"instrument\":{\"type\":\"incr\",\"name\":\"reqs\"},"
	"\"applied\":{\"vm:41\":{\"state\":\"applied\",\"hits\":10,\"dropped\":0},"
	"\"vm:42\":{\"state\":\"applied\",\"hits\":5,\"dropped\":1},"
	"\"vm:exited\":{\"state\":\"removed\",\"hits\":3,\"dropped\":0}}},"
	"{\"id\":\"lat\",\"target\":\"g\",\"instrument\":{\"type\":\"hist\",\"name\":\"lat\"},"
	"\"applied\":{\"vm:41\":{\"state\":\"applied\",\"hits\":6,\"dropped\":0}}}]";

static const char *stats_head =
	"[{\"id\":\"reqs\",\"type\":\"incr\",\"name\":\"reqs\",\"hits\":15,\"dropped\":1,"
	"\"report\":{\"count\":15,\"sum\":150.5}},"
	"{\"id\":\"lat\",\"type\":\"hist\",\"name\":\"lat\",\"hits\":6,\"dropped\":0,"
	"\"report\":{\"count\":6,\"mean\":3.5,\"unit\":\"ns\",\"buckets\":["
	"{\"lo\":1,\"hi\":2,\"count\":1},{\"lo\":2,\"hi\":4,\"count\":3},{\"lo\":4,\"hi\":8,\"count\":2}]}},"
	"{\"id\":\"keys\",\"type\":\"incr\",\"name\":\"we\\\"ird\\\\na\\nme\",\"hits\":0,\"dropped\":0,"
	"\"report\":{\"count\":150,\"overflow\":2,\"keys\":{";

static char *render(cJSON *status, cJSON *specs, cJSON *stats)
{
	char *page = NULL;
	size_t len = 0;
	CHECK_EQ_INT(diag_prom_render(status, specs, stats, "vm", &page, &len, NULL), 0);
	CHECK_EQ_INT(strlen(page), len);
	return page;
}

static int promtool_check(const char *page)
{
	/* exit 0 and not one lint message */
	FILE *p = popen("out=$(promtool check metrics 2>&1) && [ -z \"$out\" ] || { echo \"$out\" >&2; exit 1; }",
			"w");
	if (!p)
		return -1;
	fputs(page, p);
	return pclose(p);
}

int main(void)
{
	/* stats with 150 by_value keys: 100 series and one "__other__" */
	char *stats_text = malloc(65536);
	size_t off = (size_t)snprintf(stats_text, 65536, "%s", stats_head);
	for (int i = 0; i < 150; i++)
		off += (size_t)snprintf(stats_text + off, 65536 - off, "%s\"k%03d\":1", i ? "," : "", i);
	snprintf(stats_text + off, 65536 - off, "}}}]");
	cJSON *status = cJSON_Parse(status_json), *specs = cJSON_Parse(specs_json),
	      *stats = cJSON_Parse(stats_text);
	CHECK(status && specs && stats);
	char *page = render(status, specs, stats);

	CHECK_CONTAINS(page, "# TYPE diagnose_incr_total counter\n");
	CHECK_CONTAINS(page, "diagnose_incr_total{host=\"vm\",id=\"reqs\",name=\"reqs\"} 15\n");
	CHECK_CONTAINS(page, "diagnose_incr_values{host=\"vm\",id=\"reqs\",name=\"reqs\"} 150.5\n");
	CHECK_CONTAINS(page, "# TYPE diagnose_hist histogram\n");
	CHECK_CONTAINS(page, "diagnose_hist_bucket{host=\"vm\",id=\"lat\",name=\"lat\",unit=\"ns\",le=\"2\"} 1\n");
	CHECK_CONTAINS(page, "diagnose_hist_bucket{host=\"vm\",id=\"lat\",name=\"lat\",unit=\"ns\",le=\"4\"} 4\n");
	CHECK_CONTAINS(page, "diagnose_hist_bucket{host=\"vm\",id=\"lat\",name=\"lat\",unit=\"ns\",le=\"8\"} 6\n");
	CHECK_CONTAINS(page, "diagnose_hist_bucket{host=\"vm\",id=\"lat\",name=\"lat\",unit=\"ns\",le=\"+Inf\"} 6\n");
	CHECK_CONTAINS(page, "diagnose_hist_sum{host=\"vm\",id=\"lat\",name=\"lat\",unit=\"ns\"} 21\n");
	CHECK_CONTAINS(page, "diagnose_hist_count{host=\"vm\",id=\"lat\",name=\"lat\",unit=\"ns\"} 6\n");
	CHECK_CONTAINS(page, "diagnose_probe_hits_total{host=\"vm\",id=\"reqs\",name=\"reqs\",pid=\"42\"} 5\n");
	CHECK_CONTAINS(page, "diagnose_probe_dropped_total{host=\"vm\",id=\"reqs\",name=\"reqs\",pid=\"42\"} 1\n");
	CHECK(!strstr(page, "pid=\"exited\""));
	CHECK_CONTAINS(page, "diagnose_processes_traced{host=\"vm\"} 2\n");
	CHECK_CONTAINS(page, "diagnose_events_dropped_total{host=\"vm\"} 7\n");
	CHECK_CONTAINS(page, "diagnose_governor_disables_total{host=\"vm\"} 1\n");
	CHECK_CONTAINS(page, "diagnose_target_stopped_seconds_total{host=\"vm\"} 0.25\n");
	/* hostile text: the quote, backslash and newline escaped, so no line can be forged */
	CHECK_CONTAINS(page, "name=\"we\\\"ird\\\\na\\nme\"");
	/* bounded keys */
	CHECK_CONTAINS(page, "key=\"k099\"} 1\n");
	CHECK(!strstr(page, "key=\"k100\""));
	CHECK_CONTAINS(page, ",key=\"__other__\"} 52\n");
	CHECK_EQ_INT(promtool_check(page), 0);
	free(page);

	/* nothing known yet: an empty but valid page */
	page = render(NULL, NULL, NULL);
	CHECK_EQ_STR(page, "");
	free(page);

	cJSON_Delete(status);
	cJSON_Delete(specs);
	cJSON_Delete(stats);
	free(stats_text);
	return CHECK_DONE();
}
