/* arch/x86_64/safety: builds the SIGTRAP safety handler blob (see safety.h) from the handler code
 * reviewed as safety_template.S (the array below is its `cc -c` + `objdump -d` listing, command
 * in that file; test_safety re-assembles the .S to prove the two identical), computes the action
 * to install and keeps the host-side mirror of the handler's address table. Pure byte work:
 * never touches a process, never chooses addresses. */
#include "arch/safety.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

/* objdump -d -M intel of safety_template.S. */
static const uint8_t code_bytes[] = {
	0x81, 0x7e, 0x08, 0x80, 0x00, 0x00, 0x00, /* cmp    DWORD PTR [rsi+0x8],0x80 */
	0x0f, 0x85, 0xc6, 0x00, 0x00, 0x00, /* jne    d3 */
	0x48, 0x8b, 0x82, 0xa8, 0x00, 0x00, 0x00, /* mov    rax,QWORD PTR [rdx+0xa8] */
	0x48, 0xff, 0xc8, /* dec    rax */
	0x48, 0xb9, 0x15, 0x7c, 0x4a, 0x7f, 0xb9, 0x79, 0x37, 0x9e, /* movabs rcx,0x9e3779b97f4a7c15 */
	0x48, 0x0f, 0xaf, 0xc8, /* imul   rcx,rax */
	0x48, 0xc1, 0xe9, 0x20, /* shr    rcx,0x20 */
	0x4c, 0x8b, 0x05, 0xd0, 0x01, 0x00, 0x00, /* mov    r8,QWORD PTR [rip+0x1d0]        # 200 */
	0x4d, 0x8d, 0x48, 0x01, /* lea    r9,[r8+0x1] */
	0x4c, 0x8d, 0x15, 0x45, 0x04, 0x00, 0x00, /* lea    r10,[rip+0x445]        # 480 */
	0x4c, 0x21, 0xc1, /* and    rcx,r8 */
	0x49, 0x89, 0xcb, /* mov    r11,rcx */
	0x49, 0xc1, 0xe3, 0x04, /* shl    r11,0x4 */
	0x4d, 0x01, 0xd3, /* add    r11,r10 */
	0x49, 0x39, 0x03, /* cmp    QWORD PTR [r11],rax */
	0x74, 0x6d, /* je     ba */
	0x49, 0x83, 0x3b, 0x00, /* cmp    QWORD PTR [r11],0x0 */
	0x74, 0x08, /* je     5b */
	0x48, 0xff, 0xc1, /* inc    rcx */
	0x49, 0xff, 0xc9, /* dec    r9 */
	0x75, 0xe0, /* jne    3b */
	0x4c, 0x8d, 0x15, 0x1e, 0x02, 0x00, 0x00, /* lea    r10,[rip+0x21e]        # 280 */
	0xb9, 0x40, 0x00, 0x00, 0x00, /* mov    ecx,0x40 */
	0x49, 0x39, 0x02, /* cmp    QWORD PTR [r10],rax */
	0x74, 0x5f, /* je     cb */
	0x49, 0x83, 0xc2, 0x08, /* add    r10,0x8 */
	0xff, 0xc9, /* dec    ecx */
	0x75, 0xf3, /* jne    67 */
	0x48, 0x8b, 0x82, 0xa8, 0x00, 0x00, 0x00, /* mov    rax,QWORD PTR [rdx+0xa8] */
	0x4c, 0x8d, 0x15, 0xfe, 0x03, 0x00, 0x00, /* lea    r10,[rip+0x3fe]        # 480 */
	0x4d, 0x8d, 0x48, 0x01, /* lea    r9,[r8+0x1] */
	0x49, 0x39, 0x42, 0x08, /* cmp    QWORD PTR [r10+0x8],rax */
	0x75, 0x0a, /* jne    96 */
	0x49, 0x83, 0x3a, 0x01, /* cmp    QWORD PTR [r10],0x1 */
	0x0f, 0x87, 0x94, 0x00, 0x00, 0x00, /* ja     12a */
	0x49, 0x83, 0xc2, 0x10, /* add    r10,0x10 */
	0x49, 0xff, 0xc9, /* dec    r9 */
	0x75, 0xe7, /* jne    86 */
	0x4c, 0x8d, 0x15, 0xda, 0x01, 0x00, 0x00, /* lea    r10,[rip+0x1da]        # 280 */
	0xb9, 0x40, 0x00, 0x00, 0x00, /* mov    ecx,0x40 */
	0x49, 0x39, 0x02, /* cmp    QWORD PTR [r10],rax */
	0x74, 0x7a, /* je     12a */
	0x49, 0x83, 0xc2, 0x08, /* add    r10,0x8 */
	0xff, 0xc9, /* dec    ecx */
	0x75, 0xf3, /* jne    ab */
	0xeb, 0x19, /* jmp    d3 */
	0x49, 0x8b, 0x4b, 0x08, /* mov    rcx,QWORD PTR [r11+0x8] */
	0x48, 0x85, 0xc9, /* test   rcx,rcx */
	0x74, 0x10, /* je     d3 */
	0x48, 0x89, 0x8a, 0xa8, 0x00, 0x00, 0x00, /* mov    QWORD PTR [rdx+0xa8],rcx */
	0xc3, /* ret */
	0x48, 0x89, 0x82, 0xa8, 0x00, 0x00, 0x00, /* mov    QWORD PTR [rdx+0xa8],rax */
	0xc3, /* ret */
	0x48, 0x8b, 0x05, 0x46, 0x01, 0x00, 0x00, /* mov    rax,QWORD PTR [rip+0x146]        # 220 */
	0x48, 0x83, 0xf8, 0x01, /* cmp    rax,0x1 */
	0x74, 0x07, /* je     e7 */
	0x48, 0x85, 0xc0, /* test   rax,rax */
	0x74, 0x08, /* je     ed */
	0xff, 0xe0, /* jmp    rax */
	0x83, 0x7e, 0x08, 0x00, /* cmp    DWORD PTR [rsi+0x8],0x0 */
	0x7e, 0x3d, /* jle    12a */
	0xb8, 0x0d, 0x00, 0x00, 0x00, /* mov    eax,0xd */
	0xbf, 0x05, 0x00, 0x00, 0x00, /* mov    edi,0x5 */
	0x48, 0x8d, 0x35, 0x42, 0x01, 0x00, 0x00, /* lea    rsi,[rip+0x142]        # 240 */
	0x31, 0xd2, /* xor    edx,edx */
	0x41, 0xba, 0x08, 0x00, 0x00, 0x00, /* mov    r10d,0x8 */
	0x0f, 0x05, /* syscall */
	0xb8, 0x27, 0x00, 0x00, 0x00, /* mov    eax,0x27 */
	0x0f, 0x05, /* syscall */
	0x49, 0x89, 0xc0, /* mov    r8,rax */
	0xb8, 0xba, 0x00, 0x00, 0x00, /* mov    eax,0xba */
	0x0f, 0x05, /* syscall */
	0x89, 0xc6, /* mov    esi,eax */
	0x44, 0x89, 0xc7, /* mov    edi,r8d */
	0xba, 0x05, 0x00, 0x00, 0x00, /* mov    edx,0x5 */
	0xb8, 0xea, 0x00, 0x00, 0x00, /* mov    eax,0xea */
	0x0f, 0x05, /* syscall */
	0xc3, /* ret */
	0x0f, 0x1f, 0x44, 0x00, 0x00, /* nop    DWORD PTR [rax+rax*1+0x0] */
	0xb8, 0x0f, 0x00, 0x00, 0x00, /* mov    eax,0xf */
	0x0f, 0x05, /* syscall */
};

/* nm of the assembled template (absolute symbols diag_safety_*). */
enum {
	T_RESTORER = 0x130,
	T_DATA = 0x200,
	T_D_MASK = 0x200,
	T_D_OLD = 0x220,
	T_D_DFL = 0x240,
	T_D_TOMBS = 0x280,
	T_D_TABLE = 0x480,
	T_N_TOMBS = 64,
};

/* The handler hard-codes these kernel ABI offsets. */
_Static_assert(offsetof(ucontext_t, uc_mcontext.gregs) + REG_RIP * sizeof(greg_t) == 168,
	       "ucontext rip offset (UC_RIP in safety_template.S)");
_Static_assert(offsetof(siginfo_t, si_code) == 8, "siginfo si_code offset");
_Static_assert(sizeof(struct diag_ksigaction) == 32, "kernel sigaction size");
_Static_assert(sizeof(code_bytes) <= T_DATA, "handler code must end before its data");
_Static_assert(T_N_TOMBS == DIAG_SAFETY_TOMBS, "tombstone count");
_Static_assert(T_D_TABLE == T_D_TOMBS + 8 * DIAG_SAFETY_TOMBS, "table after the tombstones");

#define HASH_K 0x9e3779b97f4a7c15ull
#define KSA_RESTORER 0x04000000ull /* the kernel's SA_RESTORER; glibc does not export it */

static const struct diag_safety_template tmpl = {
	.source = "lib/arch/x86_64/safety_template.S",
	.bytes = code_bytes,
	.len = sizeof(code_bytes),
	.restorer = T_RESTORER,
	.data = T_DATA,
	.d_mask = T_D_MASK,
	.d_old = T_D_OLD,
	.d_dfl = T_D_DFL,
	.d_tombs = T_D_TOMBS,
	.d_table = T_D_TABLE,
	.n_tombs = T_N_TOMBS,
};

const struct diag_safety_template *diag_safety_template(void)
{
	return &tmpl;
}

static int size_ok(size_t n)
{
	return n >= 2 && n <= DIAG_SAFETY_MAX_ENTRIES && (n & (n - 1)) == 0;
}

size_t diag_safety_size(size_t n_entries)
{
	return T_D_TABLE + n_entries * sizeof(struct diag_safety_entry);
}

int diag_safety_build(uint64_t page_addr, size_t n_entries, uint8_t *out, size_t cap, size_t *len,
		      struct diag_safety_layout *layout, struct diag_error *err)
{
	size_t need = diag_safety_size(n_entries);
	uint64_t mask = n_entries - 1;

	if (!out || !len || !layout)
		return diag_error_set(err, -EINVAL, "safety handler: missing output");
	if (!page_addr || page_addr % 8)
		return diag_error_set(err, -EINVAL, "safety handler: page address 0x%llx not 8-byte aligned",
				      (unsigned long long)page_addr);
	if (!size_ok(n_entries))
		return diag_error_set(err, -EINVAL,
				      "safety handler: %zu table entries, need a power of two in 2..%d",
				      n_entries, DIAG_SAFETY_MAX_ENTRIES);
	if (cap < need)
		return diag_error_set(err, -ENOSPC, "safety handler: needs %zu bytes, %zu given", need, cap);
	memset(out, 0, need);
	/* int3 between code and data: a stray jump there traps instead of sliding into data. */
	memset(out, 0xcc, T_DATA);
	memcpy(out, code_bytes, sizeof(code_bytes));
	memcpy(out + T_D_MASK, &mask, sizeof(mask));
	*layout = (struct diag_safety_layout){
		.page_addr = page_addr,
		.len = need,
		.handler = page_addr,
		.restorer = page_addr + T_RESTORER,
		.old_action = page_addr + T_D_OLD,
		.tombs = page_addr + T_D_TOMBS,
		.table = page_addr + T_D_TABLE,
		.n_entries = n_entries,
	};
	*len = need;
	return 0;
}

void diag_ksigaction_over(uint64_t handler, uint64_t restorer, const struct diag_ksigaction *old,
			  struct diag_ksigaction *ours)
{
	int old_handler = old->handler > 1 && (old->flags & KSA_RESTORER) && old->restorer;

	*ours = (struct diag_ksigaction){
		.handler = handler,
		.flags = SA_SIGINFO | KSA_RESTORER | (old->flags & (SA_ONSTACK | SA_NODEFER)),
		.restorer = old_handler ? old->restorer : restorer,
		.mask = old->mask,
	};
}

void diag_safety_action(const struct diag_safety_layout *l, const struct diag_ksigaction *old,
			struct diag_ksigaction *ours)
{
	diag_ksigaction_over(l->handler, l->restorer, old, ours);
}

size_t diag_safety_hash(uint64_t addr, size_t n_entries)
{
	return (size_t)((addr * HASH_K) >> 32) & (n_entries - 1);
}

int diag_safety_table_init(struct diag_safety_table *t, size_t n_entries)
{
	if (!t || !size_ok(n_entries))
		return -EINVAL;
	t->e = calloc(n_entries, sizeof(*t->e));
	if (!t->e)
		return -ENOMEM;
	t->n = n_entries;
	t->live = 0;
	return 0;
}

void diag_safety_table_fini(struct diag_safety_table *t)
{
	if (!t)
		return;
	free(t->e);
	t->e = NULL;
	t->n = t->live = 0;
}

/* The bucket holding addr, or -1; *free_at gets the first reusable bucket on its chain. */
static long find(const struct diag_safety_table *t, uint64_t addr, long *free_at)
{
	size_t i = diag_safety_hash(addr, t->n);

	*free_at = -1;
	for (size_t k = 0; k < t->n; k++, i = (i + 1) & (t->n - 1)) {
		uint64_t a = t->e[i].addr;

		if (a == addr)
			return (long)i;
		if (a <= DIAG_SAFETY_DELETED && *free_at < 0)
			*free_at = (long)i;
		if (a == DIAG_SAFETY_EMPTY)
			break;
	}
	return -1;
}

int diag_safety_table_put(struct diag_safety_table *t, uint64_t addr, uint64_t slot,
			  size_t *index)
{
	long at, free_at;

	if (!t || !t->e || !index || addr <= DIAG_SAFETY_DELETED || !slot)
		return -EINVAL;
	at = find(t, addr, &free_at);
	if (at >= 0)
		return -EEXIST;
	/* Keep empty buckets so that a miss ends early in the handler. */
	if ((t->live + 1) * 4 > t->n * 3 || free_at < 0)
		return -ENOSPC;
	t->e[free_at] = (struct diag_safety_entry){ .addr = addr, .slot = slot };
	t->live++;
	*index = (size_t)free_at;
	return 0;
}

int diag_safety_table_del(struct diag_safety_table *t, uint64_t addr, size_t *index)
{
	long at, free_at;

	if (!t || !t->e || !index || addr <= DIAG_SAFETY_DELETED)
		return -ENOENT;
	at = find(t, addr, &free_at);
	if (at < 0)
		return -ENOENT;
	/* Deleted, not emptied: a chain running through this bucket must not end here. */
	t->e[at].addr = DIAG_SAFETY_DELETED;
	t->live--;
	*index = (size_t)at;
	return 0;
}

uint64_t diag_safety_bucket_addr(const struct diag_safety_layout *l, size_t index)
{
	return l->table + index * sizeof(struct diag_safety_entry);
}

uint64_t diag_safety_tomb_addr(const struct diag_safety_layout *l, uint64_t seq)
{
	return l->tombs + (seq % DIAG_SAFETY_TOMBS) * sizeof(uint64_t);
}
