/* arch/x86_64/tramp_capture: builds the capture trampolines of issue 10 (trampoline.h,
 * "Capture trampolines") and repairs their faults. A slot is a 64-byte header then code
 * generated with Zydis's encoder (xasm.h): save every register and the flags in the order of
 * diag_ring_rec.regs, name the thread by its thread pointer, count the hit in its sub-ring's
 * counter, run the condition, read the clock and check the heartbeat, reserve a record by the
 * ring v2 protocol, fill it, run the value program into it, publish it, restore, run the
 * displaced instructions and jump back (ENTRY), or run the instructions before the terminator
 * first and the terminator last (EXIT). The generated code never blocks, never calls, never makes a system
 * call, uses no string instruction and reads vector registers only for FPREG ops.
 * Pure byte work: never touches a process, never chooses addresses. */
#include "arch/trampoline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "arch/insn.h"
#include "arch/ring.h"
#include "arch/x86_64/capture_jit.h"
#include "arch/x86_64/tramp_internal.h"
#include "arch/x86_64/xasm.h"

#define RAX ZYDIS_REGISTER_RAX
#define RBX ZYDIS_REGISTER_RBX
#define RCX ZYDIS_REGISTER_RCX
#define RDX ZYDIS_REGISTER_RDX
#define RSP ZYDIS_REGISTER_RSP
#define RBP ZYDIS_REGISTER_RBP
#define RDI ZYDIS_REGISTER_RDI
#define R8 ZYDIS_REGISTER_R8
#define R9 ZYDIS_REGISTER_R9
#define R12 ZYDIS_REGISTER_R12
#define R13 ZYDIS_REGISTER_R13
#define R14 ZYDIS_REGISTER_R14
#define R15 ZYDIS_REGISTER_R15
#define R(x) xa_r(ZYDIS_REGISTER_##x)
#define I(v) xa_i((int64_t)(v))
#define M(b, d, s) xa_m(ZYDIS_REGISTER_##b, (int64_t)(d), (s))

#define RED_ZONE 128
#define FR XJ_FRAME_REGS
#define REC_PAYLOAD_LEN offsetof(struct diag_ring_rec, payload_len)
#define SUB_DATA sizeof(struct diag_ring_header) /* a sub-ring's records follow its header */
#define CTL(f) offsetof(struct diag_ring_control, f)
#define SUBH(f) offsetof(struct diag_ring_header, f)
#define REC(f) offsetof(struct diag_ring_rec, f)

_Static_assert(REC(seq) == 0 && REC(site) == 8 && REC(units) == 12 && REC(flags) == 14 &&
	       REC(tsc) == 16 && REC(thread) == 24 && REC(fault_addr) == 32 && REC(regs) == 40 &&
	       REC_PAYLOAD_LEN == 184, "ring v2 record layout the code writes");
_Static_assert(DIAG_RING_MAX_SITES == 4096, "counter index shift below");

/* Everything one build needs, and what its passes learn. */
struct tc {
	const struct diag_tramp_capture *c;
	struct xt_displaced pre;   /* ENTRY: the displaced instructions; EXIT: those before term */
	struct diag_insn term;     /* EXIT */
	size_t patched_len;
	struct xj_prog cond, value;
	uint32_t units;
	uint32_t slim_mask;        /* slim records: the frame slots copied (bit i: slot i); */
	uint32_t hdr, plen_off;    /* bytes before the payload, where payload_len goes */
	uint64_t rip;              /* pc the record reports */
	/* code offsets (from slot + DIAG_TRAMP_SLOT_CODE) of the last pass */
	uint32_t cond_lo, cond_hi, value_lo, value_hi;
	uint32_t l_out, l_value_landing;
	struct diag_tramp_layout l;
};

/* ---- save and restore (the frame: stack slots, then diag_ring_rec.regs order) ---- */

static const ZydisRegister push_order[] = {
	/* after pushfq and push rsp: the rip slot (a placeholder), then rdi .. r15 */
	RAX, RDI, ZYDIS_REGISTER_RSI, RDX, RCX, RAX, R8, R9, ZYDIS_REGISTER_R10, ZYDIS_REGISTER_R11,
	RBX, RBP, R12, R13, R14, R15,
};

static void emit_save(struct xasm *a, uint64_t rip)
{
	XA(a, LEA, R(RSP), M(RSP, -RED_ZONE, 8));
	XA0(a, PUSHFQ);
	XA(a, PUSH, R(RSP));
	for (size_t i = 0; i < sizeof(push_order) / sizeof(push_order[0]); i++)
		XA(a, PUSH, xa_r(push_order[i]));
	/* push rsp stored rsp after the red zone and pushfq: as the probed code saw it, add them */
	XA(a, ADD, M(RSP, 8 * XJ_SAVED_RSP, 8), I(RED_ZONE + 8));
	XA(a, LEA, R(RSP), M(RSP, -FR, 8));
	XA(a, MOV, R(RAX), I(rip));
	XA(a, MOV, M(RSP, FR + 8 * XJ_SAVED_RIP, 8), R(RAX));
}

/* The flags come back by sahf and an overflowing add, not popfq (9-20 ns on the machines
 * measured, against 1): the code changes only the arithmetic flags (no std/cld, no TF, AC or
 * IF), so CF PF AF ZF SF from sahf and OF from `add cl, 0x7f` with cl = OF restore them all.
 * Nothing after the sahf writes a flag: mov, pop and lea do not. */
static void emit_restore(struct xasm *a)
{
	XA(a, MOV, R(RAX), M(RSP, FR + 8 * XJ_SAVED_FLAGS, 8));
	XA(a, MOV, R(ECX), R(EAX));
	XA(a, SHR, R(ECX), I(11));
	XA(a, AND, R(CL), I(1));
	XA(a, ADD, R(CL), I(0x7f));
	XA(a, MOV, R(AH), R(AL));
	XA0(a, SAHF);
	XA(a, LEA, R(RSP), M(RSP, FR, 8));
	for (size_t i = sizeof(push_order) / sizeof(push_order[0]); i-- > 1;)
		XA(a, POP, xa_r(push_order[i]));
	XA(a, LEA, R(RSP), M(RSP, 24 + RED_ZONE, 8)); /* rip, rsp and flags slots, red zone */
}

/* ---- the hit: thread, sub-ring, count; the clock and the heartbeat ---- */

static void emit_enter(struct xasm *a, struct tc *t)
{
	uint32_t sub0 = xa_label_new(a);

	/* The condition's range (the fault repair's) starts here: %fs:0 faults in a thread
	 * without TLS yet (early ld.so), and such a hit leaves like a faulting condition, neither
	 * counted nor recorded, instead of killing the target. */
	t->cond_lo = (uint32_t)a->len;
	if (t->c->fsgsbase)
		XA(a, RDFSBASE, R(R14));
	else /* the TCB's self pointer (x86-64 ABI): the fs base without a system call */
		xa_ins(a, ZYDIS_MNEMONIC_MOV, ZYDIS_ATTRIB_HAS_SEGMENT_FS, 2,
		       (const xop[]){ R(R14), xa_m(ZYDIS_REGISTER_NONE, 0, 8) });
	XA(a, MOV, R(RBX), I(t->c->ring));
	/* sub = the thread table's slot when it is this thread's, else diag_ring_sub_of(thread,
	 * hash_shift); both from the page's hash */
	uint32_t hashed = xa_label_new(a), one = xa_label_new(a);
	XA(a, MOV, R(RAX), R(R14));
	XA(a, SHR, R(RAX), I(12)); /* the thread pointer's page */
	XA(a, MOV, R(RDX), I(DIAG_RING_HASH_MUL));
	XA(a, IMUL, R(RAX), R(RDX));
	XA(a, MOV, R(RCX), R(RAX));
	XA(a, SHR, R(RCX), I(64 - DIAG_RING_TP_BITS));
	XA(a, SHL, R(RCX), I(4)); /* sizeof(struct diag_ring_tpslot) */
	XA(a, CMP, R(R14), xa_mx(RBX, RCX, 1, DIAG_RING_TP_TABLE, 8));
	xa_jump(a, ZYDIS_MNEMONIC_JNZ, hashed);
	XA(a, MOV, R(RAX), xa_mx(RBX, RCX, 1, DIAG_RING_TP_TABLE + 8, 8));
	xa_jump(a, ZYDIS_MNEMONIC_JMP, sub0);
	xa_label_here(a, hashed);
	XA(a, MOV, R(RCX), M(RBX, CTL(hash_shift), 8));
	XA(a, CMP, R(RCX), I(63));
	xa_jump(a, ZYDIS_MNEMONIC_JNBE, one);
	XA(a, SHR, R(RAX), R(CL));
	xa_jump(a, ZYDIS_MNEMONIC_JMP, sub0);
	xa_label_here(a, one); /* one sub-ring: 0 */
	XA(a, XOR, R(EAX), R(EAX));
	xa_label_here(a, sub0);
	/* a control block the target scribbled on never sends a write outside the mapping */
	XA(a, CMP, R(RAX), M(RBX, CTL(nsubs), 8));
	xa_jump(a, ZYDIS_MNEMONIC_JNB, t->l_out);
	/* counted first, so a site's count is exact whatever follows */
	XA(a, MOV, R(RDX), R(RAX));
	XA(a, SHL, R(RDX), I(15)); /* sub * DIAG_RING_MAX_SITES * 8 */
	XA(a, ADD, R(RDX), M(RBX, CTL(counters), 8));
	XA_LOCK(a, INC, xa_mx(RBX, RDX, 1, 8 * (int64_t)t->c->site, 8));
	XA(a, IMUL, R(RAX), M(RBX, CTL(sub_stride), 8));
	XA(a, LEA, R(R13), xa_mx(RBX, RAX, 1, DIAG_RING_CONTROL_BYTES, 8));
}

/* r12 = the clock; leave when the heartbeat is over. After the condition: a false condition
 * then never pays for rdtsc (30 ns in a VM), and either way nothing is recorded. */
static void emit_clock(struct xasm *a, const struct tc *t)
{
	XA0(a, RDTSC);
	XA(a, SHL, R(RDX), I(32));
	XA(a, OR, R(RAX), R(RDX));
	XA(a, MOV, R(R12), R(RAX));
	/* the daemon stopped refreshing the heartbeat: dead or stopped, nobody drains. The hit
	 * is a drop like a full ring's (counted in the sub-ring): a stalled daemon then sees how
	 * many events it lost, instead of a gap between hits and events */
	uint32_t alive = xa_label_new(a);
	XA(a, CMP, R(R12), M(RBX, CTL(alive_until), 8));
	xa_jump(a, ZYDIS_MNEMONIC_JB, alive);
	XA_LOCK(a, INC, M(R13, SUBH(drops), 8));
	xa_jump(a, ZYDIS_MNEMONIC_JMP, t->l_out);
	xa_label_here(a, alive);
}

/* ---- reservation (ring v2) ---- */

/* r15 = the reserved record, rax = its start unit index; or drop and leave. */
static void emit_reserve(struct xasm *a, const struct tc *t)
{
	uint32_t retry = xa_label_new(a), nopad = xa_label_new(a), full = xa_label_new(a),
		 rec = xa_label_new(a), go = xa_label_new(a);
	const int64_t k = t->units;

	XA(a, MOV, R(RAX), M(R13, SUBH(head), 8));
	xa_label_here(a, retry);
	XA(a, MOV, R(RDX), R(RAX));
	XA(a, AND, R(RDX), M(R13, SUBH(mask), 8));            /* off */
	XA(a, XOR, R(ECX), R(ECX));                            /* pad */
	XA(a, LEA, R(R8), M(RDX, k, 8));
	XA(a, CMP, R(R8), M(RBX, CTL(sub_units), 8));
	xa_jump(a, ZYDIS_MNEMONIC_JBE, nopad);
	/* a record never wraps: pad to the end of the data area first */
	XA(a, MOV, R(RCX), M(RBX, CTL(sub_units), 8));
	XA(a, SUB, R(RCX), R(RDX));
	xa_label_here(a, nopad);
	XA(a, LEA, R(R9), xa_mx(RAX, RCX, 1, k, 8));            /* new head */
	/* signed: a tail read after a stale head may be ahead of it; the cmpxchg then fails */
	XA(a, MOV, R(R8), R(R9));
	XA(a, SUB, R(R8), M(R13, SUBH(tail), 8));
	XA(a, CMP, R(R8), M(RBX, CTL(sub_units), 8));
	xa_jump(a, ZYDIS_MNEMONIC_JNLE, full);
	XA_LOCK(a, CMPXCHG, M(R13, SUBH(head), 8), R(R9));
	xa_jump(a, ZYDIS_MNEMONIC_JNZ, retry);
	XA(a, TEST, R(RCX), R(RCX));
	xa_jump(a, ZYDIS_MNEMONIC_JZ, rec);
	/* the pad: site 0, units = pad, seq last */
	XA(a, SHL, R(RDX), I(6));
	XA(a, MOV, xa_mx(R13, RDX, 1, SUB_DATA + REC(site), 4), I(0));
	XA(a, MOV, xa_mx(R13, RDX, 1, SUB_DATA + REC(units), 4), R(ECX));
	XA(a, LEA, R(R8), M(RAX, 1, 8));
	XA(a, MOV, xa_mx(R13, RDX, 1, SUB_DATA + REC(seq), 8), R(R8));
	XA(a, ADD, R(RAX), R(RCX));
	xa_label_here(a, rec);
	XA(a, MOV, R(R15), R(RAX));
	XA(a, AND, R(R15), M(R13, SUBH(mask), 8));
	XA(a, SHL, R(R15), I(6));
	XA(a, LEA, R(R15), xa_mx(R13, R15, 1, SUB_DATA, 8));
	xa_jump(a, ZYDIS_MNEMONIC_JMP, go);
	xa_label_here(a, full);
	XA_LOCK(a, INC, M(R13, SUBH(drops), 8));
	xa_jump(a, ZYDIS_MNEMONIC_JMP, t->l_out);
	xa_label_here(a, go);
}

static bool flags_slim(const struct tc *t)
{
	return t->hdr != DIAG_RING_REC_HDR;
}

/* Header, registers; r12 becomes the record's seq (start index + 1). */
static void emit_fill(struct xasm *a, const struct tc *t)
{
	const uint32_t flags = (t->c->kind == DIAG_TRAMP_EXIT || t->c->retsite ? DIAG_REC_EXIT : 0) |
			       (t->c->retsite ? DIAG_REC_RETSITE : 0) |
			       (flags_slim(t) ? DIAG_REC_SLIM : 0);

	XA(a, MOV, M(R15, REC(site), 4), I(t->c->site));
	XA(a, MOV, M(R15, REC(units), 4), I(t->units | flags << 16));
	XA(a, MOV, M(R15, REC(tsc), 8), R(R12));
	XA(a, MOV, M(R15, REC(thread), 8), R(R14));
	XA(a, MOV, M(R15, REC(fault_addr), 8), I(0));
	XA(a, LEA, R(R12), M(RAX, 1, 8));
	if (flags_slim(t)) {
		/* regmask, and payload_len 0: one store (the mask is below 2^31) */
		XA(a, MOV, M(R15, offsetof(struct diag_ring_slim, regmask), 8), I(t->slim_mask));
		for (int i = 0, j = 0; i < XJ_NSAVED; i++)
			if (t->slim_mask & (1u << i)) {
				XA(a, MOV, R(RCX), M(RSP, FR + 8 * i, 8));
				XA(a, MOV, M(R15, DIAG_RING_SLIM_HDR + 8 * (size_t)j++, 8), R(RCX));
			}
		return;
	}
	for (int i = 0; i < XJ_NSAVED; i++) {
		XA(a, MOV, R(RCX), M(RSP, FR + 8 * i, 8));
		XA(a, MOV, M(R15, REC(regs) + 8 * (size_t)i, 8), R(RCX));
	}
	XA(a, MOV, M(R15, REC_PAYLOAD_LEN, 8), I(0)); /* payload_len and pad */
}

/* The value program, its landings and the publication. */
static void emit_value(struct xasm *a, struct tc *t)
{
	uint32_t finish = xa_label_new(a), publish = xa_label_new(a);

	if (!t->c->value) {
		xa_jump(a, ZYDIS_MNEMONIC_JMP, publish);
		t->value_lo = t->value_hi = 0;
	} else {
		XA(a, LEA, R(RDI), M(R15, t->hdr, 8));
		t->value_lo = (uint32_t)a->len;
		xj_emit(a, &t->value);
		t->value_hi = (uint32_t)a->len;
	}
	xa_label_here(a, finish);
	XA(a, MOV, R(RAX), R(RDI));
	XA(a, SUB, R(RAX), R(R15));
	XA(a, SUB, R(RAX), I(t->hdr));
	XA(a, MOV, M(R15, t->plen_off, 4), R(EAX));
	xa_label_here(a, publish);
	XA(a, MOV, M(R15, REC(seq), 8), R(R12)); /* last: a plain store is a release (TSO) */
	xa_jump(a, ZYDIS_MNEMONIC_JMP, t->l_out);
	if (!t->c->value)
		return;
	/* A fault: rsi is the first byte that could not be read. */
	xa_label_here(a, t->l_value_landing);
	xj_emit_fault_block(a);
	XA(a, MOV, M(R15, REC(fault_addr), 8), R(RSI));
	XA(a, OR, M(R15, REC(flags), 2), I(DIAG_REC_FAULT));
	xa_jump(a, ZYDIS_MNEMONIC_JMP, finish);
	xa_label_here(a, t->value.l_abort);
	XA(a, OR, M(R15, REC(flags), 2), I(DIAG_REC_ABORT));
	xa_jump(a, ZYDIS_MNEMONIC_JMP, finish);
}

/* ---- relocated instructions ---- */

static int emit_copies(struct xasm *a, struct tc *t, struct diag_error *err)
{
	uint8_t buf[DIAG_INSN_MAX_LEN + DIAG_INSN_JMP_MAX];
	size_t n, orig = 0;
	int rc;

	for (size_t i = 0; i < t->pre.n; i++) {
		rc = diag_insn_relocate_linear(&t->pre.insns[i], xa_pc(a), buf, sizeof(buf), &n, err);
		if (rc < 0)
			return diag_error_prefix(err, "probe at 0x%llx: ", (unsigned long long)t->c->addr);
		t->l.insns[i].orig_off = (uint8_t)orig;
		t->l.insns[i].copy_off = (uint16_t)a->len;
		orig += t->pre.insns[i].len;
		xa_bytes(a, buf, n);
	}
	return 0;
}

static int emit_term(struct xasm *a, struct tc *t, struct diag_error *err)
{
	uint8_t buf[DIAG_XOL_SLOT_SIZE];
	size_t n;
	int rc = diag_xol_build(&t->term, xa_pc(a), buf, &n, err);

	if (rc < 0)
		return rc;
	t->l.insns[t->pre.n].orig_off = (uint8_t)(t->c->term - t->c->addr);
	t->l.insns[t->pre.n].copy_off = (uint16_t)a->len;
	t->l.reloc_off = a->len;
	xa_bytes(a, buf, n);
	return 0;
}

static int emit_back(struct xasm *a, struct tc *t)
{
	uint8_t buf[DIAG_INSN_JMP_MAX];
	size_t n;

	t->l.back_off = a->len;
	if (diag_insn_emit_jmp(xa_pc(a), t->c->addr + t->patched_len, buf, sizeof(buf), &n) < 0)
		return -ENOSPC;
	xa_bytes(a, buf, n);
	return 0;
}

/* ---- one pass ---- */

static int generate(struct xasm *a, struct tc *t, struct diag_error *err)
{
	const bool exit_kind = t->c->kind == DIAG_TRAMP_EXIT;
	int rc = 0;

	t->l_out = xa_label_new(a);
	t->l_value_landing = xa_label_new(a);
	t->cond.l_false = t->l_out;
	t->cond.l_abort = t->l_out;
	t->value.l_abort = xa_label_new(a);
	t->cond.l_lits = a->nlabels;
	for (size_t i = 0; i < DIAG_CAP_MAX_LITS; i++)
		xa_label_new(a);
	t->value.l_lits = a->nlabels;
	for (size_t i = 0; i < DIAG_CAP_MAX_LITS; i++)
		xa_label_new(a);
	if (exit_kind)
		rc = emit_copies(a, t, err);
	if (rc < 0)
		return rc;
	emit_save(a, t->rip);
	emit_enter(a, t);
	if (t->c->cond)
		xj_emit(a, &t->cond);
	t->cond_hi = (uint32_t)a->len;
	if (t->c->count_only) { /* counted in emit_enter: the daemon reads the counters */
		t->value_lo = t->value_hi = 0;
	} else {
		emit_clock(a, t);
		emit_reserve(a, t);
		emit_fill(a, t);
		emit_value(a, t);
	}
	xa_label_here(a, t->l_out);
	emit_restore(a);
	if (exit_kind) {
		rc = emit_term(a, t, err);
		t->l.back_off = SIZE_MAX; /* set to len below: nothing jumps back */
	} else {
		t->l.reloc_off = a->len;
		rc = emit_copies(a, t, err);
		if (rc == 0)
			rc = emit_back(a, t);
	}
	if (rc < 0)
		return rc;
	if (t->c->cond)
		xj_emit_lits(a, &t->cond);
	if (t->c->value)
		xj_emit_lits(a, &t->value);
	return 0;
}

/* ---- decoding what the patch covers ---- */

static bool is_terminator(const struct diag_insn *in)
{
	ZydisDecoder dec;
	ZydisDecodedInstruction ins;

	if (!ZYAN_SUCCESS(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)) ||
	    !ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&dec, NULL, in->bytes, in->len, &ins)))
		return false;
	return ins.meta.category == ZYDIS_CATEGORY_RET || ins.meta.category == ZYDIS_CATEGORY_UNCOND_BR;
}

static int decode_exit(struct tc *t, struct diag_error *err)
{
	const struct diag_tramp_capture *c = t->c;
	size_t off = 0, span;
	int rc;

	if (c->term < c->addr || c->term - c->addr >= c->avail)
		return diag_error_set(err, -EINVAL, "exit trampoline: terminator 0x%llx outside the bytes given",
				      (unsigned long long)c->term);
	span = (size_t)(c->term - c->addr);
	t->pre.n = 0;
	while (off < span) {
		if (t->pre.n == DIAG_TRAMP_MAX_INSNS - 1)
			return diag_error_set(err, -DIAG_E_RELOC,
					      "exit at 0x%llx: too many instructions before the terminator",
					      (unsigned long long)c->term);
		rc = diag_insn_decode(c->code + off, c->avail - off, c->addr + off, &t->pre.insns[t->pre.n], err);
		if (rc < 0)
			return rc;
		off += t->pre.insns[t->pre.n++].len;
	}
	if (off != span)
		return diag_error_set(err, -DIAG_E_PARSE,
				      "exit at 0x%llx: the instructions from 0x%llx do not end at it",
				      (unsigned long long)c->term, (unsigned long long)c->addr);
	t->pre.len = off;
	rc = diag_insn_decode(c->code + span, c->avail - span, c->term, &t->term, err);
	if (rc < 0)
		return rc;
	if (!is_terminator(&t->term))
		return diag_error_set(err, -DIAG_E_RELOC, "exit at 0x%llx: '%s' is not a ret or a jmp",
				      (unsigned long long)c->term, t->term.text);
	t->patched_len = span + t->term.len;
	if (t->patched_len < DIAG_TRAMP_PATCH_LEN)
		return diag_error_set(err, -DIAG_E_RELOC,
				      "exit at 0x%llx: %zu bytes patched, the jump needs %d",
				      (unsigned long long)c->term, t->patched_len, DIAG_TRAMP_PATCH_LEN);
	return 0;
}

static int check_capture(const struct diag_tramp_capture *c, struct diag_error *err)
{
	if (!c || !c->code || !c->slot || !c->ring)
		return diag_error_set(err, -EINVAL, "capture trampoline: no code, slot or ring given");
	if (c->slot & (DIAG_TRAMP_SLOT - 1))
		return diag_error_set(err, -EINVAL, "capture trampoline: slot 0x%llx not %d-aligned",
				      (unsigned long long)c->slot, DIAG_TRAMP_SLOT);
	if (c->site == 0 || c->site >= DIAG_RING_MAX_SITES)
		return diag_error_set(err, -EINVAL, "capture trampoline: site %u out of range 1..%d",
				      c->site, DIAG_RING_MAX_SITES - 1);
	if (c->kind != DIAG_TRAMP_ENTRY && c->kind != DIAG_TRAMP_EXIT)
		return diag_error_set(err, -EINVAL, "capture trampoline: unknown kind %d", (int)c->kind);
	if (c->count_only && (c->kind != DIAG_TRAMP_ENTRY || c->cond || c->value))
		return diag_error_set(err, -EINVAL, "capture trampoline: a counting site is an entry "
				      "with no condition and no value");
	return 0;
}

/* The frame slots of the diag_regs words in regs (bit off / 8), the stack pointer always (the
 * daemon pairs exits with entries by it); false when one has no slot (a full record then). */
static bool slim_slots(uint32_t regs, uint32_t *slots)
{
	*slots = 1u << XJ_SAVED_RSP;
	for (uint32_t w = 0; w < 32; w++) {
		if (!(regs & (1u << w)))
			continue;
		int slot = xj_reg_slot(w * 8);
		if (slot < 0 || slot >= XJ_NSAVED)
			return false;
		*slots |= 1u << slot;
	}
	return true;
}

static int prepare(struct tc *t, const struct diag_tramp_capture *c, struct diag_error *err)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->c = c;
	if (c->kind == DIAG_TRAMP_EXIT) {
		t->rip = c->term;
		rc = decode_exit(t, err);
	} else {
		t->rip = c->addr;
		rc = xt_decode_displaced(c->addr, c->code, c->avail, DIAG_TRAMP_PATCH_LEN, &t->pre, err);
		t->patched_len = t->pre.len;
	}
	if (rc < 0)
		return rc;
	if (c->cond && (rc = xj_check(&t->cond, c->cond, false, err)) < 0)
		return diag_error_prefix(err, "condition: ");
	if (c->value && (rc = xj_check(&t->value, c->value, true, err)) < 0)
		return diag_error_prefix(err, "value: ");
	uint32_t payload = c->value ? c->value->max_payload : 0;
	t->hdr = DIAG_RING_REC_HDR;
	t->plen_off = (uint32_t)REC_PAYLOAD_LEN;
	t->units = (uint32_t)diag_ring_rec_units(payload);
	if (c->slim && slim_slots(c->slim_regs, &t->slim_mask)) {
		uint32_t n = (uint32_t)__builtin_popcount(t->slim_mask);
		t->hdr = diag_ring_rec_hdr_bytes(DIAG_REC_SLIM, t->slim_mask);
		t->plen_off = (uint32_t)offsetof(struct diag_ring_slim, payload_len);
		t->units = (uint32_t)diag_ring_slim_units(n, payload);
	}
	return 0;
}

static int assemble(struct xasm *a, struct tc *t, uint8_t *code, size_t cap, struct diag_error *err)
{
	const uint64_t base = t->c->slot + DIAG_TRAMP_SLOT_CODE;
	int rc;

	for (int pass = 0; pass < 2; pass++) {
		xa_begin(a, code, cap, base, pass == 1);
		memset(&t->l, 0, sizeof(t->l));
		rc = generate(a, t, err);
		if (rc < 0)
			return rc;
		if (a->err == -ENOSPC || a->err == -E2BIG)
			return diag_error_set(err, -DIAG_E_LIMIT,
					      "probe at 0x%llx: the capture programs do not fit a %d-byte trampoline slot",
					      (unsigned long long)t->c->addr, DIAG_TRAMP_SLOT);
		if (a->err)
			return diag_error_set(err, -DIAG_E_INVALID,
					      "probe at 0x%llx: capture trampoline could not be encoded (%d)",
					      (unsigned long long)t->c->addr, a->err);
	}
	return 0;
}

static void put_header(const struct tc *t, const struct xasm *a, uint8_t *out)
{
	struct diag_tramp_slot_header h = { 0 };
	const uint16_t code = DIAG_TRAMP_SLOT_CODE;

	h.magic = DIAG_TRAMP_SLOT_MAGIC ^ t->c->slot;
	/* always: the range starts at the thread pointer's load (see emit_enter) */
	h.cond_lo = (uint16_t)(code + t->cond_lo);
	h.cond_hi = (uint16_t)(code + t->cond_hi);
	h.cond_landing = (uint16_t)(code + xa_label_off(a, t->l_out));
	if (t->c->value) {
		h.value_lo = (uint16_t)(code + t->value_lo);
		h.value_hi = (uint16_t)(code + t->value_hi);
		h.value_landing = (uint16_t)(code + xa_label_off(a, t->l_value_landing));
	}
	h.site = t->c->site;
	memcpy(out, &h, sizeof(h));
}

static void finish_layout(struct tc *t, size_t code_len)
{
	struct diag_tramp_layout *l = &t->l;

	l->addr = t->c->addr;
	l->tramp_addr = t->c->slot + DIAG_TRAMP_SLOT_CODE;
	l->patched_len = t->patched_len;
	l->len = code_len;
	l->record_bytes = t->c->count_only ? 0 : t->units * DIAG_RING_UNIT;
	if (t->c->kind == DIAG_TRAMP_EXIT) {
		l->n_insns = t->pre.n + 1;
		l->back_off = code_len; /* never matches: nothing jumps back */
	} else {
		l->n_insns = t->pre.n;
	}
}

int diag_tramp_build_capture(const struct diag_tramp_capture *c, uint8_t *out, size_t cap,
			     size_t *len, uint8_t jmp[DIAG_TRAMP_PATCH_LEN], size_t *patched_len,
			     struct diag_tramp_layout *layout, struct diag_error *err)
{
	struct xasm *a;
	struct tc t;
	uint8_t code[DIAG_TRAMP_SLOT - DIAG_TRAMP_SLOT_CODE], patch[DIAG_INSN_JMP_MAX];
	size_t n;
	int rc;

	rc = check_capture(c, err);
	if (rc < 0)
		return rc;
	if (!out || !len || !jmp || !patched_len)
		return diag_error_set(err, -EINVAL, "capture trampoline: missing output");
	if (diag_insn_emit_jmp(c->addr, c->slot + DIAG_TRAMP_SLOT_CODE, patch, sizeof(patch), &n) < 0 ||
	    n != DIAG_TRAMP_PATCH_LEN)
		return diag_error_set(err, -DIAG_E_RELOC,
				      "probe at 0x%llx: trampoline at 0x%llx is out of reach of a jmp rel32",
				      (unsigned long long)c->addr, (unsigned long long)c->slot);
	rc = prepare(&t, c, err);
	if (rc < 0)
		return rc;
	a = malloc(sizeof(*a)); /* 20 KiB of labels: off the caller's stack */
	if (!a)
		return diag_error_set(err, -ENOMEM, "capture trampoline: out of memory");
	rc = assemble(a, &t, code, sizeof(code), err);
	if (rc == 0 && DIAG_TRAMP_SLOT_CODE + a->len > cap)
		rc = diag_error_set(err, -ENOSPC, "probe at 0x%llx: trampoline needs %zu bytes, %zu given",
				    (unsigned long long)c->addr, DIAG_TRAMP_SLOT_CODE + a->len, cap);
	if (rc < 0) {
		free(a);
		return rc;
	}
	finish_layout(&t, a->len);
	put_header(&t, a, out);
	memcpy(out + DIAG_TRAMP_SLOT_CODE, code, a->len);
	*len = DIAG_TRAMP_SLOT_CODE + a->len;
	free(a);
	memcpy(jmp, patch, DIAG_TRAMP_PATCH_LEN);
	*patched_len = t.patched_len;
	if (layout)
		*layout = t.l;
	return 0;
}

/* ---- fault repair ---- */

/* rsi already holds the exact first unreadable byte (capture_jit.h): fault_addr, the signal's
 * si_addr, is not needed, and is 0 for a non-canonical pointer's #GP anyway. */
bool diag_tramp_fault_repair(diag_regs *r, uint64_t slot, const struct diag_tramp_slot_header *h,
			     uint64_t fault_addr)
{
	uint64_t off;

	(void)fault_addr;
	if (!r || !h || h->magic != (DIAG_TRAMP_SLOT_MAGIC ^ slot) || r->rip < slot ||
	    r->rip - slot >= DIAG_TRAMP_SLOT)
		return false;
	off = r->rip - slot;
	uint16_t landing;
	bool tp = h->tp_load && off == h->tp_load; /* no TLS yet: record thread 0 */
	if (tp)
		landing = h->tp_resume;
	else if (off >= h->cond_lo && off < h->cond_hi)
		landing = h->cond_landing;
	else if (off >= h->value_lo && off < h->value_hi)
		landing = h->value_landing;
	else
		return false;
	/* code of this slot only, as the in-target guard checks (guard_template.S) */
	if (landing < DIAG_TRAMP_SLOT_CODE || landing >= DIAG_TRAMP_SLOT)
		return false;
	if (tp)
		r->r14 = 0;
	r->rip = slot + landing;
	return true;
}
