/* arch/x86_64/regs: arch/regs.h for x86-64: name, ABI and DWARF tables over struct
 * user_regs_struct and the registers by role. Pure data and lookups; never touches a process. */
#include "arch/regs.h"

#include <stddef.h>
#include <string.h>

#include "util/error.h"

#define OFF(f) ((int)offsetof(struct user_regs_struct, f))

struct reg_name {
	const char *name;
	int offset;
	unsigned width;
};

/* One row per general register: its names at widths 8, 4, 2, 1 (NULL when none exists). */
struct gpr_row {
	int offset;
	const char *n64, *n32, *n16, *n8;
};

static const struct gpr_row gprs[] = {
	{ OFF(rax), "rax", "eax", "ax", "al" },
	{ OFF(rbx), "rbx", "ebx", "bx", "bl" },
	{ OFF(rcx), "rcx", "ecx", "cx", "cl" },
	{ OFF(rdx), "rdx", "edx", "dx", "dl" },
	{ OFF(rsi), "rsi", "esi", "si", "sil" },
	{ OFF(rdi), "rdi", "edi", "di", "dil" },
	{ OFF(rbp), "rbp", "ebp", "bp", "bpl" },
	{ OFF(rsp), "rsp", "esp", "sp", "spl" },
	{ OFF(r8), "r8", "r8d", "r8w", "r8b" },
	{ OFF(r9), "r9", "r9d", "r9w", "r9b" },
	{ OFF(r10), "r10", "r10d", "r10w", "r10b" },
	{ OFF(r11), "r11", "r11d", "r11w", "r11b" },
	{ OFF(r12), "r12", "r12d", "r12w", "r12b" },
	{ OFF(r13), "r13", "r13d", "r13w", "r13b" },
	{ OFF(r14), "r14", "r14d", "r14w", "r14b" },
	{ OFF(r15), "r15", "r15d", "r15w", "r15b" },
	{ OFF(rip), "rip", "eip", "ip", NULL },
	{ OFF(eflags), "eflags", NULL, "flags", NULL },
	{ OFF(orig_rax), "orig_rax", NULL, NULL, NULL },
	{ OFF(fs_base), "fs_base", NULL, NULL, NULL },
	{ OFF(gs_base), "gs_base", NULL, NULL, NULL },
	{ OFF(cs), "cs", NULL, NULL, NULL },
	{ OFF(ss), "ss", NULL, NULL, NULL },
	{ OFF(ds), "ds", NULL, NULL, NULL },
	{ OFF(es), "es", NULL, NULL, NULL },
	{ OFF(fs), "fs", NULL, NULL, NULL },
	{ OFF(gs), "gs", NULL, NULL, NULL },
};

#define NGPRS (sizeof(gprs) / sizeof(gprs[0]))

/* Extra spellings that users write for the same slots. */
static const struct reg_name aliases[] = {
	{ "rflags", OFF(eflags), 8 },
	{ "pc", OFF(rip), 8 },
};

static const char *const all_names[] = {
	"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
	"rip", "eflags", "orig_rax", "fs_base", "gs_base", "cs", "ss", "ds", "es", "fs", "gs",
	"eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp",
	"r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d", "eip",
	"ax", "bx", "cx", "dx", "si", "di", "bp", "sp",
	"r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w", "ip", "flags",
	"al", "bl", "cl", "dl", "sil", "dil", "bpl", "spl",
	"r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b",
	"rflags", "pc",
	NULL
};

static int row_match(const struct gpr_row *row, const char *name, unsigned *width)
{
	const char *names[4] = { row->n64, row->n32, row->n16, row->n8 };
	static const unsigned widths[4] = { 8, 4, 2, 1 };

	for (int i = 0; i < 4; i++) {
		if (names[i] && strcmp(names[i], name) == 0) {
			*width = widths[i];
			return 1;
		}
	}
	return 0;
}

int diag_reg_lookup(const char *name, unsigned *width)
{
	unsigned w = 8;

	if (!name)
		return -DIAG_E_NOSYM;
	for (size_t i = 0; i < NGPRS; i++) {
		if (row_match(&gprs[i], name, &w)) {
			if (width)
				*width = w;
			return gprs[i].offset;
		}
	}
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strcmp(aliases[i].name, name) == 0) {
			if (width)
				*width = aliases[i].width;
			return aliases[i].offset;
		}
	}
	return -DIAG_E_NOSYM;
}

bool diag_reg_is_address(const char *name)
{
	return name && (!strcmp(name, "rsp") || !strcmp(name, "rbp") || !strcmp(name, "rip"));
}

int diag_reg_arg(int n)
{
	static const int args[6] = { OFF(rdi), OFF(rsi), OFF(rdx), OFF(rcx), OFF(r8), OFF(r9) };

	if (n < 1 || n > 6)
		return -DIAG_E_INVALID;
	return args[n - 1];
}

int diag_reg_ret(void)
{
	return OFF(rax);
}

int diag_reg_ret2(void)
{
	return OFF(rdx);
}

int diag_reg_sp(void)
{
	return OFF(rsp);
}

int diag_reg_dwarf(int regno)
{
	/* The System V psABI DWARF numbering (figure 3.36), not the hardware encoding order. */
	static const int low[17] = {
		OFF(rax), OFF(rdx), OFF(rcx), OFF(rbx), OFF(rsi), OFF(rdi), OFF(rbp), OFF(rsp),
		OFF(r8), OFF(r9), OFF(r10), OFF(r11), OFF(r12), OFF(r13), OFF(r14), OFF(r15),
		OFF(rip),
	};
	static const int segs[6] = { OFF(es), OFF(cs), OFF(ss), OFF(ds), OFF(fs), OFF(gs) };

	if (regno >= 0 && regno < 17)
		return low[regno];
	if (regno == 49)
		return OFF(eflags);
	if (regno >= 50 && regno <= 55)
		return segs[regno - 50];
	if (regno == 58)
		return OFF(fs_base);
	if (regno == 59)
		return OFF(gs_base);
	return -DIAG_E_INVALID;
}

uint64_t diag_reg_get(const diag_regs *r, int offset, unsigned width)
{
	uint64_t v;

	if (!r || offset < 0 || (size_t)offset + sizeof(v) > sizeof(*r))
		return 0;
	memcpy(&v, (const char *)r + offset, sizeof(v));
	switch (width) {
	case 1: return v & 0xffu;
	case 2: return v & 0xffffu;
	case 4: return v & 0xffffffffu;
	default: return v;
	}
}

void diag_reg_set(diag_regs *r, int offset, uint64_t v)
{
	if (r && offset >= 0 && (size_t)offset + sizeof(v) <= sizeof(*r))
		memcpy((char *)r + offset, &v, sizeof(v));
}

const char *diag_reg_name(int offset)
{
	for (size_t i = 0; i < NGPRS; i++)
		if (gprs[i].offset == offset)
			return gprs[i].n64;
	return NULL;
}

const char *const *diag_reg_names(void)
{
	return all_names;
}

/* ---- registers by role ---- */

#define X86_TF 0x100ULL /* EFLAGS trap flag */

uint64_t diag_regs_pc(const diag_regs *r)
{
	return r->rip;
}

void diag_regs_set_pc(diag_regs *r, uint64_t pc)
{
	r->rip = pc;
}

uint64_t diag_regs_sp(const diag_regs *r)
{
	return r->rsp;
}

void diag_regs_set_sp(diag_regs *r, uint64_t sp)
{
	r->rsp = sp;
}

uint64_t diag_regs_frame(const diag_regs *r)
{
	return r->rbp;
}

uint64_t diag_regs_ret(const diag_regs *r)
{
	return r->rax;
}

uint64_t diag_regs_ret2(const diag_regs *r)
{
	return r->rdx;
}

const uint8_t *diag_fpregs_float_ret(const diag_fpregs *f, int n)
{
	/* xmm_space: 16 registers of 16 bytes, as four u32 each */
	return n == 0 || n == 1 ? (const uint8_t *)&f->xmm_space[4 * n] : NULL;
}

const uint8_t *diag_fpregs_vector(const diag_fpregs *f, unsigned n)
{
	return n < DIAG_ARCH_NVECTOR ? (const uint8_t *)&f->xmm_space[4 * n] : NULL;
}

uint64_t diag_regs_arg(const diag_regs *r, int n)
{
	int off = diag_reg_arg(n);
	return off < 0 ? 0 : diag_reg_get(r, off, 8);
}

uint64_t diag_regs_trap_addr(const diag_regs *r)
{
	return r->rip - DIAG_ARCH_BREAK_LEN;
}

bool diag_regs_stepping(const diag_regs *r)
{
	return (r->eflags & X86_TF) != 0;
}

void diag_regs_clear_step(diag_regs *r)
{
	r->eflags &= ~X86_TF;
}

void diag_regs_no_syscall(diag_regs *r)
{
	r->orig_rax = (unsigned long long)-1;
}
