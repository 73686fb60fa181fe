/* test_engine: the engine against real fixture processes, at -O0/-O2, PIE and non-PIE:
 * exact hit counts and values with 1 and 4 threads, thread churn, fork + exec, a libc probe,
 * detach mid-run restoring every byte while the target's own result stays right, and the
 * errors of bad targets. */
#include <poll.h>
#include <sys/ptrace.h>

#include "check.h"
#include "fixture_proc.h"
#include "engine/engine.h"

struct tally {
	uint64_t dropped;
	uint64_t hits, sum_arg1, per_arg2[64], child_hits, exits;
	pid_t main_pid;
	int bad_values;
};

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	struct tally *t = ctx;
	t->hits++;
	if (h->pid != t->main_pid)
		t->child_hits++;
	if (h->value.kind == DIAG_VALUE_SIGNED || h->value.kind == DIAG_VALUE_UNSIGNED)
		t->sum_arg1 += h->value.u;
	else if (h->value.kind != DIAG_VALUE_NONE)
		t->bad_values++;
}

static void on_process(void *ctx, pid_t pid, enum diag_proc_event what, pid_t other)
{
	(void)pid;
	(void)other;
	if (what == DIAG_PROC_EXIT)
		((struct tally *)ctx)->exits++;
}

/* Serve until the fixture's main process exited (its last hits are drained at exit). */
static void serve_exit(struct diag_engine *e, struct tally *t)
{
	while (diag_engine_attached(e, t->main_pid)) {
		struct pollfd p = {diag_engine_fd(e), POLLIN, 0};
		if (poll(&p, 1, 60000) == 0) {
			fprintf(stderr, "timeout waiting for the fixture to exit\n");
			return;
		}
		diag_engine_dispatch(e);
	}
	struct diag_engine_stats st;
	diag_engine_get_stats(e, &st);
	t->dropped = st.dropped;
}

/* Serve the engine until the fixture printed a line starting with `until`; collects "key N"
 * lines into vals (sum, calls, child-sum, child-exit, grandchild-exit). */
struct results {
	long long sum, calls, child_sum, child_exit, grandchild_exit;
};

static void parse_line(const char *line, struct results *r)
{
	sscanf(line, "sum %lld", &r->sum);
	sscanf(line, "calls %lld", &r->calls);
	sscanf(line, "child-sum %lld", &r->child_sum);
	sscanf(line, "child-exit %lld", &r->child_exit);
	sscanf(line, "grandchild-exit %lld", &r->grandchild_exit);
}

static int serve_until(struct diag_engine *e, struct fixture *f, const char *until,
		       struct results *r)
{
	char line[512];
	for (;;) {
		int got;
		while ((got = fixture_line(f, line, sizeof(line))) == 1) {
			parse_line(line, r);
			if (strncmp(line, until, strlen(until)) == 0)
				return 0;
		}
		if (got < 0)
			return -1;
		struct pollfd p[2] = {{diag_engine_fd(e), POLLIN, 0}, {f->out_fd, POLLIN, 0}};
		if (poll(p, 2, 60000) == 0) {
			fprintf(stderr, "timeout waiting for '%s'\n", until);
			return -1;
		}
		diag_engine_dispatch(e);
	}
}

static struct diag_engine *new_engine(struct tally *t)
{
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .on_process = on_process, .ctx = t};
	struct diag_engine *e = NULL;
	CHECK_EQ_INT(diag_engine_new(&cb, &e), 0);
	return e;
}

static long long expected_sum(long threads, long calls)
{
	long long s = 0;
	for (long id = 0; id < threads; id++)
		for (long i = 0; i < calls; i++)
			s += i * 3 + id * 2 + 7;
	return s;
}

static int start_attached(struct diag_engine *e, struct fixture *f, const char *path,
			  char *const argv[], struct tally *t)
{
	char line[128];
	if (fixture_start(f, path, argv) < 0 || fixture_line_wait(f, line, sizeof(line)) != 1)
		return -1;
	struct diag_error err = {0};
	int r = diag_engine_attach(e, f->pid, &err);
	if (r < 0)
		fprintf(stderr, "attach: %s\n", err.msg);
	t->main_pid = f->pid;
	return r;
}

static void add_probe(struct diag_engine *e, pid_t pid, const char *target, const char *value,
		      void *cookie)
{
	struct diag_probe_def def = {.target = target, .value = value, .event = DIAG_EVENT_CALL,
				     .cookie = cookie};
	struct diag_error err = {0};
	int r = diag_engine_probe_add(e, pid, &def, &err);
	if (r < 0)
		fprintf(stderr, "probe_add %s: %s\n", target, err.msg);
	CHECK_EQ_INT(r, 0);
}

/* exact: every probe takes the int3 path (no ring, no drops possible) */
static void test_counts(const char *opt, const char *pie, const char *threads, long calls,
			bool exact)
{
	struct tally t = {0};
	if (exact)
		setenv("DIAG_NO_FASTPATH", "1", 1);
	struct diag_engine *e = new_engine(&t);
	unsetenv("DIAG_NO_FASTPATH");
	struct fixture f;
	char ncalls[32];
	snprintf(ncalls, sizeof(ncalls), "%ld", calls);
	char *argv[] = {"work", (char *)threads, ncalls, "linger", NULL};
	CHECK_EQ_INT(start_attached(e, &f, fixture_path("work", opt, pie), argv, &t), 0);
	add_probe(e, f.pid, "work", "$arg1", (void *)1);
	fixture_go(&f);
	struct results r = {0};
	CHECK_EQ_INT(serve_until(e, &f, "calls", &r), 0);
	/* every call counted exactly, even those whose records a full ring dropped */
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	CHECK_EQ_INT(info.hits, atol(threads) * calls);
	fixture_go(&f); /* let it exit */
	serve_exit(e, &t);
	long nthreads = atol(threads);
	fprintf(stderr, "work-%s-%s threads=%ld calls=%ld %s: hits %llu dropped %llu\n", opt, pie,
		nthreads, calls, exact ? "exact" : "fast", (unsigned long long)t.hits,
		(unsigned long long)t.dropped);
	if (exact) /* no missed and no duplicate hits */
		CHECK_EQ_INT(t.hits, nthreads * calls);
	/* every call is seen: as an event, or (fast path, ring full) counted as dropped */
	CHECK_EQ_INT(t.hits + t.dropped, nthreads * calls);
	if (!t.dropped)
		CHECK_EQ_INT(t.sum_arg1, (unsigned long long)nthreads * (calls * (calls - 1) / 2));
	CHECK_EQ_INT(t.bad_values, 0);
	CHECK_EQ_INT(r.sum, expected_sum(nthreads, calls));
	diag_engine_free(e);
	fixture_reap(&f);
}

static void test_churn(void)
{
	struct tally t = {0};
	struct diag_engine *e = new_engine(&t);
	struct fixture f;
	char *argv[] = {"work", "1", "1000", "churn", NULL};
	CHECK_EQ_INT(start_attached(e, &f, fixture_path("work", "O2", "pie"), argv, &t), 0);
	add_probe(e, f.pid, "work", "$arg1", (void *)1);
	fixture_go(&f);
	struct results r = {0};
	CHECK_EQ_INT(serve_until(e, &f, "calls", &r), 0);
	serve_exit(e, &t);
	CHECK_EQ_INT(t.hits, 1000);
	CHECK_EQ_INT(t.sum_arg1, 999 * 1000 / 2);
	long long want = 0;
	for (long i = 0; i < 1000; i++)
		want += i * 3 + 2 + 2;
	CHECK_EQ_INT(r.sum, want);
	diag_engine_free(e);
	fixture_reap(&f);
}

static void test_fork_exec(const char *pie)
{
	struct tally t = {0};
	struct diag_engine *e = new_engine(&t);
	struct fixture f;
	char *argv[] = {"work", "1", "500", "fork", NULL};
	CHECK_EQ_INT(start_attached(e, &f, fixture_path("work", "O0", pie), argv, &t), 0);
	add_probe(e, f.pid, "work", "$arg1", (void *)1);
	fixture_go(&f);
	struct results r = {-1, -1, -1, -1, -1};
	CHECK_EQ_INT(serve_until(e, &f, "child-exit", &r), 0);
	serve_exit(e, &t);
	CHECK_EQ_INT(t.hits, 1000);       /* 500 in the parent, 500 in the forked child */
	CHECK_EQ_INT(t.child_hits, 500);
	CHECK_EQ_INT(r.child_sum, expected_sum(1, 500) + 500 * 200);
	CHECK_EQ_INT(r.grandchild_exit, 0); /* the exec'd image ran */
	CHECK_EQ_INT(r.child_exit, 0);
	CHECK(t.exits >= 2);                /* child and grandchild exits were seen */
	diag_engine_free(e);
	fixture_reap(&f);
}

static void test_libc(void)
{
	struct tally t = {0};
	struct diag_engine *e = new_engine(&t);
	struct fixture f;
	char *argv[] = {"work", "2", "3000", "libc", NULL};
	CHECK_EQ_INT(start_attached(e, &f, fixture_path("work", "O2", "nopie"), argv, &t), 0);
	add_probe(e, f.pid, "libc.so.6:getppid", NULL, (void *)1);
	fixture_go(&f);
	struct results r = {0};
	CHECK_EQ_INT(serve_until(e, &f, "calls", &r), 0);
	serve_exit(e, &t);
	CHECK_EQ_INT(t.hits + t.dropped, 6000);
	CHECK_EQ_INT(r.sum, expected_sum(2, 3000) + 6000);
	diag_engine_free(e);
	fixture_reap(&f);
}

/* Detach while the target is calling the probed function from 4 threads: afterwards the code
 * bytes equal the ones before the probe and the program's own result is exact. */
static void test_detach_restores(const char *opt, const char *pie)
{
	struct tally t = {0};
	struct diag_engine *e = new_engine(&t);
	struct fixture f;
	char *argv[] = {"work", "4", "10000000", NULL};
	CHECK_EQ_INT(start_attached(e, &f, fixture_path("work", opt, pie), argv, &t), 0);
	add_probe(e, f.pid, "work", "$arg2", (void *)1);
	add_probe(e, f.pid, "twice", NULL, (void *)2);
	struct diag_probe_info info[2];
	uint8_t before[2][16], after[2][16];
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)f.pid);
	int mem = open(path, O_RDONLY);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)(intptr_t)(i + 1), &info[i]), 0);
		CHECK_EQ_INT(info[i].naddrs, 1);
		CHECK_EQ_INT(info[i].state, DIAG_PROBE_APPLIED);
		pread(mem, before[i], 16, (off_t)info[i].addrs[0]);
		CHECK(before[i][0] == 0xCC || before[i][0] == 0xE9); /* int3, or jmp (fast path) */
	}
	fixture_go(&f);
	while (t.hits < 20000) {
		struct pollfd p = {diag_engine_fd(e), POLLIN, 0};
		if (poll(&p, 1, 60000) == 0)
			break;
		diag_engine_dispatch(e);
	}
	CHECK(t.hits >= 20000);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_detach(e, f.pid, &err), 0);
	CHECK(!diag_engine_attached(e, f.pid));
	/* the original bytes, as the ELF file has them */
	int exe;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)f.pid);
	exe = open(path, O_RDONLY);
	for (int i = 0; i < 2; i++) {
		pread(mem, after[i], 16, (off_t)info[i].addrs[0]);
		CHECK(after[i][0] != before[i][0]);
	}
	/* file bytes: find the file offset through /proc/PID/maps */
	FILE *maps;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)f.pid);
	maps = fopen(path, "r");
	char line[512];
	int compared = 0;
	while (maps && fgets(line, sizeof(line), maps)) {
		unsigned long long lo, hi, off;
		if (sscanf(line, "%llx-%llx %*s %llx", &lo, &hi, &off) != 3)
			continue;
		for (int i = 0; i < 2; i++)
			if (info[i].addrs[0] >= lo && info[i].addrs[0] < hi && strstr(line, "work-")) {
				uint8_t file[16];
				pread(exe, file, 16, (off_t)(info[i].addrs[0] - lo + off));
				CHECK_EQ_INT(memcmp(file, after[i], 16), 0);
				compared++;
			}
	}
	CHECK_EQ_INT(compared, 2);
	/* no diagnose page is left: slot pages, trampolines, the safety handler are r-x
	 * anonymous mappings, the ring a 3 MiB rw one; the fixture has neither of its own */
	if (maps) {
		rewind(maps);
		int ours = 0;
		while (fgets(line, sizeof(line), maps)) {
			unsigned long long lo, hi;
			char perms[8];
			int name = 0;
			if (sscanf(line, "%llx-%llx %7s %*s %*s %*s %n", &lo, &hi, perms, &name) < 3)
				continue;
			bool anon = name == 0 || line[name] == '\n' || line[name] == '\0';
			if (anon && (perms[2] == 'x' || (hi - lo > (3ULL << 20) && hi - lo < (4ULL << 20))))
				ours++;
		}
		CHECK_EQ_INT(ours, 0);
		fclose(maps);
	}
	/* no diagnose page left */
	close(exe);
	close(mem);
	/* the target finishes on its own, with its own result unchanged */
	struct results r = {0};
	char l2[256];
	for (int got; (got = fixture_line_wait(&f, l2, sizeof(l2))) == 1;)
		parse_line(l2, &r);
	CHECK_EQ_INT(r.sum, expected_sum(4, 10000000));
	CHECK_EQ_INT(fixture_reap(&f), 0);
	diag_engine_free(e);
}

static void test_errors(void)
{
	struct tally t = {0};
	struct diag_engine *e = new_engine(&t);
	struct diag_error err = {0};
	CHECK(diag_engine_attach(e, 999999999, &err) < 0);
	CHECK(strstr(err.msg, "no such process") != NULL);
	struct fixture f;
	char *argv[] = {"work", "1", "10", NULL};
	CHECK_EQ_INT(start_attached(e, &f, fixture_path("work", "O2", "pie"), argv, &t), 0);
	struct diag_probe_def def = {.target = "wrok", .event = DIAG_EVENT_CALL, .cookie = (void *)1};
	CHECK(diag_engine_probe_add(e, f.pid, &def, &err) < 0);
	CHECK(strstr(err.msg, "target: ") == err.msg);
	CHECK(strstr(err.msg, "did you mean") != NULL);
	def.target = "work";
	def.value = "$arg9";
	CHECK(diag_engine_probe_add(e, f.pid, &def, &err) < 0);
	CHECK(strstr(err.msg, "value") != NULL);
	def.value = "$arg1";
	def.condition = "$arg1 >";
	CHECK(diag_engine_probe_add(e, f.pid, &def, &err) < 0);
	CHECK(strstr(err.msg, "condition:") == err.msg);
	fprintf(stderr, "condition error: %s\n", err.msg);
	/* none of the failed probes left a byte behind */
	struct diag_engine_stats st;
	diag_engine_get_stats(e, &st);
	CHECK_EQ_INT(st.breakpoints, 0);
	CHECK_EQ_INT(st.probes, 0);
	fixture_go(&f);
	struct results r = {0};
	CHECK_EQ_INT(serve_until(e, &f, "calls", &r), 0);
	CHECK_EQ_INT(t.hits, 0);
	diag_engine_free(e);
	fixture_reap(&f);
}

int main(void)
{
	static const char *opts[] = {"O0", "O2"}, *pies[] = {"pie", "nopie"};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			test_counts(opts[i], pies[j], "1", 20000, false);
			test_counts(opts[i], pies[j], "4", 100000, false);
			test_counts(opts[i], pies[j], "1", 20000, true);
			if (i != j) /* O0-nopie and O2-pie: the 4 x 100k exact case */
				test_counts(opts[i], pies[j], "4", 100000, true);
		}
	test_churn();
	test_fork_exec("pie");
	test_fork_exec("nopie");
	test_libc();
	test_detach_restores("O2", "pie");
	test_detach_restores("O0", "nopie");
	test_errors();
	return CHECK_DONE();
}
