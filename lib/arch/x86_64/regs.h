/* arch/x86_64/regs: register names, System V argument/return registers and DWARF register
 * numbers mapped to offsets in struct user_regs_struct (what PTRACE_GETREGS fills). Pure tables;
 * never touches a process. */
#ifndef DIAG_ARCH_X86_64_REGS_H
#define DIAG_ARCH_X86_64_REGS_H

#include <stdint.h>
#include <sys/user.h>

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
uint64_t diag_reg_get(const struct user_regs_struct *r, int offset, unsigned width);

/* 64-bit name of the register slot at offset ("rdi"), or NULL if offset is not a slot. */
const char *diag_reg_name(int offset);

/* Names of all registers (for error messages listing candidates), NULL-terminated. */
const char *const *diag_reg_names(void);

#endif
