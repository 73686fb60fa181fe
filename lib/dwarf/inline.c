/* dwarf/inline: the inlined instances of a file (DW_TAG_inlined_subroutine: origin names, entry
 * address, contiguous bounds, caller and call site) and the PC ranges of every scope (function,
 * inlined call, lexical block with locals) that line lookups group addresses by. Each is built
 * by a walk over the DIEs, once per file, on first use; the instances alone (what every probe
 * by name asks for) skip the units whose abbreviations have no inlined-subroutine tag (an -O0
 * unit: nothing to find there). Reads DWARF only; never touches a process. */
#include "dwarf/internal.h"
#include "util/search.h"
#include "util/grow.h"

#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WALK_MAX_DEPTH 64

struct dw_inl {
	struct diag_dwarf_inline pub;
};

struct walk {
	struct diag_dwarf_file *f;
	Dwarf_Die cu;
	char **files;         /* the CU's file table (dwarf_srcfiles) */
	Dwarf_Signed nfiles;
	Dwarf_Half version;
	bool want_inls, want_scopes;
	Dwarf_Die caller_die; /* the out-of-line function being walked */
	const char *caller;   /* its name, read at its first inlined instance */
	Dwarf_Off scope_die;  /* the scope whose ranges scope_cb records */
	int scope_depth;
	int rc;
};

static void scope_cb(void *arg, uint64_t lo, uint64_t hi)
{
	struct walk *w = arg;
	struct diag_dwarf_file *f = w->f;
	if (w->rc || (w->rc = DIAG_GROW(&f->scopes, &f->capscopes, f->nscopes + 1)))
		return;
	f->scopes[f->nscopes++] = (struct dw_scope){ lo, hi, w->scope_die, w->scope_depth };
}

static const char *attr_string(Dwarf_Die die, Dwarf_Half at)
{
	Dwarf_Attribute a;
	Dwarf_Error e = NULL;
	char *s = NULL;
	if (dwarf_attr(die, at, &a, &e) != DW_DLV_OK)
		return NULL;
	if (dwarf_formstring(a, &s, &e) != DW_DLV_OK)
		s = NULL;
	dwarf_dealloc_attribute(a);
	return s;
}

/* Name and linkage name of an inlined instance's origin, following abstract_origin and
 * specification (a C++ member's linkage name sits on its in-class declaration). */
static void origin_names(struct diag_dwarf_file *f, Dwarf_Die die, const char **name,
			 const char **linkage)
{
	*name = *linkage = NULL;
	Dwarf_Die cur = die;
	for (int hop = 0; hop < 6; hop++) {
		if (!*name) {
			char *n = NULL;
			Dwarf_Error e = NULL;
			if (dwarf_diename(cur, &n, &e) == DW_DLV_OK)
				*name = n;
		}
		if (!*linkage && !(*linkage = attr_string(cur, DW_AT_linkage_name)))
			*linkage = attr_string(cur, DW_AT_MIPS_linkage_name);
		Dwarf_Off off;
		Dwarf_Die next;
		Dwarf_Error e = NULL;
		bool more = (!*name || !*linkage) &&
			    (!dw_attr_ref(cur, DW_AT_abstract_origin, &off) ||
			     !dw_attr_ref(cur, DW_AT_specification, &off)) &&
			    dwarf_offdie_b(f->dbg, off, true, &next, &e) == DW_DLV_OK;
		if (cur != die)
			dwarf_dealloc_die(cur);
		if (!more)
			return;
		cur = next;
	}
	if (cur != die)
		dwarf_dealloc_die(cur);
}

struct first_range {
	uint64_t lo, hi;
	int n;
};

static void first_range_cb(void *arg, uint64_t lo, uint64_t hi)
{
	struct first_range *r = arg;
	if (r->n++ == 0) {
		r->lo = lo;
		r->hi = hi;
	}
}

/* DW_AT_entry_pc is an address, or (DWARF 5) a constant offset from the instance's base. */
static bool entry_pc(Dwarf_Die die, uint64_t base, uint64_t *out)
{
	Dwarf_Attribute a;
	Dwarf_Error e = NULL;
	if (dwarf_attr(die, DW_AT_entry_pc, &a, &e) != DW_DLV_OK)
		return false;
	Dwarf_Addr addr;
	Dwarf_Unsigned u;
	bool ok = false;
	if (dwarf_formaddr(a, &addr, &e) == DW_DLV_OK) {
		*out = addr;
		ok = true;
	} else if ((e = NULL, dwarf_formudata(a, &u, &e)) == DW_DLV_OK && base) {
		*out = base + u;
		ok = true;
	}
	dwarf_dealloc_attribute(a);
	return ok;
}

static const char *call_file(struct walk *w, Dwarf_Die die)
{
	uint64_t idx;
	if (dw_attr_udata(die, DW_AT_call_file, &idx))
		return "";
	/* DWARF 5 numbers files from 0; earlier versions from 1 (0: none) */
	if (w->version < 5) {
		if (idx == 0)
			return "";
		idx--;
	}
	if (!w->files || idx >= (uint64_t)w->nfiles)
		return "";
	const char *slash = strrchr(w->files[idx], '/');
	const char *base = slash ? slash + 1 : w->files[idx];
	const char *copy = dw_strdup(w->f, base);
	return copy ? copy : "";
}

static void add_inline(struct walk *w, Dwarf_Die die)
{
	struct diag_dwarf_file *f = w->f;
	struct first_range r = { 0 };
	dw_ranges(f, die, first_range_cb, &r);
	if (!w->caller && w->caller_die)
		w->caller = dw_name(f, w->caller_die);
	struct diag_dwarf_inline in = { .caller = w->caller ? w->caller : "" };
	origin_names(f, die, &in.name, &in.linkage);
	if (!in.name)
		in.name = "";
	if (!entry_pc(die, r.lo, &in.entry))
		in.entry = r.n ? r.lo : 0;
	if (r.n == 1) {
		in.lo = r.lo;
		in.hi = r.hi;
	}
	in.call_file = call_file(w, die);
	uint64_t line = 0;
	if (!dw_attr_udata(die, DW_AT_call_line, &line))
		in.call_line = (unsigned)line;
	if ((w->rc = DIAG_GROW(&f->inls, &f->capinls, f->ninls + 1)))
		return;
	f->inls[f->ninls++].pub = in;
}

static int is_variable(struct diag_dwarf_file *f, Dwarf_Die c, void *arg)
{
	(void)f;
	(void)arg;
	Dwarf_Error e = NULL;
	Dwarf_Half tag = 0;
	return dwarf_tag(c, &tag, &e) == DW_DLV_OK && tag == DW_TAG_variable;
}

static bool has_variable_child(struct diag_dwarf_file *f, Dwarf_Die die)
{
	return dw_each_child(f, die, is_variable, NULL) == 1;
}

static void walk_die(struct walk *w, Dwarf_Die die, int depth);

static void add_scope(struct walk *w, Dwarf_Die die, int depth)
{
	Dwarf_Error e = NULL;
	if (!w->want_scopes || dwarf_dieoffset(die, &w->scope_die, &e) != DW_DLV_OK)
		return;
	w->scope_depth = depth;
	dw_ranges(w->f, die, scope_cb, w);
}

struct walk_child {
	struct walk *w;
	int depth;
};

static int walk_child(struct diag_dwarf_file *f, Dwarf_Die c, void *arg)
{
	(void)f;
	struct walk_child *wc = arg;
	walk_die(wc->w, c, wc->depth);
	return wc->w->rc;
}

static void walk_children(struct walk *w, Dwarf_Die parent, int depth)
{
	if (depth > WALK_MAX_DEPTH)
		return;
	struct walk_child wc = { w, depth };
	dw_each_child(w->f, parent, walk_child, &wc);
}

static void walk_die(struct walk *w, Dwarf_Die die, int depth)
{
	Dwarf_Error e = NULL;
	Dwarf_Half tag = 0;
	if (dwarf_tag(die, &tag, &e) != DW_DLV_OK)
		return;
	switch (tag) {
	case DW_TAG_subprogram: {
		if (dw_attr_flag(die, DW_AT_declaration))
			return;
		Dwarf_Die saved_die = w->caller_die;
		const char *saved = w->caller;
		if (depth == 0 || !w->caller_die) {
			w->caller_die = die;
			w->caller = NULL;
		}
		add_scope(w, die, depth);
		walk_children(w, die, depth + 1);
		w->caller_die = saved_die;
		w->caller = saved;
		return;
	}
	case DW_TAG_inlined_subroutine:
		if (w->want_inls)
			add_inline(w, die);
		add_scope(w, die, depth);
		break;
	case DW_TAG_lexical_block:
		if (w->want_scopes && has_variable_child(w->f, die))
			add_scope(w, die, depth);
		break;
	case DW_TAG_namespace:
	case DW_TAG_structure_type:
	case DW_TAG_class_type:
	case DW_TAG_union_type:
		break;
	default:
		return;
	}
	walk_children(w, die, depth + 1);
}

struct walk_want {
	bool inls, scopes;
};

static int walk_cu(struct diag_dwarf_file *f, Dwarf_Die cu, const struct dw_cu_hdr *hdr, void *arg)
{
	const struct walk_want *want = arg;
	if (!want->scopes && !dw_cu_has_tag(f, hdr, DW_TAG_inlined_subroutine))
		return 0;
	Dwarf_Error e = NULL;
	struct walk w = { .f = f, .cu = cu, .version = hdr->version, .want_inls = want->inls,
			  .want_scopes = want->scopes };
	if (want->inls && dwarf_srcfiles(cu, &w.files, &w.nfiles, &e) != DW_DLV_OK) {
		w.files = NULL;
		w.nfiles = 0;
	}
	walk_children(&w, cu, 0);
	for (Dwarf_Signed i = 0; i < w.nfiles; i++)
		dwarf_dealloc(f->dbg, w.files[i], DW_DLA_STRING);
	if (w.files)
		dwarf_dealloc(f->dbg, w.files, DW_DLA_LIST);
	return w.rc;
}

static int cmp_scope(const void *a, const void *b)
{
	const struct dw_scope *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* One walk for what is not built yet of want (the instances, the scopes, or both). */
static int build(struct diag_dwarf_file *f, struct walk_want want)
{
	if (want.inls) {
		free(f->inls);
		f->inls = NULL;
		f->ninls = f->capinls = 0;
	}
	if (want.scopes) {
		free(f->scopes);
		f->scopes = NULL;
		f->nscopes = f->capscopes = 0;
	}
	int rc = dw_each_cu(f, walk_cu, &want);
	if (rc == -DIAG_E_NODEBUG)
		rc = 0; /* a unit header that cannot be read ends the walk (index.c refused such files) */
	if (want.scopes)
		diag_sort(f->scopes, f->nscopes, sizeof(*f->scopes), cmp_scope);
	if (rc == 0) {
		f->inls_built |= want.inls;
		f->scopes_built |= want.scopes;
	}
	return rc;
}

int dw_inline_build(struct diag_dwarf_file *f)
{
	return f->inls_built ? 0 : build(f, (struct walk_want){ .inls = true });
}

int dw_scopes_build(struct diag_dwarf_file *f)
{
	return f->scopes_built ? 0 : build(f, (struct walk_want){ .inls = !f->inls_built,
								   .scopes = true });
}

/* The innermost scope holding pc (the deepest range), or NULL. */
const struct dw_scope *dw_scope_at(const struct diag_dwarf_file *f, uint64_t pc)
{
	size_t lo = diag_upper_bound_u64(f->scopes, f->nscopes, sizeof(*f->scopes),
					 offsetof(struct dw_scope, lo), pc);
	const struct dw_scope *best = NULL;
	/* scopes nest: the enclosing ones start at or before pc, usually a few entries back */
	for (size_t i = lo; i-- > 0 && lo - i <= 256;) {
		const struct dw_scope *s = &f->scopes[i];
		if (pc < s->hi && (!best || s->depth > best->depth))
			best = s;
	}
	return best;
}

int diag_dwarf_inlined_foreach(struct diag_dwarf_file *f,
			       int (*cb)(void *arg, const struct diag_dwarf_inline *in), void *arg,
			       struct diag_error *err)
{
	if (f->remote)
		return dw_remote_inlined_foreach(f, cb, arg, err);
	int rc = dw_inline_build(f);
	if (rc)
		return diag_error_set(err, rc, "dwarf: cannot index inlined calls of %s: %s", f->name,
				      diag_strerror(rc));
	for (size_t i = 0; i < f->ninls; i++)
		if ((rc = cb(arg, &f->inls[i].pub)))
			return rc;
	return 0;
}

void dw_inline_free(struct diag_dwarf_file *f)
{
	free(f->inls);
	free(f->scopes);
	f->inls = NULL;
	f->scopes = NULL;
	f->ninls = f->capinls = f->nscopes = f->capscopes = 0;
	f->inls_built = f->scopes_built = false;
}
