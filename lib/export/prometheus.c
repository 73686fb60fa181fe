/* export/prometheus: see prometheus.h. Metric families (all with host="..."):
 *   diagnose_incr_total{id,name}            counter  an incr's count
 *   diagnose_incr_values{id,name}              gauge    an incr's sum of values (numeric)
 *   diagnose_incr_key_total{id,name,key}    counter  an incr by_value's count per key
 *   diagnose_hist{id,name,unit}             histogram  _bucket{le}, _sum, _count
 *   diagnose_probe_hits_total{id,name,pid}  counter  hits per process (applied records)
 *   diagnose_probe_dropped_total{id,name,pid} counter
 *   diagnose_specs, diagnose_probes, diagnose_processes_traced   gauges
 *   diagnose_hits_total, diagnose_events_dropped_total           counters
 * A hist's buckets are [lo, hi) as bpftrace's: `le` is hi, so a value exactly on a power of
 * two counts in the bucket above (docs/outputs.md). */
#include "export/prometheus.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A label value as the exposition format wants it: \\, \" and \n escaped. */
static void put_label(FILE *f, const char *key, const char *value)
{
	fprintf(f, "%s=\"", key);
	for (const char *p = value ? value : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			fputc('\\', f);
		if (*p == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*p, f);
	}
	fputc('"', f);
}

static void put_number(FILE *f, double v)
{
	if (isnan(v))
		fputs("NaN", f);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", f);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.17g", v);
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

static bool num_of(const cJSON *o, const char *key, double *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(j))
		return false;
	*v = j->valuedouble;
	return true;
}

/* `NAME{host="h",id="x",name="y"` without the closing brace, so callers add labels. */
static void series_open(FILE *f, const char *metric, const char *host, const cJSON *spec)
{
	fprintf(f, "%s{", metric);
	put_label(f, "host", host);
	if (spec) {
		fputc(',', f);
		put_label(f, "id", str_of(spec, "id"));
		fputc(',', f);
		put_label(f, "name", str_of(spec, "name"));
	}
}

static void series_value(FILE *f, double v)
{
	fputs("} ", f);
	put_number(f, v);
	fputc('\n', f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Does stats hold an entry of this instrument type? (A family is written once, with all of
 * its series together, as the format requires.) */
static bool any_of_type(const cJSON *stats, const char *type)
{
	const cJSON *s;
	cJSON_ArrayForEach(s, stats)
	{
		const char *t = str_of(s, "type");
		if (t && strcmp(t, type) == 0 && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "report")))
			return true;
	}
	return false;
}

static void render_incr_keys(FILE *f, const cJSON *s, const char *host)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "report"), "keys");
	const cJSON *k;
	int n = 0;
	double other = 0;
	cJSON_ArrayForEach(k, keys)
	{
		if (!cJSON_IsNumber(k))
			continue;
		if (n++ >= DIAG_PROM_MAX_KEYS) {
			other += k->valuedouble;
			continue;
		}
		series_open(f, "diagnose_incr_key_total", host, s);
		fputc(',', f);
		put_label(f, "key", k->string);
		series_value(f, k->valuedouble);
	}
	double overflow;
	if (num_of(cJSON_GetObjectItemCaseSensitive(s, "report"), "overflow", &overflow))
		other += overflow;
	if (n > DIAG_PROM_MAX_KEYS || other > 0) {
		series_open(f, "diagnose_incr_key_total", host, s);
		fputs(",key=\"__other__\"", f);
		series_value(f, other);
	}
}

/* One series per incr whose report has member. */
static void render_incr_member(FILE *f, const cJSON *stats, const char *host, const char *metric,
			       const char *member)
{
	const cJSON *s;
	double v;
	cJSON_ArrayForEach(s, stats)
	{
		const char *t = str_of(s, "type");
		if (t && strcmp(t, "incr") == 0 &&
		    num_of(cJSON_GetObjectItemCaseSensitive(s, "report"), member, &v)) {
			series_open(f, metric, host, s);
			series_value(f, v);
		}
	}
}

static void render_incr(FILE *f, const cJSON *stats, const char *host)
{
	if (!any_of_type(stats, "incr"))
		return;
	const cJSON *s;
	family(f, "diagnose_incr_total", "counter", "Events counted by an incr probe.");
	render_incr_member(f, stats, host, "diagnose_incr_total", "count");
	family(f, "diagnose_incr_values", "gauge", "Sum of the values of an incr probe with a numeric value.");
	render_incr_member(f, stats, host, "diagnose_incr_values", "sum");
	family(f, "diagnose_incr_key_total", "counter",
	       "Events counted by an incr probe with by_value, per value (bounded).");
	cJSON_ArrayForEach(s, stats)
	{
		const char *t = str_of(s, "type");
		if (t && strcmp(t, "incr") == 0)
			render_incr_keys(f, s, host);
	}
}

static void render_hist_one(FILE *f, const cJSON *s, const char *host)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(s, "report");
	const char *unit = str_of(r, "unit");
	double count = 0, sum = 0, mean;
	num_of(r, "count", &count);
	if (!num_of(r, "sum", &sum) && num_of(r, "mean", &mean))
		sum = mean * count;
	double cum = 0;
	const cJSON *b;
	cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(r, "buckets"))
	{
		double hi, c;
		if (!num_of(b, "hi", &hi) || !num_of(b, "count", &c))
			continue;
		cum += c;
		series_open(f, "diagnose_hist_bucket", host, s);
		if (unit) {
			fputc(',', f);
			put_label(f, "unit", unit);
		}
		fputs(",le=\"", f);
		put_number(f, hi);
		fputc('"', f);
		series_value(f, cum);
	}
	const char *tail[][2] = {{"diagnose_hist_bucket", "+Inf"}, {"diagnose_hist_sum", NULL},
				 {"diagnose_hist_count", NULL}};
	for (size_t i = 0; i < 3; i++) {
		series_open(f, tail[i][0], host, s);
		if (unit) {
			fputc(',', f);
			put_label(f, "unit", unit);
		}
		if (tail[i][1])
			fprintf(f, ",le=\"%s\"", tail[i][1]);
		series_value(f, i == 1 ? sum : count);
	}
}

static void render_hist(FILE *f, const cJSON *stats, const char *host)
{
	if (!any_of_type(stats, "hist"))
		return;
	family(f, "diagnose_hist", "histogram",
	       "Values of a hist probe in log2 buckets ([lo, hi): le is hi).");
	const cJSON *s;
	cJSON_ArrayForEach(s, stats)
	{
		const char *t = str_of(s, "type");
		if (t && strcmp(t, "hist") == 0 &&
		    cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "report")))
			render_hist_one(f, s, host);
	}
}

/* hits or dropped of every applied record that names a process (HOST:PID). */
static void render_applied(FILE *f, const cJSON *specs, const char *host, const char *metric,
			   const char *member)
{
	const cJSON *spec, *rec;
	cJSON_ArrayForEach(spec, specs)
	{
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(spec, "instrument");
		cJSON_ArrayForEach(rec, cJSON_GetObjectItemCaseSensitive(spec, "applied"))
		{
			const char *colon = rec->string ? strrchr(rec->string, ':') : NULL;
			double v;
			if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
			    !num_of(rec, member, &v))
				continue;
			fprintf(f, "%s{", metric);
			put_label(f, "host", host);
			fputc(',', f);
			put_label(f, "id", str_of(spec, "id"));
			fputc(',', f);
			put_label(f, "name", str_of(in, "name"));
			fputc(',', f);
			put_label(f, "pid", colon + 1);
			series_value(f, v);
		}
	}
}

static void render_daemon(FILE *f, const cJSON *status, const char *host)
{
	static const struct {
		const char *metric, *type, *help, *member, *sub;
	} rows[] = {
		{"diagnose_specs", "gauge", "Probe specs the daemon holds.", "specs", NULL},
		{"diagnose_probes", "gauge", "Probes placed in processes.", "probes", NULL},
		{"diagnose_hits_total", "counter", "Hits of every probe.", "hits", NULL},
		{"diagnose_events_dropped_total", "counter",
		 "Events dropped because the event queue was full.", "queue", "dropped"},
		{"diagnose_governor_disables_total", "counter",
		 "Probes the overhead governor disabled in a process.", "governor", "disables"},
		{"diagnose_target_stopped_seconds_total", "counter",
		 "Time threads of targets spent stopped by the daemon.", "governor", "stopped_seconds"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const cJSON *o = rows[i].sub ? cJSON_GetObjectItemCaseSensitive(status, rows[i].member)
					     : status;
		double v;
		if (!num_of(o, rows[i].sub ? rows[i].sub : rows[i].member, &v))
			continue;
		family(f, rows[i].metric, rows[i].type, rows[i].help);
		series_open(f, rows[i].metric, host, NULL);
		series_value(f, v);
	}
	const cJSON *targets = cJSON_GetObjectItemCaseSensitive(status, "targets");
	if (cJSON_IsArray(targets)) {
		family(f, "diagnose_processes_traced", "gauge", "Processes the daemon traces.");
		series_open(f, "diagnose_processes_traced", host, NULL);
		series_value(f, cJSON_GetArraySize(targets));
	}
}

int diag_prom_render(const cJSON *status, const cJSON *specs, const cJSON *stats,
		     const char *host, char **out, size_t *len, struct diag_error *err)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f)
		return diag_error_set(err, -ENOMEM, "metrics page: out of memory");
	render_daemon(f, status, host);
	if (cJSON_IsArray(specs)) {
		family(f, "diagnose_probe_hits_total", "counter", "Hits of a probe in one process.");
		render_applied(f, specs, host, "diagnose_probe_hits_total", "hits");
		family(f, "diagnose_probe_dropped_total", "counter",
		       "Events of a probe in one process that were dropped.");
		render_applied(f, specs, host, "diagnose_probe_dropped_total", "dropped");
	}
	render_incr(f, stats, host);
	render_hist(f, stats, host);
	if (fclose(f) != 0) {
		free(buf);
		return diag_error_set(err, -ENOMEM, "metrics page: out of memory");
	}
	*out = buf;
	*len = n;
	return 0;
}
