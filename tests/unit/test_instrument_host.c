/* test_instrument_host: plugin loading errors (missing file, missing descriptor, ABI
 * mismatch, create error), emit sink, the bounded queue (drops counted, deep copies, every
 * event fired once by the worker, instance kept alive by queued events). Test plugins are
 * compiled here with cc into a temp dir. */
#include "check.h"
#include "instrument/host.h"
#include "instrument/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/test_instrument_host.XXXXXX";

static const char *const plugin_src =
	"#include <diagnose/instrument.h>\n"
	"#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
	"struct c { long n; struct diag_host h; };\n"
	"static void *cr(const char *name, const char *custom, const struct diag_host *h, char *err, size_t len)\n"
	"{ if (strstr(custom, \"bad\")) { snprintf(err, len, \"custom.bad: not allowed\"); return NULL; }\n"
	"  struct c *c = calloc(1, sizeof(*c)); c->h = *h; (void)name; return c; }\n"
	"static void fi(void *s, const struct diag_event *ev)\n"
	"{ struct c *c = s; c->n++; char l[128]; snprintf(l, sizeof l, \"Probe (%%s) = %%s\", ev->name, ev->value.text); c->h.emit(c->h.ctx, l); }\n"
	"static char *re(void *s) { char *b = malloc(64); snprintf(b, 64, \"{\\\"count\\\":%%ld}\", ((struct c *)s)->n); return b; }\n"
	"static void de(void *s) { free(s); }\n"
	"__attribute__((visibility(\"default\"))) const struct diag_instrument_ops %s = { %s, \"%s\", cr, fi, re, de };\n";

static void build_plugin(const char *type, const char *symbol, const char *abi)
{
	char src[256], cmd[1024];
	snprintf(src, sizeof(src), "%s/%s.c", dir, type);
	FILE *f = fopen(src, "w");
	fprintf(f, plugin_src, symbol, abi, type);
	fclose(f);
	/* The public headers are found from this file's own path (cmake passes it absolute). */
	char here[512];
	snprintf(here, sizeof(here), "%s", __FILE__);
	*strrchr(here, '/') = '\0';
	snprintf(cmd, sizeof(cmd), "cc -shared -fPIC -I%s/../../include -o %s/%s.so %s", here, dir,
		 type, src);
	if (system(cmd) != 0) {
		fprintf(stderr, "cannot build test plugin: %s\n", cmd);
		exit(1);
	}
}

struct sink {
	pthread_mutex_t lock;
	int lines;
	char last[256];
	long wrap_lines;    /* lines of probe "wrap", whose numbers must only increase */
	long wrap_last;
	int wrap_disorder;  /* lines of "wrap" that broke that order */
};

static void sink_fn(void *ctx, const char *probe_id, const char *line)
{
	struct sink *s = ctx;
	pthread_mutex_lock(&s->lock);
	s->lines++;
	snprintf(s->last, sizeof(s->last), "%s|%s", probe_id, line);
	const char *v = strstr(line, "= ");
	if (strcmp(probe_id, "wrap") == 0) {
		long n = v ? atol(v + 2) : -1;
		s->wrap_disorder += s->wrap_lines++ && n <= s->wrap_last;
		s->wrap_last = n;
	}
	pthread_mutex_unlock(&s->lock);
}

static void test_load_errors(struct diag_plugin_host *h)
{
	struct diag_instrument *in = NULL;
	struct diag_error err = { 0 };
	char want[1024];
	CHECK_EQ_INT(diag_instrument_new(h, "nope", "p", "n", "{}", &in, &err), -DIAG_E_PLUGIN);
	snprintf(want, sizeof(want), "instrument.type: no plugin 'nope' in %s (looked for %s/nope.so)",
		 dir, dir);
	CHECK_EQ_STR(err.msg, want);
	CHECK_EQ_INT(diag_instrument_new(h, "nosym", "p", "n", "{}", &in, &err), -DIAG_E_PLUGIN);
	snprintf(want, sizeof(want), "instrument.type: plugin 'nosym' (%s/nosym.so) has no symbol 'diag_instrument'", dir);
	CHECK_EQ_STR(err.msg, want);
	CHECK_EQ_INT(diag_instrument_new(h, "abi4", "p", "n", "{}", &in, &err), -DIAG_E_PLUGIN);
	CHECK_EQ_STR(err.msg, "instrument.type: plugin 'abi4' has ABI 4, daemon supports 1 to 3");
	/* an ABI 1 plugin still loads (its ops end at destroy: no idle is read from it) */
	CHECK_EQ_INT(diag_instrument_new(h, "abi1", "p", "n", "{}", &in, &err), 0);
	diag_plugin_host_idle(h);
	diag_instrument_unref(in);
	in = NULL;
	CHECK_EQ_INT(diag_instrument_new(h, "cnt", "p", "n", "{\"bad\":1}", &in, &err), -DIAG_E_PLUGIN);
	CHECK_EQ_STR(err.msg, "instrument: custom.bad: not allowed");
	CHECK(in == NULL);
}

static void test_queue(struct diag_plugin_host *h, struct sink *sk)
{
	struct diag_instrument *in = NULL;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_instrument_new(h, "cnt", "w1", "w", "{}", &in, &err), 0);
	if (!in)
		return;
	CHECK_EQ_STR(diag_instrument_type(in), "cnt");

	struct diag_event_queue *q;
	char text[16] = "0";
	struct diag_event ev = { .probe_id = "w1", .name = "w", .pid = 1, .tid = 1,
				 .value = { .kind = DIAG_VALUE_SIGNED, .i = 42, .text = text } };
	/* room for exactly 4 such events: the ring is bounded in bytes */
	CHECK_EQ_INT(diag_event_queue_new(4 * diag_event_queue_item_bytes(&ev), NULL, NULL, &q), 0);
	int full = 0;
	for (int i = 0; i < 6; i++) {
		snprintf(text, sizeof(text), "%d", i);
		full += diag_event_queue_push(q, in, &ev) == -EAGAIN;
	}
	text[0] = 'X'; /* the queue holds copies */
	CHECK_EQ_INT(full, 2);
	struct diag_queue_stats st;
	diag_event_queue_get_stats(q, &st);
	CHECK_EQ_INT(st.length, 4);
	CHECK_EQ_INT(st.dropped, 2);
	/* Queued events keep the instance alive after its owner lets go. */
	diag_instrument_unref(in);
	CHECK_EQ_INT(diag_event_queue_start(q), 0);
	diag_event_queue_drain(q);
	diag_event_queue_get_stats(q, &st);
	CHECK_EQ_INT(st.fired, 4);
	CHECK_EQ_INT(sk->lines, 4);
	CHECK_EQ_STR(sk->last, "w1|Probe (w) = 3");
	diag_event_queue_free(q);

	/* Many events through a running worker: each fired exactly once. */
	CHECK_EQ_INT(diag_instrument_new(h, "cnt", "w2", "v", "{}", &in, &err), 0);
	CHECK_EQ_INT(diag_event_queue_new(DIAG_QUEUE_DEFAULT_BYTES, NULL, NULL, &q), 0);
	CHECK_EQ_INT(diag_event_queue_start(q), 0);
	int dropped = 0;
	for (int i = 0; i < 20000; i++)
		dropped += diag_event_queue_push(q, in, &ev) != 0;
	diag_event_queue_drain(q);
	char *rep = diag_instrument_report(in);
	char want[64];
	snprintf(want, sizeof(want), "{\"count\":%d}", 20000 - dropped);
	CHECK_EQ_STR(rep, want);
	CHECK_EQ_INT(dropped, 0);
	free(rep);
	diag_instrument_unref(in);
	diag_event_queue_free(q);
}

/* A ring of a few events' bytes, records of every size wrapping around it while the worker
 * fires: each event exactly once and in order, two instruments in alternating runs, the bytes
 * all given back. A full ring refuses (counted) and the producer pushes that event again. */
static void test_queue_wrap(struct diag_plugin_host *h, struct sink *sk)
{
	struct diag_instrument *a = NULL, *b = NULL;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_instrument_new(h, "cnt", "wrap", "a", "{}", &a, &err), 0);
	CHECK_EQ_INT(diag_instrument_new(h, "cnt", "other", "b", "{}", &b, &err), 0);
	if (!a || !b)
		return;
	char text[300];
	struct diag_event ev = { .probe_id = "wrap", .name = "a", .pid = 1, .tid = 1,
				 .value = { .kind = DIAG_VALUE_STRING, .text = text } };
	struct diag_event big = ev;
	memset(text, 'x', 250);
	text[250] = '\0';
	struct diag_event_queue *q;
	/* 7.5 of the largest events: wraps every few pushes, with pads of every size */
	CHECK_EQ_INT(diag_event_queue_new(diag_event_queue_item_bytes(&big) * 15 / 2, NULL, NULL, &q),
		     0);
	CHECK_EQ_INT(diag_event_queue_start(q), 0);
	int before = sk->lines;
	long refused = 0, others = 0;
	for (long i = 0; i < 20000; i++) {
		/* "N" padded with spaces to 0..249 bytes after it */
		int pad = (int)((i * 37) % 250);
		snprintf(text, sizeof(text), "%ld%*s", i, pad, "");
		struct diag_instrument *in = (i / 3) % 2 ? b : a;
		ev.probe_id = in == a ? "wrap" : "other";
		while (diag_event_queue_push(q, in, &ev) == -EAGAIN)
			refused++;
		others += in == b;
	}
	diag_event_queue_drain(q);
	struct diag_queue_stats st;
	diag_event_queue_get_stats(q, &st);
	CHECK_EQ_INT(st.pushed, 20000);
	CHECK_EQ_INT(st.fired, 20000);
	CHECK_EQ_INT(st.dropped, refused);
	CHECK_EQ_INT(st.length, 0);
	CHECK_EQ_INT(st.bytes, 0);
	CHECK_EQ_INT(sk->lines - before, 20000);
	CHECK_EQ_INT(sk->wrap_lines, 20000 - others);
	CHECK_EQ_INT(sk->wrap_disorder, 0);
	char *rep = diag_instrument_report(b);
	char want[64];
	snprintf(want, sizeof(want), "{\"count\":%ld}", others);
	CHECK_EQ_STR(rep, want);
	free(rep);
	diag_event_queue_free(q);
	diag_instrument_unref(a);
	diag_instrument_unref(b);
}

/* Deferred values (diag_event_queue_push_deferred): rendered on the worker from the blob's
 * copy, held before the worker sees it and released exactly once after it fired (or when a
 * queue that never started is freed). The producer takes holds ahead and gives back what it
 * did not use at flush (drain and free flush): after either, holds and releases balance, and
 * every hold was taken on the producer's thread. */
struct blob {
	long n;
	pthread_t *producer;
};
static _Atomic long holds, releases, renders_on_producer, holds_off_producer;

static void b_hold(const void *p, size_t n)
{
	const struct blob *b = p;
	holds_off_producer += pthread_equal(pthread_self(), *b->producer) == 0;
	holds += (long)n;
}

static void b_render(const void *p, char *text, size_t cap, struct diag_value *out)
{
	const struct blob *b = p;
	renders_on_producer += pthread_equal(pthread_self(), *b->producer) != 0;
	snprintf(text, cap, "%ld", b->n);
	*out = (struct diag_value){ .kind = DIAG_VALUE_SIGNED, .i = b->n, .text = text };
}

static void b_release(const void *p, size_t n)
{
	(void)p;
	releases += (long)n;
}

static bool b_same(const void *a, const void *b)
{
	(void)a;
	(void)b;
	return true;
}

/* Two probes' values interleaved: every event is another's than the one before. */
static bool b_same_parity(const void *a, const void *b)
{
	return ((const struct blob *)a)->n % 2 == ((const struct blob *)b)->n % 2;
}

/* Values 0..n-1 pushed deferred, each until the queue takes it; returns the refusals. */
static long push_blobs(struct diag_event_queue *q, struct diag_instrument *in,
		       const struct diag_event *ev, const struct diag_event_render *ops, long n,
		       pthread_t *self)
{
	long refused = 0;
	for (long i = 0; i < n; i++) {
		struct blob b = { .n = i, .producer = self };
		while (diag_event_queue_push_deferred(q, in, ev, ops, &b, sizeof(b)) == -EAGAIN)
			refused++;
	}
	return refused;
}

static void test_queue_deferred(struct diag_plugin_host *h, struct sink *sk)
{
	static const struct diag_event_render ops = { b_hold, b_render, b_release, b_same };
	struct diag_instrument *in = NULL;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_instrument_new(h, "cnt", "wrap", "d", "{}", &in, &err), 0);
	if (!in)
		return;
	pthread_t self = pthread_self();
	struct diag_event ev = { .probe_id = "wrap", .name = "d", .pid = 1, .tid = 1 };
	struct diag_event_queue *q;
	CHECK_EQ_INT(diag_event_queue_new(64 * 1024, NULL, NULL, &q), 0);
	CHECK_EQ_INT(diag_event_queue_start(q), 0);
	int before = sk->lines, order0 = sk->wrap_disorder;
	sk->wrap_lines = 0;
	long refused = push_blobs(q, in, &ev, &ops, 50000, &self);
	diag_event_queue_drain(q);
	CHECK_EQ_INT(sk->lines - before, 50000);
	CHECK_EQ_INT(sk->wrap_disorder, order0); /* in order, each once */
	CHECK_EQ_STR(sk->last, "wrap|Probe (d) = 49999");
	CHECK(holds >= 50000);
	CHECK(holds < 50000 + 50000 / 8); /* taken ahead in batches, not one by one */
	CHECK_EQ_INT(releases, holds);
	CHECK_EQ_INT(renders_on_producer, 0);
	/* alternating values: each one's holds given back when the other's comes */
	static const struct diag_event_render alt = { b_hold, b_render, b_release, b_same_parity };
	refused += push_blobs(q, in, &ev, &alt, 1000, &self);
	diag_event_queue_drain(q);
	CHECK_EQ_INT(sk->lines - before, 51000);
	CHECK_EQ_STR(sk->last, "wrap|Probe (d) = 999");
	CHECK_EQ_INT(releases, holds);
	CHECK_EQ_INT(holds_off_producer, 0);
	struct diag_queue_stats st;
	diag_event_queue_get_stats(q, &st);
	CHECK_EQ_INT(st.dropped, refused);
	diag_event_queue_free(q);
	/* never started: released, not rendered */
	CHECK_EQ_INT(diag_event_queue_new(64 * 1024, NULL, NULL, &q), 0);
	struct blob b = { .n = 7, .producer = &self };
	long held = holds;
	CHECK_EQ_INT(diag_event_queue_push_deferred(q, in, &ev, &ops, &b, sizeof(b)), 0);
	CHECK(holds > held); /* held at the push, before any worker could see it */
	diag_event_queue_free(q);
	CHECK_EQ_INT(releases, holds);
	diag_instrument_unref(in);
}

int main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	build_plugin("cnt", "diag_instrument", "DIAG_INSTRUMENT_ABI");
	build_plugin("nosym", "other_name", "DIAG_INSTRUMENT_ABI");
	build_plugin("abi4", "diag_instrument", "4");
	build_plugin("abi1", "diag_instrument", "1");
	struct sink sk = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct diag_plugin_host *h;
	CHECK_EQ_INT(diag_plugin_host_new(dir, sink_fn, &sk, &h), 0);
	test_load_errors(h);
	test_queue(h, &sk);
	test_queue_wrap(h, &sk);
	test_queue_deferred(h, &sk);
	diag_plugin_host_free(h);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ_INT(system(cmd), 0);
	return CHECK_DONE();
}
