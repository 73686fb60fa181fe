/* incr: the stock "incr" instrument. Counts events, sums numeric values and, with
 * custom.by_value, counts per distinct value text (a stack value gives flame-graph input in
 * "folded" form). Memory is bounded: at most INCR_MAX_KEYS keys of at most INCR_MAX_KEY_LEN
 * bytes; further distinct values are counted in "overflow". With custom.statsd each event is
 * also a StatsD count (statsd_sink.h). Never emits lines. */
#include <inttypes.h>
#include <stdint.h>

#include <diagnose/instrument.h>

#include "plugin_util.h"
#include "statsd_sink.h"

#define INCR_MAX_KEYS 10000
#define INCR_MAX_KEY_LEN 8192
#define INCR_TABLE_SIZE 16384 /* power of two > INCR_MAX_KEYS: probing always ends */

struct incr_key {
	char *text; /* NULL: free slot */
	uint64_t count;
};

struct incr_instrument {
	bool by_value;
	uint64_t count, numeric, errors, overflow;
	double sum;
	size_t nkeys;
	struct incr_key *table; /* INCR_TABLE_SIZE slots when by_value */
	struct statsd_sink statsd;  /* custom.statsd: each event also a StatsD count */
};

static const char *const incr_settings[] = {"by_value", "statsd", "statsd_tags", NULL};

static uint64_t incr_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* The key of a value: its text, but a char pointer (text `0x4006f4 "abc"`) by its string alone,
 * so equal strings at different addresses count together. */
static const char *incr_key_of(const struct diag_value *v)
{
	const char *t = v->text ? v->text : "";
	if (v->kind == DIAG_VALUE_STRING && t[0] == '0' && t[1] == 'x') {
		const char *q = strchr(t, ' ');
		if (q && q[1] == '"')
			return q + 1;
	}
	return t;
}

/* Count `times` occurrences of text (truncated to the key limit). */
static void incr_count_key(struct incr_instrument *c, const char *text, uint64_t times)
{
	size_t n = strnlen(text, INCR_MAX_KEY_LEN);
	size_t i = incr_hash(text, n) & (INCR_TABLE_SIZE - 1);
	for (;; i = (i + 1) & (INCR_TABLE_SIZE - 1)) {
		struct incr_key *k = &c->table[i];
		if (!k->text)
			break;
		if (strncmp(k->text, text, n) == 0 && k->text[n] == '\0') {
			k->count += times;
			return;
		}
	}
	if (c->nkeys >= INCR_MAX_KEYS || !(c->table[i].text = strndup(text, n))) {
		c->overflow += times;
		return;
	}
	c->table[i].count = times;
	c->nkeys++;
}

static void incr_destroy(void *self)
{
	struct incr_instrument *c = self;
	if (!c)
		return;
	if (c->table)
		for (size_t i = 0; i < INCR_TABLE_SIZE; i++)
			free(c->table[i].text);
	free(c->table);
	statsd_close(&c->statsd);
	free(c);
}

static void *incr_create(const char *name, const char *custom_json, const struct diag_host *host,
			 char *err, size_t errlen)
{
	(void)host;
	cJSON *custom = plugin_custom_parse(custom_json, incr_settings, err, errlen);
	if (!custom)
		return NULL;
	bool by_value = false;
	struct statsd_sink sink;
	bool ok = plugin_custom_bool(custom, "by_value", &by_value, err, errlen) &&
		  statsd_sink_open(&sink, custom, name, err, errlen);
	cJSON_Delete(custom);
	if (!ok)
		return NULL;
	struct incr_instrument *c = calloc(1, sizeof(*c));
	if (c && by_value && !(c->table = calloc(INCR_TABLE_SIZE, sizeof(*c->table)))) {
		free(c);
		c = NULL;
	}
	if (!c) {
		statsd_close(&sink);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->by_value = by_value;
	c->statsd = sink;
	return c;
}

static void incr_fire(void *self, const struct diag_event *ev)
{
	struct incr_instrument *c = self;
	uint64_t n = ev->count ? ev->count : 1; /* counted in the target: n hits, no value */
	c->count += n;
	if (plugin_value_is_numeric(&ev->value)) {
		c->numeric++;
		c->sum += plugin_value_number(&ev->value);
	} else if (ev->value.kind == DIAG_VALUE_ERROR) {
		c->errors++;
	}
	if (c->by_value)
		incr_count_key(c, incr_key_of(&ev->value), n);
	statsd_count(&c->statsd, ev->probe_id, (int)ev->pid, n);
}

/* Keys by decreasing count, then by text, for stable output. */
static int incr_key_cmp(const void *a, const void *b)
{
	const struct incr_key *x = *(const struct incr_key *const *)a;
	const struct incr_key *y = *(const struct incr_key *const *)b;
	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->text, y->text);
}

/* Folded stacks have one sample per line: frames separated by ';', never by newlines. */
static void incr_add_folded_key(struct pbuf *out, const char *text)
{
	for (const char *p = text; *p; p++) {
		char ch = *p == '\n' ? ';' : *p;
		if (*p == '\n' && (p[1] == '\0'))
			continue;
		pbuf_addn(out, &ch, 1);
	}
}

static bool incr_report_keys(const struct incr_instrument *c, cJSON *r, struct pbuf *text)
{
	const struct incr_key **keys = malloc((c->nkeys ? c->nkeys : 1) * sizeof(*keys));
	if (!keys)
		return false;
	size_t n = 0;
	for (size_t i = 0; i < INCR_TABLE_SIZE; i++)
		if (c->table[i].text)
			keys[n++] = &c->table[i];
	qsort(keys, n, sizeof(*keys), incr_key_cmp);
	cJSON *obj = cJSON_AddObjectToObject(r, "keys");
	struct pbuf folded = {0};
	for (size_t i = 0; i < n && obj; i++) {
		cJSON_AddNumberToObject(obj, keys[i]->text, (double)keys[i]->count);
		incr_add_folded_key(&folded, keys[i]->text);
		pbuf_addf(&folded, " %" PRIu64 "\n", keys[i]->count);
		pbuf_addf(text, "%12" PRIu64 "  %s\n", keys[i]->count, keys[i]->text);
	}
	free(keys);
	bool ok = obj && pbuf_str(&folded) && cJSON_AddStringToObject(r, "folded", pbuf_str(&folded)) &&
		  cJSON_AddNumberToObject(r, "overflow", (double)c->overflow);
	pbuf_free(&folded);
	return ok;
}

static char *incr_report(void *self)
{
	struct incr_instrument *c = self;
	cJSON *r = cJSON_CreateObject();
	statsd_report(&c->statsd, r);
	struct pbuf text = {0};
	char num[64];
	if (!r)
		return NULL;
	cJSON_AddNumberToObject(r, "count", (double)c->count);
	pbuf_addf(&text, "count=%" PRIu64, c->count);
	if (c->numeric) {
		cJSON_AddNumberToObject(r, "sum", c->sum);
		plugin_format_number(num, sizeof(num), c->sum);
		pbuf_addf(&text, " sum=%s", num);
	}
	if (c->errors) {
		cJSON_AddNumberToObject(r, "errors", (double)c->errors);
		pbuf_addf(&text, " errors=%" PRIu64, c->errors);
	}
	pbuf_add(&text, "\n");
	bool ok = !c->by_value || incr_report_keys(c, r, &text);
	if (c->overflow)
		pbuf_addf(&text, "%12" PRIu64 "  (other values: key limit %d reached)\n", c->overflow,
			  INCR_MAX_KEYS);
	return plugin_report_finish_text(r, &text, ok);
}

static void incr_idle(void *self)
{
	struct incr_instrument *c = self;
	statsd_idle(&c->statsd);
}

PLUGIN_EXPORT const struct diag_instrument_ops diag_instrument = {
	.abi_version = DIAG_INSTRUMENT_ABI,
	.type = "incr",
	.create = incr_create,
	.fire = incr_fire,
	.report = incr_report,
	.destroy = incr_destroy,
	.idle = incr_idle,
	.flags = DIAG_INSTRUMENT_COUNTS, /* fire() takes ev->count */
};
