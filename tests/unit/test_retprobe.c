/* test_retprobe: return and end events on real fixtures at -O0/-O2, PIE and non-PIE, on the
 * jump path (entry and exit trampolines) and with DIAG_NO_FASTPATH=1 (int3s): results
 * (integer and double), elapsed, recursion, longjmp out of a probed frame, a C++ exception
 * thrown through one (the program's own results unchanged, no event and no stale record for
 * frames left abnormally), and end events at each exit with locals; both paths deliver the
 * same values, and on the jump path `applied` lists the entry and every exit as jumps. */
#include <poll.h>
#include <stdlib.h>

#include "check.h"
#include "fixture_proc.h"
#include "engine/engine.h"

#define NPROBES 11

struct tally {
	char text[NPROBES][128];
	uint64_t n[NPROBES];
	int64_t sum[NPROBES], min[NPROBES], max[NPROBES];
	double fsum[NPROBES];
	int errors;
	char last_error[256];
};

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	struct tally *t = ctx;
	int k = (int)(intptr_t)h->cookie;
	if (h->value.kind == DIAG_VALUE_ERROR) {
		t->errors++;
		snprintf(t->last_error, sizeof(t->last_error), "%s", h->value.text);
		return;
	}
	snprintf(t->text[k], sizeof(t->text[k]), "%.127s", h->value.text);
	int64_t v = h->value.i;
	if (h->value.kind == DIAG_VALUE_FLOAT)
		t->fsum[k] += h->value.f;
	if (!t->n[k] || v < t->min[k])
		t->min[k] = v;
	if (!t->n[k] || v > t->max[k])
		t->max[k] = v;
	t->n[k]++;
	t->sum[k] += v;
}

static void add_if(struct diag_engine *e, pid_t pid, int k, const char *target,
		   const char *value, const char *cond, enum diag_event_kind ev)
{
	struct diag_probe_def d = {.target = target, .value = value, .condition = cond,
				   .event = ev, .cookie = (void *)(intptr_t)k};
	struct diag_error err = {0};
	int r = diag_engine_probe_add(e, pid, &d, &err);
	if (r < 0)
		fprintf(stderr, "probe %s: %s\n", target, err.msg);
	CHECK_EQ_INT(r, 0);
}

static void add(struct diag_engine *e, pid_t pid, int k, const char *target, const char *value,
		enum diag_event_kind ev)
{
	add_if(e, pid, k, target, value, NULL, ev);
}

/* Serve until the fixture prints "done"; collects its lines. */
static int serve(struct diag_engine *e, struct fixture *f, char out[][128], int cap)
{
	int n = 0;
	char line[256];
	for (;;) {
		int got;
		while ((got = fixture_line(f, line, sizeof(line))) == 1) {
			if (n < cap)
				snprintf(out[n++], 128, "%.127s", line);
			if (!strcmp(line, "done")) {
				/* the fixture waits: what its trampolines recorded is in the
				 * rings, and one dispatch drains them */
				diag_engine_dispatch(e);
				return n;
			}
		}
		if (got < 0)
			return -1;
		struct pollfd p[2] = {{diag_engine_fd(e), POLLIN, 0}, {f->out_fd, POLLIN, 0}};
		if (poll(p, 2, 60000) == 0)
			return -1;
		diag_engine_dispatch(e);
	}
}

static uint64_t pending_of(struct diag_engine *e, pid_t pid, int k)
{
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, pid, (void *)(intptr_t)k, &info), 0);
	return info.pending;
}

static struct diag_engine *engine_on(bool fast, struct diag_engine_callbacks *cb)
{
	struct diag_engine *e = NULL;
	if (fast)
		unsetenv("DIAG_NO_FASTPATH");
	else
		setenv("DIAG_NO_FASTPATH", "1", 1);
	CHECK_EQ_INT(diag_engine_new(cb, &e), 0);
	unsetenv("DIAG_NO_FASTPATH");
	return e;
}

/* Every instance of probe k: a jump, entry and exits (at least 2), or every one an int3;
 * returns whether they are jumps, printing the path and the reason. */
static bool path_of(struct diag_engine *e, pid_t pid, int k, const char *what,
		    uint64_t *dropped)
{
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, pid, (void *)(intptr_t)k, &info), 0);
	*dropped = info.dropped;
	size_t jumps = 0;
	for (size_t i = 0; i < info.naddrs; i++)
		jumps += info.inst[i].fast;
	fprintf(stderr, "  %s: %zu instance(s), %zu jump(s)%s%s\n", what, info.naddrs, jumps,
		jumps < info.naddrs ? ": " : "", jumps < info.naddrs ? info.inst[0].why : "");
	CHECK(jumps == 0 || jumps == info.naddrs); /* a return probe is on one path */
	CHECK_EQ_INT(info.fast, jumps == info.naddrs && jumps > 0);
	return jumps > 0;
}

static void test_c(const char *opt, const char *pie, bool fast)
{
	struct tally t = {0};
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .ctx = &t};
	struct diag_engine *e = engine_on(fast, &cb);
	struct fixture f;
	char *argv[] = {"ret", NULL}, line[128];
	CHECK_EQ_INT(fixture_start(&f, fixture_path("ret", opt, pie), argv), 0);
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	add(e, f.pid, 0, "fib", "result", DIAG_EVENT_RETURN);
	add(e, f.pid, 1, "jumper", "$retval", DIAG_EVENT_RETURN);
	add(e, f.pid, 2, "nap", "elapsed", DIAG_EVENT_RETURN);
	add(e, f.pid, 3, "nap", "result", DIAG_EVENT_RETURN); /* two return probes, one function */
	add(e, f.pid, 4, "half", "result", DIAG_EVENT_RETURN);
	add(e, f.pid, 5, "classify", "x", DIAG_EVENT_END);
	add(e, f.pid, 6, "fib", "$arg1", DIAG_EVENT_CALL); /* a call probe beside a return probe */
	add(e, f.pid, 7, "make_pair", "result", DIAG_EVENT_RETURN); /* small structs: rax:rdx */
	add(e, f.pid, 8, "nap", "ts.tv_nsec", DIAG_EVENT_END); /* a local at the exit */
	/* conditions: a local's at an end (may run in the target), elapsed's at a return (the
	 * daemon's) */
	add_if(e, f.pid, 9, "nap", "ts.tv_sec", "ts.tv_nsec == 2000000", DIAG_EVENT_END);
	add_if(e, f.pid, 10, "nap", "result", "elapsed > 1000000 && result == 4", DIAG_EVENT_RETURN);
	fixture_go(&f);
	char lines[16][128];
	int n = serve(e, &f, lines, 16);
	CHECK_EQ_INT(n, 7);
	/* the program's own results are unchanged */
	CHECK_EQ_STR(lines[0], "fib 610");
	CHECK_EQ_STR(lines[1], "jumper 2500 jumped 50");
	CHECK_EQ_STR(lines[2], "nap 12");
	CHECK_EQ_STR(lines[3], "half 2.5");
	CHECK_EQ_STR(lines[4], "classify 9");
	CHECK_EQ_STR(lines[5], "pair 3 4 vec 1.5 3");
	CHECK_EQ_STR(t.text[7], "{a = 3, b = 4}"); /* a struct result, as gdb prints it */
	static const char *what[NPROBES] = {"fib result", "jumper $retval", "nap elapsed",
					    "nap result", "half result", "classify end x",
					    "fib $arg1", "make_pair result", "nap end ts.tv_nsec",
					    "nap end if", "nap result if"};
	bool jump[NPROBES];
	uint64_t dropped = 0;
	for (int k = 0; k < NPROBES; k++)
		jump[k] = path_of(e, f.pid, k, what[k], &dropped);
	if (!fast)
		for (int k = 0; k < NPROBES; k++)
			CHECK(!jump[k]);
	else /* nap's exit: lea/add then the pops and ret, at -O0 and -O2 */
		CHECK(jump[2] && jump[3] && (jump[8] || strcmp(opt, "O0")));
	fprintf(stderr, "ret-%s-%s (%s): fib %llu returns (max %lld), jumper %llu, nap %llu (min %lld ns), "
		"half %g, classify ends %llu, errors %d %s\n", opt, pie,
		fast ? "jump path" : "int3s", (unsigned long long)t.n[0],
		(long long)t.max[0], (unsigned long long)t.n[1], (unsigned long long)t.n[2],
		(long long)t.min[2], t.fsum[4], (unsigned long long)t.n[5], t.errors, t.last_error);
	/* A full sub-ring drops records (counted): fib(15)'s burst of 3946 records in well under
	 * the drain period is more than one thread's sub-ring holds until the drain is woken at
	 * a high-water mark (issue 10 item 5, the engine's). Then only what was delivered can be
	 * checked. */
	if (dropped)
		fprintf(stderr, "  WARNING: %llu records dropped: exact counts not checked\n",
			(unsigned long long)dropped);
	if (!dropped) {
		/* every call returns once (gcc -O2 turns part of the recursion into a loop) */
		CHECK_EQ_INT(t.n[0], t.n[6]);
		if (!strcmp(opt, "O0"))
			CHECK_EQ_INT(t.n[6], 1973);
		CHECK(t.n[6] >= 987);
		CHECK_EQ_INT(t.max[0], 610); /* the outermost result */
		CHECK_EQ_INT(t.n[1], 50);    /* only the calls that returned */
		CHECK_EQ_INT(t.sum[1], 2500);
	}
	CHECK(t.n[1] == 0 || t.sum[1] == (int64_t)t.n[1] * 50 || dropped); /* x + 1, x even */
	CHECK_EQ_INT(pending_of(e, f.pid, 1), 0); /* the 50 longjmp'd frames left nothing behind */
	if (!dropped) {
		CHECK_EQ_INT(t.n[2], 3);
		CHECK(t.min[2] >= 2000000);  /* nap sleeps 2 ms */
		CHECK_EQ_INT(t.n[3], 3);
		CHECK_EQ_INT(t.sum[3], 12);
		CHECK_EQ_INT(t.n[4], 1);
		CHECK(t.fsum[4] == 2.5);     /* a double result, from xmm0 */
		CHECK_EQ_INT(t.n[5], 3);     /* each call leaves through one exit */
		CHECK_EQ_INT(t.sum[5], -5 + 0 + 7);
		CHECK_EQ_INT(t.n[8], 3);     /* the local as the body left it, at its ret */
		CHECK_EQ_INT(t.sum[8], 3 * 2000000);
		CHECK_EQ_INT(t.n[9], 3);     /* true at every exit */
		CHECK_EQ_INT(t.sum[9], 0);
		CHECK_EQ_INT(t.n[10], 3);
		CHECK_EQ_INT(t.sum[10], 12);
	}
	CHECK_EQ_INT(t.errors, 0);
	fixture_go(&f); /* let it exit */
	diag_engine_free(e);
	fixture_reap(&f);
}

static void test_cxx(const char *opt, const char *pie, bool fast)
{
	struct tally t = {0};
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .ctx = &t};
	struct diag_engine *e = engine_on(fast, &cb);
	struct fixture f;
	char *argv[] = {"throw", NULL}, line[128];
	CHECK_EQ_INT(fixture_start(&f, fixture_path("throw", opt, pie), argv), 0);
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	add(e, f.pid, 0, "risky", "$retval", DIAG_EVENT_RETURN);
	fixture_go(&f);
	char lines[4][128];
	CHECK_EQ_INT(serve(e, &f, lines, 4), 3);
	CHECK_EQ_STR(lines[0], "caught 50 sum 2500"); /* caught by its caller as without the probe */
	CHECK_EQ_STR(lines[1], "final 1001");
	uint64_t dropped = 0;
	fprintf(stderr, "throw-%s-%s (%s):\n", opt, pie, fast ? "jump path" : "int3s");
	path_of(e, f.pid, 0, "risky $retval", &dropped);
	CHECK_EQ_INT(dropped, 0);
	CHECK_EQ_INT(t.n[0], 51);        /* the 50 frames the exception left give no event */
	CHECK_EQ_INT(t.sum[0], 2500 + 1001);
	CHECK_EQ_INT(pending_of(e, f.pid, 0), 0);
	fixture_go(&f); /* let it exit */
	diag_engine_free(e);
	fixture_reap(&f);
}

int main(void)
{
	static const char *opts[] = {"O0", "O2"}, *pies[] = {"pie", "nopie"};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			for (int fast = 1; fast >= 0; fast--) {
				test_c(opts[i], pies[j], fast);
				test_cxx(opts[i], pies[j], fast);
			}
		}
	return CHECK_DONE();
}
