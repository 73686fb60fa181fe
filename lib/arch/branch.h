/* arch/branch: what a function's code says about jumps into a range, so a multi-byte patch is
 * only placed where no direct branch lands inside it, and where a function's exits are. The
 * arch-neutral interface, implemented by lib/arch/<arch>/branch.c. Reads only the bytes it is
 * given. */
#ifndef DIAG_ARCH_BRANCH_H
#define DIAG_ARCH_BRANCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Linear sweep of code (len bytes at runtime address addr): returns 1 when a direct jump,
 * conditional branch, loop or call targets an address in (lo, hi), 0 when none does, -DIAG_E_PARSE
 * when the bytes do not decode as one instruction stream (the caller must then assume the worst). */
int diag_branch_into(const uint8_t *code, size_t len, uint64_t addr, uint64_t lo, uint64_t hi);

/* The exits of a function body (code: len bytes at runtime address addr): every return and
 * every direct jump leaving [addr, addr+len) (a tail call). Indirect jumps are not counted
 * (jump tables stay inside the function). Writes up to cap addresses; returns how many exits
 * there are (may exceed cap), or -DIAG_E_PARSE when the bytes do not decode. */
int diag_function_exits(const uint8_t *code, size_t len, uint64_t addr, uint64_t *exits,
			size_t cap);

/* Where an exit trampoline (trampoline.h, DIAG_TRAMP_EXIT) can go for one exit of a function
 * (issue 10): the patch must start at an instruction boundary `start` <= term, cover
 * [start, term + term_len) with at least the jump's DIAG_TRAMP_PATCH_LEN bytes, hold only
 * instructions that can be relocated before the terminator, and no direct branch of the function
 * may land in (start, term + term_len) (a branch to start itself is fine: it runs the patch).
 * Chooses the latest such start. */
struct diag_exit_plan {
	uint64_t term;             /* the ret / tail-call jmp */
	uint64_t start;            /* where the patch starts (valid when why[0] == 0) */
	uint32_t term_len;
	bool tail_call;            /* term jumps to another function (it returns in our stead) */
	char why[96];              /* empty: a jump fits; else why this exit needs an int3 */
};

/* Plan every exit of the function (code: len bytes at runtime address addr), up to cap of
 * them. Returns the number of exits (may exceed cap) or -DIAG_E_PARSE. */
int diag_exit_plans(const uint8_t *code, size_t len, uint64_t addr, struct diag_exit_plan *out,
		    size_t cap);

#endif
