/* arch/x86_64/record: the ring record's register slots (the order of the trampoline's frame,
 * trampoline_template.S) mapped to struct user_regs_struct, and the TSC it stamps records
 * with. Pure; never touches a process. */
#include "arch/record.h"

#include <stddef.h>
#include <string.h>
#include <x86intrin.h>

/* v1 and v2 records save the registers in the same order (enum diag_ring_reg). */
static void from_slots(const uint64_t *g, diag_regs *r)
{
	memset(r, 0, sizeof(*r));
	r->r15 = g[DIAG_RING_R15];
	r->r14 = g[DIAG_RING_R14];
	r->r13 = g[DIAG_RING_R13];
	r->r12 = g[DIAG_RING_R12];
	r->rbp = g[DIAG_RING_RBP];
	r->rbx = g[DIAG_RING_RBX];
	r->r11 = g[DIAG_RING_R11];
	r->r10 = g[DIAG_RING_R10];
	r->r9 = g[DIAG_RING_R9];
	r->r8 = g[DIAG_RING_R8];
	r->rax = g[DIAG_RING_RAX];
	r->rcx = g[DIAG_RING_RCX];
	r->rdx = g[DIAG_RING_RDX];
	r->rsi = g[DIAG_RING_RSI];
	r->rdi = g[DIAG_RING_RDI];
	r->rip = g[DIAG_RING_RIP];
	r->rsp = g[DIAG_RING_RSP];
	r->eflags = g[DIAG_RING_EFLAGS];
	r->orig_rax = (unsigned long long)-1;
}

void diag_record_regs(const struct diag_ring_record *rec, diag_regs *r)
{
	from_slots(rec->regs, r);
}

void diag_record_v2_regs(const struct diag_ring_rec *rec, diag_regs *r)
{
	if (!(rec->flags & DIAG_REC_SLIM)) {
		from_slots(rec->regs, r);
		return;
	}
	uint64_t g[DIAG_RING_NREGS] = {0};
	uint32_t mask;
	const unsigned char *p = (const unsigned char *)rec;
	memcpy(&mask, p + offsetof(struct diag_ring_slim, regmask), sizeof(mask));
	mask &= (1u << DIAG_RING_NREGS) - 1;
	for (int j = 0; mask; mask &= mask - 1) /* the set bits, lowest first */
		memcpy(&g[__builtin_ctz(mask)], p + DIAG_RING_SLIM_HDR + 8 * j++, sizeof(g[0]));
	from_slots(g, r);
}

uint64_t diag_record_thread_pointer(const diag_regs *r)
{
	return r->fs_base;
}

uint64_t diag_record_ticks(void)
{
	return __rdtsc();
}
