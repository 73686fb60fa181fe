/* arch/insn: decoding of one machine instruction and building of its execute-out-of-line
 * slot, the relocated copy that runs in the diagnose page while the breakpoint stays on the
 * original; relocating instructions into a trampoline, the plain jump, and the breakpoint
 * instruction's bytes. The arch-neutral interface, implemented by lib/arch/<arch>/insn.c
 * (x86-64: decoding with Zydis). Owns only byte-level analysis and encoding; it never reads or
 * writes target memory and never decides where the slot lives. */
#ifndef DIAG_ARCH_INSN_H
#define DIAG_ARCH_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/regs.h"
#include "util/error.h"

#define DIAG_XOL_SLOT_SIZE 64  /* bytes of one out-of-line slot (a power of two) */
#define DIAG_INSN_MAX_LEN 15   /* longest instruction (x86-64: 15 bytes) */

/* The breakpoint instruction, DIAG_ARCH_BREAK_LEN bytes (x86-64: int3, 0xcc). */
extern const uint8_t diag_insn_break[DIAG_ARCH_BREAK_LEN];

/* The bytes before a trap's pc that diag_insn_is_long_trap looks at (x86-64: 2), and whether
 * they are a trap instruction other than diag_insn_break that raises the same trap (x86-64:
 * `int 3` encoded cd 03), whose pc is not one break past its address. */
size_t diag_insn_trap_context_len(void);
bool diag_insn_is_long_trap(const uint8_t *before);

struct diag_insn {
	uint64_t addr;       /* runtime address of the instruction */
	uint8_t len;
	uint8_t bytes[DIAG_INSN_MAX_LEN];
	char text[96];       /* disassembly (x86-64: Intel syntax), for messages */
};

/* Decode one instruction from code (avail bytes readable) located at runtime address addr.
 * Returns 0, or -DIAG_E_PARSE with a message on undecodable bytes, -EINVAL on bad arguments. */
int diag_insn_decode(const uint8_t *code, size_t avail, uint64_t addr, struct diag_insn *out,
		     struct diag_error *err);

/* Build the out-of-line slot for insn, to live at runtime address slot_addr: bytes that, executed
 * at slot_addr, have exactly the effect of insn executed at insn->addr, then continue at
 * insn->addr + insn->len (or wherever the instruction transfers control). Writes
 * *len <= DIAG_XOL_SLOT_SIZE bytes to out (out must hold DIAG_XOL_SLOT_SIZE bytes).
 * Returns 0, or -DIAG_E_RELOC with a message naming the instruction text, its address and why
 * (x86-64: int3 already there, rip-relative operand out of reach of the out-of-line page,
 * xbegin, far branch, ...), or -DIAG_E_PARSE if insn->bytes do not decode. */
int diag_xol_build(const struct diag_insn *insn, uint64_t slot_addr, uint8_t *out, size_t *len,
		   struct diag_error *err);

/* Relocate insn as straight-line code at runtime address `at`, with no jump back: the copy falls
 * through to whatever follows it (several instructions relocated back to back, as in a jump
 * trampoline). A pc-relative (x86-64: rip-relative) operand is re-aimed at the same absolute
 * address; the copy has the same length as the original. Writes *len <= cap bytes to out. Returns
 * 0, or -DIAG_E_RELOC with a message naming the instruction when it transfers control or depends
 * on where it runs (branch, call, ret, syscall, interrupt, breakpoint, ...) or its pc-relative
 * operand is out of reach, -ENOSPC when cap is too small, -DIAG_E_PARSE if insn->bytes do not
 * decode. */
int diag_insn_relocate_linear(const struct diag_insn *insn, uint64_t at, uint8_t *out, size_t cap,
			      size_t *len, struct diag_error *err);

#define DIAG_INSN_JMP_MAX 14 /* longest jump (x86-64: jmp [rip+0]; dq target) */

/* Encode a jump from runtime address `at` to target touching no register, flag or stack slot
 * (x86-64: jmp rel32 when in reach, else jmp [rip+0] followed by the absolute address).
 * Writes *len <= cap bytes to out. Returns 0 or -ENOSPC. */
int diag_insn_emit_jmp(uint64_t at, uint64_t target, uint8_t *out, size_t cap, size_t *len);

#endif
