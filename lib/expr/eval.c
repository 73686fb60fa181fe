/* expr/eval: runs a compiled value expression while the thread is stopped. Reads registers
 * from ctx->regs and memory only through ctx->read_mem, in bounded amounts; every problem
 * becomes an ERROR result ("<fault at 0x10>"), never a crash or a long stop. */
#include "expr/ast.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arch/regs.h"
#include "dwarf/dwarf.h"

#define EVAL_SCRATCH (2 * DIAG_EXPR_MAX_BYTES)
#define EVAL_MAX_READS 512 /* bound on memory reads per hit */

enum { XV_NUM, XV_MEM, XV_BYTES };

struct xval {
	int k;
	union {
		int64_t i;
		uint64_t u;
		double f;
	};
	uint64_t addr;        /* XV_MEM */
	const uint8_t *bytes; /* XV_BYTES */
	size_t len;
	int status;           /* strings: EXPR_STR_* */
};

struct evst {
	const struct diag_expr *x;
	const struct diag_expr_ctx *ctx;
	uint8_t scratch[EVAL_SCRATCH];
	size_t used;
	unsigned reads;
	char err[160];
};

static bool failf(struct evst *st, const char *fmt, unsigned long long v)
{
	if (!st->err[0])
		snprintf(st->err, sizeof(st->err), fmt, v);
	return false;
}

static bool failmsg(struct evst *st, const char *msg)
{
	if (!st->err[0])
		snprintf(st->err, sizeof(st->err), "%s", msg);
	return false;
}

static uint8_t *scratch(struct evst *st, size_t n)
{
	if (n > EVAL_SCRATCH - st->used)
		return NULL;
	uint8_t *p = st->scratch + st->used;
	st->used += n;
	return p;
}

/* Up to len bytes at addr; returns the count read (0 on fault). */
static size_t read_some(struct evst *st, uint64_t addr, void *buf, size_t len)
{
	if (!st->ctx->read_mem || ++st->reads > EVAL_MAX_READS)
		return 0;
	ssize_t n = st->ctx->read_mem(st->ctx->arg, addr, buf, len);
	return n > 0 ? (size_t)n : 0;
}

static bool read_all(struct evst *st, uint64_t addr, void *buf, size_t len)
{
	size_t got = read_some(st, addr, buf, len);
	if (got == len)
		return true;
	if (st->reads > EVAL_MAX_READS)
		return failf(st, "<too many memory reads (%llu)>", EVAL_MAX_READS);
	return failf(st, "<fault at 0x%llx>", (unsigned long long)(addr + got));
}

/* A C string at addr, at most max bytes, without crossing into a page it does not need. */
static bool read_cstr(struct evst *st, uint64_t addr, size_t max, struct xval *v)
{
	uint8_t *buf = scratch(st, max + 1);
	if (!buf)
		return failf(st, "<value too large (%llu bytes)>", max);
	size_t n = 0;
	v->k = XV_BYTES;
	v->bytes = buf;
	v->status = EXPR_STR_TRUNC;
	while (n < max) {
		size_t chunk = 4096 - ((addr + n) & 4095);
		if (chunk > max - n)
			chunk = max - n;
		size_t got = read_some(st, addr + n, buf + n, chunk);
		void *nul = memchr(buf + n, 0, got);
		if (nul) {
			n = (size_t)((uint8_t *)nul - buf);
			v->status = EXPR_STR_OK;
			break;
		}
		n += got;
		if (got < chunk) {
			if (n == 0)
				return failf(st, "<fault at 0x%llx>", (unsigned long long)addr);
			v->status = EXPR_STR_FAULT;
			break;
		}
	}
	v->len = n;
	return true;
}

uint64_t expr_extend(uint64_t u, uint64_t size, bool is_signed)
{
	if (size >= 8 || size == 0)
		return u;
	unsigned bits = (unsigned)size * 8;
	u &= (1ULL << bits) - 1;
	if (is_signed && (u >> (bits - 1)) & 1)
		u |= ~0ULL << bits;
	return u;
}

/* Decode a scalar of type t from little-endian bytes. */
static bool decode(struct evst *st, const struct diag_type *t, const uint8_t *b, struct xval *v)
{
	const struct diag_type *s = diag_type_strip(t);
	v->k = XV_NUM;
	if (s->kind == DIAG_TYPE_FLOAT) {
		if (s->size == 4) {
			float f;
			memcpy(&f, b, 4);
			v->f = f;
		} else if (s->size == 8) {
			memcpy(&v->f, b, 8);
		} else if (s->size == 16 || s->size == 10) {
			long double ld;
			memcpy(&ld, b, sizeof(ld) < s->size ? sizeof(ld) : s->size);
			v->f = (double)ld;
		} else {
			return failf(st, "<unsupported float size %llu>", s->size);
		}
		return true;
	}
	uint64_t u = 0;
	memcpy(&u, b, s->size < 8 ? s->size : 8);
	v->u = expr_extend(u, s->size, expr_is_signed(s));
	if (s->kind == DIAG_TYPE_BOOL)
		v->u = v->u != 0;
	return true;
}

static bool load(struct evst *st, const struct diag_type *t, struct xval *v)
{
	if (v->k == XV_NUM)
		return true;
	const struct diag_type *s = diag_type_strip(t);
	if (!expr_is_scalar(s))
		return failmsg(st, "<not a scalar>") ;
	if (s->size > 16 || s->size == 0)
		return failf(st, "<unsupported scalar size %llu>", s->size);
	uint8_t b[16] = { 0 };
	if (v->k == XV_MEM) {
		if (!read_all(st, v->addr, b, s->size))
			return false;
	} else {
		memcpy(b, v->bytes, v->len < s->size ? v->len : s->size);
	}
	return decode(st, t, b, v);
}

/* Every float -> integer conversion (C leaves out-of-range ones undefined; docs/expressions.md
 * "Defined results"): truncated toward zero, NaN -> 0, beyond the type's range the nearest
 * bound (saturation). size in bytes (0 or >= 8: 64 bits). */
static uint64_t float_to_int(double f, uint64_t size, bool is_signed)
{
	unsigned bits = size && size < 8 ? (unsigned)size * 8 : 64;
	if (f != f)
		return 0;
	if (is_signed) {
		double lim = (double)(1ULL << (bits - 1)); /* 2^(bits-1), exact */
		if (f >= lim)
			return (1ULL << (bits - 1)) - 1;
		if (f <= -lim)
			return ~0ULL << (bits - 1);
		return (uint64_t)(int64_t)f;
	}
	double lim = 2.0 * (double)(1ULL << (bits - 1)); /* 2^bits */
	if (f >= lim)
		return bits == 64 ? ~0ULL : (1ULL << bits) - 1;
	if (f <= -1.0)
		return 0;
	return (uint64_t)f; /* (-1, 2^bits): truncates into range */
}

/* Convert a loaded number from type `from` to type `to`. */
static void convert(struct xval *v, const struct diag_type *from, const struct diag_type *to)
{
	const struct diag_type *f = diag_type_strip(from), *t = diag_type_strip(to);
	bool ff = f && f->kind == DIAG_TYPE_FLOAT, tf = t && t->kind == DIAG_TYPE_FLOAT;
	if (tf) {
		if (!ff)
			v->f = expr_is_signed(f) ? (double)v->i : (double)v->u;
		else if (t->size == 4)
			v->f = (float)v->f;
		return;
	}
	if (!t)
		return;
	if (t->kind == DIAG_TYPE_BOOL)
		v->u = ff ? v->f != 0 : v->u != 0;
	else if (ff)
		v->u = float_to_int(v->f, t->size, expr_is_signed(t));
	else
		v->u = expr_extend(v->u, t->size, expr_is_signed(t));
}

/* Signed division and remainder, defined everywhere but b == 0 (the caller refuses it):
 * INT64_MIN / -1 wraps to INT64_MIN, x % -1 is 0. */
static int64_t sdiv(int64_t a, int64_t b, bool rem)
{
	if (b == -1)
		return rem ? 0 : (int64_t)(0 - (uint64_t)a);
	return rem ? a % b : a / b;
}

static bool ev(struct evst *st, const struct expr_node *n, struct xval *v);

static bool ev_num(struct evst *st, const struct expr_node *n, const struct diag_type *to, struct xval *v)
{
	if (!ev(st, n, v) || !load(st, n->type, v))
		return false;
	const struct diag_type *s = diag_type_strip(n->type);
	if (s->kind == DIAG_TYPE_ARRAY) /* decays to its address */
		v->u = v->addr;
	if (to)
		convert(v, n->type, to);
	return true;
}

/* Address an array or pointer operand designates (arrays decay). */
static bool ev_address(struct evst *st, const struct expr_node *n, uint64_t *addr)
{
	struct xval v = { 0 };
	const struct diag_type *s = diag_type_strip(n->type);
	if (!ev(st, n, &v))
		return false;
	if (s->kind == DIAG_TYPE_ARRAY) {
		if (v.k != XV_MEM)
			return failmsg(st, "<array is not in memory>");
		*addr = v.addr;
		return true;
	}
	if (!load(st, n->type, &v))
		return false;
	*addr = v.u;
	return true;
}

uint64_t expr_elem_size(const struct diag_type *t)
{
	const struct diag_type *s = diag_type_strip(t);
	const struct diag_type *e = s ? diag_type_strip(s->target) : NULL;
	return e && e->size ? e->size : 1;
}

static bool truthy_num(const struct diag_type *t, const struct xval *v)
{
	return diag_type_strip(t)->kind == DIAG_TYPE_FLOAT ? v->f != 0 : v->u != 0;
}

static bool ev_compare(struct evst *st, const struct expr_node *n, struct xval *v)
{
	struct xval a = { 0 }, b = { 0 };
	bool ptrs = !expr_is_integer(n->a->type) && !diag_type_strip(n->a->type)->size ? false :
		(diag_type_strip(n->a->type)->kind == DIAG_TYPE_PTR || diag_type_strip(n->a->type)->kind == DIAG_TYPE_ARRAY ||
		 diag_type_strip(n->b->type)->kind == DIAG_TYPE_PTR || diag_type_strip(n->b->type)->kind == DIAG_TYPE_ARRAY);
	const struct diag_type *ct = ptrs ? &expr_t_ulong : expr_arith_type(n->a->type, n->b->type);
	if (!ev_num(st, n->a, ct, &a) || !ev_num(st, n->b, ct, &b))
		return false;
	int c;
	if (ct->kind == DIAG_TYPE_FLOAT)
		c = a.f < b.f ? -1 : a.f > b.f ? 1 : 0;
	else if (ct->is_signed)
		c = a.i < b.i ? -1 : a.i > b.i ? 1 : 0;
	else
		c = a.u < b.u ? -1 : a.u > b.u ? 1 : 0;
	v->k = XV_NUM;
	switch (n->tok) {
	case T_EQ: v->i = c == 0; break;
	case T_NE: v->i = c != 0; break;
	case T_LT: v->i = c < 0; break;
	case T_LE: v->i = c <= 0; break;
	case T_GT: v->i = c > 0; break;
	default: v->i = c >= 0; break;
	}
	return true;
}

static bool ev_binary(struct evst *st, const struct expr_node *n, struct xval *v)
{
	enum expr_tok t = n->tok;
	struct xval a = { 0 }, b = { 0 };
	if (t == T_ANDAND || t == T_OROR) {
		if (!ev_num(st, n->a, NULL, &a))
			return false;
		bool l = truthy_num(n->a->type, &a);
		v->k = XV_NUM;
		if (l == (t == T_OROR)) {
			v->i = l;
			return true;
		}
		if (!ev_num(st, n->b, NULL, &b))
			return false;
		v->i = truthy_num(n->b->type, &b);
		return true;
	}
	if (t == T_EQ || t == T_NE || t == T_LT || t == T_LE || t == T_GT || t == T_GE)
		return ev_compare(st, n, v);
	const struct diag_type *rt = diag_type_strip(n->type);
	bool pa = diag_type_strip(n->a->type)->kind == DIAG_TYPE_PTR || diag_type_strip(n->a->type)->kind == DIAG_TYPE_ARRAY;
	bool pb = diag_type_strip(n->b->type)->kind == DIAG_TYPE_PTR || diag_type_strip(n->b->type)->kind == DIAG_TYPE_ARRAY;
	if (pa) {
		uint64_t base;
		if (!ev_address(st, n->a, &base))
			return false;
		v->k = XV_NUM;
		if (pb) {
			uint64_t other;
			if (!ev_address(st, n->b, &other))
				return false;
			uint64_t es = expr_elem_size(n->a->type);
			v->i = es > INT64_MAX ? 0 : sdiv((int64_t)(base - other), (int64_t)es, false);
			return true;
		}
		if (!ev_num(st, n->b, &expr_t_long, &b))
			return false;
		uint64_t d = b.u * expr_elem_size(n->a->type); /* wraps as the address space does */
		v->u = t == T_PLUS ? base + d : base - d;
		return true;
	}
	const struct diag_type *ot = (t == T_SHL || t == T_SHR) ? rt : rt;
	if (!ev_num(st, n->a, ot, &a) || !ev_num(st, n->b, (t == T_SHL || t == T_SHR) ? &expr_t_ulong : ot, &b))
		return false;
	v->k = XV_NUM;
	if (rt->kind == DIAG_TYPE_FLOAT) {
		switch (t) {
		case T_PLUS: v->f = a.f + b.f; break;
		case T_MINUS: v->f = a.f - b.f; break;
		case T_STAR: v->f = a.f * b.f; break;
		default: v->f = a.f / b.f; break;
		}
		return true;
	}
	bool sg = rt->is_signed;
	if ((t == T_SLASH || t == T_PCT) && b.u == 0)
		return failmsg(st, "<division by zero>");
	switch (t) {
	case T_PLUS: v->u = a.u + b.u; break;
	case T_MINUS: v->u = a.u - b.u; break;
	case T_STAR: v->u = a.u * b.u; break;
	case T_SLASH: v->u = sg ? (uint64_t)sdiv(a.i, b.i, false) : a.u / b.u; break;
	case T_PCT: v->u = sg ? (uint64_t)sdiv(a.i, b.i, true) : a.u % b.u; break;
	case T_AMP: v->u = a.u & b.u; break;
	case T_PIPE: v->u = a.u | b.u; break;
	case T_CARET: v->u = a.u ^ b.u; break;
	case T_SHL: v->u = b.u >= 64 ? 0 : a.u << b.u; break;
	default:
		v->u = b.u >= 64 ? (sg && a.i < 0 ? ~0ULL : 0) : sg ? (uint64_t)(a.i >> b.u) : a.u >> b.u;
		break;
	}
	v->u = expr_extend(v->u, rt->size, sg);
	return true;
}

/* The bytes of a C string operand (STRING value, char pointer or char array). */
static bool ev_cstring(struct evst *st, const struct expr_node *n, size_t max, struct xval *v)
{
	const struct diag_type *s = diag_type_strip(n->type);
	if (s->kind == DIAG_TYPE_STRING)
		return ev(st, n, v);
	if (s->kind == DIAG_TYPE_ARRAY) {
		struct xval a = { 0 };
		if (!ev(st, n, &a))
			return false;
		size_t len = s->size < max ? s->size : max;
		if (a.k == XV_MEM) {
			uint8_t *buf = scratch(st, len);
			if (!buf || !read_all(st, a.addr, buf, len))
				return buf ? false : failmsg(st, "<value too large>");
			a.bytes = buf;
		}
		const uint8_t *nul = memchr(a.bytes, 0, len);
		*v = (struct xval){ .k = XV_BYTES, .bytes = a.bytes, .len = nul ? (size_t)(nul - a.bytes) : len };
		return true;
	}
	uint64_t p;
	if (!ev_address(st, n, &p))
		return false;
	if (!p)
		return failmsg(st, "<null string>");
	return read_cstr(st, p, max, v);
}

static bool ev_streq(struct evst *st, const struct expr_node *n, struct xval *v)
{
	struct xval s = { 0 };
	if (!ev_cstring(st, n->a, n->b->slen + 1, &s))
		return false;
	bool eq = s.len == n->b->slen && !memcmp(s.bytes, n->b->s, s.len);
	*v = (struct xval){ .k = XV_NUM, .i = n->tok == T_EQ ? eq : !eq };
	return true;
}

static bool ev_var(struct evst *st, const struct expr_node *n, struct xval *v)
{
	const struct diag_dwarf_var *var = expr_var(st->x, n->var);
	const struct diag_type *t = diag_type_strip(n->type);
	if (var->loc.has_const) {
		*v = (struct xval){ .k = XV_NUM, .u = (uint64_t)var->loc.const_val };
		return true;
	}
	uint64_t size = t && t->size ? t->size : 8;
	if (size > EXPR_OBJ_MAX)
		size = EXPR_OBJ_MAX;
	uint8_t *buf = scratch(st, size);
	if (!buf)
		return failf(st, "<value too large (%llu bytes)>", size);
	const struct diag_expr_ctx *c = st->ctx;
	struct diag_loc_machine m = { .regs = c->regs, .read_fpregs = c->read_fpregs,
				      .read_mem = c->read_mem, .arg = c->arg, .bias = st->x->bias };
	const struct diag_dwarf_frame *fr = st->x->scope ? &st->x->scope->frame : NULL;
	uint64_t addr = 0;
	struct diag_error why = { 0 };
	int rc = diag_loc_eval(&var->loc, fr, &m, size, &addr, buf, size, &why);
	if (rc == DIAG_LOC_IN_MEMORY) {
		*v = (struct xval){ .k = XV_MEM, .addr = addr };
		return true;
	}
	if (rc == DIAG_LOC_IN_BYTES) {
		*v = (struct xval){ .k = XV_BYTES, .bytes = buf, .len = size };
		return true;
	}
	if (!st->err[0])
		snprintf(st->err, sizeof(st->err), "%.*s", (int)sizeof(st->err) - 1,
			 why.msg[0] ? why.msg : "<location not available>");
	return false;
}

static bool ev_member(struct evst *st, const struct expr_node *n, struct xval *v)
{
	struct xval base = { 0 };
	if (n->tok == T_ARROW) {
		uint64_t p;
		if (!ev_address(st, n->a, &p))
			return false;
		base = (struct xval){ .k = XV_MEM, .addr = p };
	} else if (!ev(st, n->a, &base)) {
		return false;
	}
	const struct diag_member *m = n->member;
	if (base.k == XV_MEM) {
		*v = (struct xval){ .k = XV_MEM, .addr = base.addr + m->offset };
	} else {
		if (m->offset >= base.len)
			return failf(st, "<member beyond the captured bytes (offset %llu)>", m->offset);
		*v = (struct xval){ .k = XV_BYTES, .bytes = base.bytes + m->offset, .len = base.len - m->offset };
	}
	if (!m->bit_size)
		return true;
	/* a bit field: the bits inside the unit starting at the member's offset */
	uint8_t b[8] = { 0 };
	if (!expr_bitfield_fits(m))
		return failf(st, "<bit field too wide (%llu bits)>",
			     (unsigned long long)m->bit_offset + m->bit_size);
	size_t need = (m->bit_offset + m->bit_size + 7) / 8;
	if (v->k == XV_MEM ? !read_all(st, v->addr, b, need) : (memcpy(b, v->bytes, v->len < need ? v->len : need), false))
		return false;
	*v = (struct xval){ .k = XV_NUM, .u = expr_bitfield(b, sizeof(b), m) };
	return true;
}

static bool ev_index(struct evst *st, const struct expr_node *n, struct xval *v)
{
	struct xval idx = { 0 };
	if (!ev_num(st, n->b, &expr_t_long, &idx))
		return false;
	const struct diag_type *s = diag_type_strip(n->a->type);
	uint64_t es = expr_elem_size(s);
	if (s->kind == DIAG_TYPE_ARRAY) {
		struct xval base = { 0 };
		if (!ev(st, n->a, &base))
			return false;
		if (base.k == XV_BYTES) {
			if (idx.i < 0 || (uint64_t)idx.i >= base.len / es) /* no overflow */
				return failf(st, "<index %lld outside the captured array>", (unsigned long long)idx.i);
			*v = (struct xval){ .k = XV_BYTES, .bytes = base.bytes + idx.i * es, .len = es };
			return true;
		}
		*v = (struct xval){ .k = XV_MEM, .addr = base.addr + (uint64_t)idx.i * es };
		return true;
	}
	uint64_t p;
	if (!ev_address(st, n->a, &p))
		return false;
	*v = (struct xval){ .k = XV_MEM, .addr = p + (uint64_t)idx.i * es };
	return true;
}

static bool ev_call(struct evst *st, const struct expr_node *n, struct xval *v)
{
	if (n->type->kind != DIAG_TYPE_STRING && n->type->kind != DIAG_TYPE_BYTES)
		return ev_num(st, n->a, &expr_t_ulong, v); /* hex(): rendering differs only */
	uint64_t p;
	const struct diag_type *s = diag_type_strip(n->a->type);
	if (s->kind == DIAG_TYPE_PTR || s->kind == DIAG_TYPE_ARRAY) {
		if (!ev_address(st, n->a, &p))
			return false;
	} else {
		struct xval a = { 0 };
		if (!ev_num(st, n->a, &expr_t_ulong, &a))
			return false;
		p = a.u;
	}
	uint64_t len = n->max;
	bool clamped = false;
	if (n->runtime_len) { /* after the pointer, as written */
		struct xval l = { 0 };
		if (!ev_num(st, n->b, &expr_t_long, &l))
			return false;
		if (l.i < 0)
			return failf(st, "<negative length %lld>", (unsigned long long)l.i);
		clamped = (uint64_t)l.i > n->max;
		len = clamped ? n->max : (uint64_t)l.i;
	}
	if (n->type->kind == DIAG_TYPE_STRING) {
		if (!p)
			return failmsg(st, "<null pointer>");
		if (!read_cstr(st, p, len, v))
			return false;
		/* a runtime length is the string's length (gdb's print of a char array): all
		 * of it read is the whole string, unless the bound cut it */
		if (n->runtime_len && v->status == EXPR_STR_TRUNC && !clamped)
			v->status = EXPR_STR_OK;
		return true;
	}
	uint8_t *buf = scratch(st, len);
	if (!buf)
		return failf(st, "<value too large (%llu bytes)>", len);
	if (len && !read_all(st, p, buf, len))
		return false;
	*v = (struct xval){ .k = XV_BYTES, .bytes = buf, .len = len };
	return true;
}

/* The folded call stack from the hit's provider (the engine walks the stopped thread). */
static bool ev_stack(struct evst *st, const struct expr_node *n, struct xval *v)
{
	const struct diag_expr_ctx *c = st->ctx;
	if (!c->stack)
		return failmsg(st, "<stack: not available at this hit>");
	char *buf = (char *)scratch(st, DIAG_EXPR_MAX_BYTES);
	if (!buf)
		return failmsg(st, "<stack: value too large>");
	buf[0] = '\0';
	int len = c->stack(c->stack_arg, (int)n->ival, buf, DIAG_EXPR_MAX_BYTES);
	if (len < 0) {
		char msg[sizeof(st->err)];
		snprintf(msg, sizeof(msg), "<stack: %.100s>", buf[0] ? buf : "unwinding failed");
		return failmsg(st, msg);
	}
	*v = (struct xval){ .k = XV_BYTES, .bytes = (const uint8_t *)buf,
			    .len = strnlen(buf, (size_t)len), .status = EXPR_STR_OK };
	return true;
}

/* A struct or union result, as the System V ABI returns it: up to 16 bytes in registers, each
 * eightbyte in the next of the two integer return registers (x86-64: rax, rdx) when any of its
 * members is not floating point, else in the next of the two floating-point ones (x86-64:
 * xmm0, xmm1; nested aggregates count as integer: an approximation); larger ones in memory,
 * their address in the integer return register. */
static bool ret_aggregate(struct evst *st, const struct diag_type *t, struct xval *v)
{
	const diag_regs *r = st->ctx->regs;
	if (t->size > 16) {
		*v = (struct xval){.k = XV_MEM, .addr = diag_regs_ret(r)};
		return true;
	}
	bool sse[2] = {true, true};
	for (size_t i = 0; i < t->nmembers; i++) {
		const struct diag_member *m = &t->members[i];
		size_t eb = m->offset / 8;
		if (eb < 2 && diag_type_strip(m->type)->kind != DIAG_TYPE_FLOAT)
			sse[eb] = false;
	}
	if (!t->nmembers)
		sse[0] = sse[1] = false;
	uint8_t *buf = scratch(st, 16);
	if (!buf)
		return failmsg(st, "<value too large>");
	uint64_t gp[2] = {diag_regs_ret(r), diag_regs_ret2(r)};
	diag_fpregs fp;
	bool have_fp = false;
	int gi = 0, si = 0;
	for (size_t eb = 0; eb * 8 < t->size && eb < 2; eb++) {
		if (sse[eb]) {
			if (!have_fp && (!st->ctx->read_fpregs ||
					 st->ctx->read_fpregs(st->ctx->arg, &fp) < 0))
				return failmsg(st, "<xmm registers unavailable>");
			have_fp = true;
			const uint8_t *fr = diag_fpregs_float_ret(&fp, si++);
			if (!fr)
				return failmsg(st, "<xmm registers unavailable>");
			memcpy(buf + 8 * eb, fr, 8);
		} else {
			memcpy(buf + 8 * eb, &gp[gi++], 8);
		}
	}
	*v = (struct xval){.k = XV_BYTES, .bytes = buf, .len = t->size};
	return true;
}

static bool ev(struct evst *st, const struct expr_node *n, struct xval *v)
{
	const struct diag_expr_ctx *c = st->ctx;
	*v = (struct xval){ .k = XV_NUM };
	switch (n->op) {
	case N_INT:
		v->i = n->ival;
		return true;
	case N_FLOAT:
		v->f = n->fval;
		return true;
	case N_STRLIT:
		*v = (struct xval){ .k = XV_BYTES, .bytes = (const uint8_t *)n->s, .len = n->slen };
		return true;
	case N_REG:
	case N_ARG:
	case N_RETVAL:
		if (!c->regs)
			return failmsg(st, "<no registers>");
		if (n->op == N_RETVAL && (diag_type_strip(n->type)->kind == DIAG_TYPE_STRUCT ||
					  diag_type_strip(n->type)->kind == DIAG_TYPE_UNION))
			return ret_aggregate(st, diag_type_strip(n->type), v);
		if (n->op == N_RETVAL && diag_type_strip(n->type)->kind == DIAG_TYPE_FLOAT &&
		    diag_type_strip(n->type)->size <= 8) {
			/* float and double results come back in the first floating-point return
			 * register (x86-64, System V: xmm0) */
			diag_fpregs fp;
			const uint8_t *fr = NULL;
			if (!c->read_fpregs || c->read_fpregs(c->arg, &fp) < 0 ||
			    !(fr = diag_fpregs_float_ret(&fp, 0)))
				return failmsg(st, "<xmm0 unavailable>");
			return decode(st, n->type, fr, v);
		}
		v->u = expr_extend(diag_reg_get(c->regs, n->reg_off, n->reg_width), n->reg_width,
			      expr_is_signed(n->type));
		if (n->op == N_RETVAL)
			convert(v, &expr_t_ulong, n->type);
		return true;
	case N_TID: v->i = c->tid; return true;
	case N_PID: v->i = c->pid; return true;
	case N_TIME: v->u = c->time_ns; return true;
	case N_ELAPSED: v->u = c->elapsed_ns; return true;
	case N_COMM: {
		const char *s = c->comm ? c->comm : c->comm_of ? c->comm_of(c->comm_arg) : "";
		if (!s)
			s = "";
		*v = (struct xval){ .k = XV_BYTES, .bytes = (const uint8_t *)s, .len = strnlen(s, 64) };
		return true;
	}
	case N_VAR:
		return ev_var(st, n, v);
	case N_UNARY:
		if (!ev_num(st, n->a, n->tok == T_BANG ? NULL : n->type, v))
			return false;
		if (n->tok == T_BANG)
			v->i = !truthy_num(n->a->type, v);
		else if (n->tok == T_TILDE)
			v->u = expr_extend(~v->u, n->type->size, n->type->is_signed);
		else if (diag_type_strip(n->type)->kind == DIAG_TYPE_FLOAT)
			v->f = -v->f;
		else
			v->u = expr_extend(0 - v->u, n->type->size, n->type->is_signed);
		return true;
	case N_BINARY:
		return ev_binary(st, n, v);
	case N_STREQ:
		return ev_streq(st, n, v);
	case N_DEREF: {
		uint64_t p;
		if (!ev_address(st, n->a, &p))
			return false;
		*v = (struct xval){ .k = XV_MEM, .addr = p };
		return true;
	}
	case N_ADDR: {
		struct xval a = { 0 };
		if (!ev(st, n->a, &a))
			return false;
		if (a.k != XV_MEM)
			return failmsg(st, "<no address: the value is not in memory>");
		v->u = a.addr;
		return true;
	}
	case N_MEMBER:
		return ev_member(st, n, v);
	case N_INDEX:
		return ev_index(st, n, v);
	case N_CAST:
		return ev_num(st, n->a, n->type, v);
	case N_CALL:
		return ev_call(st, n, v);
	case N_STACK:
		return ev_stack(st, n, v);
	default:
		return failf(st, "<internal: node %llu>", n->op);
	}
}

/* ---- the result ---- */

struct capture {
	struct evst *st;
	const uint8_t *obj;
	size_t objlen;
	struct diag_expr_result *out;
};

static void capture_string(void *arg, uint64_t off)
{
	struct capture *c = arg;
	struct diag_expr_result *out = c->out;
	if (out->len + 3 > DIAG_EXPR_MAX_BYTES)
		return;
	uint64_t p = 0;
	if (off + 8 <= c->objlen)
		memcpy(&p, c->obj + off, 8);
	uint8_t *hdr = out->data + out->len;
	size_t room = DIAG_EXPR_MAX_BYTES - out->len - 3;
	size_t max = room < EXPR_STR_MAX ? room : EXPR_STR_MAX;
	struct xval s = { 0 };
	size_t saved = c->st->used;
	char saved_err[sizeof(c->st->err)];
	memcpy(saved_err, c->st->err, sizeof(saved_err));
	if (off + 8 > c->objlen) {
		s.status = EXPR_STR_SKIPPED;
	} else if (!p) {
		s.status = EXPR_STR_NULL;
	} else if (max < EXPR_STR_MAX) {
		s.status = EXPR_STR_SKIPPED;
	} else if (!read_cstr(c->st, p, max, &s)) {
		s = (struct xval){ .status = EXPR_STR_FAULT };
		memcpy(c->st->err, saved_err, sizeof(saved_err));
	}
	hdr[0] = (uint8_t)s.status;
	hdr[1] = (uint8_t)(s.len & 0xff);
	hdr[2] = (uint8_t)(s.len >> 8);
	if (s.len)
		memcpy(hdr + 3, s.bytes, s.len);
	out->len += 3 + s.len;
	c->st->used = saved;
}

static void finish_aggregate(struct evst *st, const struct diag_type *t, const struct xval *v,
			     struct diag_expr_result *out)
{
	size_t n = t->size < EXPR_OBJ_MAX ? t->size : EXPR_OBJ_MAX;
	if (v->k == XV_MEM) {
		if (!read_all(st, v->addr, out->data, n))
			return;
	} else {
		memcpy(out->data, v->bytes, v->len < n ? v->len : n);
	}
	out->kind = DIAG_VALUE_BYTES;
	out->len = n;
	struct capture c = { .st = st, .obj = out->data, .objlen = n, .out = out };
	expr_walk_strings(t, 0, n, capture_string, &c, 0);
}

static void finish(struct evst *st, const struct expr_node *root, struct xval *v,
		   struct diag_expr_result *out)
{
	const struct diag_type *t = diag_type_strip(root->type);
	if (t->kind == DIAG_TYPE_STRING || t->kind == DIAG_TYPE_BYTES) {
		size_t n = v->len < DIAG_EXPR_MAX_BYTES ? v->len : DIAG_EXPR_MAX_BYTES;
		if (n)
			memcpy(out->data, v->bytes, n);
		out->len = n;
		out->u = (uint64_t)v->status;
		out->kind = t->kind == DIAG_TYPE_STRING ? DIAG_VALUE_STRING : DIAG_VALUE_BYTES;
		return;
	}
	if (t->kind == DIAG_TYPE_STRUCT || t->kind == DIAG_TYPE_UNION || t->kind == DIAG_TYPE_ARRAY) {
		finish_aggregate(st, t, v, out);
		return;
	}
	if (t->kind == DIAG_TYPE_VOID || t->kind == DIAG_TYPE_FUNC) {
		failmsg(st, "<a value of type void>");
		return;
	}
	if (!load(st, root->type, v))
		return;
	out->u = v->u;
	out->kind = t->kind == DIAG_TYPE_FLOAT ? DIAG_VALUE_FLOAT
		: expr_is_signed(t) ? DIAG_VALUE_SIGNED : DIAG_VALUE_UNSIGNED;
	if (!expr_is_char_ptr(t))
		return;
	struct xval s = { .status = EXPR_STR_NULL };
	if (v->u && !read_cstr(st, v->u, EXPR_STR_MAX, &s)) {
		st->err[0] = '\0';
		s = (struct xval){ .status = EXPR_STR_FAULT };
	}
	out->data[0] = (uint8_t)s.status;
	if (s.len)
		memcpy(out->data + 1, s.bytes, s.len);
	out->len = 1 + s.len;
}

void diag_expr_eval(const struct diag_expr *x, const struct diag_expr_ctx *ctx,
		    struct diag_expr_result *out)
{
	static const char none[] = "<no expression>";
	out->kind = DIAG_VALUE_ERROR;
	out->u = 0;
	out->len = 0;
	if (!x || !ctx || !x->root) {
		memcpy(out->data, none, sizeof(none));
		out->len = sizeof(none) - 1;
		return;
	}
	/* the state is large; keep it off the caller's stack frame of fixed size anyway */
	struct evst st;
	st.x = x;
	st.ctx = ctx;
	st.used = 0;
	st.reads = 0;
	st.err[0] = '\0';
	struct xval v = { 0 };
	if (ev(&st, x->root, &v))
		finish(&st, x->root, &v, out);
	if (st.err[0]) {
		out->kind = DIAG_VALUE_ERROR;
		out->len = strnlen(st.err, sizeof(st.err));
		memcpy(out->data, st.err, out->len);
		out->data[out->len] = '\0';
	}
}

bool diag_expr_truthy(const struct diag_expr_result *r)
{
	switch (r->kind) {
	case DIAG_VALUE_SIGNED:
	case DIAG_VALUE_UNSIGNED:
		return r->u != 0;
	case DIAG_VALUE_FLOAT:
		return r->f != 0;
	case DIAG_VALUE_STRING:
	case DIAG_VALUE_BYTES:
		return r->len != 0;
	default:
		return false;
	}
}
