/* arch/x86_64/capture_jit: compiles a capture program (arch/capture.h) to x86-64 inside a
 * capture trampoline (tramp_capture.c), with a fixed register convention the trampoline and its
 * fault landings rely on:
 *   rsp        the trampoline frame: stack slots 4..15 at [rsp + 8 * (k - 4)], the saved
 *              registers (diag_ring_rec.regs order) at [rsp + XJ_FRAME_REGS + 8 * i]
 *   r8..r11    stack slots 0..3 of the program's u64 stack (depth known at each op)
 *   rsi        the address of the memory access in progress: every load that can fault reads
 *              [rsi] itself, one byte or a naturally aligned 2/4/8 bytes, so a fault's first
 *              unreadable byte is exactly rsi (also for a #GP, where si_addr is 0)
 *   rdi        value programs: where the next block header goes (blocks written so far end here)
 *   rbp        value programs: the header of the block being copied, 0 between blocks
 *   rdx        during a block copy: the next byte of the block's data
 *   rbx r12..r15  the trampoline's (control block, sequence, sub-ring, thread, record)
 *   rax rcx    scratch
 * Shared by the files of lib/arch/x86_64/ (prefix xj_). Never emits a call, a syscall, a string
 * instruction or a write outside the record and the frame. */
#ifndef DIAG_ARCH_X86_64_CAPTURE_JIT_H
#define DIAG_ARCH_X86_64_CAPTURE_JIT_H

#include <stdbool.h>
#include <stdint.h>

#include "arch/capture.h"
#include "arch/x86_64/xasm.h"
#include "util/error.h"

#define XJ_MEM_SLOTS (DIAG_CAP_MAX_STACK - 4)
#define XJ_FRAME_REGS (8 * XJ_MEM_SLOTS)   /* bytes of stack slots below the saved registers */

/* Register slots as the trampoline saved them (the order of diag_ring_rec.regs). */
enum { XJ_NSAVED = 18, XJ_SAVED_RIP = 15, XJ_SAVED_RSP = 16, XJ_SAVED_FLAGS = 17 };

/* What a program may do and where it goes when it stops early. */
struct xj_prog {
	const struct diag_cap_prog *p;
	bool value;                /* value program: SAVE ops, END with an empty stack */
	int8_t depth[DIAG_CAP_MAX_OPS + 1]; /* stack depth before each op, -1 unreachable */
	bool target[DIAG_CAP_MAX_OPS + 1];  /* some jump lands on the op */
	uint32_t max_written;      /* longest path's payload bytes */
	uint32_t l_false;          /* condition: false, fault or abort (no record) */
	uint32_t l_abort;          /* value: division by zero */
	uint32_t l_lits;           /* first of p->nlits labels (xj_emit_lits) */
};

/* Check p for kind and compute its depths and payload bound into x (the rest of x untouched).
 * Returns 0 or -DIAG_E_INVALID naming the op (the structure the generated code depends on:
 * known ops and operands, forward jumps, one depth per op within the stack, END where needed,
 * no SAVE in a condition, the longest path's payload within max_payload). */
int xj_check(struct xj_prog *x, const struct diag_cap_prog *p, bool value, struct diag_error *err);

/* Emit the program's code (falls through at END: a condition with the truth tested). Labels
 * l_false/l_abort/l_lits must be allocated by the caller. */
void xj_emit(struct xasm *a, const struct xj_prog *x);

/* Emit the literals (NUL-terminated) and place the l_lits labels. */
void xj_emit_lits(struct xasm *a, const struct xj_prog *x);

/* Zero a block's data from rdx up to its 8-byte boundary, move rdi there and mark no block in
 * progress (rbp = 0): the end of every block, also in the value program's fault landing. */
void xj_emit_block_end(struct xasm *a);

/* The value program's fault landing, for a block being copied (rbp): a string keeps the
 * bytes copied (len cut to them), a memory block keeps its length with zeros from the fault
 * on, as the reference interpreter leaves them; rdi then follows the block. Nothing when rbp
 * is 0. */
void xj_emit_fault_block(struct xasm *a);

/* Frame slot of the register at byte offset off of diag_regs; -1 when the trampoline does not
 * save it (XJ_SAVED_TP: the thread pointer, in r14). */
#define XJ_SAVED_TP 100
int xj_reg_slot(uint32_t off);

#endif
