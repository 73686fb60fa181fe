/* test_expr: the value language without DWARF: parser, $names, registers, arithmetic, helpers,
 * faults, rendering and every compile error class, against a fake stopped thread (a regs
 * struct and a local buffer standing for target memory). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "check.h"
#include "expr/ast.h" /* expr_bitfield: the one reader of bit fields */
#include "expr/expr.h"

#define FAKE_BASE 0x10000ULL
#define FAKE_SIZE 4096

static uint8_t fake_mem[FAKE_SIZE];
static int nreads;

static ssize_t fake_read(void *arg, uint64_t addr, void *buf, size_t len)
{
	(void)arg;
	nreads++;
	if (addr < FAKE_BASE || addr >= FAKE_BASE + FAKE_SIZE)
		return -EFAULT;
	size_t avail = FAKE_BASE + FAKE_SIZE - addr;
	size_t n = len < avail ? len : avail;
	memcpy(buf, fake_mem + (addr - FAKE_BASE), n);
	return (ssize_t)n;
}

static diag_regs regs;

/* The register users call name (the names of the expression language) set to v. */
static void set_reg(const char *name, uint64_t v)
{
	int off = diag_reg_lookup(name, NULL);
	CHECK(off >= 0);
	diag_reg_set(&regs, off, v);
}

static struct diag_expr_ctx make_ctx(void)
{
	return (struct diag_expr_ctx){ .pid = 100, .tid = 101, .regs = &regs, .read_mem = fake_read,
				       .time_ns = 1234567, .elapsed_ns = 42, .comm = "work" };
}

static struct diag_expr_scope scope_of(enum diag_event_kind ev)
{
	return (struct diag_expr_scope){ .pid = 100, .elf_path = "/usr/bin/work-O2", .build_id = "",
					 .pc = 0x401136, .event = ev };
}

/* Compile, evaluate and render src; returns the text (static buffer) or the compile error. */
static const char *run_ev(const char *src, enum diag_event_kind ev, struct diag_value *val)
{
	static char text[8192];
	static struct diag_expr_result r;
	struct diag_expr_scope sc = scope_of(ev);
	struct diag_expr *x = NULL;
	struct diag_error err = { 0 };
	if (diag_expr_compile(src, &sc, &x, &err)) {
		snprintf(text, sizeof(text), "ERR %s", err.msg);
		return text;
	}
	struct diag_expr_ctx ctx = make_ctx();
	diag_expr_eval(x, &ctx, &r);
	struct diag_value v;
	diag_expr_render(x, &r, text, sizeof(text), &v);
	if (val)
		*val = v;
	diag_expr_free(x);
	return text;
}

static const char *run(const char *src)
{
	return run_ev(src, DIAG_EVENT_CALL, NULL);
}

static int compile_code(const char *src, char *msg, size_t cap)
{
	struct diag_expr_scope sc = scope_of(DIAG_EVENT_CALL);
	struct diag_expr *x = NULL;
	struct diag_error err = { 0 };
	int rc = diag_expr_compile(src, &sc, &x, &err);
	snprintf(msg, cap, "%s", err.msg);
	diag_expr_free(x);
	return rc;
}

static void test_numbers(void)
{
	CHECK_EQ_STR(run("1 + 2 * 3"), "7");
	CHECK_EQ_STR(run("(1 + 2) * 3"), "9");
	CHECK_EQ_STR(run("-7 / 2"), "-3");
	CHECK_EQ_STR(run("-7 % 3"), "-1");
	CHECK_EQ_STR(run("1 << 40"), "0"); /* int << 40, like C's int arithmetic truncated */
	CHECK_EQ_STR(run("1L << 40"), "1099511627776");
	CHECK_EQ_STR(run("0xff & 0x0f | 0x30 ^ 1"), "63");
	CHECK_EQ_STR(run("3 > 2 && 2 > 1"), "1");
	CHECK_EQ_STR(run("!0 + !5"), "1");
	CHECK_EQ_STR(run("0 || 0"), "0");
	CHECK_EQ_STR(run("~0"), "-1");
	CHECK_EQ_STR(run("1.5 * 2"), "3");
	CHECK_EQ_STR(run("0.1"), "0.10000000000000001");
	CHECK_EQ_STR(run("(float)0.1"), "0.100000001");
	CHECK_EQ_STR(run("(unsigned char)300"), "44 ','");
	CHECK_EQ_STR(run("(char)10"), "10 '\\n'");
	CHECK_EQ_STR(run("'a'"), "97 'a'");
	CHECK_EQ_STR(run("(unsigned int)-1"), "4294967295");
	CHECK_EQ_STR(run("hex(255)"), "0xff");
	CHECK_EQ_STR(run("1 / 0"), "<division by zero>");
	CHECK_EQ_STR(run("4294967296"), "4294967296");
}

static void test_registers(void)
{
	memset(&regs, 0, sizeof(regs));
	set_reg("rdi", 0xffffffff00000005ULL); /* upper half garbage: $edi reads the low 32 bits */
	set_reg("rsi", FAKE_BASE);
	set_reg("rdx", 3);
	set_reg("rcx", 4);
	set_reg("r8", 5);
	set_reg("r9", 6);
	set_reg("rax", (uint64_t)-2);
	set_reg("rsp", 0x7ffe0000);
	CHECK_EQ_STR(run("$edi"), "5");
	CHECK_EQ_STR(run("$arg3 + $arg4 + $arg5 + $arg6"), "18");
	CHECK_EQ_STR(run("$rdx * 2"), "6");
	CHECK_EQ_STR(run("$rsp"), "(void *) 0x7ffe0000");
	CHECK_EQ_STR(run("hex($arg2)"), "0x10000");
	CHECK_EQ_STR(run("$tid"), "101");
	CHECK_EQ_STR(run("$pid"), "100");
	CHECK_EQ_STR(run("$time"), "1234567");
	CHECK_EQ_STR(run("$comm"), "\"work\"");
	CHECK_EQ_STR(run("$comm == \"work\""), "1");
	CHECK_EQ_STR(run("$comm != \"work\""), "0");
	CHECK_EQ_STR(run_ev("$retval", DIAG_EVENT_RETURN, NULL), "-2");
	CHECK_EQ_STR(run_ev("$elapsed", DIAG_EVENT_RETURN, NULL), "42");
	CHECK_EQ_STR(run("$edi == 5 && $arg3 < 4"), "1");
}

static void test_memory(void)
{
	memset(fake_mem, 0, sizeof(fake_mem));
	strcpy((char *)fake_mem, "hello");
	memset(fake_mem + 100, 'a', 30);
	fake_mem[130] = 'b';
	/* a string running into the unmapped end of the buffer */
	memset(fake_mem + FAKE_SIZE - 4, 'z', 4);
	regs.rsi = FAKE_BASE;
	struct diag_value v;
	CHECK_EQ_STR(run_ev("str($arg2)", DIAG_EVENT_CALL, &v), "\"hello\"");
	CHECK_EQ_INT(v.kind, DIAG_VALUE_STRING);
	CHECK_EQ_INT(v.len, 5);
	CHECK(v.buf && !memcmp(v.buf, "hello", 5));
	CHECK_EQ_STR(run("str($arg2, 3)"), "\"hel\"...");
	CHECK_EQ_STR(run("str($arg2) == \"hello\""), "1");
	CHECK_EQ_STR(run("str($arg2) == \"hell\""), "0");
	CHECK_EQ_STR(run("\"hello\" == str($arg2)"), "1");
	CHECK_EQ_STR(run("str($arg2 + 100)"), "'a' <repeats 30 times>, \"b\"");
	CHECK_EQ_STR(run("str(0x10)"), "<fault at 0x10>");
	CHECK_EQ_STR(run("str(0)"), "<null pointer>");
	CHECK_EQ_STR(run("str($arg2 + 4092)"), "\"zzzz\"...");
	CHECK_EQ_STR(run_ev("bytes($arg2, 4)", DIAG_EVENT_CALL, &v), "68656c6c");
	CHECK_EQ_INT(v.kind, DIAG_VALUE_BYTES);
	CHECK_EQ_INT(v.len, 4);
	CHECK_EQ_STR(run("bytes($arg2 + 4094, 4)"), "<fault at 0x11000>");
	CHECK_EQ_STR(run("*(int *)$arg2"), "1819043176");
	CHECK_EQ_STR(run("((char *)$arg2)[1]"), "101 'e'");
	CHECK_EQ_STR(run("(char *)$arg2"), "0x10000 \"hello\"");
	CHECK_EQ_STR(run("(char *)0"), "0x0");
	CHECK_EQ_STR(run("(char *)16"), "0x10 <error: Cannot access memory at address 0x10>");
	CHECK_EQ_STR(run("*(long *)16"), "<fault at 0x10>");
	CHECK_EQ_STR(run("(char *)$arg2 == \"hello\""), "1");
	CHECK_EQ_STR(run("(long *)$arg2 + 1"), "(long *) 0x10008");
	CHECK_EQ_STR(run("&((long *)$arg2)[2]"), "(long *) 0x10010");
	nreads = 0;
	run("str($arg2)");
	CHECK_EQ_INT(nreads, 1); /* one bounded read for a short string */
}

static void test_truthy(void)
{
	struct diag_expr_result r = { .kind = DIAG_VALUE_SIGNED, .i = 0 };
	CHECK(!diag_expr_truthy(&r));
	r.i = -1;
	CHECK(diag_expr_truthy(&r));
	r.kind = DIAG_VALUE_ERROR;
	CHECK(!diag_expr_truthy(&r));
	r.kind = DIAG_VALUE_STRING;
	r.len = 0;
	CHECK(!diag_expr_truthy(&r));
	r.kind = DIAG_VALUE_FLOAT;
	r.f = 0.5;
	CHECK(diag_expr_truthy(&r));
}

static void test_errors(void)
{
	char msg[DIAG_ERRMSG_MAX];
	CHECK_EQ_INT(compile_code("len + 1", msg, sizeof(msg)), -DIAG_E_NODEBUG);
	CHECK_EQ_STR(msg, "value: no DWARF for work-O2 (names need debug info: 'len' at 1:1); use $arg1..$arg6");
	CHECK_EQ_INT(compile_code("($arg1 + 2", msg, sizeof(msg)), -DIAG_E_PARSE);
	CHECK_EQ_STR(msg, "value: syntax error at 1:11: expected ')'");
	CHECK_EQ_INT(compile_code("$arg1 +", msg, sizeof(msg)), -DIAG_E_PARSE);
	CHECK_EQ_STR(msg, "value: syntax error at 1:8: unexpected end of expression");
	CHECK_EQ_INT(compile_code("", msg, sizeof(msg)), -DIAG_E_PARSE);
	CHECK_EQ_STR(msg, "value: syntax error at 1:1: empty expression");
	CHECK_EQ_INT(compile_code("$arg1 )", msg, sizeof(msg)), -DIAG_E_PARSE);
	CHECK_EQ_STR(msg, "value: syntax error at 1:7: unbalanced ')'");
	CHECK_EQ_INT(compile_code("$arg7", msg, sizeof(msg)), -DIAG_E_NOSYM);
	CHECK(strstr(msg, "unknown name '$arg7' at 1:1; known: $arg1..$arg6") != NULL);
	CHECK_EQ_INT(compile_code("$retval", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_STR(msg, "value: '$retval' exists only for return events at 1:1");
	CHECK_EQ_INT(compile_code("\"abc\" + 1", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_INT(compile_code("$arg1 == \"abc\"", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_STR(msg, "value: a string literal can only be compared (== or !=) with a C string at 1:1");
	CHECK_EQ_INT(compile_code("*$arg1", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_STR(msg, "value: '*' needs a pointer (type long) at 1:1");
	CHECK_EQ_INT(compile_code("*(void *)$arg1", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_INT(compile_code("frob($arg1)", msg, sizeof(msg)), -DIAG_E_NOSYM);
	CHECK_EQ_STR(msg, "value: unknown function 'frob'; known: str(p[, max]), hex(x), bytes(p, n), stack([depth]) at 1:1");
	CHECK_EQ_INT(compile_code("bytes($arg1, 5000)", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_INT(compile_code("bytes($arg1)", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_INT(compile_code("(struct foo *)$arg1", msg, sizeof(msg)), -DIAG_E_NODEBUG);
	CHECK_EQ_INT(compile_code("$arg1 @ 2", msg, sizeof(msg)), -DIAG_E_PARSE);
	CHECK_EQ_STR(msg, "value: syntax error at 1:7: unexpected character '@'");
	CHECK_EQ_INT(compile_code("\"abc", msg, sizeof(msg)), -DIAG_E_PARSE);
	CHECK_EQ_INT(compile_code("12ab", msg, sizeof(msg)), -DIAG_E_PARSE);
	CHECK_EQ_INT(compile_code("$arg1.x", msg, sizeof(msg)), -DIAG_E_INVALID);
	CHECK_EQ_STR(msg, "value: '.' needs a struct or union (type long) at 1:6");
	/* limits: deep nesting and huge input are refused, not crashed on */
	char deep[400];
	memset(deep, '(', 200);
	strcpy(deep + 200, "1");
	CHECK_EQ_INT(compile_code(deep, msg, sizeof(msg)), -DIAG_E_LIMIT);
	char big[1100];
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_EQ_INT(compile_code(big, msg, sizeof(msg)), -DIAG_E_LIMIT);
	char many[1000] = "1";
	for (int i = 0; i < 200; i++)
		strcat(many, "+1");
	CHECK_EQ_INT(compile_code(many, msg, sizeof(msg)), -DIAG_E_LIMIT);
	/* a dwarf cache without the debug info for that file gives the same precise error */
	struct diag_dwarf_cache *dc = NULL;
	CHECK_EQ_INT(diag_dwarf_cache_new(&dc), 0);
	struct diag_expr_scope sc = scope_of(DIAG_EVENT_CALL);
	sc.dwarf = dc;
	sc.elf_path = "/nonexistent/work-O2";
	struct diag_expr *x = NULL;
	struct diag_error err = { 0 };
	CHECK(diag_expr_compile("len", &sc, &x, &err) < 0);
	CHECK(strstr(err.msg, "'len' at 1:1") != NULL);
	CHECK(diag_expr_compile("$arg1 + 1", &sc, &x, &err) == 0);
	diag_expr_free(x);
	diag_dwarf_cache_free(dc);
	diag_expr_free(NULL);
	diag_dwarf_cache_free(NULL);
}

/* The evaluator's defined results where C leaves the behaviour undefined (docs/expressions.md,
 * "Defined results"). Each of these was UB in the evaluator itself before (UBSan halts the
 * sanitizer build on it), or yielded what the x86 instruction happened to give. */
static void test_defined_results(void)
{
	/* float -> integer: truncated toward zero, NaN -> 0, out of range saturates */
	CHECK_EQ_STR(run("(long)-2.9"), "-2");
	CHECK_EQ_STR(run("(unsigned long)-33408.3"), "0"); /* fuzz_expr's finding (eval.c:187) */
	CHECK_EQ_STR(run("(unsigned long)1e30"), "18446744073709551615");
	CHECK_EQ_STR(run("(long)1e300"), "9223372036854775807");
	CHECK_EQ_STR(run("(long)-1e300"), "-9223372036854775808");
	CHECK_EQ_STR(run("(long)(0.0 / 0.0)"), "0");
	CHECK_EQ_STR(run("(int)1e10"), "2147483647");
	CHECK_EQ_STR(run("(int)-1e10"), "-2147483648");
	CHECK_EQ_STR(run("(unsigned char)300.5"), "255 '\\377'");
	CHECK_EQ_STR(run("(short)-40000.0"), "-32768");
	CHECK_EQ_STR(run("(unsigned int)-1.0"), "0");
	CHECK_EQ_STR(run("(_Bool)0.5"), "true"); /* C: a float is true when != 0 */
	CHECK_EQ_STR(run("(_Bool)(0.0 / 0.0)"), "true");
	CHECK_EQ_STR(run("(long)(1.0 / 0.0)"), "9223372036854775807");
	/* integers wrap (two's complement) where C overflows */
	CHECK_EQ_STR(run("9223372036854775807L + 1"), "-9223372036854775808");
	CHECK_EQ_STR(run("(-9223372036854775807L - 1) - 1"), "9223372036854775807");
	CHECK_EQ_STR(run("4611686018427387904L * 4"), "0");
	CHECK_EQ_STR(run("-(-9223372036854775807L - 1)"), "-9223372036854775808");
	CHECK_EQ_STR(run("2147483647 + 1"), "-2147483648");
	CHECK_EQ_STR(run("(-9223372036854775807L - 1) / -1"), "-9223372036854775808");
	CHECK_EQ_STR(run("(-9223372036854775807L - 1) % -1"), "0");
	CHECK_EQ_STR(run("(-2147483647 - 1) / -1"), "-2147483648");
	CHECK_EQ_STR(run("5 % 0"), "<division by zero>");
	CHECK_EQ_STR(run("1.0 / 0"), "inf");
	/* shifts: a count >= the width or negative gives 0 (>> of a negative value: -1) */
	CHECK_EQ_STR(run("1L << 64"), "0");
	CHECK_EQ_STR(run("1L << -1"), "0");
	CHECK_EQ_STR(run("-8L >> 70"), "-1");
	CHECK_EQ_STR(run("-8 >> 40"), "-1");
	CHECK_EQ_STR(run("8 >> -1"), "0");
	CHECK_EQ_STR(run("1 << 31"), "-2147483648");
	/* pointer arithmetic scales with wrap-around, never signed overflow */
	CHECK_EQ_STR(run("(long *)0 + 0x7fffffffffffffff"), "(long *) 0xfffffffffffffff8");
	CHECK_EQ_STR(run("(long *)8 - (long *)0x10"), "-1");
	/* captured bytes at any alignment: $rdi points one byte into an 8-byte-aligned buffer */
	memset(fake_mem, 0, 32);
	fake_mem[1] = 0x2a;
	regs.rdi = FAKE_BASE + 1;
	CHECK_EQ_STR(run("*(long *)$rdi"), "42");
	CHECK_EQ_STR(run("*(double *)($rdi + 8)"), "0");
	CHECK_EQ_STR(run("((int *)$rdi)[0x2000000000000000]"), "<fault at 0x8000000000010001>");
	/* bit fields as DWARF (hostile files included) may describe them */
	const uint8_t unit[8] = { 0xa0, 0xff, 0, 0, 0, 0, 0, 0x80 };
	struct diag_member m = { .name = "f", .bit_offset = 5, .bit_size = 3, .type = &expr_t_int };
	CHECK(expr_bitfield_fits(&m));
	CHECK_EQ_INT((int64_t)expr_bitfield(unit, sizeof(unit), &m), -3); /* 0b101, signed */
	m.type = &expr_t_uint;
	CHECK_EQ_INT((int64_t)expr_bitfield(unit, 1, &m), 5); /* one byte captured: enough */
	m = (struct diag_member){ .bit_offset = 7, .bit_size = 0xfffffffa, .type = &expr_t_int };
	CHECK(!expr_bitfield_fits(&m)); /* offset + size wraps an unsigned: refused all the same */
	m.bit_size = 57;
	CHECK(expr_bitfield_fits(&m));
	CHECK_EQ_INT((int64_t)expr_bitfield(unit, sizeof(unit), &m), (int64_t)0xff000000000001ffLL);
	m.bit_size = 58;
	CHECK(!expr_bitfield_fits(&m));
}

/* $comm is asked for only by an expression that reads it (the engine's lookup costs a clock
 * read per hit), once per evaluation; a NULL answer reads as "". */
static int comm_asks;
static const char *comm_name;
static const char *count_comm(void *arg)
{
	CHECK(arg == &comm_asks);
	comm_asks++;
	return comm_name;
}

static void test_comm_lazy(void)
{
	struct diag_expr_scope sc = scope_of(DIAG_EVENT_CALL);
	const char *srcs[] = { "$arg1 + 1", "$tid", "$comm", "$comm == \"cook\" && $arg1" };
	const int asks[] = { 0, 0, 1, 1 };
	const char *want[] = { "6", "101", "\"cook\"", "1" };
	set_reg("rdi", 5);
	comm_name = "cook";
	for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
		struct diag_expr *x = NULL;
		struct diag_error err = { 0 };
		CHECK_EQ_INT(diag_expr_compile(srcs[i], &sc, &x, &err), 0);
		if (!x)
			continue;
		struct diag_expr_ctx ctx = make_ctx();
		ctx.comm = NULL;
		ctx.comm_of = count_comm;
		ctx.comm_arg = &comm_asks;
		comm_asks = 0;
		static struct diag_expr_result r;
		diag_expr_eval(x, &ctx, &r);
		CHECK_EQ_INT(comm_asks, asks[i]);
		char text[64];
		struct diag_value v;
		diag_expr_render(x, &r, text, sizeof(text), &v);
		CHECK_EQ_STR(text, want[i]);
		diag_expr_free(x);
	}
	struct diag_expr *x = NULL;
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_expr_compile("$comm", &sc, &x, &err), 0);
	struct diag_expr_ctx ctx = make_ctx();
	ctx.comm = NULL;
	ctx.comm_of = count_comm;
	ctx.comm_arg = &comm_asks;
	comm_name = NULL;
	static struct diag_expr_result r;
	diag_expr_eval(x, &ctx, &r);
	char text[64];
	struct diag_value v;
	/* a reference taken for a later render keeps the expression after its owner frees it */
	diag_expr_ref_n(x, 3);
	diag_expr_free(x);
	diag_expr_free_n(x, 2);
	diag_expr_render(x, &r, text, sizeof(text), &v);
	CHECK_EQ_STR(text, "\"\"");
	diag_expr_free(x); /* the last: freed (ASan and valgrind see a leak or a double free) */
}

int main(void)
{
	test_numbers();
	test_registers();
	test_memory();
	test_truthy();
	test_errors();
	test_defined_results();
	test_comm_lazy();
	return CHECK_DONE();
}
