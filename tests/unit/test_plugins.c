/* test_plugins: the stock instrument plugins (log, incr, hist) through the public ABI only:
 * dlopen the built .so, create with good and bad settings, fire synthetic events, check the
 * emitted lines and the report JSON. Fails loudly when a plugin was not built (make plugins). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <diagnose/instrument.h>

#include "check.h"

#define MAX_LINES 16

struct capture {
	char *lines[MAX_LINES];
	int n;
};

static void capture_emit(void *ctx, const char *line)
{
	struct capture *c = ctx;
	if (c->n < MAX_LINES)
		c->lines[c->n++] = strdup(line);
}

static void capture_clear(struct capture *c)
{
	for (int i = 0; i < c->n; i++)
		free(c->lines[i]);
	c->n = 0;
}

static const struct diag_instrument_ops *load(const char *type)
{
	const char *dir = getenv("DIAG_BUILD_DIR");
	char path[4096];
	if (!dir) {
		fprintf(stderr, "DIAG_BUILD_DIR is not set (run through ctest)\n");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/plugins/%s.so", dir, type);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "plugin %s not built (run `make plugins`): %s\n", type, dlerror());
		exit(1);
	}
	const struct diag_instrument_ops *ops = dlsym(h, DIAG_INSTRUMENT_SYMBOL);
	if (!ops) {
		fprintf(stderr, "%s: no symbol %s\n", path, DIAG_INSTRUMENT_SYMBOL);
		exit(1);
	}
	CHECK_EQ_INT(ops->abi_version, DIAG_INSTRUMENT_ABI);
	CHECK_EQ_STR(ops->type, type);
	return ops;
}

/* create() must fail with exactly `want`. */
static void check_bad_custom(const struct diag_instrument_ops *ops, const char *custom,
			     const char *want)
{
	char err[256] = "";
	void *self = ops->create("x", custom, NULL, err, sizeof(err));
	CHECK(self == NULL);
	CHECK_EQ_STR(err, want);
	ops->destroy(self);
}

static struct diag_event ev_signed(const char *name, int64_t v, char *text, size_t len)
{
	snprintf(text, len, "%lld", (long long)v);
	struct diag_event ev = {.probe_id = "p1", .name = name, .pid = 42, .tid = 43,
				.time_ns = 1764089242123456789ull, .kind = DIAG_EVENT_RETURN};
	ev.value.kind = DIAG_VALUE_SIGNED;
	ev.value.i = v;
	ev.value.text = text;
	return ev;
}

static struct diag_event ev_string(const char *name, const char *s)
{
	struct diag_event ev = {.probe_id = "p1", .name = name, .pid = 42, .tid = 43};
	ev.value.kind = DIAG_VALUE_STRING;
	ev.value.buf = s;
	ev.value.len = strlen(s);
	ev.value.text = s;
	return ev;
}

static void fire_signed(const struct diag_instrument_ops *ops, void *self, int64_t v)
{
	char text[32];
	struct diag_event ev = ev_signed("n", v, text, sizeof(text));
	ops->fire(self, &ev);
}

static cJSON *report(const struct diag_instrument_ops *ops, void *self)
{
	char *s = ops->report(self);
	CHECK(s != NULL);
	cJSON *r = s ? cJSON_Parse(s) : NULL;
	if (s && !r)
		fprintf(stderr, "report is not JSON: %s\n", s);
	free(s);
	CHECK(cJSON_IsObject(r));
	return r;
}

static double num(const cJSON *r, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, key);
	if (!cJSON_IsNumber(v)) {
		fprintf(stderr, "report member %s is not a number\n", key);
		check_failures++;
		return -1e300;
	}
	return v->valuedouble;
}

static const char *str(const cJSON *r, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_log(void)
{
	const struct diag_instrument_ops *ops = load("log");
	check_bad_custom(ops, "{\"fmt\":\"x\"}", "custom.fmt: unknown setting (expected: format)");
	check_bad_custom(ops, "{\"format\":1}", "custom.format: must be a string");
	check_bad_custom(ops, "{\"format\":\"a {nope} b\"}",
			 "custom.format: unknown placeholder '{nope}' (expected {name}, {value}, "
			 "{pid}, {tid}, {kind}, {time}, {id})");
	check_bad_custom(ops, "{\"format\":\"a {name\"}",
			 "custom.format: unterminated placeholder at offset 2");
	check_bad_custom(ops, "[1]", "custom: must be a JSON object");
	check_bad_custom(ops, "{", "custom: invalid JSON");

	struct capture cap = {0};
	struct diag_host host = {.emit = capture_emit, .ctx = &cap};
	char err[256] = "", text[32];
	void *self = ops->create("foo", "{}", &host, err, sizeof(err));
	CHECK_EQ_STR(err, "");
	CHECK(self != NULL);
	struct diag_event ev = ev_signed("foo", 5, text, sizeof(text));
	ops->fire(self, &ev);
	ev.value.kind = DIAG_VALUE_NONE;
	ev.value.text = "";
	ops->fire(self, &ev);
	struct diag_event s = ev_string("foo", "\"hi\"");
	ops->fire(self, &s);
	CHECK_EQ_INT(cap.n, 3);
	CHECK_EQ_STR(cap.lines[0], "Probe (foo) = 5");
	CHECK_EQ_STR(cap.lines[1], "Probe (foo)");
	CHECK_EQ_STR(cap.lines[2], "Probe (foo) = \"hi\"");
	cJSON *r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 3);
	cJSON_Delete(r);
	ops->destroy(self);
	capture_clear(&cap);

	self = ops->create("foo", "{\"format\":\"{id} {name}={value} {pid}/{tid} {kind} {{x}} {time}\"}",
			   &host, err, sizeof(err));
	CHECK(self != NULL);
	ev = ev_signed("foo", -7, text, sizeof(text));
	ops->fire(self, &ev);
	CHECK_EQ_INT(cap.n, 1);
	CHECK_EQ_STR(cap.lines[0], "p1 foo=-7 42/43 return {x} 2025-11-25T16:47:22.123456789Z");
	ops->destroy(self);
	capture_clear(&cap);
	ops->destroy(NULL);
}

static void test_incr(void)
{
	const struct diag_instrument_ops *ops = load("incr");
	check_bad_custom(ops, "{\"by_value\":1}", "custom.by_value: must be true or false");
	check_bad_custom(ops, "{\"x\":true}", "custom.x: unknown setting (expected: by_value)");

	char err[256] = "";
	void *self = ops->create("n", NULL, NULL, err, sizeof(err));
	CHECK(self != NULL);
	cJSON *r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 0);
	CHECK(cJSON_GetObjectItem(r, "sum") == NULL); /* no numeric value seen */
	cJSON_Delete(r);
	for (int i = 1; i <= 3; i++)
		fire_signed(ops, self, i);
	struct diag_event s = ev_string("n", "abc");
	ops->fire(self, &s);
	r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 4);
	CHECK_EQ_INT(num(r, "sum"), 6);
	CHECK_EQ_STR(str(r, "text"), "count=4 sum=6\n");
	CHECK(cJSON_GetObjectItem(r, "keys") == NULL);
	cJSON_Delete(r);
	ops->destroy(self);

	self = ops->create("n", "{\"by_value\":true}", NULL, err, sizeof(err));
	CHECK(self != NULL);
	const char *values[] = {"b", "main\nwork\n", "b", "main\nwork\n", "b"};
	for (size_t i = 0; i < 5; i++) {
		s = ev_string("n", values[i]);
		ops->fire(self, &s);
	}
	r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 5);
	const cJSON *keys = cJSON_GetObjectItem(r, "keys");
	CHECK_EQ_INT(num(keys, "b"), 3);
	CHECK_EQ_INT(num(keys, "main\nwork\n"), 2);
	CHECK_EQ_STR(str(r, "folded"), "b 3\nmain;work 2\n");
	CHECK_EQ_INT(num(r, "overflow"), 0);
	cJSON_Delete(r);
	ops->destroy(self);

	/* A char pointer keys on its string, not on pointer and string: two copies of "abc" at
	 * different addresses are one key. */
	self = ops->create("n", "{\"by_value\":true}", NULL, err, sizeof(err));
	CHECK(self != NULL);
	const char *ptrs[] = {"0x4006f4 \"abc\"", "0x7ffd0010 \"abc\"", "0x4006f8 \"xy\""};
	for (size_t i = 0; i < 3; i++) {
		s = ev_string("n", ptrs[i]);
		ops->fire(self, &s);
	}
	r = report(ops, self);
	keys = cJSON_GetObjectItem(r, "keys");
	CHECK_EQ_INT(num(keys, "\"abc\""), 2);
	CHECK_EQ_INT(num(keys, "\"xy\""), 1);
	CHECK_EQ_INT(cJSON_GetArraySize(keys), 2);
	cJSON_Delete(r);

	/* The key table is bounded: distinct values past the limit are counted, not stored. */
	for (int i = 0; i < 10000; i++)
		fire_signed(ops, self, i);
	r = report(ops, self);
	CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(r, "keys")), 10000);
	CHECK_EQ_INT(num(r, "overflow"), 2);
	CHECK_EQ_INT(num(r, "count"), 10003);
	cJSON_Delete(r);
	ops->destroy(self);
}

static void test_hist_bars(const struct diag_instrument_ops *ops)
{
	char err[256] = "";
	void *self = ops->create("lat", "{\"unit\":\"ns\"}", NULL, err, sizeof(err));
	CHECK(self != NULL);
	for (int i = 0; i < 3; i++)
		fire_signed(ops, self, 4 + i);
	for (int i = 0; i < 19; i++)
		fire_signed(ops, self, 8 + i % 8);
	struct diag_event s = ev_string("lat", "oops");
	ops->fire(self, &s);
	cJSON *r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 22);
	CHECK_EQ_INT(num(r, "errors"), 1);
	CHECK_EQ_STR(str(r, "text"),
		     "unit: ns\n"
		     "[4, 8)                 3 |@@@@@@@@                                            |\n"
		     "[8, 16)               19 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n");
	const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "buckets"), 1);
	CHECK_EQ_INT(num(b, "lo"), 8);
	CHECK_EQ_INT(num(b, "hi"), 16);
	CHECK_EQ_INT(num(b, "count"), 19);
	cJSON_Delete(r);
	ops->destroy(self);

	/* Negative, zero, one, empty middle buckets and K suffixes, as bpftrace draws them. */
	self = ops->create("x", "{}", NULL, err, sizeof(err));
	int64_t vals[] = {-5, 0, 1, 1500, 1500};
	for (size_t i = 0; i < 5; i++)
		fire_signed(ops, self, vals[i]);
	r = report(ops, self);
	const char *text = str(r, "text");
	CHECK(text && strstr(text, "(..., 0)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@ ") == text);
	CHECK(text && strstr(text, "\n[0]                    1 |"));
	CHECK(text && strstr(text, "\n[1]                    1 |"));
	CHECK(text && strstr(text, "\n[512, 1K)              0 |                                                    |\n"));
	CHECK(text && strstr(text, "\n[1K, 2K)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "buckets"), 0), "lo")));
	CHECK_EQ_INT(num(r, "min"), -5);
	CHECK_EQ_INT(num(r, "max"), 1500);
	cJSON_Delete(r);
	ops->destroy(self);
}

static void test_hist_stats(const struct diag_instrument_ops *ops)
{
	char err[256] = "";
	void *self = ops->create("x", "{}", NULL, err, sizeof(err));
	cJSON *r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(r, "p50")));
	CHECK_EQ_STR(str(r, "text"), "");
	cJSON_Delete(r);
	for (int i = 100; i >= 1; i--)
		fire_signed(ops, self, i);
	r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 100);
	CHECK_EQ_INT(num(r, "min"), 1);
	CHECK_EQ_INT(num(r, "max"), 100);
	CHECK(num(r, "mean") == 50.5);
	CHECK_EQ_INT(num(r, "p50"), 50);
	CHECK_EQ_INT(num(r, "p90"), 90);
	CHECK_EQ_INT(num(r, "p99"), 99);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(r, "exact")));
	cJSON_Delete(r);
	ops->destroy(self);

	/* Past the reservoir, percentiles are estimates from a uniform sample. */
	self = ops->create("x", "{}", NULL, err, sizeof(err));
	for (int i = 1; i <= 150000; i++)
		fire_signed(ops, self, i);
	r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 150000);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(r, "exact")));
	double p50 = num(r, "p50"), p99 = num(r, "p99");
	if (p50 < 73500 || p50 > 76500 || p99 < 147000 || p99 > 150000) {
		fprintf(stderr, "reservoir estimates off: p50=%g (want ~75000) p99=%g (want ~148500)\n",
			p50, p99);
		check_failures++;
	}
	cJSON_Delete(r);
	ops->destroy(self);
}

static void test_hist(void)
{
	const struct diag_instrument_ops *ops = load("hist");
	check_bad_custom(ops, "{\"unit\":5}", "custom.unit: must be a string");
	check_bad_custom(ops, "{\"units\":\"ms\"}", "custom.units: unknown setting (expected: unit)");
	test_hist_bars(ops);
	test_hist_stats(ops);
}

int main(void)
{
	test_log();
	test_incr();
	test_hist();
	return CHECK_DONE();
}
