/* symtab: the public API of lib/sym's symbols: ELF function symbols (.symtab and .dynsym) of the
 * modules of a process, indexed once per file in a cache shared by every process mapping that
 * file (symcache.c); resolution of a target (resolve*.c; the syntax is spec/target.h's) and
 * address symbolization. sym_internal.h maps the files.
 * Never reads target memory and never re-reads a file it already indexed.
 * A cache is not thread-safe: one owner (the daemon's main loop) uses it. */
#ifndef DIAG_SYM_SYMTAB_H
#define DIAG_SYM_SYMTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sym/modmap.h"
#include "util/error.h"

/* Limits on what the binaries we meet can make us allocate. */
#define DIAG_SYMCACHE_MAX_FILES 1024
#define DIAG_SYMFILE_MAX_SYMS (4u << 20)

/* ELF symbol tables indexed once per file (key: build-id, else dev+inode+size+mtime) and shared
 * by all processes. */
struct diag_symcache;

/* Returns 0 or -ENOMEM. */
int diag_symcache_new(struct diag_symcache **out);
/* Accepts NULL. Locations and names returned earlier stay valid only until this call. */
void diag_symcache_free(struct diag_symcache *c);

/* Number of files indexed so far (each read once, whatever the number of processes). */
size_t diag_symcache_count(const struct diag_symcache *c);

struct diag_dwarf_cache;
struct diag_indexer;
struct diag_ix_buf;

/* Symbol tables are read by the sandboxed indexer worker ix (lib/indexer), not in this
 * process; ix must outlive c. */
void diag_symcache_set_indexer(struct diag_symcache *c, struct diag_indexer *ix);

/* For the worker: the symbol index of the ELF open at fd appended to out (the flat table the
 * daemon decodes). 0 or a negative code with err. */
int diag_symfile_encode(int fd, struct diag_ix_buf *out, struct diag_error *err);

/* What a location is. DIAG_LOC_FUNCTION is 0 so zeroed locations keep the old meaning. */
enum diag_loc_kind {
	DIAG_LOC_FUNCTION = 0, /* the entry of an out-of-line function */
	DIAG_LOC_CLONE,        /* the entry of a compiler clone (FUNC.isra.N, .part.N, .constprop.N) */
	DIAG_LOC_INLINED,      /* the entry of an inlined copy (DW_TAG_inlined_subroutine) */
	DIAG_LOC_LINE,         /* the start of a source line's code (FILE:LINE) */
	DIAG_LOC_ADDRESS,      /* an address given as 0xADDR or FUNC+OFF */
};

struct diag_location {
	uint64_t addr;                  /* runtime address to patch */
	const struct diag_module *mod;  /* points into the modmap passed in */
	char symbol[256];               /* function symbol containing addr ("" if unknown); for an
					 * inlined copy, the inlined function's name */
	uint64_t offset;                /* addr - function start */
	uint64_t func_start, func_end;  /* runtime bounds of the code that starts at this location's
					 * function: the ELF symbol's [start, start+size); for
					 * DIAG_LOC_INLINED the instance's [low_pc, high_pc), or 0, 0
					 * when it is not one contiguous range */
	enum diag_loc_kind kind;
	bool ifunc;                     /* addr is an IFUNC's resolver (the engine probes the
					 * implementation the process chose, see ifunc.h) */
	char note[128];                 /* "clone work.constprop.0", "inlined into main at work.c:42",
					 * "work.c:42"; "" for a plain function */
};

/* An instance a target names that gets no location, and why (the engine reports it as
 * "skipped" beside the installed ones). */
struct diag_skip {
	const struct diag_module *mod;
	char what[160];                 /* "inl_add inlined into main at sym5.c:40" */
	char reason[128];               /* "inlined instance without an entry address" */
};

/* How many functions a glob may name (more is -DIAG_E_LIMIT). */
#define DIAG_SYM_GLOB_MAX 64

struct diag_sym_opts {
	unsigned glob_max;              /* 0: DIAG_SYM_GLOB_MAX */
};

/* DWARF (inlined copies, line tables) comes from dc, which must outlive c; without this call
 * the cache creates and owns a DWARF cache of its own on first need. */
void diag_symcache_set_dwarf(struct diag_symcache *c, struct diag_dwarf_cache *dc);

/* Resolves a target to every address it names, with the instances it names but cannot give an
 * address for. The syntax is the one grammar of spec/target.h (parsed there, once); what each
 * form names:
 *   FUNC            the function, its compiler clones (FUNC.isra.N, FUNC.part.N,
 *                   FUNC.constprop.N; never FUNC.cold, which is not an entry) and, where the
 *                   module has DWARF, the entry of each inlined copy of FUNC. A clone's own
 *                   name ("work.constprop.0") gives just that clone. FUNC may name a C++
 *                   function without parameters ("handle_alpha" for handle_alpha(long)).
 *                   A function is a defined STT_FUNC or STT_GNU_IFUNC symbol of non-zero size.
 *                   Aliases at one address are one location; a non-default symbol version
 *                   (foo@VER beside foo@@VER) yields to the default one. For an IFUNC the
 *                   location is the resolver function (flagged `ifunc`), not the
 *                   implementation it selects: the engine finds that one (sym/ifunc.h).
 *   FUNC+OFF        that one symbol's start + OFF (must be inside the function).
 *   ns::Class::meth C++ qualified name (or a "::"-suffix of one: "Class::meth"); several
 *                   overloads are -DIAG_E_AMBIGUOUS listing their signatures.
 *   ns::C::m(int)   picks the overload by parameter list (white space ignored, "(int)" also
 *                   matches "(int) const").
 *   GLOB            a name with * ? [ (fnmatch on C names and demangled qualified names, e.g.
 *                   "handle_*", "ns::*"); more than opts->glob_max functions is -DIAG_E_LIMIT.
 *   FILE:LINE       every address the line table marks is_stmt for that line (lowest address
 *                   per scope, as gdb); FILE is a basename or a path suffix.
 *   0xADDR          a runtime address inside a mapped module (symbol filled if known).
 *   MODULE:...      any of the above but 0xADDR within one module (a basename, a full path or
 *                   a unique prefix ending before '.' or '-', see diag_modmap_by_name). Without
 *                   MODULE, names are looked up in the main executable first, then in every
 *                   module (inlined copies and lines only in the main executable).
 * Locations are distinct addresses (aliases at one address, e.g. C1/C2 constructors, give one).
 * On success *out (malloc'd, free with free(); *n >= 1) and, if skips is non-NULL, *skips
 * (malloc'd or NULL) and *nskips; with skips NULL the skipped instances are dropped. If every
 * instance was skipped, returns -DIAG_E_NOSYM with the reasons. opts may be NULL.
 * Errors: -DIAG_E_PARSE (bad syntax, field "target"), -DIAG_E_NOSYM (no such module or
 * function; the message suggests up to 5 close names), -DIAG_E_AMBIGUOUS (several modules or
 * addresses; up to 8 listed as MODULE:FUNC), -DIAG_E_INVALID (offset past the function's end),
 * -DIAG_E_LIMIT, -DIAG_E_NODEBUG, FILE:LINE errors naming the nearest lines with code or the
 * known files, -errno. */
int diag_sym_resolve(struct diag_symcache *c, const struct diag_modmap *m, const char *target,
		     const struct diag_sym_opts *opts, struct diag_location **out, size_t *n,
		     struct diag_skip **skips, size_t *nskips, struct diag_error *err);

/* Symbolize a runtime address: function name and offset. Returns 0 or -DIAG_E_NOSYM. */
int diag_sym_lookup_addr(struct diag_symcache *c, const struct diag_modmap *m, uint64_t addr,
			 char *name, size_t cap, uint64_t *offset);

/* The function containing a runtime address: name, runtime start and size. Returns 0 or
 * -DIAG_E_NOSYM. */
int diag_sym_lookup_func(struct diag_symcache *c, const struct diag_modmap *m, uint64_t addr,
			 char *name, size_t cap, uint64_t *start, uint64_t *size);

/* Calls cb for each defined function (module by module, by address) whose name matches glob
 * (fnmatch; a C++ function also by its demangled name, with or without its parameters, and it
 * is passed demangled); NULL glob = all. "MODULE:GLOB" lists only that module (named as a
 * target names it). Modules whose file cannot be read are skipped. Stops at and returns the
 * first non-zero value cb returns; else 0, or -DIAG_E_NOSYM when MODULE names no module. */
int diag_sym_foreach(struct diag_symcache *c, const struct diag_modmap *m, const char *glob,
		     int (*cb)(void *arg, const struct diag_module *mod, const char *name,
			       uint64_t addr, uint64_t size),
		     void *arg);

#endif
