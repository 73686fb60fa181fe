/* dwarf/type_build: builds diag_type values from type DIEs on first use (base, pointer, struct,
 * union, array, enum, typedef, const/volatile, bit fields, functions), memoised per DIE
 * offset, so each DIE is filled at most once however often the graph shares it. Only edges
 * followed by value (members, typedef and qualifier targets, array elements, return and
 * underlying types) recurse; a pointer's target is queued and built once the outermost
 * build is done, so the recursion is as deep as the nesting by value, not as the pointer graph
 * (struct req { struct req *next; }). Hostile DWARF may nest by value in a cycle (a typedef
 * of a const of itself) or without end: such a reference is cut (void) there, as the daemon
 * (remote.c) would refuse such a graph and stripping or sizing it would never end. Memory
 * comes from the file's arena; nothing here touches a process. */
#include "dwarf/internal.h"
#include "util/grow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TYPE_MAX_MEMBERS 1024
#define TYPE_MAX_ENUMS 4096
#define TYPE_MAX_DIMS 8

static size_t hash_off(Dwarf_Off o, size_t cap)
{
	return (size_t)((o * 0x9E3779B97F4A7C15ULL) >> 20) & (cap - 1);
}

static struct diag_type **tmap_slot(struct dw_tmap *m, Dwarf_Off off, bool *found)
{
	size_t i = hash_off(off, m->cap);
	while (m->keys[i] && m->keys[i] != off + 1)
		i = (i + 1) & (m->cap - 1);
	*found = m->keys[i] == off + 1;
	m->keys[i] = off + 1;
	return &m->vals[i];
}

static int tmap_grow(struct dw_tmap *m)
{
	if (m->cap && (m->n + 1) * 2 < m->cap)
		return 0;
	struct dw_tmap n = { .cap = m->cap ? m->cap * 2 : 256 };
	n.keys = calloc(n.cap, sizeof(*n.keys));
	n.vals = calloc(n.cap, sizeof(*n.vals));
	if (!n.keys || !n.vals) {
		free(n.keys);
		free(n.vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		bool found;
		*tmap_slot(&n, m->keys[i] - 1, &found) = m->vals[i];
	}
	n.n = m->n;
	free(m->keys);
	free(m->vals);
	*m = n;
	return 0;
}

void dw_tmap_free(struct dw_tmap *m)
{
	free(m->keys);
	free(m->vals);
	free(m->pend);
	memset(m, 0, sizeof(*m));
}

static const char *die_name(Dwarf_Die die)
{
	char *name = NULL;
	Dwarf_Error e = NULL;
	int rc = dwarf_diename(die, &name, &e);
	if (rc == DW_DLV_ERROR)
		(void)e; /* libdwarf frees it with the Dwarf_Debug; freeing it here double-frees */
	return rc == DW_DLV_OK ? name : NULL;
}

static void fill(struct diag_dwarf_file *f, Dwarf_Die die, Dwarf_Half tag, struct diag_type *t);

/* The type at off, reached by value from the types being filled (m->building). */
static const struct diag_type *build(struct diag_dwarf_file *f, Dwarf_Off off)
{
	struct dw_tmap *m = &f->types;
	if (m->depth >= DW_TYPE_MAX_DEPTH)
		return NULL; /* left unbuilt: a shallower reference may still build it whole */
	if (tmap_grow(m))
		return NULL;
	bool found;
	struct diag_type **slot = tmap_slot(m, off, &found);
	if (found) {
		/* pointers never recurse, so one still being filled is a cycle by value */
		for (size_t i = 0; i < m->depth; i++)
			if (m->building[i] == *slot)
				return NULL;
		return *slot;
	}
	m->n++;
	Dwarf_Die die;
	Dwarf_Error e = NULL;
	Dwarf_Half tag = 0;
	struct diag_type *t = dw_alloc(f, sizeof(*t));
	*slot = t;
	if (!t || dwarf_offdie_b(f->dbg, off, true, &die, &e) != DW_DLV_OK)
		return t;
	if (dwarf_tag(die, &tag, &e) == DW_DLV_OK) {
		m->building[m->depth++] = t;
		fill(f, die, tag, t); /* may recurse into build: the slot is already taken */
		m->depth--;
	}
	dwarf_dealloc_die(die);
	return t;
}

/* The type named by DW_AT_type of die, followed by value. */
static const struct diag_type *build_of(struct diag_dwarf_file *f, Dwarf_Die die)
{
	Dwarf_Off off;
	if (dw_attr_ref(die, DW_AT_type, &off))
		return NULL;
	return build(f, off);
}

/* A pointer's target, built later by dw_type_at (NULL stays: void *, also when out of memory). */
static void defer_target(struct diag_dwarf_file *f, Dwarf_Die die, struct diag_type *ptr)
{
	struct dw_tmap *m = &f->types;
	Dwarf_Off off;
	if (dw_attr_ref(die, DW_AT_type, &off) || DIAG_GROW(&m->pend, &m->cappend, m->npend + 1))
		return;
	m->pend[m->npend++] = (struct dw_tpend){ ptr, off };
}

const struct diag_type *dw_type_at(struct diag_dwarf_file *f, Dwarf_Off off)
{
	struct dw_tmap *m = &f->types;
	const struct diag_type *t = build(f, off);
	/* each pointer DIE is filled once, so the queue holds at most one entry per pointer DIE */
	while (m->npend) {
		struct dw_tpend p = m->pend[--m->npend];
		p.ptr->target = build(f, p.target);
	}
	return t;
}

const struct diag_type *dw_type_of(struct diag_dwarf_file *f, Dwarf_Die die)
{
	Dwarf_Off off;
	if (dw_attr_ref(die, DW_AT_type, &off))
		return NULL;
	return dw_type_at(f, off);
}

static void fill_base(Dwarf_Die die, struct diag_type *t)
{
	uint64_t enc = 0;
	dw_attr_udata(die, DW_AT_encoding, &enc);
	switch (enc) {
	case DW_ATE_boolean:
		t->kind = DIAG_TYPE_BOOL;
		break;
	case DW_ATE_float:
		t->kind = DIAG_TYPE_FLOAT;
		break;
	case DW_ATE_signed_char:
	case DW_ATE_unsigned_char:
		t->kind = DIAG_TYPE_INT;
		t->is_char = t->size == 1;
		t->is_signed = enc == DW_ATE_signed_char;
		break;
	default:
		t->kind = DIAG_TYPE_INT;
		t->is_signed = enc == DW_ATE_signed;
		break;
	}
}

struct child_offs {
	Dwarf_Half want;
	Dwarf_Off *out;
	size_t n, cap;
};

static int child_off(struct diag_dwarf_file *f, Dwarf_Die c, void *arg)
{
	(void)f;
	struct child_offs *co = arg;
	Dwarf_Error e = NULL;
	Dwarf_Half tag = 0;
	Dwarf_Off off;
	if (dwarf_tag(c, &tag, &e) == DW_DLV_OK && tag == co->want && co->n < co->cap &&
	    dwarf_dieoffset(c, &off, &e) == DW_DLV_OK)
		co->out[co->n++] = off;
	return 0;
}

/* Children of die with the given tag, in order, as an array of DIE offsets. */
static size_t child_offsets(struct diag_dwarf_file *f, Dwarf_Die die, Dwarf_Half want, Dwarf_Off *out,
			    size_t cap)
{
	struct child_offs co = { want, out, 0, cap };
	dw_each_child(f, die, child_off, &co);
	return co.n;
}

static void fill_member(struct diag_dwarf_file *f, Dwarf_Die m, uint64_t parent_size, struct diag_member *dm)
{
	const char *name = die_name(m);
	dm->name = name;
	dm->type = build_of(f, m);
	uint64_t off = 0, bits = 0, dbo = 0, bo = 0, bsz = 0;
	dw_attr_udata(m, DW_AT_data_member_location, &off); /* exprloc (old GCC) reads as 0 */
	if (!dw_attr_udata(m, DW_AT_bit_size, &bits) && bits) {
		dm->bit_size = (unsigned)bits;
		if (!dw_attr_udata(m, DW_AT_data_bit_offset, &dbo)) {
			off = dbo / 8;
			dm->bit_offset = (unsigned)(dbo % 8);
		} else if (!dw_attr_udata(m, DW_AT_bit_offset, &bo)) {
			/* DWARF 2/3: bits from the most significant end of a byte_size unit */
			if (dw_attr_udata(m, DW_AT_byte_size, &bsz))
				bsz = dm->type ? diag_type_strip(dm->type)->size : 4;
			uint64_t lsb = bsz * 8 - bo - bits;
			off += lsb / 8;
			dm->bit_offset = (unsigned)(lsb % 8);
		}
	}
	(void)parent_size;
	dm->offset = off;
}

static void fill_struct(struct diag_dwarf_file *f, Dwarf_Die die, struct diag_type *t)
{
	/* on the heap: DW_TYPE_MAX_DEPTH nested structs would take 2 MB of stack */
	Dwarf_Off *offs = malloc(TYPE_MAX_MEMBERS * sizeof(*offs));
	size_t n = offs ? child_offsets(f, die, DW_TAG_member, offs, TYPE_MAX_MEMBERS) : 0;
	struct diag_member *ms = n ? dw_alloc(f, n * sizeof(*ms)) : NULL;
	if (!ms) {
		free(offs);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		Dwarf_Die m;
		Dwarf_Error e = NULL;
		if (dwarf_offdie_b(f->dbg, offs[i], true, &m, &e) != DW_DLV_OK)
			continue;
		fill_member(f, m, t->size, &ms[k++]);
		dwarf_dealloc_die(m);
	}
	free(offs);
	t->members = ms;
	t->nmembers = k;
}

static void fill_enum(struct diag_dwarf_file *f, Dwarf_Die die, struct diag_type *t)
{
	const struct diag_type *under = diag_type_strip(build_of(f, die));
	t->is_signed = under ? under->is_signed : false;
	Dwarf_Off *offs = malloc(TYPE_MAX_ENUMS * sizeof(*offs));
	size_t n = offs ? child_offsets(f, die, DW_TAG_enumerator, offs, TYPE_MAX_ENUMS) : 0;
	struct diag_enumerator *es = n ? dw_alloc(f, n * sizeof(*es)) : NULL;
	size_t k = 0;
	bool any_negative = false;
	for (size_t i = 0; es && i < n; i++) {
		Dwarf_Die en;
		Dwarf_Error e = NULL;
		int64_t v = 0;
		if (dwarf_offdie_b(f->dbg, offs[i], true, &en, &e) != DW_DLV_OK)
			continue;
		Dwarf_Attribute a;
		Dwarf_Signed sv;
		if (dwarf_attr(en, DW_AT_const_value, &a, &e) == DW_DLV_OK) {
			Dwarf_Half form = 0;
			dwarf_whatform(a, &form, &e);
			if (form == DW_FORM_sdata || form == DW_FORM_implicit_const) {
				if (dwarf_formsdata(a, &sv, &e) == DW_DLV_OK)
					v = sv;
			} else {
				dw_attr_sdata(en, DW_AT_const_value, &v);
				/* data1..data8 of a signed enum: sign-extend from the enum's size */
				if (t->is_signed && t->size && t->size < 8 && (v >> (t->size * 8 - 1)) & 1)
					v |= (int64_t)(~0ULL << (t->size * 8));
			}
			dwarf_dealloc_attribute(a);
		}
		any_negative |= v < 0;
		es[k].name = die_name(en);
		es[k].value = v;
		k += es[k].name != NULL;
		dwarf_dealloc_die(en);
	}
	if (!under)
		t->is_signed = any_negative;
	free(offs);
	t->enums = es;
	t->nenums = k;
}

static void fill_array(struct diag_dwarf_file *f, Dwarf_Die die, struct diag_type *t)
{
	Dwarf_Off offs[TYPE_MAX_DIMS];
	size_t n = child_offsets(f, die, DW_TAG_subrange_type, offs, TYPE_MAX_DIMS);
	const struct diag_type *elem = build_of(f, die);
	uint64_t counts[TYPE_MAX_DIMS] = { 0 };
	for (size_t i = 0; i < n; i++) {
		Dwarf_Die s;
		Dwarf_Error e = NULL;
		if (dwarf_offdie_b(f->dbg, offs[i], true, &s, &e) != DW_DLV_OK)
			continue;
		uint64_t ub, lb = 0, cnt;
		if (!dw_attr_udata(s, DW_AT_count, &cnt))
			counts[i] = cnt;
		else if (!dw_attr_udata(s, DW_AT_upper_bound, &ub)) {
			dw_attr_udata(s, DW_AT_lower_bound, &lb);
			counts[i] = ub + 1 - lb;
		}
		dwarf_dealloc_die(s);
	}
	if (n == 0)
		n = 1;
	/* int a[2][3]: array of 2 (array of 3 int): build from the innermost dimension */
	struct diag_type *cur = t;
	for (size_t i = 0; i < n; i++) {
		cur->kind = DIAG_TYPE_ARRAY;
		cur->count = counts[i];
		if (i + 1 < n) {
			struct diag_type *inner = dw_alloc(f, sizeof(*inner));
			if (!inner)
				break;
			cur->target = inner;
			cur = inner;
		} else {
			cur->target = elem;
		}
	}
	/* sizes from the inside out */
	for (size_t depth = n; depth-- > 0;) {
		struct diag_type *d = t;
		for (size_t i = 0; i < depth && d->target; i++)
			d = (struct diag_type *)d->target;
		const struct diag_type *e = diag_type_strip(d->target);
		d->size = d->count * (e ? e->size : 0);
	}
}

static void fill(struct diag_dwarf_file *f, Dwarf_Die die, Dwarf_Half tag, struct diag_type *t)
{
	uint64_t size = 0;
	dw_attr_udata(die, DW_AT_byte_size, &size);
	t->size = size;
	t->name = die_name(die);
	t->declaration = dw_attr_flag(die, DW_AT_declaration);
	switch (tag) {
	case DW_TAG_base_type:
		fill_base(die, t);
		break;
	case DW_TAG_pointer_type:
	case DW_TAG_reference_type:
	case DW_TAG_rvalue_reference_type:
		t->kind = DIAG_TYPE_PTR;
		t->size = size ? size : 8;
		defer_target(f, die, t);
		break;
	case DW_TAG_structure_type:
	case DW_TAG_class_type:
	case DW_TAG_union_type:
		t->kind = tag == DW_TAG_union_type ? DIAG_TYPE_UNION : DIAG_TYPE_STRUCT;
		fill_struct(f, die, t);
		break;
	case DW_TAG_enumeration_type:
		t->kind = DIAG_TYPE_ENUM;
		fill_enum(f, die, t);
		break;
	case DW_TAG_array_type:
		fill_array(f, die, t);
		break;
	case DW_TAG_typedef:
	case DW_TAG_const_type:
	case DW_TAG_volatile_type:
	case DW_TAG_restrict_type:
	case DW_TAG_atomic_type:
		t->kind = tag == DW_TAG_const_type ? DIAG_TYPE_CONST
			: tag == DW_TAG_volatile_type ? DIAG_TYPE_VOLATILE : DIAG_TYPE_TYPEDEF;
		t->target = build_of(f, die);
		if (tag != DW_TAG_typedef) {
			t->name = NULL;
			if (tag == DW_TAG_restrict_type || tag == DW_TAG_atomic_type)
				t->kind = DIAG_TYPE_CONST == t->kind ? t->kind : DIAG_TYPE_TYPEDEF;
		}
		if (!t->target && tag == DW_TAG_typedef)
			t->target = NULL;
		{
			const struct diag_type *s = diag_type_strip(t->target);
			t->size = s ? s->size : 0;
		}
		break;
	case DW_TAG_subroutine_type:
		t->kind = DIAG_TYPE_FUNC;
		t->target = build_of(f, die);
		break;
	case DW_TAG_unspecified_type:
	default:
		t->kind = DIAG_TYPE_VOID;
		break;
	}
}
