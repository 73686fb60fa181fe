/* arch/x86_64/syscall: arch/syscall.h for x86-64 (the `syscall` instruction, the Linux x86-64
 * system call convention, the kernel's restart of an interrupted call). Pure byte tests and
 * register edits, and the stub that resumes a thread after a remote call (generated with the
 * Zydis encoder, xasm.h); never touches a process. */
#include "arch/syscall.h"

#include <errno.h>

#include "arch/insn.h"
#include "xasm.h"

/* Kernel-internal restart codes an interrupted syscall leaves in rax (include/linux/errno.h). */
#define ERESTARTSYS_ 512
#define ERESTARTNOINTR_ 513
#define ERESTARTNOHAND_ 514
#define ERESTART_RESTARTBLOCK_ 516
#define NR_restart_syscall 219

bool diag_arch_is_syscall(const uint8_t *code)
{
	return code[0] == 0x0f && code[1] == 0x05;
}

void diag_regs_syscall_enter(diag_regs *r, uint64_t insn, long nr, const long args[6])
{
	r->rax = (unsigned long long)nr;
	r->orig_rax = (unsigned long long)-1; /* no restart logic for our call */
	r->rdi = (unsigned long long)args[0];
	r->rsi = (unsigned long long)args[1];
	r->rdx = (unsigned long long)args[2];
	r->r10 = (unsigned long long)args[3];
	r->r8 = (unsigned long long)args[4];
	r->r9 = (unsigned long long)args[5];
	r->rip = insn;
}

long diag_regs_syscall_result(const diag_regs *r)
{
	return (long)r->rax;
}

long diag_regs_syscall_nr(const diag_regs *r)
{
	return (long)r->rax;
}

void diag_regs_syscall_restart(diag_regs *r)
{
	long rax = (long)r->rax;
	if ((long)r->orig_rax < 0)
		return;
	if (rax == -ERESTARTSYS_ || rax == -ERESTARTNOINTR_ || rax == -ERESTARTNOHAND_) {
		r->rax = r->orig_rax;
		r->rip -= DIAG_ARCH_SYSCALL_LEN;
	} else if (rax == -ERESTART_RESTARTBLOCK_) {
		r->rax = NR_restart_syscall;
		r->rip -= DIAG_ARCH_SYSCALL_LEN;
	}
}

/* The flags user code can observe (CF PF AF ZF SF, DF, OF) come back without a stack: sahf
 * loads the five arithmetic ones from ah and leaves OF alone, so OF is made first by an
 * arithmetic instruction whose outcome is known, and DF by cld/std. TF and AC, which user
 * code does not set in practice, are not put back. */
static void put_flags_back(struct xasm *a, uint64_t fl)
{
	if (fl & (1u << 10))
		XA0(a, STD);
	else
		XA0(a, CLD);
	if (fl & (1u << 11)) {
		XA(a, MOV, xa_r(ZYDIS_REGISTER_AL), xa_i(0x7f));
		XA(a, ADD, xa_r(ZYDIS_REGISTER_AL), xa_i(1)); /* 0x7f + 1 overflows: OF = 1 */
	} else {
		XA(a, XOR, xa_r(ZYDIS_REGISTER_EAX), xa_r(ZYDIS_REGISTER_EAX)); /* OF = 0 */
	}
	/* the encoder takes an 8-bit immediate as signed: SF (bit 7) set is a negative one */
	XA(a, MOV, xa_r(ZYDIS_REGISTER_AH), xa_i((int8_t)(uint8_t)((fl & 0xd5) | 0x02)));
	XA0(a, SAHF);
}

int diag_arch_syscall_stub(uint64_t at, const diag_regs *resume, uint8_t *out, size_t cap,
			   size_t *len)
{
	const struct {
		ZydisRegister reg;
		unsigned long long val;
	} gpr[] = {
		{ZYDIS_REGISTER_RBX, resume->rbx}, {ZYDIS_REGISTER_RCX, resume->rcx},
		{ZYDIS_REGISTER_RDX, resume->rdx}, {ZYDIS_REGISTER_RSI, resume->rsi},
		{ZYDIS_REGISTER_RDI, resume->rdi}, {ZYDIS_REGISTER_RBP, resume->rbp},
		{ZYDIS_REGISTER_RSP, resume->rsp}, {ZYDIS_REGISTER_R8, resume->r8},
		{ZYDIS_REGISTER_R9, resume->r9},   {ZYDIS_REGISTER_R10, resume->r10},
		{ZYDIS_REGISTER_R11, resume->r11}, {ZYDIS_REGISTER_R12, resume->r12},
		{ZYDIS_REGISTER_R13, resume->r13}, {ZYDIS_REGISTER_R14, resume->r14},
		{ZYDIS_REGISTER_R15, resume->r15}, {ZYDIS_REGISTER_RAX, resume->rax},
	};
	struct xasm a;
	size_t n = 0;
	xa_begin(&a, out, cap, at, true);
	XA0(&a, SYSCALL);
	put_flags_back(&a, resume->eflags);
	/* mov r64, imm leaves the flags alone; rax last, as the flags went through ah */
	for (size_t i = 0; i < sizeof(gpr) / sizeof(gpr[0]); i++)
		XA(&a, MOV, xa_r(gpr[i].reg), xa_i((int64_t)gpr[i].val));
	if (a.err)
		return a.err == -ENOSPC ? -ENOSPC : a.err;
	if (diag_insn_emit_jmp(xa_pc(&a), resume->rip, out + a.len, cap - a.len, &n) < 0)
		return -ENOSPC;
	*len = a.len + n;
	return 0;
}
