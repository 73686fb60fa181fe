/* test_sym5: target strings that name several addresses, against live fixtures at -O0 and -O2,
 * PIE and non-PIE: compiler clones, always_inline copies, FILE:LINE (gdb's breakpoint
 * locations are the oracle), C++ names, overloads, globs and their limit. Expected addresses
 * come from nm and gdb run here on the same files. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "elf_sym.h"
#include "fixture_proc.h"
#include "sym/modmap.h"
#include "sym/symtab.h"

struct run {
	struct diag_symcache *c;
	struct diag_modmap m;
	const struct diag_module *main_mod;
	const char *variant;
};

static int resolve(struct run *r, const char *target, struct diag_location **v, size_t *n,
		   struct diag_error *err)
{
	size_t nskips = 0;
	struct diag_skip *skips = NULL;
	diag_error_clear(err);
	int rc = diag_sym_resolve(r->c, &r->m, target, NULL, v, n, &skips, &nskips, err);
	if (rc == 0)
		free(skips);
	else
		fprintf(stderr, "  [%s] %s: %s\n", r->variant, target, err->msg);
	return rc;
}

/* The line of the fixture source holding marker ("L:name"). */
static unsigned marker_line(const char *marker)
{
	char path[4096], line[512];
	snprintf(path, sizeof(path), "%s", __FILE__);
	char *unit = strstr(path, "unit/test_sym5.c");
	if (!unit)
		return 0;
	strcpy(unit, "fixtures/sym5.c");
	FILE *f = fopen(path, "r");
	unsigned n = 0, found = 0;
	while (f && fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, marker) && !found)
			found = n;
	}
	if (f)
		fclose(f);
	return found;
}

/* gdb's breakpoint locations for FILE:LINE in file (unrelocated addresses), sorted. */
static size_t gdb_break(const char *file, const char *where, uint64_t *out, size_t cap)
{
	char cmd[2048], line[512];
	snprintf(cmd, sizeof(cmd),
		 "gdb -nx -batch -ex 'break %s' -ex 'info breakpoints' '%s' 2>/dev/null", where, file);
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	while (p && fgets(line, sizeof(line), p)) {
		/* "1       breakpoint keep y   0x0000000000001151 in f at x.c:3" or
		 * "1.2                         y   0x0000000000001151 in f at x.c:3" */
		char *x = strstr(line, " 0x");
		if (!x || !(line[0] >= '0' && line[0] <= '9') || !strstr(line, " in ") || n >= cap)
			continue;
		uint64_t a = strtoull(x + 1, NULL, 16);
		size_t i = n++;
		while (i > 0 && out[i - 1] > a) {
			out[i] = out[i - 1];
			i--;
		}
		out[i] = a;
	}
	if (p)
		pclose(p);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void check_line(struct run *r, const char *marker)
{
	unsigned ln = marker_line(marker);
	CHECK(ln > 0);
	char where[64];
	snprintf(where, sizeof(where), "sym5.c:%u", ln);
	uint64_t want[64], got[64];
	size_t nwant = gdb_break(r->main_mod->host_path, where, want, 64);
	CHECK(nwant > 0);
	struct diag_location *v = NULL;
	size_t n = 0;
	struct diag_error err;
	if (resolve(r, where, &v, &n, &err))
		CHECK(!"line resolved");
	for (size_t i = 0; i < n && i < 64; i++) {
		got[i] = v[i].addr - r->main_mod->bias;
		CHECK_EQ_INT(v[i].kind, DIAG_LOC_LINE);
		CHECK(v[i].addr >= v[i].func_start && v[i].addr < v[i].func_end);
		CHECK_CONTAINS(v[i].note, where);
	}
	qsort(got, n < 64 ? n : 64, sizeof(got[0]), cmp_u64);
	CHECK_EQ_INT(n, nwant);
	for (size_t i = 0; i < n && i < nwant; i++)
		if (got[i] != want[i]) {
			fprintf(stderr, "  [%s] %s (%s): address %zu: 0x%" PRIx64 " != gdb 0x%" PRIx64 "\n",
				r->variant, where, marker, i, got[i], want[i]);
			check_failures++;
		}
	free(v);
}

static void check_inline(struct run *r)
{
	struct diag_location *v = NULL;
	size_t n = 0;
	struct diag_error err;
	CHECK_EQ_INT(resolve(r, "inl_add", &v, &n, &err), 0);
	CHECK_EQ_INT(n, 3); /* always_inline: three copies, no out-of-line one */
	const char *callers[] = { "caller_one", "caller_two", "caller_three" };
	int seen[3] = { 0 };
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ_INT(v[i].kind, DIAG_LOC_INLINED);
		CHECK_EQ_STR(v[i].symbol, "inl_add");
		CHECK_CONTAINS(v[i].note, "inlined into caller_");
		CHECK_CONTAINS(v[i].note, "sym5.c:");
		CHECK(v[i].func_start == 0 || (v[i].addr >= v[i].func_start && v[i].addr < v[i].func_end));
		for (int k = 0; k < 3; k++) {
			uint64_t a = 0, s = 0;
			CHECK_EQ_INT(nm_symbol(r->main_mod->host_path, callers[k], 0, &a, &s), 0);
			uint64_t fa = v[i].addr - r->main_mod->bias;
			if (fa >= a && fa < a + s) {
				seen[k]++;
				CHECK_CONTAINS(v[i].note, callers[k]);
			}
		}
	}
	for (int k = 0; k < 3; k++)
		CHECK_EQ_INT(seen[k], 1);
	free(v);
}

static void check_one(struct run *r, const char *target, const char *sym, enum diag_loc_kind kind)
{
	struct diag_location *v = NULL;
	size_t n = 0;
	struct diag_error err;
	uint64_t a = 0, s = 0;
	CHECK_EQ_INT(nm_symbol(r->main_mod->host_path, sym, 0, &a, &s), 0);
	CHECK_EQ_INT(resolve(r, target, &v, &n, &err), 0);
	size_t found = 0;
	for (size_t i = 0; i < n; i++)
		if (v[i].addr == a + r->main_mod->bias) {
			found++;
			CHECK_EQ_INT(v[i].kind, kind);
			CHECK_EQ_INT(v[i].func_end - v[i].func_start, s);
		}
	if (found != 1)
		fprintf(stderr, "  [%s] %s: %s not among %zu locations\n", r->variant, target, sym, n);
	CHECK_EQ_INT(found, 1);
	free(v);
}

static size_t count_kind(struct run *r, const char *target, enum diag_loc_kind kind, size_t *total)
{
	struct diag_location *v = NULL;
	size_t n = 0, k = 0;
	struct diag_error err;
	*total = 0;
	if (resolve(r, target, &v, &n, &err))
		return 0;
	for (size_t i = 0; i < n; i++)
		k += v[i].kind == kind;
	*total = n;
	free(v);
	return k;
}

static void check_clones(struct run *r, bool o2)
{
	size_t total;
	if (!o2) {
		check_one(r, "scale", "scale", DIAG_LOC_FUNCTION);
		check_one(r, "may_fail", "may_fail", DIAG_LOC_FUNCTION);
		return;
	}
	check_one(r, "scale", "scale.constprop.0", DIAG_LOC_CLONE);
	check_one(r, "field_b", "field_b.isra.0", DIAG_LOC_CLONE);
	check_one(r, "checked", "checked.part.0", DIAG_LOC_CLONE);
	check_one(r, "scale.constprop.0", "scale.constprop.0", DIAG_LOC_CLONE);
	/* may_fail.cold is not an entry: one location, the function itself */
	CHECK_EQ_INT(count_kind(r, "may_fail", DIAG_LOC_FUNCTION, &total), 1);
	CHECK_EQ_INT(total, 1);
	CHECK_EQ_INT(count_kind(r, "scale.constprop.0", DIAG_LOC_CLONE, &total), 1);
	CHECK_EQ_INT(total, 1);
	/* checked: its outlined body plus the inlined header in main */
	CHECK(count_kind(r, "checked", DIAG_LOC_INLINED, &total) >= 1);
	struct diag_location *v = NULL;
	size_t n = 0;
	struct diag_error err;
	CHECK_EQ_INT(resolve(r, "scale", &v, &n, &err), 0);
	if (n)
		CHECK_EQ_STR(v[0].note, "clone scale.constprop.0");
	free(v);
}

static void check_line_errors(struct run *r)
{
	struct diag_location *v = NULL;
	size_t n = 0;
	struct diag_error err;
	diag_error_clear(&err);
	CHECK_EQ_INT(diag_sym_resolve(r->c, &r->m, "sym5.c:1", NULL, &v, &n, NULL, NULL, &err),
		     -DIAG_E_NOSYM);
	CHECK_CONTAINS(err.msg, "sym5.c:1 has no code; nearest lines with code: ");
	CHECK_EQ_INT(diag_sym_resolve(r->c, &r->m, "nosuch.c:10", NULL, &v, &n, NULL, NULL, &err),
		     -DIAG_E_NOSYM);
	CHECK_CONTAINS(err.msg, "no source file 'nosuch.c'");
	CHECK_CONTAINS(err.msg, "sym5.c");
	CHECK_EQ_INT(diag_sym_resolve(r->c, &r->m, "sym5.c:0", NULL, &v, &n, NULL, NULL, &err),
		     -DIAG_E_PARSE);
	/* a path suffix names the file too */
	unsigned ln = marker_line("L:call_one");
	char t[64];
	snprintf(t, sizeof(t), "fixtures/sym5.c:%u", ln);
	size_t total;
	CHECK(count_kind(r, t, DIAG_LOC_LINE, &total) >= 1);
	snprintf(t, sizeof(t), "%s:sym5.c:%u", r->variant, ln);
	CHECK(count_kind(r, t, DIAG_LOC_LINE, &total) >= 1);
}

static bool start(struct run *r, struct fixture *fx, const char *name, const char *opt,
		  const char *pie)
{
	const char *path = fixture_path(name, opt, pie);
	char *argv[] = { (char *)path, "1", NULL };
	if (fixture_start_ready(fx, path, argv) < 0) {
		CHECK(!"fixture started");
		return false;
	}
	struct diag_error err = { 0 };
	memset(&r->m, 0, sizeof(r->m));
	CHECK_EQ_INT(diag_modmap_read(fx->pid, &r->m, &err), 0);
	r->main_mod = diag_modmap_main(&r->m);
	CHECK(r->main_mod != NULL);
	return r->main_mod != NULL;
}

static void finish(struct run *r, struct fixture *fx)
{
	diag_modmap_release(&r->m);
	CHECK_EQ_INT(fixture_finish(fx), 0);
}

static void check_c(struct diag_symcache *c, const char *opt, const char *pie)
{
	struct fixture fx;
	char variant[64];
	snprintf(variant, sizeof(variant), "sym5-%s-%s", opt, pie);
	struct run r = { .c = c, .variant = variant };
	if (!start(&r, &fx, "sym5", opt, pie))
		return;
	check_clones(&r, !strcmp(opt, "O2"));
	check_inline(&r);
	const char *markers[] = { "L:inl_body", "L:call_one", "L:loop", "L:main_calls" };
	for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
		check_line(&r, markers[i]);
	check_line_errors(&r);
	finish(&r, &fx);
}

static void check_cxx(struct diag_symcache *c, const char *opt, const char *pie)
{
	struct fixture fx;
	char variant[64];
	snprintf(variant, sizeof(variant), "sym5cxx-%s-%s", opt, pie);
	struct run r = { .c = c, .variant = variant };
	if (!start(&r, &fx, "sym5cxx", opt, pie))
		return;
	struct diag_location *v = NULL;
	size_t n = 0, total;
	struct diag_error err;
	CHECK_EQ_INT(diag_sym_resolve(c, &r.m, "ns::Widget::add", NULL, &v, &n, NULL, NULL, &err),
		     -DIAG_E_AMBIGUOUS);
	CHECK_CONTAINS(err.msg, "matches 3 functions");
	CHECK_CONTAINS(err.msg, "ns::Widget::add(int)");
	CHECK_CONTAINS(err.msg, "ns::Widget::add(double)");
	CHECK_CONTAINS(err.msg, "ns::Widget::add(int, int)");
	check_one(&r, "ns::Widget::add(int)", "_ZN2ns6Widget3addEi", DIAG_LOC_FUNCTION);
	check_one(&r, "ns::Widget::add(int,int)", "_ZN2ns6Widget3addEii", DIAG_LOC_FUNCTION);
	check_one(&r, "Widget::add(double)", "_ZN2ns6Widget3addEd", DIAG_LOC_FUNCTION);
	check_one(&r, "ns::Widget::get", "_ZNK2ns6Widget3getEv", DIAG_LOC_FUNCTION);
	check_one(&r, "ns::Widget::get()", "_ZNK2ns6Widget3getEv", DIAG_LOC_FUNCTION);
	check_one(&r, "ns::Widget::count(char const*)", "_ZN2ns6Widget5countEPKc", DIAG_LOC_FUNCTION);
	check_one(&r, "handle_alpha", "_Z12handle_alphal", DIAG_LOC_FUNCTION);
	/* C1 and C2 at one address: one location */
	check_one(&r, "ns::Widget::Widget", "_ZN2ns6WidgetC2El", DIAG_LOC_FUNCTION);
	CHECK_EQ_INT(count_kind(&r, "ns::Widget::Widget", DIAG_LOC_FUNCTION, &total), 1);
	check_one(&r, "ns::Widget::~Widget", "_ZN2ns6WidgetD2Ev", DIAG_LOC_FUNCTION);
	CHECK_EQ_INT(count_kind(&r, "handle_*", DIAG_LOC_FUNCTION, &total), 3);
	CHECK_EQ_INT(count_kind(&r, "ns::*", DIAG_LOC_FUNCTION, &total), 7);
	CHECK_EQ_INT(count_kind(&r, "ns::Widget::add*", DIAG_LOC_FUNCTION, &total), 3);
	CHECK_EQ_INT(diag_sym_resolve(c, &r.m, "gen_*", NULL, &v, &n, NULL, NULL, &err), -DIAG_E_LIMIT);
	CHECK_EQ_STR(err.msg, "target 'gen_*' matches 70 functions (max 64); narrow the pattern");
	struct diag_sym_opts opts = { .glob_max = 70 };
	CHECK_EQ_INT(diag_sym_resolve(c, &r.m, "gen_*", &opts, &v, &n, NULL, NULL, &err), 0);
	CHECK_EQ_INT(n, 70);
	free(v);
	CHECK_EQ_INT(diag_sym_resolve(c, &r.m, "ns::Widget::nope", NULL, &v, &n, NULL, NULL, &err),
		     -DIAG_E_NOSYM);
	CHECK_EQ_INT(diag_sym_resolve(c, &r.m, "ns::Widget::add(char)", NULL, &v, &n, NULL, NULL, &err),
		     -DIAG_E_NOSYM);
	CHECK_EQ_INT(diag_sym_resolve(c, &r.m, "nomatch_*", NULL, &v, &n, NULL, NULL, &err),
		     -DIAG_E_NOSYM);
	finish(&r, &fx);
}

int main(void)
{
	struct diag_symcache *c = NULL;
	CHECK_EQ_INT(diag_symcache_new(&c), 0);
	const char *opts[] = { "O0", "O2" }, *pies[] = { "pie", "nopie" };
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			check_c(c, opts[i], pies[j]);
			check_cxx(c, opts[i], pies[j]);
		}
	diag_symcache_free(c);
	return CHECK_DONE();
}
