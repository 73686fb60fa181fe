/* test_xol: decode and execute-out-of-line slots, executed in-process. Small functions are
 * assembled as bytes into an RWX region; the slot for each function's FIRST instruction is built
 * into a page near the region (within 2 GiB) or far from it (beyond 4 GiB), then called as if it
 * were the function's entry. The result must equal calling the original. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"

#include "arch/insn.h"
#include "util/error.h"

#define REGION_SIZE (1u << 20)
#define SLOT_PAGE 4096u

typedef uint64_t (*fn6)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

struct env {
	uint8_t *code;   /* RWX region holding the "original" functions */
	size_t used;
	uint8_t *near;   /* slot page within 2 GiB of code */
	uint8_t *far;    /* slot page more than 4 GiB away from code */
	uint64_t helper_retaddr; /* mov rax,[rsp]; ret: returns its own return address */
	uint64_t helper_42;      /* mov eax,42; ret */
};

static uint8_t *map_at(uint8_t *hint, size_t size)
{
	void *p = mmap(hint, size, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS | (hint ? MAP_FIXED_NOREPLACE : 0), -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static uint8_t *map_candidates(uint8_t *base, const int64_t *offs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = map_at(base + offs[i], SLOT_PAGE);

		if (p)
			return p;
	}
	return NULL;
}

/* Append code at a fresh 256-byte aligned spot (16-byte guard before it for backward targets). */
static uint64_t put(struct env *e, const void *bytes, size_t n)
{
	uint8_t *at = e->code + e->used + 64;

	memcpy(at, bytes, n);
	e->used += 256;
	return (uint64_t)(uintptr_t)at;
}

static void put_at(uint64_t addr, const void *bytes, size_t n)
{
	memcpy((void *)(uintptr_t)addr, bytes, n);
}

static void put_u32(uint64_t addr, uint32_t v)
{
	memcpy((void *)(uintptr_t)addr, &v, 4);
}

static void put_u64(uint64_t addr, uint64_t v)
{
	memcpy((void *)(uintptr_t)addr, &v, 8);
}

/* prologue bytes then jmp [rip+0]; dq target: sets up flags or registers before entering. */
static uint64_t stub(struct env *e, const void *prologue, size_t n, uint64_t target)
{
	uint8_t b[64];
	static const uint8_t jmp[6] = { 0xff, 0x25, 0, 0, 0, 0 };

	memcpy(b, prologue, n);
	memcpy(b + n, jmp, 6);
	memcpy(b + n + 6, &target, 8);
	return put(e, b, n + 14);
}

static uint64_t call6(uint64_t fn, const uint64_t a[6])
{
	return ((fn6)(uintptr_t)fn)(a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* Build the slot for the first instruction of fn into slot. */
static int build(uint64_t fn, uint8_t *slot, struct diag_error *err, size_t *len_out)
{
	struct diag_insn in;
	uint8_t buf[DIAG_XOL_SLOT_SIZE];
	size_t len = 0;
	int rc = diag_insn_decode((const uint8_t *)(uintptr_t)fn, 15, fn, &in, err);

	if (rc < 0)
		return rc;
	rc = diag_xol_build(&in, (uint64_t)(uintptr_t)slot, buf, &len, err);
	if (rc < 0)
		return rc;
	if (len > DIAG_XOL_SLOT_SIZE) {
		fprintf(stderr, "slot length %zu exceeds %d\n", len, DIAG_XOL_SLOT_SIZE);
		check_failures++;
		return -1;
	}
	memset(slot, 0xcc, SLOT_PAGE);
	memcpy(slot, buf, len);
	if (len_out)
		*len_out = len;
	return 0;
}

/* Build fn's slot; 1 if built, else 0 with the failure counted under name. */
static int built(const char *name, uint64_t fn, uint8_t *slot)
{
	struct diag_error err = { 0 };

	if (build(fn, slot, &err, NULL) == 0)
		return 1;
	fprintf(stderr, "%s: build failed: %s\n", name, err.msg);
	check_failures++;
	return 0;
}

/* Call entry (which jumps to fn, or to the slot for fn when via_slot) and compare with the
 * expected value; entry_for builds the entry for a given target address. */
struct run {
	const char *name;
	uint64_t fn;
	uint64_t args[6];
	uint64_t expect;
	const uint8_t *prologue; /* optional stub prologue run before entering */
	size_t prologue_len;
};

static void run_case(struct env *e, const struct run *r, uint8_t *slot)
{
	uint64_t orig_entry = r->fn, slot_entry = (uint64_t)(uintptr_t)slot;
	uint64_t got_orig, got_slot;

	if (!built(r->name, r->fn, slot))
		return;
	if (r->prologue) {
		orig_entry = stub(e, r->prologue, r->prologue_len, r->fn);
		slot_entry = stub(e, r->prologue, r->prologue_len, slot_entry);
	}
	got_orig = call6(orig_entry, r->args);
	got_slot = call6(slot_entry, r->args);
	if (got_orig != r->expect || got_slot != r->expect) {
		fprintf(stderr, "%s (slot %s): expected 0x%llx, original 0x%llx, slot 0x%llx\n", r->name,
			slot == e->near ? "near" : "far", (unsigned long long)r->expect,
			(unsigned long long)got_orig, (unsigned long long)got_slot);
		check_failures++;
	}
}

/* Through the near slot only: an operand the far slot cannot reach. */
static void run_near(struct env *e, struct run *r, const char *name, uint64_t expect)
{
	r->name = name;
	r->expect = expect;
	run_case(e, r, e->near);
}

static void run_both(struct env *e, struct run *r, const char *name, uint64_t expect)
{
	run_near(e, r, name, expect);
	run_case(e, r, e->far);
}

static void expect_refusal(struct env *e, const char *name, uint64_t fn, uint8_t *slot, const char *why)
{
	struct diag_error err = { 0 };
	char addr[32];
	int rc = build(fn, slot, &err, NULL);

	snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)fn);
	(void)e;
	if (rc != -DIAG_E_RELOC || !strstr(err.msg, why) || !strstr(err.msg, addr)) {
		fprintf(stderr, "%s: expected -DIAG_E_RELOC mentioning '%s' and %s, got %d '%s'\n", name,
			why, addr, rc, err.msg);
		check_failures++;
	}
}

static void test_riprel(struct env *e)
{
	static const uint8_t lea[] = { 0x48, 0x8d, 0x05, 0x00, 0x01, 0x00, 0x00, 0xc3 };
	static const uint8_t load[] = { 0x8b, 0x05, 0x7a, 0x00, 0x00, 0x00, 0xc3 };
	/* cmp byte [rip+0x79],0; sete al; movzx eax,al; ret: the disp counts the trailing imm8 */
	static const uint8_t cmpb[] = { 0x80, 0x3d, 0x79, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x94, 0xc0,
					0x0f, 0xb6, 0xc0, 0xc3 };
	struct run r = { 0 };

	r.fn = put(e, lea, sizeof(lea));
	run_near(e, &r, "lea rax,[rip+0x100]", r.fn + 7 + 0x100);
	expect_refusal(e, "lea far", r.fn, e->far,
		       "rip-relative operand out of reach of the out-of-line page");

	r.fn = put(e, load, sizeof(load));
	put_u32(r.fn + 0x80, 0x12345678);
	run_near(e, &r, "mov eax,[rip+X]", 0x12345678);
	expect_refusal(e, "load far", r.fn, e->far, "out of reach");

	r.fn = put(e, cmpb, sizeof(cmpb));
	put_at(r.fn + 0x80, "\0", 1);
	run_near(e, &r, "cmp byte [rip+X],0", 1);
	put_at(r.fn + 0x80, "\7", 1);
	run_near(e, &r, "cmp byte [rip+X],0", 0);
}

static void test_call_rel(struct env *e)
{
	uint8_t b[] = { 0xe8, 0, 0, 0, 0, 0xc3 };
	uint8_t b2[] = { 0xe8, 0, 0, 0, 0, 0x83, 0xc0, 0x01, 0xc3 };
	struct run r = { 0 };
	uint64_t at = (uint64_t)(uintptr_t)(e->code + e->used + 64);

	/* The callee reports its return address: the slot must push the original one. */
	put_u32((uint64_t)(uintptr_t)(b + 1), (uint32_t)(e->helper_retaddr - (at + 5)));
	r.fn = put(e, b, sizeof(b));
	run_both(e, &r, "call rel32 (return address)", r.fn + 5);

	at = (uint64_t)(uintptr_t)(e->code + e->used + 64);
	put_u32((uint64_t)(uintptr_t)(b2 + 1), (uint32_t)(e->helper_42 - (at + 5)));
	r.fn = put(e, b2, sizeof(b2));
	run_both(e, &r, "call rel32; add eax,1", 43);
}

/* fn: jne to 0x20 bytes before itself, else return 4; there, return 3. Entered after test edi,edi
 * (r's prologue). */
static void run_jne_backward(struct env *e, struct run *r, uint64_t fn, const char *taken,
			     const char *not_taken)
{
	static const uint8_t ret3[] = { 0xb8, 3, 0, 0, 0, 0xc3 };

	put_at(fn - 0x20, ret3, sizeof(ret3));
	r->fn = fn;
	r->args[0] = 1;
	run_both(e, r, taken, 3);
	r->args[0] = 0;
	run_both(e, r, not_taken, 4);
}

static void test_jcc(struct env *e)
{
	static const uint8_t test_edi[] = { 0x85, 0xff };
	static const uint8_t je8[] = { 0x74, 0x06, 0xb8, 1, 0, 0, 0, 0xc3, 0xb8, 2, 0, 0, 0, 0xc3 };
	static const uint8_t je32[] = { 0x0f, 0x84, 0x06, 0, 0, 0, 0xb8, 1, 0, 0, 0, 0xc3,
					0xb8, 2, 0, 0, 0, 0xc3 };
	uint8_t jne32_back[] = { 0x0f, 0x85, 0, 0, 0, 0, 0xb8, 4, 0, 0, 0, 0xc3 };
	uint8_t jne8_back[] = { 0x75, 0, 0xb8, 4, 0, 0, 0, 0xc3 };
	struct run r = { .prologue = test_edi, .prologue_len = sizeof(test_edi) };
	uint64_t fn;

	r.fn = put(e, je8, sizeof(je8));
	run_both(e, &r, "je rel8 taken", 2);
	r.args[0] = 1;
	run_both(e, &r, "je rel8 not taken", 1);

	r.fn = put(e, je32, sizeof(je32));
	r.args[0] = 0;
	run_both(e, &r, "je rel32 taken", 2);
	r.args[0] = 1;
	run_both(e, &r, "je rel32 not taken", 1);

	/* Backward targets: 0x20 bytes before the function. */
	fn = put(e, jne32_back, sizeof(jne32_back));
	put_u32(fn + 2, (uint32_t)(int32_t)(-0x20 - 6));
	run_jne_backward(e, &r, fn, "jne rel32 backward taken", "jne rel32 backward not taken");

	jne8_back[1] = (uint8_t)(int8_t)(-0x20 - 2);
	fn = put(e, jne8_back, sizeof(jne8_back));
	run_jne_backward(e, &r, fn, "jne rel8 backward taken", "jne rel8 backward not taken");
}

static void test_rcx_branches(struct env *e)
{
	static const uint8_t jrcxz[] = { 0xe3, 0x06, 0xb8, 1, 0, 0, 0, 0xc3, 0xb8, 2, 0, 0, 0, 0xc3 };
	/* jecxz (0x67) looks at ecx only */
	static const uint8_t jecxz[] = { 0x67, 0xe3, 0x06, 0xb8, 1, 0, 0, 0, 0xc3, 0xb8, 2, 0, 0, 0, 0xc3 };
	/* loop +4; mov rax,rcx; ret; lea rax,[rcx+100]; ret */
	static const uint8_t loop[] = { 0xe2, 0x04, 0x48, 0x89, 0xc8, 0xc3, 0x48, 0x8d, 0x41, 0x64, 0xc3 };
	struct run r = { 0 };

	r.fn = put(e, jrcxz, sizeof(jrcxz));
	run_both(e, &r, "jrcxz taken", 2);
	r.args[3] = 5;
	run_both(e, &r, "jrcxz not taken", 1);

	r.fn = put(e, jecxz, sizeof(jecxz));
	r.args[3] = 0x100000000ull;
	run_both(e, &r, "jecxz taken (high half set)", 2);

	r.fn = put(e, loop, sizeof(loop));
	r.args[3] = 1;
	run_both(e, &r, "loop not taken", 0);
	r.args[3] = 5;
	run_both(e, &r, "loop taken", 104);
}

static void test_plain(struct env *e)
{
	static const uint8_t push_rdi[] = { 0x57, 0x58, 0xc3 };
	/* push rbp; lea rax,[rsp+8]; pop rbp; ret: rsp at entry, same through the slot */
	static const uint8_t push_rbp[] = { 0x55, 0x48, 0x8d, 0x44, 0x24, 0x08, 0x5d, 0xc3 };
	static const uint8_t mov7[] = { 0xb8, 7, 0, 0, 0 };
	static const uint8_t ret[] = { 0xc3 };
	static const uint8_t endbr_ret[] = { 0xf3, 0x0f, 0x1e, 0xfa, 0x89, 0xf8, 0xc3 };
	static const uint8_t sub_rsp[] = { 0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0xf8, 0x48, 0x83, 0xc4,
					   0x18, 0xc3 };
	struct run r = { 0 };
	uint64_t rsp_fn;

	r.fn = put(e, push_rdi, sizeof(push_rdi));
	r.args[0] = 0xdeadbeefcafeull;
	run_both(e, &r, "push rdi", 0xdeadbeefcafeull);

	/* jmp back: rel32 from the near page, jmp [rip+0]; dq from the far one */
	{
		struct diag_error err = { 0 };
		size_t len = 0;

		CHECK_EQ_INT(build(r.fn, e->near, &err, &len), 0);
		CHECK_EQ_INT(len, 1 + 5);
		CHECK_EQ_INT(e->near[1], 0xe9);
		CHECK_EQ_INT(build(r.fn, e->far, &err, &len), 0);
		CHECK_EQ_INT(len, 1 + 14);
		CHECK_EQ_INT(e->far[1], 0xff);
		CHECK_EQ_INT(e->far[2], 0x25);
	}

	r.fn = put(e, endbr_ret, sizeof(endbr_ret));
	r.args[0] = 99;
	run_both(e, &r, "endbr64", 99);

	r.fn = put(e, sub_rsp, sizeof(sub_rsp));
	run_both(e, &r, "sub rsp,0x18", 99);

	/* rsp at entry depends on the caller; both calls come from the same frame. */
	rsp_fn = put(e, push_rbp, sizeof(push_rbp));
	{
		struct diag_error err = { 0 };
		uint64_t a[6] = { 0 }, o, s;

		CHECK_EQ_INT(build(rsp_fn, e->far, &err, NULL), 0);
		o = call6(rsp_fn, a);
		s = call6((uint64_t)(uintptr_t)e->far, a);
		CHECK(o == s);
	}

	r.fn = put(e, ret, sizeof(ret));
	r.prologue = mov7;
	r.prologue_len = sizeof(mov7);
	run_both(e, &r, "ret", 7);
}

static void test_syscall(struct env *e)
{
	static const uint8_t getpid_eax[] = { 0xb8, 39, 0, 0, 0 };
	/* syscall; mov rax,rcx; ret: rcx must hold the ORIGINAL next address afterwards */
	static const uint8_t sys[] = { 0x0f, 0x05, 0x48, 0x89, 0xc8, 0xc3 };
	struct run r = { .prologue = getpid_eax, .prologue_len = sizeof(getpid_eax) };

	r.fn = put(e, sys, sizeof(sys));
	run_both(e, &r, "syscall rcx", r.fn + 2);
}

static void test_indirect_call(struct env *e)
{
	static const uint8_t call_riprel[] = { 0xff, 0x15, 0x7a, 0, 0, 0, 0xc3 };
	static const uint8_t call_rdi[] = { 0xff, 0xd7, 0xc3 };
	static const uint8_t call_r8[] = { 0x41, 0xff, 0xd0, 0xc3 };
	static const uint8_t call_rsp8[] = { 0xff, 0x54, 0x24, 0x08, 0xc3 };
	static const uint8_t call_rsp0[] = { 0xff, 0x14, 0x24, 0x59, 0xc3 };
	static const uint8_t call_rsp_reg[] = { 0xff, 0xd4, 0xc3 };
	struct run r = { 0 };
	uint8_t st[32];
	uint64_t fn;

	r.fn = put(e, call_riprel, sizeof(call_riprel));
	put_u64(r.fn + 0x80, e->helper_retaddr);
	run_near(e, &r, "call [rip+X]", r.fn + 6);
	expect_refusal(e, "call [rip+X] far", r.fn, e->far, "out of reach");

	r.fn = put(e, call_rdi, sizeof(call_rdi));
	r.args[0] = e->helper_retaddr;
	run_both(e, &r, "call rdi", r.fn + 2);

	r.fn = put(e, call_r8, sizeof(call_r8));
	r.args[4] = e->helper_retaddr;
	run_both(e, &r, "call r8", r.fn + 3);

	/* call [rsp+8]: entered by a real call from a stub that pushed the target first:
	 * push rdi; mov r11,fn; call r11; pop rcx; ret */
	fn = put(e, call_rsp8, sizeof(call_rsp8));
	for (int far = 0; far < 2; far++) {
		uint8_t *slot = far ? e->far : e->near;
		uint64_t a[6] = { e->helper_retaddr }, entry, got;
		uint64_t target = (uint64_t)(uintptr_t)slot;

		if (!built("call [rsp+8]", fn, slot))
			continue;
		st[0] = 0x57;
		st[1] = 0x49, st[2] = 0xbb;
		memcpy(st + 3, &target, 8);
		st[11] = 0x41, st[12] = 0xff, st[13] = 0xd3, st[14] = 0x59, st[15] = 0xc3;
		entry = put(e, st, 16);
		got = call6(entry, a);
		CHECK_EQ_INT(got, fn + 4);
	}

	/* call [rsp] (no displacement): entered by jmp with [rsp]=target, [rsp+8]=return:
	 * lea r11,[rip+0x11]; push r11; push rdi; jmp [rip+0] target; after: ret */
	fn = put(e, call_rsp0, sizeof(call_rsp0));
	for (int far = 0; far < 2; far++) {
		uint8_t *slot = far ? e->far : e->near;
		static const uint8_t pro[] = { 0x4c, 0x8d, 0x1d, 0x11, 0, 0, 0, 0x41, 0x53, 0x57 };
		uint64_t a[6] = { e->helper_retaddr }, entry, got;

		if (!built("call [rsp]", fn, slot))
			continue;
		memcpy(st, pro, sizeof(pro));
		memset(st + sizeof(pro), 0, 6);
		st[10] = 0xff, st[11] = 0x25;
		{
			uint64_t target = (uint64_t)(uintptr_t)slot;
			memcpy(st + 16, &target, 8);
		}
		st[24] = 0xc3;
		entry = put(e, st, 25);
		got = call6(entry, a);
		CHECK_EQ_INT(got, fn + 3);
	}

	expect_refusal(e, "call rsp", put(e, call_rsp_reg, sizeof(call_rsp_reg)), e->near, "rsp");
}

/* Decode a slot back into text lines to check the re-encoding of rsp displacements. */
static void slot_texts(const uint8_t *slot, size_t len, uint64_t at, char out[][96], int max, int *n)
{
	size_t off = 0;

	*n = 0;
	while (off < len && *n < max) {
		struct diag_insn in;

		if (diag_insn_decode(slot + off, len - off, at + off, &in, NULL) < 0)
			break;
		memcpy(out[(*n)++], in.text, sizeof(in.text));
		off += in.len;
	}
}

static void test_rsp_disp_growth(struct env *e)
{
	static const uint8_t call_rsp78[] = { 0xff, 0x54, 0x24, 0x78, 0xc3 };
	struct diag_error err = { 0 };
	char texts[8][96];
	size_t len = 0;
	int n = 0;
	uint64_t fn = put(e, call_rsp78, sizeof(call_rsp78));

	CHECK_EQ_INT(build(fn, e->near, &err, &len), 0);
	slot_texts(e->near, len, (uint64_t)(uintptr_t)e->near, texts, 8, &n);
	CHECK(n >= 2);
	if (n >= 2)
		CHECK(strstr(texts[n - 1], "jmp [rsp+0x80]") != NULL);
	if (n >= 2 && !strstr(texts[n - 1], "[rsp+0x80]"))
		fprintf(stderr, "  last slot instruction: %s\n", texts[n - 1]);
}

static void test_refusals(struct env *e)
{
	static const uint8_t int3[] = { 0xcc, 0xc3 };
	static const uint8_t xbegin[] = { 0xc7, 0xf8, 0, 0, 0, 0, 0xc3 };
	static const uint8_t jmp_far[] = { 0xff, 0x2d, 0, 0, 0, 0, 0xc3 };
	static const uint8_t call_far[] = { 0xff, 0x1f, 0xc3 };
	static const uint8_t int1[] = { 0xf1, 0xc3 };
	static const uint8_t eiprel[] = { 0x67, 0x8b, 0x05, 0, 0, 0, 0, 0xc3 };

	expect_refusal(e, "int3", put(e, int3, sizeof(int3)), e->near, "int3 is already there");
	expect_refusal(e, "xbegin", put(e, xbegin, sizeof(xbegin)), e->near, "xbegin");
	expect_refusal(e, "jmp far", put(e, jmp_far, sizeof(jmp_far)), e->near, "far");
	expect_refusal(e, "call far", put(e, call_far, sizeof(call_far)), e->near, "far");
	expect_refusal(e, "int1", put(e, int1, sizeof(int1)), e->near, "cannot relocate");
	expect_refusal(e, "mov eax,[eip+0]", put(e, eiprel, sizeof(eiprel)), e->near, "rip-relative");
}

static void test_decode(void)
{
	static const uint8_t mov[] = { 0x48, 0x8b, 0x05, 0x00, 0x10, 0x00, 0x00 };
	static const uint8_t jmp[] = { 0xe9, 0x00, 0x00, 0x00, 0x00 };
	static const uint8_t bad[] = { 0xff, 0xff };
	struct diag_insn in;
	struct diag_error err = { 0 };

	CHECK_EQ_INT(diag_insn_decode(mov, sizeof(mov), 0x1000, &in, &err), 0);
	CHECK_EQ_INT(in.len, 7);
	CHECK(in.addr == 0x1000);
	CHECK(memcmp(in.bytes, mov, 7) == 0);
	CHECK(strstr(in.text, "mov rax") != NULL);
	CHECK(strstr(in.text, "2007]") != NULL); /* absolute address of the rip-relative operand */

	CHECK_EQ_INT(diag_insn_decode(jmp, sizeof(jmp), 0x1000, &in, &err), 0);
	CHECK(strstr(in.text, "jmp") && strstr(in.text, "1005"));

	CHECK_EQ_INT(diag_insn_decode(bad, sizeof(bad), 0x2000, &in, &err), -DIAG_E_PARSE);
	CHECK(strstr(err.msg, "0x2000") && strstr(err.msg, "ff ff"));
	CHECK_EQ_INT(diag_insn_decode(mov, 3, 0x3000, &in, &err), -DIAG_E_PARSE); /* truncated */
	CHECK_EQ_INT(diag_insn_decode(mov, 0, 0x3000, &in, &err), -EINVAL);

	/* A decoded copy whose bytes were altered must not be relocated blindly. */
	CHECK_EQ_INT(diag_insn_decode(mov, sizeof(mov), 0x1000, &in, &err), 0);
	in.len = 3;
	{
		uint8_t out[DIAG_XOL_SLOT_SIZE];
		size_t len;

		CHECK_EQ_INT(diag_xol_build(&in, 0x2000, out, &len, &err), -DIAG_E_PARSE);
	}
}

static int setup(struct env *e)
{
	static const int64_t near_offs[] = { 64 << 20, 128 << 20, -(64 << 20), 512 << 20 };
	static const int64_t far_offs[] = { 16ll << 30, -(16ll << 30), 64ll << 30, 256ll << 30 };
	static const uint8_t retaddr[] = { 0x48, 0x8b, 0x04, 0x24, 0xc3 };
	static const uint8_t ret42[] = { 0xb8, 42, 0, 0, 0, 0xc3 };
	int64_t dist;

	memset(e, 0, sizeof(*e));
	e->code = map_at(NULL, REGION_SIZE);
	if (!e->code)
		return -1;
	memset(e->code, 0xcc, REGION_SIZE);
	e->near = map_candidates(e->code, near_offs, 4);
	e->far = map_candidates(e->code, far_offs, 4);
	if (!e->near || !e->far) {
		fprintf(stderr, "setup: cannot map slot pages (near %p far %p)\n", (void *)e->near,
			(void *)e->far);
		return -1;
	}
	dist = (int64_t)((uintptr_t)e->far - (uintptr_t)e->code);
	if (dist > -(4ll << 30) && dist < (4ll << 30)) {
		fprintf(stderr, "setup: far page is only %lld bytes away\n", (long long)dist);
		return -1;
	}
	e->helper_retaddr = put(e, retaddr, sizeof(retaddr));
	e->helper_42 = put(e, ret42, sizeof(ret42));
	return 0;
}

int main(void)
{
	struct env e;

	test_decode();
	if (setup(&e) < 0) {
		fprintf(stderr, "FAIL: setup\n");
		return 1;
	}
	test_riprel(&e);
	test_call_rel(&e);
	test_jcc(&e);
	test_rcx_branches(&e);
	test_plain(&e);
	test_syscall(&e);
	test_indirect_call(&e);
	test_rsp_disp_growth(&e);
	test_refusals(&e);
	return CHECK_DONE();
}
