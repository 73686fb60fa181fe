/* expr/compile: type checking of a parsed value expression against the scope at the probe's
 * PC (names resolved through lib/dwarf, $names through the architecture's register tables,
 * arch/regs.h). Every user mistake becomes a one-line error with its position; nothing here
 * touches a process. */
#include "expr/ast.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/regs.h"
#include "dwarf/dwarf.h"
#include "util/grow.h"

static const struct {
	const char *spelling;
	const struct diag_type *t;
} builtin_names[] = {
	{ "void", &expr_t_void }, { "_Bool", &expr_t_bool }, { "bool", &expr_t_bool },
	{ "char", &expr_t_char }, { "signed char", &expr_t_schar }, { "unsigned char", &expr_t_uchar },
	{ "short", &expr_t_short }, { "short int", &expr_t_short }, { "unsigned short", &expr_t_ushort },
	{ "short unsigned int", &expr_t_ushort }, { "int", &expr_t_int }, { "signed", &expr_t_int },
	{ "signed int", &expr_t_int }, { "unsigned", &expr_t_uint }, { "unsigned int", &expr_t_uint },
	{ "long", &expr_t_long }, { "long int", &expr_t_long }, { "unsigned long", &expr_t_ulong },
	{ "long unsigned int", &expr_t_ulong }, { "unsigned long int", &expr_t_ulong },
	{ "long long", &expr_t_llong }, { "long long int", &expr_t_llong },
	{ "unsigned long long", &expr_t_ullong }, { "long long unsigned int", &expr_t_ullong },
	{ "float", &expr_t_float }, { "double", &expr_t_double },
};

struct checker {
	struct diag_expr *x;
	const struct diag_expr_scope *sc;
	struct diag_dwarf_file *file;   /* NULL: no DWARF */
	int nodebug_code;                /* why file is NULL */
	char nodebug_msg[DIAG_ERRMSG_MAX];
	struct diag_error *err;
};

bool expr_is_integer(const struct diag_type *t)
{
	t = diag_type_strip(t);
	return t && (t->kind == DIAG_TYPE_INT || t->kind == DIAG_TYPE_BOOL || t->kind == DIAG_TYPE_ENUM);
}

bool expr_is_scalar(const struct diag_type *t)
{
	t = diag_type_strip(t);
	return expr_is_integer(t) || (t && (t->kind == DIAG_TYPE_FLOAT || t->kind == DIAG_TYPE_PTR));
}

bool expr_is_char_ptr(const struct diag_type *t)
{
	t = diag_type_strip(t);
	if (!t || t->kind != DIAG_TYPE_PTR)
		return false;
	const struct diag_type *e = diag_type_strip(t->target);
	return e && e->kind == DIAG_TYPE_INT && e->is_char;
}

bool expr_is_signed(const struct diag_type *t)
{
	t = diag_type_strip(t);
	return t && (t->kind == DIAG_TYPE_INT || t->kind == DIAG_TYPE_ENUM) && t->is_signed;
}

bool expr_bitfield_fits(const struct diag_member *m)
{
	return m->bit_size <= 64 && m->bit_offset <= 64 - m->bit_size;
}

uint64_t expr_bitfield(const uint8_t *b, size_t avail, const struct diag_member *m)
{
	uint8_t w[8] = { 0 };
	memcpy(w, b, avail < 8 ? avail : 8); /* bytes past the unit are masked off below */
	uint64_t u;
	memcpy(&u, w, 8);
	u >>= m->bit_offset;
	if (m->bit_size < 64)
		u &= (1ULL << m->bit_size) - 1;
	if (expr_is_signed(m->type) && m->bit_size < 64 && (u >> (m->bit_size - 1)) & 1)
		u |= ~0ULL << m->bit_size;
	return u;
}

static bool is_kind(const struct diag_type *t, enum diag_type_kind k)
{
	t = diag_type_strip(t);
	return t && t->kind == k;
}

const struct diag_dwarf_var *expr_var(const struct diag_expr *x, int index)
{
	size_t nscope = x->scope ? x->scope->nvars : 0;
	if (index < 0)
		return NULL;
	if ((size_t)index < nscope)
		return &x->scope->vars[index];
	return (size_t)index - nscope < x->nglobals ? &x->globals[index - nscope] : NULL;
}

static int errat(struct checker *c, const struct expr_node *n, int code, const char *fmt, const char *a)
{
	char what[DIAG_ERRMSG_MAX];
	snprintf(what, sizeof(what), fmt, a ? a : "");
	return diag_error_set(c->err, code, "%s at %d:%d", what, n->line, n->col);
}

static void spell(const struct diag_type *t, char *buf, size_t cap)
{
	diag_type_spell(t, buf, cap);
}

static int type_err(struct checker *c, const struct expr_node *n, const char *what,
		    const struct diag_type *t)
{
	char ts[128], msg[256];
	spell(t, ts, sizeof(ts));
	snprintf(msg, sizeof(msg), "%s (type %s)", what, ts);
	return errat(c, n, -DIAG_E_INVALID, "%s", msg);
}

static const struct diag_type *make_ptr(struct checker *c, const struct diag_type *to)
{
	struct diag_expr *x = c->x;
	for (size_t i = 0; i < x->nowned; i++)
		if (x->owned[i].target == to)
			return &x->owned[i];
	if (x->nowned == EXPR_MAX_OWNED_TYPES)
		return NULL;
	struct diag_type *t = &x->owned[x->nowned++];
	*t = (struct diag_type){ .kind = DIAG_TYPE_PTR, .size = 8, .target = to };
	return t;
}

/* ---- names ---- */

static int nodebug(struct checker *c, const struct expr_node *n)
{
	if (c->nodebug_code == -DIAG_E_NODEBUG || c->nodebug_code == 0) {
		const char *path = c->sc->elf_path ? c->sc->elf_path : "";
		const char *base = strrchr(path, '/');
		base = base ? base + 1 : path;
		return diag_error_set(c->err, -DIAG_E_NODEBUG,
				      "no DWARF for %s (names need debug info: '%s' at %d:%d); use $arg1..$arg6",
				      *base ? base : "this module", n->s, n->line, n->col);
	}
	return diag_error_set(c->err, c->nodebug_code, "'%s' at %d:%d: %s", n->s, n->line,
			      n->col, c->nodebug_msg);
}

static void list_scope(struct checker *c, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	const struct diag_dwarf_scope *s = c->x->scope;
	for (size_t i = 0; s && i < s->nvars && used < cap; i++) {
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup |= !strcmp(s->vars[j].name, s->vars[i].name);
		if (dup)
			continue;
		int k = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", s->vars[i].name);
		if (k > 0)
			used += (size_t)k;
	}
	if (!used)
		snprintf(buf, cap, "(nothing)");
}

static int check_dollar(struct checker *c, struct expr_node *n);

/* The seed's names on return events: `result` and `elapsed`, unless the program has a
 * variable of that name in scope. */
static bool seed_name(struct checker *c, const struct expr_node *n)
{
	if (c->sc->event != DIAG_EVENT_RETURN || (strcmp(n->s, "result") && strcmp(n->s, "elapsed")))
		return false;
	for (size_t i = 0; c->x->scope && i < c->x->scope->nvars; i++)
		if (!strcmp(c->x->scope->vars[i].name, n->s))
			return false;
	return true;
}

static int check_name(struct checker *c, struct expr_node *n)
{
	if (seed_name(c, n)) {
		n->op = N_DOLLAR;
		return check_dollar(c, n);
	}
	if (!c->file)
		return nodebug(c, n);
	struct diag_expr *x = c->x;
	const struct diag_dwarf_var *v = NULL;
	int idx = -1;
	for (size_t i = 0; x->scope && i < x->scope->nvars; i++) {
		if (!strcmp(x->scope->vars[i].name, n->s)) {
			v = &x->scope->vars[i];
			idx = (int)i;
			break;
		}
	}
	if (!v) {
		struct diag_dwarf_var g;
		if (diag_dwarf_global(c->file, n->s, &g) == 0) {
			if (DIAG_GROW(&x->globals, &x->capglobals, x->nglobals + 1) < 0) {
				free(g.name);
				return diag_error_set(c->err, -ENOMEM, "out of memory");
			}
			x->globals[x->nglobals] = g;
			v = &x->globals[x->nglobals];
			idx = (int)((x->scope ? x->scope->nvars : 0) + x->nglobals++);
		}
	}
	const struct diag_type *et;
	int64_t ev;
	if (!v && diag_dwarf_enumerator(c->file, n->s, &et, &ev) == 0) {
		n->op = N_INT;
		n->ival = ev;
		n->type = et;
		return 0;
	}
	if (!v) {
		char names[300];
		list_scope(c, names, sizeof(names));
		return diag_error_set(c->err, -DIAG_E_NOSYM, "unknown name '%s' at %d:%d; in scope: %s",
				      n->s, n->line, n->col, names);
	}
	if (c->sc->event == DIAG_EVENT_RETURN && x->scope && idx < (int)x->scope->nvars)
		return diag_error_set(c->err, -DIAG_E_INVALID,
				      "'%s' at %d:%d is not available on return events (the function's frame is gone); use $retval, or an end event",
				      n->s, n->line, n->col);
	if (!v->loc.nops && !v->loc.has_const)
		return diag_error_set(c->err, -DIAG_E_INVALID, "'%s' is optimised out at 0x%llx",
				      n->s, (unsigned long long)c->sc->pc);
	n->op = N_VAR;
	n->var = idx;
	n->type = v->type ? v->type : &expr_t_void;
	n->lvalue = !v->loc.has_const;
	return 0;
}

static int check_dollar(struct checker *c, struct expr_node *n)
{
	const char *s = n->s;
	bool ret = c->sc->event == DIAG_EVENT_RETURN;
	if (!strncmp(s, "arg", 3) && s[3] >= '1' && s[3] <= '6' && !s[4]) {
		n->op = N_ARG;
		n->ival = s[3] - '0';
		n->reg_off = diag_reg_arg((int)n->ival);
		n->reg_width = 8;
		n->type = &expr_t_long;
		return 0;
	}
	static const struct {
		const char *name;
		enum expr_op op;
		const struct diag_type *t;
	} specials[] = {
		{ "tid", N_TID, &expr_t_int }, { "pid", N_PID, &expr_t_int },
		{ "comm", N_COMM, &expr_t_string }, { "time", N_TIME, &expr_t_ulong },
		{ "elapsed", N_ELAPSED, &expr_t_ulong }, { "retval", N_RETVAL, &expr_t_long },
		{ "ret", N_RETVAL, &expr_t_long }, { "result", N_RETVAL, &expr_t_long },
	};
	for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
		if (strcmp(s, specials[i].name))
			continue;
		if ((specials[i].op == N_ELAPSED || specials[i].op == N_RETVAL) && !ret)
			return errat(c, n, -DIAG_E_INVALID, "'$%s' exists only for return events", s);
		n->op = specials[i].op;
		n->type = specials[i].t;
		if (n->op == N_RETVAL) {
			n->reg_off = diag_reg_ret();
			n->reg_width = 8;
			const struct diag_type *rt = c->x->scope ? c->x->scope->ret_type : NULL;
			const struct diag_type *st = rt ? diag_type_strip(rt) : NULL;
			/* scalars, and structs/unions returned by the ABI (x86-64: rax:rdx,
			 * xmm0:xmm1, or through memory whose address comes back in rax) */
			if (rt && (expr_is_scalar(rt) || st->kind == DIAG_TYPE_STRUCT ||
				   st->kind == DIAG_TYPE_UNION))
				n->type = c->x->scope->ret_type;
		}
		return 0;
	}
	unsigned width = 8;
	int off = diag_reg_lookup(s, &width);
	if (off < 0)
		return diag_error_set(c->err, -DIAG_E_NOSYM,
				      "unknown name '$%s' at %d:%d; known: $arg1..$arg6, $retval, $tid, $pid, $comm, $time, $elapsed, registers ($rdi, $eax, ...)",
				      s, n->line, n->col);
	n->op = N_REG;
	n->reg_off = off;
	n->reg_width = width;
	bool addr_reg = diag_reg_is_address(s);
	n->type = addr_reg ? &expr_t_voidptr : width == 8 ? &expr_t_long : width == 4 ? &expr_t_int
		: width == 2 ? &expr_t_short : &expr_t_schar;
	return 0;
}

/* ---- operators ---- */

static const struct diag_type *promote(const struct diag_type *t)
{
	t = diag_type_strip(t);
	if (t->kind == DIAG_TYPE_FLOAT)
		return t->size == 4 ? &expr_t_float : &expr_t_double;
	if (t->kind == DIAG_TYPE_BOOL || t->size < 4 || (t->kind == DIAG_TYPE_ENUM && t->size <= 4))
		return t->size < 4 || t->kind == DIAG_TYPE_BOOL || t->is_signed ? &expr_t_int : &expr_t_uint;
	return t;
}

const struct diag_type *expr_arith_type(const struct diag_type *a, const struct diag_type *b)
{
	a = promote(a);
	b = promote(b);
	if (a->kind == DIAG_TYPE_FLOAT || b->kind == DIAG_TYPE_FLOAT)
		return &expr_t_double;
	uint64_t size = a->size > b->size ? a->size : b->size;
	bool uns = (a->size == size && !a->is_signed) || (b->size == size && !b->is_signed);
	if (size <= 4)
		return uns ? &expr_t_uint : &expr_t_int;
	return uns ? &expr_t_ulong : &expr_t_long;
}

static int check(struct checker *c, struct expr_node *n);

static bool is_c_string(const struct diag_type *t)
{
	const struct diag_type *s = diag_type_strip(t);
	if (!s)
		return false;
	if (s->kind == DIAG_TYPE_STRING || expr_is_char_ptr(s))
		return true;
	const struct diag_type *e = s->kind == DIAG_TYPE_ARRAY ? diag_type_strip(s->target) : NULL;
	return e && e->kind == DIAG_TYPE_INT && e->is_char;
}

static int check_binary(struct checker *c, struct expr_node *n)
{
	const struct diag_type *ta = n->a->type, *tb = n->b->type;
	enum expr_tok t = n->tok;
	bool cmp = t == T_EQ || t == T_NE || t == T_LT || t == T_LE || t == T_GT || t == T_GE;
	if (n->b->op == N_STRLIT || n->a->op == N_STRLIT) {
		if (n->a->op == N_STRLIT) {
			struct expr_node *tmp = n->a;
			n->a = n->b;
			n->b = tmp;
		}
		if ((t != T_EQ && t != T_NE) || !is_c_string(n->a->type))
			return errat(c, n, -DIAG_E_INVALID,
				     "a string literal can only be compared (== or !=) with a C string%s", NULL);
		n->op = N_STREQ;
		n->type = &expr_t_int;
		return 0;
	}
	if (t == T_ANDAND || t == T_OROR) {
		if (!expr_is_scalar(ta) || !expr_is_scalar(tb))
			return type_err(c, n, "'&&' and '||' need scalar operands", expr_is_scalar(ta) ? tb : ta);
		n->type = &expr_t_int;
		return 0;
	}
	bool pa = is_kind(ta, DIAG_TYPE_PTR) || is_kind(ta, DIAG_TYPE_ARRAY);
	bool pb = is_kind(tb, DIAG_TYPE_PTR) || is_kind(tb, DIAG_TYPE_ARRAY);
	if (cmp && (pa || pb)) {
		n->type = &expr_t_int;
		return 0;
	}
	if ((t == T_PLUS || t == T_MINUS) && pa && expr_is_integer(tb)) {
		const struct diag_type *s = diag_type_strip(ta);
		n->type = s->kind == DIAG_TYPE_ARRAY ? make_ptr(c, s->target) : ta;
		return n->type ? 0 : errat(c, n, -DIAG_E_LIMIT, "too many pointer types%s", NULL);
	}
	if (t == T_PLUS && pb && expr_is_integer(ta)) {
		struct expr_node *tmp = n->a;
		n->a = n->b;
		n->b = tmp;
		return check_binary(c, n);
	}
	if (t == T_MINUS && pa && pb) {
		n->type = &expr_t_long;
		return 0;
	}
	bool int_only = t == T_PCT || t == T_AMP || t == T_PIPE || t == T_CARET || t == T_SHL || t == T_SHR;
	bool ok_a = int_only ? expr_is_integer(ta) : expr_is_integer(ta) || is_kind(ta, DIAG_TYPE_FLOAT);
	bool ok_b = int_only ? expr_is_integer(tb) : expr_is_integer(tb) || is_kind(tb, DIAG_TYPE_FLOAT);
	if (!ok_a || !ok_b)
		return type_err(c, ok_a ? n->b : n->a,
				int_only ? "operator needs integer operands" : "operator needs numbers",
				ok_a ? tb : ta);
	n->type = cmp ? &expr_t_int : (t == T_SHL || t == T_SHR) ? promote(ta) : expr_arith_type(ta, tb);
	return 0;
}

static int check_member(struct checker *c, struct expr_node *n)
{
	const struct diag_type *t = diag_type_strip(n->a->type);
	if (n->tok == T_ARROW) {
		if (!t || t->kind != DIAG_TYPE_PTR)
			return type_err(c, n, "'->' needs a pointer to a struct or union", n->a->type);
		t = diag_type_strip(t->target);
	}
	if (!t || (t->kind != DIAG_TYPE_STRUCT && t->kind != DIAG_TYPE_UNION))
		return type_err(c, n, n->tok == T_ARROW ? "'->' needs a pointer to a struct or union"
					       : "'.' needs a struct or union", n->a->type);
	if (t->declaration)
		return type_err(c, n, "incomplete type", t);
	for (size_t i = 0; i < t->nmembers; i++) {
		const struct diag_member *m = &t->members[i];
		if (m->name && !strcmp(m->name, n->s)) {
			n->member = m;
			n->type = m->type;
			n->lvalue = true;
			return 0;
		}
	}
	/* anonymous struct/union members: insert the hidden step */
	for (size_t i = 0; i < t->nmembers; i++) {
		const struct diag_member *m = &t->members[i];
		const struct diag_type *mt = diag_type_strip(m->type);
		if (m->name || !mt || (mt->kind != DIAG_TYPE_STRUCT && mt->kind != DIAG_TYPE_UNION))
			continue;
		for (size_t j = 0; j < mt->nmembers; j++) {
			if (!mt->members[j].name || strcmp(mt->members[j].name, n->s))
				continue;
			if (c->x->ar.n >= EXPR_MAX_NODES)
				return errat(c, n, -DIAG_E_LIMIT, "expression too large%s", NULL);
			struct expr_node *h = &c->x->ar.nodes[c->x->ar.n++];
			*h = *n;
			h->s = NULL;
			h->member = m;
			h->type = m->type;
			h->lvalue = true;
			n->a = h;
			n->tok = T_DOT;
			n->member = &mt->members[j];
			n->type = n->member->type;
			n->lvalue = true;
			return 0;
		}
	}
	char ts[128];
	spell(t, ts, sizeof(ts));
	char msg[300];
	snprintf(msg, sizeof(msg), "no member '%s' in %s", n->s, ts);
	return errat(c, n, -DIAG_E_NOSYM, "%s", msg);
}

static const struct diag_type *resolve_spelling(struct checker *c, const char *s)
{
	const struct diag_type *t = c->file ? diag_dwarf_find_type(c->file, s) : NULL;
	for (size_t i = 0; !t && i < sizeof(builtin_names) / sizeof(builtin_names[0]); i++)
		if (!strcmp(builtin_names[i].spelling, s))
			t = builtin_names[i].t;
	return t;
}

static int check_cast(struct checker *c, struct expr_node *n)
{
	const struct diag_type *t = resolve_spelling(c, n->s);
	if (!t)
		return errat(c, n, c->file ? -DIAG_E_NOSYM : -DIAG_E_NODEBUG,
			     c->file ? "unknown type '%s'" : "unknown type '%s' (no DWARF for this module)", n->s);
	for (int64_t i = 0; i < n->ival; i++)
		if (!(t = make_ptr(c, t)))
			return errat(c, n, -DIAG_E_LIMIT, "too many pointer types%s", NULL);
	const struct diag_type *from = n->a->type;
	bool from_ok = expr_is_scalar(from) || is_kind(from, DIAG_TYPE_ARRAY);
	if (!expr_is_scalar(t) || !from_ok)
		return type_err(c, n, "casts convert between numbers and pointers only",
				expr_is_scalar(t) ? from : t);
	n->type = t;
	return 0;
}

/* Whether name is a variable here (parameter, local or global): it then hides `stack`. */
static bool names_variable(struct checker *c, const char *name)
{
	for (size_t i = 0; c->x->scope && i < c->x->scope->nvars; i++)
		if (!strcmp(c->x->scope->vars[i].name, name))
			return true;
	struct diag_dwarf_var g;
	if (!c->file || diag_dwarf_global(c->file, name, &g) != 0)
		return false;
	free(g.name);
	return true;
}

static void make_stack(struct expr_node *n, int64_t depth)
{
	n->op = N_STACK;
	n->ival = depth;
	n->type = &expr_t_string;
}

/* stack() or stack(N): N a constant 1..DIAG_EXPR_STACK_MAX */
static int check_stack_call(struct checker *c, struct expr_node *n)
{
	if (n->nargs > 1)
		return errat(c, n, -DIAG_E_INVALID, "stack() takes at most one argument (the depth)%s", NULL);
	if (n->nargs == 0) {
		make_stack(n, DIAG_EXPR_STACK_DEFAULT);
		return 0;
	}
	if (n->a->op != N_INT || n->a->ival < 1 || n->a->ival > DIAG_EXPR_STACK_MAX) {
		char msg[96];
		snprintf(msg, sizeof(msg), "the depth of stack() must be a constant 1..%d",
			 DIAG_EXPR_STACK_MAX);
		return errat(c, n->a, -DIAG_E_INVALID, "%s", msg);
	}
	make_stack(n, n->a->ival);
	return 0;
}

static int check_call(struct checker *c, struct expr_node *n)
{
	if (!strcmp(n->s, "stack"))
		return check_stack_call(c, n);
	bool is_str = !strcmp(n->s, "str"), is_hex = !strcmp(n->s, "hex"), is_bytes = !strcmp(n->s, "bytes");
	if (!is_str && !is_hex && !is_bytes)
		return errat(c, n, -DIAG_E_NOSYM, "unknown function '%s'; known: str(p[, max]), hex(x), bytes(p, n), stack([depth])", n->s);
	int want_min = is_bytes ? 2 : 1, want_max = is_hex ? 1 : 2;
	if (n->nargs < want_min || n->nargs > want_max)
		return errat(c, n, -DIAG_E_INVALID, "wrong number of arguments to %s()", n->s);
	const struct diag_type *ta = n->a->type;
	if (is_hex) {
		if (!expr_is_integer(ta) && !is_kind(ta, DIAG_TYPE_PTR))
			return type_err(c, n->a, "hex() needs an integer or a pointer", ta);
		n->type = &expr_t_ulong;
		return 0;
	}
	if (!is_kind(ta, DIAG_TYPE_PTR) && !is_kind(ta, DIAG_TYPE_ARRAY) && !expr_is_integer(ta))
		return type_err(c, n->a, "needs a pointer or an address", ta);
	uint64_t limit = is_str ? DIAG_EXPR_MAX_BYTES - 1 : DIAG_EXPR_MAX_BYTES;
	n->max = is_str ? EXPR_STR_MAX : 0;
	if (n->b && n->b->op != N_INT) { /* a runtime length: bounded, not refused */
		if (!expr_is_integer(n->b->type))
			return type_err(c, n->b, "a length must be an integer", n->b->type);
		n->runtime_len = true;
		n->max = EXPR_RUNTIME_LEN_MAX;
	} else if (n->b) {
		if (n->b->ival <= 0 || (uint64_t)n->b->ival > limit) {
			char msg[96];
			snprintf(msg, sizeof(msg), "a constant length of %s() must be 1..%llu", n->s,
				 (unsigned long long)limit);
			return errat(c, n->b, -DIAG_E_INVALID, "%s", msg);
		}
		n->max = (uint64_t)n->b->ival;
	}
	n->type = is_str ? &expr_t_string : &expr_t_bytes;
	return 0;
}

static int check_deref(struct checker *c, struct expr_node *n)
{
	const struct diag_type *t = diag_type_strip(n->a->type);
	if (!t || (t->kind != DIAG_TYPE_PTR && t->kind != DIAG_TYPE_ARRAY))
		return type_err(c, n, "'*' needs a pointer", n->a->type);
	if (!t->target || is_kind(t->target, DIAG_TYPE_VOID))
		return type_err(c, n, "cannot dereference a void pointer; cast it first", n->a->type);
	if (is_kind(t->target, DIAG_TYPE_FUNC))
		return type_err(c, n, "cannot read a function", n->a->type);
	n->type = t->target;
	n->lvalue = true;
	return 0;
}

static int check_addr(struct checker *c, struct expr_node *n)
{
	if (!n->a->lvalue)
		return errat(c, n, -DIAG_E_INVALID, "'&' needs an object in memory%s", NULL);
	if (n->a->op == N_VAR) {
		const struct diag_dwarf_var *v = expr_var(c->x, n->a->var);
		uint8_t a = v->loc.ops[0].atom;
		if (v->loc.nops == 1 && ((a >= 0x50 && a <= 0x6f) || a == 0x90))
			return errat(c, n, -DIAG_E_INVALID, "'%s' lives in a register here: it has no address",
				     v->name);
	}
	if (n->a->member && n->a->member->bit_size)
		return errat(c, n, -DIAG_E_INVALID, "cannot take the address of bit field '%s'", n->a->member->name);
	n->type = make_ptr(c, n->a->type);
	return n->type ? 0 : errat(c, n, -DIAG_E_LIMIT, "too many pointer types%s", NULL);
}

static int check(struct checker *c, struct expr_node *n)
{
	int rc;
	if (n->a && n->op != N_CALL && (rc = check(c, n->a)))
		return rc;
	if (n->op == N_CALL && ((n->a && (rc = check(c, n->a))) || (n->b && (rc = check(c, n->b)))))
		return rc;
	if (n->op != N_CALL && n->b && (rc = check(c, n->b)))
		return rc;
	switch (n->op) {
	case N_INT:
		if (!n->type)
			n->type = n->ival >= INT32_MIN && n->ival <= INT32_MAX ? &expr_t_int
				: n->ival >= 0 ? &expr_t_long : &expr_t_ulong;
		return 0;
	case N_FLOAT:
		n->type = &expr_t_double;
		return 0;
	case N_STRLIT:
		n->type = &expr_t_string;
		return 0;
	case N_NAME:
		if (!strcmp(n->s, "stack") && !names_variable(c, n->s)) {
			make_stack(n, DIAG_EXPR_STACK_DEFAULT);
			return 0;
		}
		return check_name(c, n);
	case N_DOLLAR:
		return check_dollar(c, n);
	case N_UNARY:
		if (n->tok == T_BANG ? !expr_is_scalar(n->a->type)
		    : n->tok == T_TILDE ? !expr_is_integer(n->a->type)
		    : !(expr_is_integer(n->a->type) || is_kind(n->a->type, DIAG_TYPE_FLOAT)))
			return type_err(c, n, "operator does not apply", n->a->type);
		n->type = n->tok == T_BANG ? &expr_t_int : promote(n->a->type);
		return 0;
	case N_BINARY:
		return check_binary(c, n);
	case N_DEREF:
		return check_deref(c, n);
	case N_ADDR:
		return check_addr(c, n);
	case N_MEMBER:
		return check_member(c, n);
	case N_INDEX: {
		const struct diag_type *t = diag_type_strip(n->a->type);
		if (!t || (t->kind != DIAG_TYPE_PTR && t->kind != DIAG_TYPE_ARRAY) || !t->target ||
		    is_kind(t->target, DIAG_TYPE_VOID))
			return type_err(c, n, "'[]' needs an array or a typed pointer", n->a->type);
		if (!expr_is_integer(n->b->type))
			return type_err(c, n->b, "an index must be an integer", n->b->type);
		n->type = t->target;
		n->lvalue = true;
		return 0;
	}
	case N_CAST:
		return check_cast(c, n);
	case N_CALL:
		return check_call(c, n);
	default:
		return errat(c, n, -DIAG_E_INVALID, "internal: unexpected node%s", NULL);
	}
}

static bool is_type_cb(void *arg, const char *name)
{
	struct checker *c = arg;
	if (!c->file)
		return false;
	for (size_t i = 0; c->x->scope && i < c->x->scope->nvars; i++)
		if (!strcmp(c->x->scope->vars[i].name, name))
			return false;
	return diag_dwarf_find_type(c->file, name) != NULL;
}

static void open_scope(struct checker *c)
{
	const struct diag_expr_scope *sc = c->sc;
	struct diag_error e = { 0 };
	c->nodebug_code = -DIAG_E_NODEBUG;
	if (!sc->dwarf || !sc->elf_path)
		return;
	int rc = diag_dwarf_cache_get(sc->dwarf, sc->elf_path, sc->build_id, &c->file, &e);
	if (rc == 0)
		rc = diag_dwarf_scope_at(c->file, sc->pc - sc->bias, &c->x->scope, &e);
	if (rc) {
		c->file = NULL;
		c->nodebug_code = rc;
		snprintf(c->nodebug_msg, sizeof(c->nodebug_msg), "%s", e.msg);
	}
}

int diag_expr_compile(const char *src, const struct diag_expr_scope *scope, struct diag_expr **out,
		      struct diag_error *err)
{
	/* the messages below name no field: the spec field the source came from is named once */
	const char *field = scope && scope->field ? scope->field : "value";
	if (!src || !scope)
		return diag_error_set_field(err, field, -EINVAL, "%s: no expression", field);
	struct diag_expr *x = calloc(1, sizeof(*x));
	if (!x || !(x->src = strdup(src))) {
		free(x);
		return diag_error_set_field(err, field, -ENOMEM, "%s: out of memory", field);
	}
	x->bias = scope->bias;
	x->event = scope->event;
	struct diag_error e = { 0 };
	struct checker c = { .x = x, .sc = scope, .err = &e };
	open_scope(&c);
	int rc = expr_parse(src, &x->ar, is_type_cb, &c, &x->root, &e);
	if (rc == 0)
		rc = check(&c, x->root);
	if (rc) {
		diag_expr_free(x);
		if (err && e.code) {
			*err = e;
			diag_error_lead_field(err, field);
		}
		return rc;
	}
	*out = x;
	return 0;
}

void diag_expr_ref_n(const struct diag_expr *x, size_t n)
{
	if (x && n)
		atomic_fetch_add(&((struct diag_expr *)x)->extra_refs, (unsigned)n);
}

void diag_expr_free(struct diag_expr *x)
{
	diag_expr_free_n(x, 1);
}

void diag_expr_free_n(struct diag_expr *x, size_t k)
{
	if (!x || !k)
		return;
	/* other holders remain: the last one frees (fewer than k extra holds left means ours
	 * were the last k) */
	unsigned n = atomic_load(&x->extra_refs);
	while (n >= k && !atomic_compare_exchange_weak(&x->extra_refs, &n, (unsigned)(n - k)))
		;
	if (n >= k)
		return;
	expr_tree_free_strings(&x->ar);
	diag_dwarf_scope_free(x->scope);
	for (size_t i = 0; i < x->nglobals; i++)
		free(x->globals[i].name);
	free(x->globals);
	free(x->src);
	free(x);
}

const char *diag_expr_source(const struct diag_expr *x)
{
	return x ? x->src : "";
}
