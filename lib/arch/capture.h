/* arch/capture: the capture program, the small bounded program a jump trampoline runs INSIDE
 * the target at each hit (issue 10). lib/expr compiles a probe's value and condition into it
 * (expr.h, diag_expr_capture_compile); each architecture compiles it to machine code inside
 * the trampoline (trampoline.h, diag_tramp_build_capture); lib/capture holds the reference
 * interpreter that defines what every op means, and the reader of the blocks a value program
 * leaves in the ring record (the daemon evaluates the expression again from them, so both paths
 * render alike). Pure data and constants; owns no code.
 *
 * Machine. A stack of u64, at most DIAG_CAP_MAX_STACK deep at every op (the compiler checks;
 * diag_cap_check verifies). Ops run in order; jumps go forward only, so every program ends
 * within n ops. Memory is read only by LOAD, STREQ and the SAVE ops; a read of an unmapped or
 * protected address is a fault: the program stops there (arch: the load's fault is repaired to
 * the trampoline's landing, see trampoline.h). Nothing a program does can write the target's
 * memory outside the record it fills.
 *
 * Two kinds of program:
 * - condition: ends with DIAG_CAP_END popping the truth; zero, a fault or an abort mean "no
 *   record" (the hit is still counted);
 * - value: its SAVE ops append blocks to the record's payload (format below); DIAG_CAP_END with
 *   an empty stack. A fault stops it: the record is still published, flagged DIAG_REC_FAULT
 *   with the fault address; an abort (division by zero) likewise with DIAG_REC_ABORT. */
#ifndef DIAG_ARCH_CAPTURE_H
#define DIAG_ARCH_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#define DIAG_CAP_MAX_OPS 256
#define DIAG_CAP_MAX_STACK 16
#define DIAG_CAP_MAX_PAYLOAD 8192  /* bytes of blocks one value program may write */
#define DIAG_CAP_MAX_LITS 8
#define DIAG_CAP_MAX_LIT 256       /* bytes of one STREQ literal */

enum diag_cap_opcode {
	DIAG_CAP_END,        /* condition: pop, nonzero = record; value: the stack is empty */
	DIAG_CAP_REG,        /* push the general register at byte offset a of diag_regs, as the
	                      * trampoline saved it (the thread's value at the probed address) */
	DIAG_CAP_FPREG,      /* push the low 64 bits of vector register a (x86-64: xmm a, a < 8) */
	DIAG_CAP_CONST,      /* push imm */
	DIAG_CAP_LOAD,       /* pop addr; push the a-byte (1, 2, 4, 8) little-endian value there,
	                      * zero-extended */
	DIAG_CAP_SEXT,       /* sign-extend the top from its low a bytes (1, 2, 4) */
	DIAG_CAP_ZEXT,       /* keep the top's low a bytes (1, 2, 4) */
	/* binary: pop b, pop a, push a OP b (64-bit wrap-around; shifts by b & 63) */
	DIAG_CAP_ADD, DIAG_CAP_SUB, DIAG_CAP_MUL, DIAG_CAP_AND, DIAG_CAP_OR, DIAG_CAP_XOR,
	DIAG_CAP_SHL, DIAG_CAP_SHR, DIAG_CAP_SAR,
	/* division: b == 0 aborts the program; INT64_MIN / -1 gives INT64_MIN (rem 0) */
	DIAG_CAP_DIVS, DIAG_CAP_DIVU, DIAG_CAP_REMS, DIAG_CAP_REMU,
	/* comparisons: pop b, pop a, push 1 or 0 */
	DIAG_CAP_EQ, DIAG_CAP_NE, DIAG_CAP_LTS, DIAG_CAP_LES, DIAG_CAP_GTS, DIAG_CAP_GES,
	DIAG_CAP_LTU, DIAG_CAP_LEU, DIAG_CAP_GTU, DIAG_CAP_GEU,
	/* unary on the top */
	DIAG_CAP_NEG, DIAG_CAP_NOT /* bitwise */, DIAG_CAP_LNOT /* 1 if zero else 0 */,
	/* control: a = index of the op to continue at, > this op's index */
	DIAG_CAP_JMP, DIAG_CAP_JZ /* pop; jump if zero */, DIAG_CAP_JNZ /* pop; jump if not */,
	DIAG_CAP_DROP,       /* pop */
	DIAG_CAP_DUP,        /* push the top again */
	/* pop addr; push 1 if the C string there equals literal a (prog->lits[a], compared up to
	 * and including its NUL, never reading past the first difference), else 0 */
	DIAG_CAP_STREQ,
	/* value programs only: append one block to the payload */
	DIAG_CAP_SAVE_MEM,   /* pop addr; the a bytes there */
	DIAG_CAP_SAVE_MEM_N, /* pop len, pop addr; min(len, a) bytes there (runtime length) */
	DIAG_CAP_SAVE_STR,   /* pop addr; the bytes there up to and including the first NUL, at
	                      * most a bytes */
	DIAG_CAP_SAVE_FPREG, /* vector register a, 16 bytes (kind DIAG_CAP_BLOCK_FPREG) */
	DIAG_CAP_NOPS
};

struct diag_cap_op {
	uint8_t op;          /* enum diag_cap_opcode */
	uint8_t pad[3];
	uint32_t a;
	uint64_t imm;        /* CONST */
};

struct diag_cap_prog {
	struct diag_cap_op ops[DIAG_CAP_MAX_OPS];
	size_t n;
	const char *lits[DIAG_CAP_MAX_LITS];  /* NUL-terminated, owned by the program */
	size_t nlits;
	uint32_t max_payload;  /* value programs: an upper bound of the bytes the SAVE ops write
	                        * (every block's header and padding included) */
};

/* Payload: blocks one after another, each a header then len bytes padded to a multiple of 8.
 * A MEM block holds target memory [addr, addr + len); its len is the bytes actually copied
 * (a string: up to and including its NUL, or the limit). After a fault (DIAG_REC_FAULT) the
 * last block is valid only below the fault address: readers cut it there (diag_cap_snapshot).
 * An FPREG block holds vector register `addr` (16 bytes). */
enum diag_cap_block_kind { DIAG_CAP_BLOCK_MEM = 1, DIAG_CAP_BLOCK_FPREG = 2 };

struct diag_cap_block {
	uint64_t addr;
	uint32_t len;
	uint16_t kind;
	uint16_t pad;
};
_Static_assert(sizeof(struct diag_cap_block) == 16, "capture block header");

/* Bytes a block of len data bytes takes in the payload. */
static inline uint32_t diag_cap_block_bytes(uint32_t len)
{
	return (uint32_t)sizeof(struct diag_cap_block) + ((len + 7u) & ~7u);
}

#endif
