/* arch/trampoline: the jump trampolines of the in-process fast path. A probed function's
 * first whole instructions (at least DIAG_TRAMP_PATCH_LEN bytes) are replaced by a jump to a
 * trampoline that records the hit into a ring in the target's memory (ring.h), restores every
 * register and the flags, runs the relocated displaced instructions and jumps back. No trap,
 * no stop, one gettid syscall. The arch-neutral interface, implemented by
 * lib/arch/<arch>/trampoline.c from its reviewed template (x86-64: trampoline_template.S).
 * Owns building the trampoline bytes and mapping addresses inside it; never reads or writes a
 * process, never decides where the trampoline or the ring live. */
#ifndef DIAG_ARCH_TRAMPOLINE_H
#define DIAG_ARCH_TRAMPOLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/capture.h"
#include "arch/regs.h"
#include "util/error.h"

#define DIAG_TRAMP_PATCH_LEN 5     /* the jump over the probed address (x86-64: jmp rel32) */
#define DIAG_TRAMP_MAX 288         /* bytes a trampoline can need */
#define DIAG_TRAMP_MAX_INSNS 5     /* displaced instructions: 5 bytes need at most 5 */
#define DIAG_TRAMP_CODE_AVAIL 19   /* bytes of `code` that always suffice: 4 + a 15-byte insn */

/* Where a trampoline records a hit: the ring (ring.h) and the site, whose u64 hit counter is at
 * addr + diag_ring_counter_offset(mask, site) (the mapping is DIAG_RING_MAP_BYTES long). */
struct diag_tramp_ring {
	uint64_t addr;             /* runtime address of the ring header */
	uint64_t mask;             /* capacity - 1, capacity a power of two */
	uint32_t site;             /* 1 .. DIAG_RING_MAX_SITES - 1 */
};

/* Build the trampoline for a probe at `addr` whose first bytes `code` (avail bytes; pass
 * DIAG_TRAMP_CODE_AVAIL, or fewer only when the function ends sooner) will be overwritten by a
 * DIAG_TRAMP_PATCH_LEN-byte jump. Writes to out (cap >= *len; DIAG_TRAMP_MAX always suffices)
 * the code that lives at runtime address tramp_addr: count the hit (atomic increment of the
 * site's counter, even when the ring is full), record it into the ring, then the displaced
 * instructions relocated (whole instructions covering >= DIAG_TRAMP_PATCH_LEN bytes,
 * pc-relative operands re-aimed), then a jump back to addr + *patched_len. Also returns the
 * patch in jmp (x86-64: e9 rel32 to tramp_addr) and *patched_len (bytes replaced, x86-64:
 * 5..19).
 * The caller writes out to tramp_addr, then, with every thread stopped and none inside
 * (addr, addr + patched_len), writes jmp over addr and leaves the other
 * patched_len - DIAG_TRAMP_PATCH_LEN bytes as they are (never executed). The caller must also
 * know that nothing branches into (addr, addr + patched_len) (a function entry is safe unless
 * a loop jumps back to it).
 * Returns 0; -DIAG_E_RELOC naming the instruction when a displaced instruction transfers control
 * or cannot be copied, or the trampoline is out of reach of the jump from addr;
 * -DIAG_E_PARSE when the bytes do not decode or end inside an instruction; -ENOSPC when cap is
 * too small; -EINVAL on bad arguments (site out of range, mask + 1 not a power of two).
 * Outputs are written only on success. */
int diag_tramp_build_counted(uint64_t addr, const uint8_t *code, size_t avail, uint64_t tramp_addr,
			     const struct diag_tramp_ring *ring, uint8_t *out, size_t cap, size_t *len,
			     uint8_t jmp[DIAG_TRAMP_PATCH_LEN], size_t *patched_len,
			     struct diag_error *err);

/* The same for a ring mapped without site counters (DIAG_RING_BYTES): the hit is counted into
 * the header's `hits`, shared by every such site; site is any u32. Kept for callers not yet on
 * diag_tramp_build_counted. */
int diag_tramp_build(uint64_t addr, const uint8_t *code, size_t avail, uint64_t tramp_addr,
		     uint64_t ring_addr, uint32_t site, uint8_t *out, size_t cap, size_t *len,
		     uint8_t jmp[DIAG_TRAMP_PATCH_LEN], size_t *patched_len, struct diag_error *err);

/* Where things are inside one built trampoline, for detach and for mapping a thread's pc. */
struct diag_tramp_layout {
	uint64_t addr;             /* probed address */
	uint64_t tramp_addr;
	size_t patched_len;
	size_t reloc_off;          /* the relocated copies start here (end of the recording code) */
	size_t back_off;           /* the jump back to addr + patched_len */
	size_t len;                /* whole trampoline */
	uint32_t record_bytes;     /* a capture trampoline: the ring bytes each hit's record takes
	                            * (0: it records nothing, or not a capture trampoline) */
	size_t n_insns;
	struct {
		uint8_t orig_off;  /* offset of the displaced instruction from addr */
		uint16_t copy_off; /* offset of its relocated copy from tramp_addr (a capture
		                    * trampoline's copies follow more than 255 bytes of code) */
	} insns[DIAG_TRAMP_MAX_INSNS];
};

/* The layout diag_tramp_build produces for the same addr, code, avail and tramp_addr (ring and
 * site do not change it). Returns 0 or the errors of diag_tramp_build. */
int diag_tramp_layout(uint64_t addr, const uint8_t *code, size_t avail, uint64_t tramp_addr,
		      struct diag_tramp_layout *out, struct diag_error *err);

enum diag_tramp_where {
	DIAG_TRAMP_OUTSIDE,        /* pc is not in this trampoline */
	DIAG_TRAMP_RECORDING,      /* in the recording code: registers and sp are not the
	                            * thread's own yet; run it (step, or a breakpoint at reloc_off)
	                            * until pc >= tramp_addr + reloc_off, then ask again */
	DIAG_TRAMP_RELOCATED,      /* at a relocated copy or the jump back: *orig is the original
	                            * address with the same effect once the original bytes are back */
	DIAG_TRAMP_MID_INSN,       /* inside an instruction of the copies: cannot happen for a
	                            * stopped thread, reported rather than guessed */
};

/* Classify a stopped thread's pc against trampoline l; *orig is written for RELOCATED only. */
enum diag_tramp_where diag_tramp_locate(const struct diag_tramp_layout *l, uint64_t pc,
					uint64_t *orig);

/* The recording code, for review and tests: bytes (with placeholder immediates), the source
 * they are assembled from and the offsets of the four immediates patched per probe. */
struct diag_tramp_template {
	const char *source;        /* the reviewed template, relative to the source tree */
	const uint8_t *bytes;
	size_t len;
	size_t imm_rip;            /* u64: probed address (the pc a record reports) */
	size_t imm_counter;        /* u64: address of the site's hit counter */
	size_t imm_ring;           /* u64: ring header address + 128 */
	size_t imm_site;           /* u32: site id */
};
const struct diag_tramp_template *diag_tramp_template(void);

/* ==== Capture trampolines (issue 10) ====
 * A trampoline that runs capture programs (arch/capture.h) and records into a v2 ring
 * (ring.h, "Ring v2"): no system call on the hit path (the thread is named by its thread
 * pointer, the time is the TSC). Each lives alone in a DIAG_TRAMP_SLOT-aligned slot that
 * starts with a struct diag_tramp_slot_header (data, never executed: the patch jumps to
 * slot + DIAG_TRAMP_SLOT_CODE). Two kinds:
 * - DIAG_TRAMP_ENTRY: at addr (a function entry, a line, FUNC+OFF): count, record with the
 *   registers at addr, run the displaced instructions relocated, jump back;
 * - DIAG_TRAMP_EXIT: the patched bytes [addr, term + term_len) end with the function's
 *   terminating instruction at term (ret, or a tail-call jmp): run the relocated instructions
 *   before term, then count and record (registers as at term: for a ret, sp points at the
 *   return address and the result registers are set; the record is flagged DIAG_REC_EXIT),
 *   then perform the terminator itself (ret, or the jump re-aimed).
 * Nothing is written to the target's stack beyond the red zone's far side and the
 * trampoline's own frame, which is gone before the target's code runs again. */
#define DIAG_TRAMP_SLOT 4096        /* slot size and alignment */
#define DIAG_TRAMP_SLOT_CODE 64     /* the code starts here; the header is before it */
#define DIAG_TRAMP_SLOT_MAGIC 0x6f6c73706d617274ULL /* xor the slot address */

enum diag_tramp_kind { DIAG_TRAMP_ENTRY, DIAG_TRAMP_EXIT };

/* The first bytes of every capture trampoline's slot. The fault repair (the tracer at a
 * SIGSEGV/SIGBUS stop, or the in-target guard handler when the daemon is gone) finds the slot
 * of a faulting pc as pc & ~(DIAG_TRAMP_SLOT - 1) and repairs only when magic matches and the
 * pc lies in one of the two program ranges. */
struct diag_tramp_slot_header {
	uint64_t magic;            /* DIAG_TRAMP_SLOT_MAGIC ^ slot address; 0 once retired */
	uint16_t cond_lo, cond_hi; /* offsets from the slot: the condition program's code */
	uint16_t value_lo, value_hi; /* the value program's code */
	uint16_t cond_landing;     /* a fault in the condition resumes here: no record */
	uint16_t value_landing;    /* a fault in the value resumes here: the record is published
	                            * with DIAG_REC_FAULT and the fault address */
	uint16_t tp_load;          /* nonzero: the thread pointer's load (x86-64: mov from %fs:0),
	                            * which faults in a thread without TLS yet (early ld.so); the
	                            * repair resumes at tp_resume with the thread pointer 0 (0: the
	                            * load lies in the condition's range instead: no record) */
	uint16_t tp_resume;
	uint64_t site;             /* the site id, for the reader of a core file */
	uint64_t reserved[4];
};
_Static_assert(sizeof(struct diag_tramp_slot_header) == DIAG_TRAMP_SLOT_CODE,
	       "slot header size");

struct diag_tramp_capture {
	enum diag_tramp_kind kind;
	uint64_t addr;             /* first patched byte */
	uint64_t term;             /* EXIT: the terminating instruction (addr <= term) */
	const uint8_t *code;       /* the original bytes from addr */
	size_t avail;              /* ENTRY: as diag_tramp_build; EXIT: through the terminator */
	uint64_t slot;             /* runtime address of the slot, DIAG_TRAMP_SLOT-aligned */
	uint64_t ring;             /* runtime address of the v2 ring mapping (control block) */
	uint32_t site;             /* 1 .. DIAG_RING_MAX_SITES - 1 */
	bool fsgsbase;             /* the thread pointer by rdfsbase (AT_HWCAP2 FSGSBASE), else
	                            * from %fs:0 (the TCB's self pointer by the x86-64 ABI) */
	const struct diag_cap_prog *cond;  /* NULL: every hit records */
	const struct diag_cap_prog *value; /* NULL: registers only, empty payload */
	bool count_only;           /* ENTRY: the site's counter is the whole hit (no clock, no
	                            * record); needs cond and value NULL */
	bool retsite;              /* at a return address (ENTRY, or EXIT when a jmp is there):
	                            * records flagged DIAG_REC_EXIT | DIAG_REC_RETSITE (the
	                            * return of the call before addr) */
	bool slim;                 /* slim records (arch/ring.h, DIAG_REC_SLIM): only the general
	                            * registers in slim_regs and the stack pointer */
	uint32_t slim_regs;        /* diag_regs words, bit off / 8 (diag_expr_capture.regs) */
};

/* Build the slot's whole content (header + code) into out (cap >= DIAG_TRAMP_SLOT suffices;
 * *len bytes, <= DIAG_TRAMP_SLOT) and the jump to write over addr. Returns 0; -DIAG_E_RELOC
 * naming the instruction; -DIAG_E_LIMIT when the programs do not fit the slot; -DIAG_E_INVALID
 * for a program diag_cap_check refuses; the other errors of diag_tramp_build. The caller writes
 * the slot first, then the jump (every thread stopped and out of the patched bytes). *layout
 * describes the trampoline for detach and diag_tramp_locate (for EXIT, the relocated copies
 * map back to their originals the same way). */
int diag_tramp_build_capture(const struct diag_tramp_capture *c, uint8_t *out, size_t cap,
			     size_t *len, uint8_t jmp[DIAG_TRAMP_PATCH_LEN], size_t *patched_len,
			     struct diag_tramp_layout *layout, struct diag_error *err);

/* A fault at pc in the slot whose header is h (at runtime address slot): when pc lies in one
 * of its program ranges, edit r to resume at the matching landing with the fault address where
 * the landing expects it, and return true. False: not ours (deliver the signal).
 * The repair, exactly (the in-target guard, arch/guard.h, does the same to a ucontext, so both
 * must agree): pc - slot == tp_load (when nonzero) resumes at tp_resume with the thread pointer
 * register (x86-64: r14) 0; else a range is [lo, hi) in offsets from the slot, the condition's
 * checked first; a landing outside [DIAG_TRAMP_SLOT_CODE, DIAG_TRAMP_SLOT) is refused (false);
 * the pc becomes slot + landing and nothing else changes: every other register and the flags
 * stay as at the fault. The landing finds the address that could not be read in its own registers (a program
 * reads memory only through an address register, byte by byte where it may cross into an
 * unreadable page), not in fault_addr: si_addr is 0 for a non-canonical address (#GP). */
bool diag_tramp_fault_repair(diag_regs *r, uint64_t slot, const struct diag_tramp_slot_header *h,
			     uint64_t fault_addr);

#endif
