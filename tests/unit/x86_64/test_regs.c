/* test_regs: the x86-64 register name, ABI and DWARF tables against the layout of diag_regs. */
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include <Zydis/Zydis.h>

#include "check.h"

#include "arch/regs.h"
#include "arch/syscall.h"
#include "util/error.h"

#define OFF(f) ((int)offsetof(diag_regs, f))

/* Write v into the slot at off as a register read would find it. */
static void put(diag_regs *r, int off, uint64_t v)
{
	memcpy((char *)r + off, &v, sizeof(v));
}

static void test_lookup(void)
{
	unsigned w = 0;

	CHECK_EQ_INT(diag_reg_lookup("rdi", &w), OFF(rdi));
	CHECK_EQ_INT(w, 8);
	CHECK_EQ_INT(diag_reg_lookup("edi", &w), OFF(rdi));
	CHECK_EQ_INT(w, 4);
	CHECK_EQ_INT(diag_reg_lookup("di", &w), OFF(rdi));
	CHECK_EQ_INT(w, 2);
	CHECK_EQ_INT(diag_reg_lookup("dil", &w), OFF(rdi));
	CHECK_EQ_INT(w, 1);
	CHECK_EQ_INT(diag_reg_lookup("r10d", &w), OFF(r10));
	CHECK_EQ_INT(w, 4);
	CHECK_EQ_INT(diag_reg_lookup("r15b", &w), OFF(r15));
	CHECK_EQ_INT(w, 1);
	CHECK_EQ_INT(diag_reg_lookup("rsp", NULL), OFF(rsp));
	CHECK_EQ_INT(diag_reg_lookup("rip", NULL), OFF(rip));
	CHECK_EQ_INT(diag_reg_lookup("pc", NULL), OFF(rip));
	CHECK_EQ_INT(diag_reg_lookup("eflags", &w), OFF(eflags));
	CHECK_EQ_INT(w, 8);
	CHECK_EQ_INT(diag_reg_lookup("rflags", NULL), OFF(eflags));
	CHECK_EQ_INT(diag_reg_lookup("fs_base", NULL), OFF(fs_base));
	CHECK_EQ_INT(diag_reg_lookup("orig_rax", NULL), OFF(orig_rax));
	CHECK_EQ_INT(diag_reg_lookup("xmm0", &w), -DIAG_E_NOSYM);
	CHECK_EQ_INT(diag_reg_lookup("$rdi", &w), -DIAG_E_NOSYM);
	CHECK_EQ_INT(diag_reg_lookup("", &w), -DIAG_E_NOSYM);
	CHECK_EQ_INT(diag_reg_lookup(NULL, &w), -DIAG_E_NOSYM);
	CHECK(diag_reg_is_address("rsp") && diag_reg_is_address("rbp") && diag_reg_is_address("rip"));
	CHECK(!diag_reg_is_address("rdi") && !diag_reg_is_address("pc") && !diag_reg_is_address(NULL));
}

static void test_abi(void)
{
	static const int want[6] = { OFF(rdi), OFF(rsi), OFF(rdx), OFF(rcx), OFF(r8), OFF(r9) };

	for (int i = 1; i <= 6; i++)
		CHECK_EQ_INT(diag_reg_arg(i), want[i - 1]);
	CHECK_EQ_INT(diag_reg_arg(0), -DIAG_E_INVALID);
	CHECK_EQ_INT(diag_reg_arg(7), -DIAG_E_INVALID);
	CHECK_EQ_INT(diag_reg_ret(), OFF(rax));
}

static void test_dwarf(void)
{
	CHECK_EQ_INT(diag_reg_dwarf(0), OFF(rax));
	CHECK_EQ_INT(diag_reg_dwarf(1), OFF(rdx));
	CHECK_EQ_INT(diag_reg_dwarf(2), OFF(rcx));
	CHECK_EQ_INT(diag_reg_dwarf(3), OFF(rbx));
	CHECK_EQ_INT(diag_reg_dwarf(4), OFF(rsi));
	CHECK_EQ_INT(diag_reg_dwarf(5), OFF(rdi));
	CHECK_EQ_INT(diag_reg_dwarf(6), OFF(rbp));
	CHECK_EQ_INT(diag_reg_dwarf(7), OFF(rsp));
	CHECK_EQ_INT(diag_reg_dwarf(8), OFF(r8));
	CHECK_EQ_INT(diag_reg_dwarf(15), OFF(r15));
	CHECK_EQ_INT(diag_reg_dwarf(16), OFF(rip));
	CHECK_EQ_INT(diag_reg_dwarf(49), OFF(eflags));
	CHECK_EQ_INT(diag_reg_dwarf(54), OFF(fs));
	CHECK_EQ_INT(diag_reg_dwarf(58), OFF(fs_base));
	CHECK_EQ_INT(diag_reg_dwarf(17), -DIAG_E_INVALID); /* xmm0 */
	CHECK_EQ_INT(diag_reg_dwarf(-1), -DIAG_E_INVALID);
}

static void test_get(void)
{
	diag_regs r;

	memset(&r, 0, sizeof(r));
	put(&r, OFF(rdi), 0x1122334455667788ull);
	put(&r, OFF(gs), 0xabcdull); /* last slot: reading it must stay inside the struct */
	CHECK(diag_reg_get(&r, OFF(rdi), 8) == 0x1122334455667788ull);
	CHECK(diag_reg_get(&r, OFF(rdi), 4) == 0x55667788ull);
	CHECK(diag_reg_get(&r, OFF(rdi), 2) == 0x7788ull);
	CHECK(diag_reg_get(&r, OFF(rdi), 1) == 0x88ull);
	CHECK(diag_reg_get(&r, OFF(gs), 8) == 0xabcdull);
	CHECK(diag_reg_get(&r, -8, 8) == 0);
	CHECK(diag_reg_get(&r, (int)sizeof(r), 8) == 0);
	diag_reg_set(&r, OFF(rsi), 42);
	CHECK(diag_reg_get(&r, OFF(rsi), 8) == 42);
	diag_reg_set(&r, OFF(gs), 7);
	CHECK(diag_reg_get(&r, OFF(gs), 8) == 7);
	diag_reg_set(&r, -8, 1); /* outside: nothing */
	diag_reg_set(&r, (int)sizeof(r), 1);
	CHECK(diag_reg_get(&r, OFF(rdi), 8) == 0x1122334455667788ull);
}

static void test_roles(void)
{
	diag_regs r;
	diag_fpregs f;

	memset(&r, 0, sizeof(r));
	memset(&f, 0, sizeof(f));
	put(&r, OFF(rax), 1);
	put(&r, OFF(rdx), 2);
	put(&r, OFF(rdi), 3);
	diag_regs_set_pc(&r, 0x401001);
	CHECK(diag_regs_ret(&r) == 1);
	CHECK(diag_regs_ret2(&r) == 2);
	CHECK(diag_regs_arg(&r, 1) == 3);
	CHECK(diag_regs_pc(&r) == 0x401001);
	CHECK(diag_reg_get(&r, OFF(rip), 8) == 0x401001);
	CHECK(diag_regs_trap_addr(&r) == 0x401000);
	/* xmm0 and xmm1 are the fxsave area's xmm slots 0 and 1, 16 bytes each */
	CHECK(diag_fpregs_float_ret(&f, 0) == (const uint8_t *)&f + 160);
	CHECK(diag_fpregs_float_ret(&f, 1) == (const uint8_t *)&f + 176);
	CHECK(diag_fpregs_float_ret(&f, 2) == NULL);
}

/* The remote syscall convention and the kernel's restart of an interrupted call. */
static void test_syscall(void)
{
	static const uint8_t sys[] = { 0x0f, 0x05 }, nop2[] = { 0x66, 0x90 };
	static const long args[6] = { 1, 2, 3, 4, 5, 6 };
	diag_regs r;

	CHECK(diag_arch_is_syscall(sys));
	CHECK(!diag_arch_is_syscall(nop2));
	memset(&r, 0, sizeof(r));
	put(&r, OFF(rbx), 77);
	diag_regs_syscall_enter(&r, 0x5000, 39, args);
	CHECK(diag_regs_pc(&r) == 0x5000);
	CHECK(diag_reg_get(&r, OFF(rax), 8) == 39);
	CHECK(diag_reg_get(&r, OFF(orig_rax), 8) == (uint64_t)-1);
	CHECK(diag_reg_get(&r, OFF(rdi), 8) == 1 && diag_reg_get(&r, OFF(rsi), 8) == 2);
	CHECK(diag_reg_get(&r, OFF(rdx), 8) == 3 && diag_reg_get(&r, OFF(r10), 8) == 4);
	CHECK(diag_reg_get(&r, OFF(r8), 8) == 5 && diag_reg_get(&r, OFF(r9), 8) == 6);
	CHECK(diag_reg_get(&r, OFF(rbx), 8) == 77);
	CHECK(diag_regs_syscall_nr(&r) == 39);
	put(&r, OFF(rax), (uint64_t)-14);
	CHECK(diag_regs_syscall_result(&r) == -14);

	/* not in a syscall: nothing */
	diag_regs_syscall_restart(&r);
	CHECK(diag_regs_pc(&r) == 0x5000);
	/* -ERESTARTSYS: the call again, pc back on the instruction */
	put(&r, OFF(orig_rax), 7);
	put(&r, OFF(rax), (uint64_t)-512);
	diag_regs_set_pc(&r, 0x5002);
	diag_regs_syscall_restart(&r);
	CHECK(diag_regs_pc(&r) == 0x5000);
	CHECK(diag_reg_get(&r, OFF(rax), 8) == 7);
	/* -ERESTART_RESTARTBLOCK: restart_syscall */
	put(&r, OFF(rax), (uint64_t)-516);
	diag_regs_set_pc(&r, 0x5002);
	diag_regs_syscall_restart(&r);
	CHECK(diag_regs_pc(&r) == 0x5000);
	CHECK(diag_reg_get(&r, OFF(rax), 8) == 219);
	/* any other result stands */
	put(&r, OFF(rax), (uint64_t)-4);
	diag_regs_set_pc(&r, 0x5002);
	diag_regs_syscall_restart(&r);
	CHECK(diag_regs_pc(&r) == 0x5002);
	diag_regs_no_syscall(&r);
	CHECK(diag_reg_get(&r, OFF(orig_rax), 8) == (uint64_t)-1);
}

/* The stub a remote call runs from puts back every flag user code can see (CF PF AF ZF SF DF
 * OF: 0xcd5) and every general register. Its flag part (between the syscall and the first mov)
 * runs here, in this process, for each of the 128 combinations; the movs are decoded. */
static void test_syscall_stub(void)
{
	static const uint64_t bit[7] = {1u << 0, 1u << 2, 1u << 4, 1u << 6, 1u << 7, 1u << 10, 1u << 11};
	static const ZydisRegister order[16] = {
		ZYDIS_REGISTER_RBX, ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RSI,
		ZYDIS_REGISTER_RDI, ZYDIS_REGISTER_RBP, ZYDIS_REGISTER_RSP, ZYDIS_REGISTER_R8,
		ZYDIS_REGISTER_R9,  ZYDIS_REGISTER_R10, ZYDIS_REGISTER_R11, ZYDIS_REGISTER_R12,
		ZYDIS_REGISTER_R13, ZYDIS_REGISTER_R14, ZYDIS_REGISTER_R15, ZYDIS_REGISTER_RAX};
	uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(page != MAP_FAILED);
	if (page == MAP_FAILED)
		return;
	ZydisDecoder dec;
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	for (unsigned combo = 0; combo < 128; combo++) {
		diag_regs r;
		memset(&r, 0, sizeof(r));
		uint64_t fl = 0x202;
		for (int b = 0; b < 7; b++)
			if (combo & (1u << b))
				fl |= bit[b];
		r.eflags = fl;
		unsigned long long *gpr[16] = {&r.rbx, &r.rcx, &r.rdx, &r.rsi, &r.rdi, &r.rbp, &r.rsp, &r.r8,
					       &r.r9,  &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15, &r.rax};
		for (int i = 0; i < 16; i++) /* small, negative, 32-bit-signed and full 64-bit values */
			*gpr[i] = combo & 1 ? (unsigned long long)(-(long long)i - 1)
					    : 0x8000000000000000ull >> (combo % 64) ^ (unsigned long long)i << 31;
		r.rip = combo & 2 ? 0x7f0000001234ull : (uint64_t)(uintptr_t)page + 3000;
		uint8_t code[DIAG_ARCH_SYSCALL_STUB_MAX];
		size_t len = 0;
		int rc = diag_arch_syscall_stub((uint64_t)(uintptr_t)page + 2048, &r, code, sizeof(code), &len);
		CHECK_EQ_INT(rc, 0);
		if (rc < 0) {
			fprintf(stderr, "stub refused for eflags %#llx\n", (unsigned long long)fl);
			continue;
		}
		CHECK(len <= sizeof(code) && code[0] == 0x0f && code[1] == 0x05);
		size_t off = 2, prelude = 0;
		int movs = 0;
		ZydisDecodedInstruction in;
		ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
		while (movs < 16 && off < len &&
		       ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, code + off, len - off, &in, ops))) {
			if (in.mnemonic == ZYDIS_MNEMONIC_MOV && ops[0].reg.value == order[movs]) {
				if (!movs)
					prelude = off;
				CHECK(ops[1].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
				      (uint64_t)ops[1].imm.value.s == *gpr[movs]);
				movs++;
			}
			off += in.length;
		}
		CHECK_EQ_INT(movs, 16);
		CHECK(off < len); /* the jump to the pc follows */
		if (movs != 16 || prelude < 2)
			continue;
		static const uint8_t tail[] = {0x9c, 0x58, 0xfc, 0xc3}; /* pushfq; pop rax; cld; ret */
		memcpy(page, code + 2, prelude - 2);
		memcpy(page + prelude - 2, tail, sizeof(tail));
		uint64_t got = ((uint64_t(*)(void))(uintptr_t)page)();
		if ((got & 0xcd5) != (fl & 0xcd5)) {
			fprintf(stderr, "flags %#llx came back %#llx\n", (unsigned long long)fl,
				(unsigned long long)got);
			check_failures++;
		}
	}
	munmap(page, 4096);
}

static void test_names(void)
{
	const char *const *names = diag_reg_names();
	int n = 0;

	for (; names[n]; n++) {
		unsigned w;

		if (diag_reg_lookup(names[n], &w) < 0) {
			fprintf(stderr, "listed name '%s' does not resolve\n", names[n]);
			check_failures++;
		}
	}
	CHECK(n > 60);
	CHECK_EQ_STR(diag_reg_name(OFF(rsi)), "rsi");
	CHECK_EQ_STR(diag_reg_name(OFF(eflags)), "eflags");
	CHECK(diag_reg_name(3) == NULL);
}

int main(void)
{
	test_lookup();
	test_abi();
	test_dwarf();
	test_get();
	test_roles();
	test_syscall();
	test_syscall_stub();
	test_names();
	return CHECK_DONE();
}
