/* arch/x86_64/xasm: the small assembler the capture trampolines are generated with: one
 * instruction at a time through Zydis's encoder (never hand-encoded), into a buffer that will
 * run at a known runtime address, with forward labels. Code is generated twice by the same
 * deterministic function: the first pass only learns where the labels are, the second encodes
 * the final bytes; every branch is encoded with a 32-bit displacement so that no instruction
 * changes length between the passes. Shared by the files of lib/arch/x86_64/ (prefix xa_);
 * owns only encoding, never decides what code to write. */
#ifndef DIAG_ARCH_X86_64_XASM_H
#define DIAG_ARCH_X86_64_XASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <Zydis/Encoder.h>

#define XA_MAX_LABELS 4096

struct xasm {
	uint8_t *buf;
	size_t cap;
	size_t len;
	uint64_t base;             /* runtime address of buf[0] */
	bool final;                /* second pass: labels are known */
	int err;                   /* first error: -ENOSPC (buffer full), -DIAG_E_INVALID
	                            * (an instruction Zydis cannot encode: a bug), -E2BIG labels */
	uint32_t nlabels;          /* labels handed out in this pass */
	uint32_t labels[XA_MAX_LABELS]; /* offsets into buf, from the first pass */
	bool placed[XA_MAX_LABELS];
};

typedef ZydisEncoderOperand xop;

static inline xop xa_r(ZydisRegister r)
{
	xop o = { .type = ZYDIS_OPERAND_TYPE_REGISTER };

	o.reg.value = r;
	return o;
}

/* [base + index * scale + disp], size bytes */
static inline xop xa_mx(ZydisRegister base, ZydisRegister index, uint8_t scale, int64_t disp,
			unsigned size)
{
	xop o = { .type = ZYDIS_OPERAND_TYPE_MEMORY };

	o.mem.base = base;
	o.mem.index = index;
	o.mem.scale = index == ZYDIS_REGISTER_NONE ? 0 : scale;
	o.mem.displacement = disp;
	o.mem.size = (ZyanU16)size;
	return o;
}

static inline xop xa_m(ZydisRegister base, int64_t disp, unsigned size)
{
	return xa_mx(base, ZYDIS_REGISTER_NONE, 0, disp, size);
}

static inline xop xa_i(int64_t v)
{
	xop o = { .type = ZYDIS_OPERAND_TYPE_IMMEDIATE };

	o.imm.s = v;
	return o;
}

/* Start a pass over buf (cap bytes at runtime address base). For the second pass pass the
 * same struct again with final = true: the labels of the first pass are kept. */
void xa_begin(struct xasm *a, uint8_t *buf, size_t cap, uint64_t base, bool final);

/* One instruction; prefixes: ZYDIS_ATTRIB_HAS_LOCK, ZYDIS_ATTRIB_HAS_SEGMENT_FS or 0. A memory
 * operand based on ZYDIS_REGISTER_RIP takes the absolute address as its displacement. */
void xa_ins(struct xasm *a, ZydisMnemonic m, ZydisInstructionAttributes prefixes, unsigned n,
	    const xop *ops);
#define XA_N(...) (sizeof((const xop[]){ __VA_ARGS__ }) / sizeof(xop))
#define XA(a, m, ...) xa_ins((a), ZYDIS_MNEMONIC_##m, 0, XA_N(__VA_ARGS__), (const xop[]){ __VA_ARGS__ })
#define XA_LOCK(a, m, ...) \
	xa_ins((a), ZYDIS_MNEMONIC_##m, ZYDIS_ATTRIB_HAS_LOCK, XA_N(__VA_ARGS__), (const xop[]){ __VA_ARGS__ })
#define XA0(a, m) xa_ins((a), ZYDIS_MNEMONIC_##m, 0, 0, NULL)

/* A new label (not yet placed), and placing it at the current position. */
uint32_t xa_label_new(struct xasm *a);
void xa_label_here(struct xasm *a, uint32_t label);
/* Offset of a label into buf (first pass: where it was; 0 before it was placed). */
uint32_t xa_label_off(const struct xasm *a, uint32_t label);

/* jmp / jcc (ZYDIS_MNEMONIC_JZ, ...) to a label, always with a 32-bit displacement. */
void xa_jump(struct xasm *a, ZydisMnemonic m, uint32_t label);
/* The same with an 8-bit displacement, for the short local loops and skips of one op (the
 * caller knows the label is within 127 bytes; beyond, the pass fails with -DIAG_E_INVALID). */
void xa_jump_short(struct xasm *a, ZydisMnemonic m, uint32_t label);
/* lea reg, [rip + label] */
void xa_lea_label(struct xasm *a, ZydisRegister reg, uint32_t label);

/* Raw bytes (data, or instructions built elsewhere for the current position). */
void xa_bytes(struct xasm *a, const void *p, size_t n);
/* Runtime address of the current position. */
static inline uint64_t xa_pc(const struct xasm *a)
{
	return a->base + a->len;
}

#endif
