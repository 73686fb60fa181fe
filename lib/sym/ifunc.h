/* ifunc: the implementation an IFUNC symbol (STT_GNU_IFUNC: strlen, memcpy... in glibc) resolved
 * to in one process, found as gdb finds it: the R_X86_64_IRELATIVE relocation whose addend is the
 * resolver, in the module's read-only segments as the process maps them, and the GOT slot the
 * dynamic linker (or a static binary's startup code) filled from it, read from the process's
 * memory. Works for shared libraries, static and static-pie executables alike. Reads only through
 * the caller's reader (target memory is hostile: every length is bounded, the answer must lie in
 * the module's executable code); never runs the resolver, never writes. */
#ifndef DIAG_SYM_IFUNC_H
#define DIAG_SYM_IFUNC_H

#include <stdint.h>
#include <sys/types.h>

#include "sym/modmap.h"
#include "util/error.h"

/* Reads len bytes of the target at addr; returns the count read or a negative code. */
typedef ssize_t (*diag_mem_read_fn)(void *arg, uint64_t addr, void *buf, size_t len);

/* Bytes of a module's read-only segments searched for the relocation, at most. */
#define DIAG_IFUNC_SCAN_MAX (64u << 20)

/* The runtime address of the code the IFUNC `name` of mod (its resolver at runtime address
 * `resolver`) selected in this process. Returns 0 with *impl, or -DIAG_E_NOSYM when no
 * relocation of mod names the resolver or its slot does not hold code of mod (not resolved
 * yet), with a message naming the function; -ENOMEM. */
int diag_ifunc_resolve(const struct diag_module *mod, const char *name, uint64_t resolver,
		       diag_mem_read_fn rd, void *arg, uint64_t *impl, struct diag_error *err);

#endif
