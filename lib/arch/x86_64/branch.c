/* branch: linear-sweep scans of a function's code (see branch.h): direct branch targets, its
 * exits, and where an exit's jump can go. Reads only the bytes it is given; when it cannot be
 * sure (an indirect jump, bytes that do not decode) it says so rather than guess. */
#include "arch/branch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <Zydis/Zydis.h>

#include "arch/insn.h"
#include "arch/trampoline.h"
#include "util/error.h"
#include "util/grow.h"
#include "util/search.h"

int diag_branch_into(const uint8_t *code, size_t len, uint64_t addr, uint64_t lo, uint64_t hi)
{
	ZydisDecoder dec;
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	ZydisDecodedInstruction insn;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	for (size_t off = 0; off < len;) {
		if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code + off, len - off, &insn, ops))) {
			/* gcc pads between functions with int3/nops; trailing garbage is not code */
			return -DIAG_E_PARSE;
		}
		if (insn.attributes & ZYDIS_ATTRIB_IS_RELATIVE &&
		    (insn.meta.category == ZYDIS_CATEGORY_COND_BR ||
		     insn.meta.category == ZYDIS_CATEGORY_UNCOND_BR ||
		     insn.meta.category == ZYDIS_CATEGORY_CALL)) {
			for (unsigned i = 0; i < insn.operand_count_visible; i++) {
				ZyanU64 target;
				if (ops[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
				    ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&insn, &ops[i], addr + off,
									  &target)) &&
				    target > lo && target < hi)
					return 1;
			}
		}
		off += insn.length;
	}
	return 0;
}

int diag_function_exits(const uint8_t *code, size_t len, uint64_t addr, uint64_t *exits,
			size_t cap)
{
	ZydisDecoder dec;
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	ZydisDecodedInstruction insn;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	int n = 0;
	for (size_t off = 0; off < len;) {
		if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code + off, len - off, &insn, ops)))
			return -DIAG_E_PARSE;
		bool exit = insn.mnemonic == ZYDIS_MNEMONIC_RET;
		if (insn.mnemonic == ZYDIS_MNEMONIC_JMP && insn.attributes & ZYDIS_ATTRIB_IS_RELATIVE) {
			ZyanU64 target;
			exit = ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&insn, &ops[0], addr + off, &target)) &&
			       (target < addr || target >= addr + len);
		}
		if (exit) {
			if ((size_t)n < cap)
				exits[n] = addr + off;
			n++;
		}
		off += insn.length;
	}
	return n;
}

/* ---- exit plans ---- */

/* One decoded instruction of the sweep, as much as planning needs. */
struct plan_insn {
	uint32_t off, len;
	bool linear;               /* relocatable as straight-line code (arch/insn.h) */
	enum { X_NONE, X_RET, X_TAIL, X_COND_TAIL, X_INDIRECT } exit;
};

struct plan_sweep {
	struct plan_insn *v;
	size_t n;
	uint64_t *targets;         /* direct branch targets inside the function, sorted */
	size_t ntargets;
	int indirect;              /* index of the first indirect jmp, -1 when none */
};

static void sweep_free(struct plan_sweep *s)
{
	free(s->v);
	free(s->targets);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Whether the instruction could be copied out as straight-line code: the relocation itself is
 * asked, at the instruction's own address (where a rip-relative operand is always in reach;
 * whether the trampoline's slot is in reach is the trampoline builder's to say). */
static bool relocatable(const uint8_t *code, size_t len, uint64_t at)
{
	struct diag_insn insn;
	uint8_t out[DIAG_INSN_MAX_LEN];
	size_t n;
	struct diag_error err = {0};
	return diag_insn_decode(code, len, at, &insn, &err) == 0 &&
	       diag_insn_relocate_linear(&insn, at, out, sizeof(out), &n, &err) == 0;
}

/* How an instruction leaves the function, if it does: a ret, a direct jmp (or jcc) whose
 * target lies outside [lo, hi), or an indirect jmp (a jump table or a tail call: which, the
 * bytes do not say). */
static int exit_kind(const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *ops,
		     uint64_t pc, uint64_t lo, uint64_t hi, uint64_t *target)
{
	*target = 0;
	if (insn->meta.category == ZYDIS_CATEGORY_RET)
		return X_RET;
	if (insn->meta.category != ZYDIS_CATEGORY_UNCOND_BR &&
	    insn->meta.category != ZYDIS_CATEGORY_COND_BR)
		return X_NONE;
	if (ops[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE)
		return X_INDIRECT;
	ZyanU64 t;
	if (ZYAN_FAILED(ZydisCalcAbsoluteAddress(insn, &ops[0], pc, &t)))
		return X_INDIRECT;
	*target = t;
	if (t >= lo && t < hi)
		return X_NONE;
	return insn->meta.category == ZYDIS_CATEGORY_UNCOND_BR ? X_TAIL : X_COND_TAIL;
}

static int sweep(const uint8_t *code, size_t len, uint64_t addr, struct plan_sweep *s)
{
	ZydisDecoder dec;
	ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
	ZydisDecodedInstruction insn;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
	size_t cap = 0, tcap = 0;
	*s = (struct plan_sweep){.indirect = -1};
	for (size_t off = 0; off < len; off += insn.length) {
		if (ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code + off, len - off, &insn, ops)))
			return -DIAG_E_PARSE;
		if (DIAG_GROW(&s->v, &cap, s->n + 1) < 0)
			return -ENOMEM;
		struct plan_insn *p = &s->v[s->n];
		uint64_t target = 0;
		*p = (struct plan_insn){.off = (uint32_t)off, .len = insn.length};
		p->exit = exit_kind(&insn, ops, addr + off, addr, addr + len, &target);
		p->linear = relocatable(code + off, len - off, addr + off);
		if (p->exit == X_INDIRECT && s->indirect < 0)
			s->indirect = (int)s->n;
		if (insn.attributes & ZYDIS_ATTRIB_IS_RELATIVE &&
		    insn.meta.category == ZYDIS_CATEGORY_CALL &&
		    ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
			ZyanU64 t;
			if (ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&insn, &ops[0], addr + off, &t)))
				target = t;
		}
		if (target >= addr && target < addr + len) {
			if (DIAG_GROW(&s->targets, &tcap, s->ntargets + 1) < 0)
				return -ENOMEM;
			s->targets[s->ntargets++] = target;
		}
		s->n++;
	}
	if (s->ntargets)
		qsort(s->targets, s->ntargets, sizeof(s->targets[0]), cmp_u64);
	return 0;
}

/* A direct branch target in (lo, hi)? */
static bool target_inside(const struct plan_sweep *s, uint64_t lo, uint64_t hi)
{
	size_t i = diag_upper_bound_u64(s->targets, s->ntargets, sizeof(s->targets[0]), 0, lo);
	return i < s->ntargets && s->targets[i] < hi;
}

static void plan_one(const struct plan_sweep *s, size_t k, uint64_t addr,
		     struct diag_exit_plan *out)
{
	const struct plan_insn *t = &s->v[k];
	uint64_t term = addr + t->off, end = term + t->len;
	*out = (struct diag_exit_plan){.term = term, .start = term, .term_len = t->len,
				       .tail_call = t->exit != X_RET};
	if (t->exit == X_COND_TAIL) {
		snprintf(out->why, sizeof(out->why), "conditional tail call at 0x%llx",
			 (unsigned long long)term);
		return;
	}
	if (t->exit == X_INDIRECT || s->indirect >= 0) {
		snprintf(out->why, sizeof(out->why),
			 "indirect jmp at 0x%llx (a jump table's targets or a tail call: unknown)",
			 (unsigned long long)(addr + s->v[t->exit == X_INDIRECT ? k : (size_t)s->indirect].off));
		return;
	}
	/* The latest start holding the jump: any earlier one also covers whatever refused it. */
	size_t j = k;
	while (end - (addr + s->v[j].off) < DIAG_TRAMP_PATCH_LEN && j > 0)
		j--;
	uint64_t start = addr + s->v[j].off;
	if (end - start < DIAG_TRAMP_PATCH_LEN) {
		snprintf(out->why, sizeof(out->why),
			 "only %u bytes from the function's start to its exit at 0x%llx",
			 (unsigned)(end - start), (unsigned long long)term);
		return;
	}
	for (size_t i = j; i < k; i++) {
		if (!s->v[i].linear) {
			snprintf(out->why, sizeof(out->why),
				 "the instruction at 0x%llx before the exit at 0x%llx cannot be relocated",
				 (unsigned long long)(addr + s->v[i].off), (unsigned long long)term);
			return;
		}
	}
	if (target_inside(s, start, end)) {
		snprintf(out->why, sizeof(out->why),
			 "a branch lands inside the epilogue [0x%llx, 0x%llx)",
			 (unsigned long long)start, (unsigned long long)end);
		return;
	}
	out->start = start;
}

int diag_exit_plans(const uint8_t *code, size_t len, uint64_t addr, struct diag_exit_plan *out,
		    size_t cap)
{
	struct plan_sweep s;
	int rc = sweep(code, len, addr, &s);
	int n = 0;
	for (size_t k = 0; rc == 0 && k < s.n; k++) {
		if (s.v[k].exit == X_NONE)
			continue;
		if ((size_t)n < cap)
			plan_one(&s, k, addr, &out[n]);
		n++;
	}
	sweep_free(&s);
	return rc < 0 ? rc : n;
}
