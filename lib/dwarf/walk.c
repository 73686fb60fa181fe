/* dwarf/walk: the two iterators every DIE walk of lib/dwarf goes through: the compilation
 * units of a file (libdwarf's one shared CU cursor, always run to its end so the next walk
 * starts over) and the children of a DIE. Reads DWARF only; owns no state, never touches a
 * process. */
#include "dwarf/internal.h"

int dw_each_cu(struct diag_dwarf_file *f, int (*visit)(struct diag_dwarf_file *f, Dwarf_Die cu,
						       Dwarf_Half version, void *arg),
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
		rc = visit(f, cu, version, arg);
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
