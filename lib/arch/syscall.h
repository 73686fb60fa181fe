/* arch/syscall: what running one system call in a stopped thread needs to know of the
 * architecture (lib/ptrace's remote system calls): the instruction that enters the kernel,
 * where the number and the arguments go and the result comes back, and the restart the kernel
 * applies to a call a signal interrupted. The arch-neutral interface, implemented by
 * lib/arch/<arch>/syscall.c. Pure byte tests and register edits (and the code of a stub, diag_arch_syscall_stub); never touches a process. */
#ifndef DIAG_ARCH_SYSCALL_H
#define DIAG_ARCH_SYSCALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/regs.h"

/* Bytes of the system call instruction (x86-64: syscall, 0f 05). */
#if defined(__x86_64__)
#define DIAG_ARCH_SYSCALL_LEN 2
#endif

/* Most bytes diag_arch_syscall_stub writes. */
#define DIAG_ARCH_SYSCALL_STUB_MAX 256

/* True when code (DIAG_ARCH_SYSCALL_LEN bytes) is the system call instruction. */
bool diag_arch_is_syscall(const uint8_t *code);

/* Set r up to run system call nr with args[0..5] by executing the system call instruction at
 * insn: pc, number, arguments, and no restart of an interrupted call. Other registers stay. */
void diag_regs_syscall_enter(diag_regs *r, uint64_t insn, long nr, const long args[6]);

/* Code to run at address at that executes the system call instruction, then puts back every
 * general register and the flags of resume and jumps to resume's pc, touching neither memory
 * nor the stack. A remote system call entered there leaves nothing half done if the tracer
 * dies at any moment of it: the thread runs the call and goes on as if never borrowed (with the
 * tracer alive the code after the call never runs: the registers are put back at the
 * syscall-exit stop). Writes at most cap bytes (DIAG_ARCH_SYSCALL_STUB_MAX is enough) and their
 * count into *len. Returns 0, or -ENOSPC. */
int diag_arch_syscall_stub(uint64_t at, const diag_regs *resume, uint8_t *out, size_t cap,
			   size_t *len);

/* The raw result of a system call that returned (-errno on failure). */
long diag_regs_syscall_result(const diag_regs *r);

/* The number a system call instruction at the pc of r would run. */
long diag_regs_syscall_nr(const diag_regs *r);

/* The restart the kernel applies to registers saved at a system call interrupted by a signal
 * (x86-64: an -ERESTART* result puts the call back, pc on its instruction again), so
 * registers put back after borrowing the thread resume as if nobody had. Nothing when r is
 * not inside a system call. */
void diag_regs_syscall_restart(diag_regs *r);

#endif
