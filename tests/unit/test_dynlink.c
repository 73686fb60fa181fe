/* test_dynlink: a probe on a library that is not loaded yet is pending, applies when the
 * program dlopen()s it (all its calls seen), is retired when it is dlclose()d, and applies
 * again when it is loaded again; at -O0/-O2, PIE and non-PIE, fast and exact values. */
#include <poll.h>

#include "check.h"
#include "fixture_proc.h"
#include "engine/engine.h"

struct tally {
	uint64_t hits[2];
	int removed, applied;
};

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	((struct tally *)ctx)->hits[(intptr_t)h->cookie - 1]++;
}

static void on_state(void *ctx, pid_t pid, void *cookie, enum diag_probe_state st, const char *e)
{
	(void)pid;
	(void)cookie;
	(void)e;
	struct tally *t = ctx;
	t->removed += st == DIAG_PROBE_REMOVED;
	t->applied += st == DIAG_PROBE_APPLIED;
}

static int serve(struct diag_engine *e, struct fixture *f, const char *until, long *val)
{
	char line[256];
	for (;;) {
		int got;
		while ((got = fixture_line(f, line, sizeof(line))) == 1) {
			sscanf(line, "%*s %ld", val);
			if (!strcmp(line, until))
				return 0;
		}
		if (got < 0)
			return -1;
		struct pollfd p[2] = {{diag_engine_fd(e), POLLIN, 0}, {f->out_fd, POLLIN, 0}};
		if (poll(p, 2, 60000) == 0)
			return -1;
		diag_engine_dispatch(e);
	}
}

static enum diag_probe_state state(struct diag_engine *e, pid_t pid, int k)
{
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, pid, (void *)(intptr_t)k, &info), 0);
	return info.state;
}

static void run(const char *opt, const char *pie)
{
	struct tally t = {0};
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .on_probe_state = on_state, .ctx = &t};
	struct diag_engine *e;
	CHECK_EQ_INT(diag_engine_new(&cb, &e), 0);
	char lib[4096];
	snprintf(lib, sizeof(lib), "%s/libdlfx.so", getenv("DIAG_FIXTURE_DIR"));
	struct fixture f;
	char *argv[] = {"dl", lib, NULL}, line[128];
	CHECK_EQ_INT(fixture_start(&f, fixture_path("dl", opt, pie), argv), 0);
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	struct diag_probe_def fast = {.target = "libdlfx.so:dlfx_work", .value = "$arg1",
				      .cookie = (void *)1};
	/* a condition reading memory: this one takes the int3 path */
	struct diag_probe_def exact = {.target = "libdlfx:dlfx_work", .value = "$arg1",
				       .condition = "str($rsp) != \"\" || 1", .cookie = (void *)2};
	CHECK_EQ_INT(diag_engine_probe_add(e, f.pid, &fast, &err), 0);
	CHECK_EQ_INT(diag_engine_probe_add(e, f.pid, &exact, &err), 0);
	CHECK_EQ_INT(state(e, f.pid, 1), DIAG_PROBE_PENDING);
	fixture_go(&f);
	long v = 0;
	CHECK_EQ_INT(serve(e, &f, "closed", &v), 0);
	CHECK_EQ_INT(t.hits[0], 100); /* applied before the library's first call */
	CHECK_EQ_INT(t.hits[1], 100);
	CHECK_EQ_INT(t.removed, 2);   /* both retired at dlclose */
	CHECK_EQ_INT(state(e, f.pid, 1), DIAG_PROBE_PENDING);
	fixture_go(&f);
	CHECK_EQ_INT(serve(e, &f, "done", &v), 0);
	CHECK_EQ_INT(t.hits[0], 200); /* and again after the second dlopen */
	CHECK_EQ_INT(t.hits[1], 200);
	CHECK_EQ_INT(v, 10000); /* the program's own sum of round 2 (read before "done") */
	fprintf(stderr, "dl-%s-%s: hits %llu/%llu, applied %d removed %d\n", opt, pie,
		(unsigned long long)t.hits[0], (unsigned long long)t.hits[1], t.applied, t.removed);
	fixture_go(&f);
	diag_engine_free(e);
	fixture_reap(&f);
}

int main(void)
{
	static const char *opts[] = {"O0", "O2"}, *pies[] = {"pie", "nopie"};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			run(opts[i], pies[j]);
	return CHECK_DONE();
}
