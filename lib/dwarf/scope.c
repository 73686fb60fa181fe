/* dwarf/scope: the variables visible at one PC: parameters and locals of the function (and of
 * the lexical blocks and inlined calls holding the PC), each with the location description
 * valid there, plus the frame base and the CFA rule from the call-frame information. Reads
 * DWARF only; never touches a process. */
#include "dwarf/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCOPE_MAX_VARS 512
#define SCOPE_MAX_DEPTH 16


struct collect {
	struct diag_dwarf_file *f;
	uint64_t pc;
	bool at_entry;
	struct diag_dwarf_var *vars;
	size_t n;
	int rc;
};

static bool is_reg_atom(uint8_t a)
{
	return a >= DW_OP_reg0 && a <= DW_OP_reg31;
}

/* DW_OP_entry_value(DW_OP_regN): the register's value at entry, which is the register itself
 * while the PC is the function's first instruction. Elsewhere it needs the caller's call-site
 * information, which we do not follow: the location is then unavailable. */
static bool fix_entry_value(struct diag_loc_op *op, bool at_entry)
{
	const uint8_t *block = (const uint8_t *)(uintptr_t)op->op2;
	if (!at_entry || op->op1 != 1 || !block || !is_reg_atom(block[0]))
		return false;
	op->atom = (uint8_t)(DW_OP_breg0 + (block[0] - DW_OP_reg0));
	op->op1 = 0;
	op->op2 = 0;
	return true;
}

static int copy_ops(Dwarf_Locdesc_c desc, Dwarf_Unsigned nops, bool at_entry, struct diag_loc *out)
{
	Dwarf_Error e = NULL;
	if (nops > DIAG_LOC_MAX_OPS)
		return -DIAG_E_LIMIT;
	out->nops = 0;
	for (Dwarf_Unsigned j = 0; j < nops; j++) {
		Dwarf_Small atom;
		Dwarf_Unsigned op1, op2, op3, br;
		if (dwarf_get_location_op_value_c(desc, j, &atom, &op1, &op2, &op3, &br, &e) != DW_DLV_OK)
			return -DIAG_E_INVALID;
		struct diag_loc_op *op = &out->ops[out->nops++];
		*op = (struct diag_loc_op){ atom, op1, op2 };
		if (atom == DW_OP_entry_value || atom == DW_OP_GNU_entry_value) {
			if (!fix_entry_value(op, at_entry)) {
				out->nops = 0; /* unavailable here */
				return 1;
			}
		} else if (atom == DW_OP_implicit_value) {
			uint64_t v = 0;
			if (op1 > 8)
				return -DIAG_E_INVALID;
			memcpy(&v, (const void *)(uintptr_t)op2, op1);
			op->op2 = v;
		}
	}
	return 0;
}

/* The location of die's attribute `at` valid at pc. 0 and out set (nops 0: not available). */
/* A DWARF 5 location list attribute points at a list that dw_loclist_sound accepts; other
 * forms (expressions, DWARF 4 lists) are bounded by libdwarf itself. loclistx (split DWARF,
 * not produced by gcc here) cannot be checked and is refused. */
static bool list_checked(struct diag_dwarf_file *f, Dwarf_Die die, Dwarf_Attribute a)
{
	Dwarf_Half form = 0, version = 0, offsize = 0;
	Dwarf_Error e = NULL;
	Dwarf_Off off = 0;
	if (dwarf_whatform(a, &form, &e) != DW_DLV_OK)
		return false;
	dwarf_get_version_of_die(die, &version, &offsize);
	if (version < 5 || form == DW_FORM_exprloc || form == DW_FORM_block1 || form == DW_FORM_block2 ||
	    form == DW_FORM_block4 || form == DW_FORM_block)
		return true;
	if (form == DW_FORM_loclistx)
		return false;
	return dwarf_global_formref(a, &off, &e) == DW_DLV_OK && dw_loclist_sound(f, off);
}

static int read_loc(struct diag_dwarf_file *f, Dwarf_Die die, Dwarf_Half at, uint64_t pc, bool at_entry,
		    struct diag_loc *out, bool *is_list)
{
	Dwarf_Error e = NULL;
	Dwarf_Attribute a;
	(void)f;
	memset(out, 0, sizeof(*out));
	*is_list = false;
	if (at == DW_AT_location) {
		int64_t cv;
		Dwarf_Bool has = 0;
		if (dwarf_hasattr(die, DW_AT_const_value, &has, &e) == DW_DLV_OK && has &&
		    !dw_attr_sdata(die, DW_AT_const_value, &cv)) {
			out->has_const = true;
			out->const_val = cv;
			return 0;
		}
	}
	if (dwarf_attr(die, at, &a, &e) != DW_DLV_OK)
		return 0;
	if (!list_checked(f, die, a)) {
		dwarf_dealloc_attribute(a);
		return 0; /* a malformed list: no location (optimised out) rather than libdwarf's overrun */
	}
	Dwarf_Loc_Head_c head = NULL;
	Dwarf_Unsigned count = 0;
	int rc = 0;
	if (dwarf_get_loclist_c(a, &head, &count, &e) != DW_DLV_OK) {
		dwarf_dealloc_attribute(a);
		return 0;
	}
	for (Dwarf_Unsigned i = 0; i < count; i++) {
		Dwarf_Small lle = 0, source = 0;
		Dwarf_Unsigned rawlo, rawhi, nops = 0, exoff, ldoff;
		Dwarf_Bool unavail = 0;
		Dwarf_Addr lo = 0, hi = 0;
		Dwarf_Locdesc_c desc = NULL;
		if (dwarf_get_locdesc_entry_d(head, i, &lle, &rawlo, &rawhi, &unavail, &lo, &hi, &nops, &desc,
					      &source, &exoff, &ldoff, &e) != DW_DLV_OK)
			break;
		*is_list = source != 0;
		if (source != 0 && (unavail || pc < lo || pc >= hi || !nops))
			continue;
		rc = copy_ops(desc, nops, at_entry, out);
		if (rc > 0)
			rc = 0;
		break;
	}
	dwarf_loc_head_c_dealloc(head);
	dwarf_dealloc_attribute(a);
	return rc;
}

static Dwarf_Die origin_of(struct diag_dwarf_file *f, Dwarf_Die die)
{
	Dwarf_Off off;
	Dwarf_Die o;
	Dwarf_Error e = NULL;
	if (dw_attr_ref(die, DW_AT_abstract_origin, &off) || dwarf_offdie_b(f->dbg, off, true, &o, &e) != DW_DLV_OK)
		return NULL;
	return o;
}

static void add_var(struct collect *c, Dwarf_Die die, bool is_param)
{
	if (c->n >= SCOPE_MAX_VARS || dw_attr_flag(die, DW_AT_declaration))
		return;
	const char *name = dw_name(c->f, die);
	if (!name)
		return;
	struct diag_dwarf_var *v = &c->vars[c->n];
	memset(v, 0, sizeof(*v));
	v->type = dw_type_of(c->f, die);
	if (!v->type) {
		Dwarf_Die o = origin_of(c->f, die);
		if (o) {
			v->type = dw_type_of(c->f, o);
			dwarf_dealloc_die(o);
		}
	}
	v->is_param = is_param;
	bool is_list;
	int rc = read_loc(c->f, die, DW_AT_location, c->pc, c->at_entry, &v->loc, &is_list);
	if (rc < 0)
		memset(&v->loc, 0, sizeof(v->loc));
	diag_loc_describe(&v->loc, v->loc_text, sizeof(v->loc_text));
	if (is_list && v->loc.nops)
		strncat(v->loc_text, " (loclist)", sizeof(v->loc_text) - strlen(v->loc_text) - 1);
	v->name = strdup(name);
	if (!v->name) {
		c->rc = -ENOMEM;
		return;
	}
	c->n++;
}

/* The parameters and locals directly under one DIE, met while collect() walks it. */
struct own_vars {
	struct collect *c;
	int depth;
	Dwarf_Off off[SCOPE_MAX_VARS];
	bool param[SCOPE_MAX_VARS];
	size_t n;
};

static void collect(struct collect *c, Dwarf_Die parent, int depth);

static int collect_child(struct diag_dwarf_file *f, Dwarf_Die child, void *arg)
{
	struct own_vars *ov = arg;
	Dwarf_Error e = NULL;
	Dwarf_Half tag = 0;
	Dwarf_Off off = 0;
	dwarf_tag(child, &tag, &e);
	dwarf_dieoffset(child, &off, &e);
	if ((tag == DW_TAG_formal_parameter || tag == DW_TAG_variable) && ov->n < SCOPE_MAX_VARS) {
		ov->param[ov->n] = tag == DW_TAG_formal_parameter;
		ov->off[ov->n++] = off;
	} else if ((tag == DW_TAG_lexical_block || tag == DW_TAG_inlined_subroutine) &&
		   dw_die_covers(f, child, ov->c->pc)) {
		collect(ov->c, child, ov->depth + 1);
	}
	return 0;
}

/* Parameters and locals of `parent`; blocks and inlined calls holding pc come first
 * (innermost first), so a name lookup in order finds the innermost declaration. */
static void collect(struct collect *c, Dwarf_Die parent, int depth)
{
	Dwarf_Error e = NULL;
	if (depth > SCOPE_MAX_DEPTH)
		return;
	struct own_vars ov = { .c = c, .depth = depth };
	dw_each_child(c->f, parent, collect_child, &ov);
	Dwarf_Off *own = ov.off;
	bool *own_param = ov.param;
	size_t nown = ov.n;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < nown; i++) {
			Dwarf_Die d;
			if (own_param[i] != (pass == 0) || dwarf_offdie_b(c->f->dbg, own[i], true, &d, &e) != DW_DLV_OK)
				continue;
			add_var(c, d, own_param[i]);
			dwarf_dealloc_die(d);
		}
}

/* At a function's first instruction the prologue has not stored the parameters yet, so an
 * -O0 location in the frame (fbreg) would read garbage: take them from the System V argument
 * registers instead (INTEGER class: rdi rsi rdx rcx r8 r9; SSE: xmm0..7). Stops at the first
 * parameter it cannot classify (struct by value), leaving the DWARF locations of the rest. */
static void entry_abi_params(struct diag_dwarf_scope *s)
{
	static const uint8_t int_regs[] = { 5, 4, 1, 2, 8, 9 };
	const struct diag_type *rt = diag_type_strip(s->ret_type);
	size_t ni = rt && (rt->kind == DIAG_TYPE_STRUCT || rt->kind == DIAG_TYPE_UNION) && rt->size > 16;
	size_t nf = 0;
	for (size_t i = 0; i < s->nvars; i++) {
		struct diag_dwarf_var *v = &s->vars[i];
		if (!v->is_param)
			continue;
		const struct diag_type *t = diag_type_strip(v->type);
		if (!t || t->size > 8 || t->kind == DIAG_TYPE_STRUCT || t->kind == DIAG_TYPE_UNION ||
		    t->kind == DIAG_TYPE_ARRAY)
			return;
		bool sse = t->kind == DIAG_TYPE_FLOAT;
		if (sse ? nf >= 8 : ni >= 6)
			return;
		uint8_t reg = sse ? (uint8_t)(17 + nf++) : int_regs[ni++];
		bool frame_slot = v->loc.nops >= 1 && (v->loc.ops[0].atom == DW_OP_fbreg ||
						      (v->loc.ops[0].atom >= DW_OP_breg0 && v->loc.ops[0].atom <= DW_OP_breg31));
		if (!frame_slot)
			continue;
		memset(&v->loc, 0, sizeof(v->loc));
		v->loc.nops = 1;
		v->loc.ops[0].atom = reg < 32 ? (uint8_t)(DW_OP_reg0 + reg) : DW_OP_regx;
		diag_loc_describe(&v->loc, v->loc_text, sizeof(v->loc_text));
		strncat(v->loc_text, " (at entry, by the ABI)", sizeof(v->loc_text) - strlen(v->loc_text) - 1);
	}
}

/* CFA = reg + off at pc, from .eh_frame (or .debug_frame); at a function's first instruction
 * it is always rsp + 8 (the return address was just pushed). */
static void cfa_rule(struct diag_dwarf_file *f, uint64_t pc, bool at_entry, struct diag_dwarf_frame *fr)
{
	Dwarf_Error e = NULL;
	if (at_entry) {
		fr->cfa_known = true;
		fr->cfa_reg = 7;
		fr->cfa_off = 8;
		return;
	}
	if (!f->fde_tried) {
		f->fde_tried = true;
		if (dwarf_get_fde_list_eh(f->dbg, &f->cies, &f->ncies, &f->fdes, &f->nfdes, &e) != DW_DLV_OK &&
		    dwarf_get_fde_list(f->dbg, &f->cies, &f->ncies, &f->fdes, &f->nfdes, &e) != DW_DLV_OK) {
			f->cies = NULL;
			f->fdes = NULL;
		}
	}
	if (!f->fdes)
		return;
	Dwarf_Fde fde;
	Dwarf_Addr lo, hi, row;
	Dwarf_Small vtype = 0;
	Dwarf_Signed rel = 0, reg = 0, off = 0;
	Dwarf_Ptr block;
	Dwarf_Bool more;
	Dwarf_Addr subsequent;
	if (dwarf_get_fde_at_pc(f->fdes, pc, &fde, &lo, &hi, &e) != DW_DLV_OK)
		return;
	if (dwarf_get_fde_info_for_cfa_reg3_b(fde, pc, &vtype, &rel, &reg, &off, &block, &row, &more,
					      &subsequent, &e) != DW_DLV_OK)
		return;
	if (vtype == DW_EXPR_OFFSET && rel) {
		fr->cfa_known = true;
		fr->cfa_reg = (int)reg;
		fr->cfa_off = off;
	}
}

static uint64_t entry_of(struct diag_dwarf_file *f, Dwarf_Die die, uint64_t fallback)
{
	Dwarf_Addr lo;
	Dwarf_Error e = NULL;
	uint64_t v;
	if (!dw_attr_udata(die, DW_AT_entry_pc, &v) && v)
		return v;
	return dwarf_lowpc(die, &lo, &e) == DW_DLV_OK ? lo : fallback;
	(void)f;
}

int diag_dwarf_scope_at(struct diag_dwarf_file *f, uint64_t vaddr, struct diag_dwarf_scope **out,
			struct diag_error *err)
{
	if (f->remote)
		return dw_remote_scope_at(f, vaddr, out, err);
	const struct dw_func *fn = dw_find_func(f, vaddr);
	Dwarf_Die die;
	Dwarf_Error e = NULL;
	if (!fn || dwarf_offdie_b(f->dbg, fn->die, true, &die, &e) != DW_DLV_OK)
		return diag_error_set(err, -DIAG_E_NOSYM, "no function with DWARF in %s covers 0x%llx",
				      f->name, (unsigned long long)vaddr);
	struct diag_dwarf_scope *s = calloc(1, sizeof(*s));
	struct diag_dwarf_var *vars = calloc(SCOPE_MAX_VARS, sizeof(*vars));
	const char *name = dw_name(f, die);
	if (!s || !vars || !(s->func = strdup(name ? name : "?"))) {
		free(vars);
		diag_dwarf_scope_free(s);
		dwarf_dealloc_die(die);
		return diag_error_set(err, -ENOMEM, "dwarf: out of memory");
	}
	s->file = f;
	s->low_pc = entry_of(f, die, fn->lo);
	s->at_entry = vaddr == s->low_pc;
	s->ret_type = dw_type_of(f, die);
	if (!s->ret_type) {
		Dwarf_Die o = origin_of(f, die);
		if (o) {
			s->ret_type = dw_type_of(f, o);
			dwarf_dealloc_die(o);
		}
	}
	bool is_list;
	read_loc(f, die, DW_AT_frame_base, vaddr, false, &s->frame.fb, &is_list);
	cfa_rule(f, vaddr, s->at_entry, &s->frame);
	struct collect c = { .f = f, .pc = vaddr, .at_entry = s->at_entry, .vars = vars };
	collect(&c, die, 0);
	dwarf_dealloc_die(die);
	s->vars = vars;
	s->nvars = c.n;
	if (c.rc) {
		diag_dwarf_scope_free(s);
		return diag_error_set(err, c.rc, "dwarf: out of memory");
	}
	if (s->at_entry)
		entry_abi_params(s);
	*out = s;
	return 0;
}

void diag_dwarf_scope_free(struct diag_dwarf_scope *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nvars; i++)
		free(s->vars[i].name);
	free(s->vars);
	free(s->func);
	free(s);
}

int diag_dwarf_global(struct diag_dwarf_file *f, const char *name, struct diag_dwarf_var *out)
{
	if (f->remote)
		return dw_remote_global(f, name, out);
	const struct dw_name *n = dw_find_global(f, name);
	Dwarf_Die die;
	Dwarf_Error e = NULL;
	if (!n || dwarf_offdie_b(f->dbg, n->die, true, &die, &e) != DW_DLV_OK)
		return -DIAG_E_NOSYM;
	memset(out, 0, sizeof(*out));
	out->type = dw_type_of(f, die);
	if (!out->type) {
		Dwarf_Off spec;
		Dwarf_Die d2;
		if (!dw_attr_ref(die, DW_AT_specification, &spec) &&
		    dwarf_offdie_b(f->dbg, spec, true, &d2, &e) == DW_DLV_OK) {
			out->type = dw_type_of(f, d2);
			dwarf_dealloc_die(d2);
		}
	}
	bool is_list;
	read_loc(f, die, DW_AT_location, 0, false, &out->loc, &is_list);
	dwarf_dealloc_die(die);
	diag_loc_describe(&out->loc, out->loc_text, sizeof(out->loc_text));
	out->name = strdup(name);
	return out->name ? 0 : -ENOMEM;
}
