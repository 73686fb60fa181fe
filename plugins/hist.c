/* hist: the stock "hist" instrument. A log2 histogram of numeric values drawn like bpftrace,
 * with count/min/max/mean and p50/p90/p99. Negative values share one bucket, "(..., 0)", as in
 * bpftrace. Percentiles are exact (nearest rank) while at most HIST_RESERVOIR samples were
 * seen; after that they come from a uniform reservoir sample of that size (Algorithm R) and the
 * report says "exact": false. Non-numeric values (and NaN/infinity) are counted as "errors".
 * Never emits lines; memory is bounded by the reservoir. */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>

#include <diagnose/instrument.h>

#include "plugin_util.h"
#include "statsd_sink.h"

#define HIST_RESERVOIR 100000
#define HIST_BUCKETS 66 /* (..., 0), [0], [1], then [2^k, 2^(k+1)) for k = 1..63 */
#define HIST_BAR_WIDTH 52

struct hist_instrument {
	char *unit;
	uint64_t buckets[HIST_BUCKETS];
	uint64_t count, errors;
	double min, max, sum;
	double *samples; /* reservoir, grown on demand up to HIST_RESERVOIR */
	size_t nsamples, cap;
	bool sorted;
	uint64_t rng; /* xorshift64 state for reservoir replacement */
	struct statsd_sink statsd;  /* custom.statsd: each value also a StatsD `|h` line */
};

static const char *const hist_settings[] = {"unit", "statsd", "statsd_tags", NULL};

static size_t hist_bucket_of_u64(uint64_t u)
{
	if (u == 0)
		return 1;
	return (size_t)(63 - __builtin_clzll(u)) + 2;
}

static size_t hist_bucket_of(const struct diag_value *v, double d)
{
	switch (v->kind) {
	case DIAG_VALUE_SIGNED:
		return v->i < 0 ? 0 : hist_bucket_of_u64((uint64_t)v->i);
	case DIAG_VALUE_UNSIGNED:
		return hist_bucket_of_u64(v->u);
	default: /* float: the bucket of its integer part */
		if (d < 0)
			return 0;
		if (d >= 18446744073709551616.0)
			return HIST_BUCKETS - 1;
		return hist_bucket_of_u64((uint64_t)d);
	}
}

static uint64_t hist_random(struct hist_instrument *h)
{
	uint64_t x = h->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return h->rng = x;
}

static void hist_keep_sample(struct hist_instrument *h, double d)
{
	if (h->nsamples < HIST_RESERVOIR) {
		if (h->nsamples == h->cap) {
			size_t cap = h->cap ? h->cap * 2 : 1024;
			if (cap > HIST_RESERVOIR)
				cap = HIST_RESERVOIR;
			double *s = realloc(h->samples, cap * sizeof(*s));
			if (!s)
				return; /* percentiles then cover fewer samples; counts stay exact */
			h->samples = s;
			h->cap = cap;
		}
		h->samples[h->nsamples++] = d;
	} else {
		uint64_t j = hist_random(h) % h->count;
		if (j < HIST_RESERVOIR)
			h->samples[j] = d;
	}
	h->sorted = false;
}

static void hist_destroy(void *self)
{
	struct hist_instrument *h = self;
	if (!h)
		return;
	free(h->unit);
	free(h->samples);
	statsd_close(&h->statsd);
	free(h);
}

static void *hist_create(const char *name, const char *custom_json, const struct diag_host *host,
			 char *err, size_t errlen)
{
	(void)host;
	cJSON *custom = plugin_custom_parse(custom_json, hist_settings, err, errlen);
	if (!custom)
		return NULL;
	const char *unit = NULL;
	struct hist_instrument *h = NULL;
	struct statsd_sink sink;
	if (!plugin_custom_string(custom, "unit", &unit, err, errlen) ||
	    !statsd_sink_open(&sink, custom, name, err, errlen))
		goto out;
	h = calloc(1, sizeof(*h));
	if (h)
		h->statsd = sink;
	else
		statsd_close(&sink);
	if (!h || (unit && !(h->unit = strdup(unit)))) {
		snprintf(err, errlen, "out of memory");
		hist_destroy(h);
		h = NULL;
		goto out;
	}
	/* Any odd non-zero seed works; the address varies between instances. */
	h->rng = ((uint64_t)(uintptr_t)h * 0x9e3779b97f4a7c15ull) | 1;
out:
	cJSON_Delete(custom);
	return h;
}

static void hist_fire(void *self, const struct diag_event *ev)
{
	struct hist_instrument *h = self;
	double d = plugin_value_number(&ev->value);
	if (!plugin_value_is_numeric(&ev->value) || !isfinite(d)) {
		h->errors++;
		return;
	}
	h->buckets[hist_bucket_of(&ev->value, d)]++;
	statsd_value(&h->statsd, d, ev->probe_id, (int)ev->pid);
	if (h->count == 0 || d < h->min)
		h->min = d;
	if (h->count == 0 || d > h->max)
		h->max = d;
	h->sum += d;
	h->count++;
	hist_keep_sample(h, d);
}

static int hist_double_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the (sorted) reservoir. */
static double hist_percentile(const struct hist_instrument *h, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)h->nsamples);
	return h->samples[rank ? rank - 1 : 0];
}

/* bpftrace's bound label: 1, 2, 4 ... 512, 1K, 2K ... with K/M/G/T/P/E suffixes. */
static void hist_bound_label(char *buf, size_t len, unsigned power)
{
	static const char suffix[] = " KMGTPE";
	unsigned s = power / 10 < 6 ? power / 10 : 6;
	power -= s * 10;
	if (s)
		snprintf(buf, len, "%llu%c", 1ull << power, suffix[s]);
	else
		snprintf(buf, len, "%llu", 1ull << power);
}

static void hist_bucket_label(char *buf, size_t len, size_t i)
{
	char lo[24], hi[24];
	if (i == 0) {
		snprintf(buf, len, "(..., 0)");
	} else if (i == 1) {
		snprintf(buf, len, "[0]");
	} else if (i == 2) {
		snprintf(buf, len, "[1]");
	} else {
		hist_bound_label(lo, sizeof(lo), (unsigned)(i - 2));
		hist_bound_label(hi, sizeof(hi), (unsigned)(i - 1));
		snprintf(buf, len, "[%s, %s)", lo, hi);
	}
}

static cJSON *hist_bucket_json(size_t i, uint64_t count)
{
	cJSON *b = cJSON_CreateObject();
	if (!b)
		return NULL;
	if (i == 0)
		cJSON_AddNullToObject(b, "lo");
	else
		cJSON_AddNumberToObject(b, "lo", i == 1 ? 0 : ldexp(1, (int)i - 2));
	cJSON_AddNumberToObject(b, "hi", i == 0 ? 0 : ldexp(1, (int)i - 1));
	cJSON_AddNumberToObject(b, "count", (double)count);
	return b;
}

/* Buckets from the first to the last non-empty one, as JSON and as bpftrace bars. */
static bool hist_report_buckets(const struct hist_instrument *h, cJSON *r, struct pbuf *text)
{
	cJSON *arr = cJSON_AddArrayToObject(r, "buckets");
	size_t first = HIST_BUCKETS, last = 0;
	uint64_t top = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		if (!h->buckets[i])
			continue;
		if (first == HIST_BUCKETS)
			first = i;
		last = i;
		if (h->buckets[i] > top)
			top = h->buckets[i];
	}
	if (!arr)
		return false;
	for (size_t i = first; i <= last && i < HIST_BUCKETS; i++) {
		char label[64], bar[HIST_BAR_WIDTH + 1];
		int width = (int)((double)h->buckets[i] / (double)top * HIST_BAR_WIDTH);
		memset(bar, '@', (size_t)width);
		bar[width] = '\0';
		hist_bucket_label(label, sizeof(label), i);
		pbuf_addf(text, "%-16s%8" PRIu64 " |%-*s|\n", label, h->buckets[i], HIST_BAR_WIDTH, bar);
		cJSON *b = hist_bucket_json(i, h->buckets[i]);
		if (!b)
			return false;
		cJSON_AddItemToArray(arr, b);
	}
	return true;
}

static void hist_add_stat(cJSON *r, const char *key, bool have, double v)
{
	if (have)
		cJSON_AddNumberToObject(r, key, v);
	else
		cJSON_AddNullToObject(r, key);
}

static char *hist_report(void *self)
{
	struct hist_instrument *h = self;
	cJSON *r = cJSON_CreateObject();
	struct pbuf text = {0};
	if (!r)
		return NULL;
	if (!h->sorted && h->nsamples) {
		/* Sorting permutes the reservoir, which keeps later replacement uniform. */
		qsort(h->samples, h->nsamples, sizeof(*h->samples), hist_double_cmp);
		h->sorted = true;
	}
	bool have = h->count > 0, pct = h->nsamples > 0;
	cJSON_AddNumberToObject(r, "count", (double)h->count);
	statsd_report(&h->statsd, r);
	hist_add_stat(r, "min", have, h->min);
	hist_add_stat(r, "max", have, h->max);
	hist_add_stat(r, "mean", have, have ? h->sum / (double)h->count : 0);
	hist_add_stat(r, "p50", pct, pct ? hist_percentile(h, 50) : 0);
	hist_add_stat(r, "p90", pct, pct ? hist_percentile(h, 90) : 0);
	hist_add_stat(r, "p99", pct, pct ? hist_percentile(h, 99) : 0);
	cJSON_AddBoolToObject(r, "exact", h->nsamples == h->count);
	cJSON_AddNumberToObject(r, "errors", (double)h->errors);
	if (h->unit) {
		cJSON_AddStringToObject(r, "unit", h->unit);
		pbuf_addf(&text, "unit: %s\n", h->unit);
	}
	return plugin_report_finish_text(r, &text, hist_report_buckets(h, r, &text));
}

static void hist_idle(void *self)
{
	struct hist_instrument *h = self;
	statsd_idle(&h->statsd);
}

PLUGIN_EXPORT const struct diag_instrument_ops diag_instrument = {
	.abi_version = DIAG_INSTRUMENT_ABI,
	.type = "hist",
	.create = hist_create,
	.fire = hist_fire,
	.report = hist_report,
	.destroy = hist_destroy,
	.idle = hist_idle,
};
