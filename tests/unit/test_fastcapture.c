/* test_fastcapture: probes that read memory and test conditions take the jump to a capture
 * trampoline, and render exactly what the int3 path renders. On the rich fixture (all four
 * builds, run with ASLR off so both runs see the same addresses), each row of a table of
 * values and conditions (fields, strings two loads away, arrays, a struct with bitfields,
 * doubles, conditions true and false, a NULL and a bad pointer) is probed once through the
 * fast path and once with DIAG_NO_FASTPATH=1: the rendered values and the hit counts must be
 * equal, the fast instance must be a jump (and the other an int3 saying why), and the
 * target's own result ("done N") must be the one it prints unprobed. Line and offset probes
 * take jumps where the code allows (-O0). On the work fixture, 4 threads with a value
 * unique per call: every value delivered exactly once, on the thread that made it. */
#include <poll.h>
#include <pthread.h>
#include <sys/personality.h>

#include "check.h"
#include "fixture_proc.h"
#include "engine/engine.h"

#define MAXV 4

struct tally {
	struct diag_engine *e;
	pid_t pid;
	void *cookie;
	int nvals;
	char vals[MAXV][600];
	pid_t tids[MAXV];
	bool have_info;
	struct diag_probe_info info; /* read at the process's exit: the hits counted */
	/* the threaded run */
	uint8_t *seen;
	size_t nseen;
	uint64_t events, bad, wrong_tid;
};

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	struct tally *t = ctx;
	t->events++;
	if (t->seen) {
		char *end = NULL;
		unsigned long long v = strtoull(h->value.text, &end, 10);
		if (!end || *end || v >= t->nseen)
			t->bad++;
		else
			t->seen[v]++;
		if (h->tid <= 0 || h->tid == h->pid)
			t->wrong_tid++; /* the calls run in the 4 workers, never in main */
		return;
	}
	if (t->nvals < MAXV) {
		snprintf(t->vals[t->nvals], sizeof(t->vals[0]), "%s", h->value.text);
		t->tids[t->nvals++] = h->tid;
	}
}

static void on_process(void *ctx, pid_t pid, enum diag_proc_event what, pid_t other)
{
	(void)other;
	struct tally *t = ctx;
	if (what == DIAG_PROC_EXIT && pid == t->pid && t->cookie)
		t->have_info = diag_engine_probe_info(t->e, pid, t->cookie, &t->info) == 0;
}

static struct diag_engine *engine_new(struct tally *t, bool int3_only)
{
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .on_process = on_process, .ctx = t};
	struct diag_engine *e = NULL;
	if (int3_only)
		setenv("DIAG_NO_FASTPATH", "1", 1);
	CHECK_EQ_INT(diag_engine_new(&cb, &e), 0);
	unsetenv("DIAG_NO_FASTPATH");
	return e;
}

static void serve_until_gone(struct diag_engine *e, pid_t pid)
{
	for (int rounds = 0; rounds < 20000 && diag_engine_attached(e, pid); rounds++) {
		struct pollfd p = {diag_engine_fd(e), POLLIN, 0};
		poll(&p, 1, 100);
		diag_engine_dispatch(e);
	}
}

struct outcome {
	int added;              /* diag_engine_probe_add's return */
	char err[DIAG_ERRMSG_MAX];
	bool fast;
	char why[128];
	int nvals;
	char vals[MAXV][600];
	uint64_t hits, events, filtered;
	char done[64];          /* the target's own last line */
};

/* One run of rich with one probe. */
static void run_rich(struct diag_engine *e, struct tally *t, const char *path, const char *target,
		     const char *value, const char *cond, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	memset(t, 0, sizeof(*t));
	t->e = e;
	struct fixture fx;
	char *argv[] = {"rich", "wait", NULL};
	CHECK_EQ_INT(fixture_start_ready(&fx, path, argv), 0);
	pid_t pid = fx.pid;
	t->pid = pid;
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, pid, &err), 0);
	struct diag_probe_def def = {.target = target, .value = value, .condition = cond,
				     .event = DIAG_EVENT_CALL, .cookie = (void *)1};
	o->added = diag_engine_probe_add(e, pid, &def, &err);
	snprintf(o->err, sizeof(o->err), "%s", err.msg);
	struct diag_probe_info info;
	if (o->added == 0 && diag_engine_probe_info(e, pid, (void *)1, &info) == 0 && info.naddrs) {
		o->fast = info.inst[0].fast;
		snprintf(o->why, sizeof(o->why), "%s", info.inst[0].why);
		t->cookie = (void *)1;
	}
	fixture_go(&fx);
	serve_until_gone(e, pid);
	o->nvals = t->nvals;
	memcpy(o->vals, t->vals, sizeof(o->vals));
	o->events = t->events;
	if (t->have_info) {
		o->hits = t->info.hits;
		o->filtered = t->info.filtered;
	}
	char line[256];
	while (fixture_line_wait(&fx, line, sizeof(line)) > 0)
		if (strncmp(line, "done ", 5) == 0)
			snprintf(o->done, sizeof(o->done), "%.60s", line);
	fixture_reap(&fx);
}

struct row {
	const char *target, *value, *cond;
	int events;      /* expected events (the call happens once) */
	bool want_jump;  /* the fast run must be a jump (else: whichever the code allows) */
	const char *want; /* expected text, or NULL: only equal on both paths */
};

static const struct row rows[] = {
	{"handle", "req->hdr.len", NULL, 1, true, "42"},
	{"handle", "req->name", NULL, 1, true, NULL},          /* a string two loads away */
	{"handle", "*req->argvish", NULL, 1, true, NULL},      /* three */
	{"handle", "req->tag", NULL, 1, true, NULL},
	{"handle", "req->vals", NULL, 1, true, "{10, 20, 30, 40}"},
	{"handle", "req->vals[2]", NULL, 1, true, "30"},
	{"handle", "req->hdr", NULL, 1, true, NULL},           /* bitfields */
	{"handle", "req->ptp->y", NULL, 1, true, "-2.25"},
	{"handle", "len * scale", NULL, 1, true, "20"},
	{"handle", "name", NULL, 1, true, NULL},
	{"handle", "str(req->uri.data, req->uri.len)", NULL, 1, true, NULL}, /* runtime length */
	{"handle", "req->null_name", NULL, 1, true, "0x0"},
	{"handle", "req->bad_name", NULL, 1, true, NULL},
	{"handle", "*req->bad_name", NULL, 1, true, "<fault at 0x10>"},
	{"handle", "req->next->hdr.len", NULL, 1, true, "<fault at 0x4>"},
	{"handle", "len", "req->hdr.len > 40", 1, true, "8"},  /* condition true */
	{"handle", "len", "req->hdr.len > 50", 0, true, NULL}, /* false: counted, no event */
	{"handle", "req->vals[1]", "req->name[0] == 'h' && len == 8", 1, true, "20"},
	{"handle", "len", "req->next->hdr.len == 1", 0, true, NULL}, /* faults: false */
	{"rich.c:LINE", "req->vals[1]", NULL, 1, false, "20"}, /* a line (local_count's) */
	{"handle+4", "$arg2", NULL, 1, false, "8"},           /* an offset (-O0: after push, mov) */
};

/* "rich.c:N" of the line that sets local_count in handle(), read from the fixture's source. */
static const char *line_target(void)
{
	static char target[32];
	char path[4096], line[256];
	snprintf(path, sizeof(path), "%s", __FILE__);
	char *slash = strrchr(path, '/');
	snprintf(slash ? slash : path, sizeof(path) - (size_t)(slash ? slash - path : 0),
		 "/../fixtures/rich.c");
	FILE *f = fopen(path, "r");
	for (int n = 1; f && fgets(line, sizeof(line), f); n++)
		if (strstr(line, "int local_count = ")) {
			snprintf(target, sizeof(target), "rich.c:%d", n);
			break;
		}
	if (f)
		fclose(f);
	return target;
}

static void test_table(const char *opt, const char *pie)
{
	const char *path = fixture_path("rich", opt, pie);
	struct tally t;
	struct diag_engine *fast = engine_new(&t, false), *slow = engine_new(&t, true);
	bool o0 = strcmp(opt, "O0") == 0;
	char unprobed[64] = "";
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		const char *target = strcmp(r->target, "rich.c:LINE") ? r->target : line_target();
		if (!o0 && strchr(r->target, '+'))
			continue; /* +4 is not an instruction boundary of every build */
		struct outcome f, s;
		run_rich(fast, &t, path, target, r->value, r->cond, &f);
		run_rich(slow, &t, path, target, r->value, r->cond, &s);
		char label[200];
		snprintf(label, sizeof(label), "rich-%s-%s: %s %s%s%s", opt, pie, target, r->value,
			 r->cond ? " if " : "", r->cond ? r->cond : "");
		if (f.added != 0 || s.added != 0) {
			fprintf(stderr, "%s: not added: %s / %s\n", label, f.err, s.err);
			CHECK(false);
			continue;
		}
		if (!unprobed[0])
			snprintf(unprobed, sizeof(unprobed), "%s", s.done);
		bool ok = f.nvals == s.nvals && f.events == (uint64_t)r->events &&
			  s.events == (uint64_t)r->events && f.hits == 1 && s.hits == 1;
		for (int v = 0; ok && v < f.nvals; v++)
			ok = strcmp(f.vals[v], s.vals[v]) == 0 && (!r->want || !strcmp(f.vals[v], r->want));
		ok = ok && !strcmp(f.done, s.done) && !strcmp(f.done, unprobed) && f.done[0];
		ok = ok && !s.fast && !strcmp(s.why, "int3: DIAG_NO_FASTPATH");
		/* lines and offsets: a jump at -O0; at -O2 an int3 must say why */
		bool jump_ok = r->want_jump || o0 ? f.fast : f.fast || f.why[0];
		if (!ok || !jump_ok)
			fprintf(stderr,
				"%s:\n  fast (%s%s): %d events, %llu hits: '%s'  %s\n"
				"  int3 (%s): %d events, %llu hits: '%s'  %s\n",
				label, f.fast ? "jump" : "int3", f.fast ? "" : f.why, (int)f.events,
				(unsigned long long)f.hits, f.nvals ? f.vals[0] : "", f.done, s.why,
				(int)s.events, (unsigned long long)s.hits, s.nvals ? s.vals[0] : "",
				s.done);
		CHECK(ok);
		CHECK(jump_ok);
	}
	diag_engine_free(fast);
	diag_engine_free(slow);
}

/* 4 threads, value $arg1 * 4 + $arg2 (call i of thread id): each value exactly once. The
 * calls run unpaced (tens of millions a second): a ring that holds them all (64 MiB, even if
 * the 4 threads hash to one sub-ring) makes the test independent of the drain's pace. */
static void test_threads(const char *opt, const char *pie)
{
	enum { THREADS = 4, CALLS = 5000 };
	struct tally t;
	memset(&t, 0, sizeof(t));
	struct diag_engine *e = engine_new(&t, false);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_set_ring_size(e, 64u << 20, &err), 0);
	t.e = e;
	t.nseen = (size_t)THREADS * CALLS;
	t.seen = calloc(t.nseen, 1);
	struct fixture f;
	char *argv[] = {"work", "4", "5000", NULL};
	CHECK_EQ_INT(fixture_start_ready(&f, fixture_path("work", opt, pie), argv), 0);
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	struct diag_probe_def def = {.target = "work", .value = "$arg1 * 4 + $arg2",
				     .event = DIAG_EVENT_CALL, .cookie = (void *)1};
	CHECK_EQ_INT(diag_engine_probe_add(e, f.pid, &def, &err), 0);
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	CHECK(info.fast);
	t.pid = f.pid;
	t.cookie = (void *)1;
	fixture_go(&f);
	char line[256];
	long sum = 0;
	for (int rounds = 0; rounds < 60000 && diag_engine_attached(e, f.pid); rounds++) {
		while (fixture_line(&f, line, sizeof(line)) == 1)
			sscanf(line, "sum %ld", &sum);
		struct pollfd p[2] = {{diag_engine_fd(e), POLLIN, 0}, {f.out_fd, POLLIN, 0}};
		poll(p, 2, 100);
		diag_engine_dispatch(e);
	}
	while (fixture_line(&f, line, sizeof(line)) == 1)
		sscanf(line, "sum %ld", &sum);
	/* sum over threads id of sum_i (3i + 2id + 7) */
	long want = 0;
	for (long id = 0; id < THREADS; id++)
		want += 3L * CALLS * (CALLS - 1) / 2 + (2 * id + 7) * CALLS;
	CHECK_EQ_INT(sum, want);
	size_t once = 0;
	for (size_t i = 0; i < t.nseen; i++)
		once += t.seen[i] == 1;
	if (once != t.nseen || t.bad || t.wrong_tid)
		fprintf(stderr, "work-%s-%s: %zu of %zu values exactly once, %llu events, %llu bad, "
			"%llu not on a worker thread, %llu hits, %llu dropped\n", opt, pie, once,
			t.nseen, (unsigned long long)t.events, (unsigned long long)t.bad,
			(unsigned long long)t.wrong_tid, (unsigned long long)t.info.hits,
			(unsigned long long)t.info.dropped);
	CHECK(once == t.nseen);
	CHECK(t.bad == 0);
	CHECK(t.wrong_tid == 0);
	CHECK(t.have_info && t.info.hits == t.nseen && t.info.dropped == 0);
	free(t.seen);
	diag_engine_free(e);
	fixture_reap(&f);
}

int main(void)
{
	personality(ADDR_NO_RANDOMIZE); /* the fixtures it starts: same addresses on both paths */
	static const char *opts[] = {"O0", "O2"}, *pies[] = {"pie", "nopie"};
	for (int o = 0; o < 2; o++)
		for (int p = 0; p < 2; p++) {
			test_table(opts[o], pies[p]);
			test_threads(opts[o], pies[p]);
		}
	return CHECK_DONE();
}
