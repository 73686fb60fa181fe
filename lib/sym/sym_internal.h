/* sym_internal: what the files of lib/sym share and nobody else sees. The map of the module:
 *   symcache.c      the ELF function index of a file (.symtab + .dynsym, by address and by
 *                   name), its wire form for the indexer worker, the cache of indexes shared by
 *                   every process, each file's DWARF link; address symbolization, enumeration
 *   resolve.c       diag_sym_resolve: the target parsed (spec/target.h), each form to its
 *                   resolver; 0xADDR and MODULE picking
 *   resolve_name.c  names: functions, clones, inlined copies, C++ names and overloads, globs
 *   resolve_line.c  FILE:LINE from the DWARF line table
 *   result.c        the result set every resolver fills
 *   suggest.c       "did you mean" for a name that is not there
 *   cxx.c, ifunc.c, modmap.c  C++/clone names, IFUNC choice, /proc/PID/maps (own headers)
 * Calls between these files run one way, never back: resolve -> resolve_name, resolve_line;
 * those -> suggest, result, symcache; suggest -> symcache; result and symcache call no other.
 * The target grammar is not here: spec/target.{h,c} parses, this module resolves.
 * Never include this header outside lib/sym. */
#ifndef DIAG_SYM_INTERNAL_H
#define DIAG_SYM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec/target.h"
#include "sym/symtab.h"

#define SYM_KEY_MAX 128
#define SYM_MAX_AMBIGUOUS 8 /* candidates listed in an ambiguity message */

struct sym {
	uint64_t addr; /* ELF vaddr */
	uint64_t size;
	const char *name; /* points into one of the file's string blobs */
	unsigned char bind;
	bool hidden_ver; /* a non-default version: foo@VER, while foo@@VER is the one to use */
	bool ifunc;      /* STT_GNU_IFUNC: addr is the resolver, not the code that runs */
};

struct symfile {
	char key[SYM_KEY_MAX];
	struct sym *syms;  /* by address; at one address the preferred alias first */
	size_t n;
	uint32_t *by_name; /* indices into syms, by name then address */
	char *blobs[2];    /* copies of the string tables the names point into */
	size_t nblobs;
	char **demangled;  /* per sym: C++ demangled name or NULL; built on the first C++ query */
	int dwarf_state;   /* 0 not tried, 1 dwarf set, -1 no DWARF */
	struct diag_dwarf_file *dwarf;
};

struct diag_symcache {
	struct symfile **files;
	size_t n, cap;
	struct diag_dwarf_cache *dwarf;
	bool own_dwarf;
	struct diag_indexer *ix; /* non-NULL: files are read by the worker */
};

/* ---- symcache.c ---- */

/* The index of mod's file: from the cache, or read once and added to it. err may be NULL. */
int sym_file_get(struct diag_symcache *c, const struct diag_module *mod,
		 const struct symfile **out, struct diag_error *err);
/* First index in by_name whose name is >= name. */
size_t sym_name_lower_bound(const struct symfile *sf, const char *name);
/* The function containing ELF address a (innermost start, preferred alias), or NULL. */
const struct sym *sym_containing(const struct symfile *sf, uint64_t a);
/* The DWARF of mod's file, opened once per file (NULL when it has none; why in err if given). */
struct diag_dwarf_file *sym_module_dwarf(struct diag_symcache *c, const struct diag_module *mod,
					 struct diag_error *err);

/* ---- result.c: the result set of one resolution ---- */

struct sym_result {
	struct diag_location *locs;
	size_t n, cap;
	struct diag_skip *skips;
	size_t nskips, capskips;
};

/* A location at addr in mod, inside function s (NULL: unknown). */
void sym_location_fill(struct diag_location *loc, const struct diag_module *mod,
		       const struct sym *s, uint64_t addr);
/* Adds loc unless its address is already there (aliases, C1/C2 constructors). 0 or -ENOMEM. */
int sym_result_add(struct sym_result *r, const struct diag_location *loc);
/* Records an instance that gets no location. 0 or -ENOMEM. */
int sym_result_skip(struct sym_result *r, const struct diag_module *mod, const char *what,
		    const char *reason);
void sym_result_free(struct sym_result *r);
/* Hands the arrays over (skips freed when the caller does not want them); r is then empty. */
int sym_result_give(struct sym_result *r, struct diag_location **out, size_t *n,
		    struct diag_skip **skips, size_t *nskips);

/* ---- resolve_name.c, resolve_line.c: mod NULL means "no MODULE given" ---- */

int sym_resolve_name(struct diag_symcache *c, const struct diag_modmap *m,
		     const struct diag_module *mod, const struct diag_target *t,
		     const struct diag_sym_opts *opts, struct sym_result *r, struct diag_error *err);
int sym_resolve_line(struct diag_symcache *c, const struct diag_modmap *m,
		     const struct diag_module *mod, const struct diag_target *t,
		     struct sym_result *r, struct diag_error *err);

/* ---- suggest.c ---- */

/* Appends "; did you mean: a, b" to buf when close names exist in scope (mod, or all). */
void sym_suggest_text(struct diag_symcache *c, const struct diag_modmap *m,
		      const struct diag_module *mod, const char *query, char *buf, size_t cap);

#endif
