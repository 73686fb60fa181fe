/* test_plugins: the stock instrument plugins (log, incr, hist) through the public ABI only:
 * dlopen the built .so, create with good and bad settings, fire synthetic events, check the
 * emitted lines and the report JSON. Fails loudly when a plugin was not built (make plugins). */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
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
	check_bad_custom(ops, "{\"fmt\":\"x\"}", "custom.fmt: unknown setting (expected: format, file, max_bytes, keep, journal, journal_rate)");
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
	check_bad_custom(ops, "{\"x\":true}", "custom.x: unknown setting (expected: by_value, statsd, statsd_tags)");

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
	/* hits counted in the target arrive as one event of count N, with no value (ABI 3) */
	CHECK(ops->abi_version >= 3 && (ops->flags & DIAG_INSTRUMENT_COUNTS));
	struct diag_event counted = { .probe_id = "p", .name = "n", .pid = 1, .count = 1000000,
				      .value = { .kind = DIAG_VALUE_NONE, .text = "" } };
	ops->fire(self, &counted);
	r = report(ops, self);
	CHECK_EQ_INT(num(r, "count"), 1000004);
	CHECK_EQ_INT(num(r, "sum"), 6);
	cJSON_Delete(r);
	ops->destroy(self);
	CHECK(!(load("hist")->flags & DIAG_INSTRUMENT_COUNTS)); /* a value per hit: never counts */
	CHECK(!(load("log")->flags & DIAG_INSTRUMENT_COUNTS));

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
	check_bad_custom(ops, "{\"units\":\"ms\"}", "custom.units: unknown setting (expected: unit, statsd, statsd_tags)");
	test_hist_bars(ops);
	test_hist_stats(ops);
}

/* A UDP receiver on loopback: its port, its fd. */
static int udp_receiver(int *port)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	      getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	int big = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Every datagram waiting on fd, concatenated into out (lines of the StatsD protocol). */
static size_t udp_drain(int fd, char *out, size_t cap, size_t *datagrams)
{
	size_t n = 0;
	*datagrams = 0;
	for (;;) {
		ssize_t r = recv(fd, out + n, cap - n - 1, MSG_DONTWAIT);
		if (r <= 0)
			break;
		CHECK(r <= 1432);
		CHECK(out[n + (size_t)r - 1] != '\n'); /* lines are separated, not terminated */
		n += (size_t)r;
		out[n++] = '\n';
		(*datagrams)++;
	}
	out[n] = '\0';
	return n;
}

/* custom.statsd: counts summed, values one `|h` line each, DogStatsD tags, datagrams within
 * one frame, bad targets refused with the field, and a receiver that is gone costs nothing but
 * counted drops. */
static void test_statsd(void)
{
	const struct diag_instrument_ops *incr = load("incr"), *hist = load("hist");
	int port, fd = udp_receiver(&port);
	char custom[128], err[256] = "";
	snprintf(custom, sizeof(custom), "{\"statsd\":\"127.0.0.1:%d\"}", port);
	void *c = incr->create("req:s|x", custom, NULL, err, sizeof(err));
	CHECK(c != NULL);
	for (int i = 0; i < 5000; i++)
		fire_signed(incr, c, i);
	cJSON *r = report(incr, c); /* a report flushes what is held */
	CHECK_EQ_INT(num(cJSON_GetObjectItem(r, "statsd"), "dropped"), 0);
	cJSON_Delete(r);
	static char buf[1 << 20];
	size_t dg;
	udp_drain(fd, buf, sizeof(buf), &dg);
	long total = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		long v;
		CHECK(sscanf(line, "req_s_x:%ld|c", &v) == 1); /* the name made safe for the protocol */
		total += v;
	}
	CHECK_EQ_INT(total, 5000);
	incr->destroy(c);

	snprintf(custom, sizeof(custom), "{\"statsd\":\"127.0.0.1:%d\",\"statsd_tags\":true}", port);
	void *h = hist->create("lat", custom, NULL, err, sizeof(err));
	CHECK(h != NULL);
	for (int i = 0; i < 300; i++)
		fire_signed(hist, h, i);
	hist->destroy(h); /* destroy flushes too */
	udp_drain(fd, buf, sizeof(buf), &dg);
	CHECK(dg >= 2); /* 300 tagged lines do not fit one datagram */
	int lines = 0;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		int v, pid;
		CHECK(sscanf(line, "lat:%d|h|#probe:p1,pid:%d", &v, &pid) == 2 && v == lines && pid == 42);
		lines++;
	}
	CHECK_EQ_INT(lines, 300);

	check_bad_custom(incr, "{\"statsd\":\"localhost:8125\"}",
			 "custom.statsd: 'localhost' is not an IP address (a name would be resolved on the daemon's event path; give the address)");
	check_bad_custom(incr, "{\"statsd\":\"127.0.0.1\"}",
			 "custom.statsd: '127.0.0.1' must be ADDR:PORT (127.0.0.1:8125, [::1]:8125)");
	check_bad_custom(hist, "{\"statsd\":8125}", "custom.statsd: must be a string ADDR:PORT");
	check_bad_custom(hist, "{\"statsd\":\"[::1]:8125\",\"statsd_tags\":1}",
			 "custom.statsd_tags: must be true or false");

	/* nobody listens any more: events keep counting, datagrams are dropped, never waited on */
	close(fd);
	snprintf(custom, sizeof(custom), "{\"statsd\":\"127.0.0.1:%d\"}", port);
	c = incr->create("gone", custom, NULL, err, sizeof(err));
	CHECK(c != NULL);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 1000; i++)
			fire_signed(incr, c, i);
		r = report(incr, c);
		CHECK_EQ_INT(num(r, "count"), 1000 * (round + 1));
		cJSON_Delete(r);
	}
	r = report(incr, c);
	CHECK(num(cJSON_GetObjectItem(r, "statsd"), "datagrams") + num(cJSON_GetObjectItem(r, "statsd"), "dropped") >= 3);
	cJSON_Delete(r);
	incr->destroy(c);
}

/* custom.file: JSON lines rotated by size under load, no event lost or split: every line of
 * every file parses, and the values run 0..N-1 exactly once in order across the files. */
static void test_log_file(void)
{
	const struct diag_instrument_ops *ops = load("log");
	char dir[] = "/tmp/diag-jsonl.XXXXXX", custom[256], err[256] = "", path[300];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(custom, sizeof(custom), "{\"file\":\"%s/ev.jsonl\",\"max_bytes\":65536,\"keep\":100}", dir);
	void *l = ops->create("n", custom, NULL, err, sizeof(err));
	CHECK(l != NULL);
	enum { N = 30000 };
	for (int i = 0; i < N; i++)
		fire_signed(ops, l, i);
	cJSON *r = report(ops, l);
	const cJSON *f = cJSON_GetObjectItem(r, "file");
	CHECK_EQ_INT(num(f, "lines"), N);
	CHECK(num(f, "rotations") >= 10);
	CHECK_EQ_INT(num(f, "errors"), 0);
	int rotations = (int)num(f, "rotations");
	cJSON_Delete(r);
	ops->destroy(l);
	int next = 0, files = 0;
	for (int k = rotations; k >= 0; k--) { /* FILE.rotations is the oldest */
		if (k)
			snprintf(path, sizeof(path), "%s/ev.jsonl.%d", dir, k);
		else
			snprintf(path, sizeof(path), "%s/ev.jsonl", dir);
		FILE *in = fopen(path, "r");
		CHECK(in != NULL);
		if (!in)
			continue;
		files++;
		char line[512];
		long size = 0;
		while (fgets(line, sizeof(line), in)) {
			size += (long)strlen(line);
			CHECK(line[strlen(line) - 1] == '\n');
			cJSON *o = cJSON_Parse(line);
			CHECK(o != NULL);
			CHECK_EQ_INT(num(o, "number"), next);
			CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "probe")), "p1");
			cJSON_Delete(o);
			next++;
		}
		CHECK(size <= 65536);
		fclose(in);
		remove(path);
	}
	CHECK_EQ_INT(next, N);
	CHECK_EQ_INT(files, rotations + 1);
	/* keep bounds the files: the oldest go */
	snprintf(custom, sizeof(custom), "{\"file\":\"%s/k.jsonl\",\"max_bytes\":4096,\"keep\":2}", dir);
	l = ops->create("n", custom, NULL, err, sizeof(err));
	for (int i = 0; i < 1000; i++)
		fire_signed(ops, l, i);
	ops->destroy(l);
	snprintf(path, sizeof(path), "%s/k.jsonl.3", dir);
	CHECK(access(path, F_OK) != 0);
	for (int k = 0; k <= 2; k++) {
		snprintf(path, sizeof(path), k ? "%s/k.jsonl.%d" : "%s/k.jsonl", dir, k);
		CHECK(access(path, F_OK) == 0);
		remove(path);
	}
	rmdir(dir);
	check_bad_custom(ops, "{\"file\":\"rel.jsonl\"}", "custom.file: must be an absolute path");
	check_bad_custom(ops, "{\"file\":\"/nonexistent-dir/x.jsonl\"}",
			 "custom.file: /nonexistent-dir/x.jsonl: No such file or directory");
	check_bad_custom(ops, "{\"file\":\"/tmp/x.jsonl\",\"max_bytes\":10}",
			 "custom.max_bytes: must be an integer in [4096, 1000000000000]");
	check_bad_custom(ops, "{\"keep\":0}", "custom.keep: must be an integer in [1, 100]");
	check_bad_custom(ops, "{\"journal\":1}", "custom.journal: must be true or false");
	check_bad_custom(ops, "{\"journal\":true,\"journal_rate\":0}",
			 "custom.journal_rate: must be a number of entries per second in [1, 1000000]");
}

int main(void)
{
	test_log();
	test_log_file();
	test_incr();
	test_hist();
	test_statsd();
	return CHECK_DONE();
}
