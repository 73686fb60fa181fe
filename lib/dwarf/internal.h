/* dwarf/internal: what the files of lib/dwarf share (the per-file index). Not for other
 * modules: they use dwarf.h. The files: index.c (cache, opening, the index walk, attribute
 * and range helpers), walk.c (the CU and child iterators), scope.c (variables at a PC),
 * type_build.c (types from DIEs), type_spell.c (C spelling), loc.c (the location machine),
 * inline.c (inlined instances and scope ranges), lines.c (FILE:LINE), remote.c (files indexed
 * by the worker). Internal cross-file functions carry the dw_ prefix. */
#ifndef DIAG_DWARF_INTERNAL_H
#define DIAG_DWARF_INTERNAL_H

#include <dwarf.h>
#include <libdwarf.h>

#include "dwarf/dwarf.h"

struct dw_func {
	uint64_t lo, hi;   /* file addresses [lo, hi) */
	Dwarf_Off die;
};

enum { DW_NAME_ORD = 0, DW_NAME_STRUCT, DW_NAME_UNION, DW_NAME_ENUM, DW_NAME_GLOBAL, DW_NAME_ENUMERATOR };

struct dw_name {
	const char *name;  /* owned by libdwarf (valid while dbg is open) */
	int cls;
	bool decl;
	Dwarf_Off die;
};

#define DW_TYPE_MAX_DEPTH 256 /* nesting by value (members, typedefs, qualifiers, elements) */

struct dw_tpend {          /* a pointer type whose target is still to be built */
	struct diag_type *ptr;
	Dwarf_Off target;
};

struct dw_tmap {           /* DIE offset -> type, open addressing; and the build in progress */
	Dwarf_Off *keys;
	struct diag_type **vals;
	size_t cap, n;
	const struct diag_type *building[DW_TYPE_MAX_DEPTH]; /* the DIEs being filled, outermost first */
	size_t depth;
	struct dw_tpend *pend;
	size_t npend, cappend;
};

struct dw_block;           /* arena block */
struct dw_inl;             /* an inlined instance (inline.c) */

struct dw_scope {          /* a PC range of a function, inlined call or lexical block with locals */
	uint64_t lo, hi;
	Dwarf_Off die;         /* the scope (several ranges may share it) */
	int depth;             /* nesting depth: the deepest range holding a PC is its scope */
};

struct diag_dwarf_file {
	char *key;             /* build-id or path */
	char *path;            /* the file whose DWARF is read (may be a separate debug file) */
	char *name;            /* basename of the module, for messages */
	int fd;
	Dwarf_Debug dbg;
	struct dw_func *funcs;
	size_t nfuncs, capfuncs;
	struct dw_name *names;
	size_t nnames, capnames;
	struct dw_tmap types;
	struct dw_block *arena;
	bool fde_tried;
	Dwarf_Cie *cies;
	Dwarf_Fde *fdes;
	Dwarf_Signed ncies, nfdes;
	struct dw_inl *inls;    /* inlined instances and scopes (inline.c), built on first use */
	size_t ninls, capinls;
	struct dw_scope *scopes;
	size_t nscopes, capscopes;
	bool inls_built, scopes_built;
	struct dw_remote *remote; /* non-NULL: answered by the indexer worker (remote.c) */
	uint8_t *loclists;     /* a copy of .debug_loclists, to check a list before libdwarf reads it */
	size_t nloclists;
	struct diag_dwarf_file *next;
};

struct dw_remote;
struct diag_indexer;

/* A file record (key, path, basename) with nothing indexed; NULL when out of memory. */
struct diag_dwarf_file *dw_file_new(const char *key, const char *path);
/* Indexes the DWARF of the ELF open at fd, else of the first of dbg[0..ndbg) that has some
 * (*used: its index, -1 for fd itself). Takes every fd. 0, -DIAG_E_NODEBUG, -ENOMEM... */
int dw_file_index_fds(struct diag_dwarf_file *f, int fd, const int *dbg, size_t ndbg, int *used);
/* The message of a failed open of f ("no DWARF for NAME", ...); returns rc. */
int dw_file_error(const struct diag_dwarf_file *f, int rc, struct diag_error *err);

/* remote.c: a file indexed by the worker, and the queries on it. */
int dw_remote_open(struct diag_indexer *ix, const char *path, const char *build_id,
		   struct diag_dwarf_file **out, struct diag_error *err);
void dw_remote_free(struct diag_dwarf_file *f);
int dw_remote_scope_at(struct diag_dwarf_file *f, uint64_t vaddr, struct diag_dwarf_scope **out,
		       struct diag_error *err);
int dw_remote_global(struct diag_dwarf_file *f, const char *name, struct diag_dwarf_var *out);
int dw_remote_enumerator(struct diag_dwarf_file *f, const char *name, const struct diag_type **type,
			 int64_t *value);
const struct diag_type *dw_remote_find_type(struct diag_dwarf_file *f, const char *spelling);
int dw_remote_inlined_foreach(struct diag_dwarf_file *f,
			      int (*cb)(void *arg, const struct diag_dwarf_inline *in), void *arg,
			      struct diag_error *err);
int dw_remote_line_addrs(struct diag_dwarf_file *f, const char *file, unsigned line,
			 uint64_t **out, struct diag_error *err);

void *dw_alloc(struct diag_dwarf_file *f, size_t n);       /* zeroed, freed with the file */
char *dw_strdup(struct diag_dwarf_file *f, const char *s);

/* The type of the DIE at offset (built once; NULL: void or unreadable). Hostile DWARF is cut
 * to a finite, acyclic-by-value graph: a reference that would close a cycle without passing a
 * pointer, or nest deeper than DW_TYPE_MAX_DEPTH, reads as void there. */
const struct diag_type *dw_type_at(struct diag_dwarf_file *f, Dwarf_Off off);
/* The type named by DW_AT_type of die (NULL: void). */
const struct diag_type *dw_type_of(struct diag_dwarf_file *f, Dwarf_Die die);
void dw_tmap_free(struct dw_tmap *m);

/* Attribute helpers: 0 with *out set, -ENOENT (no such attribute) or -DIAG_E_INVALID (a form
 * that cannot be read as asked); *out is written only on success. */
int dw_attr_udata(Dwarf_Die die, Dwarf_Half at, uint64_t *out);
int dw_attr_sdata(Dwarf_Die die, Dwarf_Half at, int64_t *out);
int dw_attr_ref(Dwarf_Die die, Dwarf_Half at, Dwarf_Off *out);
bool dw_attr_flag(Dwarf_Die die, Dwarf_Half at);
/* The DIE's name, following DW_AT_abstract_origin / DW_AT_specification; NULL if none. */
const char *dw_name(struct diag_dwarf_file *f, Dwarf_Die die);

/* Bounds of DIE's PC ranges (low_pc/high_pc or DW_AT_ranges): calls cb for each [lo, hi).
 * 0, -ENOENT (no ranges), -DIAG_E_INVALID (unreadable ranges). */
int dw_ranges(struct diag_dwarf_file *f, Dwarf_Die die, void (*cb)(void *arg, uint64_t lo, uint64_t hi),
	      void *arg);
bool dw_die_covers(struct diag_dwarf_file *f, Dwarf_Die die, uint64_t pc);

/* Whether the DWARF 5 location list at offset off of .debug_loclists is well formed (every
 * entry and expression inside the section, ending with DW_LLE_end_of_list). libdwarf 20210528
 * reads an expression length past the section's end without checking. */
bool dw_loclist_sound(const struct diag_dwarf_file *f, uint64_t off);

/* The function whose range holds file address pc, or NULL (index.c). */
const struct dw_func *dw_find_func(const struct diag_dwarf_file *f, uint64_t pc);
/* The global variable named name (a DW_NAME_GLOBAL entry), or NULL (index.c). */
const struct dw_name *dw_find_global(const struct diag_dwarf_file *f, const char *name);

/* inline.c: builds the inlined instances, or the scope ranges (dw_scope_at needs them), once
 * per file (0, -ENOMEM); the innermost scope holding pc (the deepest range), or NULL. */
int dw_inline_build(struct diag_dwarf_file *f);
int dw_scopes_build(struct diag_dwarf_file *f);
const struct dw_scope *dw_scope_at(const struct diag_dwarf_file *f, uint64_t pc);
/* Frees what inline.c built (called by the file's destructor). */
void dw_inline_free(struct diag_dwarf_file *f);

/* A compilation unit's header, as dw_each_cu read it. */
struct dw_cu_hdr {
	Dwarf_Half version;
	Dwarf_Off abbrev_off; /* its abbreviation table in .debug_abbrev */
};

/* walk.c: visit(f, cu, hdr, arg) for each compilation unit's DIE, in order; after the
 * first non-zero return the remaining units are passed over (the shared libdwarf cursor is
 * always run to its end, so the next walk starts at the first unit). Returns that value, 0
 * when the units end, -DIAG_E_NODEBUG when a unit header cannot be read (the units before
 * it were visited). */
int dw_each_cu(struct diag_dwarf_file *f, int (*visit)(struct diag_dwarf_file *f, Dwarf_Die cu,
						       const struct dw_cu_hdr *hdr, void *arg),
	       void *arg);
/* Whether the unit's abbreviation table has an entry with tag: every DIE of the unit takes its
 * tag from that table, so false proves the unit has no such DIE. true when the table cannot be
 * read to its end (a walk then looks, as without this test). */
bool dw_cu_has_tag(struct diag_dwarf_file *f, const struct dw_cu_hdr *hdr, Dwarf_Half tag);
/* visit(f, child, arg) for each child of parent, in order, until one returns non-zero: that
 * value; 0 when the children end (or cannot be read: a walk without them, not an error). */
int dw_each_child(struct diag_dwarf_file *f, Dwarf_Die parent,
		  int (*visit)(struct diag_dwarf_file *f, Dwarf_Die c, void *arg), void *arg);

#endif
