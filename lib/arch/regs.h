/* arch/regs: the registers of a stopped thread by role (pc, sp, frame, return value, argument
 * n, the single-step flag, the address a breakpoint trapped at), and register names, ABI
 * argument/return registers and DWARF register numbers mapped to offsets in diag_regs (what
 * PTRACE_GETREGS fills). Arch-neutral: code outside lib/arch/ reads and writes registers only
 * through these. Pure tables and accessors; never touches a process. */
#ifndef DIAG_ARCH_REGS_H
#define DIAG_ARCH_REGS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/user.h>

/* The general registers as ptrace reads them on this architecture, and the floating-point /
 * vector registers (PTRACE_GETFPREGS). */
typedef struct user_regs_struct diag_regs;
typedef struct user_fpregs_struct diag_fpregs;

uint64_t diag_regs_pc(const diag_regs *r);
void diag_regs_set_pc(diag_regs *r, uint64_t pc);
uint64_t diag_regs_sp(const diag_regs *r);
void diag_regs_set_sp(diag_regs *r, uint64_t sp);
/* The frame pointer register (rbp). */
uint64_t diag_regs_frame(const diag_regs *r);
/* The integer return value register (rax). */
uint64_t diag_regs_ret(const diag_regs *r);
/* Integer argument n (1-based) of the ABI's calling convention; 0 past the register ones. */
uint64_t diag_regs_arg(const diag_regs *r, int n);
/* The address of the breakpoint instruction a thread stopped on with SIGTRAP (x86-64 reports
 * the pc after the 1-byte int3). */
uint64_t diag_regs_trap_addr(const diag_regs *r);
/* Length in bytes of the breakpoint instruction. */
#define DIAG_ARCH_BREAK_LEN 1
/* The single-step (trap) flag, and clearing it: a step that ran a flag-saving instruction
 * (pushf) leaves it set in the saved copy. */
bool diag_regs_stepping(const diag_regs *r);
void diag_regs_clear_step(diag_regs *r);
/* Mark the registers as not inside a system call, so a resume never restarts one. */
void diag_regs_no_syscall(diag_regs *r);

/* Offset (in bytes) of a register in struct user_regs_struct by name ("rdi", "rsp", "rip",
 * "eflags"/"rflags", "fs_base", also 32/16/8-bit names like "edi", "di", "dil" -> the 64-bit
 * slot, *width set to 4/2/1; 8 for full registers). name without '$'. width may be NULL.
 * Returns the offset, or -DIAG_E_NOSYM for an unknown name. */
int diag_reg_lookup(const char *name, unsigned *width);

/* System V integer argument n (1..6) -> offset in user_regs_struct (rdi, rsi, rdx, rcx, r8, r9);
 * -DIAG_E_INVALID otherwise. */
int diag_reg_arg(int n);

/* Return value register offset (rax). */
int diag_reg_ret(void);

/* DWARF x86-64 register number (0 rax, 1 rdx, 2 rcx, 3 rbx, 4 rsi, 5 rdi, 6 rbp, 7 rsp,
 * 8..15 r8..r15, 16 return address = rip, 49 rflags, 50..55 es cs ss ds fs gs, 58 fs_base,
 * 59 gs_base) -> offset in user_regs_struct; -DIAG_E_INVALID for numbers without a slot
 * (vector and x87 registers). */
int diag_reg_dwarf(int regno);

/* The value of the register at offset, truncated (zero-extended) to width bytes (1, 2, 4, 8;
 * anything else reads 8). */
uint64_t diag_reg_get(const diag_regs *r, int offset, unsigned width);

/* 64-bit name of the register slot at offset ("rdi"), or NULL if offset is not a slot. */
const char *diag_reg_name(int offset);

/* Names of all registers (for error messages listing candidates), NULL-terminated. */
const char *const *diag_reg_names(void);

#endif
