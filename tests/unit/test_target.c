/* test_target: the one target grammar (spec/target.h): every form a spec's target may take,
 * parsed into its parts; every malformed one refused with -DIAG_E_PARSE, field "target" and a
 * message quoting it; the spec codec refusing a malformed target when a spec is added
 * (DIAG_SPEC_CHECK_TARGET) and keeping what a store reads back (no flag). */
#include "check.h"
#include "spec/spec.h"
#include "spec/target.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct valid_case {
	const char *text;
	enum diag_target_kind kind;
	const char *module, *func, *params;
	bool has_off;
	uint64_t off;
	unsigned line;
	uint64_t addr;
};

static void test_forms(void)
{
	static const struct valid_case cases[] = {
		/* FUNC, MODULE:FUNC */
		{ "work", DIAG_TARGET_FUNC, "", "work", "", false, 0, 0, 0 },
		{ "_start", DIAG_TARGET_FUNC, "", "_start", "", false, 0, 0, 0 },
		{ "libc.so.6:write", DIAG_TARGET_FUNC, "libc.so.6", "write", "", false, 0, 0, 0 },
		{ "libc:write", DIAG_TARGET_FUNC, "libc", "write", "", false, 0, 0, 0 },
		{ "/usr/lib/x86_64-linux-gnu/libc.so.6:write", DIAG_TARGET_FUNC,
		  "/usr/lib/x86_64-linux-gnu/libc.so.6", "write", "", false, 0, 0, 0 },
		/* a clone's own name is a FUNC: what it names is resolution's business */
		{ "work.constprop.0", DIAG_TARGET_FUNC, "", "work.constprop.0", "", false, 0, 0, 0 },
		{ "write@GLIBC_2.2.5", DIAG_TARGET_FUNC, "", "write@GLIBC_2.2.5", "", false, 0, 0, 0 },
		/* FUNC+OFF */
		{ "work+16", DIAG_TARGET_FUNC, "", "work", "", true, 16, 0, 0 },
		{ "work+0x10", DIAG_TARGET_FUNC, "", "work", "", true, 16, 0, 0 },
		{ "work+0", DIAG_TARGET_FUNC, "", "work", "", true, 0, 0, 0 },
		{ "libc.so.6:write+0X4", DIAG_TARGET_FUNC, "libc.so.6", "write", "", true, 4, 0, 0 },
		/* C++ names */
		{ "ns::Widget::add", DIAG_TARGET_CXX, "", "ns::Widget::add", "", false, 0, 0, 0 },
		{ "Widget::add", DIAG_TARGET_CXX, "", "Widget::add", "", false, 0, 0, 0 },
		{ "ns::Widget::~Widget", DIAG_TARGET_CXX, "", "ns::Widget::~Widget", "", false, 0, 0, 0 },
		{ "ns::f<int>", DIAG_TARGET_CXX, "", "ns::f<int>", "", false, 0, 0, 0 },
		{ "ns::pair<int, long>::first", DIAG_TARGET_CXX, "", "ns::pair<int, long>::first", "",
		  false, 0, 0, 0 },
		{ "ns::Widget::add(int, int)", DIAG_TARGET_CXX, "", "ns::Widget::add", "(int, int)",
		  false, 0, 0, 0 },
		{ "handle_alpha(long)", DIAG_TARGET_CXX, "", "handle_alpha", "(long)", false, 0, 0, 0 },
		{ "f(char const*) const", DIAG_TARGET_CXX, "", "f", "(char const*) const", false, 0, 0, 0 },
		{ "libsym5.so:ns::C::m(int)", DIAG_TARGET_CXX, "libsym5.so", "ns::C::m", "(int)",
		  false, 0, 0, 0 },
		/* globs */
		{ "handle_*", DIAG_TARGET_GLOB, "", "handle_*", "", false, 0, 0, 0 },
		{ "ns::*", DIAG_TARGET_GLOB, "", "ns::*", "", false, 0, 0, 0 },
		{ "gen_?[ab]", DIAG_TARGET_GLOB, "", "gen_?[ab]", "", false, 0, 0, 0 },
		{ "gen_[!x]*", DIAG_TARGET_GLOB, "", "gen_[!x]*", "", false, 0, 0, 0 },
		{ "ns::Widget::*(int)", DIAG_TARGET_GLOB, "", "ns::Widget::*", "(int)", false, 0, 0, 0 },
		{ "libc:str*", DIAG_TARGET_GLOB, "libc", "str*", "", false, 0, 0, 0 },
		/* FILE:LINE */
		{ "work.c:42", DIAG_TARGET_LINE, "", "work.c", "", false, 0, 42, 0 },
		{ "src/sym5.c:7", DIAG_TARGET_LINE, "", "src/sym5.c", "", false, 0, 7, 0 },
		{ "libfoo.so:foo.c:12", DIAG_TARGET_LINE, "libfoo.so", "foo.c", "", false, 0, 12, 0 },
		{ "Makefile:1", DIAG_TARGET_LINE, "", "Makefile", "", false, 0, 1, 0 },
		/* 0xADDR */
		{ "0x401000", DIAG_TARGET_ADDR, "", "", "", false, 0, 0, 0x401000 },
		{ "0X7fFF0010", DIAG_TARGET_ADDR, "", "", "", false, 0, 0, 0x7fff0010 },
		{ "0xffffffffffffffff", DIAG_TARGET_ADDR, "", "", "", false, 0, 0, UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct valid_case *c = &cases[i];
		struct diag_target t;
		struct diag_error err = { 0 };
		int rc = diag_target_parse(c->text, &t, &err);
		CHECK_EQ_INT(rc, 0);
		if (rc) {
			fprintf(stderr, "  %s: %s\n", c->text, err.msg);
			continue;
		}
		if (t.kind != c->kind)
			fprintf(stderr, "  %s: kind %s, want %s\n", c->text, diag_target_kind_name(t.kind),
				diag_target_kind_name(c->kind));
		CHECK_EQ_INT(t.kind, c->kind);
		CHECK_EQ_STR(t.module, c->module);
		CHECK_EQ_STR(t.func, c->func);
		CHECK_EQ_STR(t.params, c->params);
		CHECK_EQ_INT(t.has_off, c->has_off);
		CHECK_EQ_INT(t.off, c->off);
		CHECK_EQ_INT(t.line, c->line);
		CHECK(t.addr == c->addr);
	}
	/* the longest accepted target */
	char name[DIAG_TARGET_MAX + 2];
	memset(name, 'f', DIAG_TARGET_MAX);
	name[DIAG_TARGET_MAX] = '\0';
	struct diag_target t;
	CHECK_EQ_INT(diag_target_parse(name, &t, NULL), 0);
	CHECK_EQ_INT(strlen(t.func), DIAG_TARGET_MAX);
}

struct bad_case {
	const char *text, *msg;
};

static void test_malformed(void)
{
	static const struct bad_case cases[] = {
		{ "", "target: empty" },
		{ "work+", "target 'work+': offset '' is not a decimal or 0x hex number" },
		{ "work+zz", "target 'work+zz': offset 'zz' is not a decimal or 0x hex number" },
		{ "work+0x", "target 'work+0x': offset '0x' is not a decimal or 0x hex number" },
		{ "work+-1", "target 'work+-1': offset '-1' is not a decimal or 0x hex number" },
		{ "work+99999999999999999999", "target 'work+99999999999999999999': offset " },
		{ "wo rk", "target 'wo rk': 'wo rk' is not a function name (expected FUNC, MODULE:FUNC, "
			   "FUNC+OFF, ns::Class::method(params), a glob, FILE:LINE or 0xADDR)" },
		{ "1work", "target '1work': '1work' is not a function name" },
		{ "work;rm", "target 'work;rm': 'work;rm' is not a function name" },
		{ "été", "is not a function name" },
		{ ":work", "target ':work': empty module before ':'" },
		{ "libc:", "target 'libc:': '' is not a function name" },
		{ "a:b:c", "target 'a:b:c': 'b:c' is not a function name" },
		{ "ns::f+4", "target 'ns::f+4': 'ns::f' is not a function name" }, /* OFF only on FUNC */
		{ "handle_*+4", "target 'handle_*+4': 'handle_*' is not a function name" },
		{ "(int)", "target '(int)': '' is not a function name" },
		{ "0xZZ", "target '0xZZ': bad hex address" },
		{ "0x", "target '0x': bad hex address" },
		{ "0x1g", "target '0x1g': bad hex address" },
		{ "0x10000000000000000", "target '0x10000000000000000': bad hex address" },
		{ "work.c:0", "target 'work.c:0': expected FILE:LINE with a line number >= 1" },
		{ "work.c:99999999999", "target 'work.c:99999999999': expected FILE:LINE with a line" },
		{ ":work.c:12", "target ':work.c:12': expected FILE:LINE with a line number >= 1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct diag_target t;
		memset(&t, 0x5a, sizeof(t));
		struct diag_error err = { 0 };
		CHECK_EQ_INT(diag_target_parse(cases[i].text, &t, &err), -DIAG_E_PARSE);
		CHECK_EQ_INT(err.code, -DIAG_E_PARSE);
		CHECK_EQ_STR(err.field, "target");
		CHECK_CONTAINS(err.msg, cases[i].msg);
		CHECK_EQ_INT(t.kind, 0x5a5a5a5a); /* output written only on success */
	}
	struct diag_error err = { 0 };
	struct diag_target t;
	CHECK_EQ_INT(diag_target_parse(NULL, &t, &err), -DIAG_E_PARSE);
	CHECK_EQ_STR(err.msg, "target: empty");
	CHECK_EQ_INT(diag_target_parse("work+zz", &t, NULL), -DIAG_E_PARSE); /* err may be NULL */
	char name[DIAG_TARGET_MAX + 2];
	memset(name, 'f', DIAG_TARGET_MAX + 1);
	name[DIAG_TARGET_MAX + 1] = '\0';
	CHECK_EQ_INT(diag_target_parse(name, &t, &err), -DIAG_E_PARSE);
	CHECK_CONTAINS(err.msg, "longer than 255 bytes");
	CHECK_EQ_STR(err.field, "target");
}

/* The spec codec, as the daemon's add paths call it. */
static int decode(const char *target, unsigned flags, struct diag_error *err)
{
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"id\":\"t1\",\"target\":\"%s\",\"instrument\":{\"type\":\"log\",\"name\":\"t\"}}",
		 target);
	struct diag_spec **v = NULL;
	diag_error_clear(err);
	int n = diag_spec_parse(text, strlen(text), false, flags, &v, err);
	if (n >= 0)
		diag_spec_free_array(v, (size_t)n);
	return n;
}

static void test_spec_add(void)
{
	struct diag_error err;
	static const char *const good[] = { "work", "libc:write+0x4", "ns::Widget::add(int)",
					    "handle_*", "work.c:42", "0x401000" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK_EQ_INT(decode(good[i], DIAG_SPEC_CHECK_TARGET, &err), 1);
		CHECK_EQ_STR(err.msg, "");
	}
	CHECK_EQ_INT(decode("work+zz", DIAG_SPEC_CHECK_TARGET, &err), -DIAG_E_PARSE);
	CHECK_EQ_STR(err.field, "target");
	CHECK_EQ_STR(err.msg,
		     "spec 't1': target 'work+zz': offset 'zz' is not a decimal or 0x hex number");
	CHECK_EQ_INT(decode("work.c:0", DIAG_SPEC_CHECK_TARGET, &err), -DIAG_E_PARSE);
	CHECK_EQ_STR(err.field, "target");
	CHECK_CONTAINS(err.msg, "spec 't1': target 'work.c:0': expected FILE:LINE");
	CHECK_EQ_INT(decode(":work", DIAG_SPEC_CHECK_TARGET | DIAG_SPEC_KEEP_APPLIED, &err),
		     -DIAG_E_PARSE);
	CHECK_EQ_STR(err.field, "target");
	/* without the flag (a store reading back what an older daemon stored) the target is text:
	 * resolution reports it when the spec is applied, as before */
	CHECK_EQ_INT(decode("work+zz", 0, &err), 1);
	CHECK_EQ_INT(decode("work+zz", DIAG_SPEC_KEEP_APPLIED, &err), 1);
	/* the codec's own checks come first */
	CHECK_EQ_INT(decode("", DIAG_SPEC_CHECK_TARGET, &err), -DIAG_E_INVALID);
	CHECK_EQ_STR(err.msg, "spec 't1': target: must not be empty");
}

int main(void)
{
	test_forms();
	test_malformed();
	test_spec_add();
	return CHECK_DONE();
}
