/* dwarf/loc: the DWARF expression machine run at a hit: computes where a variable lives (an
 * address, a register, a computed value, pieces) from the registers, the CFA rule and reads
 * through the read_mem callback. Bounded (ops, stack depth, pieces); never touches memory
 * itself and never aborts: a problem is a negative return with its reason in a diag_error. */
#include "dwarf/dwarf.h"

#include <dwarf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/regs.h"
#include "util/error.h"

#define LOC_STACK 32

struct machine {
	const struct diag_loc_machine *m;
	const struct diag_dwarf_frame *fr;
	uint64_t stack[LOC_STACK];
	int sp;
	diag_fpregs fp;
	bool have_fp;
	struct diag_error *err;
};

/* The reason a location cannot be evaluated, in mc->err: -DIAG_E_INVALID. */
static int why(struct machine *mc, const char *fmt, unsigned long long v)
{
	diag_error_set(mc->err, -DIAG_E_INVALID, fmt, v);
	return -DIAG_E_INVALID; /* a constant: the callers' flow analysis sees the failure */
}

/* why() for a message without a number. */
static int stop(struct machine *mc, const char *msg)
{
	diag_error_set(mc->err, -DIAG_E_INVALID, "%s", msg);
	return -DIAG_E_INVALID;
}

/* Bytes of DWARF register regno (0..16 general, 17..32 vector) into out[16]. */
static int reg_bytes(struct machine *mc, uint64_t regno, uint8_t out[16])
{
	memset(out, 0, 16);
	if (regno >= 17 && regno <= 32) {
		if (!mc->have_fp) {
			if (!mc->m->read_fpregs || mc->m->read_fpregs(mc->m->arg, &mc->fp) < 0)
				return why(mc, "<SSE registers not available (xmm%llu)>", regno - 17);
			mc->have_fp = true;
		}
		const uint8_t *v = diag_fpregs_vector(&mc->fp, (unsigned)(regno - 17));
		if (!v)
			return why(mc, "<vector register %llu not available>", regno - 17);
		memcpy(out, v, 16);
		return 0;
	}
	int off = diag_reg_dwarf((int)regno);
	if (off < 0 || !mc->m->regs)
		return why(mc, "<register %llu not available>", regno);
	uint64_t v = diag_reg_get(mc->m->regs, off, 8);
	memcpy(out, &v, 8);
	return 0;
}

static int reg_value(struct machine *mc, uint64_t regno, uint64_t *v)
{
	uint8_t b[16];
	int rc = reg_bytes(mc, regno, b);
	if (rc == 0)
		memcpy(v, b, 8);
	return rc;
}

static int push(struct machine *mc, uint64_t v)
{
	if (mc->sp == LOC_STACK)
		return stop(mc, "<DWARF expression stack overflow>");
	mc->stack[mc->sp++] = v;
	return 0;
}

static int pop(struct machine *mc, uint64_t *v)
{
	if (mc->sp == 0)
		return stop(mc, "<DWARF expression stack underflow>");
	*v = mc->stack[--mc->sp];
	return 0;
}

static int cfa(struct machine *mc, uint64_t *v)
{
	if (!mc->fr || !mc->fr->cfa_known)
		return stop(mc, "<CFA unknown at this address>");
	uint64_t r;
	int rc = reg_value(mc, (uint64_t)mc->fr->cfa_reg, &r);
	if (rc == 0)
		*v = r + (uint64_t)mc->fr->cfa_off;
	return rc;
}

static int eval_value(struct machine *mc, const struct diag_loc *loc, uint64_t *v);

static int frame_base(struct machine *mc, uint64_t *v)
{
	if (!mc->fr || !mc->fr->fb.nops)
		return stop(mc, "<no frame base>");
	struct machine sub = { .m = mc->m, .fr = mc->fr, .err = mc->err };
	if (mc->fr->fb.nops == 1 && mc->fr->fb.ops[0].atom >= DW_OP_reg0 && mc->fr->fb.ops[0].atom <= DW_OP_reg31)
		return reg_value(mc, mc->fr->fb.ops[0].atom - DW_OP_reg0, v); /* old GCC: base in a register */
	return eval_value(&sub, &mc->fr->fb, v);
}

static int deref(struct machine *mc, uint64_t size)
{
	uint64_t a, v = 0;
	int rc = pop(mc, &a);
	if (rc)
		return rc;
	if (size > 8 || !mc->m->read_mem)
		return why(mc, "<bad DW_OP_deref size %llu>", size);
	ssize_t n = mc->m->read_mem(mc->m->arg, a, &v, size);
	if (n != (ssize_t)size)
		return why(mc, "<fault at 0x%llx>", a);
	return push(mc, v);
}

static int binop(struct machine *mc, uint8_t atom)
{
	uint64_t b, a;
	int rc = pop(mc, &b);
	if (rc || (rc = pop(mc, &a)))
		return rc;
	uint64_t r;
	switch (atom) {
	case DW_OP_plus: r = a + b; break;
	case DW_OP_minus: r = a - b; break;
	case DW_OP_mul: r = a * b; break;
	case DW_OP_div: if (!b) return stop(mc, "<division by zero in location>");
		r = (uint64_t)((int64_t)a / (int64_t)b); break;
	case DW_OP_mod: if (!b) return stop(mc, "<division by zero in location>");
		r = a % b; break;
	case DW_OP_and: r = a & b; break;
	case DW_OP_or: r = a | b; break;
	case DW_OP_xor: r = a ^ b; break;
	case DW_OP_shl: r = b >= 64 ? 0 : a << b; break;
	case DW_OP_shr: r = b >= 64 ? 0 : a >> b; break;
	case DW_OP_shra: r = b >= 64 ? (uint64_t)((int64_t)a >> 63) : (uint64_t)((int64_t)a >> b); break;
	case DW_OP_eq: r = a == b; break;
	case DW_OP_ne: r = a != b; break;
	case DW_OP_lt: r = (int64_t)a < (int64_t)b; break;
	case DW_OP_le: r = (int64_t)a <= (int64_t)b; break;
	case DW_OP_gt: r = (int64_t)a > (int64_t)b; break;
	default: r = (int64_t)a >= (int64_t)b; break;
	}
	return push(mc, r);
}

/* One operation that only moves values on the stack. 1: not such an operation. */
static int step(struct machine *mc, const struct diag_loc_op *op)
{
	uint8_t a = op->atom;
	uint64_t v, w;
	int rc;
	if (a >= DW_OP_lit0 && a <= DW_OP_lit31)
		return push(mc, a - DW_OP_lit0);
	if (a >= DW_OP_breg0 && a <= DW_OP_breg31) {
		if ((rc = reg_value(mc, a - DW_OP_breg0, &v)))
			return rc;
		return push(mc, v + op->op1);
	}
	switch (a) {
	case DW_OP_addr:
		return push(mc, op->op1 + mc->m->bias);
	case DW_OP_const1u: case DW_OP_const1s: case DW_OP_const2u: case DW_OP_const2s:
	case DW_OP_const4u: case DW_OP_const4s: case DW_OP_const8u: case DW_OP_const8s:
	case DW_OP_constu: case DW_OP_consts:
		return push(mc, op->op1);
	case DW_OP_bregx:
		if ((rc = reg_value(mc, op->op1, &v)))
			return rc;
		return push(mc, v + op->op2);
	case DW_OP_fbreg:
		if ((rc = frame_base(mc, &v)))
			return rc;
		return push(mc, v + op->op1);
	case DW_OP_call_frame_cfa:
		if ((rc = cfa(mc, &v)))
			return rc;
		return push(mc, v);
	case DW_OP_dup:
		if (!mc->sp)
			return stop(mc, "<DWARF expression stack underflow>");
		return push(mc, mc->stack[mc->sp - 1]);
	case DW_OP_drop:
		return pop(mc, &v);
	case DW_OP_over:
		if (mc->sp < 2)
			return stop(mc, "<DWARF expression stack underflow>");
		return push(mc, mc->stack[mc->sp - 2]);
	case DW_OP_pick:
		if (op->op1 >= (uint64_t)mc->sp)
			return stop(mc, "<DWARF expression stack underflow>");
		return push(mc, mc->stack[mc->sp - 1 - (int)op->op1]);
	case DW_OP_swap:
		if ((rc = pop(mc, &v)) || (rc = pop(mc, &w)) || (rc = push(mc, v)))
			return rc;
		return push(mc, w);
	case DW_OP_deref:
		return deref(mc, 8);
	case DW_OP_deref_size:
		return deref(mc, op->op1);
	case DW_OP_plus_uconst:
		if ((rc = pop(mc, &v)))
			return rc;
		return push(mc, v + op->op1);
	case DW_OP_neg:
	case DW_OP_not:
	case DW_OP_abs:
		if ((rc = pop(mc, &v)))
			return rc;
		v = a == DW_OP_neg ? 0 - v : a == DW_OP_not ? ~v : (int64_t)v < 0 ? 0 - v : v;
		return push(mc, v);
	case DW_OP_plus: case DW_OP_minus: case DW_OP_mul: case DW_OP_div: case DW_OP_mod:
	case DW_OP_and: case DW_OP_or: case DW_OP_xor: case DW_OP_shl: case DW_OP_shr:
	case DW_OP_shra: case DW_OP_eq: case DW_OP_ne: case DW_OP_lt: case DW_OP_le:
	case DW_OP_gt: case DW_OP_ge:
		return binop(mc, a);
	case DW_OP_nop:
		return 0;
	default:
		return 1;
	}
}

static int eval_value(struct machine *mc, const struct diag_loc *loc, uint64_t *v)
{
	for (size_t i = 0; i < loc->nops; i++) {
		int rc = step(mc, &loc->ops[i]);
		if (rc == 1 && loc->ops[i].atom == DW_OP_stack_value)
			break;
		if (rc == 1)
			return why(mc, "<unsupported DWARF operation 0x%llx>", loc->ops[i].atom);
		if (rc)
			return rc;
	}
	return pop(mc, v);
}

/* Where one piece (or the whole object) comes from, after the ops before it ran. */
struct source {
	enum { SRC_MEM, SRC_REG, SRC_VALUE, SRC_IMPLICIT, SRC_EMPTY } kind;
	uint64_t v;
};

static int piece_bytes(struct machine *mc, const struct source *src, uint8_t *out, size_t n)
{
	uint8_t b[16] = { 0 };
	switch (src->kind) {
	case SRC_MEM: {
		if (!mc->m->read_mem)
			return stop(mc, "<no memory access>");
		ssize_t got = mc->m->read_mem(mc->m->arg, src->v, out, n);
		return got == (ssize_t)n ? 0 : why(mc, "<fault at 0x%llx>", src->v + (got > 0 ? (uint64_t)got : 0));
	}
	case SRC_REG: {
		int rc = reg_bytes(mc, src->v, b);
		if (rc)
			return rc;
		break;
	}
	case SRC_VALUE:
	case SRC_IMPLICIT:
		memcpy(b, &src->v, 8);
		break;
	default:
		return stop(mc, "<optimised out>");
	}
	memcpy(out, b, n < 16 ? n : 16);
	return 0;
}

int diag_loc_eval(const struct diag_loc *loc, const struct diag_dwarf_frame *fr,
		  const struct diag_loc_machine *m, uint64_t size, uint64_t *addr, uint8_t *buf,
		  size_t cap, struct diag_error *err)
{
	struct machine mc = { .m = m, .fr = fr, .err = err };
	if (loc->has_const) {
		size_t n = size < 8 ? size : 8;
		memset(buf, 0, size < cap ? size : cap);
		memcpy(buf, &loc->const_val, n < cap ? n : cap);
		return DIAG_LOC_IN_BYTES;
	}
	if (!loc->nops)
		return stop(&mc, "<optimised out>");
	struct source src = { .kind = SRC_EMPTY };
	bool pieces = false, have_src = false;
	size_t filled = 0;
	for (size_t i = 0; i < loc->nops; i++) {
		const struct diag_loc_op *op = &loc->ops[i];
		uint8_t a = op->atom;
		int rc;
		if (a >= DW_OP_reg0 && a <= DW_OP_reg31) {
			src = (struct source){ SRC_REG, a - DW_OP_reg0 };
			have_src = true;
		} else if (a == DW_OP_regx) {
			src = (struct source){ SRC_REG, op->op1 };
			have_src = true;
		} else if (a == DW_OP_stack_value) {
			uint64_t v;
			if ((rc = pop(&mc, &v)))
				return rc;
			src = (struct source){ SRC_VALUE, v };
			have_src = true;
		} else if (a == DW_OP_implicit_value) {
			src = (struct source){ SRC_IMPLICIT, op->op2 };
			have_src = true;
		} else if (a == DW_OP_piece) {
			pieces = true;
			if (!have_src && mc.sp) {
				src = (struct source){ SRC_MEM, mc.stack[mc.sp - 1] };
				mc.sp = 0;
			}
			size_t n = op->op1;
			if (filled + n > cap || filled + n > size)
				n = filled < cap && filled < size ? (cap < size ? cap : size) - filled : 0;
			if (n && (rc = piece_bytes(&mc, &src, buf + filled, n)))
				return rc;
			filled += n;
			src = (struct source){ .kind = SRC_EMPTY };
			have_src = false;
		} else if ((rc = step(&mc, op))) {
			return rc == 1 ? why(&mc, "<unsupported DWARF operation 0x%llx>", a) : rc;
		}
	}
	if (pieces) {
		if (filled < size)
			memset(buf + filled, 0, (size < cap ? size : cap) - filled);
		return DIAG_LOC_IN_BYTES;
	}
	if (!have_src) {
		if (!mc.sp)
			return stop(&mc, "<empty location>");
		*addr = mc.stack[mc.sp - 1];
		return DIAG_LOC_IN_MEMORY;
	}
	size_t n = size < cap ? size : cap;
	memset(buf, 0, n);
	int rc = piece_bytes(&mc, &src, buf, n < 16 ? n : 16);
	return rc ? rc : DIAG_LOC_IN_BYTES;
}

void diag_loc_describe(const struct diag_loc *loc, char *buf, size_t cap)
{
	if (loc->has_const) {
		snprintf(buf, cap, "constant %lld", (long long)loc->const_val);
		return;
	}
	if (!loc->nops) {
		snprintf(buf, cap, "optimised out");
		return;
	}
	const struct diag_loc_op *op = &loc->ops[0];
	uint8_t a = op->atom;
	const char *rn = NULL;
	int regno = a >= DW_OP_reg0 && a <= DW_OP_reg31 ? a - DW_OP_reg0
		: a >= DW_OP_breg0 && a <= DW_OP_breg31 ? a - DW_OP_breg0 : -1;
	if (regno >= 0) {
		int off = diag_reg_dwarf(regno);
		rn = off >= 0 ? diag_reg_name(off) : NULL;
	}
	char rbuf[16];
	if (regno >= 17 && regno <= 32) {
		snprintf(rbuf, sizeof(rbuf), "xmm%d", regno - 17);
		rn = rbuf;
	}
	bool more = loc->nops > 1;
	for (size_t i = 0; i < loc->nops; i++)
		if (loc->ops[i].atom == DW_OP_piece) {
			snprintf(buf, cap, "pieces");
			return;
		}
	if (a >= DW_OP_reg0 && a <= DW_OP_reg31 && rn)
		snprintf(buf, cap, "reg %s", rn);
	else if (a >= DW_OP_breg0 && a <= DW_OP_breg31 && rn)
		snprintf(buf, cap, "[%s%+lld]%s", rn, (long long)op->op1, more ? " (computed)" : "");
	else if (a == DW_OP_fbreg)
		snprintf(buf, cap, "fbreg %lld%s", (long long)op->op1, more ? " (computed)" : "");
	else if (a == DW_OP_addr)
		snprintf(buf, cap, "addr 0x%llx", (unsigned long long)op->op1);
	else
		snprintf(buf, cap, "computed (DW_OP 0x%x, %zu ops)", a, loc->nops);
	if (loc->nops > 1 && loc->ops[loc->nops - 1].atom == DW_OP_stack_value)
		snprintf(buf, cap, "computed value");
}
