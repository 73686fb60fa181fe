/* breakpoint: the breakpoints (x86-64: int3) and jump patches of one address space. Owns the
 * table by address (several probes may share one breakpoint), the relocated copy of each
 * displaced instruction in an execute-out-of-line slot, and tombstones of removed breakpoints
 * so that a thread that trapped just before a removal is resumed correctly. Never lifts a
 * breakpoint to single-step: it stays until the breakpoint is removed, so no thread ever runs
 * the probed code unseen. Arch-neutral: instructions, slots and jumps come from lib/arch/. */
#ifndef DIAG_BP_BREAKPOINT_H
#define DIAG_BP_BREAKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/insn.h"
#include "arch/trampoline.h"
#include "bp/xol_page.h"
#include "ptrace/tracee.h"
#include "util/error.h"
#include "util/u64map.h"

struct diag_bp {
	uint64_t addr;
	bool jump;             /* fast path: a jump to a trampoline instead of a breakpoint */
	uint8_t patched_len;   /* bytes replaced: DIAG_ARCH_BREAK_LEN, or the displaced
				* instructions of a jump */
	uint8_t orig_bytes[24];/* what the patch replaced */
	uint8_t patch_bytes[DIAG_TRAMP_PATCH_LEN]; /* what the patch wrote there: the breakpoint,
				* or the jump (the rest of the displaced bytes is never written,
				* so never restored) */
	uint8_t written_len;   /* DIAG_ARCH_BREAK_LEN or DIAG_TRAMP_PATCH_LEN: only these bytes
				* go back, and only while they still read as patch_bytes */
	uint32_t site_id;      /* jump: the id the trampoline records */
	uint64_t tramp;        /* jump: runtime address of the trampoline */
	uint64_t slot_page;    /* capture jump: its DIAG_TRAMP_SLOT page (0: a v1 trampoline);
				* retired (header magic zeroed) when the jump is taken out */
	uint8_t orig;          /* the first byte the patch replaced */
	uint64_t slot;         /* runtime address of the out-of-line copy */
	uint8_t slot_len;
	struct diag_insn insn; /* the displaced instruction */
	void **users;          /* the engine's per-probe sites at this address */
	size_t nusers, capusers;
};

struct diag_slot_info {
	uint64_t addr;  /* the original instruction */
	uint8_t len;
	bool plain;     /* the slot starts with a byte-identical copy of the instruction */
};

/* Told around every patch (int3 or jump): arm before its bytes are written (the safety
 * handler's table must cover an int3 first; the journal must know a patch before it exists),
 * disarmed after the original bytes are back. arm may refuse (negative: nothing is written). */
struct diag_bp;
struct diag_bp_hooks {
	int (*arm)(void *arg, const struct diag_bp *bp);
	void (*disarmed)(void *arg, const struct diag_bp *bp);
	void *arg;
};

struct diag_bptable {
	struct diag_bp_hooks hooks;    /* may be all NULL */
	struct diag_u64map by_addr;    /* addr -> struct diag_bp */
	struct diag_u64map tombstones; /* addr -> (void *)1: removed while attached */
	struct diag_u64map slots;      /* slot addr -> struct diag_slot_info, kept after removal */
	struct diag_xol xol;
};

void diag_bptable_init(struct diag_bptable *t);
/* Copy for a forked child: same addresses, same bytes in its copied memory; users are left
 * empty for the caller to fill. */
int diag_bptable_clone(struct diag_bptable *dst, const struct diag_bptable *src);
/* Forget everything without touching the target (it exec'd or exited). */
void diag_bptable_release(struct diag_bptable *t);

/* Find or create the breakpoint at addr: decode and relocate the instruction, write the slot, then
 * the breakpoint instruction. `stopped` is a stopped thread used to map a slot page if needed. On
 * error the target is unchanged and err names the instruction. */
int diag_bp_get(struct diag_bptable *t, struct diag_proc *p, struct diag_thread *stopped,
		uint64_t addr, struct diag_bp **out, struct diag_error *err);
/* Create a jump (fast-path) breakpoint at addr: the trampoline records hits as `site_id` into
 * the ring at ring_addr. The caller guarantees every thread is stopped, none is inside the
 * bytes that will be replaced, nothing branches into them, and at least `room` bytes of the
 * function follow addr. On error the target is unchanged. */
int diag_bp_make_jump(struct diag_bptable *t, struct diag_proc *p, struct diag_thread *stopped,
		      uint64_t addr, size_t room, uint64_t ring_addr, uint64_t ring_mask,
		      uint32_t site_id, struct diag_bp **out, struct diag_error *err);
/* Create a capture jump at c->addr (arch/trampoline.h, "Capture trampolines"): build the slot
 * for c (c->slot: a page of diag_xol_map_page, c->code the bytes at addr), write it, then
 * the jump. The caller guarantees what diag_bp_make_jump needs. *layout and *hdr: the slot
 * as built (the daemon's own copy: the target's memory may say otherwise later). On error
 * the target is unchanged (the page is the caller's). */
int diag_bp_make_capture(struct diag_bptable *t, struct diag_proc *p,
			 const struct diag_tramp_capture *c, struct diag_bp **out,
			 struct diag_tramp_layout *layout, struct diag_tramp_slot_header *hdr,
			 struct diag_error *err);
/* Build bp's slot again for c (other programs, same address and code) and write it over the
 * old one: every thread stopped and none inside the slot. Fails (nothing written) when the
 * new trampoline would replace other bytes than the jump there does. */
int diag_bp_rebuild_capture(struct diag_proc *p, struct diag_bp *bp,
			    const struct diag_tramp_capture *c, struct diag_tramp_layout *layout,
			    struct diag_tramp_slot_header *hdr, struct diag_error *err);
/* Bytes a jump at addr would replace (so the caller can check threads and branches), or a
 * negative code with err set when the instructions there cannot take a jump. */
int diag_bp_jump_span(struct diag_proc *p, uint64_t addr, size_t room, struct diag_error *err);
/* What taking a patch out did. The original bytes go back only over our own: code the target
 * rewrote since (self-modifying code, a JIT, a hot patcher) is left as the target wrote it. */
enum diag_bp_release {
	DIAG_BP_KEPT = 0,  /* other users remain: the patch stays */
	DIAG_BP_RESTORED,  /* removed, the original bytes are back */
	DIAG_BP_LEFT,      /* removed, but the bytes were no longer ours: left in place */
};
/* Turn a breakpoint back into nothing: restore the original bytes (if still ours) and forget
 * it (jump breakpoints need every thread stopped). Users are not touched. */
enum diag_bp_release diag_bp_destroy(struct diag_bptable *t, struct diag_proc *p,
				     struct diag_bp *bp);
int diag_bp_add_user(struct diag_bp *bp, void *user);
/* Drop a user; when none is left the original bytes are restored (if still ours) and a
 * tombstone kept. */
enum diag_bp_release diag_bp_del_user(struct diag_bptable *t, struct diag_proc *p,
				      struct diag_bp *bp, void *user);
/* Restore every original byte still under our patches (detach); returns how many patches
 * were left in place because the target rewrote them. */
size_t diag_bptable_restore_all(struct diag_bptable *t, struct diag_proc *p);
/* True when the live bytes cur (bp->written_len of them, read at bp->addr) are our patch. */
bool diag_bp_is_ours(const struct diag_bp *bp, const uint8_t *cur);

static inline struct diag_bp *diag_bp_at(const struct diag_bptable *t, uint64_t addr)
{
	return diag_u64map_get(&t->by_addr, addr);
}

/* Where a thread stopped at `pc` inside a slot continues once the slots are gone: for a
 * byte-identical copy, the same offset in the original (so an interrupted syscall restarts
 * correctly). Returns 0 when pc is not in a slot, 1 when the thread must first run out of
 * the slot (it is inside a relocated branch sequence), else the address. */
uint64_t diag_bptable_unslot(const struct diag_bptable *t, uint64_t pc);

#endif
