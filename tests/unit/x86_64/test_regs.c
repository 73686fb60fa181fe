/* test_regs: the x86-64 register name, ABI and DWARF tables against the layout of diag_regs. */
#include <stddef.h>
#include <string.h>

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
	test_names();
	return CHECK_DONE();
}
