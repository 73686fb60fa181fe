/* test_tailret: return probes on a function that leaves by tail calls (tests/fixtures/tail.c:
 * `jmp quick`, `jmp spin`, `jmp wrap` at -O2, plain rets at -O0) on 4 threads, -O0/-O2, PIE
 * and non-PIE: on the jump path its plain ret takes an exit jump and each return address its
 * entries name takes a return site (`applied` lists them, every instance a jump); after a
 * warm-up round that names every return address, every call's return is seen exactly once
 * with the right result, `elapsed` includes the tail-called spin()'s 20 us, recursion pairs
 * each frame with its own return, frames left by longjmp out of the callee give nothing and
 * leave nothing open, and every return of the warm-up is either an event or counted lost. End events come
 * at every exit, tail calls included, with the registers there. The int3 path
 * (DIAG_NO_FASTPATH=1) gives the same events. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "fixture_proc.h"
#include "engine/engine.h"

#define NPROBES 4
#define THREADS 4
#define ROUNDS 100     /* tail.c's */
#define JUMP_ROUNDS 4  /* rounds with a longjmp out of spin (i % 25 == 7) */
#define SPIN_NS 20000  /* tail.c's spin() is busy at least this long */

struct tally {
	uint64_t n[NPROBES];
	int64_t sum[NPROBES], min[NPROBES];
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
	if (!t->n[k] || h->value.i < t->min[k])
		t->min[k] = h->value.i;
	t->n[k]++;
	t->sum[k] += h->value.i;
}

/* tail.c's tailer(x), every frame: its result added to *sum, its frames to *n, its first
 * argument register at its exit (-O2: x, or x - 4 at the `jmp wrap`) to *exit_arg. */
static long model(long x, int64_t *sum, int64_t *n, int64_t *exit_arg)
{
	long r;
	*exit_arg += x % 4 == 3 ? x - 4 : x;
	if (x % 4 == 0)
		r = x + 1;
	else if (x % 4 == 1)
		r = x + 100;
	else if (x % 4 == 3)
		r = x - 4 < 0 ? 0 : model(x - 4, sum, n, exit_arg) * 2 + (x - 4);
	else
		r = x * 3;
	*sum += r;
	(*n)++;
	return r;
}

static void add(struct diag_engine *e, pid_t pid, int k, const char *value, const char *cond,
		enum diag_event_kind ev)
{
	struct diag_probe_def d = {.target = "tailer", .value = value, .condition = cond,
				   .event = ev, .cookie = (void *)(intptr_t)k};
	struct diag_error err = {0};
	int r = diag_engine_probe_add(e, pid, &d, &err);
	if (r < 0)
		fprintf(stderr, "probe %d: %s\n", k, err.msg);
	CHECK_EQ_INT(r, 0);
}

/* Dispatch until the fixture prints a line (into line); false on a 60 s silence. */
static bool serve_line(struct diag_engine *e, struct fixture *f, char *line, size_t cap)
{
	for (;;) {
		int got = fixture_line(f, line, cap);
		if (got == 1)
			return true;
		if (got < 0)
			return false;
		struct pollfd p[2] = {{diag_engine_fd(e), POLLIN, 0}, {f->out_fd, POLLIN, 0}};
		if (poll(p, 2, 60000) == 0)
			return false;
		diag_engine_dispatch(e);
	}
}

static size_t return_sites(struct diag_engine *e, pid_t pid, struct diag_probe_info *info)
{
	CHECK_EQ_INT(diag_engine_probe_info(e, pid, (void *)0, info), 0);
	size_t n = 0;
	for (size_t i = 0; i < info->naddrs; i++)
		n += strncmp(info->inst[i].what, "return site", 11) == 0;
	return n;
}

static void run(const char *opt, const char *pie, bool fast, int threads)
{
	struct tally t = {0};
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .ctx = &t};
	struct diag_engine *e = NULL;
	if (!fast)
		setenv("DIAG_NO_FASTPATH", "1", 1);
	CHECK_EQ_INT(diag_engine_new(&cb, &e), 0);
	unsetenv("DIAG_NO_FASTPATH");
	/* 4 threads recording 3 records a call while they keep both CPUs busy: sub-rings large
	 * enough for the drains this process gets (a drop would make counts inexact) */
	struct diag_error rerr = {0};
	CHECK_EQ_INT(diag_engine_set_ring_size(e, 64u << 20, &rerr), 0);
	struct fixture f;
	char nt[8], line[256];
	snprintf(nt, sizeof(nt), "%d", threads);
	char *argv[] = {"tail", nt, NULL};
	CHECK_EQ_INT(fixture_start(&f, fixture_path("tail", opt, pie), argv), 0);
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	add(e, f.pid, 0, "result", NULL, DIAG_EVENT_RETURN);
	/* spin()'s returns, told by their results (6, 18, 30, 42) */
	add(e, f.pid, 1, "elapsed", "result >= 6 && result < 100 && result % 6 == 0",
	    DIAG_EVENT_RETURN);
	add(e, f.pid, 2, "$arg1", NULL, DIAG_EVENT_CALL); /* shares the entry jump */
	add(e, f.pid, 3, "$arg1", NULL, DIAG_EVENT_END); /* at each exit, tail calls included */
	fixture_go(&f);
	if (!serve_line(e, &f, line, sizeof(line))) {
		int st = fixture_reap(&f);
		fprintf(stderr, "tail-%s-%s: the fixture ended before its warm-up did: status 0x%x\n",
			opt, pie, st);
		CHECK(false);
		diag_engine_free(e);
		return;
	}
	CHECK_EQ_STR(line, "warm");
	/* the return sites the warm-up named: placed at a dispatch after the drain that saw them */
	bool tails = !strcmp(opt, "O2");
	struct diag_probe_info info;
	/* the caller's loop, and wrap's call of tailer */
	size_t want = fast && tails ? 2 : 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do { /* bounded: 10 s */
		struct pollfd p = {diag_engine_fd(e), POLLIN, 0};
		poll(&p, 1, 50);
		diag_engine_dispatch(e);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (return_sites(e, f.pid, &info) < want && now.tv_sec - t0.tv_sec < 10);
	CHECK_EQ_INT(return_sites(e, f.pid, &info), want);
	diag_engine_dispatch(e); /* the warm-up's last records */
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)0, &info), 0);
	fprintf(stderr, "  warm-up: lost %llu pending %llu\n", (unsigned long long)info.lost_returns, (unsigned long long)info.pending);
	uint64_t warm_events = t.n[0], warm_calls = t.n[2], warm_spins = t.n[1];
	int64_t warm_sum = t.sum[0];
	fixture_go(&f);
	CHECK(serve_line(e, &f, line, sizeof(line)));
	long calls = 0, spins = 0, sum = 0, jumped = 0;
	CHECK_EQ_INT(sscanf(line, "calls %ld spins %ld sum %ld jumped %ld", &calls, &spins, &sum,
			    &jumped), 4);
	CHECK(serve_line(e, &f, line, sizeof(line)));
	CHECK_EQ_STR(line, "done");
	diag_engine_dispatch(e); /* what the rings hold now */
	int64_t s16 = 0, n16 = 0, outer = 0, e16 = 0;
	for (long x = 0; x < 16; x++)
		outer += model(x, &s16, &n16, &e16);
	/* the program's own results are unchanged */
	CHECK_EQ_INT(calls, threads * ROUNDS * n16);
	CHECK_EQ_INT(jumped, threads * JUMP_ROUNDS);
	CHECK_EQ_INT(spins, threads * (ROUNDS * 4 - JUMP_ROUNDS));
	CHECK_EQ_INT(sum, threads * (ROUNDS * outer - JUMP_ROUNDS * 18));
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)0, &info), 0);
	size_t jumps = 0, int3_sites = 0;
	for (size_t i = 0; i < info.naddrs; i++) {
		jumps += info.inst[i].fast;
		if (info.inst[i].fast)
			continue;
		fprintf(stderr, "  int3 at %s: %s\n", info.inst[i].what, info.inst[i].why);
		/* via's: no jump fits, the int3 says why */
		if (fast && !strncmp(info.inst[i].what, "return site", 11) &&
		    strstr(info.inst[i].why, "int3: ") == info.inst[i].why)
			int3_sites++;
	}
	for (size_t i = 0; i < info.nskips && i < DIAG_PROBE_MAX_SKIPS; i++)
		fprintf(stderr, "  skipped %s: %s\n", info.skips[i].what, info.skips[i].reason);
	fprintf(stderr, "tail-%s-%s %s x%d: %zu instances, %zu jumps, %zu return sites; "
		"events %llu (warm-up %llu), lost %llu, dropped %llu, spin elapsed min %lld ns, "
		"errors %d %s\n", opt, pie, fast ? "jump path" : "int3s", threads, info.naddrs, jumps,
		return_sites(e, f.pid, &info), (unsigned long long)t.n[0],
		(unsigned long long)warm_events, (unsigned long long)info.lost_returns,
		(unsigned long long)info.dropped, (long long)t.min[1], t.errors, t.last_error);
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)0, &info), 0);
	CHECK_EQ_INT(info.dropped, 0);
	CHECK_EQ_INT(info.fast, fast);
	CHECK_EQ_INT(int3_sites, 0);
	CHECK_EQ_INT(jumps, fast ? info.naddrs - int3_sites : 0);
	CHECK_EQ_INT(info.nskips, 0);
	/* every entry seen: the warm-up's and the rounds' */
	CHECK_EQ_INT(t.n[2], (uint64_t)(threads * n16 + calls));
	CHECK_EQ_INT(warm_calls, (uint64_t)(threads * n16));
	/* after the warm-up: every return exactly once, with its result */
	CHECK_EQ_INT(t.n[0] - warm_events, (uint64_t)(calls - jumped));
	CHECK_EQ_INT(t.sum[0] - warm_sum, threads * (ROUNDS * s16 - JUMP_ROUNDS * 18));
	CHECK_EQ_INT(t.n[1] - warm_spins, (uint64_t)spins);
	/* the warm-up's returns: each an event or counted lost, never both */
	CHECK_EQ_INT(warm_events + info.lost_returns, (uint64_t)(threads * n16));
	if (!fast || !tails)
		CHECK_EQ_INT(info.lost_returns, 0);
	/* elapsed includes the tail-called callee's time (without it: well under 1 us). The
	 * ring's clock is the TSC scaled by a slope calibrated at start-up, which can read a few
	 * percent short of CLOCK_MONOTONIC early on (seen 1.3%): 10% of slack, not 100% */
	CHECK(t.min[1] >= SPIN_NS * 9 / 10);
	/* end events: one per call at the exit it takes; at -O2 the `jmp spin` is that exit even
	 * for the calls that spin() longjmps out of, and the register is read there (x - 4 at the
	 * `jmp wrap`: the exit's, not the entry's) */
	fprintf(stderr, "  end events %llu, $arg1 sum %lld\n", (unsigned long long)t.n[3],
		(long long)t.sum[3]);
	CHECK_EQ_INT(t.n[3], t.n[2] - (uint64_t)(tails ? 0 : jumped));
	if (tails)
		CHECK_EQ_INT(t.sum[3], threads * ((ROUNDS + 1) * e16 - JUMP_ROUNDS * (6 - -2)));
	CHECK_EQ_INT(info.pending, 0); /* the longjmp'd frames left nothing open */
	CHECK_EQ_INT(t.errors, 0);
	fixture_go(&f);
	diag_engine_free(e);
	fixture_reap(&f);
}

int main(void)
{
	static const char *opts[] = {"O0", "O2"}, *pies[] = {"pie", "nopie"};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			run(opts[i], pies[j], true, THREADS);
	run("O2", "pie", false, 1);
	return CHECK_DONE();
}
