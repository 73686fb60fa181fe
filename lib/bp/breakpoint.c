/* breakpoint: the breakpoint table, slots and tombstones (see breakpoint.h). Arch-neutral:
 * the breakpoint instruction, the slots and the jumps come from lib/arch/. */
#include "bp/breakpoint.h"

#include "arch/trampoline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/grow.h"

_Static_assert(DIAG_ARCH_BREAK_LEN <= DIAG_TRAMP_PATCH_LEN, "patch_bytes holds a breakpoint");

void diag_bptable_init(struct diag_bptable *t)
{
	t->hooks = (struct diag_bp_hooks){0};
	diag_u64map_init(&t->by_addr);
	diag_u64map_init(&t->tombstones);
	diag_u64map_init(&t->slots);
	t->xol = (struct diag_xol){0};
}

static void bp_free(struct diag_bp *bp)
{
	if (bp) {
		free(bp->users);
		free(bp);
	}
}

void diag_bptable_release(struct diag_bptable *t)
{
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&t->by_addr, &pos, &k, &v))
		bp_free(v);
	diag_u64map_release(&t->by_addr);
	diag_u64map_release(&t->tombstones);
	pos = 0;
	while (diag_u64map_next(&t->slots, &pos, &k, &v))
		free(v);
	diag_u64map_release(&t->slots);
	diag_xol_release(&t->xol);
}

int diag_bptable_clone(struct diag_bptable *dst, const struct diag_bptable *src)
{
	diag_bptable_init(dst);
	int r = diag_xol_clone(&dst->xol, &src->xol);
	size_t pos = 0;
	uint64_t k;
	void *v;
	while (r == 0 && diag_u64map_next(&src->by_addr, &pos, &k, &v)) {
		struct diag_bp *bp = malloc(sizeof(*bp));
		if (!bp) {
			r = -ENOMEM;
			break;
		}
		*bp = *(const struct diag_bp *)v;
		bp->users = NULL;
		bp->nusers = bp->capusers = 0;
		r = diag_u64map_put(&dst->by_addr, k, bp);
		if (r < 0)
			free(bp);
	}
	pos = 0;
	while (r == 0 && diag_u64map_next(&src->tombstones, &pos, &k, &v))
		r = diag_u64map_put(&dst->tombstones, k, v);
	pos = 0;
	while (r == 0 && diag_u64map_next(&src->slots, &pos, &k, &v)) {
		struct diag_slot_info *si = malloc(sizeof(*si));
		if (!si) {
			r = -ENOMEM;
			break;
		}
		*si = *(const struct diag_slot_info *)v;
		if ((r = diag_u64map_put(&dst->slots, k, si)) < 0)
			free(si);
	}
	if (r < 0)
		diag_bptable_release(dst);
	return r;
}

/* Read up to DIAG_INSN_MAX_LEN bytes of code; a short read near the end of a mapping is fine. */
static int read_insn(struct diag_proc *p, uint64_t addr, struct diag_insn *insn,
		     struct diag_error *err)
{
	uint8_t code[DIAG_INSN_MAX_LEN];
	ssize_t n = diag_proc_read(p, addr, code, sizeof(code));
	for (size_t want = sizeof(code) - 1; n <= 0 && want > 0; want--)
		n = diag_proc_read(p, addr, code, want);
	if (n <= 0)
		return diag_error_set(err, n < 0 ? (int)n : -EIO,
				      "cannot read code at 0x%llx: %s", (unsigned long long)addr,
				      strerror(n < 0 ? (int)-n : EIO));
	return diag_insn_decode(code, (size_t)n, addr, insn, err);
}

int diag_bp_get(struct diag_bptable *t, struct diag_proc *p, struct diag_thread *stopped,
		uint64_t addr, struct diag_bp **out, struct diag_error *err)
{
	struct diag_bp *bp = diag_bp_at(t, addr);
	if (bp) {
		*out = bp;
		return 0;
	}
	bp = calloc(1, sizeof(*bp));
	if (!bp)
		return diag_error_set(err, -ENOMEM, "out of memory");
	bp->addr = addr;
	int r = read_insn(p, addr, &bp->insn, err);
	uint8_t slot[DIAG_XOL_SLOT_SIZE];
	size_t slot_len = 0;
	if (r == 0) {
		r = diag_xol_alloc(&t->xol, stopped, addr, DIAG_XOL_SLOT_SIZE, &bp->slot);
		if (r < 0)
			diag_error_set(err, r, "cannot map the out-of-line page near 0x%llx: %s",
				       (unsigned long long)addr, diag_strerror(r));
	}
	if (r == 0)
		r = diag_xol_build(&bp->insn, bp->slot, slot, &slot_len, err);
	if (r == 0 && diag_proc_write(p, bp->slot, slot, slot_len) < 0)
		r = diag_error_set(err, -EIO, "cannot write the out-of-line slot at 0x%llx",
				   (unsigned long long)bp->slot);
	bp->orig = bp->insn.bytes[0];
	memcpy(bp->orig_bytes, bp->insn.bytes, DIAG_ARCH_BREAK_LEN);
	memcpy(bp->patch_bytes, diag_insn_break, DIAG_ARCH_BREAK_LEN);
	bp->written_len = DIAG_ARCH_BREAK_LEN;
	bp->patched_len = DIAG_ARCH_BREAK_LEN;
	bp->slot_len = (uint8_t)slot_len;
	bp->addr = addr;
	if (r == 0 && t->hooks.arm && (r = t->hooks.arm(t->hooks.arg, bp)) < 0)
		diag_error_set(err, r, "cannot protect the breakpoint at 0x%llx: %s",
			       (unsigned long long)addr, diag_strerror(r));
	/* One write, last (x86-64: one byte): a thread sees either the old instruction or the
	 * trap, never a torn one, and the slot is complete before the first trap can send a
	 * thread there. */
	if (r == 0 && diag_proc_write(p, addr, diag_insn_break, DIAG_ARCH_BREAK_LEN) < 0) {
		r = diag_error_set(err, -EIO, "cannot write the breakpoint at 0x%llx",
				   (unsigned long long)addr);
		if (t->hooks.disarmed)
			t->hooks.disarmed(t->hooks.arg, bp);
	}
	struct diag_slot_info *si = r == 0 ? malloc(sizeof(*si)) : NULL;
	if (si) {
		*si = (struct diag_slot_info){addr, bp->insn.len,
					      memcmp(slot, bp->insn.bytes, bp->insn.len) == 0};
		if (diag_u64map_put(&t->slots, bp->slot, si) < 0) {
			free(si);
			si = NULL;
		}
	}
	if (r == 0 && (!si || (r = diag_u64map_put(&t->by_addr, addr, bp)) < 0)) {
		r = diag_error_set(err, -ENOMEM, "out of memory");
		/* the breakpoint is out: undo it */
		diag_proc_write(p, addr, bp->orig_bytes, DIAG_ARCH_BREAK_LEN);
		if (t->hooks.disarmed)
			t->hooks.disarmed(t->hooks.arg, bp);
	}
	if (r < 0) {
		bp_free(bp);
		return r;
	}
	diag_u64map_del(&t->tombstones, addr);
	*out = bp;
	return 0;
}

int diag_bp_add_user(struct diag_bp *bp, void *user)
{
	if (DIAG_GROW(&bp->users, &bp->capusers, bp->nusers + 1) < 0)
		return -ENOMEM;
	bp->users[bp->nusers++] = user;
	return 0;
}

bool diag_bp_is_ours(const struct diag_bp *bp, const uint8_t *cur)
{
	return memcmp(cur, bp->patch_bytes, bp->written_len) == 0;
}

/* The bytes go back only over our own patch: writing them over code the target rewrote since
 * would put stale instructions into a live function. */
static enum diag_bp_release unpatch(struct diag_bptable *t, struct diag_proc *p,
				    struct diag_bp *bp)
{
	uint8_t cur[sizeof(bp->patch_bytes)];
	bool ours = diag_proc_read(p, bp->addr, cur, bp->written_len) == (ssize_t)bp->written_len &&
		    diag_bp_is_ours(bp, cur);
	if (ours)
		diag_proc_write(p, bp->addr, bp->orig_bytes, bp->written_len);
	if (bp->slot_page) { /* retired: no fault repair (in-target guard) trusts it any more */
		uint64_t zero = 0;
		diag_proc_write(p, bp->slot_page, &zero, sizeof(zero));
	}
	if (!bp->jump)
		diag_u64map_put(&t->tombstones, bp->addr, (void *)1);
	if (t->hooks.disarmed)
		t->hooks.disarmed(t->hooks.arg, bp);
	return ours ? DIAG_BP_RESTORED : DIAG_BP_LEFT;
}

enum diag_bp_release diag_bp_destroy(struct diag_bptable *t, struct diag_proc *p,
				     struct diag_bp *bp)
{
	enum diag_bp_release r = unpatch(t, p, bp);
	diag_u64map_del(&t->by_addr, bp->addr);
	bp_free(bp);
	return r;
}

static int read_code(struct diag_proc *p, uint64_t addr, uint8_t *code, size_t want,
		     struct diag_error *err)
{
	ssize_t n = diag_proc_read(p, addr, code, want);
	if (n != (ssize_t)want)
		return diag_error_set(err, -EIO, "cannot read code at 0x%llx",
				      (unsigned long long)addr);
	return 0;
}

int diag_bp_jump_span(struct diag_proc *p, uint64_t addr, size_t room, struct diag_error *err)
{
	uint8_t code[DIAG_TRAMP_CODE_AVAIL];
	size_t avail = room < sizeof(code) ? room : sizeof(code);
	struct diag_tramp_layout l;
	int r = read_code(p, addr, code, avail, err);
	if (r == 0)
		r = diag_tramp_layout(addr, code, avail, addr, &l, err);
	return r < 0 ? r : (int)l.patched_len;
}

int diag_bp_make_jump(struct diag_bptable *t, struct diag_proc *p, struct diag_thread *stopped,
		      uint64_t addr, size_t room, uint64_t ring_addr, uint64_t ring_mask,
		      uint32_t site_id, struct diag_bp **out, struct diag_error *err)
{
	uint8_t code[DIAG_TRAMP_CODE_AVAIL], tramp[DIAG_TRAMP_MAX], jmp[DIAG_TRAMP_PATCH_LEN];
	size_t avail = room < sizeof(code) ? room : sizeof(code), len = 0, patched = 0;
	struct diag_bp *bp = calloc(1, sizeof(*bp));
	if (!bp)
		return diag_error_set(err, -ENOMEM, "out of memory");
	int r = read_code(p, addr, code, avail, err);
	if (r == 0 && (r = diag_xol_alloc(&t->xol, stopped, addr, DIAG_TRAMP_MAX, &bp->tramp)) < 0)
		diag_error_set(err, r, "cannot map the trampoline page near 0x%llx: %s",
			       (unsigned long long)addr, diag_strerror(r));
	struct diag_tramp_ring ring = {.addr = ring_addr, .mask = ring_mask, .site = site_id};
	if (r == 0) /* the site's counter makes its hit count exact even when records drop */
		r = diag_tramp_build_counted(addr, code, avail, bp->tramp, &ring, tramp,
					     sizeof(tramp), &len, jmp, &patched, err);
	if (r == 0 && diag_proc_write(p, bp->tramp, tramp, len) < 0)
		r = diag_error_set(err, -EIO, "cannot write the trampoline at 0x%llx",
				   (unsigned long long)bp->tramp);
	bp->addr = addr;
	bp->jump = true;
	bp->site_id = site_id;
	bp->patched_len = (uint8_t)patched;
	memcpy(bp->orig_bytes, code, patched);
	memcpy(bp->patch_bytes, jmp, sizeof(jmp));
	bp->written_len = sizeof(jmp);
	bp->orig = code[0];
	if (r == 0 && (r = diag_u64map_put(&t->by_addr, addr, bp)) < 0)
		diag_error_set(err, r, "out of memory");
	if (r == 0 && t->hooks.arm && (r = t->hooks.arm(t->hooks.arg, bp)) < 0) {
		diag_u64map_del(&t->by_addr, addr);
		diag_error_set(err, r, "cannot record the jump at 0x%llx", (unsigned long long)addr);
	}
	if (r == 0 && diag_proc_write(p, addr, jmp, sizeof(jmp)) < 0) {
		diag_u64map_del(&t->by_addr, addr);
		if (t->hooks.disarmed)
			t->hooks.disarmed(t->hooks.arg, bp);
		r = diag_error_set(err, -EIO, "cannot write the jump at 0x%llx",
				   (unsigned long long)addr);
	}
	if (r < 0) {
		bp_free(bp);
		return r;
	}
	*out = bp;
	return 0;
}

/* Build c's slot into a page-sized buffer; the jump and the bytes it replaces. */
static int build_slot(const struct diag_tramp_capture *c, uint8_t *slot, size_t *len,
		      uint8_t jmp[DIAG_TRAMP_PATCH_LEN], size_t *patched,
		      struct diag_tramp_layout *layout, struct diag_error *err)
{
	memset(slot, 0, DIAG_TRAMP_SLOT);
	int r = diag_tramp_build_capture(c, slot, DIAG_TRAMP_SLOT, len, jmp, patched, layout, err);
	if (r == 0 && (*len < sizeof(struct diag_tramp_slot_header) || *len > DIAG_TRAMP_SLOT ||
		       *patched < DIAG_TRAMP_PATCH_LEN || *patched > c->avail || *patched > 24))
		r = diag_error_set(err, -DIAG_E_INVALID, "0x%llx: the trampoline built is malformed",
				   (unsigned long long)c->addr);
	return r;
}

int diag_bp_make_capture(struct diag_bptable *t, struct diag_proc *p,
			 const struct diag_tramp_capture *c, struct diag_bp **out,
			 struct diag_tramp_layout *layout, struct diag_tramp_slot_header *hdr,
			 struct diag_error *err)
{
	uint8_t *slot = malloc(DIAG_TRAMP_SLOT), jmp[DIAG_TRAMP_PATCH_LEN];
	struct diag_bp *bp = calloc(1, sizeof(*bp));
	size_t len = 0, patched = 0;
	struct diag_tramp_layout l;
	int r = slot && bp ? build_slot(c, slot, &len, jmp, &patched, &l, err)
			   : diag_error_set(err, -ENOMEM, "out of memory");
	/* the whole slot, header first, before any jump can lead a thread there */
	if (r == 0 && diag_proc_write(p, c->slot, slot, len) != (ssize_t)len)
		r = diag_error_set(err, -EIO, "cannot write the trampoline slot at 0x%llx",
				   (unsigned long long)c->slot);
	if (r == 0) {
		bp->addr = c->addr;
		bp->jump = true;
		bp->site_id = c->site;
		bp->slot_page = c->slot;
		bp->tramp = c->slot + DIAG_TRAMP_SLOT_CODE;
		bp->patched_len = (uint8_t)patched;
		memcpy(bp->orig_bytes, c->code, patched);
		memcpy(bp->patch_bytes, jmp, sizeof(jmp));
		bp->written_len = sizeof(jmp);
		bp->orig = c->code[0];
		if ((r = diag_u64map_put(&t->by_addr, c->addr, bp)) < 0)
			diag_error_set(err, r, "out of memory");
	}
	if (r == 0 && t->hooks.arm && (r = t->hooks.arm(t->hooks.arg, bp)) < 0) {
		diag_u64map_del(&t->by_addr, c->addr);
		diag_error_set(err, r, "cannot record the jump at 0x%llx", (unsigned long long)c->addr);
	}
	if (r == 0 && diag_proc_write(p, c->addr, jmp, sizeof(jmp)) != (ssize_t)sizeof(jmp)) {
		diag_u64map_del(&t->by_addr, c->addr);
		if (t->hooks.disarmed)
			t->hooks.disarmed(t->hooks.arg, bp);
		r = diag_error_set(err, -EIO, "cannot write the jump at 0x%llx",
				   (unsigned long long)c->addr);
	}
	if (r == 0) {
		memcpy(hdr, slot, sizeof(*hdr));
		*layout = l;
		*out = bp;
	} else {
		bp_free(bp);
	}
	free(slot);
	return r;
}

int diag_bp_rebuild_capture(struct diag_proc *p, struct diag_bp *bp,
			    const struct diag_tramp_capture *c, struct diag_tramp_layout *layout,
			    struct diag_tramp_slot_header *hdr, struct diag_error *err)
{
	uint8_t *slot = malloc(DIAG_TRAMP_SLOT), jmp[DIAG_TRAMP_PATCH_LEN];
	size_t len = 0, patched = 0;
	struct diag_tramp_layout l;
	int r = slot ? build_slot(c, slot, &len, jmp, &patched, &l, err)
		     : diag_error_set(err, -ENOMEM, "out of memory");
	if (r == 0 && (c->slot != bp->slot_page || patched != bp->patched_len ||
		       memcmp(jmp, bp->patch_bytes, sizeof(jmp)) != 0))
		r = diag_error_set(err, -DIAG_E_STATE, "0x%llx: the new trampoline needs another "
				   "patch", (unsigned long long)c->addr);
	if (r == 0 && diag_proc_write(p, c->slot, slot, len) != (ssize_t)len)
		r = diag_error_set(err, -EIO, "cannot write the trampoline slot at 0x%llx",
				   (unsigned long long)c->slot);
	if (r == 0) {
		memcpy(hdr, slot, sizeof(*hdr));
		*layout = l;
	}
	free(slot);
	return r;
}

enum diag_bp_release diag_bp_del_user(struct diag_bptable *t, struct diag_proc *p,
				      struct diag_bp *bp, void *user)
{
	for (size_t i = 0; i < bp->nusers; i++)
		if (bp->users[i] == user) {
			bp->users[i] = bp->users[--bp->nusers];
			break;
		}
	if (bp->nusers)
		return DIAG_BP_KEPT;
	return diag_bp_destroy(t, p, bp);
}

size_t diag_bptable_restore_all(struct diag_bptable *t, struct diag_proc *p)
{
	size_t pos = 0, left = 0;
	uint64_t k;
	void *v;
	while (diag_u64map_next(&t->by_addr, &pos, &k, &v))
		left += unpatch(t, p, v) == DIAG_BP_LEFT;
	return left;
}

uint64_t diag_bptable_unslot(const struct diag_bptable *t, uint64_t pc)
{
	if (!diag_xol_find(&t->xol, pc))
		return 0;
	uint64_t slot = pc & ~(uint64_t)(DIAG_XOL_SLOT_SIZE - 1);
	const struct diag_slot_info *si = diag_u64map_get(&t->slots, slot);
	if (!si)
		return 1; /* a trampoline: run out of it */
	if (pc == slot)
		return si->addr;
	if (si->plain && pc - slot <= si->len)
		return si->addr + (pc - slot);
	return 1;
}
