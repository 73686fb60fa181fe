/* arch/x86_64/guard: builds the SIGSEGV/SIGBUS fault guard blob (see guard.h) from the handler
 * code reviewed as guard_template.S (the array below is its `cc -c` + `objdump -d` listing,
 * command in that file; test_guard re-assembles the .S to prove the two identical), and the
 * actions to install. Pure byte work: never touches a process, never chooses addresses. */
#include "arch/guard.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#include "arch/trampoline.h"

/* objdump -d -M intel of guard_template.S. */
static const uint8_t code_bytes[] = {
	0x45, 0x31, 0xe4, /* xor    r12d,r12d */
	0x8b, 0x46, 0x08, /* mov    eax,DWORD PTR [rsi+0x8] */
	0x85, 0xc0, /* test   eax,eax */
	0x0f, 0x8e, 0xbf, 0x00, 0x00, 0x00, /* jle    cd */
	0x83, 0xff, 0x07, /* cmp    edi,0x7 */
	0x75, 0x09, /* jne    1c */
	0x83, 0xf8, 0x05, /* cmp    eax,0x5 */
	0x0f, 0x84, 0xb1, 0x00, 0x00, 0x00, /* je     cd */
	0x41, 0xff, 0xc4, /* inc    r12d */
	0x48, 0x8b, 0x82, 0xa8, 0x00, 0x00, 0x00, /* mov    rax,QWORD PTR [rdx+0xa8] */
	0x48, 0x89, 0xc1, /* mov    rcx,rax */
	0x48, 0x81, 0xe1, 0x00, 0xf0, 0xff, 0xff, /* and    rcx,0xfffffffffffff000 */
	0x4c, 0x8b, 0x46, 0x10, /* mov    r8,QWORD PTR [rsi+0x10] */
	0x4d, 0x89, 0xc1, /* mov    r9,r8 */
	0x49, 0x81, 0xe1, 0x00, 0xf0, 0xff, 0xff, /* and    r9,0xfffffffffffff000 */
	0x49, 0x39, 0xc9, /* cmp    r9,rcx */
	0x0f, 0x84, 0x86, 0x00, 0x00, 0x00, /* je     cd */
	0x49, 0xb9, 0x74, 0x72, 0x61, 0x6d, 0x70, 0x73, 0x6c, 0x6f, /* movabs r9,0x6f6c73706d617274 */
	0x49, 0x31, 0xc9, /* xor    r9,rcx */
	0x4c, 0x39, 0x09, /* cmp    QWORD PTR [rcx],r9 */
	0x75, 0x74, /* jne    cd */
	0x48, 0x29, 0xc8, /* sub    rax,rcx */
	0x45, 0x31, 0xd2, /* xor    r10d,r10d */
	0x44, 0x0f, 0xb7, 0x49, 0x14, /* movzx  r9d,WORD PTR [rcx+0x14] */
	0x45, 0x85, 0xc9, /* test   r9d,r9d */
	0x74, 0x0e, /* je     77 */
	0x4c, 0x39, 0xc8, /* cmp    rax,r9 */
	0x75, 0x09, /* jne    77 */
	0x41, 0xff, 0xc2, /* inc    r10d */
	0x0f, 0xb7, 0x41, 0x16, /* movzx  eax,WORD PTR [rcx+0x16] */
	0xeb, 0x32, /* jmp    a9 */
	0x44, 0x0f, 0xb7, 0x49, 0x08, /* movzx  r9d,WORD PTR [rcx+0x8] */
	0x4c, 0x39, 0xc8, /* cmp    rax,r9 */
	0x72, 0x10, /* jb     91 */
	0x44, 0x0f, 0xb7, 0x49, 0x0a, /* movzx  r9d,WORD PTR [rcx+0xa] */
	0x4c, 0x39, 0xc8, /* cmp    rax,r9 */
	0x73, 0x06, /* jae    91 */
	0x0f, 0xb7, 0x41, 0x10, /* movzx  eax,WORD PTR [rcx+0x10] */
	0xeb, 0x18, /* jmp    a9 */
	0x44, 0x0f, 0xb7, 0x49, 0x0c, /* movzx  r9d,WORD PTR [rcx+0xc] */
	0x4c, 0x39, 0xc8, /* cmp    rax,r9 */
	0x72, 0x32, /* jb     cd */
	0x44, 0x0f, 0xb7, 0x49, 0x0e, /* movzx  r9d,WORD PTR [rcx+0xe] */
	0x4c, 0x39, 0xc8, /* cmp    rax,r9 */
	0x73, 0x28, /* jae    cd */
	0x0f, 0xb7, 0x41, 0x12, /* movzx  eax,WORD PTR [rcx+0x12] */
	0x83, 0xf8, 0x40, /* cmp    eax,0x40 */
	0x72, 0x1f, /* jb     cd */
	0x3d, 0x00, 0x10, 0x00, 0x00, /* cmp    eax,0x1000 */
	0x73, 0x18, /* jae    cd */
	0x45, 0x85, 0xd2, /* test   r10d,r10d */
	0x74, 0x08, /* je     c2 */
	0x48, 0xc7, 0x42, 0x58, 0x00, 0x00, 0x00, 0x00, /* mov    QWORD PTR [rdx+0x58],0x0 */
	0x48, 0x01, 0xc8, /* add    rax,rcx */
	0x48, 0x89, 0x82, 0xa8, 0x00, 0x00, 0x00, /* mov    QWORD PTR [rdx+0xa8],rax */
	0xc3, /* ret */
	0x4c, 0x8d, 0x05, 0x2c, 0x01, 0x00, 0x00, /* lea    r8,[rip+0x12c]        # 200 */
	0x83, 0xff, 0x0b, /* cmp    edi,0xb */
	0x74, 0x07, /* je     e0 */
	0x4c, 0x8d, 0x05, 0x40, 0x01, 0x00, 0x00, /* lea    r8,[rip+0x140]        # 220 */
	0x49, 0x8b, 0x00, /* mov    rax,QWORD PTR [r8] */
	0x48, 0x83, 0xf8, 0x01, /* cmp    rax,0x1 */
	0x74, 0x39, /* je     122 */
	0x48, 0x85, 0xc0, /* test   rax,rax */
	0x74, 0x39, /* je     127 */
	0x41, 0xf7, 0x40, 0x08, 0x00, 0x00, 0x00, 0x80, /* test   DWORD PTR [r8+0x8],0x80000000 */
	0x75, 0x02, /* jne    fa */
	0xff, 0xe0, /* jmp    rax */
	0x49, 0x89, 0xf5, /* mov    r13,rsi */
	0x49, 0x89, 0xd6, /* mov    r14,rdx */
	0x49, 0x89, 0xc7, /* mov    r15,rax */
	0xb8, 0x0d, 0x00, 0x00, 0x00, /* mov    eax,0xd */
	0x48, 0x8d, 0x35, 0x31, 0x01, 0x00, 0x00, /* lea    rsi,[rip+0x131]        # 240 */
	0x31, 0xd2, /* xor    edx,edx */
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, /* mov    r10d,0x8 */
	0x0f, 0x05, /* syscall */
	0x4c, 0x89, 0xee, /* mov    rsi,r13 */
	0x4c, 0x89, 0xf2, /* mov    rdx,r14 */
	0x41, 0xff, 0xe7, /* jmp    r15 */
	0x45, 0x85, 0xe4, /* test   r12d,r12d */
	0x74, 0x3e, /* je     165 */
	0x41, 0x89, 0xfd, /* mov    r13d,edi */
	0xb8, 0x0d, 0x00, 0x00, 0x00, /* mov    eax,0xd */
	0x48, 0x8d, 0x35, 0x0a, 0x01, 0x00, 0x00, /* lea    rsi,[rip+0x10a]        # 240 */
	0x31, 0xd2, /* xor    edx,edx */
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, /* mov    r10d,0x8 */
	0x0f, 0x05, /* syscall */
	0x45, 0x85, 0xe4, /* test   r12d,r12d */
	0x75, 0x20, /* jne    165 */
	0xb8, 0x27, 0x00, 0x00, 0x00, /* mov    eax,0x27 */
	0x0f, 0x05, /* syscall */
	0x49, 0x89, 0xc0, /* mov    r8,rax */
	0xb8, 0xba, 0x00, 0x00, 0x00, /* mov    eax,0xba */
	0x0f, 0x05, /* syscall */
	0x89, 0xc6, /* mov    esi,eax */
	0x44, 0x89, 0xc7, /* mov    edi,r8d */
	0x44, 0x89, 0xea, /* mov    edx,r13d */
	0xb8, 0xea, 0x00, 0x00, 0x00, /* mov    eax,0xea */
	0x0f, 0x05, /* syscall */
	0xc3, /* ret */
	0x66, 0x90, /* xchg   ax,ax */
	0xb8, 0x0f, 0x00, 0x00, 0x00, /* mov    eax,0xf */
	0x0f, 0x05, /* syscall */
};

/* nm of the assembled template (absolute symbols diag_guard_*). */
enum {
	T_RESTORER = 0x168,
	T_DATA = 0x200,
	T_D_SEGV = 0x200,
	T_D_BUS = 0x220,
	T_D_DFL = 0x240,
	T_SIZE = 0x260,
};

/* The handler hard-codes these kernel ABI offsets and the slot header's layout. */
_Static_assert(offsetof(ucontext_t, uc_mcontext.gregs) + REG_RIP * sizeof(greg_t) == 168,
	       "ucontext rip offset (UC_RIP in guard_template.S)");
_Static_assert(offsetof(ucontext_t, uc_mcontext.gregs) + REG_R14 * sizeof(greg_t) == 88,
	       "ucontext r14 offset (UC_R14 in guard_template.S)");
_Static_assert(offsetof(siginfo_t, si_code) == 8, "siginfo si_code offset");
_Static_assert(offsetof(siginfo_t, si_addr) == 16, "siginfo si_addr offset");
_Static_assert(offsetof(struct diag_tramp_slot_header, cond_lo) == 8 &&
		       offsetof(struct diag_tramp_slot_header, cond_hi) == 10 &&
		       offsetof(struct diag_tramp_slot_header, value_lo) == 12 &&
		       offsetof(struct diag_tramp_slot_header, value_hi) == 14 &&
		       offsetof(struct diag_tramp_slot_header, cond_landing) == 16 &&
		       offsetof(struct diag_tramp_slot_header, value_landing) == 18 &&
		       offsetof(struct diag_tramp_slot_header, tp_load) == 20 &&
		       offsetof(struct diag_tramp_slot_header, tp_resume) == 22,
	       "slot header offsets (H_* in guard_template.S)");
_Static_assert(DIAG_TRAMP_SLOT == 4096 && DIAG_TRAMP_SLOT_CODE == 64,
	       "slot size and code start (in guard_template.S)");
_Static_assert(DIAG_TRAMP_SLOT_MAGIC == 0x6f6c73706d617274ULL, "slot magic (in guard_template.S)");
_Static_assert(SIGBUS == 7 && SIGSEGV == 11 && BUS_MCEERR_AO == 5 && SA_RESETHAND == 0x80000000,
	       "signal numbers and flags (in guard_template.S)");
_Static_assert(sizeof(code_bytes) <= T_DATA, "handler code must end before its data");
_Static_assert(T_D_BUS == T_D_SEGV + sizeof(struct diag_ksigaction) &&
		       T_D_DFL == T_D_BUS + sizeof(struct diag_ksigaction) &&
		       T_SIZE == T_D_DFL + sizeof(struct diag_ksigaction),
	       "data area layout");

static const struct diag_guard_template tmpl = {
	.source = "lib/arch/x86_64/guard_template.S",
	.bytes = code_bytes,
	.len = sizeof(code_bytes),
	.restorer = T_RESTORER,
	.data = T_DATA,
	.d_segv = T_D_SEGV,
	.d_bus = T_D_BUS,
	.d_dfl = T_D_DFL,
	.size = T_SIZE,
};

const struct diag_guard_template *diag_guard_template(void)
{
	return &tmpl;
}

int diag_guard_signal(size_t i)
{
	static const int sigs[DIAG_GUARD_NSIGS] = {SIGSEGV, SIGBUS};
	return i < DIAG_GUARD_NSIGS ? sigs[i] : 0;
}

size_t diag_guard_size(void)
{
	return T_SIZE;
}

int diag_guard_build(uint64_t addr, uint8_t *out, size_t cap, size_t *len,
		     struct diag_guard_layout *layout, struct diag_error *err)
{
	if (!out || !len || !layout)
		return diag_error_set(err, -EINVAL, "fault guard: missing output");
	if (!addr || addr % 8)
		return diag_error_set(err, -EINVAL, "fault guard: address 0x%llx not 8-byte aligned",
				      (unsigned long long)addr);
	if (cap < T_SIZE)
		return diag_error_set(err, -ENOSPC, "fault guard: needs %d bytes, %zu given", T_SIZE,
				      cap);
	/* int3 between code and data: a stray jump there traps instead of sliding into data;
	 * the previous actions and the SIG_DFL one start as all zero (SIG_DFL) */
	memset(out, 0, T_SIZE);
	memset(out, 0xcc, T_DATA);
	memcpy(out, code_bytes, sizeof(code_bytes));
	*layout = (struct diag_guard_layout){
		.addr = addr,
		.len = T_SIZE,
		.handler = addr,
		.restorer = addr + T_RESTORER,
		.old_action = {addr + T_D_SEGV, addr + T_D_BUS},
	};
	*len = T_SIZE;
	return 0;
}

void diag_guard_action(const struct diag_guard_layout *l, const struct diag_ksigaction *old,
		       struct diag_ksigaction *ours)
{
	diag_ksigaction_over(l->handler, l->restorer, old, ours);
}
