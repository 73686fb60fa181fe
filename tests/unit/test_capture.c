/* test_capture: capture programs (lib/capture): the checker's refusals (each naming the op),
 * the reference interpreter's meaning of every op on this process's real memory (a mapped page
 * followed by a PROT_NONE one, read with process_vm_readv, so faults are the kernel's), and
 * the snapshot reader over the payloads it writes, over cut blocks and over malformed ones. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "check.h"
#include "arch/regs.h"
#include "arch/ring.h"
#include "capture/capture.h"

static ssize_t self_read(void *arg, uint64_t addr, void *buf, size_t len)
{
	(void)arg;
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
	return n < 0 ? -errno : n;
}

static diag_regs regs;
static diag_fpregs fpregs;
static struct diag_cap_env env = { .regs = &regs, .fpregs = &fpregs, .read_mem = self_read };
static uint8_t *page;      /* readable page; page + 4096 is PROT_NONE */

static struct diag_cap_prog prog;

static void begin(void)
{
	memset(&prog, 0, sizeof(prog));
}

static void op(uint8_t o, uint32_t a, uint64_t imm)
{
	prog.ops[prog.n++] = (struct diag_cap_op){ .op = o, .a = a, .imm = imm };
}

static void k(uint64_t v)
{
	op(DIAG_CAP_CONST, 0, v);
}

/* Run prog as a condition ending in END; return the value on the stack or -1 (false/fault). */
static enum diag_cap_outcome run_cond(void)
{
	struct diag_error err = { 0 };
	int rc = diag_cap_check(&prog, DIAG_CAP_CONDITION, &err);
	CHECK_EQ_INT(rc, 0);
	if (rc)
		fprintf(stderr, "  %s\n", err.msg);
	uint64_t fa = 0;
	return diag_cap_run(&prog, DIAG_CAP_CONDITION, &env, NULL, 0, NULL, &fa);
}

/* a OP b == want, through a condition that compares the result with want. */
static void binop_is(uint8_t o, uint64_t a, uint64_t b, uint64_t want, int line)
{
	begin();
	k(a);
	k(b);
	op(o, 0, 0);
	k(want);
	op(DIAG_CAP_EQ, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	if (run_cond() != DIAG_CAP_DONE) {
		fprintf(stderr, "line %d: op %u on 0x%llx, 0x%llx is not 0x%llx\n", line, o,
			(unsigned long long)a, (unsigned long long)b, (unsigned long long)want);
		check_failures++;
	}
}
#define BIN(o, a, b, w) binop_is(DIAG_CAP_##o, (uint64_t)(a), (uint64_t)(b), (uint64_t)(w), __LINE__)

static void unop_is(uint8_t o, uint32_t arg, uint64_t a, uint64_t want, int line)
{
	begin();
	k(a);
	op(o, arg, 0);
	k(want);
	op(DIAG_CAP_EQ, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	if (run_cond() != DIAG_CAP_DONE) {
		fprintf(stderr, "line %d: unary op %u(%u) on 0x%llx is not 0x%llx\n", line, o, arg,
			(unsigned long long)a, (unsigned long long)want);
		check_failures++;
	}
}
#define UN(o, arg, a, w) unop_is(DIAG_CAP_##o, arg, (uint64_t)(a), (uint64_t)(w), __LINE__)

static void test_arith(void)
{
	BIN(ADD, 5, 7, 12);
	BIN(ADD, UINT64_MAX, 2, 1);
	BIN(SUB, 5, 7, -2);
	BIN(MUL, 6, -7, -42);
	BIN(AND, 0xf0f0, 0xff00, 0xf000);
	BIN(OR, 0xf0, 0x0f, 0xff);
	BIN(XOR, 0xff, 0x0f, 0xf0);
	BIN(SHL, 1, 65, 2); /* shifts by b & 63 */
	BIN(SHR, 0x8000000000000000ULL, 63, 1);
	BIN(SAR, 0x8000000000000000ULL, 63, UINT64_MAX);
	BIN(SAR, -16, 2, -4);
	BIN(DIVS, -7, 2, -3);
	BIN(DIVS, INT64_MIN, -1, INT64_MIN);
	BIN(REMS, INT64_MIN, -1, 0);
	BIN(REMS, -7, 2, -1);
	BIN(DIVU, -7, 2, 0x7ffffffffffffffcULL);
	BIN(REMU, 17, 5, 2);
	BIN(EQ, 3, 3, 1);
	BIN(NE, 3, 3, 0);
	BIN(LTS, -1, 0, 1);
	BIN(LTU, -1, 0, 0);
	BIN(LES, 2, 2, 1);
	BIN(LEU, 3, 2, 0);
	BIN(GTS, 0, -1, 1);
	BIN(GTU, 0, -1, 0);
	BIN(GES, -2, -1, 0);
	BIN(GEU, -1, -2, 1);
	UN(NEG, 0, 5, -5);
	UN(NOT, 0, 0, UINT64_MAX);
	UN(LNOT, 0, 0, 1);
	UN(LNOT, 0, 9, 0);
	UN(SEXT, 1, 0x80, 0xffffffffffffff80ULL);
	UN(SEXT, 2, 0x17fff, 0x7fff);
	UN(SEXT, 4, 0x80000000ULL, 0xffffffff80000000ULL);
	UN(ZEXT, 1, 0x1234, 0x34);
	UN(ZEXT, 2, -1, 0xffff);
	UN(ZEXT, 4, -1, 0xffffffffULL);
	begin(); /* DUP: the copy equals the original */
	k(7);
	op(DIAG_CAP_DUP, 0, 0);
	op(DIAG_CAP_EQ, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(run_cond(), DIAG_CAP_DONE);

	/* division by zero aborts: a false condition, an aborted value */
	for (uint8_t o = DIAG_CAP_DIVS; o <= DIAG_CAP_REMU; o++) {
		begin();
		k(1);
		k(0);
		op(o, 0, 0);
		op(DIAG_CAP_END, 0, 0);
		CHECK_EQ_INT(run_cond(), DIAG_CAP_FALSE);
	}
	begin();
	k(1);
	k(0);
	op(DIAG_CAP_DIVU, 0, 0);
	op(DIAG_CAP_DROP, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = 0;
	uint32_t len = 99;
	CHECK_EQ_INT(diag_cap_check(&prog, DIAG_CAP_VALUE, NULL), 0);
	CHECK_EQ_INT(diag_cap_run(&prog, DIAG_CAP_VALUE, &env, NULL, 0, &len, NULL), DIAG_CAP_ABORTED);
	CHECK_EQ_INT(len, 0);
}

static void test_regs_and_jumps(void)
{
	int rdi = diag_reg_lookup("rdi", NULL), rsp = diag_reg_lookup("rsp", NULL);
	diag_reg_set(&regs, rdi, 0x1122334455667788ULL);
	diag_reg_set(&regs, rsp, 0x7ffd0000ULL);
	double d = 2.5;
	memcpy((uint8_t *)diag_fpregs_vector(&fpregs, 3), &d, 8);
	begin();
	op(DIAG_CAP_REG, (uint32_t)rdi, 0);
	k(0x1122334455667788ULL);
	op(DIAG_CAP_EQ, 0, 0);
	op(DIAG_CAP_FPREG, 3, 0);
	uint64_t bits;
	memcpy(&bits, &d, 8);
	k(bits);
	op(DIAG_CAP_EQ, 0, 0);
	op(DIAG_CAP_AND, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(run_cond(), DIAG_CAP_DONE);
	/* FPREG without vector registers reads 0 */
	env.fpregs = NULL;
	begin();
	op(DIAG_CAP_FPREG, 3, 0);
	op(DIAG_CAP_LNOT, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(run_cond(), DIAG_CAP_DONE);
	env.fpregs = &fpregs;

	/* a && b with short-circuit: 0 && (1/0) is false without aborting; 1 || (1/0) true */
	for (int shape = 0; shape < 2; shape++) {
		begin();
		k(shape == 0 ? 0 : 1);
		op(DIAG_CAP_DUP, 0, 0);
		op(shape == 0 ? DIAG_CAP_JZ : DIAG_CAP_JNZ, 8, 0);  /* 2 */
		op(DIAG_CAP_DROP, 0, 0);
		k(1);
		k(0);
		op(DIAG_CAP_DIVU, 0, 0);
		op(DIAG_CAP_JMP, 8, 0);                              /* 7 */
		op(DIAG_CAP_END, 0, 0);                              /* 8 */
		CHECK_EQ_INT(run_cond(), shape == 0 ? DIAG_CAP_FALSE : DIAG_CAP_DONE);
	}
	/* the JMP skips an abort */
	begin();
	k(1);
	op(DIAG_CAP_JMP, 6, 0);
	k(1);
	k(0);
	op(DIAG_CAP_DIVS, 0, 0);
	op(DIAG_CAP_ADD, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(run_cond(), DIAG_CAP_DONE);
}

static void test_memory_ops(void)
{
	uint8_t *end = page + 4096;
	memcpy(page, "\x88\x77\x66\x55\x44\x33\x22\x11", 8);
	strcpy((char *)page + 64, "hello");
	memset(end - 3, 'x', 3);
	/* LOAD of each size, zero-extended */
	static const uint32_t sizes[] = { 1, 2, 4, 8 };
	static const uint64_t want[] = { 0x88, 0x7788, 0x55667788, 0x1122334455667788ULL };
	for (int i = 0; i < 4; i++) {
		begin();
		k((uintptr_t)page);
		op(DIAG_CAP_LOAD, sizes[i], 0);
		k(want[i]);
		op(DIAG_CAP_EQ, 0, 0);
		op(DIAG_CAP_END, 0, 0);
		CHECK_EQ_INT(run_cond(), DIAG_CAP_DONE);
	}
	/* a load across into the PROT_NONE page faults at its first byte, exactly */
	begin();
	k((uintptr_t)(end - 3));
	op(DIAG_CAP_LOAD, 8, 0);
	op(DIAG_CAP_DROP, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(diag_cap_check(&prog, DIAG_CAP_VALUE, NULL), 0);
	uint64_t fa = 0;
	uint32_t len = 1;
	CHECK_EQ_INT(diag_cap_run(&prog, DIAG_CAP_VALUE, &env, NULL, 0, &len, &fa), DIAG_CAP_FAULTED);
	CHECK_EQ_INT(fa, (uintptr_t)end);
	CHECK_EQ_INT(len, 0);
	begin();
	k(16);
	op(DIAG_CAP_LOAD, 4, 0);
	op(DIAG_CAP_DROP, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(diag_cap_run(&prog, DIAG_CAP_VALUE, &env, NULL, 0, &len, &fa), DIAG_CAP_FAULTED);
	CHECK_EQ_INT(fa, 16);
	/* the same load in a condition is false */
	begin();
	k(16);
	op(DIAG_CAP_LOAD, 4, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(run_cond(), DIAG_CAP_FALSE);

	/* STREQ: equal, different, a prefix, and faults only where every byte before matched */
	const char *lits[] = { "hello", "help", "hell", "hello!", "xxx", "xxxy" };
	int eqs[] = { 1, 0, 0, 0, -1, -1 };
	for (int i = 0; i < 6; i++) {
		begin();
		prog.lits[0] = lits[i];
		prog.nlits = 1;
		k(i < 4 ? (uintptr_t)page + 64 : (uintptr_t)(end - 3));
		op(DIAG_CAP_STREQ, 0, 0);
		op(DIAG_CAP_DROP, 0, 0);
		op(DIAG_CAP_END, 0, 0);
		enum diag_cap_outcome o = diag_cap_run(&prog, DIAG_CAP_VALUE, &env, NULL, 0, &len, &fa);
		CHECK_EQ_INT(o, eqs[i] < 0 ? DIAG_CAP_FAULTED : DIAG_CAP_DONE);
		if (eqs[i] < 0)
			CHECK_EQ_INT(fa, (uintptr_t)end);
		prog.n = 0;
		k(i < 4 ? (uintptr_t)page + 64 : (uintptr_t)(end - 3));
		op(DIAG_CAP_STREQ, 0, 0);
		op(DIAG_CAP_END, 0, 0);
		CHECK_EQ_INT(run_cond(), eqs[i] == 1 ? DIAG_CAP_DONE : DIAG_CAP_FALSE);
	}
	/* "xxz" differs before the unreadable page: 0, no fault */
	begin();
	prog.lits[0] = "xxz";
	prog.nlits = 1;
	k((uintptr_t)(end - 3));
	op(DIAG_CAP_STREQ, 0, 0);
	op(DIAG_CAP_LNOT, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(run_cond(), DIAG_CAP_DONE);
}

/* Payload round trip: each SAVE op's block read back through the snapshot. */
static void test_payload(void)
{
	uint8_t *end = page + 4096;
	for (int i = 0; i < 256; i++)
		page[1024 + i] = (uint8_t)i;
	strcpy((char *)page + 2048, "a string");
	memcpy(end - 5, "tail!", 5);
	double d = -1.25;
	memcpy((uint8_t *)diag_fpregs_vector(&fpregs, 0), &d, 8);
	begin();
	k((uintptr_t)page + 1024);
	op(DIAG_CAP_SAVE_MEM, 100, 0);
	k((uintptr_t)page + 1200);
	k(7);
	op(DIAG_CAP_SAVE_MEM_N, 40, 0);  /* runtime length 7 */
	k((uintptr_t)page + 1300);
	k(9999);
	op(DIAG_CAP_SAVE_MEM_N, 12, 0);  /* clamped to 12 */
	k((uintptr_t)page + 2048);
	op(DIAG_CAP_SAVE_STR, 200, 0);   /* stops after its NUL */
	k((uintptr_t)page + 2048);
	op(DIAG_CAP_SAVE_STR, 4, 0);     /* the limit: 4 bytes, no NUL */
	op(DIAG_CAP_SAVE_FPREG, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = diag_cap_block_bytes(100) + diag_cap_block_bytes(40) +
		diag_cap_block_bytes(12) + diag_cap_block_bytes(200) + diag_cap_block_bytes(4) +
		diag_cap_block_bytes(16);
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_cap_check(&prog, DIAG_CAP_VALUE, &err), 0);
	prog.max_payload--;
	CHECK_EQ_INT(diag_cap_check(&prog, DIAG_CAP_VALUE, &err), -DIAG_E_INVALID);
	CHECK_CONTAINS(err.msg, "max_payload");
	prog.max_payload++;
	uint8_t payload[DIAG_CAP_MAX_PAYLOAD];
	uint32_t len = 0;
	CHECK_EQ_INT(diag_cap_run(&prog, DIAG_CAP_VALUE, &env, payload, sizeof(payload), &len, NULL),
		     DIAG_CAP_DONE);
	CHECK_EQ_INT(len, diag_cap_block_bytes(100) + diag_cap_block_bytes(7) + diag_cap_block_bytes(12) +
		     diag_cap_block_bytes(9) + diag_cap_block_bytes(4) + diag_cap_block_bytes(16));
	CHECK(len <= prog.max_payload);
	struct diag_cap_snapshot s;
	diag_cap_snapshot_init(&s, payload, len, false, 0);
	uint8_t buf[300];
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page + 1024, buf, 100), 100);
	CHECK(!memcmp(buf, page + 1024, 100));
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page + 1090, buf, 50), 34);  /* short */
	CHECK(!memcmp(buf, page + 1090, 34));
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page + 1200, buf, 40), 7);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page + 1300, buf, 40), 12);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page + 2048, buf, 200), 9);
	CHECK_EQ_STR((char *)buf, "a string");
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page + 1124, buf, 4), -EFAULT);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, 0, buf, 4), -EFAULT);
	diag_fpregs f;
	memset(&f, 0xee, sizeof(f));
	CHECK_EQ_INT(diag_cap_snapshot_fpregs(&s, &f), 0);
	double back;
	memcpy(&back, diag_fpregs_vector(&f, 0), 8);
	CHECK(back == -1.25);
	CHECK_EQ_INT(diag_fpregs_vector(&f, 1)[0], 0);

	/* adjacent blocks read as one contiguous range */
	begin();
	k((uintptr_t)page + 1024);
	op(DIAG_CAP_SAVE_MEM, 10, 0);
	k((uintptr_t)page + 1034);
	op(DIAG_CAP_SAVE_MEM, 10, 0);
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = 2 * diag_cap_block_bytes(10);
	CHECK_EQ_INT(diag_cap_run(&prog, DIAG_CAP_VALUE, &env, payload, sizeof(payload), &len, NULL),
		     DIAG_CAP_DONE);
	diag_cap_snapshot_init(&s, payload, len, false, 0);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page + 1027, buf, 100), 17);
	CHECK(!memcmp(buf, page + 1027, 17));

	/* a block cut at the fault: SAVE_MEM across into the PROT_NONE page */
	begin();
	k((uintptr_t)page + 1024);
	op(DIAG_CAP_SAVE_MEM, 8, 0);
	k((uintptr_t)(end - 5));
	op(DIAG_CAP_SAVE_MEM, 16, 0);
	k((uintptr_t)page);
	op(DIAG_CAP_SAVE_MEM, 8, 0); /* never runs */
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = 3 * diag_cap_block_bytes(16);
	uint64_t fa = 0;
	CHECK_EQ_INT(diag_cap_run(&prog, DIAG_CAP_VALUE, &env, payload, sizeof(payload), &len, &fa),
		     DIAG_CAP_FAULTED);
	CHECK_EQ_INT(fa, (uintptr_t)end);
	CHECK_EQ_INT(len, diag_cap_block_bytes(8) + diag_cap_block_bytes(16));
	diag_cap_snapshot_init(&s, payload, len, true, fa);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)(end - 5), buf, 16), 5);
	CHECK(!memcmp(buf, "tail!", 5));
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)end, buf, 1), -EFAULT);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page + 1024, buf, 8), 8);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)page, buf, 8), -EFAULT);
	/* the same payload read as not faulted holds the 16 bytes (zeros past the fault) */
	diag_cap_snapshot_init(&s, payload, len, false, 0);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)(end - 5), buf, 16), 16);
	/* a cut block whose header a writer left claiming more than the payload holds */
	diag_cap_snapshot_init(&s, payload, len - 8, true, fa);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)(end - 5), buf, 16), 5);

	/* SAVE_STR into the fault: the bytes before it, then stopped */
	begin();
	k((uintptr_t)(end - 5));
	op(DIAG_CAP_SAVE_STR, 200, 0);
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = diag_cap_block_bytes(200);
	CHECK_EQ_INT(diag_cap_run(&prog, DIAG_CAP_VALUE, &env, payload, sizeof(payload), &len, &fa),
		     DIAG_CAP_FAULTED);
	CHECK_EQ_INT(fa, (uintptr_t)end);
	diag_cap_snapshot_init(&s, payload, len, true, fa);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, (uintptr_t)(end - 5), buf, 200), 5);
	/* SAVE_MEM at an unmapped address: an empty cut block, nothing readable */
	begin();
	k(16);
	op(DIAG_CAP_SAVE_MEM, 8, 0);
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = diag_cap_block_bytes(8);
	CHECK_EQ_INT(diag_cap_run(&prog, DIAG_CAP_VALUE, &env, payload, sizeof(payload), &len, &fa),
		     DIAG_CAP_FAULTED);
	CHECK_EQ_INT(fa, 16);
	diag_cap_snapshot_init(&s, payload, len, true, fa);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, 16, buf, 8), -EFAULT);
}

static void test_malformed(void)
{
	uint8_t p[256] = { 0 };
	uint8_t buf[64];
	struct diag_cap_snapshot s;
	struct diag_cap_block h = { .addr = 0x1000, .len = 8, .kind = DIAG_CAP_BLOCK_MEM };
	memcpy(p, &h, sizeof(h));
	memcpy(p + 16, "ABCDEFGH", 8);
	/* well formed */
	diag_cap_snapshot_init(&s, p, 24, false, 0);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, 0x1002, buf, 8), 6);
	/* a truncated header reads as nothing */
	diag_cap_snapshot_init(&s, p, 10, false, 0);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, 0x1000, buf, 8), -EFAULT);
	/* a length beyond the payload: only the bytes present */
	h.len = 0xffffffff;
	memcpy(p, &h, sizeof(h));
	diag_cap_snapshot_init(&s, p, 20, false, 0);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, 0x1000, buf, 8), 4);
	/* a block ending at the top of the address space */
	h = (struct diag_cap_block){ .addr = UINT64_MAX - 3, .len = 8, .kind = DIAG_CAP_BLOCK_MEM };
	memcpy(p, &h, sizeof(h));
	diag_cap_snapshot_init(&s, p, 24, false, 0);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, UINT64_MAX - 1, buf, 8), 6);
	/* an unknown kind ends the walk: the block after it is not read */
	h = (struct diag_cap_block){ .addr = 0x1000, .len = 0, .kind = 9 };
	memcpy(p, &h, sizeof(h));
	h = (struct diag_cap_block){ .addr = 0x2000, .len = 8, .kind = DIAG_CAP_BLOCK_MEM };
	memcpy(p + 16, &h, sizeof(h));
	diag_cap_snapshot_init(&s, p, 40, false, 0);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, 0x2000, buf, 8), -EFAULT);
	/* an FPREG block naming a register that does not exist, or short */
	h = (struct diag_cap_block){ .addr = 1000, .len = 16, .kind = DIAG_CAP_BLOCK_FPREG };
	memcpy(p, &h, sizeof(h));
	h = (struct diag_cap_block){ .addr = 2, .len = 16, .kind = DIAG_CAP_BLOCK_FPREG };
	memcpy(p + 32, &h, sizeof(h));
	diag_fpregs f;
	diag_cap_snapshot_init(&s, p, 52, false, 0);
	CHECK_EQ_INT(diag_cap_snapshot_fpregs(&s, &f), 0);
	/* a ring v2 record: its header's length is bounded by the bytes there, its flags read */
	{
		_Alignas(8) uint8_t rbuf[DIAG_RING_REC_HDR + 64] = { 0 };
		struct diag_ring_rec *rec = (struct diag_ring_rec *)rbuf;
		h = (struct diag_cap_block){ .addr = 0x3000, .len = 8, .kind = DIAG_CAP_BLOCK_MEM };
		memcpy(rbuf + DIAG_RING_REC_HDR, &h, sizeof(h));
		memcpy(rbuf + DIAG_RING_REC_HDR + 16, "12345678", 8);
		rec->payload_len = 0xffffffff;
		rec->flags = DIAG_REC_FAULT;
		rec->fault_addr = 0x3004;
		diag_cap_snapshot_of_rec(&s, rec, DIAG_RING_REC_HDR + 24);
		CHECK_EQ_INT(s.len, 24);
		CHECK(s.faulted);
		CHECK_EQ_INT(diag_cap_snapshot_read(&s, 0x3000, buf, 8), 4);
		diag_cap_snapshot_of_rec(&s, rec, DIAG_RING_REC_HDR - 1);
		CHECK_EQ_INT(diag_cap_snapshot_read(&s, 0x3000, buf, 8), -EFAULT);
	}
	/* NULL payload */
	diag_cap_snapshot_init(&s, NULL, 100, true, 5);
	CHECK_EQ_INT(diag_cap_snapshot_read(&s, 0, buf, 8), -EFAULT);
	/* random payloads never read outside themselves (run under ASan in CI) */
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (int round = 0; round < 2000; round++) {
		uint8_t *heap = malloc(96);
		for (int i = 0; i < 96; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			heap[i] = (uint8_t)(x >> 56);
			if (i % 16 == 12)
				heap[i] = (uint8_t)(1 + (x >> 60) % 2); /* kinds mostly valid */
			if (i % 16 == 8)
				heap[i] = (uint8_t)(x >> 60);           /* small lengths */
			if (i % 16 == 9 || i % 16 == 10 || i % 16 == 11)
				heap[i] = 0;
		}
		uint64_t addr;
		memcpy(&addr, heap, 8);
		uint32_t n = (uint32_t)(x % 97);
		diag_cap_snapshot_init(&s, heap, n, round & 1, addr + 3);
		(void)diag_cap_snapshot_read(&s, addr + (x & 7), buf, sizeof(buf));
		(void)diag_cap_snapshot_fpregs(&s, &f);
		free(heap);
	}
}

static void expect_refused(enum diag_cap_kind kind, const char *needle)
{
	struct diag_error err = { 0 };
	CHECK_EQ_INT(diag_cap_check(&prog, kind, &err), -DIAG_E_INVALID);
	CHECK_CONTAINS(err.msg, needle);
}

static void test_checker(void)
{
	begin();
	expect_refused(DIAG_CAP_CONDITION, "0 ops");
	begin();
	op(77, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_VALUE, "op 0 (?): unknown opcode 77");
	begin();
	k(0);
	op(DIAG_CAP_LOAD, 3, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 1 (LOAD): size 3");
	begin();
	k(0);
	op(DIAG_CAP_SEXT, 8, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 1 (SEXT)");
	begin();
	op(DIAG_CAP_REG, 3, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 0 (REG): no saved register");
	begin(); /* a register the record does not hold (x86-64: fs_base) */
	op(DIAG_CAP_REG, (uint32_t)diag_reg_lookup("fs_base", NULL), 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 0 (REG): no saved register");
	CHECK(diag_cap_reg_saved((uint32_t)diag_reg_lookup("rdi", NULL)));
	CHECK(diag_cap_reg_saved((uint32_t)diag_reg_lookup("rsp", NULL)));
	CHECK(!diag_cap_reg_saved((uint32_t)diag_reg_lookup("fs_base", NULL)));
	begin();
	op(DIAG_CAP_REG, (uint32_t)sizeof(diag_regs), 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 0 (REG)");
	begin();
	op(DIAG_CAP_FPREG, DIAG_CAP_NFPREGS, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 0 (FPREG)");
	/* jumps: backward, to itself, past the end */
	begin();
	k(1);
	op(DIAG_CAP_JMP, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 1 (JMP): jump to op 0");
	begin();
	k(1);
	op(DIAG_CAP_JMP, 1, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 1 (JMP)");
	begin();
	k(1);
	k(1);
	op(DIAG_CAP_JZ, 4, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 2 (JZ): jump to op 4");
	/* depths: underflow, overflow, paths that disagree, END's depth */
	begin();
	op(DIAG_CAP_ADD, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 0 (ADD): pops 2");
	begin();
	for (int i = 0; i <= DIAG_CAP_MAX_STACK; i++)
		k(1);
	for (int i = 0; i < DIAG_CAP_MAX_STACK; i++)
		op(DIAG_CAP_ADD, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 16 (CONST): stack deeper than 16");
	begin();
	for (int i = 0; i < DIAG_CAP_MAX_STACK; i++)
		k(1);
	for (int i = 1; i < DIAG_CAP_MAX_STACK; i++)
		op(DIAG_CAP_ADD, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(diag_cap_check(&prog, DIAG_CAP_CONDITION, NULL), 0);  /* exactly 16 is fine */
	begin();
	k(1);
	k(1);
	op(DIAG_CAP_JZ, 4, 0);   /* depth 1 at 4 */
	k(5);                    /* depth 2 falls into 4 */
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 4 (END): the stack depth differs");
	begin();
	k(1);
	k(2);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_CONDITION, "op 2 (END): stack depth 2 at the end (must be 1)");
	begin();
	k(1);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_VALUE, "op 1 (END): stack depth 1 at the end (must be 0)");
	begin();
	k(1);
	op(DIAG_CAP_DROP, 0, 0);
	expect_refused(DIAG_CAP_VALUE, "op 1 (DROP): runs off the end");
	/* SAVE in a condition, SAVE sizes, literals */
	begin();
	op(DIAG_CAP_SAVE_FPREG, 0, 0);
	k(1);
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = 64;
	expect_refused(DIAG_CAP_CONDITION, "op 0 (SAVE_FPREG): a condition saves nothing");
	begin();
	k(0);
	op(DIAG_CAP_SAVE_MEM, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	expect_refused(DIAG_CAP_VALUE, "op 1 (SAVE_MEM): size 0");
	begin();
	k(0);
	op(DIAG_CAP_SAVE_STR, DIAG_CAP_MAX_PAYLOAD + 1, 0);
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = DIAG_CAP_MAX_PAYLOAD;
	expect_refused(DIAG_CAP_VALUE, "op 1 (SAVE_STR)");
	begin();
	k(0);
	op(DIAG_CAP_SAVE_MEM, DIAG_CAP_MAX_PAYLOAD, 0);
	op(DIAG_CAP_END, 0, 0);
	prog.max_payload = DIAG_CAP_MAX_PAYLOAD;
	expect_refused(DIAG_CAP_VALUE, "may write 8208 bytes");  /* header included */
	prog.max_payload = DIAG_CAP_MAX_PAYLOAD + 1;
	expect_refused(DIAG_CAP_VALUE, "max_payload 8193");
	begin();
	k(0);
	op(DIAG_CAP_STREQ, 1, 0);
	op(DIAG_CAP_END, 0, 0);
	prog.lits[0] = "a";
	prog.nlits = 1;
	expect_refused(DIAG_CAP_CONDITION, "op 1 (STREQ): no literal 1");
	static char longlit[DIAG_CAP_MAX_LIT + 1];
	memset(longlit, 'a', DIAG_CAP_MAX_LIT);
	prog.ops[1].a = 0;
	prog.lits[0] = longlit;
	expect_refused(DIAG_CAP_CONDITION, "op 1 (STREQ): literal longer");
	longlit[DIAG_CAP_MAX_LIT - 1] = '\0';
	CHECK_EQ_INT(diag_cap_check(&prog, DIAG_CAP_CONDITION, NULL), 0);
	/* an unreachable op after a JMP is still checked for its operand, not its depth */
	begin();
	k(1);
	op(DIAG_CAP_JMP, 3, 0);
	op(DIAG_CAP_ADD, 0, 0);
	op(DIAG_CAP_END, 0, 0);
	CHECK_EQ_INT(diag_cap_check(&prog, DIAG_CAP_CONDITION, NULL), 0);
}

int main(void)
{
	page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(page != MAP_FAILED);
	if (page == MAP_FAILED)
		return CHECK_DONE();
	CHECK_EQ_INT(mprotect(page + 4096, 4096, PROT_NONE), 0);
	test_checker();
	test_arith();
	test_regs_and_jumps();
	test_memory_ops();
	test_payload();
	test_malformed();
	return CHECK_DONE();
}
