/* arch/x86_64/tramp_internal: what the two trampoline builders of lib/arch/x86_64/ share (v1
 * in trampoline.c, capture trampolines in tramp_capture.c): decoding the whole instructions a
 * patch displaces. Prefix xt_. */
#ifndef DIAG_ARCH_X86_64_TRAMP_INTERNAL_H
#define DIAG_ARCH_X86_64_TRAMP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "arch/insn.h"
#include "arch/trampoline.h"

struct xt_displaced {
	struct diag_insn insns[DIAG_TRAMP_MAX_INSNS];
	size_t n;
	size_t len;
};

/* Decode the whole instructions from code (avail bytes at runtime address addr) until they
 * cover at least min_len bytes. Returns 0, -DIAG_E_RELOC (fewer than min_len bytes, or more
 * than DIAG_TRAMP_MAX_INSNS instructions), or diag_insn_decode's errors. */
int xt_decode_displaced(uint64_t addr, const uint8_t *code, size_t avail, size_t min_len,
			struct xt_displaced *d, struct diag_error *err);

#endif
