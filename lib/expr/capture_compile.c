/* expr/capture_compile: compiles checked expressions into capture programs (arch/capture.h)
 * that a jump trampoline runs in the target (expr.h, diag_expr_capture_compile). The design is
 * compile-then-replay: a value program does not compute the value, it copies exactly the memory
 * (and vector registers) diag_expr_eval will read, in the order eval reads it; the daemon then
 * runs eval itself on the record, served by the snapshot (lib/capture), so the result and its
 * rendering are the exact path's, errors included. A condition program computes the truth in
 * the target when every operand can be computed there (integers, pointers, loads, STREQ);
 * otherwise the condition is decided in the daemon and its reads are captured too.
 *
 * The walk below mirrors eval.c node by node (same order, same widths, same conversions). A
 * number is computed in the target only when something needs it there (an address, a jump, a
 * condition's truth); everything else is left to the daemon. Addresses computed from target
 * data are guarded: one below 4096 (NULL and near it: never mapped) skips the rest of the
 * expression instead of faulting, since eval would stop there with the same "<fault at ...>"
 * read from the snapshot (nothing is captured there). Never touches a process. */
#include "expr/ast.h"

#include <dwarf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/capture.h"
#include "arch/regs.h"
#include "capture/capture.h"
#include "dwarf/dwarf.h"

#define GUARD_BELOW 4096  /* addresses below it are never mapped (page 0) */
#define CC_MAX_SKIPS 64
#define STREQ_PREFIX_MAX 64 /* literals compared by loads, 8 bytes at a time */

/* What a node left: V_NUM and V_MEM hold one stack slot (the number eval would hold, the
 * address eval would read at); V_CONST is a number known now; V_REG the bytes of a general
 * register (a variable living there); V_PIECES a variable in DWARF pieces; V_DAEMON something the daemon computes from the record
 * with nothing left in the target; V_ERROR: eval stops here with an error (the path ended). */
enum cvk { V_NUM, V_CONST, V_MEM, V_REG, V_PIECES, V_DAEMON, V_ERROR };

#define CV_MAX_PIECES 4

struct cv {
	enum cvk k;
	uint64_t u;   /* V_CONST */
	int reg;      /* V_REG: offset in diag_regs */
	bool dyn;     /* V_MEM: computed from target data (guarded before reading) */
	/* V_PIECES (a DWARF location in pieces, its bytes in the record and the captured
	 * blocks): the pieces held whole by one general register, [off, off + len) of the object */
	struct { uint32_t off, len; int reg; } pieces[CV_MAX_PIECES];
	size_t npieces;
};

enum fail { F_NONE, F_DAEMON, F_STOP, F_LIMIT };

struct jump {
	size_t op;
	int depth;    /* stack depth at the target */
};

struct cc {
	struct diag_cap_prog *p;
	const struct diag_expr *x;
	const char *field;
	bool cond;               /* computing a condition's truth in the target */
	int depth;
	bool dead;               /* after a JMP or END: no fall-through */
	size_t barrier;          /* ops before it may be a jump's target: no peephole across */
	uint64_t payload;
	uint32_t regs;           /* diag_regs words eval reads (bit off / 8): the record's subset */
	struct jump skips[CC_MAX_SKIPS]; /* to the end of the current expression */
	size_t nskips;
	enum fail fail;
	char why[DIAG_ERRMSG_MAX];
};

static bool failv(struct cc *c, enum fail f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool failv(struct cc *c, enum fail f, const char *fmt, ...)
{
	if (c->fail)
		return false;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->fail = f;
	return false;
}

/* ---- emission ---- */

static int effect(uint8_t op)
{
	switch (op) {
	case DIAG_CAP_REG: case DIAG_CAP_FPREG: case DIAG_CAP_CONST: case DIAG_CAP_DUP:
		return 1;
	case DIAG_CAP_LOAD: case DIAG_CAP_SEXT: case DIAG_CAP_ZEXT: case DIAG_CAP_NEG:
	case DIAG_CAP_NOT: case DIAG_CAP_LNOT: case DIAG_CAP_STREQ: case DIAG_CAP_JMP:
	case DIAG_CAP_SAVE_FPREG: case DIAG_CAP_END:
		return 0;
	case DIAG_CAP_SAVE_MEM_N:
		return -2;
	default: /* binary ops, comparisons, JZ, JNZ, DROP, SAVE_MEM, SAVE_STR */
		return -1;
	}
}

static bool emit(struct cc *c, uint8_t op, uint32_t a, uint64_t imm);

/* A general register eval reads at off of diag_regs, now or from the record: the record must
 * hold it (a slim record carries only these, arch/ring.h). False when no record saves it. */
static bool use_reg(struct cc *c, uint32_t off)
{
	if (!diag_cap_reg_saved(off))
		return false;
	c->regs |= 1u << (off / 8);
	return true;
}

/* A condition saves nothing: a read only the daemon would look at still decides whether eval
 * faults, so it is made (and dropped) when one load can make it. */
static bool emit_cond_save(struct cc *c, uint8_t op, uint32_t a)
{
	if (op == DIAG_CAP_SAVE_FPREG)
		return true;
	if (op == DIAG_CAP_SAVE_MEM && (a == 1 || a == 2 || a == 4 || a == 8))
		return emit(c, DIAG_CAP_LOAD, a, 0) && emit(c, DIAG_CAP_DROP, 0, 0);
	return failv(c, F_DAEMON, "a condition reading %u bytes for the daemon", a);
}

/* The op before the next one, when no jump lands between them; else NULL. */
static const struct diag_cap_op *prev_op(const struct cc *c, size_t back)
{
	size_t n = c->p->n;
	return n >= back + 1 && n - back - 1 >= c->barrier && !c->dead ? &c->p->ops[n - back - 1] : NULL;
}

/* An extension the top has already: a LOAD zero-extends, and extending twice is once. */
static bool redundant(const struct cc *c, uint8_t op, uint32_t a)
{
	const struct diag_cap_op *p = prev_op(c, 0);
	if (!p)
		return false;
	if (op == DIAG_CAP_ZEXT)
		return (p->op == DIAG_CAP_LOAD && p->a <= a) || (p->op == DIAG_CAP_ZEXT && p->a <= a);
	if (op == DIAG_CAP_SEXT)
		return p->op == DIAG_CAP_SEXT && p->a == a;
	return false;
}

static bool emit(struct cc *c, uint8_t op, uint32_t a, uint64_t imm)
{
	if (c->fail)
		return false;
	if (c->cond && (op == DIAG_CAP_SAVE_MEM || op == DIAG_CAP_SAVE_MEM_N || op == DIAG_CAP_SAVE_STR ||
			op == DIAG_CAP_SAVE_FPREG))
		return emit_cond_save(c, op, a);
	if (c->p->n >= DIAG_CAP_MAX_OPS)
		return failv(c, F_LIMIT, "needs more than the %d operations a capture program may have",
			     DIAG_CAP_MAX_OPS);
	if (redundant(c, op, a))
		return true;
	if (op == DIAG_CAP_REG && !use_reg(c, a))
		return failv(c, F_STOP, "register at offset %u is not saved by a capture in the target", a);
	c->p->ops[c->p->n++] = (struct diag_cap_op){ .op = op, .a = a, .imm = imm };
	c->depth += effect(op);
	if (c->depth > DIAG_CAP_MAX_STACK)
		return failv(c, F_LIMIT, "nests deeper than the %d values a capture program may hold",
			     DIAG_CAP_MAX_STACK);
	if (op == DIAG_CAP_SAVE_MEM || op == DIAG_CAP_SAVE_MEM_N || op == DIAG_CAP_SAVE_STR)
		c->payload += diag_cap_block_bytes(a);
	else if (op == DIAG_CAP_SAVE_FPREG)
		c->payload += diag_cap_block_bytes(16);
	c->dead = op == DIAG_CAP_JMP || op == DIAG_CAP_END;
	return true;
}

static bool k(struct cc *c, uint64_t v)
{
	return emit(c, DIAG_CAP_CONST, 0, v);
}

/* [addr] -> [the size-byte value there], its bytes captured for the daemon's eval. */
static bool read_value(struct cc *c, uint32_t size)
{
	if (!c->cond && (!emit(c, DIAG_CAP_DUP, 0, 0) || !emit(c, DIAG_CAP_SAVE_MEM, size, 0)))
		return false;
	return emit(c, DIAG_CAP_LOAD, size, 0);
}

/* A forward jump whose target is placed later by land(). */
static bool jump(struct cc *c, uint8_t op, struct jump *j)
{
	if (!emit(c, op, 0, 0))
		return false;
	*j = (struct jump){ .op = c->p->n - 1, .depth = c->depth };
	return true;
}

static bool land(struct cc *c, const struct jump *j)
{
	if (c->fail)
		return false;
	c->p->ops[j->op].a = (uint32_t)c->p->n;
	c->barrier = c->p->n;
	if (c->dead) {
		c->depth = j->depth;
		c->dead = false;
	} else if (c->depth != j->depth) {
		return failv(c, F_LIMIT, "internal: stack depths %d and %d meet", c->depth, j->depth);
	}
	return true;
}

/* Jump to the end of the expression: eval stops here (an error, or a read that fails). */
static bool skip_jump(struct cc *c, uint8_t op)
{
	if (c->nskips == CC_MAX_SKIPS)
		return failv(c, F_LIMIT, "needs more than %d guarded reads", CC_MAX_SKIPS);
	return jump(c, op, &c->skips[c->nskips++]);
}

/* eval stops with an error here, whatever the data: nothing more to capture on this path. */
static bool error_here(struct cc *c, struct cv *v)
{
	*v = (struct cv){ .k = V_ERROR };
	return skip_jump(c, DIAG_CAP_JMP);
}

/* [addr] -> [addr]: an address below GUARD_BELOW ends the expression. */
static bool guard(struct cc *c)
{
	return emit(c, DIAG_CAP_DUP, 0, 0) && k(c, GUARD_BELOW) && emit(c, DIAG_CAP_LTU, 0, 0) &&
	       skip_jump(c, DIAG_CAP_JNZ);
}

static bool push_const(struct cc *c, struct cv *v)
{
	if (v->k != V_CONST)
		return true;
	v->k = V_NUM;
	return k(c, v->u);
}

static bool add_const(struct cc *c, uint64_t off)
{
	const struct diag_cap_op *add = prev_op(c, 0), *cst = prev_op(c, 1);
	if (!off)
		return !c->fail;
	if (add && cst && add->op == DIAG_CAP_ADD && cst->op == DIAG_CAP_CONST) { /* fold */
		c->p->ops[c->p->n - 2].imm += off;
		return !c->fail;
	}
	return k(c, off) && emit(c, DIAG_CAP_ADD, 0, 0);
}

/* The top truncated to size bytes and extended (expr_extend). */
static bool extend(struct cc *c, struct cv *v, uint64_t size, bool sg)
{
	if (v->k == V_CONST) {
		v->u = expr_extend(v->u, size, sg);
		return true;
	}
	if (v->k != V_NUM || size >= 8 || size == 0)
		return true;
	if (size == 1 || size == 2 || size == 4)
		return emit(c, sg ? DIAG_CAP_SEXT : DIAG_CAP_ZEXT, (uint32_t)size, 0);
	unsigned sh = 64 - (unsigned)size * 8;
	return k(c, sh) && emit(c, DIAG_CAP_SHL, 0, 0) && k(c, sh) &&
	       emit(c, sg ? DIAG_CAP_SAR : DIAG_CAP_SHR, 0, 0);
}

static bool is_float(const struct diag_type *t)
{
	t = diag_type_strip(t);
	return t && t->kind == DIAG_TYPE_FLOAT;
}

static bool is_ptrish(const struct diag_type *t)
{
	t = diag_type_strip(t);
	return t && (t->kind == DIAG_TYPE_PTR || t->kind == DIAG_TYPE_ARRAY);
}

/* A value the target must hold but cannot compute: decided in the daemon, or refused. */
static bool daemon_only(struct cc *c, const struct expr_node *n, const char *what)
{
	return failv(c, F_DAEMON, "%s at %d:%d cannot be computed in the target", what, n->line, n->col);
}

/* A number needed in the target: V_CONST or V_NUM, else a failure naming n. */
static bool need_num(struct cc *c, const struct expr_node *n, struct cv *v)
{
	if (v->k == V_NUM || v->k == V_CONST || v->k == V_ERROR)
		return true;
	return daemon_only(c, n, is_float(n->type) ? "a floating-point value" : "a value only the daemon knows");
}

/* ---- conversions and loads (eval.c: convert, load, decode) ---- */

static bool convert(struct cc *c, struct cv *v, const struct diag_type *from,
		    const struct diag_type *to)
{
	const struct diag_type *f = diag_type_strip(from), *t = diag_type_strip(to);
	if (v->k == V_DAEMON || v->k == V_ERROR || !t)
		return true;
	bool ff = f && f->kind == DIAG_TYPE_FLOAT;
	if (t->kind == DIAG_TYPE_FLOAT || ff) {
		if (v->k == V_NUM && !emit(c, DIAG_CAP_DROP, 0, 0))
			return false;
		*v = (struct cv){ .k = V_DAEMON };
		return true;
	}
	if (t->kind == DIAG_TYPE_BOOL) {
		if (v->k == V_CONST) {
			v->u = v->u != 0;
			return true;
		}
		return k(c, 0) && emit(c, DIAG_CAP_NE, 0, 0);
	}
	return extend(c, v, t->size, expr_is_signed(t));
}

/* Drop what v holds on the stack: its value is left to the daemon. */
static bool forget(struct cc *c, struct cv *v)
{
	if ((v->k == V_NUM || v->k == V_MEM) && !emit(c, DIAG_CAP_DROP, 0, 0))
		return false;
	if (v->k != V_ERROR)
		*v = (struct cv){ .k = V_DAEMON };
	return true;
}

/* The register holding bytes [off, off + len) of a value in pieces whole, and where they
 * start in it; -1 when no single register piece holds them. */
static int piece_reg(const struct cv *v, uint64_t off, uint64_t len, uint64_t *shift)
{
	for (size_t i = 0; i < v->npieces; i++)
		if (off >= v->pieces[i].off && off + len <= (uint64_t)v->pieces[i].off + v->pieces[i].len) {
			*shift = off - v->pieces[i].off;
			return v->pieces[i].reg;
		}
	return -1;
}

/* eval's load(): a scalar of type t read where v designates; with need its number in the
 * target, else only its bytes captured. */
static bool load(struct cc *c, const struct diag_type *t, struct cv *v, bool need)
{
	if (v->k == V_PIECES) { /* a scalar in pieces: one register may hold it whole */
		const struct diag_type *s = diag_type_strip(t);
		uint64_t shift = 0;
		int r = need && expr_is_scalar(s) && !is_float(s) && s->size <= 8 ?
			piece_reg(v, 0, s->size, &shift) : -1;
		if (r < 0 || shift) {
			*v = (struct cv){ .k = V_DAEMON };
			return true;
		}
		*v = (struct cv){ .k = V_REG, .reg = r };
	}
	if (v->k != V_MEM && v->k != V_REG)
		return true;
	const struct diag_type *s = diag_type_strip(t);
	if (!expr_is_scalar(s) || s->size > 16 || s->size == 0) {
		if (!forget(c, v))
			return false;
		return error_here(c, v); /* "<not a scalar>", "<unsupported scalar size>" */
	}
	bool fl = s->kind == DIAG_TYPE_FLOAT;
	bool loadable = !fl && (s->size == 1 || s->size == 2 || s->size == 4 || s->size == 8);
	if (v->k == V_REG) {
		if (!need || fl || s->size > 8) {
			*v = (struct cv){ .k = V_DAEMON };
			return true;
		}
		if (!emit(c, DIAG_CAP_REG, (uint32_t)v->reg, 0))
			return false;
		*v = (struct cv){ .k = V_NUM };
	} else {
		if (v->dyn && !guard(c))
			return false;
		if (!need || !loadable) {
			*v = (struct cv){ .k = V_DAEMON };
			return emit(c, DIAG_CAP_SAVE_MEM, (uint32_t)s->size, 0);
		}
		if (!read_value(c, (uint32_t)s->size))
			return false;
		*v = (struct cv){ .k = V_NUM };
	}
	if (!extend(c, v, s->size, expr_is_signed(s)))
		return false;
	return s->kind != DIAG_TYPE_BOOL || (k(c, 0) && emit(c, DIAG_CAP_NE, 0, 0));
}

static bool ev(struct cc *c, const struct expr_node *n, bool need, struct cv *v);

/* eval's ev_num: the number n holds, converted to `to`. */
static bool num(struct cc *c, const struct expr_node *n, const struct diag_type *to, bool need,
		struct cv *v)
{
	if (!ev(c, n, need, v) || !load(c, n->type, v, need))
		return false;
	if (!need)
		return forget(c, v);
	return convert(c, v, n->type, to) && need_num(c, n, v);
}

/* eval's ev_address: the address an array or pointer operand designates, on the stack. */
static bool address(struct cc *c, const struct expr_node *n, struct cv *v)
{
	const struct diag_type *s = diag_type_strip(n->type);
	if (s->kind == DIAG_TYPE_ARRAY) {
		if (!ev(c, n, true, v))
			return false;
		if (v->k == V_ERROR)
			return true;
		if (v->k != V_MEM)
			return forget(c, v) && error_here(c, v); /* "<array is not in memory>" */
		v->k = V_NUM;
		return true;
	}
	if (!ev(c, n, true, v) || !load(c, n->type, v, true))
		return false;
	if (v->k == V_ERROR)
		return true;
	if (v->k == V_DAEMON)
		return daemon_only(c, n, "an address held in a vector register or computed with floats");
	return push_const(c, v);
}

/* The truth of a number on the stack (eval's truthy_num), as 0 or 1 when norm. */
static bool truthy(struct cc *c, const struct expr_node *n, struct cv *v, bool norm)
{
	if (is_float(n->type))
		return daemon_only(c, n, "the truth of a floating-point value");
	if (v->k == V_CONST) {
		v->u = v->u != 0;
		return true;
	}
	return !norm || (k(c, 0) && emit(c, DIAG_CAP_NE, 0, 0));
}

/* ---- DWARF locations (dwarf/loc.c, diag_loc_eval, at the probe's pc) ---- */

struct locst {
	struct cc *c;
	const struct expr_node *n;
	const char *name;
	int vals;    /* values this location pushed */
	bool dyn;
};

static bool loc_reg_value(struct locst *l, uint64_t regno)
{
	struct cc *c = l->c;
	if (regno >= 17 && regno <= 32) {
		unsigned x = (unsigned)(regno - 17);
		if (x >= DIAG_CAP_NFPREGS)
			return failv(c, F_LIMIT, "'%s' is computed from vector register %u, which a capture does not save",
				     l->name, x);
		l->vals++;
		return emit(c, DIAG_CAP_SAVE_FPREG, x, 0) && emit(c, DIAG_CAP_FPREG, x, 0);
	}
	int off = diag_reg_dwarf((int)regno);
	if (off < 0 || !use_reg(c, (uint32_t)off))
		return failv(c, F_LIMIT, "'%s' is computed from DWARF register %llu, which a capture does not save",
			     l->name, (unsigned long long)regno);
	if (regno != 6 && regno != 7) /* not the frame or stack pointer: may be any value */
		l->dyn = true;
	l->vals++;
	return emit(c, DIAG_CAP_REG, (uint32_t)off, 0);
}

/* [a] -> [a OP b] where b is on top: the shifts of DWARF and of the language give 0 (or the
 * sign) for a count >= 64, the target's op uses the count's low 6 bits. */
static bool shift(struct cc *c, uint8_t op)
{
	/* jumps are set by jump() before land() reads them: initialised for gcc -O2's sake */
	struct jump big = { 0 }, done = { 0 };
	if (op == DIAG_CAP_SAR) { /* a count >= 64 acts as 63 */
		struct jump ok = { 0 };
		return emit(c, DIAG_CAP_DUP, 0, 0) && k(c, 64) && emit(c, DIAG_CAP_LTU, 0, 0) &&
		       jump(c, DIAG_CAP_JNZ, &ok) && emit(c, DIAG_CAP_DROP, 0, 0) && k(c, 63) &&
		       land(c, &ok) && emit(c, DIAG_CAP_SAR, 0, 0);
	}
	return emit(c, DIAG_CAP_DUP, 0, 0) && k(c, 64) && emit(c, DIAG_CAP_GEU, 0, 0) &&
	       jump(c, DIAG_CAP_JNZ, &big) && emit(c, op, 0, 0) && jump(c, DIAG_CAP_JMP, &done) &&
	       land(c, &big) && emit(c, DIAG_CAP_DROP, 0, 0) && emit(c, DIAG_CAP_DROP, 0, 0) &&
	       k(c, 0) && land(c, &done);
}

static bool loc_ops(struct locst *l, const struct diag_loc *loc, size_t start, size_t end, struct cv *v);

/* The op of a DWARF binary operation, as dwarf/loc.c computes it (div signed, mod unsigned,
 * comparisons signed). */
static uint8_t loc_binop(uint8_t atom)
{
	static const struct { uint8_t dw, cap; } map[] = {
		{ DW_OP_plus, DIAG_CAP_ADD }, { DW_OP_minus, DIAG_CAP_SUB }, { DW_OP_mul, DIAG_CAP_MUL },
		{ DW_OP_div, DIAG_CAP_DIVS }, { DW_OP_mod, DIAG_CAP_REMU }, { DW_OP_and, DIAG_CAP_AND },
		{ DW_OP_or, DIAG_CAP_OR }, { DW_OP_xor, DIAG_CAP_XOR }, { DW_OP_eq, DIAG_CAP_EQ },
		{ DW_OP_ne, DIAG_CAP_NE }, { DW_OP_lt, DIAG_CAP_LTS }, { DW_OP_le, DIAG_CAP_LES },
		{ DW_OP_gt, DIAG_CAP_GTS }, { DW_OP_ge, DIAG_CAP_GES },
	};
	for (size_t m = 0; m < sizeof(map) / sizeof(map[0]); m++)
		if (map[m].dw == atom)
			return map[m].cap;
	return DIAG_CAP_ADD; /* not reached: the callers pass one of the above */
}

static bool loc_frame_base(struct locst *l, struct cv *v)
{
	const struct diag_dwarf_frame *fr = l->c->x->scope ? &l->c->x->scope->frame : NULL;
	if (!fr || !fr->fb.nops)
		return error_here(l->c, v); /* "<no frame base>" */
	const struct diag_loc_op *o = &fr->fb.ops[0];
	if (fr->fb.nops == 1 && o->atom >= DW_OP_reg0 && o->atom <= DW_OP_reg31)
		return loc_reg_value(l, o->atom - DW_OP_reg0);
	int before = l->vals;
	if (!loc_ops(l, &fr->fb, 0, fr->fb.nops, v))
		return false;
	if (v->k == V_ERROR)
		return true;
	if (l->vals != before + 1)
		return failv(l->c, F_LIMIT, "the frame base of '%s' is not one value", l->name);
	return true;
}

/* The stack-machine part of a location: ops [0, end) of loc, values pushed in the target. */
static bool loc_ops(struct locst *l, const struct diag_loc *loc, size_t start, size_t end, struct cv *v)
{
	struct cc *c = l->c;
	const struct diag_dwarf_frame *fr = c->x->scope ? &c->x->scope->frame : NULL;
	for (size_t i = start; i < end && !c->fail; i++) {
		const struct diag_loc_op *o = &loc->ops[i];
		uint8_t a = o->atom;
		bool ok = true;
		if (a >= DW_OP_lit0 && a <= DW_OP_lit31) {
			ok = k(c, a - DW_OP_lit0);
			l->vals++;
			continue;
		}
		if (a >= DW_OP_breg0 && a <= DW_OP_breg31) {
			if (!loc_reg_value(l, a - DW_OP_breg0) || !add_const(c, o->op1))
				return false;
			continue;
		}
		if (a >= DW_OP_reg0 && a <= DW_OP_reg31)
			return failv(c, F_LIMIT, "the location of '%s' names a register before its end", l->name);
		int pops = 0;
		switch (a) {
		case DW_OP_addr:
			ok = k(c, o->op1 + c->x->bias);
			l->vals++;
			break;
		case DW_OP_const1u: case DW_OP_const1s: case DW_OP_const2u: case DW_OP_const2s:
		case DW_OP_const4u: case DW_OP_const4s: case DW_OP_const8u: case DW_OP_const8s:
		case DW_OP_constu: case DW_OP_consts:
			ok = k(c, o->op1);
			l->vals++;
			break;
		case DW_OP_bregx:
			ok = loc_reg_value(l, o->op1) && add_const(c, o->op2);
			break;
		case DW_OP_fbreg:
			if (!loc_frame_base(l, v))
				return false;
			if (v->k == V_ERROR)
				return true;
			ok = add_const(c, o->op1);
			break;
		case DW_OP_call_frame_cfa:
			if (!fr || !fr->cfa_known)
				return error_here(c, v); /* "<CFA unknown at this address>" */
			ok = loc_reg_value(l, (uint64_t)fr->cfa_reg) && add_const(c, (uint64_t)fr->cfa_off);
			break;
		case DW_OP_dup:
			ok = emit(c, DIAG_CAP_DUP, 0, 0);
			l->vals++;
			break;
		case DW_OP_pick:
			if (o->op1 != 0)
				return failv(c, F_LIMIT, "the location of '%s' uses DW_OP_pick", l->name);
			ok = emit(c, DIAG_CAP_DUP, 0, 0);
			l->vals++;
			break;
		case DW_OP_drop:
			ok = emit(c, DIAG_CAP_DROP, 0, 0);
			pops = 1;
			break;
		case DW_OP_deref:
		case DW_OP_deref_size: {
			uint64_t size = a == DW_OP_deref ? 8 : o->op1;
			if (size > 8)
				return error_here(c, v); /* "<bad DW_OP_deref size>" */
			if (size != 1 && size != 2 && size != 4 && size != 8)
				return failv(c, F_LIMIT, "the location of '%s' reads %llu bytes", l->name,
					     (unsigned long long)size);
			ok = (!l->dyn || guard(c)) && read_value(c, (uint32_t)size);
			l->dyn = true;
			break;
		}
		case DW_OP_plus_uconst:
			ok = add_const(c, o->op1);
			break;
		case DW_OP_neg:
			ok = emit(c, DIAG_CAP_NEG, 0, 0);
			break;
		case DW_OP_not:
			ok = emit(c, DIAG_CAP_NOT, 0, 0);
			break;
		case DW_OP_abs: {
			struct jump pos = { 0 };
			ok = emit(c, DIAG_CAP_DUP, 0, 0) && k(c, 0) && emit(c, DIAG_CAP_LTS, 0, 0) &&
			     jump(c, DIAG_CAP_JZ, &pos) && emit(c, DIAG_CAP_NEG, 0, 0) && land(c, &pos);
			break;
		}
		case DW_OP_plus: case DW_OP_minus: case DW_OP_mul: case DW_OP_div: case DW_OP_mod:
		case DW_OP_and: case DW_OP_or: case DW_OP_xor: case DW_OP_eq: case DW_OP_ne:
		case DW_OP_lt: case DW_OP_le: case DW_OP_gt: case DW_OP_ge:
			ok = emit(c, loc_binop(a), 0, 0);
			pops = 1;
			break;
		case DW_OP_shl:
		case DW_OP_shr:
		case DW_OP_shra:
			ok = shift(c, a == DW_OP_shl ? DIAG_CAP_SHL : a == DW_OP_shr ? DIAG_CAP_SHR : DIAG_CAP_SAR);
			pops = 1;
			break;
		case DW_OP_nop:
			break;
		case DW_OP_stack_value: case DW_OP_implicit_value: case DW_OP_regx: case DW_OP_piece:
			return failv(c, F_LIMIT, "the location of '%s' has DW_OP 0x%x before its end", l->name, a);
		case DW_OP_over:
		case DW_OP_swap:
		case DW_OP_rot:
			return failv(c, F_LIMIT, "the location of '%s' reorders its stack (DW_OP 0x%x)", l->name, a);
		default:
			return error_here(c, v); /* eval: "<unsupported DWARF operation>" */
		}
		if (!ok)
			return false;
		l->vals -= pops;
		if (l->vals < 0)
			return error_here(c, v); /* "<DWARF expression stack underflow>" */
	}
	*v = (struct cv){ .k = V_NUM };
	return !c->fail;
}

/* One piece of n bytes at offset filled, from what the ops before it left (dwarf/loc.c,
 * diag_loc_eval): a register (in the record; an xmm saved), memory at the address on top of
 * the stack (saved; the stack then emptied), a computed or implicit value (from what is
 * captured already), or nothing (eval's "<optimised out>"). */
static bool one_piece(struct locst *l, int src, uint64_t regno, uint32_t filled, uint32_t n, struct cv *v)
{
	struct cc *c = l->c;
	if (src == 1) { /* a register */
		if (regno >= 17 && regno <= 32) {
			unsigned x = (unsigned)(regno - 17);
			if (x >= DIAG_CAP_NFPREGS)
				return failv(c, F_LIMIT, "a piece of '%s' lives in vector register %u, which a capture does not save",
					     l->name, x);
			return emit(c, DIAG_CAP_SAVE_FPREG, x, 0);
		}
		int off = diag_reg_dwarf((int)regno);
		if (off < 0)
			return error_here(c, v); /* "<register N not available>" */
		if (!use_reg(c, (uint32_t)off))
			return failv(c, F_STOP, "a piece of '%s' lives in DWARF register %llu, which a capture does not save",
				     l->name, (unsigned long long)regno);
		if (n <= 8 && v->npieces < CV_MAX_PIECES) {
			v->pieces[v->npieces].off = filled;
			v->pieces[v->npieces].len = n;
			v->pieces[v->npieces++].reg = off;
		}
		return true;
	}
	if (src == 0 && l->vals > 0) { /* memory at the top of the stack; the rest dropped */
		if ((l->dyn && !guard(c)) || !(n ? emit(c, DIAG_CAP_SAVE_MEM, n, 0) : emit(c, DIAG_CAP_DROP, 0, 0)))
			return false;
		for (l->vals--; l->vals > 0; l->vals--)
			if (!emit(c, DIAG_CAP_DROP, 0, 0))
				return false;
		return true;
	}
	if (src == 0 && n)
		return error_here(c, v); /* "<optimised out>" */
	return true; /* a value: the daemon computes it again from what was captured */
}

static bool var_pieces(struct locst *l, const struct diag_loc *loc, uint64_t size, struct cv *v)
{
	struct cc *c = l->c;
	int src = 0;           /* 0: none yet (memory if the stack holds an address), 1: register, 2: value */
	uint64_t regno = 0;
	uint32_t filled = 0;
	size_t run = 0;        /* first op of the stack-machine run before the next special op */
	*v = (struct cv){ .k = V_PIECES };
	for (size_t i = 0; i < loc->nops && !c->fail; i++) {
		uint8_t a = loc->ops[i].atom;
		bool special = (a >= DW_OP_reg0 && a <= DW_OP_reg31) || a == DW_OP_regx ||
			       a == DW_OP_stack_value || a == DW_OP_implicit_value || a == DW_OP_piece;
		if (!special)
			continue;
		struct cv r = { 0 };
		if (i > run && (!loc_ops(l, loc, run, i, &r) || r.k == V_ERROR)) {
			*v = r;
			return !c->fail;
		}
		run = i + 1;
		if (a >= DW_OP_reg0 && a <= DW_OP_reg31) {
			src = 1;
			regno = a - DW_OP_reg0;
		} else if (a == DW_OP_regx) {
			src = 1;
			regno = loc->ops[i].op1;
		} else if (a == DW_OP_stack_value) {
			if (l->vals < 1)
				return error_here(c, v); /* "<DWARF expression stack underflow>" */
			if (!emit(c, DIAG_CAP_DROP, 0, 0))
				return false;
			l->vals--;
			src = 2;
		} else if (a == DW_OP_implicit_value) {
			src = 2;
		} else {
			uint64_t want = loc->ops[i].op1;
			uint32_t n = filled + want > size ? (filled < size ? (uint32_t)(size - filled) : 0) : (uint32_t)want;
			if (!one_piece(l, src, regno, filled, n, v))
				return false;
			if (v->k == V_ERROR)
				return true;
			filled += n;
			src = 0;
		}
	}
	if (run < loc->nops)
		return failv(c, F_LIMIT, "the location of '%s' goes on after its last piece", l->name);
	for (; l->vals > 0; l->vals--)
		if (!emit(c, DIAG_CAP_DROP, 0, 0))
			return false;
	return !c->fail;
}

static bool has_atom(const struct diag_loc *loc, uint8_t a1, uint8_t a2)
{
	for (size_t i = 0; i < loc->nops; i++)
		if (loc->ops[i].atom == a1 || loc->ops[i].atom == a2)
			return true;
	return false;
}

/* eval's ev_var: where the variable lives at the probe's pc. */
static bool var(struct cc *c, const struct expr_node *n, struct cv *v)
{
	const struct diag_dwarf_var *dv = expr_var(c->x, n->var);
	const struct diag_loc *loc = &dv->loc;
	if (loc->has_const) {
		*v = (struct cv){ .k = V_CONST, .u = (uint64_t)loc->const_val };
		return true;
	}
	if (!loc->nops) {
		*v = (struct cv){ .k = V_ERROR };
		return error_here(c, v); /* "<optimised out>" */
	}
	if (has_atom(loc, DW_OP_bit_piece, DW_OP_bit_piece))
		return failv(c, F_STOP, "'%s' is split into bit pieces at this address", dv->name);
	if (has_atom(loc, DW_OP_entry_value, DW_OP_GNU_entry_value))
		return failv(c, F_STOP, "'%s' is known here only by its value at the function's entry (DW_OP_entry_value)",
			     dv->name);
	const struct diag_type *t = diag_type_strip(n->type);
	const struct diag_loc_op *last = &loc->ops[loc->nops - 1];
	uint8_t a = last->atom;
	struct locst l = { .c = c, .n = n, .name = dv->name };
	if (has_atom(loc, DW_OP_piece, DW_OP_piece)) {
		uint64_t size = t && t->size ? t->size : 8;
		return var_pieces(&l, loc, size < EXPR_OBJ_MAX ? size : EXPR_OBJ_MAX, v);
	}
	if ((a >= DW_OP_reg0 && a <= DW_OP_reg31) || a == DW_OP_regx) {
		if (loc->nops != 1)
			return failv(c, F_LIMIT, "the location of '%s' computes a register", dv->name);
		uint64_t regno = a == DW_OP_regx ? last->op1 : (uint64_t)(a - DW_OP_reg0);
		if (regno >= 17 && regno <= 32) { /* a vector register: its bytes, in the record */
			unsigned x = (unsigned)(regno - 17);
			if (x >= DIAG_CAP_NFPREGS)
				return failv(c, F_LIMIT, "'%s' lives in vector register %u, which a capture does not save",
					     dv->name, x);
			*v = (struct cv){ .k = V_DAEMON };
			return emit(c, DIAG_CAP_SAVE_FPREG, x, 0);
		}
		int off = diag_reg_dwarf((int)regno);
		if (off < 0)
			return error_here(c, v); /* "<register N not available>" */
		if (!use_reg(c, (uint32_t)off))
			return failv(c, F_STOP, "'%s' lives in DWARF register %llu, which a capture does not save",
				     dv->name, (unsigned long long)regno);
		*v = (struct cv){ .k = V_REG, .reg = off };
		return true;
	}
	if (a == DW_OP_implicit_value) {
		if (loc->nops != 1)
			return failv(c, F_LIMIT, "the location of '%s' is not one implicit value", dv->name);
		*v = (struct cv){ .k = V_CONST, .u = last->op2 };
		if (!expr_is_scalar(t) || is_float(t) || t->size > 8)
			*v = (struct cv){ .k = V_DAEMON };
		return extend(c, v, t ? t->size : 8, expr_is_signed(t));
	}
	bool value = a == DW_OP_stack_value;
	if (!loc_ops(&l, loc, 0, value ? loc->nops - 1 : loc->nops, v))
		return false;
	if (v->k == V_ERROR)
		return true;
	if (l.vals != 1)
		return failv(c, F_LIMIT, "the location of '%s' leaves %d values", dv->name, l.vals);
	if (!value) {
		*v = (struct cv){ .k = V_MEM, .dyn = l.dyn };
		return true;
	}
	/* DW_OP_stack_value: the value's bytes are the computed number */
	*v = (struct cv){ .k = V_NUM };
	if (!expr_is_scalar(t) || is_float(t) || t->size > 8)
		return forget(c, v);
	return extend(c, v, t->size, expr_is_signed(t));
}

/* ---- operators ---- */

static bool compare(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	const struct diag_type *sa = diag_type_strip(n->a->type), *sb = diag_type_strip(n->b->type);
	bool ptrs = !expr_is_integer(n->a->type) && !sa->size ? false :
		(is_ptrish(sa) || is_ptrish(sb));
	const struct diag_type *ct = ptrs ? &expr_t_ulong : expr_arith_type(n->a->type, n->b->type);
	bool fl = ct->kind == DIAG_TYPE_FLOAT;
	struct cv a, b;
	if (fl && need)
		return daemon_only(c, n, "a floating-point comparison");
	if (!num(c, n->a, ct, need, &a))
		return false;
	if (a.k == V_ERROR) {
		*v = a;
		return true;
	}
	if (!num(c, n->b, ct, need, &b))
		return false;
	if (b.k == V_ERROR) {
		*v = b;
		return true;
	}
	if (!need) {
		*v = (struct cv){ .k = V_DAEMON };
		return true;
	}
	bool sg = ct->is_signed;
	uint8_t op;
	switch (n->tok) {
	case T_EQ: op = DIAG_CAP_EQ; break;
	case T_NE: op = DIAG_CAP_NE; break;
	case T_LT: op = sg ? DIAG_CAP_LTS : DIAG_CAP_LTU; break;
	case T_LE: op = sg ? DIAG_CAP_LES : DIAG_CAP_LEU; break;
	case T_GT: op = sg ? DIAG_CAP_GTS : DIAG_CAP_GTU; break;
	default: op = sg ? DIAG_CAP_GES : DIAG_CAP_GEU; break;
	}
	/* b is pushed after a: a constant a needs its slot below b */
	if (a.k == V_CONST && b.k == V_CONST) {
		int64_t x = (int64_t)a.u, y = (int64_t)b.u;
		int cmp = sg ? (x < y ? -1 : x > y) : (a.u < b.u ? -1 : a.u > b.u);
		int r = n->tok == T_EQ ? cmp == 0 : n->tok == T_NE ? cmp != 0 : n->tok == T_LT ? cmp < 0
			: n->tok == T_LE ? cmp <= 0 : n->tok == T_GT ? cmp > 0 : cmp >= 0;
		*v = (struct cv){ .k = V_CONST, .u = (uint64_t)r };
		return true;
	}
	if (a.k == V_CONST) { /* [b] -> [a b]: swap the comparison instead */
		static const uint8_t swapped[DIAG_CAP_NOPS] = {
			[DIAG_CAP_EQ] = DIAG_CAP_EQ, [DIAG_CAP_NE] = DIAG_CAP_NE,
			[DIAG_CAP_LTS] = DIAG_CAP_GTS, [DIAG_CAP_LES] = DIAG_CAP_GES,
			[DIAG_CAP_GTS] = DIAG_CAP_LTS, [DIAG_CAP_GES] = DIAG_CAP_LES,
			[DIAG_CAP_LTU] = DIAG_CAP_GTU, [DIAG_CAP_LEU] = DIAG_CAP_GEU,
			[DIAG_CAP_GTU] = DIAG_CAP_LTU, [DIAG_CAP_GEU] = DIAG_CAP_LEU,
		};
		op = swapped[op];
	}
	if (!push_const(c, &b))
		return false;
	if (a.k == V_CONST && !k(c, a.u))
		return false;
	*v = (struct cv){ .k = V_NUM };
	return emit(c, op, 0, 0);
}

static bool reads_memory(const struct diag_expr *x, const struct expr_node *n);

/* Whether n's number could be computed in the target (conservative: floats and what only the
 * daemon knows say no). */
static bool streq_in_target(const struct expr_node *n);

static bool target_computable(const struct expr_node *n)
{
	if (!n)
		return true;
	if (n->op == N_STREQ)
		return streq_in_target(n) && target_computable(n->a->op == N_CALL ? n->a->a : n->a);
	if (is_float(n->type) || n->op == N_FLOAT || n->op == N_TID || n->op == N_PID ||
	    n->op == N_TIME || n->op == N_ELAPSED || n->op == N_COMM || n->op == N_STRLIT)
		return false;
	return target_computable(n->a) && target_computable(n->b);
}

static bool logic(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	bool oror = n->tok == T_OROR;
	struct cv a, b;
	/* nothing to decide when b reads nothing; and a float or a daemon's value cannot decide
	 * in the target: then b's reads are captured whatever a is (over-capturing; see
	 * docs/architecture.md "Capture in the target" for what a fault there costs) */
	if (!need && (!reads_memory(c->x, n->b) || !target_computable(n->a)))
		return num(c, n->a, NULL, false, &a) && num(c, n->b, NULL, false, &b) &&
		       (*v = (struct cv){ .k = a.k == V_ERROR ? V_ERROR : V_DAEMON }, true);
	if (!num(c, n->a, NULL, true, &a))
		return false;
	if (a.k == V_ERROR) {
		*v = a;
		return true;
	}
	if (!truthy(c, n->a, &a, false))
		return false;
	if (a.k == V_CONST) { /* decided now */
		if ((a.u != 0) == oror) {
			*v = (struct cv){ .k = V_CONST, .u = a.u != 0 };
			return true;
		}
		if (!num(c, n->b, NULL, need, &b))
			return false;
		if (b.k == V_ERROR || !need) {
			*v = b.k == V_ERROR ? b : (struct cv){ .k = V_DAEMON };
			return true;
		}
		*v = b;
		return truthy(c, n->b, v, true);
	}
	struct jump shortcut = { 0 }, done = { 0 };
	if (!need) {
		if (!jump(c, oror ? DIAG_CAP_JNZ : DIAG_CAP_JZ, &shortcut) ||
		    !num(c, n->b, NULL, false, &b))
			return false;
		*v = (struct cv){ .k = V_DAEMON };
		return land(c, &shortcut);
	}
	if (!emit(c, DIAG_CAP_DUP, 0, 0) || !jump(c, oror ? DIAG_CAP_JNZ : DIAG_CAP_JZ, &shortcut) ||
	    !emit(c, DIAG_CAP_DROP, 0, 0) || !num(c, n->b, NULL, true, &b))
		return false;
	bool b_ended = b.k == V_ERROR;
	if (!b_ended && (!push_const(c, &b) || !truthy(c, n->b, &b, true) || !jump(c, DIAG_CAP_JMP, &done)))
		return false;
	if (!land(c, &shortcut) || (oror && (!k(c, 0) || !emit(c, DIAG_CAP_NE, 0, 0))))
		return false;
	if (!b_ended && !land(c, &done))
		return false;
	*v = (struct cv){ .k = V_NUM };
	return true;
}

static bool binary(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	enum expr_tok t = n->tok;
	if (t == T_ANDAND || t == T_OROR)
		return logic(c, n, need, v);
	if (t == T_EQ || t == T_NE || t == T_LT || t == T_LE || t == T_GT || t == T_GE)
		return compare(c, n, need, v);
	const struct diag_type *rt = diag_type_strip(n->type);
	bool pa = is_ptrish(n->a->type), pb = is_ptrish(n->b->type);
	struct cv a, b;
	if (pa) { /* pointer arithmetic: the address is needed even for a capture */
		if (!address(c, n->a, &a) || a.k == V_ERROR)
			return a.k == V_ERROR ? (*v = a, true) : false;
		uint64_t es = expr_elem_size(n->a->type);
		if (pb) {
			if (!address(c, n->b, &b) || b.k == V_ERROR)
				return b.k == V_ERROR ? (*v = b, true) : false;
			*v = (struct cv){ .k = V_NUM };
			if (es > INT64_MAX)
				return emit(c, DIAG_CAP_DROP, 0, 0) && emit(c, DIAG_CAP_DROP, 0, 0) && k(c, 0) &&
				       (need || forget(c, v));
			if (!emit(c, DIAG_CAP_SUB, 0, 0) || (es != 1 && (!k(c, es) || !emit(c, DIAG_CAP_DIVS, 0, 0))))
				return false;
			return need || forget(c, v);
		}
		if (!num(c, n->b, &expr_t_long, true, &b) || b.k == V_ERROR)
			return b.k == V_ERROR && !c->fail ? (*v = b, true) : false;
		if (b.k == V_CONST) {
			uint64_t d = b.u * es;
			if (!add_const(c, t == T_PLUS ? d : 0 - d))
				return false;
		} else if ((es != 1 && (!k(c, es) || !emit(c, DIAG_CAP_MUL, 0, 0))) ||
			   !emit(c, t == T_PLUS ? DIAG_CAP_ADD : DIAG_CAP_SUB, 0, 0)) {
			return false;
		}
		*v = (struct cv){ .k = V_NUM };
		return need || forget(c, v);
	}
	bool shiftop = t == T_SHL || t == T_SHR;
	if (rt->kind == DIAG_TYPE_FLOAT && need)
		return daemon_only(c, n, "floating-point arithmetic");
	if (!num(c, n->a, rt, need, &a))
		return false;
	if (a.k == V_ERROR) {
		*v = a;
		return true;
	}
	if (a.k == V_CONST && need && !push_const(c, &a)) /* keep the operand order [a b] */
		return false;
	if (!num(c, n->b, shiftop ? &expr_t_ulong : rt, need, &b))
		return false;
	if (b.k == V_ERROR) {
		*v = b;
		return true;
	}
	if (!need) {
		*v = (struct cv){ .k = V_DAEMON };
		return true;
	}
	if (!push_const(c, &b)) /* a was pushed before b was computed: [a b] */
		return false;
	bool sg = rt->is_signed;
	/* eval refuses b == 0 with "<division by zero>": the target's DIV aborts there alike */
	uint8_t op;
	switch (t) {
	case T_PLUS: op = DIAG_CAP_ADD; break;
	case T_MINUS: op = DIAG_CAP_SUB; break;
	case T_STAR: op = DIAG_CAP_MUL; break;
	case T_SLASH: op = sg ? DIAG_CAP_DIVS : DIAG_CAP_DIVU; break;
	case T_PCT: op = sg ? DIAG_CAP_REMS : DIAG_CAP_REMU; break;
	case T_AMP: op = DIAG_CAP_AND; break;
	case T_PIPE: op = DIAG_CAP_OR; break;
	case T_CARET: op = DIAG_CAP_XOR; break;
	case T_SHL: op = DIAG_CAP_SHL; break;
	default: op = sg ? DIAG_CAP_SAR : DIAG_CAP_SHR; break;
	}
	*v = (struct cv){ .k = V_NUM };
	if (!(shiftop ? shift(c, op) : emit(c, op, 0, 0)))
		return false;
	return extend(c, v, rt->size, sg);
}

static bool unary(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	if (n->tok != T_BANG && is_float(n->type)) {
		if (need)
			return daemon_only(c, n, "floating-point arithmetic");
		return num(c, n->a, NULL, false, v);
	}
	if (!num(c, n->a, n->tok == T_BANG ? NULL : n->type, need, v) || !need || v->k == V_ERROR)
		return !c->fail;
	if (n->tok == T_BANG) {
		if (!truthy(c, n->a, v, false))
			return false;
		if (v->k == V_CONST) {
			v->u = !v->u;
			return true;
		}
		return emit(c, DIAG_CAP_LNOT, 0, 0);
	}
	if (v->k == V_CONST) {
		v->u = n->tok == T_TILDE ? ~v->u : 0 - v->u;
	} else if (!emit(c, n->tok == T_TILDE ? DIAG_CAP_NOT : DIAG_CAP_NEG, 0, 0)) {
		return false;
	}
	return extend(c, v, n->type->size, n->type->is_signed);
}

/* ---- strings ---- */

static bool add_lit(struct cc *c, const char *s, uint32_t *idx)
{
	struct diag_cap_prog *p = c->p;
	for (size_t i = 0; i < p->nlits; i++)
		if (!strcmp(p->lits[i], s)) {
			*idx = (uint32_t)i;
			return true;
		}
	if (p->nlits == DIAG_CAP_MAX_LITS)
		return failv(c, F_DAEMON, "more than %d string comparisons", DIAG_CAP_MAX_LITS);
	char *dup = strdup(s);
	if (!dup)
		return failv(c, F_LIMIT, "out of memory");
	*idx = (uint32_t)p->nlits;
	p->lits[p->nlits++] = dup;
	return true;
}

static bool address_of_call(struct cc *c, const struct expr_node *n, struct cv *p);

/* [addr] -> [addr]: in a value program, the bytes eval will read there saved first (a
 * condition reads them itself). */
static bool save_for_daemon(struct cc *c, uint8_t op, uint32_t a)
{
	return c->cond || (emit(c, DIAG_CAP_DUP, 0, 0) && emit(c, op, a, 0));
}

/* Whether the truth of `a == "lit"` can be decided in the target by STREQ: a char pointer,
 * a char array longer than the literal, or str(p, max) with a constant max longer than it;
 * never a literal holding a NUL (eval compares its bytes, a C string stops there). */
static bool streq_in_target(const struct expr_node *n)
{
	const struct expr_node *a = n->a, *lit = n->b;
	const struct diag_type *s = diag_type_strip(a->type);
	if (memchr(lit->s, 0, lit->slen) || lit->slen >= DIAG_CAP_MAX_LIT)
		return false;
	if (s->kind == DIAG_TYPE_STRING)
		return a->op == N_CALL && !a->runtime_len && a->max > lit->slen;
	if (s->kind == DIAG_TYPE_ARRAY)
		return s->size > lit->slen || (s->size == lit->slen && lit->slen <= STREQ_PREFIX_MAX);
	return true;
}


/* [p] -> [1 or 0]: the slen bytes at p equal lit's (no NUL looked for after them), by loads
 * of 8, 4, 2 and 1 bytes inside those bytes only (a fault there is eval's too). */
static bool prefix_equal(struct cc *c, const char *lit, size_t slen)
{
	struct jump differ[STREQ_PREFIX_MAX] = { { 0 } }, done = { 0 };
	size_t nd = 0;
	for (size_t off = 0; off < slen && !c->fail;) {
		size_t rest = slen - off;
		uint32_t sz = rest >= 8 ? 8 : rest >= 4 ? 4 : rest >= 2 ? 2 : 1;
		uint64_t want = 0;
		memcpy(&want, lit + off, sz);
		if (!emit(c, DIAG_CAP_DUP, 0, 0) || !add_const(c, off) || !emit(c, DIAG_CAP_LOAD, sz, 0) ||
		    !k(c, want) || !emit(c, DIAG_CAP_NE, 0, 0) || !jump(c, DIAG_CAP_JNZ, &differ[nd++]))
			return false;
		off += sz;
	}
	if (!emit(c, DIAG_CAP_DROP, 0, 0) || !k(c, 1) || !jump(c, DIAG_CAP_JMP, &done))
		return false;
	for (size_t i = 0; i < nd; i++)
		if (!land(c, &differ[i]))
			return false;
	return emit(c, DIAG_CAP_DROP, 0, 0) && k(c, 0) && land(c, &done);
}

/* A condition's str(p, n) == "lit" with a runtime n, as eval decides it: n < 0 is an error;
 * n below the literal's length is 0 (eval still reads the first byte when n > 0, and NULL is
 * an error); n equal to it compares those n bytes alone (an ngx_str_t has no NUL after
 * them); n above it (clamped or not) compares the C string up to its NUL: STREQ. */
static bool streq_runtime(struct cc *c, const struct expr_node *n, struct cv *v)
{
	const struct expr_node *call = n->a, *lit = n->b;
	struct cv p, len;
	struct jump longer = { 0 }, zero = { 0 }, exact = { 0 }, d1 = { 0 }, d2 = { 0 }, d3 = { 0 };
	uint32_t li;
	if (!address_of_call(c, call, &p))
		return false;
	if (p.k == V_ERROR) {
		*v = p;
		return true;
	}
	if (!num(c, call->b, &expr_t_long, true, &len))
		return false;
	if (len.k == V_ERROR) {
		*v = len;
		return true;
	}
	*v = (struct cv){ .k = V_NUM };
	bool ok = push_const(c, &len) &&
		/* [p n] */
		emit(c, DIAG_CAP_DUP, 0, 0) && k(c, lit->slen) && emit(c, DIAG_CAP_LTS, 0, 0) &&
		jump(c, DIAG_CAP_JZ, &longer) &&
		/* shorter: negative is eval's error, 0 reads nothing, else the first byte */
		emit(c, DIAG_CAP_DUP, 0, 0) && k(c, 0) && emit(c, DIAG_CAP_LTS, 0, 0) &&
		skip_jump(c, DIAG_CAP_JNZ) && jump(c, DIAG_CAP_JZ, &zero) &&
		guard(c) && emit(c, DIAG_CAP_LOAD, 1, 0) && emit(c, DIAG_CAP_DROP, 0, 0) && k(c, 0) &&
		jump(c, DIAG_CAP_JMP, &d1) &&
		land(c, &zero) && skip_jump(c, DIAG_CAP_JZ) && k(c, 0) && jump(c, DIAG_CAP_JMP, &d2) &&
		/* [p n], n >= the literal's length */
		land(c, &longer) && k(c, lit->slen) && emit(c, DIAG_CAP_EQ, 0, 0) &&
		jump(c, DIAG_CAP_JNZ, &exact) &&
		guard(c) && add_lit(c, lit->s, &li) && emit(c, DIAG_CAP_STREQ, li, 0) &&
		jump(c, DIAG_CAP_JMP, &d3) &&
		land(c, &exact) && guard(c) && prefix_equal(c, lit->s, lit->slen) &&
		land(c, &d1) && land(c, &d2) && land(c, &d3);
	return ok && (n->tok == T_EQ || emit(c, DIAG_CAP_LNOT, 0, 0));
}

/* eval's ev_streq: a C string operand compared with a literal. */
static bool streq(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	const struct expr_node *a = n->a, *lit = n->b;
	const struct diag_type *s = diag_type_strip(a->type);
	size_t max = lit->slen + 1;
	if (need && c->cond && a->op == N_CALL && a->runtime_len &&
	    lit->slen >= 1 && lit->slen <= STREQ_PREFIX_MAX && !memchr(lit->s, 0, lit->slen))
		return streq_runtime(c, n, v);
	if (need && !streq_in_target(n))
		return daemon_only(c, n, "this string comparison");
	if (s->kind == DIAG_TYPE_STRING) {
		if (!need)
			return ev(c, a, false, v);
		/* str(p, max) == "lit" with max > its length: the C string equals the literal */
		struct cv p;
		if (!address_of_call(c, a, &p))
			return false;
		if (p.k == V_ERROR) {
			*v = p;
			return true;
		}
		uint32_t li;
		if (!guard(c) || !save_for_daemon(c, DIAG_CAP_SAVE_STR, (uint32_t)a->max) ||
		    !add_lit(c, lit->s, &li) || !emit(c, DIAG_CAP_STREQ, li, 0))
			return false;
	} else if (s->kind == DIAG_TYPE_ARRAY) {
		struct cv base;
		if (!ev(c, a, true, &base))
			return false;
		if (base.k == V_ERROR) {
			*v = base;
			return true;
		}
		if (base.k != V_MEM) {
			if (need)
				return daemon_only(c, n, "a comparison of an array held in registers");
			return forget(c, &base);
		}
		size_t len = s->size < max ? s->size : max;
		if (!need) {
			*v = (struct cv){ .k = V_DAEMON };
			return (!base.dyn || guard(c)) && emit(c, DIAG_CAP_SAVE_MEM, (uint32_t)len, 0);
		}
		uint32_t li;
		if ((base.dyn && !guard(c)) || !save_for_daemon(c, DIAG_CAP_SAVE_MEM, (uint32_t)len))
			return false;
		if (s->size == lit->slen) { /* eval compares the whole array, no NUL after it */
			*v = (struct cv){ .k = V_NUM };
			return prefix_equal(c, lit->s, lit->slen) &&
			       (n->tok == T_EQ || emit(c, DIAG_CAP_LNOT, 0, 0));
		}
		if (!add_lit(c, lit->s, &li) || !emit(c, DIAG_CAP_STREQ, li, 0))
			return false;
	} else {
		struct cv p;
		if (!address(c, a, &p))
			return false;
		if (p.k == V_ERROR) {
			*v = p;
			return true;
		}
		/* NULL: "<null string>"; below GUARD_BELOW: a fault at the first byte */
		if (!guard(c))
			return false;
		if (!need) {
			*v = (struct cv){ .k = V_DAEMON };
			return emit(c, DIAG_CAP_SAVE_STR, (uint32_t)max, 0);
		}
		uint32_t li;
		if (!save_for_daemon(c, DIAG_CAP_SAVE_STR, (uint32_t)max) || !add_lit(c, lit->s, &li) ||
		    !emit(c, DIAG_CAP_STREQ, li, 0))
			return false;
	}
	*v = (struct cv){ .k = V_NUM };
	return n->tok == T_EQ || emit(c, DIAG_CAP_LNOT, 0, 0);
}

/* The pointer a str()/bytes() call reads at (eval's ev_call, before its length). */
static bool address_of_call(struct cc *c, const struct expr_node *n, struct cv *p)
{
	const struct diag_type *s = diag_type_strip(n->a->type);
	if (s->kind == DIAG_TYPE_PTR || s->kind == DIAG_TYPE_ARRAY)
		return address(c, n->a, p);
	if (!num(c, n->a, &expr_t_ulong, true, p))
		return false;
	return p->k == V_ERROR || push_const(c, p);
}

static bool call(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	if (n->type->kind != DIAG_TYPE_STRING && n->type->kind != DIAG_TYPE_BYTES)
		return num(c, n->a, &expr_t_ulong, need, v); /* hex() */
	struct cv p;
	if (!address_of_call(c, n, &p))
		return false;
	if (p.k == V_ERROR) {
		*v = p;
		return true;
	}
	*v = (struct cv){ .k = V_DAEMON };
	if (n->runtime_len) { /* min(len, bound) bytes: eval's str stops at a NUL inside them */
		struct cv len;
		if (!num(c, n->b, &expr_t_long, true, &len))
			return false;
		if (len.k == V_ERROR) {
			*v = len;
			return true;
		}
		return push_const(c, &len) && emit(c, DIAG_CAP_SAVE_MEM_N, (uint32_t)n->max, 0);
	}
	/* NULL: "<null pointer>"; a fault at the first byte ends eval too */
	if (!guard(c))
		return false;
	return emit(c, n->type->kind == DIAG_TYPE_STRING ? DIAG_CAP_SAVE_STR : DIAG_CAP_SAVE_MEM,
		    (uint32_t)n->max, 0);
}

/* ---- places ---- */

/* A member of a small struct held in one general register (its bytes, lowest first), at byte
 * off of that register. */
static bool reg_member(struct cc *c, const struct cv *base, uint64_t off, const struct diag_member *m,
		       bool need, struct cv *v)
{
	const struct diag_type *mt = diag_type_strip(m->type);
	*v = (struct cv){ .k = V_DAEMON };
	if (!need)
		return true;
	if (m->bit_size || !expr_is_scalar(mt) || is_float(mt) || off >= 8 || mt->size > 8 - off)
		return failv(c, F_DAEMON, "member '%s' of a value held in a register cannot be computed in the target",
			     m->name ? m->name : "");
	*v = (struct cv){ .k = V_NUM };
	if (!emit(c, DIAG_CAP_REG, (uint32_t)base->reg, 0) ||
	    (off && (!k(c, off * 8) || !emit(c, DIAG_CAP_SHR, 0, 0))) ||
	    !extend(c, v, mt->size, expr_is_signed(mt)))
		return false;
	return mt->kind != DIAG_TYPE_BOOL || (k(c, 0) && emit(c, DIAG_CAP_NE, 0, 0));
}

static bool member(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	struct cv base;
	if (n->tok == T_ARROW) {
		if (!address(c, n->a, &base))
			return false;
		if (base.k != V_ERROR)
			base = (struct cv){ .k = V_MEM, .dyn = true };
	} else if (!ev(c, n->a, true, &base)) {
		return false;
	}
	if (base.k == V_ERROR) {
		*v = base;
		return true;
	}
	const struct diag_member *m = n->member;
	if (base.k == V_REG)
		return reg_member(c, &base, m->offset, m, need, v);
	if (base.k == V_PIECES) { /* the member inside one register piece, or the daemon's */
		const struct diag_type *mt = diag_type_strip(m->type);
		uint64_t shift = 0;
		int r = piece_reg(&base, m->offset, mt && mt->size ? mt->size : 8, &shift);
		if (r >= 0)
			return reg_member(c, &(struct cv){ .k = V_REG, .reg = r }, shift, m, need, v);
		*v = (struct cv){ .k = V_DAEMON };
		return !need || daemon_only(c, n, "a member of a value in DWARF pieces");
	}
	if (base.k != V_MEM) { /* bytes only the daemon holds */
		if (!forget(c, &base))
			return false;
		*v = (struct cv){ .k = V_DAEMON };
		return true;
	}
	if (!add_const(c, m->offset))
		return false;
	*v = base;
	if (!m->bit_size)
		return true;
	if (!expr_bitfield_fits(m))
		return forget(c, v) && error_here(c, v); /* "<bit field too wide>" */
	uint32_t bytes = (uint32_t)((m->bit_offset + m->bit_size + 7) / 8);
	if (v->dyn && !guard(c))
		return false;
	bool loadable = bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8;
	if (!need) {
		*v = (struct cv){ .k = V_DAEMON };
		return emit(c, DIAG_CAP_SAVE_MEM, bytes, 0);
	}
	if (!loadable)
		return daemon_only(c, n, "a bit field spread over 3, 5, 6 or 7 bytes");
	if (!read_value(c, bytes))
		return false;
	*v = (struct cv){ .k = V_NUM };
	if (m->bit_offset && (!k(c, m->bit_offset) || !emit(c, DIAG_CAP_SHR, 0, 0)))
		return false;
	if (m->bit_size < 64 && (!k(c, (1ULL << m->bit_size) - 1) || !emit(c, DIAG_CAP_AND, 0, 0)))
		return false;
	if (expr_is_signed(m->type) && m->bit_size < 64) {
		unsigned sh = 64 - (unsigned)m->bit_size;
		return k(c, sh) && emit(c, DIAG_CAP_SHL, 0, 0) && k(c, sh) && emit(c, DIAG_CAP_SAR, 0, 0);
	}
	return true;
}

static bool index_(struct cc *c, const struct expr_node *n, struct cv *v)
{
	struct cv idx, base;
	if (!num(c, n->b, &expr_t_long, true, &idx))
		return false;
	if (idx.k == V_ERROR) {
		*v = idx;
		return true;
	}
	const struct diag_type *s = diag_type_strip(n->a->type);
	uint64_t es = expr_elem_size(s);
	if (idx.k == V_NUM && es != 1 && (!k(c, es) || !emit(c, DIAG_CAP_MUL, 0, 0)))
		return false;
	bool ok;
	if (s->kind == DIAG_TYPE_ARRAY) {
		ok = ev(c, n->a, true, &base);
		if (ok && base.k != V_MEM && base.k != V_ERROR) { /* an array held in registers */
			if (!forget(c, &base) || (idx.k == V_NUM && !emit(c, DIAG_CAP_DROP, 0, 0)))
				return false;
			*v = (struct cv){ .k = V_DAEMON };
			return true;
		}
	} else {
		ok = address(c, n->a, &base);
		base.dyn = true;
	}
	if (!ok)
		return false;
	if (base.k == V_ERROR) {
		*v = base;
		return true;
	}
	if (idx.k == V_CONST ? !add_const(c, idx.u * es) : !emit(c, DIAG_CAP_ADD, 0, 0))
		return false;
	*v = (struct cv){ .k = V_MEM, .dyn = base.k == V_MEM ? base.dyn : true };
	if (s->kind != DIAG_TYPE_ARRAY || idx.k == V_NUM)
		v->dyn = true;
	return true;
}

/* A register read the way eval reads N_REG / N_ARG: width bytes, extended by the type. */
static bool reg(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	if (!use_reg(c, (uint32_t)n->reg_off)) /* the record would read it as 0 */
		return failv(c, F_STOP, "$%s at %d:%d is not saved by a capture in the target", n->s,
			     n->line, n->col);
	if (!need) {
		*v = (struct cv){ .k = V_DAEMON };
		return true;
	}
	*v = (struct cv){ .k = V_NUM };
	if (!emit(c, DIAG_CAP_REG, (uint32_t)n->reg_off, 0))
		return false;
	if (n->reg_width < 8 && !extend(c, v, n->reg_width, false))
		return false;
	return extend(c, v, n->reg_width, expr_is_signed(n->type));
}

/* eval's ret_aggregate and the float result: vector registers go into the record. */
static bool retval(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	const struct diag_type *t = diag_type_strip(n->type);
	/* eval reads both integer return registers for any result (ret_aggregate) */
	if (!use_reg(c, (uint32_t)diag_reg_ret()) || !use_reg(c, (uint32_t)diag_reg_ret2()) ||
	    !use_reg(c, (uint32_t)n->reg_off))
		return failv(c, F_STOP, "the result's registers are not saved by a capture in the target");
	if (t->kind == DIAG_TYPE_STRUCT || t->kind == DIAG_TYPE_UNION) {
		if (t->size > 16) {
			*v = (struct cv){ .k = V_MEM, .dyn = true };
			return emit(c, DIAG_CAP_REG, (uint32_t)diag_reg_ret(), 0);
		}
		bool sse[2] = { t->nmembers > 0, t->nmembers > 0 };
		for (size_t i = 0; i < t->nmembers; i++) {
			size_t eb = t->members[i].offset / 8;
			if (eb < 2 && !is_float(t->members[i].type))
				sse[eb] = false;
		}
		int si = 0;
		for (size_t eb = 0; eb * 8 < t->size && eb < 2; eb++)
			if (sse[eb] && !emit(c, DIAG_CAP_SAVE_FPREG, (uint32_t)si++, 0))
				return false;
		*v = (struct cv){ .k = V_DAEMON };
		return true;
	}
	if (t->kind == DIAG_TYPE_FLOAT && t->size <= 8) {
		*v = (struct cv){ .k = V_DAEMON };
		return emit(c, DIAG_CAP_SAVE_FPREG, 0, 0);
	}
	if (!need) {
		*v = (struct cv){ .k = V_DAEMON };
		return true;
	}
	*v = (struct cv){ .k = V_NUM };
	return emit(c, DIAG_CAP_REG, (uint32_t)n->reg_off, 0) &&
	       convert(c, v, &expr_t_ulong, n->type);
}

static bool ev(struct cc *c, const struct expr_node *n, bool need, struct cv *v)
{
	*v = (struct cv){ .k = V_DAEMON };
	if (c->fail)
		return false;
	switch (n->op) {
	case N_INT:
		*v = (struct cv){ .k = V_CONST, .u = (uint64_t)n->ival };
		return true;
	case N_FLOAT:
	case N_STRLIT:
		return true;
	case N_REG:
	case N_ARG:
		return reg(c, n, need, v);
	case N_RETVAL:
		return retval(c, n, need, v);
	case N_TID: case N_PID: case N_TIME: case N_ELAPSED: case N_COMM:
		return !need || daemon_only(c, n, n->op == N_COMM ? "$comm" : n->op == N_TIME ? "$time"
					    : n->op == N_ELAPSED ? "elapsed" : "$tid or $pid");
	case N_VAR:
		return var(c, n, v);
	case N_UNARY:
		return unary(c, n, need, v);
	case N_BINARY:
		return binary(c, n, need, v);
	case N_STREQ:
		return streq(c, n, need, v);
	case N_DEREF:
		if (!address(c, n->a, v))
			return false;
		if (v->k != V_ERROR)
			*v = (struct cv){ .k = V_MEM, .dyn = true };
		return true;
	case N_ADDR:
		if (!ev(c, n->a, true, v) || v->k == V_ERROR)
			return !c->fail;
		if (v->k != V_MEM)
			return forget(c, v) && error_here(c, v); /* "<no address: ...>" */
		v->k = V_NUM;
		return need || forget(c, v);
	case N_MEMBER:
		return member(c, n, need, v);
	case N_INDEX:
		return index_(c, n, v);
	case N_CAST:
		return num(c, n->a, n->type, need, v);
	case N_CALL:
		return call(c, n, need, v);
	case N_STACK:
		return failv(c, F_STOP, "`stack` needs the thread stopped");
	default:
		return failv(c, F_STOP, "node %d cannot run in the target", (int)n->op);
	}
}

/* ---- the root (eval's finish) ---- */

/* [p] -> []: the C string at p as read_cstr reads it (NULL and near it skipped). */
static bool string_at_pointer(struct cc *c)
{
	struct jump skip = { 0 }, next = { 0 };
	return emit(c, DIAG_CAP_DUP, 0, 0) && k(c, GUARD_BELOW) && emit(c, DIAG_CAP_LTU, 0, 0) &&
	       jump(c, DIAG_CAP_JNZ, &skip) && emit(c, DIAG_CAP_SAVE_STR, EXPR_STR_MAX, 0) &&
	       jump(c, DIAG_CAP_JMP, &next) && land(c, &skip) && emit(c, DIAG_CAP_DROP, 0, 0) &&
	       land(c, &next);
}

struct strings {
	struct cc *c;
	uint64_t objlen;
};

/* [obj] -> [obj]: the C string a char pointer at off points to, as capture_string reads it;
 * a pointer below GUARD_BELOW (NULL included) is skipped (eval: null, or a fault it keeps). */
static void one_string(void *arg, uint64_t off)
{
	struct strings *s = arg;
	struct cc *c = s->c;
	if (off + 8 > s->objlen)
		return;
	(void)(emit(c, DIAG_CAP_DUP, 0, 0) && add_const(c, off) && emit(c, DIAG_CAP_LOAD, 8, 0) &&
	       string_at_pointer(c));
}

struct reg_strings {
	struct cc *c;
	const struct cv *v;
	bool ok;
};

static void reg_string(void *arg, uint64_t off)
{
	struct reg_strings *rs = arg;
	uint64_t shift = 0;
	int r = piece_reg(rs->v, off, 8, &shift);
	if (!rs->c->fail && (r < 0 || shift))
		rs->ok = false;
	else if (!rs->c->fail)
		rs->ok = emit(rs->c, DIAG_CAP_REG, (uint32_t)r, 0) && string_at_pointer(rs->c);
}

static void count_string(void *arg, uint64_t off)
{
	(void)off;
	++*(size_t *)arg;
}

static bool root_value(struct cc *c, const struct expr_node *root)
{
	const struct diag_type *t = diag_type_strip(root->type);
	struct cv v;
	if (t->kind == DIAG_TYPE_STRING || t->kind == DIAG_TYPE_BYTES)
		return ev(c, root, false, &v) && forget(c, &v);
	if (t->kind == DIAG_TYPE_VOID || t->kind == DIAG_TYPE_FUNC)
		return ev(c, root, false, &v) && forget(c, &v);
	if (t->kind == DIAG_TYPE_STRUCT || t->kind == DIAG_TYPE_UNION || t->kind == DIAG_TYPE_ARRAY) {
		if (!ev(c, root, true, &v) || v.k == V_ERROR)
			return !c->fail;
		uint64_t n = t->size < EXPR_OBJ_MAX ? t->size : EXPR_OBJ_MAX;
		struct strings s = { .c = c, .objlen = n };
		if (v.k == V_REG) /* one register: a value in one piece */
			v = (struct cv){ .k = V_PIECES, .npieces = 1, .pieces = { { 0, 8, v.reg } } };
		if (v.k == V_PIECES) { /* the pointers in registers, their strings read */
			struct reg_strings rs = { .c = c, .v = &v, .ok = true };
			expr_walk_strings(t, 0, n, reg_string, &rs, 0);
			return rs.ok || daemon_only(c, root, "the strings of a value in DWARF pieces outside registers");
		}
		if (v.k != V_MEM) { /* bytes the daemon has, not their strings */
			size_t count = 0;
			expr_walk_strings(t, 0, n, count_string, &count, 0);
			if (count)
				return daemon_only(c, root, "the strings of a value held in registers");
			return forget(c, &v);
		}
		if (v.dyn && !guard(c))
			return false;
		if (n && (!emit(c, DIAG_CAP_DUP, 0, 0) || !emit(c, DIAG_CAP_SAVE_MEM, (uint32_t)n, 0)))
			return false;
		expr_walk_strings(t, 0, n, one_string, &s, 0);
		return emit(c, DIAG_CAP_DROP, 0, 0);
	}
	bool cp = expr_is_char_ptr(t);
	if (!ev(c, root, cp, &v) || !load(c, root->type, &v, cp))
		return false;
	if (!cp || v.k == V_ERROR)
		return forget(c, &v);
	if (v.k == V_DAEMON) /* eval reads the string it points to: the target must know where */
		return daemon_only(c, root, "a char pointer held by the daemon only");
	return push_const(c, &v) && string_at_pointer(c); /* read_cstr unless below the guard */
}

/* ---- expressions and programs ---- */

/* Whether evaluating n may read target memory (conservative: a variable in memory counts). */
static bool reads_memory(const struct diag_expr *x, const struct expr_node *n)
{
	if (!n)
		return false;
	switch (n->op) {
	case N_VAR: {
		const struct diag_dwarf_var *dv = expr_var(x, n->var);
		if (dv->loc.has_const || !dv->loc.nops)
			return false;
		uint8_t a = dv->loc.ops[0].atom;
		return !(dv->loc.nops == 1 && ((a >= DW_OP_reg0 && a <= DW_OP_reg31) || a == DW_OP_regx ||
					      a == DW_OP_implicit_value));
	}
	case N_DEREF: case N_INDEX: case N_STREQ: case N_RETVAL: case N_STACK:
		return true;
	case N_MEMBER:
		return n->tok == T_ARROW || reads_memory(x, n->a);
	case N_CALL:
		return strcmp(n->s, "hex") != 0 || reads_memory(x, n->a);
	default:
		return reads_memory(x, n->a) || reads_memory(x, n->b);
	}
}

/* The end of one expression: its skips land in a chain of DROPs down to depth 0; a
 * condition's (truth: the normal path holds [t]) then gives 0. */
static bool close_expr(struct cc *c, bool truth)
{
	if (!c->nskips || c->fail)
		return !c->fail;
	struct jump done = { 0 };
	bool alive = !c->dead;
	if (alive && !jump(c, DIAG_CAP_JMP, &done))
		return false;
	int maxd = 0;
	for (size_t i = 0; i < c->nskips; i++)
		if (c->skips[i].depth > maxd)
			maxd = c->skips[i].depth;
	bool chain = false;
	for (int d = maxd; d >= 0; d--) {
		for (size_t i = 0; i < c->nskips; i++)
			if (c->skips[i].depth == d) {
				if (!land(c, &c->skips[i]))
					return false;
				chain = true;
			}
		if (chain && d > 0 && !emit(c, DIAG_CAP_DROP, 0, 0))
			return false;
	}
	c->nskips = 0;
	if (truth && !k(c, 0))
		return false;
	return !alive || land(c, &done);
}

static void start_expr(struct cc *c, const struct diag_expr *x, bool cond)
{
	c->x = x;
	c->barrier = c->p->n;
	c->cond = cond;
	c->nskips = 0;
	c->depth = 0;
	c->dead = false;
}

/* The memory (and vector registers) diag_expr_eval of x will read; nothing on the stack. */
static bool capture_expr(struct cc *c, const struct diag_expr *x)
{
	start_expr(c, x, false);
	size_t n0 = c->p->n;
	uint64_t pay0 = c->payload;
	if (!root_value(c, x->root) || !close_expr(c, false))
		return false;
	if (c->payload == pay0)
		c->p->n = n0; /* registers only: the record holds everything */
	return true;
}

/* x's truth on the stack, as diag_expr_truthy(eval) (errors false). */
static bool truth_expr(struct cc *c, const struct diag_expr *x)
{
	start_expr(c, x, true);
	const struct expr_node *root = x->root;
	const struct diag_type *t = diag_type_strip(root->type);
	struct cv v;
	if (!expr_is_scalar(t) || is_float(t))
		return daemon_only(c, root, "the truth of a string, a float or an aggregate");
	if (!num(c, root, NULL, true, &v))
		return false;
	if (v.k != V_ERROR && !push_const(c, &v))
		return false;
	return close_expr(c, true);
}

static struct diag_cap_prog *prog_new(void)
{
	return calloc(1, sizeof(struct diag_cap_prog));
}

static void prog_free(struct diag_cap_prog *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nlits; i++)
		free((char *)p->lits[i]);
	free(p);
}

/* Whether eval of x reads a string (or a runtime length) whose unreadable end it keeps as a
 * status and goes on: in the target that read faults and ends the program. */
static bool keeps_going(const struct diag_expr *x)
{
	struct diag_cap_prog *scratch = prog_new();
	if (!scratch)
		return true; /* last: the safe place */
	struct cc c = { .p = scratch };
	bool strings = !capture_expr(&c, x);
	for (size_t i = 0; i < scratch->n; i++)
		strings |= scratch->ops[i].op == DIAG_CAP_SAVE_STR || scratch->ops[i].op == DIAG_CAP_SAVE_MEM_N;
	prog_free(scratch);
	return strings;
}

static bool may_stop(const struct diag_cap_prog *p)
{
	for (size_t i = 0; i < p->n; i++) {
		uint8_t o = p->ops[i].op;
		if (o == DIAG_CAP_LOAD || o == DIAG_CAP_STREQ || (o >= DIAG_CAP_DIVS && o <= DIAG_CAP_REMU))
			return true;
	}
	return false;
}

static int report(struct cc *c, const char *field, struct diag_error *err)
{
	int code = c->fail == F_LIMIT ? -DIAG_E_LIMIT : -DIAG_E_INVALID;
	return diag_error_set_field(err, field, code, "%s: %s", field, c->why);
}

/* One condition alone in the target: 0 and *out, 1 when it must be decided in the daemon,
 * or a negative code (it cannot run without a stop at all). */
static int cond_alone(const struct diag_expr *x, struct diag_cap_prog **out, bool *stops,
		      struct diag_error *err)
{
	struct diag_cap_prog *p = prog_new();
	if (!p)
		return diag_error_set_field(err, "condition", -ENOMEM, "condition: out of memory");
	struct cc c = { .p = p };
	struct diag_error ce = { 0 };
	if (truth_expr(&c, x) && emit(&c, DIAG_CAP_END, 0, 0) &&
	    diag_cap_check(p, DIAG_CAP_CONDITION, &ce) == 0) {
		*stops = may_stop(p);
		*out = p;
		return 0;
	}
	prog_free(p);
	if (c.fail == F_STOP)
		return report(&c, "condition", err);
	return 1;
}

/* The OR of conditions in the target, the one that may stop (fault or abort) last: a stop
 * ends the program, and would hide a later condition's truth. */
static int cond_or(const struct diag_expr *const *conds, size_t n, const bool *stops,
		   struct diag_cap_prog **out)
{
	struct diag_cap_prog *p = prog_new();
	if (!p)
		return -ENOMEM;
	struct cc c = { .p = p };
	struct jump yes[DIAG_CAP_MAX_OPS] = { { 0 } };
	size_t nyes = 0, done = 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			if (stops[i] != (pass == 1))
				continue;
			bool last = ++done == n;
			if (!truth_expr(&c, conds[i]) ||
			    (!last && (!emit(&c, DIAG_CAP_DUP, 0, 0) || !jump(&c, DIAG_CAP_JNZ, &yes[nyes++]) ||
				       !emit(&c, DIAG_CAP_DROP, 0, 0))))
				goto fail;
		}
	for (size_t i = 0; i < nyes; i++)
		if (!land(&c, &yes[i]))
			goto fail;
	if (!emit(&c, DIAG_CAP_END, 0, 0) || diag_cap_check(p, DIAG_CAP_CONDITION, NULL) != 0)
		goto fail;
	*out = p;
	return 0;
fail:
	prog_free(p);
	return 1;
}

int diag_expr_capture_compile(const struct diag_expr *const *values,
			      const struct diag_expr *const *conds, size_t n,
			      struct diag_expr_capture *out, struct diag_error *err)
{
	struct diag_expr_capture res = { .cond_in_daemon = n > 1 };
	bool stops[64] = { false };
	bool all_target = n > 0;
	int rc = 0;
	if (n > 64)
		return diag_error_set_field(err, "condition", -DIAG_E_LIMIT,
					    "condition: more than 64 probes share this site");
	/* the conditions: in the target when each can run there */
	for (size_t i = 0; i < n; i++) {
		struct diag_cap_prog *p = NULL;
		if (!conds || !conds[i]) {
			all_target = false;
			continue;
		}
		rc = cond_alone(conds[i], &p, &stops[i], err);
		if (rc < 0)
			goto fail;
		if (rc == 1) {
			all_target = false;
			res.cond_in_daemon = true;
		}
		if (n == 1)
			res.cond = p;
		else
			prog_free(p);
	}
	if (n > 1 && all_target) {
		size_t nstop = 0;
		for (size_t i = 0; i < n; i++)
			nstop += stops[i];
		if (nstop <= 1 && (rc = cond_or(conds, n, stops, &res.cond)) < 0)
			goto fail;
	}
	/* the value program: what the daemon's evaluations will read */
	struct diag_cap_prog *vp = prog_new();
	if (!vp) {
		rc = diag_error_set_field(err, "value", -ENOMEM, "value: out of memory");
		goto fail;
	}
	struct cc c = { .p = vp };
	/* the daemon evaluates each expression from the snapshot, in any order; a fault ends the
	 * program: expressions whose reads eval may survive failing (strings) go last, where such
	 * a fault costs no other expression its captures */
	size_t nexpr = 0;
	for (size_t i = 0; i < n; i++)
		nexpr += (res.cond_in_daemon && conds && conds[i]) + (values && values[i]);
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			const struct diag_expr *cx = res.cond_in_daemon && conds ? conds[i] : NULL;
			const struct diag_expr *vx = values ? values[i] : NULL;
			/* one probe: its condition first (a fault there makes it false anyway), then
			 * its value */
			bool sort = n > 1 && nexpr > 1;
			if (cx && (sort ? keeps_going(cx) == (pass == 1) : pass == 0) && !capture_expr(&c, cx)) {
				rc = report(&c, "condition", err);
				prog_free(vp);
				goto fail;
			}
			if (vx && (sort ? keeps_going(vx) == (pass == 1) : pass == 0) && !capture_expr(&c, vx)) {
				rc = report(&c, "value", err);
				prog_free(vp);
				goto fail;
			}
		}
	res.regs = c.regs;
	if (vp->n) {
		if (c.payload > DIAG_CAP_MAX_PAYLOAD) {
			rc = diag_error_set_field(err, "value", -DIAG_E_LIMIT,
						  "value: captures up to %llu bytes at a hit, more than the %d a record may hold",
						  (unsigned long long)c.payload, DIAG_CAP_MAX_PAYLOAD);
			prog_free(vp);
			goto fail;
		}
		struct diag_error why = { 0 };
		vp->max_payload = (uint32_t)c.payload;
		if (!emit(&c, DIAG_CAP_END, 0, 0) || diag_cap_check(vp, DIAG_CAP_VALUE, &why) != 0) {
			rc = c.fail ? report(&c, "value", err)
				: diag_error_set_field(err, "value", -DIAG_E_INVALID, "value: internal: %s", why.msg);
			prog_free(vp);
			goto fail;
		}
		res.value = vp;
	} else {
		prog_free(vp);
	}
	*out = res;
	return 0;
fail:
	prog_free(res.cond);
	return rc;
}

void diag_expr_capture_free(struct diag_expr_capture *c)
{
	if (!c)
		return;
	prog_free(c->cond);
	prog_free(c->value);
	c->cond = c->value = NULL;
}
