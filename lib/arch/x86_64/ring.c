/* arch/x86_64/ring: the registers of a hit-ring record (arch/ring.h) as diag_regs, in the order
 * trampoline_template.S saves them, and the cycle counter it records (rdtsc). Pure conversion;
 * never touches a process or a ring. */
#include "arch/ring.h"

#include <string.h>
#include <x86intrin.h>

uint64_t diag_ring_cycles(void)
{
	return __rdtsc();
}

void diag_ring_record_regs(const struct diag_ring_record *rec, diag_regs *out)
{
	const uint64_t *g = rec->regs;
	memset(out, 0, sizeof(*out));
	out->r15 = g[DIAG_RING_R15];
	out->r14 = g[DIAG_RING_R14];
	out->r13 = g[DIAG_RING_R13];
	out->r12 = g[DIAG_RING_R12];
	out->rbp = g[DIAG_RING_RBP];
	out->rbx = g[DIAG_RING_RBX];
	out->r11 = g[DIAG_RING_R11];
	out->r10 = g[DIAG_RING_R10];
	out->r9 = g[DIAG_RING_R9];
	out->r8 = g[DIAG_RING_R8];
	out->rax = g[DIAG_RING_RAX];
	out->rcx = g[DIAG_RING_RCX];
	out->rdx = g[DIAG_RING_RDX];
	out->rsi = g[DIAG_RING_RSI];
	out->rdi = g[DIAG_RING_RDI];
	out->rip = g[DIAG_RING_RIP];
	out->rsp = g[DIAG_RING_RSP];
	out->eflags = g[DIAG_RING_EFLAGS];
	diag_regs_no_syscall(out);
}
