/* dwarf/walk: the two iterators every DIE walk of lib/dwarf goes through: the compilation
 * units of a file (libdwarf's one shared CU cursor, always run to its end so the next walk
 * starts over) and the children of a DIE. Reads DWARF only; owns no state, never touches a
 * process. */
#include "dwarf/internal.h"

int dw_each_cu(struct diag_dwarf_file *f, int (*visit)(struct diag_dwarf_file *f, Dwarf_Die cu,
						       const struct dw_cu_hdr *hdr, void *arg),
	       void *arg)
{
	Dwarf_Error e = NULL;
	int rc = 0;
	for (;;) {
		Dwarf_Unsigned hlen, typeoff, next;
		Dwarf_Half version, addrsize, lensize, extsize, cutype;
		Dwarf_Off abbrev;
		Dwarf_Sig8 sig;
		int r = dwarf_next_cu_header_d(f->dbg, true, &hlen, &version, &abbrev, &addrsize, &lensize,
					       &extsize, &sig, &typeoff, &next, &cutype, &e);
		if (r == DW_DLV_NO_ENTRY)
			return rc;
		if (r != DW_DLV_OK)
			return rc ? rc : -DIAG_E_NODEBUG;
		Dwarf_Die cu;
		if (rc || dwarf_siblingof_b(f->dbg, NULL, true, &cu, &e) != DW_DLV_OK)
			continue;
		struct dw_cu_hdr hdr = { .version = version, .abbrev_off = abbrev };
		rc = visit(f, cu, &hdr, arg);
		dwarf_dealloc_die(cu);
	}
}

int dw_each_child(struct diag_dwarf_file *f, Dwarf_Die parent,
		  int (*visit)(struct diag_dwarf_file *f, Dwarf_Die c, void *arg), void *arg)
{
	Dwarf_Error e = NULL;
	Dwarf_Die c, next;
	int rc = 0;
	if (dwarf_child(parent, &c, &e) != DW_DLV_OK)
		return 0;
	for (;;) {
		if ((rc = visit(f, c, arg)))
			break;
		int r = dwarf_siblingof_b(f->dbg, c, true, &next, &e);
		dwarf_dealloc_die(c);
		if (r != DW_DLV_OK)
			return 0;
		c = next;
	}
	dwarf_dealloc_die(c);
	return rc;
}

/* Bounded: a table is read entry by entry to its null entry, at most this many. */
#define ABBREVS_MAX 100000

bool dw_cu_has_tag(struct diag_dwarf_file *f, const struct dw_cu_hdr *hdr, Dwarf_Half tag)
{
	Dwarf_Unsigned off = hdr->abbrev_off;
	for (int i = 0; i < ABBREVS_MAX; i++) {
		Dwarf_Error e = NULL;
		Dwarf_Abbrev ab;
		Dwarf_Unsigned len = 0, nattr = 0, code = 0;
		Dwarf_Half t = 0;
		if (dwarf_get_abbrev(f->dbg, off, &ab, &len, &nattr, &e) != DW_DLV_OK)
			return true;
		bool ok = dwarf_get_abbrev_code(ab, &code, &e) == DW_DLV_OK &&
			  (code == 0 || dwarf_get_abbrev_tag(ab, &t, &e) == DW_DLV_OK);
		dwarf_dealloc(f->dbg, ab, DW_DLA_ABBREV);
		if (!ok || (code != 0 && t == tag) || len == 0)
			return true;
		if (code == 0)
			return false; /* the table's end */
		off += len;
	}
	return true;
}
