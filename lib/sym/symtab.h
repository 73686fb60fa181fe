/* symtab: ELF function symbols (.symtab and .dynsym) of the modules of a process, indexed once
 * per file in a cache shared by every process mapping that file; target-string resolution
 * ("FUNC", "MODULE:FUNC+OFF", "0xADDR") and address symbolization.
 * Never reads target memory and never re-reads a file it already indexed.
 * A cache is not thread-safe: one owner (the daemon's main loop) uses it. */
#ifndef DIAG_SYM_SYMTAB_H
#define DIAG_SYM_SYMTAB_H

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

struct diag_location {
	uint64_t addr;                  /* runtime address to patch */
	const struct diag_module *mod;  /* points into the modmap passed in */
	char symbol[256];               /* function symbol containing addr ("" if unknown) */
	uint64_t offset;                /* addr - function start */
	uint64_t func_start, func_end;  /* runtime bounds of that function (end = start+size) */
};

/* Resolves a target string against the modules of m.
 * Syntax: "FUNC", "MODULE:FUNC" (e.g. "libc.so.6:write", "libc:write"), "FUNC+OFF" (OFF decimal
 * or 0x hex, must be inside the function), "MODULE:FUNC+OFF", "0xADDR" (runtime address inside a
 * mapped module; symbol filled if known). MODULE is a basename, a full path or a unique prefix
 * ending before '.' or '-' (see diag_modmap_by_name).
 * A function is a defined STT_FUNC or STT_GNU_IFUNC symbol of non-zero size. FUNC alone is looked
 * up in the main executable first, then in every module. Aliases at one address are one
 * location; a non-default symbol version (foo@VER beside foo@@VER) yields to the default one.
 * For an IFUNC the location is the resolver function, not the implementation it selects.
 * Returns 0 with *out a malloc'd array (free with free()) of *n locations (currently always 1);
 * -DIAG_E_PARSE (bad syntax), -DIAG_E_NOSYM (no such module or function; the message suggests up
 * to 5 close names), -DIAG_E_AMBIGUOUS (several modules or addresses; up to 8 listed as
 * MODULE:FUNC), -DIAG_E_INVALID (offset past the function's end), -DIAG_E_LIMIT, -errno. */
int diag_sym_resolve(struct diag_symcache *c, const struct diag_modmap *m, const char *target,
		     struct diag_location **out, size_t *n, struct diag_error *err);

/* Symbolize a runtime address: function name and offset. Returns 0 or -DIAG_E_NOSYM. */
int diag_sym_lookup_addr(struct diag_symcache *c, const struct diag_modmap *m, uint64_t addr,
			 char *name, size_t cap, uint64_t *offset);

/* Calls cb for each defined function (module by module, by address) whose name matches glob
 * (fnmatch); NULL glob = all. Modules whose file cannot be read are skipped. Stops at and
 * returns the first non-zero value cb returns; else 0. */
int diag_sym_foreach(struct diag_symcache *c, const struct diag_modmap *m, const char *glob,
		     int (*cb)(void *arg, const struct diag_module *mod, const char *name,
			       uint64_t addr, uint64_t size),
		     void *arg);

#endif
