/* dwarf/index: the cache of per-file DWARF indexes (keyed by build-id, else path) and the
 * index itself: function PC ranges, named types and globals, found by one walk over the
 * compilation units' top-level DIEs. Bodies and types are read lazily (scope.c, type_build.c).
 * Opens files read-only; never touches a process. */
#include "dwarf/internal.h"
#include "util/grow.h"
#include "util/search.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

struct diag_dwarf_cache {
	struct diag_dwarf_file *files;
	size_t nfiles;
	struct diag_indexer *ix; /* non-NULL: files are indexed by the worker */
};

struct dw_block {
	struct dw_block *next;
	size_t used, cap;
	max_align_t data[];
};

void *dw_alloc(struct diag_dwarf_file *f, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	struct dw_block *b = f->arena;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->next = f->arena;
		b->used = 0;
		b->cap = cap;
		f->arena = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

char *dw_strdup(struct diag_dwarf_file *f, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = dw_alloc(f, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

/* ---- attribute helpers ---- */

static int get_attr(Dwarf_Die die, Dwarf_Half at, Dwarf_Attribute *a)
{
	Dwarf_Error e = NULL;
	int rc = dwarf_attr(die, at, a, &e);
	if (rc == DW_DLV_ERROR)
		(void)e; /* libdwarf frees it with the Dwarf_Debug; freeing it here double-frees */
	return rc == DW_DLV_OK ? 0 : rc == DW_DLV_NO_ENTRY ? -ENOENT : -DIAG_E_INVALID;
}

int dw_attr_udata(Dwarf_Die die, Dwarf_Half at, uint64_t *out)
{
	Dwarf_Attribute a;
	int got = get_attr(die, at, &a);
	if (got)
		return got;
	Dwarf_Error e = NULL;
	Dwarf_Unsigned u;
	Dwarf_Signed s;
	int rc = dwarf_formudata(a, &u, &e);
	if (rc == DW_DLV_OK) {
		*out = u;
	} else {
		if (rc == DW_DLV_ERROR)
			(void)e; /* libdwarf frees it with the Dwarf_Debug; freeing it here double-frees */
		e = NULL;
		rc = dwarf_formsdata(a, &s, &e);
		if (rc == DW_DLV_OK)
			*out = (uint64_t)s;
		else if (rc == DW_DLV_ERROR)
			(void)e; /* libdwarf frees it with the Dwarf_Debug; freeing it here double-frees */
	}
	dwarf_dealloc_attribute(a);
	return rc == DW_DLV_OK ? 0 : -DIAG_E_INVALID;
}

int dw_attr_sdata(Dwarf_Die die, Dwarf_Half at, int64_t *out)
{
	Dwarf_Attribute a;
	int got = get_attr(die, at, &a);
	if (got)
		return got;
	Dwarf_Error e = NULL;
	Dwarf_Signed s;
	Dwarf_Unsigned u;
	Dwarf_Half form = 0;
	dwarf_whatform(a, &form, &e);
	int rc;
	/* data1..data8 carry no sign: take them as unsigned, like the producer wrote them */
	if (form == DW_FORM_sdata || form == DW_FORM_implicit_const) {
		rc = dwarf_formsdata(a, &s, &e);
		if (rc == DW_DLV_OK)
			*out = s;
	} else {
		rc = dwarf_formudata(a, &u, &e);
		if (rc == DW_DLV_OK)
			*out = (int64_t)u;
	}
	if (rc == DW_DLV_ERROR)
		(void)e; /* libdwarf frees it with the Dwarf_Debug; freeing it here double-frees */
	dwarf_dealloc_attribute(a);
	return rc == DW_DLV_OK ? 0 : -DIAG_E_INVALID;
}

int dw_attr_ref(Dwarf_Die die, Dwarf_Half at, Dwarf_Off *out)
{
	Dwarf_Attribute a;
	int got = get_attr(die, at, &a);
	if (got)
		return got;
	Dwarf_Error e = NULL;
	int rc = dwarf_global_formref(a, out, &e);
	if (rc == DW_DLV_ERROR)
		(void)e; /* libdwarf frees it with the Dwarf_Debug; freeing it here double-frees */
	dwarf_dealloc_attribute(a);
	return rc == DW_DLV_OK ? 0 : -DIAG_E_INVALID;
}

bool dw_attr_flag(Dwarf_Die die, Dwarf_Half at)
{
	Dwarf_Attribute a;
	if (get_attr(die, at, &a))
		return false;
	Dwarf_Error e = NULL;
	Dwarf_Bool b = 0;
	if (dwarf_formflag(a, &b, &e) == DW_DLV_ERROR)
		(void)e; /* libdwarf frees it with the Dwarf_Debug; freeing it here double-frees */
	dwarf_dealloc_attribute(a);
	return b != 0;
}

const char *dw_name(struct diag_dwarf_file *f, Dwarf_Die die)
{
	Dwarf_Error e = NULL;
	char *name = NULL;
	int rc = dwarf_diename(die, &name, &e);
	if (rc == DW_DLV_OK)
		return name;
	if (rc == DW_DLV_ERROR)
		dwarf_dealloc_error(f->dbg, e);
	Dwarf_Off off;
	for (int hop = 0; hop < 4; hop++) {
		if (dw_attr_ref(die, DW_AT_abstract_origin, &off) && dw_attr_ref(die, DW_AT_specification, &off))
			return NULL;
		Dwarf_Die other;
		e = NULL;
		if (dwarf_offdie_b(f->dbg, off, true, &other, &e) != DW_DLV_OK)
			return NULL;
		name = NULL;
		rc = dwarf_diename(other, &name, &e);
		if (rc == DW_DLV_OK) {
			dwarf_dealloc_die(other);
			return name;
		}
		if (hop)
			dwarf_dealloc_die(die);
		die = other;
	}
	dwarf_dealloc_die(die);
	return NULL;
}

/* ---- PC ranges ---- */

static int ranges_v5(Dwarf_Attribute a, Dwarf_Half form, void (*cb)(void *, uint64_t, uint64_t), void *arg)
{
	Dwarf_Error e = NULL;
	Dwarf_Unsigned val = 0, count = 0, goff = 0;
	if (form == DW_FORM_rnglistx) {
		if (dwarf_formudata(a, &val, &e) != DW_DLV_OK)
			return -DIAG_E_INVALID;
	} else {
		Dwarf_Off o;
		if (dwarf_global_formref(a, &o, &e) != DW_DLV_OK)
			return -DIAG_E_INVALID;
		val = o;
	}
	Dwarf_Rnglists_Head head = NULL;
	if (dwarf_rnglists_get_rle_head(a, form, val, &head, &count, &goff, &e) != DW_DLV_OK)
		return -DIAG_E_INVALID;
	for (Dwarf_Unsigned i = 0; i < count; i++) {
		unsigned len = 0, code = 0;
		Dwarf_Unsigned r1, r2, c1 = 0, c2 = 0;
		Dwarf_Bool unavail = 0;
		if (dwarf_get_rnglists_entry_fields_a(head, i, &len, &code, &r1, &r2, &unavail, &c1, &c2, &e) != DW_DLV_OK)
			break;
		if (!unavail && (code == DW_RLE_offset_pair || code == DW_RLE_startx_endx ||
				 code == DW_RLE_startx_length || code == DW_RLE_start_end ||
				 code == DW_RLE_start_length) && c2 > c1)
			cb(arg, c1, c2);
	}
	dwarf_dealloc_rnglists_head(head);
	return 0;
}

static uint64_t cu_base(struct diag_dwarf_file *f, Dwarf_Die die)
{
	Dwarf_Off cuoff = 0;
	Dwarf_Error e = NULL;
	Dwarf_Die cu;
	Dwarf_Addr lo = 0;
	if (dwarf_CU_dieoffset_given_die(die, &cuoff, &e) != DW_DLV_OK ||
	    dwarf_offdie_b(f->dbg, cuoff, true, &cu, &e) != DW_DLV_OK)
		return 0;
	if (dwarf_lowpc(cu, &lo, &e) != DW_DLV_OK)
		lo = 0;
	dwarf_dealloc_die(cu);
	return lo;
}

static int ranges_v4(struct diag_dwarf_file *f, Dwarf_Die die, Dwarf_Attribute a,
		     void (*cb)(void *, uint64_t, uint64_t), void *arg)
{
	Dwarf_Error e = NULL;
	Dwarf_Off off, real;
	Dwarf_Ranges *r = NULL;
	Dwarf_Signed n = 0;
	Dwarf_Unsigned bytes;
	if (dwarf_global_formref(a, &off, &e) != DW_DLV_OK)
		return -DIAG_E_INVALID;
	if (dwarf_get_ranges_b(f->dbg, off, die, &real, &r, &n, &bytes, &e) != DW_DLV_OK)
		return -DIAG_E_INVALID;
	uint64_t base = cu_base(f, die);
	for (Dwarf_Signed i = 0; i < n; i++) {
		if (r[i].dwr_type == DW_RANGES_ADDRESS_SELECTION)
			base = r[i].dwr_addr2;
		else if (r[i].dwr_type == DW_RANGES_ENTRY && r[i].dwr_addr2 > r[i].dwr_addr1)
			cb(arg, base + r[i].dwr_addr1, base + r[i].dwr_addr2);
	}
	dwarf_ranges_dealloc(f->dbg, r, n);
	return 0;
}

int dw_ranges(struct diag_dwarf_file *f, Dwarf_Die die, void (*cb)(void *arg, uint64_t lo, uint64_t hi),
	      void *arg)
{
	Dwarf_Error e = NULL;
	Dwarf_Addr lo, hi;
	Dwarf_Half form;
	enum Dwarf_Form_Class cls;
	if (dwarf_lowpc(die, &lo, &e) == DW_DLV_OK) {
		if (dwarf_highpc_b(die, &hi, &form, &cls, &e) != DW_DLV_OK)
			return -DIAG_E_INVALID;
		if (cls == DW_FORM_CLASS_CONSTANT)
			hi += lo;
		if (hi > lo)
			cb(arg, lo, hi);
		return 0;
	}
	Dwarf_Attribute a;
	int got = get_attr(die, DW_AT_ranges, &a);
	if (got)
		return got;
	Dwarf_Half version = 0, offsize = 0;
	dwarf_whatform(a, &form, &e);
	dwarf_get_version_of_die(die, &version, &offsize);
	int rc = (form == DW_FORM_rnglistx || version >= 5) ? ranges_v5(a, form, cb, arg)
		: ranges_v4(f, die, a, cb, arg);
	dwarf_dealloc_attribute(a);
	return rc;
}

struct cover {
	uint64_t pc;
	bool yes;
};

static void cover_cb(void *arg, uint64_t lo, uint64_t hi)
{
	struct cover *c = arg;
	c->yes |= c->pc >= lo && c->pc < hi;
}

bool dw_die_covers(struct diag_dwarf_file *f, Dwarf_Die die, uint64_t pc)
{
	struct cover c = { .pc = pc };
	dw_ranges(f, die, cover_cb, &c);
	return c.yes;
}

/* ---- the index walk ---- */

struct func_add {
	struct diag_dwarf_file *f;
	Dwarf_Off die;
	int rc;
};

static void func_add_cb(void *arg, uint64_t lo, uint64_t hi)
{
	struct func_add *fa = arg;
	struct diag_dwarf_file *f = fa->f;
	if (DIAG_GROW(&f->funcs, &f->capfuncs, f->nfuncs + 1)) {
		fa->rc = -ENOMEM;
		return;
	}
	f->funcs[f->nfuncs++] = (struct dw_func){ lo, hi, fa->die };
}

static int name_add(struct diag_dwarf_file *f, const char *name, int cls, bool decl, Dwarf_Off die)
{
	if (DIAG_GROW(&f->names, &f->capnames, f->nnames + 1))
		return -ENOMEM;
	f->names[f->nnames++] = (struct dw_name){ name, cls, decl, die };
	return 0;
}

static int index_die(struct diag_dwarf_file *f, Dwarf_Die die, int depth);

/* Enumerator names point at their enumeration type's DIE (arg). */
static int index_enumerator(struct diag_dwarf_file *f, Dwarf_Die c, void *arg)
{
	Dwarf_Error e = NULL;
	char *name = NULL;
	if (dwarf_diename(c, &name, &e) != DW_DLV_OK)
		return 0;
	return name_add(f, name, DW_NAME_ENUMERATOR, false, *(Dwarf_Off *)arg);
}

static int index_enumerators(struct diag_dwarf_file *f, Dwarf_Die en, Dwarf_Off type_off)
{
	return dw_each_child(f, en, index_enumerator, &type_off);
}

static int index_child(struct diag_dwarf_file *f, Dwarf_Die c, void *arg)
{
	return index_die(f, c, *(int *)arg);
}

static int index_children(struct diag_dwarf_file *f, Dwarf_Die parent, int depth)
{
	return dw_each_child(f, parent, index_child, &depth);
}

static int index_die(struct diag_dwarf_file *f, Dwarf_Die die, int depth)
{
	Dwarf_Error e = NULL;
	Dwarf_Half tag = 0;
	Dwarf_Off off = 0;
	if (dwarf_tag(die, &tag, &e) != DW_DLV_OK || dwarf_dieoffset(die, &off, &e) != DW_DLV_OK)
		return 0;
	char *name = NULL;
	switch (tag) {
	case DW_TAG_subprogram: {
		/* a declaration has no PC range: dw_ranges finds none (no test of the flag first,
		 * which is one more pass over the attributes of every function) */
		struct func_add fa = { .f = f, .die = off };
		dw_ranges(f, die, func_add_cb, &fa);
		return fa.rc;
	}
	case DW_TAG_variable: {
		Dwarf_Bool has = 0;
		if (dwarf_hasattr(die, DW_AT_location, &has, &e) != DW_DLV_OK || !has)
			return 0;
		const char *n = dw_name(f, die);
		return n ? name_add(f, n, DW_NAME_GLOBAL, false, off) : 0;
	}
	case DW_TAG_enumeration_type: {
		int rc = index_enumerators(f, die, off);
		if (rc)
			return rc;
	}
	/* fall through */
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
	case DW_TAG_typedef:
	case DW_TAG_base_type:
		if (dwarf_diename(die, &name, &e) != DW_DLV_OK)
			return 0;
		return name_add(f, name, tag == DW_TAG_structure_type ? DW_NAME_STRUCT
				: tag == DW_TAG_union_type ? DW_NAME_UNION
				: tag == DW_TAG_enumeration_type ? DW_NAME_ENUM : DW_NAME_ORD,
				dw_attr_flag(die, DW_AT_declaration), off);
	case DW_TAG_namespace:
		return depth < 8 ? index_children(f, die, depth + 1) : 0;
	default:
		return 0;
	}
}

static int cmp_func(const void *a, const void *b)
{
	const struct dw_func *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : (x->hi > y->hi) - (x->hi < y->hi);
}

static int cmp_name(const void *a, const void *b)
{
	const struct dw_name *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	if (x->cls != y->cls)
		return x->cls - y->cls;
	return (int)x->decl - (int)y->decl; /* definitions first */
}

static int index_cu(struct diag_dwarf_file *f, Dwarf_Die cu, const struct dw_cu_hdr *hdr,
		    void *arg)
{
	(void)hdr;
	(void)arg;
	return index_children(f, cu, 0);
}

static int index_file(struct diag_dwarf_file *f)
{
	int rc = dw_each_cu(f, index_cu, NULL);
	if (rc)
		return rc;
	diag_sort(f->funcs, f->nfuncs, sizeof(*f->funcs), cmp_func);
	diag_sort(f->names, f->nnames, sizeof(*f->names), cmp_name);
	return 0;
}

/* ---- opening, with separate debug files ---- */

/* Whether the unit headers of a DWARF 5 .debug_rnglists / .debug_loclists section are sound:
 * libdwarf 20210528 (Debian 12) frees a context twice when one is not (a wrong version, address
 * size, segment selector size or offset count: dwarf_load_rnglists' error path), so such a file
 * is refused before libdwarf sees it. */
static bool lists_sound(const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		if (n - off < 12)
			return false;
		uint32_t len32;
		memcpy(&len32, p + off, 4);
		if (len32 >= 0xfffffff0u) /* 64-bit DWARF is not produced for x86_64 user code */
			return false;
		uint16_t version;
		memcpy(&version, p + off + 4, 2);
		uint8_t asize = p[off + 6], ssize = p[off + 7];
		uint32_t count;
		memcpy(&count, p + off + 8, 4);
		if (len32 < 8 || len32 > n - off - 4 || version != 5 || (asize != 8 && asize != 4) ||
		    ssize != 0 || count > (len32 - 8) / 4)
			return false;
		off += 4 + (size_t)len32;
	}
	return true;
}

static bool uleb(const uint8_t *p, size_t n, size_t *o, uint64_t *v)
{
	*v = 0;
	for (unsigned sh = 0; *o < n && sh < 64; sh += 7) {
		uint8_t b = p[(*o)++];
		*v |= (uint64_t)(b & 0x7f) << sh;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

bool dw_loclist_sound(const struct diag_dwarf_file *f, uint64_t off)
{
	const uint8_t *p = f->loclists;
	size_t n = f->nloclists, o = (size_t)off;
	uint64_t v;
	if (off >= n)
		return false;
	for (unsigned entries = 0; o < n && entries < 65536; entries++) {
		uint8_t k = p[o++];
		bool ok = true, expr = true;
		switch (k) {
		case DW_LLE_end_of_list:
			return true;
		case DW_LLE_base_addressx:
			ok = uleb(p, n, &o, &v);
			expr = false;
			break;
		case DW_LLE_startx_endx:
		case DW_LLE_startx_length:
		case DW_LLE_offset_pair:
		case 0x09: /* DW_LLE_GNU_view_pair: two views, no expression */
			ok = uleb(p, n, &o, &v) && uleb(p, n, &o, &v);
			expr = k != 0x09;
			break;
		case DW_LLE_default_location:
			break;
		case DW_LLE_base_address:
			ok = n - o >= 8;
			o += ok ? 8 : 0;
			expr = false;
			break;
		case DW_LLE_start_end:
			ok = n - o >= 16;
			o += ok ? 16 : 0;
			break;
		case DW_LLE_start_length:
			ok = n - o >= 8 && (o += 8, uleb(p, n, &o, &v));
			break;
		default:
			return false;
		}
		if (ok && expr) {
			ok = uleb(p, n, &o, &v) && v <= n - o;
			o += ok ? (size_t)v : 0;
		}
		if (!ok)
			return false;
	}
	return false;
}

#define LISTS_INFLATED_MAX (256u << 20) /* a compressed list section inflates to at most this */

/* Whether the ELF at fd has a .debug_rnglists / .debug_loclists section with an unsound
 * header, or section names libelf cannot read (then libdwarf, which reads them its own way,
 * may still load a bad list): non-NULL for "refuse". A copy of .debug_loclists is kept in f (dw_loclist_sound). */
static const char *unsound_lists(struct diag_dwarf_file *f, int fd)
{
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	const char *bad = NULL;
	if (e && elf_getshdrstrndx(e, &shstrndx) == 0) {
		while (!bad && (scn = elf_nextscn(e, scn))) {
			GElf_Shdr sh;
			const char *name;
			Elf_Data *d;
			if (!gelf_getshdr(scn, &sh))
				continue;
			/* libdwarf finds sections by name with its own reader, whatever the string
			 * table's type: names libelf cannot read could hide a bad list from us. */
			if (!(name = elf_strptr(e, shstrndx, sh.sh_name))) {
				bad = "section name table";
				break;
			}
			if (sh.sh_type != SHT_PROGBITS && sh.sh_type != SHT_NOBITS &&
			    (strstr(name, "rnglists") || strstr(name, "loclists"))) {
				bad = name; /* a list section libelf would not give us the bytes of */
				break;
			}
			if (sh.sh_type != SHT_PROGBITS)
				continue;
			/* every name libdwarf takes for these (.dwo and .zdebug_ forms too) */
			bool rng = strstr(name, "debug_rnglists") != NULL,
			     loc = strstr(name, "debug_loclists") != NULL;
			if (!rng && !loc)
				continue;
			/* Debian's debug files compress their sections (SHF_COMPRESSED, zlib):
			 * libelf inflates them in memory (to a size the header claims: bounded),
			 * so the check sees what libdwarf reads */
			GElf_Chdr ch;
			if ((sh.sh_flags & SHF_COMPRESSED) &&
			    (!gelf_getchdr(scn, &ch) || ch.ch_size > LISTS_INFLATED_MAX ||
			     elf_compress(scn, 0, 0) < 0))
				bad = rng ? ".debug_rnglists" : ".debug_loclists";
			else if (!(d = elf_getdata(scn, NULL)) ||
			    (d->d_size && !d->d_buf) || !lists_sound(d->d_buf, d->d_size))
				bad = rng ? ".debug_rnglists" : ".debug_loclists";
			else if (loc && !f->loclists && d->d_size && (f->loclists = malloc(d->d_size))) {
				memcpy(f->loclists, d->d_buf, d->d_size);
				f->nloclists = d->d_size;
			}
		}
	}
	if (e)
		elf_end(e);
	return bad;
}

/* libdwarf over an open file (the file keeps fd; on failure fd is closed). */
static int init_dwarf(struct diag_dwarf_file *f, int fd)
{
	free(f->loclists);
	f->loclists = NULL;
	f->nloclists = 0;
	if (unsound_lists(f, fd)) {
		close(fd);
		return -DIAG_E_INVALID;
	}
	Dwarf_Error e = NULL;
	int rc = dwarf_init_b(fd, DW_DLC_READ, DW_GROUPNUMBER_ANY, NULL, NULL, &f->dbg, &e);
	if (rc == DW_DLV_OK) {
		f->fd = fd;
		return 0;
	}
	if (rc == DW_DLV_ERROR)
		dwarf_dealloc_error(NULL, e);
	f->dbg = NULL;
	close(fd);
	return -DIAG_E_NODEBUG;
}

void diag_dwarf_debug_refs(int fd, char *build_id, size_t bcap, char *link, size_t lcap)
{
	build_id[0] = link[0] = '\0';
	elf_version(EV_CURRENT);
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	size_t shstrndx;
	Elf_Scn *scn = NULL;
	if (e && elf_getshdrstrndx(e, &shstrndx) == 0) {
		while ((scn = elf_nextscn(e, scn))) {
			GElf_Shdr sh;
			Elf_Data *d;
			if (!gelf_getshdr(scn, &sh) || !(d = elf_getdata(scn, NULL)) || !d->d_buf)
				continue;
			const char *name = elf_strptr(e, shstrndx, sh.sh_name);
			if (name && !strcmp(name, ".gnu_debuglink")) {
				snprintf(link, lcap, "%.*s", (int)strnlen(d->d_buf, d->d_size), (const char *)d->d_buf);
			} else if (sh.sh_type == SHT_NOTE) {
				GElf_Nhdr nh;
				size_t off = 0, noff, doff;
				while ((off = gelf_getnote(d, off, &nh, &noff, &doff)) > 0) {
					if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
					    memcmp((char *)d->d_buf + noff, "GNU", 4))
						continue;
					const uint8_t *id = (const uint8_t *)d->d_buf + doff;
					for (size_t i = 0; i < nh.n_descsz && 2 * i + 2 < bcap; i++)
						snprintf(build_id + 2 * i, 3, "%02x", id[i]);
				}
			}
		}
	}
	if (e)
		elf_end(e);
}

static bool hex_id(const char *s)
{
	size_t n = strlen(s);
	if (n < 4 || n > 80)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* A .gnu_debuglink name is one path component of printable bytes. */
static bool plain_name(const char *s)
{
	if (!*s || !strcmp(s, ".") || !strcmp(s, "..") || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

size_t diag_dwarf_debug_paths(const char *path, const char *build_id, const char *link,
			      char out[][DIAG_DWARF_PATH_MAX], size_t cap)
{
	size_t n = 0;
	if (build_id && hex_id(build_id) && n < cap)
		snprintf(out[n++], DIAG_DWARF_PATH_MAX, "/usr/lib/debug/.build-id/%.2s/%s.debug",
			 build_id, build_id + 2);
	if (!link || !plain_name(link))
		return n;
	char dir[DIAG_DWARF_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	const char *const fmts[] = { "%s/%s", "%s/.debug/%s", "/usr/lib/debug%s/%s" };
	for (size_t i = 0; i < 3 && n < cap; i++) {
		int w = snprintf(out[n], DIAG_DWARF_PATH_MAX, fmts[i], dir, link);
		if (w > 0 && w < DIAG_DWARF_PATH_MAX && strcmp(out[n], path) && !strstr(out[n], "/../"))
			n++;
	}
	return n;
}

static void file_reset(struct diag_dwarf_file *f)
{
	if (f->dbg) {
		Dwarf_Error e = NULL;
		dwarf_finish(f->dbg, &e);
		f->dbg = NULL;
	}
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->nfuncs = f->nnames = 0;
}

static void file_free(struct diag_dwarf_file *f)
{
	if (!f)
		return;
	if (f->remote)
		dw_remote_free(f);
	if (f->fdes || f->cies)
		dwarf_fde_cie_list_dealloc(f->dbg, f->cies, f->ncies, f->fdes, f->nfdes);
	if (f->dbg) {
		Dwarf_Error e = NULL;
		dwarf_finish(f->dbg, &e);
	}
	if (f->fd >= 0)
		close(f->fd);
	dw_tmap_free(&f->types);
	dw_inline_free(f);
	while (f->arena) {
		struct dw_block *b = f->arena;
		f->arena = b->next;
		free(b);
	}
	free(f->funcs);
	free(f->names);
	free(f->loclists);
	free(f->key);
	free(f->path);
	free(f->name);
	free(f);
}

struct diag_dwarf_file *dw_file_new(const char *key, const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	struct diag_dwarf_file *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->fd = -1;
	f->name = strdup(base);
	f->key = strdup(key);
	f->path = strdup(path);
	if (!f->name || !f->key || !f->path) {
		file_free(f);
		return NULL;
	}
	return f;
}

/* Indexes the DWARF of the file open at fd (taken). -DIAG_E_NODEBUG: none there. */
static int index_fd(struct diag_dwarf_file *f, int fd)
{
	int rc = init_dwarf(f, fd);
	if (rc == 0)
		rc = index_file(f);
	if (rc == 0 && !f->nfuncs && !f->nnames)
		rc = -DIAG_E_NODEBUG; /* a stripped file still opens (it has .eh_frame) */
	if (rc)
		file_reset(f);
	return rc;
}

int dw_file_index_fds(struct diag_dwarf_file *f, int fd, const int *dbg, size_t ndbg, int *used)
{
	int rc = index_fd(f, fd);
	*used = -1;
	for (size_t i = 0; i < ndbg; i++) {
		if (rc == -DIAG_E_NODEBUG && (rc = index_fd(f, dbg[i])) == 0)
			*used = (int)i;
		else
			close(dbg[i]);
	}
	return rc;
}

int dw_file_error(const struct diag_dwarf_file *f, int rc, struct diag_error *err)
{
	if (rc == -DIAG_E_INVALID)
		return diag_error_set(err, rc, "dwarf: %s has a malformed .debug_rnglists or "
				      ".debug_loclists header, or section names libelf cannot read "
				      "(refused: libdwarf mishandles them)", f->path);
	if (rc == -DIAG_E_NODEBUG)
		return diag_error_set(err, rc, "no DWARF for %s", f->name);
	return diag_error_set(err, rc, "dwarf: cannot read %s: %s", f->path, diag_strerror(rc));
}

/* In process: the file, else its separate debug file (/usr/lib/debug/.build-id/ab/cdef.debug,
 * then the .gnu_debuglink name beside the file, in its .debug/ folder and under
 * /usr/lib/debug/<dir>/: gdb's order). */
static int file_open(const char *path, const char *build_id, struct diag_dwarf_file **out,
		     struct diag_error *err)
{
	struct diag_dwarf_file *f = dw_file_new(build_id && *build_id ? build_id : path, path);
	if (!f)
		return diag_error_set(err, -ENOMEM, "dwarf: out of memory");
	int fd = open(path, O_RDONLY | O_CLOEXEC), used, fd2 = fd < 0 ? -1 : dup(fd);
	int rc = fd2 < 0 ? -errno : dw_file_index_fds(f, fd2, NULL, 0, &used);
	if (rc == -DIAG_E_NODEBUG) {
		char id[128], link[256], cand[4][DIAG_DWARF_PATH_MAX];
		diag_dwarf_debug_refs(fd, id, sizeof(id), link, sizeof(link));
		size_t n = diag_dwarf_debug_paths(path, build_id && *build_id ? build_id : id, link,
						  cand, 4);
		for (size_t i = 0; i < n && rc == -DIAG_E_NODEBUG; i++) {
			int dfd = open(cand[i], O_RDONLY | O_CLOEXEC);
			if (dfd >= 0)
				rc = dw_file_index_fds(f, dfd, NULL, 0, &used);
			if (rc == 0) {
				free(f->path);
				rc = (f->path = strdup(cand[i])) ? 0 : -ENOMEM;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	if (rc) {
		rc = dw_file_error(f, rc, err);
		file_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

int diag_dwarf_cache_new(struct diag_dwarf_cache **out)
{
	struct diag_dwarf_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*out = c;
	return 0;
}

int diag_dwarf_cache_new_remote(struct diag_indexer *ix, struct diag_dwarf_cache **out)
{
	int rc = diag_dwarf_cache_new(out);
	if (rc == 0)
		(*out)->ix = ix;
	return rc;
}

int diag_dwarf_open_fds(const char *name, int fd, const int *dbg, size_t ndbg, int *used,
			struct diag_dwarf_file **out, struct diag_error *err)
{
	struct diag_dwarf_file *f = dw_file_new(name, name);
	if (!f) {
		close(fd);
		for (size_t i = 0; i < ndbg; i++)
			close(dbg[i]);
		return diag_error_set(err, -ENOMEM, "dwarf: out of memory");
	}
	int rc = dw_file_index_fds(f, fd, dbg, ndbg, used);
	if (rc) {
		rc = dw_file_error(f, rc, err);
		file_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void diag_dwarf_file_free(struct diag_dwarf_file *f)
{
	file_free(f);
}

void diag_dwarf_cache_free(struct diag_dwarf_cache *c)
{
	if (!c)
		return;
	while (c->files) {
		struct diag_dwarf_file *f = c->files;
		c->files = f->next;
		file_free(f);
	}
	free(c);
}

int diag_dwarf_cache_get(struct diag_dwarf_cache *c, const char *path, const char *build_id,
			 struct diag_dwarf_file **out, struct diag_error *err)
{
	const char *key = build_id && *build_id ? build_id : path;
	for (struct diag_dwarf_file *f = c->files; f; f = f->next)
		if (!strcmp(f->key, key)) {
			*out = f;
			return 0;
		}
	if (c->nfiles >= DIAG_DWARF_MAX_FILES)
		return diag_error_set(err, -DIAG_E_LIMIT, "dwarf: more than %d indexed files", DIAG_DWARF_MAX_FILES);
	struct diag_dwarf_file *f = NULL;
	int rc = c->ix ? dw_remote_open(c->ix, path, build_id, &f, err)
		       : file_open(path, build_id, &f, err);
	if (rc)
		return rc;
	f->next = c->files;
	c->files = f;
	c->nfiles++;
	*out = f;
	return 0;
}

const char *diag_dwarf_file_name(const struct diag_dwarf_file *f)
{
	return f ? f->name : "";
}

static const struct dw_name *find_name(const struct diag_dwarf_file *f, const char *name, int cls)
{
	size_t lo = 0, hi = f->nnames;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(f->names[mid].name, name);
		if (!c)
			c = f->names[mid].cls - cls;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < f->nnames && !strcmp(f->names[lo].name, name) && f->names[lo].cls == cls)
		return &f->names[lo];
	return NULL;
}

const struct diag_type *diag_dwarf_find_type(struct diag_dwarf_file *f, const char *spelling)
{
	static const struct {
		const char *prefix;
		int cls;
	} tags[] = { { "struct ", DW_NAME_STRUCT }, { "union ", DW_NAME_UNION }, { "enum ", DW_NAME_ENUM } };
	if (f->remote)
		return dw_remote_find_type(f, spelling);
	int cls = DW_NAME_ORD;
	for (size_t i = 0; i < 3; i++)
		if (!strncmp(spelling, tags[i].prefix, strlen(tags[i].prefix))) {
			cls = tags[i].cls;
			spelling += strlen(tags[i].prefix);
		}
	const struct dw_name *n = find_name(f, spelling, cls);
	return n ? dw_type_at(f, n->die) : NULL;
}

int diag_dwarf_enumerator(struct diag_dwarf_file *f, const char *name, const struct diag_type **type,
			  int64_t *value)
{
	if (f->remote)
		return dw_remote_enumerator(f, name, type, value);
	const struct dw_name *n = find_name(f, name, DW_NAME_ENUMERATOR);
	const struct diag_type *t = n ? dw_type_at(f, n->die) : NULL;
	for (size_t i = 0; t && i < t->nenums; i++)
		if (!strcmp(t->enums[i].name, name)) {
			*type = t;
			*value = t->enums[i].value;
			return 0;
		}
	return -DIAG_E_NOSYM;
}

/* Exposed to scope.c through dwarf.h's diag_dwarf_global. */
const struct dw_name *dw_find_global(const struct diag_dwarf_file *f, const char *name)
{
	return find_name(f, name, DW_NAME_GLOBAL);
}

/* The innermost function range holding pc, or NULL. */
const struct dw_func *dw_find_func(const struct diag_dwarf_file *f, uint64_t pc)
{
	const struct dw_func *best = NULL;
	size_t lo = 0, hi = f->nfuncs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (f->funcs[mid].lo <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* ranges may nest or overlap a little: look back a few entries for the tightest */
	for (size_t i = lo; i-- > 0 && lo - i <= 16;) {
		const struct dw_func *fn = &f->funcs[i];
		if (pc >= fn->lo && pc < fn->hi && (!best || fn->hi - fn->lo < best->hi - best->lo))
			best = fn;
	}
	return best;
}
