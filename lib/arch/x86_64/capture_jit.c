/* arch/x86_64/capture_jit: the capture program compiler (see capture_jit.h for the register
 * convention). Each op becomes a few instructions over statically placed stack slots; every
 * memory read of the target goes through [rsi] one byte or one naturally aligned word at a
 * time, so a fault stops at exactly the first byte that cannot be read, as the reference
 * interpreter's reads do. Never emits anything that can block, call, or write outside the
 * record being filled and the trampoline's frame. */
#include "arch/x86_64/capture_jit.h"

#include <stddef.h>
#include <string.h>
#include <sys/user.h>

#include "arch/ring.h"

#define RAX ZYDIS_REGISTER_RAX
#define RCX ZYDIS_REGISTER_RCX
#define RDX ZYDIS_REGISTER_RDX
#define RSP ZYDIS_REGISTER_RSP
#define RBP ZYDIS_REGISTER_RBP
#define RSI ZYDIS_REGISTER_RSI
#define RDI ZYDIS_REGISTER_RDI
#define R14 ZYDIS_REGISTER_R14
#define EAX ZYDIS_REGISTER_EAX
#define ECX ZYDIS_REGISTER_ECX
#define EDX ZYDIS_REGISTER_EDX
#define EBP ZYDIS_REGISTER_EBP
#define R(x) xa_r(ZYDIS_REGISTER_##x)
#define I(v) xa_i((int64_t)(v))

/* ---- registers the trampoline saved ---- */

static const struct {
	size_t off;
	int slot;
} reg_map[] = {
	{ offsetof(struct user_regs_struct, r15), 0 },  { offsetof(struct user_regs_struct, r14), 1 },
	{ offsetof(struct user_regs_struct, r13), 2 },  { offsetof(struct user_regs_struct, r12), 3 },
	{ offsetof(struct user_regs_struct, rbp), 4 },  { offsetof(struct user_regs_struct, rbx), 5 },
	{ offsetof(struct user_regs_struct, r11), 6 },  { offsetof(struct user_regs_struct, r10), 7 },
	{ offsetof(struct user_regs_struct, r9), 8 },   { offsetof(struct user_regs_struct, r8), 9 },
	{ offsetof(struct user_regs_struct, rax), 10 }, { offsetof(struct user_regs_struct, rcx), 11 },
	{ offsetof(struct user_regs_struct, rdx), 12 }, { offsetof(struct user_regs_struct, rsi), 13 },
	{ offsetof(struct user_regs_struct, rdi), 14 }, { offsetof(struct user_regs_struct, rip), 15 },
	{ offsetof(struct user_regs_struct, rsp), 16 }, { offsetof(struct user_regs_struct, eflags), 17 },
	{ offsetof(struct user_regs_struct, fs_base), XJ_SAVED_TP },
};
_Static_assert((int)DIAG_RING_R15 == 0 && (int)DIAG_RING_RDI == 14 &&
	       (int)DIAG_RING_RIP == (int)XJ_SAVED_RIP && (int)DIAG_RING_RSP == (int)XJ_SAVED_RSP &&
	       (int)DIAG_RING_EFLAGS == (int)XJ_SAVED_FLAGS && (int)DIAG_RING_NREGS == (int)XJ_NSAVED,
	       "frame order is diag_ring_rec.regs");

int xj_reg_slot(uint32_t off)
{
	for (size_t i = 0; i < sizeof(reg_map) / sizeof(reg_map[0]); i++)
		if (reg_map[i].off == off)
			return reg_map[i].slot;
	return -1;
}

/* ---- checking ---- */

struct effect {
	int8_t pops, pushes;
	bool save;
};

static bool op_effect(uint8_t op, struct effect *e)
{
	switch (op) {
	case DIAG_CAP_END:
		*e = (struct effect){ 0, 0, false }; /* its depth is checked on its own */
		return true;
	case DIAG_CAP_REG: case DIAG_CAP_FPREG: case DIAG_CAP_CONST:
		*e = (struct effect){ 0, 1, false };
		return true;
	case DIAG_CAP_LOAD: case DIAG_CAP_SEXT: case DIAG_CAP_ZEXT: case DIAG_CAP_NEG:
	case DIAG_CAP_NOT: case DIAG_CAP_LNOT: case DIAG_CAP_STREQ:
		*e = (struct effect){ 1, 1, false };
		return true;
	case DIAG_CAP_JMP:
		*e = (struct effect){ 0, 0, false };
		return true;
	case DIAG_CAP_JZ: case DIAG_CAP_JNZ: case DIAG_CAP_DROP:
		*e = (struct effect){ 1, 0, false };
		return true;
	case DIAG_CAP_DUP:
		*e = (struct effect){ 1, 2, false };
		return true;
	case DIAG_CAP_SAVE_MEM: case DIAG_CAP_SAVE_STR:
		*e = (struct effect){ 1, 0, true };
		return true;
	case DIAG_CAP_SAVE_MEM_N:
		*e = (struct effect){ 2, 0, true };
		return true;
	case DIAG_CAP_SAVE_FPREG:
		*e = (struct effect){ 0, 0, true };
		return true;
	default:
		if (op >= DIAG_CAP_ADD && op <= DIAG_CAP_GEU) {
			*e = (struct effect){ 2, 1, false };
			return true;
		}
		return false;
	}
}

static const char *bad_operand(const struct diag_cap_prog *p, const struct diag_cap_op *o)
{
	switch (o->op) {
	case DIAG_CAP_REG:
		return xj_reg_slot(o->a) < 0 ? "a register the trampoline does not save" : NULL;
	case DIAG_CAP_FPREG: case DIAG_CAP_SAVE_FPREG:
		return o->a >= 8 ? "vector register out of range (xmm0..7)" : NULL;
	case DIAG_CAP_LOAD:
		return o->a == 1 || o->a == 2 || o->a == 4 || o->a == 8 ? NULL : "load size not 1, 2, 4 or 8";
	case DIAG_CAP_SEXT: case DIAG_CAP_ZEXT:
		return o->a == 1 || o->a == 2 || o->a == 4 ? NULL : "extension size not 1, 2 or 4";
	case DIAG_CAP_STREQ:
		if (o->a >= p->nlits || o->a >= DIAG_CAP_MAX_LITS || !p->lits[o->a])
			return "no such literal";
		/* as diag_cap_check: the literal and its NUL within DIAG_CAP_MAX_LIT bytes */
		return strnlen(p->lits[o->a], DIAG_CAP_MAX_LIT) >= DIAG_CAP_MAX_LIT ? "literal too long" : NULL;
	case DIAG_CAP_SAVE_MEM: case DIAG_CAP_SAVE_MEM_N: case DIAG_CAP_SAVE_STR:
		return o->a == 0 || o->a > DIAG_CAP_MAX_PAYLOAD ? "block size not 1 .. DIAG_CAP_MAX_PAYLOAD" : NULL;
	default:
		return NULL;
	}
}

static uint32_t save_bytes(const struct diag_cap_op *o)
{
	if (o->op == DIAG_CAP_SAVE_FPREG)
		return diag_cap_block_bytes(16);
	return diag_cap_block_bytes(o->a);
}

/* Join the path reaching op t with depth d and w payload bytes written. */
static bool merge(struct xj_prog *x, uint32_t *written, size_t t, int d, uint32_t w)
{
	if (x->depth[t] < 0) {
		x->depth[t] = (int8_t)d;
		written[t] = w;
		return true;
	}
	if (written[t] < w)
		written[t] = w;
	return x->depth[t] == d;
}

static int refuse(struct diag_error *err, size_t i, const char *why)
{
	return diag_error_set(err, -DIAG_E_INVALID, "capture program: op %zu: %s", i, why);
}

static int check_op(struct xj_prog *x, uint32_t *written, size_t i, struct diag_error *err)
{
	const struct diag_cap_prog *p = x->p;
	const struct diag_cap_op *o = &p->ops[i];
	int d = x->depth[i], nd;
	uint32_t w = written[i];
	struct effect e;
	const char *why;

	if (!op_effect(o->op, &e))
		return refuse(err, i, "unknown op");
	why = bad_operand(p, o);
	if (why)
		return refuse(err, i, why);
	if (e.save && !x->value)
		return refuse(err, i, "a SAVE op in a condition");
	if (d < e.pops)
		return refuse(err, i, "stack underflow");
	nd = d - e.pops + e.pushes;
	if (nd > DIAG_CAP_MAX_STACK)
		return refuse(err, i, "stack deeper than DIAG_CAP_MAX_STACK");
	if (e.save)
		w += save_bytes(o);
	if (o->op == DIAG_CAP_END) {
		if (d != (x->value ? 0 : 1))
			return refuse(err, i, x->value ? "END with a non-empty stack" : "END without exactly the truth on the stack");
		if (w > x->max_written)
			x->max_written = w;
		return 0;
	}
	if (o->op == DIAG_CAP_JMP || o->op == DIAG_CAP_JZ || o->op == DIAG_CAP_JNZ) {
		if (o->a <= i || o->a >= p->n)
			return refuse(err, i, "jump not forward into the program");
		x->target[o->a] = true;
		if (!merge(x, written, o->a, nd, w))
			return refuse(err, o->a, "stack depth differs between paths");
	}
	if (o->op == DIAG_CAP_JMP)
		return 0;
	if (i + 1 >= p->n)
		return refuse(err, i, "runs off the end without END");
	if (!merge(x, written, i + 1, nd, w))
		return refuse(err, i + 1, "stack depth differs between paths");
	return 0;
}

int xj_check(struct xj_prog *x, const struct diag_cap_prog *p, bool value, struct diag_error *err)
{
	uint32_t written[DIAG_CAP_MAX_OPS + 1] = { 0 };
	int rc;

	if (!p || p->n == 0 || p->n > DIAG_CAP_MAX_OPS || p->nlits > DIAG_CAP_MAX_LITS)
		return diag_error_set(err, -DIAG_E_INVALID, "capture program: %s",
				      !p ? "none given" : "op or literal count out of range");
	x->p = p;
	x->value = value;
	x->max_written = 0;
	memset(x->depth, -1, sizeof(x->depth));
	memset(x->target, 0, sizeof(x->target));
	x->depth[0] = 0;
	for (size_t i = 0; i < p->n; i++) {
		if (x->depth[i] < 0)
			continue;
		rc = check_op(x, written, i, err);
		if (rc < 0)
			return rc;
	}
	if (value && (x->max_written > p->max_payload || p->max_payload > DIAG_CAP_MAX_PAYLOAD))
		return diag_error_set(err, -DIAG_E_INVALID,
				      "capture program: max_payload %u below the %u bytes its blocks can take, or above %d",
				      p->max_payload, x->max_written, DIAG_CAP_MAX_PAYLOAD);
	return 0;
}

/* ---- emitting ---- */

/* Stack slot k (0 = bottom). */
static xop slot(int k)
{
	if (k < 4)
		return xa_r((ZydisRegister)(ZYDIS_REGISTER_R8 + k));
	return xa_m(RSP, 8 * (k - 4), 8);
}

static bool in_reg(int k)
{
	return k < 4;
}

static void set_const(struct xasm *a, int k, uint64_t v)
{
	if (in_reg(k) || (int64_t)v == (int32_t)v) {
		XA(a, MOV, slot(k), I(v));
		return;
	}
	XA(a, MOV, R(RAX), I(v));
	XA(a, MOV, slot(k), R(RAX));
}

static void emit_reg(struct xasm *a, int k, uint32_t off)
{
	int s = xj_reg_slot(off);

	if (s == XJ_SAVED_TP) {
		XA(a, MOV, slot(k), R(R14));
		return;
	}
	XA(a, MOV, R(RAX), xa_m(RSP, XJ_FRAME_REGS + 8 * s, 8));
	XA(a, MOV, slot(k), R(RAX));
}

/* rax = the n-byte value at [rsi], faulting at exactly the first unreadable byte. */
static void emit_load(struct xasm *a, uint32_t n)
{
	uint32_t slow = xa_label_new(a), done = xa_label_new(a);

	if (n == 1) {
		XA(a, MOVZX, R(EAX), xa_m(RSI, 0, 1));
		return;
	}
	XA(a, TEST, R(SIL), I(n - 1));
	xa_jump_short(a, ZYDIS_MNEMONIC_JNZ, slow);
	if (n == 8)
		XA(a, MOV, R(RAX), xa_m(RSI, 0, 8));
	else if (n == 4)
		XA(a, MOV, R(EAX), xa_m(RSI, 0, 4));
	else
		XA(a, MOVZX, R(EAX), xa_m(RSI, 0, 2));
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, done);
	/* Unaligned: byte by byte, rsi on the byte being read. */
	xa_label_here(a, slow);
	XA(a, XOR, R(EAX), R(EAX));
	for (uint32_t j = 0; j < n; j++) {
		XA(a, MOVZX, R(EDX), xa_m(RSI, 0, 1));
		if (j)
			XA(a, SHL, R(RDX), I(8 * j));
		XA(a, OR, R(RAX), R(RDX));
		if (j + 1 < n)
			XA(a, INC, R(RSI));
	}
	xa_label_here(a, done);
}

static void emit_ext(struct xasm *a, int k, const struct diag_cap_op *o)
{
	XA(a, MOV, R(RAX), slot(k));
	if (o->op == DIAG_CAP_SEXT) {
		if (o->a == 1)
			XA(a, MOVSX, R(RAX), R(AL));
		else if (o->a == 2)
			XA(a, MOVSX, R(RAX), R(AX));
		else
			XA(a, MOVSXD, R(RAX), R(EAX));
	} else {
		if (o->a == 1)
			XA(a, MOVZX, R(EAX), R(AL));
		else if (o->a == 2)
			XA(a, MOVZX, R(EAX), R(AX));
		else
			XA(a, MOV, R(EAX), R(EAX));
	}
	XA(a, MOV, slot(k), R(RAX));
}

static ZydisMnemonic alu_mnemonic(uint8_t op)
{
	switch (op) {
	case DIAG_CAP_ADD: return ZYDIS_MNEMONIC_ADD;
	case DIAG_CAP_SUB: return ZYDIS_MNEMONIC_SUB;
	case DIAG_CAP_MUL: return ZYDIS_MNEMONIC_IMUL;
	case DIAG_CAP_AND: return ZYDIS_MNEMONIC_AND;
	case DIAG_CAP_OR: return ZYDIS_MNEMONIC_OR;
	case DIAG_CAP_XOR: return ZYDIS_MNEMONIC_XOR;
	case DIAG_CAP_SHL: return ZYDIS_MNEMONIC_SHL;
	case DIAG_CAP_SHR: return ZYDIS_MNEMONIC_SHR;
	case DIAG_CAP_SAR: return ZYDIS_MNEMONIC_SAR;
	case DIAG_CAP_EQ: return ZYDIS_MNEMONIC_SETZ;
	case DIAG_CAP_NE: return ZYDIS_MNEMONIC_SETNZ;
	case DIAG_CAP_LTS: return ZYDIS_MNEMONIC_SETL;
	case DIAG_CAP_LES: return ZYDIS_MNEMONIC_SETLE;
	case DIAG_CAP_GTS: return ZYDIS_MNEMONIC_SETNLE;
	case DIAG_CAP_GES: return ZYDIS_MNEMONIC_SETNL;
	case DIAG_CAP_LTU: return ZYDIS_MNEMONIC_SETB;
	case DIAG_CAP_LEU: return ZYDIS_MNEMONIC_SETBE;
	case DIAG_CAP_GTU: return ZYDIS_MNEMONIC_SETNBE;
	default: return ZYDIS_MNEMONIC_SETNB; /* GEU */
	}
}

/* a (slot k) OP b (slot k + 1) into slot k */
static void emit_binary(struct xasm *a, int k, uint8_t op)
{
	const ZydisMnemonic m = alu_mnemonic(op);
	const xop rax = R(RAX);

	if (op >= DIAG_CAP_SHL && op <= DIAG_CAP_SAR) {
		XA(a, MOV, R(RCX), slot(k + 1));
		XA(a, MOV, rax, slot(k));
		xa_ins(a, m, 0, 2, (const xop[]){ rax, R(CL) });
	} else if (op >= DIAG_CAP_EQ) {
		XA(a, MOV, rax, slot(k));
		XA(a, XOR, R(ECX), R(ECX));
		XA(a, CMP, rax, slot(k + 1));
		xa_ins(a, m, 0, 1, (const xop[]){ R(CL) });
		XA(a, MOV, slot(k), R(RCX));
		return;
	} else {
		XA(a, MOV, rax, slot(k));
		xa_ins(a, m, 0, 2, (const xop[]){ rax, slot(k + 1) });
	}
	XA(a, MOV, slot(k), rax);
}

/* Division: b == 0 aborts; INT64_MIN / -1 is INT64_MIN rem 0 (idiv would trap). */
static void emit_div(struct xasm *a, const struct xj_prog *x, int k, uint8_t op)
{
	const bool rem = op == DIAG_CAP_REMS || op == DIAG_CAP_REMU;
	uint32_t plain = xa_label_new(a), done = xa_label_new(a);

	XA(a, MOV, R(RCX), slot(k + 1));
	XA(a, TEST, R(RCX), R(RCX));
	xa_jump(a, ZYDIS_MNEMONIC_JZ, x->value ? x->l_abort : x->l_false);
	XA(a, MOV, R(RAX), slot(k));
	if (op == DIAG_CAP_DIVU || op == DIAG_CAP_REMU) {
		XA(a, XOR, R(EDX), R(EDX));
		XA(a, DIV, R(RCX));
	} else {
		XA(a, CMP, R(RCX), I(-1));
		xa_jump_short(a, ZYDIS_MNEMONIC_JNZ, plain);
		if (rem)
			XA(a, XOR, R(EAX), R(EAX));
		else
			XA(a, NEG, R(RAX));
		xa_jump_short(a, ZYDIS_MNEMONIC_JMP, done);
		xa_label_here(a, plain);
		XA0(a, CQO);
		XA(a, IDIV, R(RCX));
	}
	if (rem)
		XA(a, MOV, R(RAX), R(RDX));
	xa_label_here(a, done);
	XA(a, MOV, slot(k), R(RAX));
}

static void emit_streq(struct xasm *a, const struct xj_prog *x, int k, uint32_t lit)
{
	uint32_t loop = xa_label_new(a), eq = xa_label_new(a), ne = xa_label_new(a),
		 done = xa_label_new(a);

	XA(a, MOV, R(RSI), slot(k));
	xa_lea_label(a, RDX, x->l_lits + lit);
	xa_label_here(a, loop);
	XA(a, MOVZX, R(EAX), xa_m(RSI, 0, 1));
	XA(a, CMP, R(AL), xa_m(RDX, 0, 1));
	xa_jump_short(a, ZYDIS_MNEMONIC_JNZ, ne);
	XA(a, TEST, R(AL), R(AL));
	xa_jump_short(a, ZYDIS_MNEMONIC_JZ, eq);
	XA(a, INC, R(RSI));
	XA(a, INC, R(RDX));
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, loop);
	xa_label_here(a, eq);
	set_const(a, k, 1);
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, done);
	xa_label_here(a, ne);
	set_const(a, k, 0);
	xa_label_here(a, done);
}

/* Block header at [rdi]: addr (rsi), kind MEM, len later or now; rbp marks it in progress,
 * rdx its data. */
static void block_begin(struct xasm *a, uint16_t kind)
{
	XA(a, MOV, R(RBP), R(RDI));
	XA(a, MOV, xa_m(RDI, 0, 8), R(RSI));
	XA(a, MOV, xa_m(RDI, 12, 4), I(kind));
	XA(a, LEA, R(RDX), xa_m(RDI, 16, 8));
}

/* Copy rcx bytes from [rsi] to [rdx]: aligned qwords where rsi allows, else bytes. */
static void emit_copy(struct xasm *a)
{
	uint32_t loop = xa_label_new(a), bytes = xa_label_new(a), end = xa_label_new(a);

	xa_label_here(a, loop);
	XA(a, TEST, R(RCX), R(RCX));
	xa_jump_short(a, ZYDIS_MNEMONIC_JZ, end);
	XA(a, TEST, R(SIL), I(7));
	xa_jump_short(a, ZYDIS_MNEMONIC_JNZ, bytes);
	XA(a, CMP, R(RCX), I(8));
	xa_jump_short(a, ZYDIS_MNEMONIC_JB, bytes);
	XA(a, MOV, R(RAX), xa_m(RSI, 0, 8));
	XA(a, MOV, xa_m(RDX, 0, 8), R(RAX));
	XA(a, ADD, R(RSI), I(8));
	XA(a, ADD, R(RDX), I(8));
	XA(a, SUB, R(RCX), I(8));
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, loop);
	xa_label_here(a, bytes);
	XA(a, MOVZX, R(EAX), xa_m(RSI, 0, 1));
	XA(a, MOV, xa_m(RDX, 0, 1), R(AL));
	XA(a, INC, R(RSI));
	XA(a, INC, R(RDX));
	XA(a, DEC, R(RCX));
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, loop);
	xa_label_here(a, end);
}

/* Copy bytes up to and including a NUL, at most rcx of them (rcx >= 1: SAVE_STR's limit). */
static void emit_copy_str(struct xasm *a)
{
	uint32_t loop = xa_label_new(a), end = xa_label_new(a);

	xa_label_here(a, loop);
	XA(a, MOVZX, R(EAX), xa_m(RSI, 0, 1));
	XA(a, MOV, xa_m(RDX, 0, 1), R(AL));
	XA(a, INC, R(RSI));
	XA(a, INC, R(RDX));
	XA(a, TEST, R(AL), R(AL));
	xa_jump_short(a, ZYDIS_MNEMONIC_JZ, end);
	XA(a, DEC, R(RCX));
	xa_jump_short(a, ZYDIS_MNEMONIC_JNZ, loop);
	xa_label_here(a, end);
	/* len = bytes copied */
	XA(a, MOV, R(RAX), R(RDX));
	XA(a, SUB, R(RAX), R(RBP));
	XA(a, SUB, R(RAX), I(16));
	XA(a, MOV, xa_m(RBP, 8, 4), R(EAX));
}

void xj_emit_block_end(struct xasm *a)
{
	uint32_t loop = xa_label_new(a), end = xa_label_new(a);

	xa_label_here(a, loop);
	XA(a, TEST, R(DL), I(7));
	xa_jump_short(a, ZYDIS_MNEMONIC_JZ, end);
	XA(a, MOV, xa_m(RDX, 0, 1), I(0));
	XA(a, INC, R(RDX));
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, loop);
	xa_label_here(a, end);
	XA(a, MOV, R(RDI), R(RDX));
	XA(a, XOR, R(EBP), R(EBP));
}

static void emit_save(struct xasm *a, int d, const struct diag_cap_op *o)
{
	switch (o->op) {
	case DIAG_CAP_SAVE_MEM:
		XA(a, MOV, R(RSI), slot(d - 1));
		block_begin(a, DIAG_CAP_BLOCK_MEM);
		XA(a, MOV, xa_m(RDI, 8, 4), I(o->a));
		/* the padding zeroed first, the copy overwrites its start: no loop at the end */
		if (o->a & 7)
			XA(a, MOV, xa_m(RDI, 16 + (o->a & ~7u), 8), I(0));
		XA(a, MOV, R(ECX), I(o->a));
		emit_copy(a);
		XA(a, LEA, R(RDI), xa_m(RDI, 16 + ((o->a + 7) & ~7u), 8));
		XA(a, XOR, R(EBP), R(EBP));
		return;
	case DIAG_CAP_SAVE_MEM_N:
		XA(a, MOV, R(RSI), slot(d - 2));
		XA(a, MOV, R(RCX), slot(d - 1));
		XA(a, MOV, R(EAX), I(o->a));
		XA(a, CMP, R(RCX), R(RAX));
		XA(a, CMOVNBE, R(RCX), R(RAX));
		block_begin(a, DIAG_CAP_BLOCK_MEM);
		XA(a, MOV, xa_m(RDI, 8, 4), R(ECX));
		emit_copy(a);
		break;
	case DIAG_CAP_SAVE_STR:
		XA(a, MOV, R(RSI), slot(d - 1));
		block_begin(a, DIAG_CAP_BLOCK_MEM);
		XA(a, MOV, xa_m(RDI, 8, 4), I(0)); /* len 0 until the end: tells the landing a string */
		XA(a, MOV, R(ECX), I(o->a));
		emit_copy_str(a);
		break;
	default: /* SAVE_FPREG */
		XA(a, MOV, xa_m(RDI, 0, 8), I(o->a));
		XA(a, MOV, xa_m(RDI, 8, 4), I(16));
		XA(a, MOV, xa_m(RDI, 12, 4), I(DIAG_CAP_BLOCK_FPREG));
		XA(a, MOVUPS, xa_m(RDI, 16, 16), xa_r((ZydisRegister)(ZYDIS_REGISTER_XMM0 + o->a)));
		XA(a, ADD, R(RDI), I(32));
		return;
	}
	xj_emit_block_end(a);
}

static void emit_op(struct xasm *a, const struct xj_prog *x, size_t i, uint32_t l_ops, uint32_t l_end)
{
	const struct diag_cap_op *o = &x->p->ops[i];
	const int d = x->depth[i];

	switch (o->op) {
	case DIAG_CAP_END:
		if (!x->value) {
			XA(a, CMP, slot(0), I(0));
			xa_jump(a, ZYDIS_MNEMONIC_JZ, x->l_false);
		}
		if (i + 1 < x->p->n)
			xa_jump(a, ZYDIS_MNEMONIC_JMP, l_end);
		return;
	case DIAG_CAP_REG:
		emit_reg(a, d, o->a);
		return;
	case DIAG_CAP_FPREG:
		XA(a, MOVQ, R(RAX), xa_r((ZydisRegister)(ZYDIS_REGISTER_XMM0 + o->a)));
		XA(a, MOV, slot(d), R(RAX));
		return;
	case DIAG_CAP_CONST:
		set_const(a, d, o->imm);
		return;
	case DIAG_CAP_LOAD:
		XA(a, MOV, R(RSI), slot(d - 1));
		emit_load(a, o->a);
		XA(a, MOV, slot(d - 1), R(RAX));
		return;
	case DIAG_CAP_SEXT: case DIAG_CAP_ZEXT:
		emit_ext(a, d - 1, o);
		return;
	case DIAG_CAP_DIVS: case DIAG_CAP_DIVU: case DIAG_CAP_REMS: case DIAG_CAP_REMU:
		emit_div(a, x, d - 2, o->op);
		return;
	case DIAG_CAP_NEG:
		XA(a, NEG, slot(d - 1));
		return;
	case DIAG_CAP_NOT:
		XA(a, NOT, slot(d - 1));
		return;
	case DIAG_CAP_LNOT:
		XA(a, XOR, R(EAX), R(EAX));
		XA(a, CMP, slot(d - 1), I(0));
		XA(a, SETZ, R(AL));
		XA(a, MOV, slot(d - 1), R(RAX));
		return;
	case DIAG_CAP_JMP:
		xa_jump(a, ZYDIS_MNEMONIC_JMP, l_ops + o->a);
		return;
	case DIAG_CAP_JZ: case DIAG_CAP_JNZ:
		XA(a, CMP, slot(d - 1), I(0));
		xa_jump(a, o->op == DIAG_CAP_JZ ? ZYDIS_MNEMONIC_JZ : ZYDIS_MNEMONIC_JNZ, l_ops + o->a);
		return;
	case DIAG_CAP_DROP:
		return;
	case DIAG_CAP_DUP:
		XA(a, MOV, R(RAX), slot(d - 1));
		XA(a, MOV, slot(d), R(RAX));
		return;
	case DIAG_CAP_STREQ:
		emit_streq(a, x, d - 1, o->a);
		return;
	case DIAG_CAP_SAVE_MEM: case DIAG_CAP_SAVE_MEM_N: case DIAG_CAP_SAVE_STR:
	case DIAG_CAP_SAVE_FPREG:
		emit_save(a, d, o);
		return;
	default:
		emit_binary(a, d - 2, o->op);
		return;
	}
}

/* DUP; SAVE_MEM n; LOAD n (n = 1, 2, 4, 8) at op i with no jump into it: the expression
 * compiler's read of a value whose bytes the daemon's evaluation needs again. */
static bool is_read_value(const struct xj_prog *x, size_t i)
{
	const struct diag_cap_op *o = &x->p->ops[i];
	uint32_t n;

	if (!x->value || i + 2 >= x->p->n || x->target[i + 1] || x->target[i + 2] ||
	    o[0].op != DIAG_CAP_DUP || o[1].op != DIAG_CAP_SAVE_MEM || o[2].op != DIAG_CAP_LOAD)
		return false;
	n = o[1].a;
	return o[2].a == n && (n == 1 || n == 2 || n == 4 || n == 8);
}

static ZydisRegister reg_of_size(uint32_t n)
{
	return n == 8 ? ZYDIS_REGISTER_RAX : n == 4 ? ZYDIS_REGISTER_EAX : n == 2 ? ZYDIS_REGISTER_AX
									 : ZYDIS_REGISTER_AL;
}

/* rax = the n bytes at [base + disp], zero-extended. */
static void load_zext(struct xasm *a, ZydisRegister base, int64_t disp, uint32_t n)
{
	if (n == 8)
		XA(a, MOV, R(RAX), xa_m(base, disp, 8));
	else if (n == 4)
		XA(a, MOV, R(EAX), xa_m(base, disp, 4)); /* zero-extends to rax */
	else
		XA(a, MOVZX, R(EAX), xa_m(base, disp, n));
}

/* The three ops in one: the n bytes at the top's address copied into a block (one aligned
 * access, else byte by byte, as SAVE_MEM), and the top replaced by their value, read back from
 * the block. Memory is read once; a fault leaves the block as SAVE_MEM's would. */
static void emit_read_value(struct xasm *a, int k, uint32_t n)
{
	uint32_t bytes = xa_label_new(a), back = xa_label_new(a), set = xa_label_new(a);
	const xop val = xa_r(reg_of_size(n));

	XA(a, MOV, R(RSI), slot(k));
	block_begin(a, DIAG_CAP_BLOCK_MEM);
	XA(a, MOV, xa_m(RDI, 8, 4), I(n));
	if (n < 8)
		XA(a, MOV, xa_m(RDI, 16, 8), I(0));
	if (n > 1) {
		XA(a, TEST, R(SIL), I(n - 1));
		xa_jump_short(a, ZYDIS_MNEMONIC_JNZ, bytes);
	}
	load_zext(a, RSI, 0, n);
	XA(a, MOV, xa_m(RDX, 0, n), val);
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, set);
	xa_label_here(a, bytes);
	if (n > 1) {
		XA(a, MOV, R(ECX), I(n));
		xa_label_here(a, back);
		XA(a, MOVZX, R(EAX), xa_m(RSI, 0, 1));
		XA(a, MOV, xa_m(RDX, 0, 1), R(AL));
		XA(a, INC, R(RSI));
		XA(a, INC, R(RDX));
		XA(a, DEC, R(ECX));
		xa_jump_short(a, ZYDIS_MNEMONIC_JNZ, back);
		load_zext(a, RBP, 16, n);
	}
	xa_label_here(a, set);
	XA(a, LEA, R(RDI), xa_m(RBP, 24, 8));
	XA(a, XOR, R(EBP), R(EBP));
	XA(a, MOV, slot(k), R(RAX));
}

void xj_emit(struct xasm *a, const struct xj_prog *x)
{
	uint32_t l_ops = 0, l_end;

	for (size_t i = 0; i < x->p->n; i++) {
		uint32_t l = xa_label_new(a);

		if (i == 0)
			l_ops = l;
	}
	l_end = xa_label_new(a);
	if (x->value)
		XA(a, XOR, R(EBP), R(EBP));
	for (size_t i = 0; i < x->p->n; i++) {
		xa_label_here(a, l_ops + (uint32_t)i);
		if (x->depth[i] < 0)
			continue;
		if (is_read_value(x, i)) {
			emit_read_value(a, x->depth[i] - 1, x->p->ops[i + 1].a);
			xa_label_here(a, l_ops + (uint32_t)i + 1); /* no jump lands there */
			xa_label_here(a, l_ops + (uint32_t)i + 2);
			i += 2;
			continue;
		}
		emit_op(a, x, i, l_ops, l_end);
	}
	xa_label_here(a, l_end);
}

void xj_emit_lits(struct xasm *a, const struct xj_prog *x)
{
	for (size_t i = 0; i < x->p->nlits; i++) {
		xa_label_here(a, x->l_lits + (uint32_t)i);
		xa_bytes(a, x->p->lits[i], strlen(x->p->lits[i]) + 1);
	}
}

void xj_emit_fault_block(struct xasm *a)
{
	uint32_t mem = xa_label_new(a), bytes = xa_label_new(a), qwords = xa_label_new(a),
		 end = xa_label_new(a), done = xa_label_new(a);

	XA(a, TEST, R(RBP), R(RBP));
	xa_jump_short(a, ZYDIS_MNEMONIC_JZ, done);
	XA(a, MOV, R(EAX), xa_m(RBP, 8, 4));
	XA(a, TEST, R(EAX), R(EAX));
	xa_jump_short(a, ZYDIS_MNEMONIC_JNZ, mem);
	/* a string: cut to the bytes copied */
	XA(a, MOV, R(RAX), R(RDX));
	XA(a, SUB, R(RAX), R(RBP));
	XA(a, SUB, R(RAX), I(16));
	XA(a, MOV, xa_m(RBP, 8, 4), R(EAX));
	xj_emit_block_end(a);
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, done);
	/* memory: the block keeps its length, zero past the fault (readers cut it there) */
	xa_label_here(a, mem);
	XA(a, ADD, R(EAX), I(7));
	XA(a, AND, R(EAX), I(-8));
	XA(a, LEA, R(RCX), xa_mx(RBP, RAX, 1, 16, 8));
	xa_label_here(a, bytes);
	XA(a, TEST, R(DL), I(7));
	xa_jump_short(a, ZYDIS_MNEMONIC_JZ, qwords);
	XA(a, MOV, xa_m(RDX, 0, 1), I(0));
	XA(a, INC, R(RDX));
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, bytes);
	xa_label_here(a, qwords);
	XA(a, CMP, R(RDX), R(RCX));
	xa_jump_short(a, ZYDIS_MNEMONIC_JNB, end);
	XA(a, MOV, xa_m(RDX, 0, 8), I(0));
	XA(a, ADD, R(RDX), I(8));
	xa_jump_short(a, ZYDIS_MNEMONIC_JMP, qwords);
	xa_label_here(a, end);
	XA(a, MOV, R(RDI), R(RCX));
	XA(a, XOR, R(EBP), R(EBP));
	xa_label_here(a, done);
}
