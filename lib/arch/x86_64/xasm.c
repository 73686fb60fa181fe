/* arch/x86_64/xasm: the two-pass Zydis-encoder assembler of the capture trampolines (see
 * xasm.h). Owns encoding and label bookkeeping only; an error is sticky and the caller checks
 * it once after a pass. */
#include "arch/x86_64/xasm.h"

#include <errno.h>
#include <string.h>

#include "util/error.h"

static void fail(struct xasm *a, int code)
{
	if (!a->err)
		a->err = code;
}

void xa_begin(struct xasm *a, uint8_t *buf, size_t cap, uint64_t base, bool final)
{
	a->buf = buf;
	a->cap = cap;
	a->len = 0;
	a->base = base;
	a->final = final;
	a->err = 0;
	a->nlabels = 0;
	if (!final)
		memset(a->placed, 0, sizeof(a->placed));
}

static void encode(struct xasm *a, ZydisEncoderRequest *req)
{
	uint8_t ins[ZYDIS_MAX_INSTRUCTION_LENGTH];
	ZyanUSize n = sizeof(ins);

	if (a->err)
		return;
	if (!ZYAN_SUCCESS(ZydisEncoderEncodeInstructionAbsolute(req, ins, &n, xa_pc(a)))) {
		fail(a, -DIAG_E_INVALID);
		return;
	}
	xa_bytes(a, ins, n);
}

static void request(ZydisEncoderRequest *req, ZydisMnemonic m, ZydisInstructionAttributes prefixes,
		    unsigned n, const xop *ops)
{
	memset(req, 0, sizeof(*req));
	req->machine_mode = ZYDIS_MACHINE_MODE_LONG_64;
	req->mnemonic = m;
	req->prefixes = prefixes;
	req->operand_count = (ZyanU8)n;
	for (unsigned i = 0; i < n && i < ZYDIS_ENCODER_MAX_OPERANDS; i++)
		req->operands[i] = ops[i];
}

void xa_ins(struct xasm *a, ZydisMnemonic m, ZydisInstructionAttributes prefixes, unsigned n,
	    const xop *ops)
{
	ZydisEncoderRequest req;

	if (n > ZYDIS_ENCODER_MAX_OPERANDS) {
		fail(a, -DIAG_E_INVALID);
		return;
	}
	request(&req, m, prefixes, n, ops);
	encode(a, &req);
}

uint32_t xa_label_new(struct xasm *a)
{
	if (a->nlabels >= XA_MAX_LABELS) {
		fail(a, -E2BIG);
		return 0;
	}
	return a->nlabels++;
}

void xa_label_here(struct xasm *a, uint32_t label)
{
	if (label >= XA_MAX_LABELS)
		return;
	if (a->final && a->labels[label] != a->len)
		fail(a, -DIAG_E_INVALID); /* the passes diverged: a bug, never ship such code */
	a->labels[label] = (uint32_t)a->len;
	a->placed[label] = true;
}

uint32_t xa_label_off(const struct xasm *a, uint32_t label)
{
	return label < XA_MAX_LABELS && a->placed[label] ? a->labels[label] : 0;
}

/* Where a branch to label goes: in the first pass an unplaced label is any address (the
 * 32-bit form has the same length whatever the target). */
static uint64_t label_addr(struct xasm *a, uint32_t label)
{
	if (label >= XA_MAX_LABELS || (a->final && !a->placed[label])) {
		fail(a, -DIAG_E_INVALID);
		return xa_pc(a);
	}
	return a->placed[label] ? a->base + a->labels[label] : xa_pc(a);
}

static void jump(struct xasm *a, ZydisMnemonic m, uint32_t label, bool near)
{
	ZydisEncoderRequest req;
	const xop target = xa_i((int64_t)label_addr(a, label));

	request(&req, m, 0, 1, &target);
	req.branch_type = near ? ZYDIS_BRANCH_TYPE_NEAR : ZYDIS_BRANCH_TYPE_SHORT;
	req.branch_width = near ? ZYDIS_BRANCH_WIDTH_32 : ZYDIS_BRANCH_WIDTH_8;
	encode(a, &req);
}

void xa_jump(struct xasm *a, ZydisMnemonic m, uint32_t label)
{
	jump(a, m, label, true);
}

void xa_jump_short(struct xasm *a, ZydisMnemonic m, uint32_t label)
{
	jump(a, m, label, false);
}

void xa_lea_label(struct xasm *a, ZydisRegister reg, uint32_t label)
{
	const xop ops[2] = { xa_r(reg), xa_m(ZYDIS_REGISTER_RIP, (int64_t)label_addr(a, label), 8) };

	xa_ins(a, ZYDIS_MNEMONIC_LEA, 0, 2, ops);
}

void xa_bytes(struct xasm *a, const void *p, size_t n)
{
	if (a->err)
		return;
	if (a->len + n > a->cap) {
		fail(a, -ENOSPC);
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}
