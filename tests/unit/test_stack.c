/* test_stack: the `stack` value. The language part (stack, stack(N), errors, never the fast
 * path, folded text unquoted, comparisons) on a fake provider; then the engine against the deep
 * fixture at -O0/-O2, PIE and non-PIE (-O2 has no frame pointers): every frame name matches
 * gdb's `bt` at the same breakpoint, for a 5-frame chain and a 53-frame recursion, and the
 * depth bound (default 32, stack(3), stack(128)) is respected. */
#include <poll.h>

#include "check.h"
#include "fixture_proc.h"
#include "engine/engine.h"
#include "expr/expr.h"

#define MAX_VALUES 8
#define VALUE_CAP (DIAG_EXPR_MAX_BYTES + 64)
#define NPROBES 5

struct collected {
	int n[NPROBES];
	char vals[NPROBES][MAX_VALUES][VALUE_CAP];
	int bad_kinds;
};

/* ---- the language, with a fake stack provider ---- */

static int fake_stack(void *arg, int max, char *out, size_t cap)
{
	int *seen_max = arg;
	*seen_max = max;
	return snprintf(out, cap, "main;worker;handle \"x\"");
}

static int failing_stack(void *arg, int max, char *out, size_t cap)
{
	(void)arg;
	(void)max;
	snprintf(out, cap, "thread 7 is gone");
	return -3;
}

static void eval_text(const char *src, const struct diag_expr_ctx *ctx, char *text, size_t cap,
		      enum diag_value_kind *kind)
{
	struct diag_expr_scope sc = {.elf_path = NULL};
	struct diag_expr *x = NULL;
	struct diag_error err = {0};
	int r = diag_expr_compile(src, &sc, &x, &err);
	if (r < 0)
		fprintf(stderr, "compile %s: %s\n", src, err.msg);
	CHECK_EQ_INT(r, 0);
	if (!x)
		return;
	CHECK(!diag_expr_registers_only(x)); /* always the exact (int3) path */
	static struct diag_expr_result res;
	struct diag_value v;
	diag_expr_eval(x, ctx, &res);
	diag_expr_render(x, &res, text, cap, &v);
	*kind = v.kind;
	diag_expr_free(x);
}

static void expect_compile_error(const char *src, const char *msg)
{
	struct diag_expr_scope sc = {.elf_path = NULL};
	struct diag_expr *x = NULL;
	struct diag_error err = {0};
	CHECK(diag_expr_compile(src, &sc, &x, &err) < 0);
	CHECK_EQ_STR(err.msg, msg);
	diag_expr_free(x);
}

static void test_language(void)
{
	diag_regs regs = {0};
	int seen_max = 0;
	struct diag_expr_ctx ctx = {.regs = &regs, .stack = fake_stack, .stack_arg = &seen_max};
	char text[VALUE_CAP];
	enum diag_value_kind kind;

	eval_text("stack", &ctx, text, sizeof(text), &kind);
	CHECK_EQ_STR(text, "main;worker;handle \"x\""); /* folded text as is, not quoted */
	CHECK_EQ_INT(kind, DIAG_VALUE_STRING);
	CHECK_EQ_INT(seen_max, DIAG_EXPR_STACK_DEFAULT);
	eval_text("stack()", &ctx, text, sizeof(text), &kind);
	CHECK_EQ_INT(seen_max, 32);
	eval_text("stack(128)", &ctx, text, sizeof(text), &kind);
	CHECK_EQ_INT(seen_max, 128);
	eval_text("stack(1)", &ctx, text, sizeof(text), &kind);
	CHECK_EQ_INT(seen_max, 1);
	eval_text("stack == \"main;worker;handle \\\"x\\\"\"", &ctx, text, sizeof(text), &kind);
	CHECK_EQ_STR(text, "1");
	eval_text("stack != \"main\"", &ctx, text, sizeof(text), &kind);
	CHECK_EQ_STR(text, "1");

	ctx.stack = failing_stack;
	eval_text("stack", &ctx, text, sizeof(text), &kind);
	CHECK_EQ_STR(text, "<stack: thread 7 is gone>");
	CHECK_EQ_INT(kind, DIAG_VALUE_ERROR);
	ctx.stack = NULL; /* e.g. a register snapshot: no thread to walk */
	eval_text("stack", &ctx, text, sizeof(text), &kind);
	CHECK_EQ_STR(text, "<stack: not available at this hit>");
	CHECK_EQ_INT(kind, DIAG_VALUE_ERROR);

	expect_compile_error("stack(0)", "value: the depth of stack() must be a constant 1..128 at 1:7");
	expect_compile_error("stack(129)", "value: the depth of stack() must be a constant 1..128 at 1:7");
	expect_compile_error("stack($rdi)", "value: the depth of stack() must be a constant 1..128 at 1:7");
	expect_compile_error("stack(1, 2)", "value: stack() takes at most one argument (the depth) at 1:1");
	expect_compile_error("stack + 1", "value: operator needs numbers (type string) at 1:1");
	expect_compile_error("stak(2)",
			     "value: unknown function 'stak'; known: str(p[, max]), hex(x), bytes(p, n), stack([depth]) at 1:1");
}

/* ---- gdb's bt as the oracle ---- */

/* The function names of gdb's `bt` at the (skip+1)-th hit of `break leaf`, folded root first. */
static int gdb_folded(const char *path, int skip, char *out, size_t cap)
{
	char cmd[8192];
	snprintf(cmd, sizeof(cmd),
		 "gdb -batch -nx -ex 'set debuginfod enabled off' -ex 'set pagination off' "
		 "-ex 'break leaf' -ex 'ignore 1 %d' -ex 'run nowait' -ex 'bt' '%s' 2>/dev/null </dev/null",
		 skip, path);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	static char names[256][128];
	int n = 0;
	char line[1024];
	while (fgets(line, sizeof(line), p) && n < 256) {
		if (line[0] != '#')
			continue;
		const char *s = strchr(line, ' ');
		while (s && *s == ' ')
			s++;
		if (s && strncmp(s, "0x", 2) == 0 && (s = strstr(s, " in ")))
			s += 4;
		if (s && sscanf(s, "%127[^ (]", names[n]) == 1)
			n++;
	}
	int st = pclose(p);
	if (n == 0) {
		fprintf(stderr, "gdb gave no backtrace for %s (status %d)\n", path, st);
		return -1;
	}
	size_t used = 0;
	out[0] = '\0';
	for (int i = n - 1; i >= 0; i--)
		used += (size_t)snprintf(out + used, cap - used, "%s%s", names[i], i ? ";" : "");
	return n;
}

/* The innermost `keep` frames of a folded stack, after "...;". */
static void innermost(const char *folded, int keep, char *out, size_t cap)
{
	int frames = 1;
	for (const char *p = folded; *p; p++)
		frames += *p == ';';
	const char *s = folded;
	for (int skip = frames - keep; skip > 0; skip--)
		s = strchr(s, ';') + 1;
	snprintf(out, cap, "%s%s", frames > keep ? "...;" : "", s);
}

/* ---- the engine on the deep fixture ---- */

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	struct collected *c = ctx;
	int id = (int)(intptr_t)h->cookie;
	if (h->value.kind != DIAG_VALUE_STRING) {
		fprintf(stderr, "probe %d: value kind %d: %s\n", id, h->value.kind, h->value.text);
		c->bad_kinds++;
	}
	if (id >= 0 && id < NPROBES && c->n[id] < MAX_VALUES)
		snprintf(c->vals[id][c->n[id]++], VALUE_CAP, "%s", h->value.text);
}

/* Serve until the fixture prints "done <sum>"; returns 0 and its line. */
static int serve_until_done(struct diag_engine *e, struct fixture *f, char *done, size_t cap)
{
	char line[512];
	for (;;) {
		int got;
		while ((got = fixture_line(f, line, sizeof(line))) == 1)
			if (strncmp(line, "done", 4) == 0) {
				snprintf(done, cap, "%s", line);
				return 0;
			}
		if (got < 0)
			return -1;
		struct pollfd p[2] = {{diag_engine_fd(e), POLLIN, 0}, {f->out_fd, POLLIN, 0}};
		if (poll(p, 2, 60000) == 0) {
			fprintf(stderr, "timeout waiting for 'done'\n");
			return -1;
		}
		diag_engine_dispatch(e);
	}
}

static void add_probe(struct diag_engine *e, pid_t pid, const char *target, const char *value,
		      int id)
{
	struct diag_probe_def def = {.target = target, .value = value, .event = DIAG_EVENT_CALL,
				     .cookie = (void *)(intptr_t)id};
	struct diag_error err = {0};
	int r = diag_engine_probe_add(e, pid, &def, &err);
	if (r < 0)
		fprintf(stderr, "probe_add %s %s: %s\n", target, value, err.msg);
	CHECK_EQ_INT(r, 0);
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, pid, def.cookie, &info), 0);
	CHECK(!info.fast); /* a stack needs the thread stopped */
}

static void test_fixture(const char *opt, const char *pie)
{
	const char *path = fixture_path("deep", opt, pie);
	char chain[4096], recursion[8192], want[8192];
	CHECK_EQ_INT(gdb_folded(path, 0, chain, sizeof(chain)), 5);
	CHECK_EQ_INT(gdb_folded(path, 3, recursion, sizeof(recursion)), 53);
	CHECK_EQ_STR(chain, "main;a;b;c;leaf"); /* gdb itself sees the whole chain */

	static struct collected col;
	memset(&col, 0, sizeof(col));
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .ctx = &col};
	struct diag_engine *e = NULL;
	CHECK_EQ_INT(diag_engine_new(&cb, &e), 0);
	struct fixture f;
	char *argv[] = {"deep", NULL};
	char line[4200];
	CHECK_EQ_INT(fixture_start(&f, path, argv), 0);
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	add_probe(e, f.pid, "leaf", "stack", 0);
	add_probe(e, f.pid, "leaf", "stack(3)", 1);
	add_probe(e, f.pid, "leaf", "stack(128)", 2);
	add_probe(e, f.pid, "c", "stack", 3); /* an entry where the CFA moves at the first insn */
	add_probe(e, f.pid, "rec", "stack(1)", 4);
	fixture_go(&f);
	char done[512] = "", unprobed[512] = "";
	CHECK_EQ_INT(serve_until_done(e, &f, done, sizeof(done)), 0);
	struct diag_probe_info info;
	if (diag_engine_probe_info(e, f.pid, (void *)(intptr_t)4, &info) == 0 && info.hits)
		fprintf(stderr, "deep-%s-%s: rec stack(1): %llu hits, %.1f us stopped per hit\n", opt,
			pie, (unsigned long long)info.hits, info.stopped_ns / 1e3 / (double)info.hits);
	diag_engine_free(e);
	fixture_reap(&f); /* its exit status went to the engine's wait loop */
	/* the target's own result is what it computes without probes */
	snprintf(line, sizeof(line), "'%s' nowait", path);
	FILE *p = popen(line, "r");
	CHECK(p && fgets(unprobed, sizeof(unprobed), p));
	if (p)
		pclose(p);
	unprobed[strcspn(unprobed, "\n")] = '\0';
	CHECK_EQ_STR(done, unprobed);

	fprintf(stderr, "deep-%s-%s: %s | %.60s...\n", opt, pie, col.vals[0][0], col.vals[2][3]);
	CHECK_EQ_INT(col.bad_kinds, 0);
	CHECK_EQ_INT(col.n[0], 4);
	CHECK_EQ_INT(col.n[1], 4);
	CHECK_EQ_INT(col.n[2], 4);
	CHECK_EQ_INT(col.n[3], 3);
	CHECK_EQ_INT(col.n[4], MAX_VALUES); /* 51 hits, the first 8 kept */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_STR(col.vals[0][i], chain);
		CHECK_EQ_STR(col.vals[2][i], chain);
		innermost(chain, 3, want, sizeof(want));
		CHECK_EQ_STR(col.vals[1][i], want);
		CHECK_EQ_STR(col.vals[3][i], "main;a;b;c");
	}
	CHECK_EQ_STR(col.vals[2][3], recursion); /* 53 frames, all within stack(128) */
	innermost(recursion, 32, want, sizeof(want));
	CHECK_EQ_STR(col.vals[0][3], want);     /* the default bound: 32 frames */
	innermost(recursion, 3, want, sizeof(want));
	CHECK_EQ_STR(col.vals[1][3], want);
	CHECK_EQ_STR(col.vals[4][0], "...;rec");
}

int main(void)
{
	test_language();
	const char *opts[] = {"O0", "O2"}, *pies[] = {"pie", "nopie"};
	for (int o = 0; o < 2; o++)
		for (int p = 0; p < 2; p++)
			test_fixture(opts[o], pies[p]);
	return CHECK_DONE();
}
