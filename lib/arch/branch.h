/* arch/branch: what a function's code says about jumps into a range, so a multi-byte patch is
 * only placed where no direct branch lands inside it, and where a function's exits are. The
 * arch-neutral interface, implemented by lib/arch/<arch>/branch.c. Reads only the bytes it is
 * given. */
#ifndef DIAG_ARCH_BRANCH_H
#define DIAG_ARCH_BRANCH_H

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

#endif
