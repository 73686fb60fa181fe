/* test_patch: where a patch may go and what taking it out restores, against the `patch` and
 * `work` fixtures (-O0/-O2, PIE/non-PIE, and patch statically linked):
 *  - data, read-only data and anonymous executable memory are refused, naming the mapping;
 *  - FUNC+OFF and 0xADDR inside an instruction are refused, naming the nearest boundaries;
 *  - code the target rewrote while probed (int3 and jump) is left as the target wrote it, and
 *    the removal says so; a jump's displaced bytes past the jmp are never written back;
 *  - a probe added where another one is counts only its own hits;
 *  - probes per address are limited;
 *  - an IFUNC (strlen) is probed at the implementation the process uses, and gets its hits. */
#include <poll.h>
#include <stdlib.h>

#include "check.h"
#include "fixture_proc.h"
#include "engine/engine.h"

struct tally {
	uint64_t hits;
	uint64_t by_cookie[4]; /* events delivered per cookie 0..3 */
	int removed_notes;
	char note[DIAG_ERRMSG_MAX];
};

static void on_hit(void *ctx, const struct diag_engine_hit *h)
{
	struct tally *t = ctx;
	t->hits++;
	if ((uintptr_t)h->cookie < 4)
		t->by_cookie[(uintptr_t)h->cookie]++;
}

static void on_probe_state(void *ctx, pid_t pid, void *cookie, enum diag_probe_state st,
			   const char *error)
{
	(void)pid;
	(void)cookie;
	struct tally *t = ctx;
	if (st == DIAG_PROBE_REMOVED && error && *error) {
		t->removed_notes++;
		snprintf(t->note, sizeof(t->note), "%s", error);
	}
}

static struct diag_engine *engine_new(struct tally *t, bool int3_only)
{
	struct diag_engine_callbacks cb = {.on_hit = on_hit, .on_probe_state = on_probe_state,
					   .ctx = t};
	struct diag_engine *e = NULL;
	if (int3_only)
		setenv("DIAG_NO_FASTPATH", "1", 1);
	CHECK_EQ_INT(diag_engine_new(&cb, &e), 0);
	unsetenv("DIAG_NO_FASTPATH");
	return e;
}

static void serve_once(struct diag_engine *e, int fd)
{
	struct pollfd p[2] = {{diag_engine_fd(e), POLLIN, 0}, {fd, POLLIN, 0}};
	poll(p, fd >= 0 ? 2 : 1, 1000);
	diag_engine_dispatch(e);
}

/* Serve the engine until the fixture prints a line starting with `prefix`; 0 or -1. */
static int serve_line(struct diag_engine *e, struct fixture *f, const char *prefix, char *line,
		      size_t cap)
{
	for (int rounds = 0; rounds < 60000; rounds++) {
		int got;
		while ((got = fixture_line(f, line, cap)) == 1)
			if (strncmp(line, prefix, strlen(prefix)) == 0)
				return 0;
		if (got < 0)
			break;
		serve_once(e, f->out_fd);
	}
	fprintf(stderr, "no line '%s...' from the fixture\n", prefix);
	return -1;
}

static void say(struct fixture *f, const char *cmd)
{
	if (write(f->in_fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		perror("write to fixture");
}

/* Tell the patch fixture to exit, read it to EOF, reap it: its exit status. */
static int quit(struct fixture *f)
{
	char line[256];
	say(f, "quit\n");
	while (fixture_line_wait(f, line, sizeof(line)) > 0)
		;
	return fixture_reap(f);
}

/* The patch fixture's addresses, from its first lines. */
struct addrs {
	unsigned long long konst, data, jit, rodata;
};

static int start_patch(struct diag_engine *e, struct fixture *f, const char *path,
		       struct addrs *a)
{
	char *argv[] = {"patch", NULL};
	char line[256];
	if (fixture_start_ready(f, path, argv) < 0)
		return -1;
	int seen = 0;
	while (seen < 4 && fixture_line_wait(f, line, sizeof(line)) == 1)
		seen += sscanf(line, "konst %llx", &a->konst) + sscanf(line, "data %llx", &a->data) +
			sscanf(line, "jit %llx", &a->jit) + sscanf(line, "rodata %llx", &a->rodata);
	struct diag_error err = {0};
	int r = seen == 4 ? diag_engine_attach(e, f->pid, &err) : -1;
	if (r < 0)
		fprintf(stderr, "%s: attach: %s\n", path, err.msg);
	return r;
}

/* A fresh engine (int3 only, or with the fast path) attached to a new patch fixture. */
static struct diag_engine *patch_session(struct tally *t, bool int3, struct fixture *f,
					 const char *path, struct addrs *a)
{
	memset(t, 0, sizeof(*t));
	memset(a, 0, sizeof(*a));
	struct diag_engine *e = engine_new(t, int3);
	CHECK_EQ_INT(start_patch(e, f, path, a), 0);
	return e;
}

static void patch_end(struct diag_engine *e, struct fixture *f)
{
	diag_engine_free(e);
	CHECK_EQ_INT(quit(f), 0);
}

static int add(struct diag_engine *e, pid_t pid, const char *target, const char *value,
	       void *cookie, struct diag_error *err)
{
	struct diag_probe_def def = {.target = target, .value = value, .event = DIAG_EVENT_CALL,
				     .cookie = cookie};
	memset(err, 0, sizeof(*err));
	return diag_engine_probe_add(e, pid, &def, err);
}

static long call_konst(struct diag_engine *e, struct fixture *f)
{
	char line[128];
	long v = -1;
	say(f, "call\n");
	if (serve_line(e, f, "konst ", line, sizeof(line)) == 0)
		sscanf(line, "konst %ld", &v);
	return v;
}

static void expect_refused(struct diag_engine *e, pid_t pid, const char *target,
			   const char *want)
{
	struct diag_error err;
	int r = add(e, pid, target, NULL, (void *)99, &err);
	CHECK(r < 0);
	CHECK_CONTAINS(err.msg, want);
	fprintf(stderr, "  %s: %s\n", target, err.msg);
}

/* Items 4 and 5 of issue 15: data, read-only data, a JIT's page; inside an instruction. */
static void test_refusals(const char *opt, const char *pie)
{
	const char *path = fixture_path("patch", opt, pie);
	struct tally t;
	struct fixture f;
	struct addrs a;
	struct diag_engine *e = patch_session(&t, false, &f, path, &a);
	char target[64], want[4400];
	snprintf(target, sizeof(target), "0x%llx", a.data);
	snprintf(want, sizeof(want), "target: 0x%llx is in a non-executable mapping (%s, rw-p)",
		 a.data, path);
	expect_refused(e, f.pid, target, want);
	snprintf(target, sizeof(target), "0x%llx", a.rodata);
	snprintf(want, sizeof(want), "target: 0x%llx is in a non-executable mapping (%s, r--p)",
		 a.rodata, path);
	expect_refused(e, f.pid, target, want);
	snprintf(target, sizeof(target), "0x%llx", a.jit);
	snprintf(want, sizeof(want), "target: 0x%llx is in an executable mapping not backed by a "
		 "file (anonymous, r-xp)", a.jit);
	expect_refused(e, f.pid, target, want);
	static const char boundary[] = "is inside the instruction at konst+0 (10 bytes: mov rax, 0x01); "
				       "nearest boundaries: konst+0, konst+10";
	expect_refused(e, f.pid, "konst+2", boundary);
	expect_refused(e, f.pid, "konst+9", boundary);
	snprintf(target, sizeof(target), "0x%llx", a.konst + 2);
	expect_refused(e, f.pid, target, boundary);
	struct diag_engine_stats st;
	diag_engine_get_stats(e, &st);
	CHECK_EQ_INT(st.breakpoints, 0);
	/* boundaries are accepted: konst+10 is its ret, 0x(konst) its start */
	struct diag_error err;
	CHECK_EQ_INT(add(e, f.pid, "konst+10", NULL, (void *)1, &err), 0);
	snprintf(target, sizeof(target), "0x%llx", a.konst);
	CHECK_EQ_INT(add(e, f.pid, target, NULL, (void *)2, &err), 0);
	CHECK_EQ_INT(call_konst(e, &f), 1);
	CHECK_EQ_INT(t.hits, 2);
	/* the data word is intact: the fixture's own value */
	long word = 0;
	char mem[64];
	snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)f.pid);
	int fd = open(mem, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, &word, sizeof(word), (off_t)a.data) == sizeof(word));
	close(fd);
	CHECK_EQ_INT(word, 42);
	patch_end(e, &f);
}

/* FILE:LINE and inlined entries pass the same check (and real ones pass it). */
static void test_lines_inlined(const char *opt)
{
	struct tally t = {0};
	struct diag_engine *e = engine_new(&t, false);
	struct fixture f;
	char *argv[] = {"sym5", NULL};
	CHECK_EQ_INT(fixture_start_ready(&f, fixture_path("sym5", opt, "pie"), argv), 0);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	static const char *const targets[] = {"sym5.c:42", "inl_add", "scale"};
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		int r = add(e, f.pid, targets[i], NULL, (void *)(i + 1), &err);
		if (r < 0)
			fprintf(stderr, "%s -O%s: %s\n", targets[i], opt, err.msg);
		CHECK_EQ_INT(r, 0);
	}
	diag_engine_free(e);
	fixture_kill(&f);
}

/* Item 7: the target rewrites its probed function; the removal must leave the new code. */
static void test_rewrite(const char *opt, const char *pie, bool int3)
{
	struct tally t;
	struct fixture f;
	struct addrs a;
	struct diag_engine *e = patch_session(&t, int3, &f, fixture_path("patch", opt, pie), &a);
	struct diag_error err;
	CHECK_EQ_INT(add(e, f.pid, "konst", "$arg1", (void *)1, &err), 0);
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	CHECK_EQ_INT(info.fast, !int3);
	CHECK_EQ_INT(call_konst(e, &f), 1);
	char line[128];
	say(&f, "rewrite\n");
	CHECK_EQ_INT(serve_line(e, &f, "rewritten", line, sizeof(line)), 0);
	CHECK_EQ_INT(diag_engine_probe_remove(e, f.pid, (void *)1), 0);
	CHECK_EQ_INT(t.removed_notes, 1);
	CHECK_CONTAINS(t.note, "instance at function konst+0x0: left in place: the target "
		       "rewrote the patched bytes");
	CHECK_EQ_INT(call_konst(e, &f), 2);
	/* nothing is left to restore at detach either, and the new code stays */
	CHECK_EQ_INT(diag_engine_detach(e, f.pid, &err), 0);
	say(&f, "call\n");
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	CHECK_EQ_STR(line, "konst 2");
	patch_end(e, &f);
}

/* Item 7 at detach: the rewrite happens under a probe still in place. */
static void test_rewrite_detach(void)
{
	struct tally t;
	struct fixture f;
	struct addrs a;
	struct diag_engine *e = patch_session(&t, false, &f, fixture_path("patch", "O2", "pie"), &a);
	struct diag_error err;
	CHECK_EQ_INT(add(e, f.pid, "konst", NULL, (void *)1, &err), 0);
	char line[128];
	say(&f, "rewrite\n");
	CHECK_EQ_INT(serve_line(e, &f, "rewritten", line, sizeof(line)), 0);
	CHECK_EQ_INT(diag_engine_detach(e, f.pid, &err), 0);
	CHECK_EQ_INT(t.removed_notes, 1);
	say(&f, "call\n");
	CHECK_EQ_INT(fixture_line_wait(&f, line, sizeof(line)), 1);
	CHECK_EQ_STR(line, "konst 2");
	patch_end(e, &f);
}

/* Item 7, the jump's tail: the target changes a byte the jump displaced but never wrote; taking
 * the jump out writes back only the jmp, so the target's byte stays. */
static void test_rewrite_tail(const char *opt, const char *pie)
{
	struct tally t;
	struct fixture f;
	struct addrs a;
	struct diag_engine *e = patch_session(&t, false, &f, fixture_path("patch", opt, pie), &a);
	struct diag_error err;
	CHECK_EQ_INT(add(e, f.pid, "konst", "$arg1", (void *)1, &err), 0);
	struct diag_probe_info info;
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	CHECK(info.fast);
	char line[128];
	say(&f, "rewrite-tail\n");
	CHECK_EQ_INT(serve_line(e, &f, "rewritten", line, sizeof(line)), 0);
	CHECK_EQ_INT(call_konst(e, &f), 1); /* the trampoline runs the displaced copy */
	CHECK_EQ_INT(diag_engine_probe_remove(e, f.pid, (void *)1), 0);
	CHECK_EQ_INT(t.removed_notes, 0); /* what we wrote was ours: restored */
	CHECK_EQ_INT(call_konst(e, &f), 0x1000001);
	patch_end(e, &f);
}

static uint64_t hits_of(struct diag_engine *e, pid_t pid, void *cookie)
{
	struct diag_probe_info info = {0};
	CHECK_EQ_INT(diag_engine_probe_info(e, pid, cookie, &info), 0);
	CHECK(info.fast);
	return info.hits;
}

/* Item 12: a jump probe added where another one is counts its own hits only, and is handed only
 * the hits recorded after it was added (konst at a pace the ring keeps up with: no drops). */
static void test_counts_per_probe(const char *opt, const char *pie)
{
	struct tally t;
	struct fixture f;
	struct addrs ad;
	struct diag_engine *e = patch_session(&t, false, &f, fixture_path("patch", opt, pie), &ad);
	struct diag_error err = {0};
	CHECK_EQ_INT(add(e, f.pid, "konst", "$rsp", (void *)1, &err), 0);
	say(&f, "paced 200000\n");
	for (int i = 0; i < 20000 && hits_of(e, f.pid, (void *)1) < 50000; i++)
		serve_once(e, -1);
	uint64_t a0 = hits_of(e, f.pid, (void *)1);
	CHECK(a0 >= 50000);
	CHECK_EQ_INT(add(e, f.pid, "konst", "$rdi", (void *)2, &err), 0);
	uint64_t b0 = hits_of(e, f.pid, (void *)2), a1 = hits_of(e, f.pid, (void *)1);
	CHECK(b0 <= a1 - a0);
	char line[128];
	CHECK_EQ_INT(serve_line(e, &f, "paced ", line, sizeof(line)), 0);
	CHECK_EQ_STR(line, "paced 200000");
	for (int i = 0; i < 50; i++) /* the last records: the ring is drained every millisecond */
		serve_once(e, -1);
	uint64_t b = hits_of(e, f.pid, (void *)2), a = hits_of(e, f.pid, (void *)1);
	fprintf(stderr, "  first probe %llu hits, %llu events (%llu hits at the second's add); "
		"second %llu hits, %llu events\n", (unsigned long long)a,
		(unsigned long long)t.by_cookie[1], (unsigned long long)a0, (unsigned long long)b,
		(unsigned long long)t.by_cookie[2]);
	CHECK_EQ_INT(a, 200000);
	CHECK(b > 0);
	CHECK(b <= a - a0);
	CHECK(t.by_cookie[1] <= a);
	CHECK(t.by_cookie[2] <= b); /* none of the hits recorded before its add */
	patch_end(e, &f);
}

/* Item 12: probes at one address are limited, and the error names the limit and the count. */
static void test_limit_per_address(void)
{
	struct tally t = {0};
	struct diag_engine *e = engine_new(&t, false);
	struct fixture f;
	char *argv[] = {"work", "1", "10", NULL};
	CHECK_EQ_INT(fixture_start_ready(&f, fixture_path("work", "O2", "pie"), argv), 0);
	struct diag_error err = {0};
	CHECK_EQ_INT(diag_engine_attach(e, f.pid, &err), 0);
	for (intptr_t i = 1; i <= DIAG_PROBE_MAX_PER_ADDR; i++)
		CHECK_EQ_INT(add(e, f.pid, "work", i % 2 ? "$arg1" : NULL, (void *)i, &err), 0);
	int r = add(e, f.pid, "work", NULL, (void *)1000, &err);
	CHECK_EQ_INT(r, -DIAG_E_LIMIT);
	char want[160];
	snprintf(want, sizeof(want), "has %d probes already, the limit per address "
		 "(DIAG_PROBE_MAX_PER_ADDR %d)", DIAG_PROBE_MAX_PER_ADDR, DIAG_PROBE_MAX_PER_ADDR);
	CHECK_CONTAINS(err.msg, want);
	fprintf(stderr, "  %s\n", err.msg);
	/* one removed: room for one more */
	CHECK_EQ_INT(diag_engine_probe_remove(e, f.pid, (void *)1), 0);
	CHECK_EQ_INT(add(e, f.pid, "work", NULL, (void *)1000, &err), 0);
	diag_engine_free(e);
	CHECK_EQ_INT(fixture_finish(&f), 0);
}

/* Item 12: strlen is an IFUNC; the probe goes where the process's strlen calls go. */
static void test_ifunc(const char *path, const char *target, const char *want_note)
{
	struct tally t;
	struct fixture f;
	struct addrs a;
	struct diag_engine *e = patch_session(&t, false, &f, path, &a);
	struct diag_error err;
	int r = add(e, f.pid, target, "$arg1", (void *)1, &err);
	if (r < 0)
		fprintf(stderr, "%s in %s: %s\n", target, path, err.msg);
	CHECK_EQ_INT(r, 0);
	struct diag_probe_info info = {0};
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	CHECK_EQ_INT(info.naddrs, 1);
	CHECK_CONTAINS(info.inst[0].what, want_note);
	fprintf(stderr, "  %s: %s at 0x%llx (%s)\n", target, info.inst[0].what,
		(unsigned long long)info.addrs[0], info.inst[0].fast ? "jump" : "int3");
	char line[128];
	say(&f, "strlen 1000\n");
	CHECK_EQ_INT(serve_line(e, &f, "strlen ", line, sizeof(line)), 0);
	CHECK_EQ_STR(line, "strlen 5000");
	for (int i = 0; i < 100 && t.hits < 1000; i++)
		serve_once(e, -1); /* the ring is drained every millisecond */
	CHECK_EQ_INT(diag_engine_probe_info(e, f.pid, (void *)1, &info), 0);
	CHECK(info.hits >= 1000);
	CHECK(t.hits >= 1000);
	patch_end(e, &f);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* a fixture the test proves harmed dies: report, do not die */
	static const char *opts[] = {"O0", "O2"}, *pies[] = {"pie", "nopie"};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			test_refusals(opts[i], pies[j]);
			test_rewrite(opts[i], pies[j], true);
			test_rewrite(opts[i], pies[j], false);
			test_ifunc(fixture_path("patch", opts[i], pies[j]), "libc.so.6:strlen",
				   "strlen -> ");
		}
	test_rewrite_detach();
	test_rewrite_tail("O2", "pie");
	test_rewrite_tail("O0", "nopie");
	char static_path[4096];
	snprintf(static_path, sizeof(static_path), "%s/patch-O2-static", getenv("DIAG_FIXTURE_DIR"));
	test_ifunc(static_path, "strlen", "strlen -> __strlen_");
	test_lines_inlined("O0");
	test_lines_inlined("O2");
	test_counts_per_probe("O2", "pie");
	test_counts_per_probe("O0", "nopie");
	test_limit_per_address();
	return CHECK_DONE();
}
