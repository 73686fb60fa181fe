/* test_dwarf: the DWARF index on the rich fixture (all four builds): functions found by PC,
 * parameters and locals with types and locations, named types, and the compile-time errors of
 * the value language that need DWARF (unknown name with the scope listed, unknown member, type
 * errors), also from a separate debug file with compressed sections. No process is run. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dwarf/dwarf.h"
#include "elf_sym.h"
#include "expr/expr.h"

static char listing[4096];

static void add_var(void *arg, const struct diag_expr_var_info *v)
{
	(void)arg;
	char line[300];
	snprintf(line, sizeof(line), "%s%s:%s;", v->is_param ? "" : "local ", v->name, v->type);
	strncat(listing, line, sizeof(listing) - strlen(listing) - 1);
}

static int compile_msg(const struct diag_expr_scope *sc, const char *src, char *msg, size_t cap)
{
	struct diag_expr *x = NULL;
	struct diag_error err = { 0 };
	int rc = diag_expr_compile(src, sc, &x, &err);
	snprintf(msg, cap, "%s", rc ? err.msg : "");
	diag_expr_free(x);
	return rc;
}

static void test_build(struct diag_dwarf_cache *dc, const char *opt, const char *pie)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/rich-%s-%s", getenv("DIAG_FIXTURE_DIR"), opt, pie);
	uint64_t handle = elf_sym_addr(path, "handle");
	CHECK(handle != 0);
	struct diag_expr_scope sc = { .pid = 1, .elf_path = path, .build_id = "", .bias = 0,
				      .pc = handle, .event = DIAG_EVENT_CALL, .dwarf = dc };
	struct diag_error err = { 0 };
	listing[0] = '\0';
	int n = diag_expr_list_scope(&sc, add_var, NULL, &err);
	fprintf(stderr, "%s-%s: %d vars: %s %s\n", opt, pie, n, listing, err.msg);
	CHECK(strstr(listing, "req:req_t *;") != NULL);
	CHECK(strstr(listing, "len:int;") != NULL);
	CHECK(strstr(listing, "scale:double;") != NULL);
	CHECK(strstr(listing, "name:const char *;") != NULL);
	CHECK(strstr(listing, "local total:long int;") != NULL);

	char msg[DIAG_ERRMSG_MAX];
	CHECK_EQ_INT(compile_msg(&sc, "req->hdr.len + len", msg, sizeof(msg)), 0);
	CHECK_EQ_INT(compile_msg(&sc, "req->name == \"hello world\" && req->vals[1] > 3", msg, sizeof(msg)), 0);
	CHECK_EQ_INT(compile_msg(&sc, "(struct point *)req->ptp", msg, sizeof(msg)), 0);
	CHECK_EQ_INT(compile_msg(&sc, "lenn", msg, sizeof(msg)), -DIAG_E_NOSYM);
	CHECK(!strncmp(msg, "value: unknown name 'lenn' at 1:1; in scope: ", 45));
	CHECK(strstr(msg, "req") && strstr(msg, "len") && strstr(msg, "scale"));
	CHECK_EQ_INT(compile_msg(&sc, "req->hdr.lenn", msg, sizeof(msg)), -DIAG_E_NOSYM);
	CHECK_EQ_STR(msg, "value: no member 'lenn' in struct hdr at 1:9");
	CHECK_EQ_INT(compile_msg(&sc, "req.hdr", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_STR(msg, "value: '.' needs a struct or union (type req_t *) at 1:4");
	CHECK_EQ_INT(compile_msg(&sc, "req->hdr + 1", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_INT(compile_msg(&sc, "(struct nosuch *)req", msg, sizeof(msg)), -DIAG_E_NOSYM);
	CHECK_EQ_STR(msg, "value: unknown type 'struct nosuch' at 1:1");
	CHECK_EQ_INT(compile_msg(&sc, "&req->hdr.flag_b", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_STR(msg, "value: cannot take the address of bit field 'flag_b' at 1:1");
	sc.event = DIAG_EVENT_RETURN;
	CHECK_EQ_INT(compile_msg(&sc, "len", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_STR(msg, "value: 'len' at 1:1 is not available on return events (the function's frame is gone); use $retval, or an end event");
	CHECK_EQ_INT(compile_msg(&sc, "$retval > 0", msg, sizeof(msg)), 0);
	sc.event = DIAG_EVENT_CALL;
	if (strcmp(opt, "O2"))
		return;
	/* at -O2, inspect's `ret` (its last byte): flags is dead there */
	uint64_t size = 0, inspect = elf_sym_addr_size(path, "inspect", &size);
	sc.pc = inspect + size - 1;
	char want[128];
	snprintf(want, sizeof(want), "value: 'flags' is optimised out at 0x%llx", (unsigned long long)sc.pc);
	CHECK_EQ_INT(compile_msg(&sc, "flags + 1", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_STR(msg, want);
	CHECK_EQ_INT(compile_msg(&sc, "h->len", msg, sizeof(msg)), 0);
}

/* A stripped copy whose DWARF lives in a .gnu_debuglink file beside it. */
static void test_debuglink(void)
{
	char dir[] = "/tmp/diag-dwarf-XXXXXX", cmd[8192], path[4200];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(cmd, sizeof(cmd),
		 "cd %s && objcopy --only-keep-debug %s/rich-O2-pie rich.debug && "
		 "objcopy --strip-debug --add-gnu-debuglink=rich.debug %s/rich-O2-pie rich-stripped",
		 dir, getenv("DIAG_FIXTURE_DIR"), getenv("DIAG_FIXTURE_DIR"));
	CHECK_EQ_INT(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/rich-stripped", dir);
	struct diag_dwarf_cache *dc = NULL;
	CHECK_EQ_INT(diag_dwarf_cache_new(&dc), 0);
	struct diag_expr_scope sc = { .pid = 1, .elf_path = path, .build_id = "",
				      .pc = elf_sym_addr(path, "handle"), .dwarf = dc };
	struct diag_error err = { 0 };
	listing[0] = '\0';
	CHECK_EQ_INT(diag_expr_list_scope(&sc, add_var, NULL, &err), 8);
	CHECK(strstr(listing, "req:req_t *;") != NULL);
	diag_dwarf_cache_free(dc);
	/* compressed sections (SHF_COMPRESSED, as Debian's -dbg and -dbgsym files have them):
	 * the same scope, location lists included */
	snprintf(cmd, sizeof(cmd), "cd %s && objcopy --compress-debug-sections=zlib rich.debug && "
		 "readelf -S -W rich.debug | grep -q 'debug_loclists.* C '", dir);
	CHECK_EQ_INT(system(cmd), 0);
	CHECK_EQ_INT(diag_dwarf_cache_new(&dc), 0);
	sc.dwarf = dc;
	listing[0] = '\0';
	err = (struct diag_error){ 0 };
	CHECK_EQ_INT(diag_expr_list_scope(&sc, add_var, NULL, &err), 8);
	CHECK(strstr(listing, "req:req_t *;") != NULL);
	if (!strstr(listing, "req:req_t *;"))
		fprintf(stderr, "compressed: %s\n", err.msg);
	diag_dwarf_cache_free(dc);
	/* without the debug file: the precise error */
	snprintf(cmd, sizeof(cmd), "rm -f %s/rich.debug", dir);
	CHECK_EQ_INT(system(cmd), 0);
	CHECK_EQ_INT(diag_dwarf_cache_new(&dc), 0);
	sc.dwarf = dc;
	char msg[DIAG_ERRMSG_MAX];
	CHECK_EQ_INT(compile_msg(&sc, "req", msg, sizeof(msg)), -DIAG_E_NODEBUG);
	CHECK_EQ_STR(msg, "value: no DWARF for rich-stripped (names need debug info: 'req' at 1:1); use $arg1..$arg6");
	CHECK_EQ_INT(compile_msg(&sc, "$arg1", msg, sizeof(msg)), 0);
	diag_dwarf_cache_free(dc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK_EQ_INT(system(cmd), 0);
}

/* gcc types __func__ as const (char [N]) of const char: spelt as C would, not "const ?". */
static void test_spell_qualified_array(void)
{
	static const struct diag_type ch = {.kind = DIAG_TYPE_INT, .name = "char", .size = 1,
					    .is_char = true};
	static const struct diag_type cch = {.kind = DIAG_TYPE_CONST, .target = &ch};
	static const struct diag_type arr = {.kind = DIAG_TYPE_ARRAY, .size = 5, .target = &cch,
					     .count = 5};
	static const struct diag_type carr = {.kind = DIAG_TYPE_CONST, .target = &arr};
	static const struct diag_type arr2 = {.kind = DIAG_TYPE_ARRAY, .size = 5, .target = &ch,
					      .count = 5};
	static const struct diag_type carr2 = {.kind = DIAG_TYPE_CONST, .target = &arr2};
	char buf[64];
	diag_type_spell(&carr, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "const char [5]");
	diag_type_spell(&carr2, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "const char [5]");
	diag_type_spell(&arr2, buf, sizeof(buf));
	CHECK_EQ_STR(buf, "char [5]");
}

static int count_inl(void *arg, const struct diag_dwarf_inline *in)
{
	size_t *n = arg;
	*n += !strcmp(in->name, "inl_add");
	return 0;
}

/* The line of sym5.c holding marker (its "L:..." comment), 0 if none. */
static unsigned marker_line(const char *marker)
{
	char path[4096], buf[512];
	snprintf(path, sizeof(path), "%s", __FILE__); /* absolute: cmake passes it so */
	char *unit = strstr(path, "unit/test_dwarf.c");
	CHECK(unit != NULL);
	if (!unit)
		return 0;
	strcpy(unit, "fixtures/sym5.c");
	FILE *fp = fopen(path, "r");
	unsigned line = 0, found = 0;
	while (fp && fgets(buf, sizeof(buf), fp) && !found)
		if (++line && strstr(buf, marker))
			found = line;
	if (fp)
		fclose(fp);
	return found;
}

/* The inlined instances and the scopes are built by separate walks; the instances' walk passes
 * over units without an inlined-subroutine abbreviation (-O0). Either order of the two queries
 * gives the same instances (none twice) and the same line addresses. */
static size_t inl_then_lines(const char *opt, bool lines_first, size_t *naddrs)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/sym5-%s-pie", getenv("DIAG_FIXTURE_DIR"), opt);
	struct diag_dwarf_cache *dc = NULL;
	struct diag_dwarf_file *f = NULL;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_dwarf_cache_new(&dc), 0);
	CHECK_EQ_INT(diag_dwarf_cache_get(dc, path, NULL, &f, &err), 0);
	unsigned line = marker_line("L:inl_body");
	CHECK(line > 0);
	size_t n = 0;
	uint64_t *addrs = NULL;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == (lines_first ? 0 : 1)) {
			int got = diag_dwarf_line_addrs(f, "sym5.c", line, &addrs, &err);
			CHECK(got >= 1);
			*naddrs = got > 0 ? (size_t)got : 0;
			free(addrs);
		} else {
			CHECK_EQ_INT(diag_dwarf_inlined_foreach(f, count_inl, &n, &err), 0);
		}
	}
	size_t again = 0;
	CHECK_EQ_INT(diag_dwarf_inlined_foreach(f, count_inl, &again, &err), 0);
	CHECK_EQ_INT(again, n);
	diag_dwarf_cache_free(dc);
	return n;
}

static void test_inline_walks(void)
{
	size_t a1 = 0, a2 = 0;
	size_t n1 = inl_then_lines("O2", false, &a1), n2 = inl_then_lines("O2", true, &a2);
	fprintf(stderr, "inline walks: O2 %zu copies, %zu/%zu line addresses\n", n1, a1, a2);
	CHECK(n1 >= 3); /* inl_add is inlined into its three callers at least */
	CHECK_EQ_INT(n1, n2);
	CHECK_EQ_INT(a1, a2);
	CHECK(a1 >= n1); /* one address per inlined copy of the body, at least */
	size_t a0 = 0;
	inl_then_lines("O0", false, &a0);
	CHECK(a0 >= 1);
}

int main(void)
{
	test_spell_qualified_array();
	test_inline_walks();
	test_debuglink();
	struct diag_dwarf_cache *dc = NULL;
	CHECK_EQ_INT(diag_dwarf_cache_new(&dc), 0);
	const char *opts[] = { "O0", "O2" }, *pies[] = { "pie", "nopie" };
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			test_build(dc, opts[i], pies[j]);
	diag_dwarf_cache_free(dc);
	return CHECK_DONE();
}
