/* test_indexer: the daemon's side of diagnose-indexer against the real worker and against
 * hostile fakes (tests/unit/indexer_fake.py): the seccomp filter kills a worker that opens a
 * file, a reply with a type cycle or an out-of-range symbol index is refused as malformed, a
 * worker that never answers times out, and each time the next request gets a new worker.
 * Needs root (the worker drops from root to nobody). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dwarf/dwarf.h"
#include "indexer/indexer.h"
#include "sym/symtab.h"

static char worker[4096], fake[4096], fixture[4096];

static struct diag_indexer *start(const char *exe, unsigned timeout_ms)
{
	struct diag_indexer_opts o = { .exe = exe, .timeout_ms = timeout_ms };
	struct diag_indexer *ix = NULL;
	CHECK_EQ_INT(diag_indexer_new(&o, &ix), 0);
	return ix;
}

/* The real worker: open(2) is killed by the filter; the next request has a new worker. */
static void test_open_is_killed(void)
{
	struct diag_indexer *ix = start(worker, 0);
	struct diag_ix_buf b = { 0 };
	diag_ix_put_u8(&b, DIAG_IX_TEST_OPEN);
	diag_ix_put_str(&b, "/etc/passwd");
	struct diag_ix_reply rep;
	struct diag_error err = { 0 };
	int rc = diag_indexer_call(ix, "t1", "opening /etc/passwd", &b, NULL, 0, &rep, &err);
	CHECK(rc < 0);
	CHECK_CONTAINS(err.msg, "the indexer crashed (SIGSYS) opening /etc/passwd");
	/* the key that killed it fails at once, without a new worker */
	CHECK(diag_indexer_call(ix, "t1", "again", &b, NULL, 0, &rep, &err) < 0);
	CHECK_EQ_INT(diag_indexer_pid(ix), 0);
	diag_ix_buf_release(&b);
	/* a symbols query through a new worker still works */
	struct diag_symcache *sc = NULL;
	CHECK_EQ_INT(diag_symcache_new(&sc), 0);
	diag_symcache_set_indexer(sc, ix);
	struct diag_module mod = { .name = "work-O0-pie", .path = fixture, .host_path = fixture,
				   .end = UINT64_MAX };
	struct diag_modmap m = { .mods = &mod, .n = 1, .pid = 1 };
	char name[64] = "";
	uint64_t off = 1;
	struct diag_location *locs = NULL;
	size_t n = 0;
	CHECK_EQ_INT(diag_sym_resolve(sc, &m, "work", NULL, &locs, &n, NULL, NULL, &err), 0);
	CHECK_EQ_INT(n, 1);
	CHECK(n == 1 && diag_sym_lookup_addr(sc, &m, locs[0].addr, name, sizeof(name), &off) == 0);
	CHECK_EQ_STR(name, "work");
	CHECK(diag_indexer_pid(ix) > 0);
	free(locs);
	diag_symcache_free(sc);
	diag_indexer_free(ix);
}

/* A large symbol table (libc's): glibc's qsort asks sysinfo(2) how much memory there is
 * before sorting more than a few symbols; the filter must allow what parsing needs. */
static void test_large_symtab(void)
{
	struct diag_indexer *ix = start(worker, 0);
	struct diag_symcache *sc = NULL;
	CHECK_EQ_INT(diag_symcache_new(&sc), 0);
	diag_symcache_set_indexer(sc, ix);
	char libc[] = "/lib/x86_64-linux-gnu/libc.so.6";
	struct diag_module mod = { .name = "libc.so.6", .path = libc, .host_path = libc,
				   .end = UINT64_MAX, .is_main = true };
	struct diag_modmap m = { .mods = &mod, .n = 1, .pid = 1 };
	struct diag_location *locs = NULL;
	size_t n = 0;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_sym_resolve(sc, &m, "libc.so.6:write", NULL, &locs, &n, NULL, NULL, &err), 0);
	if (err.code)
		fprintf(stderr, "libc.so.6:write: %s\n", err.msg);
	CHECK(n >= 1);
	free(locs);
	diag_symcache_free(sc);
	diag_indexer_free(ix);
}

/* A worker that answers a scope with typedef t = t: refused, never interned. */
static void test_type_cycle_refused(void)
{
	setenv("DIAG_FAKE_MODE", "cycle", 1);
	struct diag_indexer *ix = start(fake, 0);
	struct diag_dwarf_cache *dc = NULL;
	struct diag_dwarf_file *f = NULL;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_dwarf_cache_new_remote(ix, &dc), 0);
	CHECK_EQ_INT(diag_dwarf_cache_get(dc, fixture, NULL, &f, &err), 0);
	struct diag_dwarf_scope *s = NULL;
	CHECK(f && diag_dwarf_scope_at(f, 0x1000, &s, &err) < 0);
	CHECK_CONTAINS(err.msg, "malformed reply");
	CHECK(s == NULL);
	diag_dwarf_cache_free(dc);
	diag_indexer_free(ix);
}

static void test_bad_symbols_refused(void)
{
	setenv("DIAG_FAKE_MODE", "badsyms", 1);
	struct diag_indexer *ix = start(fake, 0);
	struct diag_symcache *sc = NULL;
	CHECK_EQ_INT(diag_symcache_new(&sc), 0);
	diag_symcache_set_indexer(sc, ix);
	struct diag_module mod = { .name = "x", .path = fixture, .host_path = fixture, .end = UINT64_MAX,
				   .is_main = true };
	struct diag_modmap m = { .mods = &mod, .n = 1, .pid = 1 };
	struct diag_location *locs = NULL;
	size_t n = 0;
	struct diag_error err = { 0 };
	CHECK(diag_sym_resolve(sc, &m, "f", NULL, &locs, &n, NULL, NULL, &err) < 0);
	CHECK_CONTAINS(err.msg, "malformed reply reading the symbols of");
	diag_symcache_free(sc);
	diag_indexer_free(ix);
}

static void test_timeout(void)
{
	setenv("DIAG_FAKE_MODE", "hang", 1);
	struct diag_indexer *ix = start(fake, 500);
	struct diag_ix_buf b = { 0 };
	diag_ix_put_u8(&b, DIAG_IX_CLOSE);
	diag_ix_put_u32(&b, 1);
	struct diag_ix_reply rep;
	struct diag_error err = { 0 };
	CHECK(diag_indexer_call(ix, "t", "closing", &b, NULL, 0, &rep, &err) < 0);
	CHECK_CONTAINS(err.msg, "the indexer timed out after 1 s closing");
	CHECK_EQ_INT(diag_indexer_pid(ix), 0);
	diag_ix_buf_release(&b);
	diag_indexer_free(ix);
}

int main(void)
{
	const char *bd = getenv("DIAG_BUILD_DIR"), *fd = getenv("DIAG_FIXTURE_DIR");
	if (!bd || !fd || geteuid() != 0) {
		fprintf(stderr, "test_indexer: needs root, DIAG_BUILD_DIR and DIAG_FIXTURE_DIR\n");
		return 1;
	}
	snprintf(worker, sizeof(worker), "%s/daemon/diagnose-indexer", bd);
	snprintf(fake, sizeof(fake), "%s", __FILE__); /* the fake sits beside this source */
	char *slash = strrchr(fake, '/');
	snprintf(slash ? slash + 1 : fake, sizeof(fake) - (size_t)(slash ? slash + 1 - fake : 0),
		 "indexer_fake.py");
	snprintf(fixture, sizeof(fixture), "%s/work-O0-pie", fd);
	test_open_is_killed();
	test_large_symtab();
	test_type_cycle_refused();
	test_bad_symbols_refused();
	test_timeout();
	if (check_failures)
		fprintf(stderr, "test_indexer: %d failure(s)\n", check_failures);
	return check_failures != 0;
}
