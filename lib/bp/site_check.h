/* site_check: where a patch may go. An address is patched only when it lies in an executable
 * mapping backed by a file (never data, a stack, the heap, the vDSO or anonymous code such as a
 * JIT's) and is the start of an instruction of a known function, decoded from the function's
 * first byte with our own patches read as the bytes they replaced. Reads /proc/PID/maps and
 * target memory; never writes, never decides what is probed. */
#ifndef DIAG_BP_SITE_CHECK_H
#define DIAG_BP_SITE_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bp/breakpoint.h"
#include "util/error.h"

/* Longest stretch decoded from a function's start to an address (larger functions exist; an
 * address further in is refused rather than patched unchecked). */
#define DIAG_SITE_DECODE_MAX (1u << 20)

struct diag_mapping {
	uint64_t start, end;
	char perms[5];   /* "r-xp" */
	bool file;       /* backed by a file (an inode and a path) */
	char path[256];  /* "" when anonymous; "[heap]", "[stack]", "[vdso]" as maps names them */
};

/* The mapping of pid holding addr. Returns 0, -DIAG_E_INVALID (not mapped, message set),
 * -DIAG_E_GONE or -errno. */
int diag_mapping_at(pid_t pid, uint64_t addr, struct diag_mapping *out, struct diag_error *err);

/* 0 when addr is in an executable file-backed mapping of pid; else -DIAG_E_INVALID with
 * "0x... is in a non-executable mapping (/path, rw-p)", "0x... is in an anonymous executable
 * mapping (rwxp) ...", "0x... is not mapped in process N". */
int diag_site_check_mapping(pid_t pid, uint64_t addr, struct diag_error *err);

/* 0 when addr is the start of an instruction of the function `func` starting at `start`
 * (linear decode from start over the live code, our patches in t read as the bytes they
 * replaced). `label` names addr in messages ("konst+2", "sym5.c:42 (work+3)"). Else
 * -DIAG_E_INVALID: "konst+2 is inside the instruction at konst+0 (10 bytes: mov rax, 0x01);
 * nearest boundaries: konst+0, konst+10", or the reason the code cannot be decoded or read. */
int diag_site_check_boundary(const struct diag_bptable *t, struct diag_proc *p, const char *func,
			     uint64_t start, uint64_t addr, const char *label,
			     struct diag_error *err);

#endif
