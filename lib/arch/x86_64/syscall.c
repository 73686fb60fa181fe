/* arch/x86_64/syscall: arch/syscall.h for x86-64 (the `syscall` instruction, the Linux x86-64
 * system call convention, the kernel's restart of an interrupted call). Pure byte tests and
 * register edits; never touches a process. */
#include "arch/syscall.h"

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
