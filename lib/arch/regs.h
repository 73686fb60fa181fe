/* arch/regs: the registers of a stopped thread by role (pc, sp, frame, return values,
 * argument n, the single-step flag, the address a breakpoint trapped at), and register names,
 * ABI argument/return registers and DWARF register numbers mapped to offsets in diag_regs.
 * The arch-neutral interface: each lib/arch/<arch>/regs.c implements it, and code outside
 * lib/arch/ reads and writes registers only through it (never a field of diag_regs). Pure
 * tables and accessors; never touches a process (lib/ptrace reads and writes them). */
#ifndef DIAG_ARCH_REGS_H
#define DIAG_ARCH_REGS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/user.h>

/* diag_regs: the general registers as ptrace's NT_PRSTATUS register set holds them;
 * diag_fpregs: the floating-point / vector registers (NT_PRFPREG). DIAG_ARCH_BREAK_LEN: length
 * in bytes of the breakpoint instruction (arch/insn.h has its bytes). The one per-architecture
 * block of the neutral headers: a new architecture adds its branch here. */
#if defined(__x86_64__)
typedef struct user_regs_struct diag_regs;     /* x86-64: rip, rsp, rax, ..., eflags */
typedef struct user_fpregs_struct diag_fpregs; /* x86-64: the fxsave area (x87, xmm0-15) */
#define DIAG_ARCH_BREAK_LEN 1                  /* x86-64: int3, 0xcc */
#define DIAG_ARCH_NVECTOR 16                   /* x86-64: xmm0-15 */
#else
#error "lib/arch/regs.h: no register layout for this processor (see: adding an architecture)"
#endif

uint64_t diag_regs_pc(const diag_regs *r);
void diag_regs_set_pc(diag_regs *r, uint64_t pc);
uint64_t diag_regs_sp(const diag_regs *r);
void diag_regs_set_sp(diag_regs *r, uint64_t sp);
/* The frame pointer register (x86-64: rbp). */
uint64_t diag_regs_frame(const diag_regs *r);
/* The integer return value register (x86-64: rax), and the second one that holds the next
 * part of a result two registers wide (x86-64: rdx). */
uint64_t diag_regs_ret(const diag_regs *r);
uint64_t diag_regs_ret2(const diag_regs *r);
/* The bytes of floating-point return register n (0 the first; x86-64: xmm0, xmm1), lowest
 * lane first, at least 8 of them; NULL when the ABI has no such register. */
const uint8_t *diag_fpregs_float_ret(const diag_fpregs *f, int n);
/* The 16 bytes of vector register n (x86-64: xmm n, n < DIAG_ARCH_NVECTOR), lowest lane
 * first; NULL past the last. Writable through a pointer to a non-const f. */
const uint8_t *diag_fpregs_vector(const diag_fpregs *f, unsigned n);
/* Integer argument n (1-based) of the ABI's calling convention; 0 past the register ones. */
uint64_t diag_regs_arg(const diag_regs *r, int n);
/* The address of the breakpoint instruction a thread stopped on with SIGTRAP (x86-64 reports
 * the pc after the 1-byte int3). */
uint64_t diag_regs_trap_addr(const diag_regs *r);
/* The single-step (trap) flag, and clearing it: a step that ran a flag-saving instruction
 * leaves it set in the saved copy (x86-64: EFLAGS.TF, saved by pushf). */
bool diag_regs_stepping(const diag_regs *r);
void diag_regs_clear_step(diag_regs *r);
/* Mark the registers as not inside a system call, so a resume never restarts one (x86-64:
 * orig_rax = -1). */
void diag_regs_no_syscall(diag_regs *r);

/* Offset (in bytes) of a register in diag_regs by the name users write for it, without '$'
 * (x86-64: "rdi", "rsp", "rip", "eflags"/"rflags", "fs_base", also 32/16/8-bit names like
 * "edi", "di", "dil" -> the 64-bit slot, *width set to 4/2/1; 8 for full registers). width
 * may be NULL. Returns the offset, or -DIAG_E_NOSYM for an unknown name. */
int diag_reg_lookup(const char *name, unsigned *width);

/* True when the register users call name (without '$') holds an address, so an expression
 * types it as a pointer (x86-64: rsp, rbp, rip). */
bool diag_reg_is_address(const char *name);

/* Integer argument n (1-based) of the ABI's calling convention -> offset in diag_regs
 * (x86-64, System V: 1..6 = rdi, rsi, rdx, rcx, r8, r9); -DIAG_E_INVALID otherwise. */
int diag_reg_arg(int n);

/* Offset of the integer return value register (x86-64: rax). */
int diag_reg_ret(void);

/* Offset of the second integer return value register (x86-64: rdx; diag_regs_ret2). */
int diag_reg_ret2(void);

/* Offset of the stack pointer (x86-64: rsp). */
int diag_reg_sp(void);

/* DWARF register number -> offset in diag_regs; -DIAG_E_INVALID for numbers without a slot.
 * x86-64 (psABI numbering): 0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp,
 * 8..15 r8..r15, 16 return address = rip, 49 rflags, 50..55 es cs ss ds fs gs, 58 fs_base,
 * 59 gs_base; vector and x87 registers have no slot. */
int diag_reg_dwarf(int regno);

/* The value of the register at offset, truncated (zero-extended) to width bytes (1, 2, 4, 8;
 * anything else reads 8). */
uint64_t diag_reg_get(const diag_regs *r, int offset, unsigned width);
/* Set the whole register at offset (a slot of diag_reg_lookup) to v; nothing for an offset
 * outside diag_regs. */
void diag_reg_set(diag_regs *r, int offset, uint64_t v);

/* Full-width name of the register slot at offset (x86-64: "rdi"), or NULL if offset is not a
 * slot. */
const char *diag_reg_name(int offset);

/* Names of all registers (for error messages listing candidates), NULL-terminated. */
const char *const *diag_reg_names(void);

#endif
