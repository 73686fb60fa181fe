/* branch: linear-sweep scan of direct branch targets (see branch.h). */
#include "arch/branch.h"

#include <stdbool.h>

#include <Zydis/Zydis.h>

#include "util/error.h"

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
