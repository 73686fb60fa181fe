/* arch/x86_64/insn: Zydis decoding of one instruction and construction of its execute-out-of-line
 * slot. The slot must behave exactly like the original at its original address: same registers,
 * same stack, same flags, same memory effects, same control transfer. Whatever cannot be made
 * exact is refused with -DIAG_E_RELOC. Never touches a process; never guesses. */
#include "arch/insn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <Zydis/Zydis.h>

const uint8_t diag_insn_break[DIAG_ARCH_BREAK_LEN] = {0xcc}; /* int3 */

size_t diag_insn_trap_context_len(void)
{
	return 2;
}

bool diag_insn_is_long_trap(const uint8_t *before)
{
	return before[0] == 0xcd && before[1] == 0x03; /* int 3, the two-byte form */
}

struct decoded {
	ZydisDecodedInstruction ins;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

/* The slot under construction: bytes plus the runtime address of byte 0. */
struct emitter {
	uint8_t buf[DIAG_XOL_SLOT_SIZE];
	size_t len;
	uint64_t base;
	int overflow;
};

static int decode_raw(const uint8_t *code, size_t avail, struct decoded *d)
{
	ZydisDecoder dec;

	if (!ZYAN_SUCCESS(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
		return -EINVAL;
	if (avail > DIAG_INSN_MAX_LEN)
		avail = DIAG_INSN_MAX_LEN;
	if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&dec, code, avail, &d->ins, d->ops)))
		return -DIAG_E_PARSE;
	return 0;
}

/* Formats into a roomy buffer first: Zydis fails rather than truncates when the text is long. */
static void format_text(const struct decoded *d, uint64_t addr, char *text, size_t size)
{
	ZydisFormatter fmt;
	char full[256];

	if (!ZYAN_SUCCESS(ZydisFormatterInit(&fmt, ZYDIS_FORMATTER_STYLE_INTEL)) ||
	    !ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&fmt, &d->ins, d->ops,
				d->ins.operand_count_visible, full, sizeof(full), addr, NULL)))
		snprintf(full, sizeof(full), "(unformattable)");
	/* Truncation is fine: the text only decorates messages. */
	size_t n = strnlen(full, sizeof(full));

	if (n >= size)
		n = size - 1;
	memcpy(text, full, n);
	text[n] = '\0';
}

static void hex_bytes(const uint8_t *p, size_t n, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && used + 4 < size; i++)
		used += (size_t)snprintf(out + used, size - used, "%s%02x", i ? " " : "", p[i]);
}

int diag_insn_decode(const uint8_t *code, size_t avail, uint64_t addr, struct diag_insn *out,
		     struct diag_error *err)
{
	struct decoded d;
	char hex[64];
	int rc;

	if (!code || !out || avail == 0)
		return diag_error_set(err, -EINVAL, "decode at 0x%llx: no bytes given",
				      (unsigned long long)addr);
	rc = decode_raw(code, avail, &d);
	if (rc < 0) {
		hex_bytes(code, avail < 8 ? avail : 8, hex, sizeof(hex));
		return diag_error_set(err, rc, "cannot decode an x86-64 instruction at 0x%llx (bytes %s%s)",
				      (unsigned long long)addr, hex, avail > 8 ? " ..." : "");
	}
	memset(out, 0, sizeof(*out));
	out->addr = addr;
	out->len = d.ins.length;
	memcpy(out->bytes, code, d.ins.length);
	format_text(&d, addr, out->text, sizeof(out->text));
	return 0;
}

/* ---- emitting ---- */

static uint64_t em_pc(const struct emitter *e)
{
	return e->base + e->len;
}

static void em_bytes(struct emitter *e, const void *p, size_t n)
{
	if (e->overflow || e->len + n > sizeof(e->buf)) {
		e->overflow = 1;
		return;
	}
	memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static void em_u8(struct emitter *e, uint8_t v)
{
	em_bytes(e, &v, 1);
}

static void em_u32(struct emitter *e, uint32_t v)
{
	em_bytes(e, &v, 4); /* x86 is little-endian, like the host we run on */
}

static int fits_i32(int64_t v)
{
	return v >= INT32_MIN && v <= INT32_MAX;
}

/* Displacement from the end of an instruction of insn_len bytes starting at pc to target. */
static int rel_to(uint64_t pc, size_t insn_len, uint64_t target, int32_t *rel)
{
	int64_t d = (int64_t)(target - (pc + insn_len));

	if (!fits_i32(d))
		return 0;
	*rel = (int32_t)d;
	return 1;
}

/* jmp rel32 when the target is within reach, else jmp [rip+0] followed by the absolute address:
 * neither form touches a register, the flags or the stack. */
static void em_jmp(struct emitter *e, uint64_t target)
{
	int32_t rel;

	if (rel_to(em_pc(e), 5, target, &rel)) {
		em_u8(e, 0xe9);
		em_u32(e, (uint32_t)rel);
		return;
	}
	static const uint8_t jmp_mem[6] = { 0xff, 0x25, 0, 0, 0, 0 };
	em_bytes(e, jmp_mem, sizeof(jmp_mem));
	em_bytes(e, &target, 8);
}

/* Push a 64-bit value without a scratch register: push imm32 sign-extends, so when the value is
 * not a sign-extended imm32 the high half is overwritten afterwards (mov leaves flags alone). */
static void em_push_u64(struct emitter *e, uint64_t v)
{
	em_u8(e, 0x68);
	em_u32(e, (uint32_t)v);
	if (fits_i32((int64_t)v))
		return;
	static const uint8_t mov_hi[4] = { 0xc7, 0x44, 0x24, 0x04 }; /* mov dword [rsp+4], imm32 */
	em_bytes(e, mov_hi, sizeof(mov_hi));
	em_u32(e, (uint32_t)(v >> 32));
}

/* ---- analysis ---- */

static int refuse(struct diag_error *err, const struct diag_insn *insn, const char *why)
{
	return diag_error_set(err, -DIAG_E_RELOC, "cannot relocate '%s' at 0x%llx: %s", insn->text,
			      (unsigned long long)insn->addr, why);
}

static const ZydisDecodedOperand *find_op(const struct decoded *d, ZydisOperandType type)
{
	for (unsigned i = 0; i < d->ins.operand_count_visible; i++)
		if (d->ops[i].type == type)
			return &d->ops[i];
	return NULL;
}

static const ZydisDecodedOperand *relative_imm(const struct decoded *d)
{
	const ZydisDecodedOperand *op = find_op(d, ZYDIS_OPERAND_TYPE_IMMEDIATE);

	return op && op->imm.is_relative ? op : NULL;
}

static const ZydisDecodedOperand *riprel_mem(const struct decoded *d)
{
	for (unsigned i = 0; i < d->ins.operand_count; i++)
		if (d->ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
		    (d->ops[i].mem.base == ZYDIS_REGISTER_RIP || d->ops[i].mem.base == ZYDIS_REGISTER_EIP))
			return &d->ops[i];
	return NULL;
}

static const char *why_unrelocatable(const struct decoded *d)
{
	switch (d->ins.mnemonic) {
	case ZYDIS_MNEMONIC_INT3:
		return "an int3 is already there (another debugger or a stale breakpoint)";
	case ZYDIS_MNEMONIC_INT1:
	case ZYDIS_MNEMONIC_INTO:
		return "debug-trap instructions report the slot address to the kernel";
	case ZYDIS_MNEMONIC_XBEGIN:
		return "xbegin's abort address is relative and a transaction would abort on the breakpoint";
	default:
		break;
	}
	if (d->ins.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR &&
	    (d->ins.mnemonic == ZYDIS_MNEMONIC_JMP || d->ins.mnemonic == ZYDIS_MNEMONIC_CALL))
		return "far jumps and calls are not relocated";
	return NULL;
}

/* ---- relocation cases ---- */

/* Copy the instruction at the current slot position, re-aiming a rip-relative displacement at
 * the same absolute address. Fails when the slot is more than 2 GiB away from that address. */
static int em_copy_riprel(struct emitter *e, const struct diag_insn *insn, const struct decoded *d,
			  const uint8_t *bytes, const ZydisDecodedOperand *mem)
{
	ZyanU64 abs;
	int32_t rel;
	uint8_t copy[DIAG_INSN_MAX_LEN];

	/* [eip+disp] wraps at 4 GiB from the slot's own eip: not worth emulating. */
	if (mem->mem.base != ZYDIS_REGISTER_RIP || d->ins.raw.disp.size != 32 ||
	    !ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&d->ins, mem, insn->addr, &abs)))
		return -DIAG_E_INVALID;
	if (!rel_to(em_pc(e), insn->len, abs, &rel))
		return -ERANGE;
	memcpy(copy, bytes, insn->len);
	memcpy(copy + d->ins.raw.disp.offset, &rel, 4);
	em_bytes(e, copy, insn->len);
	return 0;
}

static int riprel_error(struct diag_error *err, const struct diag_insn *insn, int rc)
{
	if (rc == -ERANGE)
		return refuse(err, insn, "rip-relative operand out of reach of the out-of-line page");
	return refuse(err, insn, "unexpected rip-relative encoding");
}

static int build_rel_branch(struct emitter *e, const struct diag_insn *insn, const struct decoded *d,
			    const ZydisDecodedOperand *imm, struct diag_error *err)
{
	uint64_t next = insn->addr + insn->len;
	ZyanU64 target;
	size_t rel8_at;

	if (!ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&d->ins, imm, insn->addr, &target)))
		return refuse(err, insn, "branch target cannot be computed");
	if (d->ins.operand_width != 64)
		return refuse(err, insn, "16/32-bit operand size branches truncate rip");
	switch (d->ins.meta.category) {
	case ZYDIS_CATEGORY_CALL:
		em_push_u64(e, next);
		em_jmp(e, target);
		return 0;
	case ZYDIS_CATEGORY_UNCOND_BR:
		em_jmp(e, target);
		return 0;
	case ZYDIS_CATEGORY_COND_BR:
		break;
	default:
		return refuse(err, insn, "unsupported rip-relative immediate");
	}
	/* Conditional: the same condition, short, over "jmp next" onto "jmp target". jrcxz and loop*
	 * only exist as rel8, so their prefixes (0x67 selects ecx) and opcode are kept as they are;
	 * jcc rel32 becomes jcc rel8 with the same condition code. */
	if (d->ins.raw.imm[0].size == 8) {
		em_bytes(e, insn->bytes, d->ins.raw.imm[0].offset);
	} else {
		em_u8(e, (uint8_t)(0x70 | (d->ins.opcode & 0x0f)));
	}
	rel8_at = e->len;
	em_u8(e, 0);
	em_jmp(e, next);
	if (!e->overflow)
		e->buf[rel8_at] = (uint8_t)(e->len - (rel8_at + 1));
	em_jmp(e, target);
	return 0;
}

/* rsp-based memory operand of an indirect call, re-encoded with disp + 8 because our emulated
 * push has already moved rsp when the jmp reads the operand. */
static int em_jmp_rsp_mem(struct emitter *e, const struct diag_insn *insn, const struct decoded *d,
			  const uint8_t *jmp_bytes, const ZydisDecodedOperand *mem)
{
	int64_t disp = mem->mem.disp.value + 8;
	size_t tail;
	uint8_t modrm_at = d->ins.raw.modrm.offset;

	if (d->ins.raw.modrm.rm != 4 || d->ins.raw.modrm.mod == 3)
		return -DIAG_E_INVALID; /* rsp as base is always encoded with a SIB byte */
	if (!fits_i32(disp))
		return -ERANGE;
	/* Old displacement (0, 1 or 4 bytes) follows the SIB byte; bytes after it are kept. */
	tail = (size_t)modrm_at + 2 + d->ins.raw.disp.size / 8;
	uint8_t modrm = jmp_bytes[modrm_at] & 0x3f;
	int8_t d8 = (int8_t)disp;

	if (d8 == disp) {
		em_bytes(e, jmp_bytes, modrm_at);
		em_u8(e, (uint8_t)(modrm | 0x40));
		em_u8(e, jmp_bytes[modrm_at + 1]);
		em_u8(e, (uint8_t)d8);
	} else {
		em_bytes(e, jmp_bytes, modrm_at);
		em_u8(e, (uint8_t)(modrm | 0x80));
		em_u8(e, jmp_bytes[modrm_at + 1]);
		em_u32(e, (uint32_t)(int32_t)disp);
	}
	em_bytes(e, jmp_bytes + tail, insn->len - tail);
	return 0;
}

static int is_rsp(ZydisRegister r)
{
	return r == ZYDIS_REGISTER_RSP || r == ZYDIS_REGISTER_ESP;
}

/* call r/m64 (FF /2) becomes push next; jmp r/m64 (FF /4) with the same operand. */
static int build_indirect_call(struct emitter *e, const struct diag_insn *insn,
			       const struct decoded *d, struct diag_error *err)
{
	const ZydisDecodedOperand *op = &d->ops[0];
	uint8_t jmp_bytes[DIAG_INSN_MAX_LEN];
	struct diag_insn as_jmp = *insn;
	int rc;

	if (d->ins.opcode != 0xff || d->ins.raw.modrm.reg != 2 || d->ins.operand_width != 64)
		return refuse(err, insn, "unexpected encoding of an indirect call");
	memcpy(jmp_bytes, insn->bytes, insn->len);
	jmp_bytes[d->ins.raw.modrm.offset] = (uint8_t)((jmp_bytes[d->ins.raw.modrm.offset] & ~0x38) | (4 << 3));
	memcpy(as_jmp.bytes, jmp_bytes, insn->len);

	if (op->type == ZYDIS_OPERAND_TYPE_REGISTER && is_rsp(op->reg.value))
		return refuse(err, insn, "call through rsp cannot follow the emulated push");
	if (op->type == ZYDIS_OPERAND_TYPE_MEMORY && is_rsp(op->mem.index))
		return refuse(err, insn, "rsp-indexed operand");
	em_push_u64(e, insn->addr + insn->len);
	if (op->type == ZYDIS_OPERAND_TYPE_MEMORY && riprel_mem(d)) {
		rc = em_copy_riprel(e, &as_jmp, d, jmp_bytes, op);
		return rc < 0 ? riprel_error(err, insn, rc) : 0;
	}
	if (op->type == ZYDIS_OPERAND_TYPE_MEMORY && is_rsp(op->mem.base)) {
		rc = em_jmp_rsp_mem(e, insn, d, jmp_bytes, op);
		return rc < 0 ? refuse(err, insn, "rsp-relative displacement cannot be adjusted") : 0;
	}
	em_bytes(e, jmp_bytes, insn->len);
	return 0;
}

/* syscall leaves the address of the next instruction in rcx; the original leaves its own. */
static int build_syscall(struct emitter *e, const struct diag_insn *insn)
{
	uint64_t next = insn->addr + insn->len;

	em_bytes(e, insn->bytes, insn->len);
	em_u8(e, 0x48);
	em_u8(e, 0xb9); /* mov rcx, imm64 (flags untouched) */
	em_bytes(e, &next, 8);
	em_jmp(e, next);
	return 0;
}

static int build_plain(struct emitter *e, const struct diag_insn *insn, const struct decoded *d,
		       struct diag_error *err)
{
	const ZydisDecodedOperand *mem = riprel_mem(d);
	int rc;

	if (mem) {
		rc = em_copy_riprel(e, insn, d, insn->bytes, mem);
		if (rc < 0)
			return riprel_error(err, insn, rc);
	} else {
		em_bytes(e, insn->bytes, insn->len);
	}
	/* Nothing runs after ret or an indirect jmp; the jump back would be dead bytes. */
	if (d->ins.meta.category != ZYDIS_CATEGORY_RET && d->ins.meta.category != ZYDIS_CATEGORY_UNCOND_BR)
		em_jmp(e, insn->addr + insn->len);
	return 0;
}

int diag_xol_build(const struct diag_insn *insn, uint64_t slot_addr, uint8_t *out, size_t *len,
		   struct diag_error *err)
{
	struct decoded d;
	struct emitter e = { .base = slot_addr };
	const ZydisDecodedOperand *imm;
	const char *why;
	int rc;

	if (!insn || !out || !len || insn->len == 0 || insn->len > DIAG_INSN_MAX_LEN)
		return diag_error_set(err, -EINVAL, "xol: no instruction given");
	rc = decode_raw(insn->bytes, insn->len, &d);
	if (rc < 0 || d.ins.length != insn->len)
		return diag_error_set(err, -DIAG_E_PARSE, "xol: bytes of '%s' at 0x%llx do not decode",
				      insn->text, (unsigned long long)insn->addr);
	why = why_unrelocatable(&d);
	if (why)
		return refuse(err, insn, why);

	imm = relative_imm(&d);
	if (imm)
		rc = build_rel_branch(&e, insn, &d, imm, err);
	else if (d.ins.mnemonic == ZYDIS_MNEMONIC_CALL)
		rc = build_indirect_call(&e, insn, &d, err);
	else if (d.ins.mnemonic == ZYDIS_MNEMONIC_SYSCALL)
		rc = build_syscall(&e, insn);
	else
		rc = build_plain(&e, insn, &d, err);
	if (rc < 0)
		return rc;
	if (e.overflow)
		return refuse(err, insn, "relocated sequence exceeds the slot size");
	memcpy(out, e.buf, e.len);
	*len = e.len;
	return 0;
}

/* ---- straight-line relocation (jump trampolines) ---- */

static const char *why_not_linear(const struct decoded *d)
{
	switch (d->ins.meta.category) {
	case ZYDIS_CATEGORY_CALL:
		return "a call in the displaced bytes would return into the trampoline";
	case ZYDIS_CATEGORY_COND_BR:
	case ZYDIS_CATEGORY_UNCOND_BR:
		return "a branch in the displaced bytes leaves the relocated sequence";
	case ZYDIS_CATEGORY_RET:
		return "a return in the displaced bytes (function shorter than the 5-byte jump)";
	case ZYDIS_CATEGORY_SYSCALL:
	case ZYDIS_CATEGORY_SYSRET:
		return "a syscall in the displaced bytes reports the trampoline address in rcx";
	case ZYDIS_CATEGORY_INTERRUPT:
		return "an interrupt in the displaced bytes reports the trampoline address";
	default:
		break;
	}
	if (relative_imm(d) || d->ins.meta.branch_type != ZYDIS_BRANCH_TYPE_NONE)
		return "a control transfer in the displaced bytes leaves the relocated sequence";
	return why_unrelocatable(d);
}

int diag_insn_relocate_linear(const struct diag_insn *insn, uint64_t at, uint8_t *out, size_t cap,
			      size_t *len, struct diag_error *err)
{
	struct decoded d;
	struct emitter e = { .base = at };
	const ZydisDecodedOperand *mem;
	const char *why;
	int rc;

	if (!insn || !out || !len || insn->len == 0 || insn->len > DIAG_INSN_MAX_LEN)
		return diag_error_set(err, -EINVAL, "relocate: no instruction given");
	rc = decode_raw(insn->bytes, insn->len, &d);
	if (rc < 0 || d.ins.length != insn->len)
		return diag_error_set(err, -DIAG_E_PARSE, "relocate: bytes of '%s' at 0x%llx do not decode",
				      insn->text, (unsigned long long)insn->addr);
	why = why_not_linear(&d);
	if (why)
		return refuse(err, insn, why);
	mem = riprel_mem(&d);
	if (mem) {
		rc = em_copy_riprel(&e, insn, &d, insn->bytes, mem);
		if (rc < 0)
			return riprel_error(err, insn, rc);
	} else {
		em_bytes(&e, insn->bytes, insn->len);
	}
	if (e.len > cap)
		return diag_error_set(err, -ENOSPC, "relocate '%s' at 0x%llx: %zu bytes do not fit in %zu",
				      insn->text, (unsigned long long)insn->addr, e.len, cap);
	memcpy(out, e.buf, e.len);
	*len = e.len;
	return 0;
}

int diag_insn_emit_jmp(uint64_t at, uint64_t target, uint8_t *out, size_t cap, size_t *len)
{
	struct emitter e = { .base = at };

	if (!out || !len)
		return -EINVAL;
	em_jmp(&e, target);
	if (e.len > cap)
		return -ENOSPC;
	memcpy(out, e.buf, e.len);
	*len = e.len;
	return 0;
}
