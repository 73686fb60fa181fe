/* dwarf: DWARF indexes of ELF files (libdwarf, old API), cached per build-id and shared by all
 * processes of one binary: functions (clones mapped to their source name), the parameters and
 * locals visible at a PC with their location descriptions, and C types. Also the small DWARF
 * expression machine that computes a variable's location at a hit. Never reads a target's
 * memory except through the read_mem callback of diag_loc_machine, never writes a target. */
#ifndef DIAG_DWARF_H
#define DIAG_DWARF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arch/regs.h"
#include "dwarf/type_model.h"
#include "util/error.h"

struct diag_dwarf_cache;
struct diag_dwarf_file;

#define DIAG_DWARF_MAX_FILES 256 /* indexed files kept per cache */

int diag_dwarf_cache_new(struct diag_dwarf_cache **out);
void diag_dwarf_cache_free(struct diag_dwarf_cache *c);

/* The index of the ELF at path (build_id hex or ""/NULL: keyed by path), built on first use,
 * looking for separate debug files (/usr/lib/debug/.build-id, .gnu_debuglink) when the file has
 * no .debug_info. Owned by the cache. Returns 0, -DIAG_E_NODEBUG ("no DWARF for NAME"),
 * -DIAG_E_LIMIT, -errno. */
int diag_dwarf_cache_get(struct diag_dwarf_cache *c, const char *path, const char *build_id,
			 struct diag_dwarf_file **out, struct diag_error *err);

/* A cache whose files are indexed by the sandboxed indexer worker ix (lib/indexer): the same
 * queries, answered from the worker's replies (validated as hostile input); the daemon never
 * parses a target's file itself. ix must outlive the cache. */
struct diag_indexer;
int diag_dwarf_cache_new_remote(struct diag_indexer *ix, struct diag_dwarf_cache **out);

/* ---- what the indexer worker uses (lib/indexworker/server.c) ---- */

/* The index of the ELF open at fd (taken), else of the first debug file dbg[i] (all taken)
 * with DWARF (*used = i, or -1). key and name are for messages. Returns 0, -DIAG_E_NODEBUG. */
int diag_dwarf_open_fds(const char *name, int fd, const int *dbg, size_t ndbg, int *used,
			struct diag_dwarf_file **out, struct diag_error *err);
void diag_dwarf_file_free(struct diag_dwarf_file *f);

/* The GNU build-id (hex) and .gnu_debuglink name of the ELF open at fd ("" when absent). */
void diag_dwarf_debug_refs(int fd, char *build_id, size_t bcap, char *link, size_t lcap);

#define DIAG_DWARF_PATH_MAX 4400
/* Where a separate debug file may be, in gdb's order: /usr/lib/debug/.build-id/ab/cdef.debug,
 * then the debuglink name beside path, in its .debug/ folder and under /usr/lib/debug/<dir>/.
 * build_id must be lowercase hex and link one plain path component, else they are ignored
 * (they come from the file: hostile). Returns the count written (<= cap). */
size_t diag_dwarf_debug_paths(const char *path, const char *build_id, const char *link,
			      char out[][DIAG_DWARF_PATH_MAX], size_t cap);

/* The file's basename, for messages. */
const char *diag_dwarf_file_name(const struct diag_dwarf_file *f);

#define DIAG_LOC_MAX_OPS 32

struct diag_loc_op {
	uint8_t atom;       /* DW_OP_* */
	uint64_t op1, op2;
};

/* A location description valid at one PC. */
struct diag_loc {
	size_t nops;        /* 0 and !has_const: optimised out here */
	struct diag_loc_op ops[DIAG_LOC_MAX_OPS];
	bool has_const;     /* DW_AT_const_value */
	int64_t const_val;
};

/* How to compute the frame base and the CFA at the scope's PC. */
struct diag_dwarf_frame {
	struct diag_loc fb;  /* DW_AT_frame_base of the function */
	bool cfa_known;
	int cfa_reg;         /* DWARF register number */
	int64_t cfa_off;     /* CFA = reg + off */
};

struct diag_dwarf_var {
	char *name;
	const struct diag_type *type;
	bool is_param;
	struct diag_loc loc;
	char loc_text[64];  /* "reg rdi", "fbreg -20", "optimised out"... */
};

struct diag_dwarf_scope {
	char *func;                   /* source name (clone suffixes removed) */
	uint64_t low_pc;              /* file addresses */
	bool at_entry;                /* pc is the function's first instruction */
	const struct diag_type *ret_type; /* NULL: void */
	struct diag_dwarf_frame frame;
	struct diag_dwarf_var *vars;  /* parameters first, then locals innermost block first */
	size_t nvars;
	struct diag_dwarf_file *file;
};

/* Variables visible at file address vaddr. Returns 0, -DIAG_E_NOSYM (no function with DWARF
 * covers vaddr), -ENOMEM. */
int diag_dwarf_scope_at(struct diag_dwarf_file *f, uint64_t vaddr, struct diag_dwarf_scope **out,
			struct diag_error *err);
void diag_dwarf_scope_free(struct diag_dwarf_scope *s);

/* A global or static variable by name (location DW_OP_addr). Returns 0 or -DIAG_E_NOSYM. */
int diag_dwarf_global(struct diag_dwarf_file *f, const char *name, struct diag_dwarf_var *out);

/* An enumerator constant (RED) with its enumeration type. Returns 0 or -DIAG_E_NOSYM. */
int diag_dwarf_enumerator(struct diag_dwarf_file *f, const char *name, const struct diag_type **type,
			  int64_t *value);

/* The type spelled "struct foo", "unsigned int", "size_t", "enum color"... or NULL. */
const struct diag_type *diag_dwarf_find_type(struct diag_dwarf_file *f, const char *spelling);

/* What the machine sees at a hit. */
struct diag_loc_machine {
	const diag_regs *regs;
	int (*read_fpregs)(void *arg, diag_fpregs *out);
	ssize_t (*read_mem)(void *arg, uint64_t addr, void *buf, size_t len);
	void *arg;
	uint64_t bias;      /* added to DW_OP_addr */
};

enum { DIAG_LOC_IN_MEMORY = 1, DIAG_LOC_IN_BYTES = 2 };

/* Evaluate loc for an object of size bytes: returns DIAG_LOC_IN_MEMORY with *addr, or
 * DIAG_LOC_IN_BYTES with buf[0..size) filled (registers, DW_OP_stack_value, pieces), or
 * -DIAG_E_INVALID with the reason in err (may be NULL; e.g. "<fault at 0x10>", "<optimised
 * out>"). */
int diag_loc_eval(const struct diag_loc *loc, const struct diag_dwarf_frame *fr,
		  const struct diag_loc_machine *m, uint64_t size, uint64_t *addr, uint8_t *buf,
		  size_t cap, struct diag_error *err);

/* Human text for a location ("reg rdi", "fbreg -20", "addr 0x4010", "pieces"). */
void diag_loc_describe(const struct diag_loc *loc, char *buf, size_t cap);

/* C spelling of a type into buf: "struct req *", "char [16]", "unsigned int". */
void diag_type_spell(const struct diag_type *t, char *buf, size_t cap);

/* ---- inlined instances (inline.c) ---- */

/* One DW_TAG_inlined_subroutine. Strings live as long as the file's index. */
struct diag_dwarf_inline {
	const char *name;      /* DW_AT_name of the inlined function (its abstract origin) */
	const char *linkage;   /* the origin's DW_AT_linkage_name (C++), NULL if none */
	uint64_t entry;        /* file address: DW_AT_entry_pc, else low_pc, else the first range's
				* start; 0 when the instance has no address */
	uint64_t lo, hi;       /* [lo, hi) when the instance is one contiguous range; else 0, 0 */
	const char *caller;    /* name of the out-of-line function it was inlined into, or "" */
	const char *call_file; /* basename of DW_AT_call_file, or "" */
	unsigned call_line;    /* DW_AT_call_line, 0 if unknown */
};

/* Calls cb for every inlined instance of the file (the index is built on the first call, once
 * per file). Stops at and returns cb's first non-zero value; else 0, or -ENOMEM. */
int diag_dwarf_inlined_foreach(struct diag_dwarf_file *f,
			       int (*cb)(void *arg, const struct diag_dwarf_inline *in), void *arg,
			       struct diag_error *err);

/* ---- line table (lines.c) ---- */

#define DIAG_DWARF_LINE_MAX_ADDRS 256

/* The addresses (file addresses, ascending) where code for FILE:LINE starts: the rows the line
 * table marks is_stmt for that line, in every source file whose path equals file or ends with
 * "/" + file, keeping the lowest address per innermost scope (function, inlined call or lexical
 * block with locals), as gdb does for a breakpoint. Returns the count (>= 1) with *out malloc'd;
 * -DIAG_E_NOSYM: no such source file (the message lists some files) or no code at that line
 * (the message names the nearest lines with code); -DIAG_E_LIMIT, -ENOMEM. */
int diag_dwarf_line_addrs(struct diag_dwarf_file *f, const char *file, unsigned line,
			  uint64_t **out, struct diag_error *err);

#endif
